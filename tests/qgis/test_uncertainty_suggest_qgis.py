"""Inside QGIS: the uncertainty raster is added with its colour ramp; Suggest Samples takes a memory sample
layer and writes its windows into a Processing sink."""
import rasterio
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)


def test_uncertainty_loaded_styled_and_suggestions_in_a_sink(deeppixel_provider, scene, trained_scene_model,
                                                             tmp_path):
    import processing
    classes, unc = str(tmp_path / "classes.tif"), str(tmp_path / "uncertainty.tif")
    r = processing.runAndLoadResults("deeppixel:classifypixels", {
        "INPUT_RASTER": scene.image, "MODEL_DEFINITION": trained_scene_model, "DEVICE": "cpu",
        "OUTPUT_RASTER": classes, "OUTPUT_UNCERTAINTY": unc, "UNCERTAINTY_MEASURE": "margin"})
    assert r["OUTPUT_UNCERTAINTY"] == unc
    layers = {lyr.source(): lyr for lyr in QgsProject.instance().mapLayers().values()}
    assert layers[classes].renderer().type() == "paletted"
    renderer = layers[unc].renderer()
    assert renderer.type() == "singlebandpseudocolor", renderer.type()
    shader = renderer.shader().rasterShaderFunction()
    assert (shader.minimumValue(), shader.maximumValue()) == (0, 1) and len(shader.colorRampItemList()) == 5
    assert layers[unc].name() == "uncertainty"
    QgsProject.instance().removeAllMapLayers()
    del layers, renderer, shader

    with rasterio.open(scene.image) as ds:
        b, crs, transform = ds.bounds, ds.crs.to_wkt(), ds.transform
    samples = QgsVectorLayer("Polygon", "drawn", "memory")       # samples drawn in QGIS, not saved to a file
    samples.setCrs(QgsCoordinateReferenceSystem.fromWkt(crs))
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(b.left, b.bottom, b.left + 200 * transform.a, b.top)))
    assert samples.dataProvider().addFeatures([feature])[0]
    r = processing.run("deeppixel:suggestsamples", {
        "INPUT_RASTER": scene.image, "INPUT_UNCERTAINTY": unc, "INPUT_SAMPLES": samples,
        "NUMBER_OF_SUGGESTIONS": 6, "WINDOW_SIZE": 24, "SEED": 4, "OUTPUT": "TEMPORARY_OUTPUT"})
    out = r["OUTPUT"]
    assert r["SUGGESTIONS"] == 6 and out.featureCount() == 6
    assert [f.name() for f in out.fields()] == ["rank", "mean_uncertainty", "class_mix"]
    assert out.crs().authid() == "EPSG:32633"
    features = sorted(out.getFeatures(), key=lambda f: f["rank"])
    assert [f["rank"] for f in features] == list(range(1, 7)) and "%" in features[0]["class_mix"]
    for f in features:
        box = f.geometry().boundingBox()
        assert box.xMinimum() >= b.left + 201 * transform.a - 1e-6      # right of the drawn samples, not touching
        assert abs(box.width() - 24 * transform.a) < 1e-6
