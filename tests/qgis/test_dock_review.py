"""The dock's Review tab driven for real (pytest-qgis): classify the map view and the whole raster,
suggest windows and go to one, retrain a round (history, layers replaced), and a cancelled round that
leaves the previous model current. Each action runs as a QGIS background task."""
import os
import time

import pytest
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.PyQt.QtCore import QCoreApplication


def wait_for(condition, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def provider(qgis_processing):
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
def dock(qgis_iface, qgis_canvas, qgis_new_project, provider, scene, trained_scene_model, tmp_path):
    """The dock with the scene, its samples and schema, the trained model and a working folder."""
    from deeppixel.ui.dock import DeepPixelDock
    raster = QgsRasterLayer(scene.image, "scene")
    samples = QgsVectorLayer(scene.samples, "samples", "ogr")
    assert raster.isValid() and samples.isValid()
    QgsProject.instance().addMapLayer(raster)
    QgsProject.instance().addMapLayer(samples)        # on top of the raster in the layer tree
    qgis_canvas.window().show()
    qgis_canvas.resize(600, 600)
    assert wait_for(lambda: qgis_canvas.mapSettings().outputSize().width() >= 500, timeout=5)
    qgis_canvas.setDestinationCrs(raster.crs())
    qgis_canvas.setExtent(raster.extent())
    d = DeepPixelDock(qgis_iface)
    d.set_raster(raster)
    d.schema_panel.set_schema(scene.schema)
    d.samples_panel.set_layer(samples, "Classvalue")
    review = d.review_panel
    review.folder.setFilePath(str(tmp_path / "work"))
    review.model.setFilePath(trained_scene_model)
    d.tabs.setCurrentWidget(review)
    review.done = []
    review.finished.connect(lambda action, ok: review.done.append((action, ok)))
    yield d
    if review.running():
        review.cancel()
        wait_for(lambda: not review.running(), timeout=60)
    d.samples_panel.set_layer(None)
    d.deleteLater()
    qgis_canvas.window().hide()
    QgsProject.instance().removeAllMapLayers()


def run(review, action, timeout=300):
    review.done.clear()
    start = {"classify": review.classify_view, "suggest": review.suggest, "retrain": review.retrain}[action]
    assert start(), review.status.text()
    assert review.running() and not review.classify_button.isEnabled() and review.cancel_button.isEnabled()
    assert wait_for(lambda: bool(review.done), timeout=timeout), review.status.text()
    assert review.done == [(action, True)], review.status.text()
    assert review.classify_button.isEnabled() and not review.cancel_button.isEnabled()


def layers_named():
    return {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}


def tree_order():
    return [node.layer().name() for node in QgsProject.instance().layerTreeRoot().findLayers()]


def test_classify_view_suggest_and_go_to_a_suggestion(dock, qgis_canvas, scene, tmp_path, monkeypatch):
    review = dock.review_panel
    raster = dock.raster()
    view = raster.extent().buffered(-raster.extent().width() / 4)      # the middle 192 x 192 px
    qgis_canvas.setExtent(view)
    run(review, "classify")
    names = layers_named()
    classes, unc = names["Round 1 classes"], names["Round 1 uncertainty"]
    assert review.view["input"] == str(tmp_path / "work" / "round_01" / "view_01" / "view.vrt")
    shown = qgis_canvas.extent()
    assert abs(classes.width() - shown.width() / 10) <= 2 and abs(classes.height() - shown.height() / 10) <= 2
    assert raster.extent().contains(classes.extent()) and classes.extent().intersects(view)
    assert classes.renderer().type() == "paletted" and unc.renderer().type() == "singlebandpseudocolor"
    assert tree_order() == ["samples", "Round 1 uncertainty", "Round 1 classes", "scene"]   # samples stay visible
    assert "Round 1: classified" in review.status.text() and review.progress.value() == 100
    assert review.history_table.rowCount() == 1 and review.history_table.item(0, 0).text() == "1"
    assert review.history_table.item(0, 1).text() == "–"       # the starting model was trained elsewhere

    review.count.setValue(4)
    review.window.setValue(16)
    run(review, "suggest")
    assert [s[0] for s in review.suggestions] == [1, 2, 3, 4] and review.suggestion_table.rowCount() == 4
    uncertainty = [s[1] for s in review.suggestions]
    assert uncertainty == sorted(uncertainty, reverse=True) and all(0 < u <= 1 for u in uncertainty)
    assert "%" in review.suggestion_table.item(0, 2).text()
    windows = layers_named()["Round 1 suggestions"]
    assert tree_order()[0] == "Round 1 suggestions"
    assert windows.featureCount() == 4
    samples = dock.samples_panel.layer()
    for _rank, _u, _mix, geometry in review.suggestions:
        assert classes.extent().contains(geometry.boundingBox())             # inside the classified view
        assert abs(geometry.boundingBox().width() - 160) < 1e-6              # 16 px of 10 m
        assert not any(f.geometry().intersects(geometry) for f in samples.getFeatures())

    flashed = []
    monkeypatch.setattr(qgis_canvas, "flashGeometries", lambda geoms, crs, *a: flashed.append((geoms, crs)))
    review.suggestion_table.cellClicked.emit(2, 0)       # a click on the third row
    target = review.suggestions[2][3].boundingBox()
    assert qgis_canvas.extent().contains(target) and qgis_canvas.extent().width() < 4 * target.width() + 1
    assert len(flashed) == 1 and flashed[0][0][0].equals(review.suggestions[2][3])
    assert review.suggestion_table.currentRow() == 2 and "Suggestion 3" in review.status.text()

    # The whole raster replaces the round's layers (one of each), and the old suggestions go.
    review.whole.setChecked(True)
    run(review, "classify")
    names = layers_named()
    assert sorted(n for n in names if n.startswith("Round")) == ["Round 1 classes", "Round 1 uncertainty"]
    assert len(QgsProject.instance().mapLayers()) == 4          # scene, samples and the round's two layers
    assert names["Round 1 classes"].width() == 384 and review.view["input"] == scene.image
    assert review.suggestion_table.rowCount() == 0
    assert os.path.isdir(tmp_path / "work" / "round_01" / "view_02")


def test_retrain_a_round_then_cancel_one(dock, tmp_path, trained_scene_model):
    review = dock.review_panel
    review.whole.setChecked(True)
    run(review, "classify")
    review.epochs.setValue(1)
    review.steps.setValue(3)
    run(review, "retrain", timeout=600)
    first, second = review.rounds
    model = tmp_path / "work" / "round_02" / "model" / "model.emd"
    assert second.number == 2 and second.model == str(model) and os.path.isfile(model)
    assert review.current is second and review.model.filePath() == str(model)
    samples = dock.samples_panel.layer()
    assert second.samples == samples.featureCount() and second.pixels > 0
    assert 0 <= second.miou <= 1 and second.metrics_on in ("validation", "training")
    assert os.path.isfile(tmp_path / "work" / "round_02" / "chips" / "map.txt")
    table = review.history_table
    assert table.rowCount() == 2 and table.item(1, 0).text() == "2"
    assert table.item(1, 1).text() == str(samples.featureCount()) and table.item(1, 3).text().startswith("0.")
    assert table.item(1, 4).text() == os.path.join("round_02", "model") and table.item(1, 0).font().bold()
    names = layers_named()
    assert "Round 2 classes" in names and "Round 2 uncertainty" in names
    assert not any(n.startswith("Round 1") for n in names)            # replaced by the new model's
    assert first.model == trained_scene_model

    # A folder someone left there is never written into: the next round takes the next free number.
    os.makedirs(tmp_path / "work" / "round_03")
    open(tmp_path / "work" / "round_03" / "keep.txt", "w").close()
    review.epochs.setValue(200)
    review.steps.setValue(200)
    review.done.clear()
    assert review.retrain()
    assert wait_for(lambda: "training" in review._stage, timeout=120), review.status.text()
    assert os.path.isdir(tmp_path / "work" / "round_04")
    time.sleep(1.0)
    review.cancel()
    assert wait_for(lambda: bool(review.done), timeout=120), review.status.text()
    assert review.done == [("retrain", False)] and "cancelled" in review.status.text()
    assert review.current is second and review.model.filePath() == str(model) and len(review.rounds) == 2
    assert not os.path.exists(tmp_path / "work" / "round_04")          # the unfinished round is gone
    assert os.listdir(tmp_path / "work" / "round_03") == ["keep.txt"]
    assert "Round 2 classes" in layers_named() and review.retrain_button.isEnabled()
    # The previous model is still usable; a double click on a round makes its model current again.
    review.whole.setChecked(False)
    run(review, "classify")
    assert review.view["round"] is second
    review.history_table.cellDoubleClicked.emit(0, 0)
    assert review.current is first and review.model.filePath() == trained_scene_model
    assert review.history_table.item(0, 0).font().bold() and not review.history_table.item(1, 0).font().bold()


def test_missing_inputs_and_a_failing_step_say_why(dock, tmp_path, scene, trained_scene_model):
    from osgeo import gdal
    review = dock.review_panel
    for model, why in ((tmp_path / "nothing.emd", "does not exist"), (tmp_path / "broken.emd", "not a model")):
        if model.name == "broken.emd":
            model.write_text("{}")
        review.model.setFilePath(str(model))
        review.done.clear()
        assert not review.classify_view() and review.done == [("classify", False)]
        assert why in review.status.text() and review.classify_button.isEnabled() and not review.rounds
    # A raster without the model's bands: the algorithm's error, no layers, the view's folder removed.
    gdal.Translate(str(tmp_path / "one_band.tif"), scene.image, bandList=[1])
    one_band = QgsRasterLayer(str(tmp_path / "one_band.tif"), "one band")
    QgsProject.instance().addMapLayer(one_band)
    dock.set_raster(one_band)
    review.model.setFilePath(trained_scene_model)
    review.done.clear()
    assert review.classify_view()
    assert wait_for(lambda: bool(review.done), timeout=60)
    assert review.done == [("classify", False)] and "classifying failed" in review.status.text()
    assert "band" in review.status.text()
    assert not any(n.startswith("Round") for n in layers_named())
    assert os.listdir(tmp_path / "work" / "round_01") == []
