"""Schema tab of the labeling dock: validation messages, files, imports (pytest-qgis)."""
import json

from deeppixel.deep_pixel.core.schema import ClassInfo
from qgis.core import QgsProject, QgsVectorLayer


def _panel():
    from deeppixel.ui.schema_panel import SchemaPanel
    return SchemaPanel()


def test_invalid_classes_are_refused_with_the_schema_message(qgis_app):
    panel = _panel()
    assert panel.add_class(ClassInfo(1, "water", (0, 0, 255))) is None
    for bad, words in ((ClassInfo(0, "nothing"), "reserved"), (ClassInfo(-3, "neg"), "1 or more"),
                       (ClassInfo(1, "again"), "used twice"), (ClassInfo(2, "WATER"), "used twice"),
                       (ClassInfo(300, "big"), "above 254")):
        message = panel.add_class(bad)
        assert message and words in message, (bad, message)
        assert panel.message.text() == message and not panel.message.isHidden()
    assert panel.schema.values == [1]
    assert panel.tree.topLevelItemCount() == 1
    assert panel.tree.topLevelItem(0).text(1) == "water"
    assert not panel.tree.topLevelItem(0).icon(1).isNull()  # colour swatch


def test_class_dialog_checks_values_inline(qgis_app):
    from deeppixel.deep_pixel.core.schema import ClassSchema
    from deeppixel.ui.schema_panel import ClassDialog
    schema = ClassSchema([ClassInfo(1, "water", (0, 0, 255))])
    dialog = ClassDialog(schema)
    assert dialog.value.value() == 2  # next free value proposed
    dialog.value.setValue(1)
    assert "used twice" in dialog.check() and not dialog.error.isHidden()
    dialog.value.setValue(0)
    assert "reserved" in dialog.check()
    dialog.value.setValue(7)
    dialog.name.setText("forest")
    assert dialog.check() is None and dialog.result_schema.values == [1, 7]
    edit = ClassDialog(schema, schema.by_value(1))  # editing keeps its own value legal
    edit.name.setText("lake")
    assert edit.check() is None and edit.result_schema.by_value(1).name == "lake"


def test_edit_remove_save_open_and_emd_import(qgis_app, tmp_path):
    panel = _panel()
    changes = []
    panel.schemaChanged.connect(lambda s: changes.append(s.values))
    panel.add_class(ClassInfo(1, "water", (0, 0, 255)))
    panel.add_class(ClassInfo(2, "forest", (0, 128, 0)))
    assert panel.replace_class(2, ClassInfo(3, "woods", (0, 100, 0))) is None
    assert "used twice" in panel.replace_class(3, ClassInfo(1, "woods", (0, 100, 0)))
    assert panel.schema.values == [1, 3]
    path = str(tmp_path / "schema.json")
    assert panel.save_schema(path) is None
    saved = json.load(open(path))
    assert saved["classes"][1] == {"value": 3, "name": "woods", "color": [0, 100, 0]}
    panel.remove_class(1)
    assert panel.schema.values == [3] and panel.modified
    assert panel.open_schema(path) is None and panel.schema.values == [1, 3] and not panel.modified
    assert changes[-1] == [1, 3]
    emd = tmp_path / "model.emd"
    emd.write_text(json.dumps({"Framework": "PyTorch", "Classes": [
        {"Value": 4, "Name": "cropland", "Color": [230, 200, 60]}, {"Value": 5, "Name": "built-up"}]}))
    assert panel.open_schema(str(emd)) is None
    assert [c.name for c in panel.schema] == ["cropland", "built-up"]
    assert panel.path is None and panel.modified  # saving asks for a JSON name, never writes the .emd
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"classes": [{"value": 0, "name": "x"}]}))
    assert "reserved" in panel.open_schema(str(bad))
    assert [c.name for c in panel.schema] == ["cropland", "built-up"]


def test_import_from_sample_layer_values_names_and_colours(qgis_app, scene):
    from deeppixel.ui.schema_panel import schema_from_layer
    layer = QgsVectorLayer(scene.samples, "samples", "ogr")
    assert layer.isValid()
    by_value = schema_from_layer(layer, "Classvalue")
    assert [(c.value, c.name, c.color) for c in by_value] == [(c.value, c.name, c.color) for c in scene.schema]
    by_name = schema_from_layer(layer, "Classname")
    assert [c.name for c in by_name] == [c.name for c in scene.schema]
    panel = _panel()
    assert "first" in panel.import_from_layer()
    assert panel.import_from_layer(layer, "Classname") is None
    assert panel.schema.values == scene.schema.values
    QgsProject.instance().removeAllMapLayers()


def test_dock_says_what_is_missing_and_how_to_install_it(qgis_iface, monkeypatch):
    """torch made unimportable (as in a QGIS whose Python lacks it): the dock names it and the fix."""
    import sys

    from deeppixel.ui.dock import DeepPixelDock
    monkeypatch.delenv("DEEP_PIXEL_PYTHON", raising=False)
    monkeypatch.setitem(sys.modules, "torch", None)
    dock = DeepPixelDock(qgis_iface)
    try:
        text = dock.message.text()
        assert not dock.message.isHidden()
        assert "torch" in text and "-m pip install" in text
        assert dock.diagnostics_button.isEnabled()
    finally:
        dock.deleteLater()
    monkeypatch.undo()
    dock = DeepPixelDock(qgis_iface)
    assert dock.message.isHidden()           # with everything installed there is nothing to say
    dock.deleteLater()
