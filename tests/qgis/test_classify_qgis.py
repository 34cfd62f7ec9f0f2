"""Classify Pixels through QGIS Processing (pytest-qgis): defaults, modeler styling, masks, cancel."""
import os

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)

from deep_pixel.classify.options import ClassifyOptions

PARAMETERS = ("INPUT_RASTER", "MODEL_DEFINITION", "OUTPUT_RASTER", "TILE_SIZE", "PADDING", "BATCH_SIZE",
              "PREDICT_BACKGROUND", "TEST_TIME_AUGMENTATION", "MASK_POLYGONS", "OUTPUT_CONFIDENCE", "DEVICE")


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(1)


def test_parameters_and_their_defaults_come_from_the_engine(deeppixel_provider):
    alg = QgsApplication.processingRegistry().algorithmById("deeppixel:classifypixels")
    assert alg is not None
    names = [p.name() for p in alg.parameterDefinitions()]
    assert set(PARAMETERS) <= set(names), set(PARAMETERS) - set(names)
    d = ClassifyOptions()
    assert alg.parameterDefinition("TILE_SIZE").defaultValue() == d.tile_size
    assert alg.parameterDefinition("BATCH_SIZE").defaultValue() == d.batch_size
    assert alg.parameterDefinition("PREDICT_BACKGROUND").defaultValue() == d.predict_background
    assert alg.parameterDefinition("TEST_TIME_AUGMENTATION").defaultValue() == d.test_time_augmentation
    assert alg.parameterDefinition("DEVICE").defaultValue() == d.device
    for optional in ("PADDING", "MASK_POLYGONS", "OUTPUT_CONFIDENCE"):
        assert alg.parameterDefinition(optional).flags() & alg.parameterDefinition(optional).FlagOptional


