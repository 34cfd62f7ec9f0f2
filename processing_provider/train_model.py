"""Processing algorithm ``deeppixel:trainmodel``."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from ..deep_pixel.train.options import MODEL_ARGUMENTS, TrainOptions
from .base import DeepPixelAlgorithm
from .engine_runner import run_engine_options
from .param_builder import add_declared, read_declared

HELP = """Trains a segmentation network on chips written by Export Training Data (or by another tool in the "Classified Tiles" layout) and writes a self-describing model folder: &lt;name&gt;.emd, &lt;name&gt;.pth, &lt;name&gt;.dlpk, model_metrics.html and training_log.json. Classify Pixels takes the .emd.

<b>Training data</b>: a chips folder; more folders (same bands) in <i>Additional training data</i>, separated by ';'.
<b>Unlabelled pixels</b> (value 0) are ignored by the loss and the metrics. Validation chips are spatially apart from training chips; the best epoch is kept.
<b>Learning rate</b>: empty = found with a learning-rate range test.
<b>Pretrained model</b>: a model of ours (.emd/.dlpk) to fine-tune (its architecture, backbone and normalisation are used; leave MODEL_TYPE and BACKBONE out, or set them to the model's), or an encoder weights file (.pth).
<b>On CPU</b> the U-Net family uses a light decoder (encoder depth 4, decoder 64-32-16-16: about 6x faster) unless MODEL_ARGUMENTS say otherwise (decoder=default). Training examples are 64 px random crops of the chips on CPU and CUDA (chip_size=N for others).
<b>Model arguments</b> (key=value, comma-separated): """ + "; ".join(f"<i>{k}</i>: {v[2]}" for k, v in MODEL_ARGUMENTS.items()) + "."


class TrainModelAlgorithm(DeepPixelAlgorithm):
    NAME = "trainmodel"
    DISPLAY = "Train Model"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            "INPUT_TRAINING_DATA", "Training data (chips folder)", behavior=QgsProcessingParameterFile.Behavior.Folder))
        self.addParameter(QgsProcessingParameterString(
            "ADDITIONAL_TRAINING_DATA", "Additional training data folders (separated by ';')", optional=True))
        add_declared(self, TrainOptions)
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_MODEL", "Output model folder"))
        self.addOutput(QgsProcessingOutputFile("MODEL_DEFINITION", "Model definition (.emd)"))
        self.addOutput(QgsProcessingOutputNumber("BEST_EPOCH", "Best epoch"))
        self.addOutput(QgsProcessingOutputNumber("ACCURACY", "Overall accuracy (validation)"))
        self.addOutput(QgsProcessingOutputNumber("MIOU", "Mean IoU (validation)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        folders = [self.parameterAsFile(parameters, "INPUT_TRAINING_DATA", context)]
        extra = self.parameterAsString(parameters, "ADDITIONAL_TRAINING_DATA", context) or ""
        folders += [f.strip() for f in extra.split(";") if f.strip()]
        options = read_declared(self, TrainOptions, parameters, context, feedback)
        r = run_engine_options("train", {"input_training_data": folders, "output_model": self.parameterAsString(
            parameters, "OUTPUT_MODEL", context)}, options, feedback)
        return {"OUTPUT_MODEL": r["output_model"], "MODEL_DEFINITION": r["model_definition"],
                "BEST_EPOCH": r["best_epoch"], "ACCURACY": r["accuracy"], "MIOU": r["miou"]}
