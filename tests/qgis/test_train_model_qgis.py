"""Train Model through QGIS Processing (pytest-qgis): direct run, and chained after the export in a model."""
import json
import os

import pytest
from qgis.core import QgsProcessingException

from deep_pixel.model.package import load_package

TINY = "chip_size=32, steps_per_epoch=3"


def test_export_then_train_in_a_processing_model(deeppixel_provider, scene, tmp_path):
    """A Processing model: the export's OUTPUT_FOLDER feeds INPUT_TRAINING_DATA (as in the modeler)."""
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
    )
    model = QgsProcessingModelAlgorithm("export_and_train", "tests", "tests")
    export = QgsProcessingModelChildAlgorithm("deeppixel:exporttrainingdata")
    export.setChildId("export")
    for key, value in (("INPUT_RASTER", scene.image), ("INPUT_SAMPLES", scene.samples), ("TILE_SIZE_X", 64),
                       ("TILE_SIZE_Y", 64), ("STRIDE_X", 64), ("STRIDE_Y", 64),
                       ("OUTPUT_FOLDER", str(tmp_path / "chips"))):
        export.addParameterSources(key, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    model.addChildAlgorithm(export)
    train = QgsProcessingModelChildAlgorithm("deeppixel:trainmodel")
    train.setChildId("train")
    train.addParameterSources("INPUT_TRAINING_DATA", [
        QgsProcessingModelChildParameterSource.fromChildOutput("export", "OUTPUT_FOLDER")])
    for key, value in (("MAX_EPOCHS", 1), ("BACKBONE", "resnet18"), ("BATCH_SIZE", 2), ("LEARNING_RATE", 0.002),
                       ("MODEL_ARGUMENTS", TINY), ("DEVICE", "cpu"), ("OUTPUT_MODEL", str(tmp_path / "model"))):
        train.addParameterSources(key, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    out = QgsProcessingModelOutput("model_definition")
    out.setChildOutputName("MODEL_DEFINITION")
    train.setModelOutputs({"model_definition": out})
    model.addChildAlgorithm(train)
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    results, ok = model.run({}, context, feedback)
    assert ok
    assert os.path.isfile(tmp_path / "model" / "model.emd")
    pkg = load_package(str(tmp_path / "model" / "model.emd"))
    assert pkg.backbone == "resnet18" and pkg.num_classes == 5
    # Fine-tuning with MODEL_TYPE/BACKBONE left out takes the package's network (resnet18, not the default)
    import processing
    tuned = processing.run("deeppixel:trainmodel", {
        "INPUT_TRAINING_DATA": str(tmp_path / "chips"), "PRETRAINED_MODEL": str(tmp_path / "model" / "model.emd"),
        "MAX_EPOCHS": 1, "BATCH_SIZE": 2, "LEARNING_RATE": 0.002, "MODEL_ARGUMENTS": TINY, "DEVICE": "cpu",
        "OUTPUT_MODEL": str(tmp_path / "tuned")})
    assert load_package(tuned["MODEL_DEFINITION"]).backbone == "resnet18"


def test_processing_run_trainmodel(deeppixel_provider, scene, tmp_path):
    import processing

    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.vector import read_vector
    vec = read_vector(scene.samples)
    samples = Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]], vec.crs_wkt)
    for name in ("a", "b"):
        export_training_data(scene.image, samples, str(tmp_path / name),
                             ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=64, stride_y=64))
    result = processing.run("deeppixel:trainmodel", {
        "INPUT_TRAINING_DATA": str(tmp_path / "a"), "ADDITIONAL_TRAINING_DATA": str(tmp_path / "b"),
        "MAX_EPOCHS": 2, "MODEL_TYPE": "UNET", "BACKBONE": "resnet18", "BATCH_SIZE": 2, "LEARNING_RATE": 0.002,
        "MONITOR": "miou", "AUGMENTATION": "custom", "MODEL_ARGUMENTS": TINY + ", augmentations=hflip+rot90",
        "DEVICE": "cpu", "OUTPUT_MODEL": str(tmp_path / "trained")})
    assert result["OUTPUT_MODEL"] == str(tmp_path / "trained")
    assert result["MODEL_DEFINITION"] == str(tmp_path / "trained" / "trained.emd")
    assert 1 <= result["BEST_EPOCH"] <= 2 and 0 <= result["ACCURACY"] <= 1
    emd = json.load(open(result["MODEL_DEFINITION"]))
    assert len(emd["Training"]["training_folders"]) == 2
    assert emd["Training"]["monitor"] == "miou"


def test_bad_parameters_are_processing_errors(deeppixel_provider, tmp_path):
    import processing
    (tmp_path / "chips").mkdir()
    with pytest.raises(QgsProcessingException, match="is empty"):
        processing.run("deeppixel:trainmodel", {"INPUT_TRAINING_DATA": str(tmp_path / "chips"),
                                                "OUTPUT_MODEL": str(tmp_path / "m")})
    with pytest.raises(QgsProcessingException, match="unknown key"):
        processing.run("deeppixel:trainmodel", {"INPUT_TRAINING_DATA": str(tmp_path / "chips"),
                                                "MODEL_ARGUMENTS": "x=1", "OUTPUT_MODEL": str(tmp_path / "m")})
    with pytest.raises(QgsProcessingException, match="OUTPUT_MODEL .* lies inside the input folder"):
        processing.run("deeppixel:trainmodel", {"INPUT_TRAINING_DATA": str(tmp_path),
                                                "OUTPUT_MODEL": str(tmp_path / "m")})
    assert not os.path.exists(tmp_path / "m")
