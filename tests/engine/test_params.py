"""Declared parameters: the command line and JSON give the same options, ranges are checked by name."""
import json

import pytest

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.cli.main import build_parser
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.core.params import from_cli, from_json_file, to_json

BASE = ["classify", "--input-raster", "a.tif", "--model-definition", "m.emd", "--output-raster", "o.tif"]


def test_command_line_defaults_are_the_dataclass_defaults():
    args = build_parser().parse_args(BASE)
    assert from_cli(ClassifyOptions, args) == ClassifyOptions()


def test_command_line_flags_reach_the_options():
    args = build_parser().parse_args(BASE + ["--tile-size", "512", "--padding", "32", "--no-predict-background",
                                             "--test-time-augmentation", "--runtime", "torch"])
    options = from_cli(ClassifyOptions, args)
    assert (options.tile_size, options.padding, options.predict_background, options.test_time_augmentation,
            options.runtime) == (512, 32, False, True, "torch")


def test_json_round_trip_and_unknown_options(tmp_path):
    options = ClassifyOptions(tile_size=640, precision="float32", mask_polygons="m.gpkg")
    path = tmp_path / "o.json"
    path.write_text(json.dumps(to_json(options)))
    assert from_json_file(ClassifyOptions, str(path)) == options
    path.write_text(json.dumps({"tile_size": 1, "tile_szie": 2}))
    with pytest.raises(DeepPixelError, match="tile_szie"):
        from_json_file(ClassifyOptions, str(path))


@pytest.mark.parametrize("changes, message", [({"runtime": "tensorrt"}, "RUNTIME 'tensorrt' is not one of"),
                                              ({"batch_size": 0}, "BATCH_SIZE 0 is below its minimum"),
                                              ({"padding": -1}, "PADDING -1 is below its minimum")])
def test_ranges_and_choices_are_checked_with_the_parameter_name(changes, message):
    with pytest.raises(DeepPixelError, match=message):
        ClassifyOptions(**changes).validate()
