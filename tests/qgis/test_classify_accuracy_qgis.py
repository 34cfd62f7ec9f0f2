"""Classify Pixels and Compute Accuracy through QGIS Processing (pytest-qgis): styled layers, metrics."""
import os

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer
from rasterio.features import rasterize
from sklearn.metrics import accuracy_score, cohen_kappa_score, jaccard_score


def test_classify_loads_a_paletted_layer_with_the_model_classes(deeppixel_provider, scene, trained_scene_model,
                                                                tmp_path):
    import processing
    out = str(tmp_path / "landcover.tif")
    result = processing.runAndLoadResults("deeppixel:classifypixels", {
        "INPUT_RASTER": scene.image, "MODEL_DEFINITION": trained_scene_model, "DEVICE": "cpu",
        "OUTPUT_RASTER": out, "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif")})
    assert result["OUTPUT_RASTER"] == out and os.path.isfile(tmp_path / "confidence.tif")
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == out]
    assert layers, "the classified raster was not added to the project"
    renderer = layers[0].renderer()
    assert renderer.type() == "paletted"
    labels = {c.value: c.label for c in renderer.classes()}
    assert labels[1] == "1 water" and labels[5] == "5 built-up"
    assert {c.value: c.color.name() for c in renderer.classes()}[2] == "#146e28"   # forest (20, 110, 40)
    # Opened later from the file alone (e.g. after qgis_process), QGIS reads the .qml beside it
    again = QgsRasterLayer(out, "again", "gdal")
    assert again.renderer().type() == "paletted" and len(again.renderer().classes()) == 5
    QgsProject.instance().removeAllMapLayers()


def test_classify_bad_model_is_a_processing_error(deeppixel_provider, scene, tmp_path):
    import processing
    bad = tmp_path / "bad.emd"
    bad.write_text("{not json")
    with pytest.raises(QgsProcessingException, match="not valid JSON"):
        processing.run("deeppixel:classifypixels", {"INPUT_RASTER": scene.image, "MODEL_DEFINITION": str(bad),
                                                    "OUTPUT_RASTER": str(tmp_path / "x.tif")})
    assert not os.path.exists(tmp_path / "x.tif")


def _independent_reference(scene):
    """The polygons burned with rasterio directly (not with the code under test)."""
    import osgeo.ogr as ogr
    ds = ogr.Open(scene.samples)
    layer = ds.GetLayer(0)
    shapes = [(f.GetGeometryRef().ExportToJson(), int(f.GetField("Classvalue"))) for f in layer]
    import json
    with rasterio.open(scene.image) as img:
        return rasterize([(json.loads(g), v) for g, v in shapes], out_shape=img.shape, transform=img.transform)


def test_compute_accuracy_matches_scikit_learn(deeppixel_provider, scene, trained_scene_model, tmp_path):
    import processing
    classified = str(tmp_path / "c.tif")
    processing.run("deeppixel:classifypixels", {"INPUT_RASTER": scene.image, "MODEL_DEFINITION": trained_scene_model,
                                                "DEVICE": "cpu", "OUTPUT_RASTER": classified})
    table = str(tmp_path / "per_class.gpkg")
    r = processing.run("deeppixel:computeaccuracy", {
        "INPUT_CLASSIFIED": classified, "REFERENCE": scene.samples, "CLASS_FIELD": "Classvalue",
        "OUTPUT_REPORT": str(tmp_path / "acc.html"), "OUTPUT_TABLE": table})
    ref = _independent_reference(scene)
    with rasterio.open(classified) as ds:
        pred = ds.read(1)
    keep = ref > 0
    assert r["OVERALL_ACCURACY"] == pytest.approx(accuracy_score(ref[keep], pred[keep]), abs=1e-5)
    assert r["KAPPA"] == pytest.approx(cohen_kappa_score(ref[keep], pred[keep]), abs=1e-5)
    assert r["MEAN_IOU"] == pytest.approx(jaccard_score(ref[keep], pred[keep], average="macro"), abs=1e-5)
    html = open(r["OUTPUT_REPORT"]).read()
    assert "Confusion matrix" in html and "data:image/png;base64" in html
    layer = QgsVectorLayer(r["OUTPUT_TABLE"], "t", "ogr")
    rows = {f["value"]: f for f in layer.getFeatures()}
    assert sorted(rows) == [1, 2, 3, 4, 5] and rows[1]["name"] == "water"
    assert sum(f["pixels"] for f in rows.values()) == int(keep.sum())
    del rows, layer          # QGIS objects must not outlive the QGIS application at exit

    # The same against a reference raster on another grid (2x coarser): resampled and reported
    coarse = str(tmp_path / "coarse_ref.tif")
    with rasterio.open(scene.truth) as ds:
        profile = ds.profile.copy()
        data = ds.read(1)[::2, ::2]
        profile.update(width=data.shape[1], height=data.shape[0], transform=ds.transform * ds.transform.scale(2, 2))
    with rasterio.open(coarse, "w", **profile) as out:
        out.write(data[None])
    r2 = processing.run("deeppixel:computeaccuracy", {"INPUT_CLASSIFIED": classified, "REFERENCE_RASTER": coarse,
                                                      "OUTPUT_REPORT": str(tmp_path / "acc2.html")})
    assert 0.8 < r2["OVERALL_ACCURACY"] <= 1
    assert "resampled onto the classified raster" in open(r2["OUTPUT_REPORT"]).read()
    with pytest.raises(QgsProcessingException, match="exactly one reference"):
        processing.run("deeppixel:computeaccuracy", {"INPUT_CLASSIFIED": classified,
                                                     "OUTPUT_REPORT": str(tmp_path / "acc3.html")})
    assert np.isfinite(r2["KAPPA"])


def test_workflow_model_output_is_styled_when_loaded(deeppixel_provider, tmp_path):
    """The shipped .model3 run from Processing with its outputs loaded: the classified layer is paletted."""
    import processing
    from conftest import ROOT
    from qgis.core import QgsProcessingModelAlgorithm

    from deep_pixel.io.synthetic import make_scene
    model_file = os.path.join(ROOT, "models", "deep_pixel_workflow.model3")
    scene = make_scene(str(tmp_path / "scene"), width=192, height=192, seed=13, train_fraction=0.6)
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(model_file)
    out = str(tmp_path / "classes.tif")
    results = processing.runAndLoadResults(model, {
        "INPUT_RASTER": scene.image, "TRAINING_SAMPLES": scene.samples, "CLASS_FIELD": "Classvalue",
        "REFERENCE": scene.samples, "REFERENCE_CLASS_FIELD": "Classvalue", "TILE_SIZE": 64, "MAX_EPOCHS": 1,
        "train:model_folder": str(tmp_path / "model"), "classify:classified": out,
        "accuracy:accuracy_report": str(tmp_path / "acc.html")})
    assert os.path.isfile(results["classify:classified"])
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == out]
    assert layers and layers[0].renderer().type() == "paletted"
    assert [c.label for c in layers[0].renderer().classes()][0] == "1 water"
    QgsProject.instance().removeAllMapLayers()
    del layers
