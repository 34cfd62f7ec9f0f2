"""Writes models/deep_pixel_workflow.model3: Export -> Train -> Classify -> Compute Accuracy.

The model is built with the Processing model API (not written by hand), so the connections are
checked against the real algorithms' parameters. Run it after changing an algorithm's parameters:

    .venv/bin/python scripts/build_workflow_model.py [OUTPUT.model3]
"""
import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Another path as the first argument writes the model there (the tests compare it with the shipped one).
TARGET = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "models", "deep_pixel_workflow.model3")
sys.path.insert(0, ROOT)          # qgis_compat (the plugin root's module for QGIS 3/4 names)

from qgis.core import (QgsApplication, QgsProcessingModelAlgorithm,  # noqa: E402
                       QgsProcessingModelChildAlgorithm, QgsProcessingModelChildParameterSource as Source,
                       QgsProcessingModelOutput, QgsProcessingModelParameter, QgsProcessingParameterFeatureSource,
                       QgsProcessingParameterField, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer)
from qgis.PyQt.QtCore import QPointF  # noqa: E402
from qgis_compat import number_type, source_type  # noqa: E402  (the plugin root is on sys.path)

# (model input name, definition) in the order the dialog shows them.
INPUTS = (
    ("INPUT_RASTER", lambda: QgsProcessingParameterRasterLayer("INPUT_RASTER", "Image to classify and train on")),
    ("TRAINING_SAMPLES", lambda: QgsProcessingParameterFeatureSource(
        "TRAINING_SAMPLES", "Training polygons", [source_type("polygon")])),
    ("CLASS_FIELD", lambda: QgsProcessingParameterField(
        "CLASS_FIELD", "Class field of the training polygons", parentLayerParameterName="TRAINING_SAMPLES")),
    ("REFERENCE", lambda: QgsProcessingParameterFeatureSource(
        "REFERENCE", "Reference polygons for the accuracy (held out from training)",
        [source_type("polygon")])),
    ("REFERENCE_CLASS_FIELD", lambda: QgsProcessingParameterField(
        "REFERENCE_CLASS_FIELD", "Class field of the reference polygons", parentLayerParameterName="REFERENCE")),
    ("TILE_SIZE", lambda: QgsProcessingParameterNumber(
        "TILE_SIZE", "Chip size (pixels)", number_type("int"), defaultValue=64, minValue=32)),
    ("MAX_EPOCHS", lambda: QgsProcessingParameterNumber(
        "MAX_EPOCHS", "Maximum epochs (empty: until learning stops, within Train Model's time limit)",
        number_type("int"), defaultValue=None, optional=True, minValue=1)),
)


def child(model, child_id, alg_id, description, sources, outputs=()):
    c = QgsProcessingModelChildAlgorithm(alg_id)
    c.setChildId(child_id)
    c.setDescription(description)
    for name, source in sources.items():
        c.addParameterSources(name, [source])
    # Like the modeler dialog: every other input keeps the algorithm's default as a static value.
    alg = QgsApplication.processingRegistry().algorithmById(alg_id)
    if alg is None:
        raise SystemExit(f"Algorithm {alg_id} is not available: is the plugin complete?")
    for definition in alg.parameterDefinitions():
        if definition.name() in sources or definition.isDestination():
            continue
        if definition.defaultValue() is not None:
            c.addParameterSources(definition.name(), [Source.fromStaticValue(definition.defaultValue())])
    model_outputs = {}
    for out_name, child_output, label in outputs:
        out = QgsProcessingModelOutput(out_name, label)
        out.setChildId(child_id)
        out.setChildOutputName(child_output)
        model_outputs[out_name] = out
    c.setModelOutputs(model_outputs)
    model.addChildAlgorithm(c)
    return c


def build() -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm("Deep Pixel workflow", "Deep Pixel")
    model.setHelpContent({"ALG_DESC": (
        "Export Training Data, Train Model, Classify Pixels and Compute Accuracy in one run: chips from the "
        "training polygons, a U-Net trained on them, the image classified with it, and the classification "
        "scored against reference polygons kept apart from training.")})
    for y, (name, make) in enumerate(INPUTS):
        param = QgsProcessingModelParameter(name)
        param.setPosition(QPointF(40, 60 + 70 * y))
        model.addModelParameter(make(), param)
    p = Source.fromModelParameter
    out = Source.fromChildOutput
    child(model, "export", "deeppixel:exporttrainingdata", "Export Training Data", {
        "INPUT_RASTER": p("INPUT_RASTER"), "INPUT_SAMPLES": p("TRAINING_SAMPLES"), "CLASS_FIELD": p("CLASS_FIELD"),
        "TILE_SIZE_X": p("TILE_SIZE"), "TILE_SIZE_Y": p("TILE_SIZE")})
    child(model, "train", "deeppixel:trainmodel", "Train Model", {
        "INPUT_TRAINING_DATA": out("export", "OUTPUT_FOLDER"), "MAX_EPOCHS": p("MAX_EPOCHS")},
        [("model_folder", "OUTPUT_MODEL", "Trained model folder")])
    child(model, "classify", "deeppixel:classifypixels", "Classify Pixels", {
        "INPUT_RASTER": p("INPUT_RASTER"), "MODEL_DEFINITION": out("train", "MODEL_DEFINITION")},
        [("classified", "OUTPUT_RASTER", "Classified raster")])
    child(model, "accuracy", "deeppixel:computeaccuracy", "Compute Accuracy", {
        "INPUT_CLASSIFIED": out("classify", "OUTPUT_RASTER"), "REFERENCE": p("REFERENCE"),
        "CLASS_FIELD": p("REFERENCE_CLASS_FIELD")},
        [("accuracy_report", "OUTPUT_REPORT", "Accuracy report (HTML)")])
    for i, child_id in enumerate(("export", "train", "classify", "accuracy")):
        c = model.childAlgorithm(child_id)
        c.setPosition(QPointF(320 + 230 * i, 120 + 90 * i))
        model.setChildAlgorithm(c)
    model.updateDestinationParameters()
    return model


def main():
    app = QgsApplication([], False)
    app.initQgis()
    plugins = os.path.join(ROOT, ".qgis", "plugins")
    os.makedirs(plugins, exist_ok=True)
    if not os.path.islink(os.path.join(plugins, "deeppixel")):
        os.symlink(ROOT, os.path.join(plugins, "deeppixel"))
    sys.path.insert(0, plugins)
    from deeppixel.processing_provider.provider import DeepPixelProvider
    provider = DeepPixelProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    model = build()
    ok, errors = model.validate()
    if not ok:
        raise SystemExit("The model does not validate:\n" + "\n".join(errors))
    os.makedirs(os.path.dirname(TARGET), exist_ok=True)
    if not model.toFile(TARGET):
        raise SystemExit(f"Could not write {TARGET}")
    print(f"Wrote {TARGET}")


if __name__ == "__main__":
    main()