def _classify_only_model():
    """A graphical-modeler model built with the Processing model API: one Classify Pixels step."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFile,
        QgsProcessingParameterRasterLayer,
    )
    model = QgsProcessingModelAlgorithm("classify only", "tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("raster", "raster"),
                            QgsProcessingModelParameter("raster"))
    model.addModelParameter(QgsProcessingParameterFile("model", "model"), QgsProcessingModelParameter("model"))
    child = QgsProcessingModelChildAlgorithm("deeppixel:classifypixels")
    child.setChildId("classify")
    child.addParameterSources("INPUT_RASTER", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")])
    child.addParameterSources("MODEL_DEFINITION",
                              [QgsProcessingModelChildParameterSource.fromModelParameter("model")])
    child.addParameterSources("DEVICE", [QgsProcessingModelChildParameterSource.fromStaticValue("cpu")])
    out = QgsProcessingModelOutput("classes")
    out.setChildOutputName("OUTPUT_RASTER")
    out.setChildId("classify")
    child.setModelOutputs({"classes": out})
    model.addChildAlgorithm(child)
    return model


def test_modeler_output_is_loaded_with_the_model_classes(deeppixel_provider, scene, trained_scene_model, tmp_path):
    """Run as a step of a model, the loaded output still gets the paletted renderer (the post-processor)."""
    import processing
    model = _classify_only_model()
    out = str(tmp_path / "modeled.tif")
    results = processing.runAndLoadResults(model, {"raster": scene.image, "model": trained_scene_model,
                                                   "classify:classes": out})
    assert results["classify:classes"] == out and os.path.isfile(out)
    layers = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == out]
    assert layers, "the model's output was not added to the project"
    renderer = layers[0].renderer()
    assert renderer.type() == "paletted"
    assert [(c.value, c.label) for c in renderer.classes()][:2] == [(1, "1 water"), (2, "2 forest")]
    assert len(renderer.classes()) == 5
    QgsProject.instance().removeAllMapLayers()
    del layers, renderer


def test_memory_layer_mask_and_confidence(deeppixel_provider, scene, trained_scene_model, tmp_path):
    """A mask drawn in QGIS (memory layer, not a file): only pixels inside are classified."""
    import processing
    with rasterio.open(scene.image) as ds:
        b = ds.bounds
        crs = ds.crs.to_wkt()
        transform = ds.transform
    mask = QgsVectorLayer("Polygon", "mask", "memory")
    from qgis.core import QgsCoordinateReferenceSystem
    mask.setCrs(QgsCoordinateReferenceSystem.fromWkt(crs))
    feature = QgsFeature()
    # The left half of the raster, whole rows: pixel columns [0, width / 2)
    half = b.left + (b.right - b.left) / 2
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(b.left - 10, b.bottom - 10, half, b.top + 10)))
    assert mask.dataProvider().addFeatures([feature])[0]
    out, conf = str(tmp_path / "masked.tif"), str(tmp_path / "confidence.tif")
    r = processing.run("deeppixel:classifypixels", {
        "INPUT_RASTER": scene.image, "MODEL_DEFINITION": trained_scene_model, "DEVICE": "cpu", "BATCH_SIZE": 2,
        "MASK_POLYGONS": mask, "OUTPUT_RASTER": out, "OUTPUT_CONFIDENCE": conf})
    assert r["OUTPUT_RASTER"] == out and r["OUTPUT_CONFIDENCE"] == conf and r["TILES"] >= 1
    classes, confidence = read(out), read(conf)
    col = int(round((half - transform.c) / transform.a))
    assert (classes[:, :col - 1] > 0).all() and (classes[:, col + 1:] == 0).all()
    assert (confidence[classes > 0] > 0).all() and (confidence[classes == 0] == -1).all()


def test_cancel_from_qgis_leaves_no_output(deeppixel_provider, scene, trained_scene_model, tmp_path):
    """The user presses Cancel once tiles are being classified: an error, and nothing on disk."""
    import processing
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 0 else None)
    out = str(tmp_path / "cancelled.tif")
    with pytest.raises(QgsProcessingException):
        processing.run("deeppixel:classifypixels", {
            "INPUT_RASTER": scene.image, "MODEL_DEFINITION": trained_scene_model, "DEVICE": "cpu",
            "TILE_SIZE": 64, "PADDING": 8, "BATCH_SIZE": 1, "OUTPUT_RASTER": out},
            feedback=feedback, context=QgsProcessingContext())
    assert feedback.isCanceled()
    assert os.listdir(tmp_path) == []


def _with_background_class(emd_path, folder):
    """A copy of a real package whose class 1 is renamed "background" (weights untouched, hash still valid)."""
    import json
    import shutil
    with open(emd_path) as f:
        emd = json.load(f)
    for name in os.listdir(os.path.dirname(emd_path)):
        if not name.endswith((".emd", ".dlpk")):
            shutil.copy(os.path.join(os.path.dirname(emd_path), name), folder / name)
    emd["Classes"][0]["Name"] = "background"
    path = folder / os.path.basename(emd_path)
    path.write_text(json.dumps(emd))
    return str(path)


def test_predict_background_off_leaves_out_the_background_class(deeppixel_provider, scene, trained_scene_model,
                                                                 tmp_path):
    """A model whose class 1 is named "background": with PREDICT_BACKGROUND off no pixel gets it."""
    import processing

    from deep_pixel.model.package import load_package
    emd = _with_background_class(trained_scene_model, tmp_path)
    assert load_package(emd).schema.classes[0].name == "background"
    on, off = str(tmp_path / "on.tif"), str(tmp_path / "off.tif")
    common = {"INPUT_RASTER": scene.image, "MODEL_DEFINITION": emd, "DEVICE": "cpu"}
    processing.run("deeppixel:classifypixels", dict(common, OUTPUT_RASTER=on))
    processing.run("deeppixel:classifypixels", dict(common, OUTPUT_RASTER=off, PREDICT_BACKGROUND=False))
    a, b = read(on), read(off)
    assert (a == 1).mean() > 0.05 and not (b == 1).any() and (b > 0).all()
    assert np.array_equal(a[a > 1], b[a > 1])      # other pixels keep their class


def test_a_folder_of_images_gives_one_styled_layer_per_image(deeppixel_provider, scene, trained_scene_model,
                                                             tmp_path):
    import processing
    from rasterio.windows import Window
    folder = tmp_path / "images"
    folder.mkdir()
    with rasterio.open(scene.image) as ds:
        for name, window in (("north", Window(0, 0, 384, 160)), ("south", Window(0, 200, 200, 184))):
            profile = ds.profile.copy()
            profile.update(width=window.width, height=window.height, transform=ds.window_transform(window))
            with rasterio.open(folder / f"{name}.tif", "w", **profile) as out:
                out.write(ds.read(window=window))
    results = processing.runAndLoadResults("deeppixel:classifypixels", {
        "INPUT_RASTER": str(folder), "MODEL_DEFINITION": trained_scene_model, "DEVICE": "cpu",
        "OUTPUT_RASTER": str(tmp_path / "classes.tif"), "OUTPUT_CONFIDENCE": str(tmp_path / "confidence.tif")})
    expected = [str(tmp_path / "classes" / "north_classified.tif"), str(tmp_path / "classes" / "south_classified.tif")]
    assert results["OUTPUT_RASTER"] == str(tmp_path / "classes") and results["OUTPUT_RASTERS"] == expected
    assert read(expected[1]).shape == (184, 200) and read(expected[1]).all()
    layers = {lyr.source(): lyr for lyr in QgsProject.instance().mapLayers().values()}
    for path in expected:
        assert path in layers, f"{path} was not added to the project"
        assert layers[path].renderer().type() == "paletted" and len(layers[path].renderer().classes()) == 5
    assert str(tmp_path / "classes.tif") not in layers and str(tmp_path / "confidence.tif") not in layers
    confidence = str(tmp_path / "classes" / "south_confidence.tif")
    assert results["OUTPUT_CONFIDENCE"] == str(tmp_path / "classes") and confidence in layers
    assert layers[confidence].renderer().type() != "paletted" and read(confidence).max() <= 1.0001
    QgsProject.instance().removeAllMapLayers()
    del layers
