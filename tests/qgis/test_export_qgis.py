"""Export Training Data through QGIS Processing, with real layers (pytest-qgis)."""
import json
import os

import pytest
from qgis.core import QgsFeatureRequest, QgsProcessingException, QgsRasterLayer, QgsVectorLayer


def test_export_from_layers(deeppixel_provider, landsat, tmp_path):
    import processing
    raster = QgsRasterLayer(landsat["image"], "landsat")
    samples = QgsVectorLayer(landsat["samples"], "samples", "ogr")
    assert raster.isValid() and samples.isValid()
    out = tmp_path / "chips"
    result = processing.run("deeppixel:exporttrainingdata", {
        "INPUT_RASTER": raster, "INPUT_SAMPLES": samples, "CLASS_FIELD": "class",
        "TILE_SIZE_X": 64, "TILE_SIZE_Y": 64, "STRIDE_X": 64, "STRIDE_Y": 64,
        "IMAGE_FORMAT": "TIFF", "OUTPUT_FOLDER": str(out)})
    assert result["OUTPUT_FOLDER"] == str(out) and result["NUM_CHIPS"] > 0
    meta = json.load(open(out / "deep_pixel_export.json"))
    assert meta["class_mapping"]["forest"] == 2
    assert sum(meta["labelled_pixels_per_class"].values()) == 718
    assert len(open(out / "map.txt").read().splitlines()) == result["NUM_CHIPS"]


def test_export_memory_layer_integer_field_and_schema(deeppixel_provider, scene, tmp_path):
    """A memory layer (not a file) with an integer Classvalue field, and a schema file."""
    import processing
    source = QgsVectorLayer(scene.samples, "samples", "ogr")
    memory = source.materialize(QgsFeatureRequest())
    assert memory.providerType() == "memory"
    scene.schema.save(str(tmp_path / "schema.json"))
    out = tmp_path / "chips"
    result = processing.run("deeppixel:exporttrainingdata", {
        "INPUT_RASTER": scene.image, "INPUT_SAMPLES": memory, "CLASS_SCHEMA": str(tmp_path / "schema.json"),
        "TILE_SIZE_X": 128, "TILE_SIZE_Y": 128, "STRIDE_X": 128, "STRIDE_Y": 128, "OUTPUT_FOLDER": str(out)})
    emd = json.load(open(out / "esri_model_definition.emd"))
    assert [c["Name"] for c in emd["Classes"]] == [c.name for c in scene.schema]
    assert result["NUM_CHIPS"] > 0


def test_export_error_is_a_processing_error(deeppixel_provider, landsat, tmp_path):
    import processing
    with pytest.raises(QgsProcessingException, match="IMAGE_FORMAT=TIFF"):
        processing.run("deeppixel:exporttrainingdata", {
            "INPUT_RASTER": landsat["image"], "INPUT_SAMPLES": landsat["samples"],
            "IMAGE_FORMAT": "PNG", "TILE_SIZE_X": 64, "TILE_SIZE_Y": 64, "OUTPUT_FOLDER": str(tmp_path / "c")})
    assert not os.path.exists(tmp_path / "c")


def test_vector_inputs_are_resolved_in_the_main_thread(deeppixel_provider, landsat, tmp_path):
    """A path equal to a project layer's source resolves to that layer: prepareAlgorithm (the main thread)
    finds its file, so processAlgorithm, in a background task's thread, never touches the project's layer
    (a dock export in the background crashed QGIS with a segmentation fault)."""
    import threading

    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsProject

    from deeppixel.processing_provider.layers import vector_file
    samples = QgsVectorLayer(landsat["samples"], "samples", "ogr")
    QgsProject.instance().addMapLayer(samples)
    try:
        alg = QgsApplication.processingRegistry().createAlgorithmById("deeppixel:exporttrainingdata")
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        context.setProject(QgsProject.instance())
        params = {"INPUT_RASTER": landsat["image"], "INPUT_SAMPLES": samples.source(), "CLASS_FIELD": "class",
                  "OUTPUT_FOLDER": str(tmp_path / "chips")}
        assert alg.prepareAlgorithm(params, context, feedback)
        found = []
        worker = threading.Thread(target=lambda: found.append(vector_file(alg, params, "INPUT_SAMPLES", None, None)))
        worker.start()
        worker.join()
        assert found and os.path.samefile(found[0][0], landsat["samples"])     # no context needed: nothing resolved there
    finally:
        QgsProject.instance().removeMapLayer(samples.id())
