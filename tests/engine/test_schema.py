import json

import pytest

from deep_pixel.core.errors import DeepPixelError
from deep_pixel.core.schema import ClassInfo, ClassSchema


@pytest.mark.parametrize("classes, words", [
    ([ClassInfo(0, "none")], "reserved"),
    ([ClassInfo(-3, "neg")], "1 or more"),
    ([ClassInfo(1, "a"), ClassInfo(1, "b")], "used twice"),
    ([ClassInfo(1, "a"), ClassInfo(2, "A")], "used twice"),
    ([ClassInfo(300, "big")], "above 254"),
    ([ClassInfo(2, "  ")], "empty name"),
])
def test_invalid_schemas_are_explained(classes, words):
    with pytest.raises(DeepPixelError, match=words):
        ClassSchema(classes)


def test_round_trip_and_emd_import(tmp_path):
    schema = ClassSchema([ClassInfo(1, "water", (0, 0, 255)), ClassInfo(5, "forest", (0, 128, 0))])
    schema.save(str(tmp_path / "s.json"))
    assert json.load(open(tmp_path / "s.json"))["classes"][1] == {"value": 5, "name": "forest", "color": [0, 128, 0]}
    assert ClassSchema.load(str(tmp_path / "s.json")) == schema
    (tmp_path / "m.emd").write_text(json.dumps({"Classes": [{"Value": 3, "Name": "crop", "Color": [1, 2, 3]}],
                                                "Unknown": 1}))
    assert ClassSchema.load(str(tmp_path / "m.emd")).classes == [ClassInfo(3, "crop", (1, 2, 3))]


def test_bad_files(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(DeepPixelError, match="not valid JSON"):
        ClassSchema.load(str(tmp_path / "x.json"))
    (tmp_path / "y.json").write_text(json.dumps({"classes": [{"value": "one", "name": "a"}]}))
    with pytest.raises(DeepPixelError, match="no integer value"):
        ClassSchema.load(str(tmp_path / "y.json"))
