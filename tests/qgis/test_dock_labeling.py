"""The labeling dock on the real QGIS canvas: new layer, drawing with map-tool mouse events, styling,
per-class table, undo, delete and an export run as a background task (pytest-qgis)."""
import math
import os
import time

import pytest
from deeppixel.deep_pixel.core.schema import ClassInfo
from qgis.core import QgsApplication, QgsGeometry, QgsProject, QgsRasterLayer, QgsVectorLayer, QgsWkbTypes
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QCoreApplication, QEvent, QPoint, Qt


def wait_for(condition, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def mouse(canvas, kind, x, y, button=Qt.MouseButton.LeftButton):
    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    buttons = Qt.MouseButton.NoButton if kind == "release" else button
    return QgsMapMouseEvent(canvas, types[kind], QPoint(x, y), button, buttons)


@pytest.fixture
def provider(qgis_processing):
    """The Deep Pixel provider for these tests only: removed again so later plugin tests start clean."""
    from deeppixel.processing_provider.provider import DeepPixelProvider
    registry = QgsApplication.processingRegistry()
    added = None
    if registry.providerById("deeppixel") is None:
        added = DeepPixelProvider()
        assert registry.addProvider(added)
    yield registry.providerById("deeppixel")
    if added is not None:
        registry.removeProvider(added)


@pytest.fixture
def dock(qgis_iface, qgis_canvas, qgis_new_project, provider, scene):
    from deeppixel.ui.dock import DeepPixelDock
    raster = QgsRasterLayer(scene.image, "scene")
    assert raster.isValid()
    QgsProject.instance().addMapLayer(raster)
    # A canvas that was never shown keeps a tiny map size (its viewport is not laid out): show the
    # test main window (offscreen) so clicks map to coordinates as on a real screen.
    qgis_canvas.window().show()
    qgis_canvas.resize(600, 600)
    assert wait_for(lambda: qgis_canvas.mapSettings().outputSize().width() >= 500, timeout=5), \
        qgis_canvas.mapSettings().outputSize()
    qgis_canvas.setDestinationCrs(raster.crs())
    qgis_canvas.setExtent(raster.extent())
    qgis_canvas.refresh()
    d = DeepPixelDock(qgis_iface)
    d.set_raster(raster)
    yield d
    d.samples_panel.deactivate_tools()
    layer = d.samples_panel.layer()
    if layer is not None and layer.isEditable():
        layer.rollBack()
    d.samples_panel.set_layer(None)
    d.deleteLater()
    qgis_canvas.window().hide()
    QgsProject.instance().removeAllMapLayers()


def build_schema(dock):
    panel = dock.schema_panel
    assert panel.add_class(ClassInfo(1, "water", (30, 90, 200))) is None
    assert panel.add_class(ClassInfo(2, "forest", (20, 110, 40))) is None
    assert "reserved" in panel.add_class(ClassInfo(0, "none"))


def to_pixel(canvas, x, y):
    p = canvas.getCoordinateTransform().transform(x, y)
    return int(round(p.x())), int(round(p.y()))


def clicked_polygon(canvas, pixels):
    """The map polygon the clicks on these canvas pixels stand for (what the tool must store)."""
    t = canvas.getCoordinateTransform()
    return QgsGeometry.fromPolygonXY([[t.toMapCoordinates(x, y) for x, y in pixels]])


def test_draw_style_count_undo_delete(dock, qgis_canvas, tmp_path):
    build_schema(dock)
    samples = dock.samples_panel
    layer = samples.new_layer(str(tmp_path / "samples.gpkg"))
    assert layer.isValid() and layer.crs() == dock.raster().crs()
    assert [f.name() for f in layer.fields()][-5:] == ["Classname", "Classvalue", "RED", "GREEN", "BLUE"]
    assert layer.geometryType() == QgsWkbTypes.GeometryType.PolygonGeometry
    assert samples.class_field() == "Classvalue"

    # Renderer categories follow the schema, and follow its changes.
    renderer = layer.renderer()
    assert renderer.type() == "categorizedSymbol" and renderer.classAttribute() == "Classvalue"
    cats = {c.value(): c for c in renderer.categories()}
    assert set(cats) == {1, 2, ""}  # "" = all other values
    assert cats[2].symbol().color().getRgb()[:3] == (20, 110, 40)
    dock.schema_panel.replace_class(2, ClassInfo(2, "forest", (0, 200, 0)))
    cats = {c.value(): c for c in layer.renderer().categories()}
    assert cats[2].symbol().color().getRgb()[:3] == (0, 200, 0)

    # Polygon tool: clicks on the canvas, right click closes.
    dock.schema_panel.select_value(2)
    assert samples.current_class().name == "forest"
    tool = samples.activate_tool("polygon")
    assert qgis_canvas.mapTool() is tool and layer.isEditable()
    ext = dock.raster().extent()
    x0, y0 = ext.xMinimum() + 400, ext.yMaximum() - 400  # raster pixels are 10 m
    corners = [(x0, y0), (x0 + 800, y0), (x0 + 800, y0 - 600), (x0, y0 - 600)]
    pixels = [to_pixel(qgis_canvas, x, y) for x, y in corners]
    for px, py in pixels:
        tool.canvasMoveEvent(mouse(qgis_canvas, "move", px, py))
        tool.canvasReleaseEvent(mouse(qgis_canvas, "release", px, py))
    tool.canvasReleaseEvent(mouse(qgis_canvas, "release", 5, 5, Qt.MouseButton.RightButton))
    assert layer.featureCount() == 1
    feature = next(layer.getFeatures())
    assert feature["Classname"] == "forest" and feature["Classvalue"] == 2
    assert (feature["RED"], feature["GREEN"], feature["BLUE"]) == (0, 200, 0)
    area = feature.geometry().area()
    assert feature.geometry().equals(clicked_polygon(qgis_canvas, pixels)) or \
        feature.geometry().symDifference(clicked_polygon(qgis_canvas, pixels)).area() < 1e-6
    assert area == pytest.approx(800 * 600, rel=0.03)  # the canvas shows 6.4 m per pixel

    # Rectangle (drag) and circle tools, class water.
    dock.schema_panel.select_value(1)
    rect = samples.activate_tool("rectangle")
    a, b = to_pixel(qgis_canvas, x0 + 1000, y0), to_pixel(qgis_canvas, x0 + 1500, y0 - 500)
    rect.canvasPressEvent(mouse(qgis_canvas, "press", *a))
    rect.canvasMoveEvent(mouse(qgis_canvas, "move", *b))
    rect.canvasReleaseEvent(mouse(qgis_canvas, "release", *b))
    circle = samples.activate_tool("circle")
    assert not samples.tool_buttons["rectangle"].isChecked() and samples.tool_buttons["circle"].isChecked()
    c, rim = to_pixel(qgis_canvas, x0 + 2000, y0 - 2000), to_pixel(qgis_canvas, x0 + 2300, y0 - 2000)
    circle.canvasPressEvent(mouse(qgis_canvas, "press", *c))
    circle.canvasReleaseEvent(mouse(qgis_canvas, "release", *rim))
    assert layer.featureCount() == 3
    water = [f for f in layer.getFeatures() if f["Classvalue"] == 1]
    assert len(water) == 2 and all(f["Classname"] == "water" for f in water)
    circle_area = next(f.geometry().area() for f in water if len(list(f.geometry().vertices())) > 40)
    assert circle_area == pytest.approx(math.pi * 300 ** 2, rel=0.05)

    # The table refreshes by itself: polygons, area and pixels (10 m pixels) per class.
    assert wait_for(lambda: samples.counts() == {1: 2, 2: 1}, timeout=5)
    rows = {row["value"]: row for row in samples.stats}
    assert rows[2]["pixels"] == pytest.approx(area / 100, abs=1)
    assert rows[1]["area_m2"] == pytest.approx(sum(f.geometry().area() for f in water), rel=1e-6)
    assert samples.table.rowCount() == 2 and samples.table.item(1, 2).text() == "1"

    # Undo through the edit buffer, then delete a class (undoable too), select and zoom.
    layer.undoStack().undo()
    assert layer.featureCount() == 2
    assert wait_for(lambda: samples.counts() == {1: 1, 2: 1}, timeout=5)
    assert len(samples.select_samples([2])) == 1 and layer.selectedFeatureCount() == 1
    samples.zoom_to_samples([2])
    assert qgis_canvas.extent().intersects(feature.geometry().boundingBox())
    assert samples.delete_samples([1]) == 1 and layer.featureCount() == 1
    assert samples.counts() == {1: 0, 2: 1}
    assert samples.save_edits() and not layer.isModified()
    assert QgsVectorLayer(layer.source(), "check", "ogr").featureCount() == 1


def test_freehand_and_text_class_field(dock, qgis_canvas, scene):
    """An existing layer mapped by its text field: new samples get the name, and values."""
    layer = QgsVectorLayer(scene.samples, "existing", "ogr")
    QgsProject.instance().addMapLayer(layer)
    samples = dock.samples_panel
    samples.set_layer(layer, "Classname")
    assert dock.schema_panel.import_from_layer() is None
    assert dock.schema_panel.schema.values == scene.schema.values
    renderer = layer.renderer()
    assert renderer.classAttribute() == "Classname"
    assert {c.value() for c in renderer.categories()} == {c.name for c in scene.schema} | {""}
    before = {row["value"]: row["count"] for row in samples.stats}
    expected = {}
    for f in layer.getFeatures():
        expected[f["Classvalue"]] = expected.get(f["Classvalue"], 0) + 1
    assert before == expected
    n = layer.featureCount()
    dock.schema_panel.select_value(3)
    tool = samples.activate_tool("freehand")
    ext = dock.raster().extent()
    cx, cy = ext.center().x(), ext.center().y()
    pts = [to_pixel(qgis_canvas, cx + 500 * math.cos(t / 10), cy + 500 * math.sin(t / 10)) for t in range(63)]
    tool.canvasPressEvent(mouse(qgis_canvas, "press", *pts[0]))
    for p in pts[1:]:
        tool.canvasMoveEvent(mouse(qgis_canvas, "move", *p))
    tool.canvasReleaseEvent(mouse(qgis_canvas, "release", *pts[-1]))
    assert layer.featureCount() == n + 1
    added = [f for f in layer.getFeatures() if f.id() < 0]  # still in the edit buffer
    assert len(added) == 1 and added[0]["Classname"] == "cropland" and added[0]["Classvalue"] == 3
    assert added[0].geometry().area() == pytest.approx(math.pi * 500 ** 2, rel=0.05)
    assert wait_for(lambda: samples.counts()[3] == expected[3] + 1, timeout=5)


def test_export_from_the_dock_runs_as_a_task(dock, qgis_canvas, scene, tmp_path):
    layer = QgsVectorLayer(scene.samples, "existing", "ogr")
    QgsProject.instance().addMapLayer(layer)
    dock.samples_panel.set_layer(layer, "Classvalue")
    dock.schema_panel.set_schema(scene.schema)
    export = dock.export_panel
    assert "Choose an output folder" in (export.start() or export.status.text())
    out = tmp_path / "chips"
    export.output.setFilePath(str(out))
    export.tile_x.setValue(128)
    export.tile_y.setValue(128)
    export.stride_x.setValue(128)
    export.stride_y.setValue(128)
    params = export.parameters()
    assert params["INPUT_RASTER"] == scene.image and params["INPUT_SAMPLES"].split("|")[0] == scene.samples
    assert params["CLASS_FIELD"] == "Classvalue" and params["TILE_SIZE_X"] == 128
    assert "MASK_POLYGONS" not in params and "BUFFER_RADIUS" not in params
    mask = QgsVectorLayer("Polygon?crs=EPSG:32633", "mask", "memory")
    QgsProject.instance().addMapLayer(mask)
    export.mask.setLayer(mask)
    assert export.parameters()["MASK_POLYGONS"] == mask.id()  # memory layers go by id
    export.mask.setLayer(None)
    done = []
    export.finished.connect(lambda ok, results: done.append((ok, results)))
    assert export.start()
    assert export.running() and not export.run_button.isEnabled() and export.cancel_button.isEnabled()
    assert QgsApplication.taskManager().count() >= 1
    assert wait_for(lambda: bool(done), timeout=180), export.status.text()
    ok, results = done[0]
    assert ok, export.log
    assert os.path.isfile(out / "map.txt") and results["NUM_CHIPS"] > 0
    assert len(open(out / "map.txt").read().splitlines()) == results["NUM_CHIPS"]
    assert "Exported" in export.status.text() and export.progress.value() == 100
    # A second run into the same, now full, folder fails with the algorithm's message.
    done.clear()
    assert export.start()
    assert wait_for(lambda: bool(done), timeout=180)
    assert not done[0][0] and "Export failed" in export.status.text()


def test_cancel_an_export_from_the_dock(dock, scene, tmp_path):
    layer = QgsVectorLayer(scene.samples, "existing", "ogr")
    QgsProject.instance().addMapLayer(layer)
    dock.samples_panel.set_layer(layer, "Classvalue")
    export = dock.export_panel
    export.output.setFilePath(str(tmp_path / "chips"))
    for spin in (export.tile_x, export.tile_y):
        spin.setValue(32)
    for spin in (export.stride_x, export.stride_y):
        spin.setValue(8)  # thousands of chips: the cancel lands long before the end
    export.nofeature.setChecked(True)
    done = []
    export.finished.connect(lambda ok, results: done.append(ok))
    assert export.start()
    export.cancel()
    assert wait_for(lambda: bool(done), timeout=120)
    assert done == [False] and "cancelled" in export.status.text()
    assert export.run_button.isEnabled() and not export.cancel_button.isEnabled()


def test_plugin_opens_the_dock_and_unload_removes_its_tools(qgis_iface, qgis_canvas, qgis_new_project):
    """plugin.show_dock (the toolbar's dock action) and unload; initGui is covered by test_plugin_gui."""
    import deeppixel
    from deeppixel.ui.dock import DeepPixelDock
    plugin = deeppixel.classFactory(qgis_iface)
    try:
        plugin.show_dock()
        assert isinstance(plugin.dock, DeepPixelDock)
        assert [plugin.dock.tabs.tabText(i) for i in range(3)] == ["Schema", "Samples", "Export"]
        dock = plugin.dock
        plugin.show_dock()
        assert plugin.dock is dock  # one dock, shown again
        dock.schema_panel.add_class(ClassInfo(1, "water", (0, 0, 255)))
        layer = QgsVectorLayer("Polygon?crs=EPSG:32633&field=Classvalue:integer", "mem", "memory")
        QgsProject.instance().addMapLayer(layer)
        dock.samples_panel.set_layer(layer, "Classvalue")
        tool = dock.samples_panel.activate_tool("rectangle")
        assert qgis_canvas.mapTool() is tool
    finally:
        plugin.unload()
    assert qgis_canvas.mapTool() is None and plugin.dock is None
    QgsProject.instance().removeAllMapLayers()
