"""Processing algorithm ``deeppixel:trainmodel``."""
from __future__ import annotations

from qgis.core import (QgsProcessingOutputFile, QgsProcessingOutputNumber, QgsProcessingParameterBoolean,
                       QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFolderDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterString)

from ..deep_pixel.device import DEVICES_HELP
from ..deep_pixel.models import ARCHITECTURES, BACKBONES
from ..deep_pixel.train_options import AUGMENTATIONS, MODEL_ARGUMENTS, MONITORS, TrainOptions
from .base import DeepPixelAlgorithm
from .engine_runner import run_engine
from .layers import option
from ..qgis_compat import number_type

HELP = """Trains a segmentation network on chips written by Export Training Data (or by another tool in the "Classified Tiles" layout) and writes a self-describing model folder: &lt;name&gt;.emd, &lt;name&gt;.pth, &lt;name&gt;.dlpk, model_metrics.html and training_log.json. Classify Pixels takes the .emd.

<b>Training data</b>: a chips folder; more folders (same bands) in <i>Additional training data</i>, separated by ';'.
<b>Unlabelled pixels</b> (value 0) are ignored by the loss and the metrics. Validation chips are spatially apart from training chips; the best epoch is kept.
<b>Learning rate</b>: empty = found with a learning-rate range test.
<b>Pretrained model</b>: a model of ours (.emd/.dlpk) to fine-tune (its architecture, backbone and normalisation are used; leave MODEL_TYPE and BACKBONE out, or set them to the model's), or an encoder weights file (.pth).
<b>On CPU</b> the U-Net family uses a light decoder (encoder depth 4, decoder 64-32-16-16: about 6x faster) and 64 px random crops unless MODEL_ARGUMENTS say otherwise (decoder=default, chip_size=N).
<b>Model arguments</b> (key=value, comma-separated): """ + "; ".join(f"<i>{k}</i>: {v[2]}" for k, v in MODEL_ARGUMENTS.items()) + "."


class TrainModelAlgorithm(DeepPixelAlgorithm):
    NAME = "trainmodel"
    DISPLAY = "Train Model"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        d = TrainOptions()
        self.addParameter(QgsProcessingParameterFile(
            "INPUT_TRAINING_DATA", "Training data (chips folder)", behavior=QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterString(
            "ADDITIONAL_TRAINING_DATA", "Additional training data folders (separated by ';')", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MAX_EPOCHS", "Maximum epochs", number_type("int"), defaultValue=d.max_epochs, minValue=1))
        self.addParameter(QgsProcessingParameterEnum(
            "MODEL_TYPE", "Model type", options=list(ARCHITECTURES), defaultValue=d.model_type, usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum(
            "BACKBONE", "Backbone", options=list(BACKBONES), defaultValue=d.backbone, usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            "BATCH_SIZE", "Batch size", number_type("int"), defaultValue=d.batch_size, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "LEARNING_RATE", "Learning rate (empty: range test)", number_type("float"),
            optional=True, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "VALIDATION_PERCENT", "Validation chips (%; empty: 10, or none with fewer than 200 chips)",
            number_type("float"), optional=True, minValue=0, maxValue=99))
        self.addParameter(QgsProcessingParameterBoolean(
            "STOP_WHEN_NOT_IMPROVING", "Stop when the model stops improving", defaultValue=d.stop_when_not_improving))
        self.addParameter(QgsProcessingParameterEnum(
            "MONITOR", "Monitored metric", options=list(MONITORS), defaultValue=d.monitor, usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterBoolean(
            "FREEZE_BACKBONE", "Freeze backbone (with a pretrained model)", defaultValue=d.freeze_backbone))
        self.addParameter(QgsProcessingParameterFile(
            "PRETRAINED_MODEL", "Pretrained model (.emd/.dlpk to fine-tune, or encoder weights)", optional=True,
            fileFilter="Models (*.emd *.dlpk *.pth *.pt)"))
        self.addParameter(QgsProcessingParameterEnum(
            "AUGMENTATION", "Augmentation", options=list(AUGMENTATIONS), defaultValue=d.augmentation,
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterString(
            "MODEL_ARGUMENTS", "Model arguments (key=value, ...)", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "SEED", "Random seed", number_type("int"), defaultValue=d.seed, minValue=0))
        self.addParameter(QgsProcessingParameterString("DEVICE", f"Device ({DEVICES_HELP})", defaultValue=d.device))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_MODEL", "Output model folder"))
        self.addOutput(QgsProcessingOutputFile("MODEL_DEFINITION", "Model definition (.emd)"))
        self.addOutput(QgsProcessingOutputNumber("BEST_EPOCH", "Best epoch"))
        self.addOutput(QgsProcessingOutputNumber("ACCURACY", "Overall accuracy (validation)"))
        self.addOutput(QgsProcessingOutputNumber("MIOU", "Mean IoU (validation)"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        folders = [self.parameterAsFile(parameters, "INPUT_TRAINING_DATA", context)]
        extra = self.parameterAsString(parameters, "ADDITIONAL_TRAINING_DATA", context) or ""
        folders += [f.strip() for f in extra.split(";") if f.strip()]
        argv = ["--input-training-data", *folders,
                "--output-model", self.parameterAsString(parameters, "OUTPUT_MODEL", context)]
        for name in ("MAX_EPOCHS", "BATCH_SIZE", "SEED"):
            argv += [option(name), self.parameterAsInt(parameters, name, context)]
        for name in ("MODEL_TYPE", "BACKBONE", "MONITOR", "AUGMENTATION"):
            # Left out, MODEL_TYPE/BACKBONE come from a pretrained package (or the engine's defaults).
            if name in ("MODEL_TYPE", "BACKBONE") and parameters.get(name) in (None, ""):
                continue
            argv += [option(name), self.parameterAsEnumString(parameters, name, context)]
        if parameters.get("VALIDATION_PERCENT") not in (None, ""):
            argv += ["--validation-percent", repr(self.parameterAsDouble(parameters, "VALIDATION_PERCENT", context))]
        argv += ["--device", self.parameterAsString(parameters, "DEVICE", context) or "auto"]
        if parameters.get("LEARNING_RATE") not in (None, ""):
            lr = self.parameterAsDouble(parameters, "LEARNING_RATE", context)
            if lr > 0:
                argv += ["--learning-rate", repr(lr)]
        if not self.parameterAsBool(parameters, "STOP_WHEN_NOT_IMPROVING", context):
            argv.append("--no-early-stop")
        if not self.parameterAsBool(parameters, "FREEZE_BACKBONE", context):
            argv.append("--no-freeze-backbone")
        pretrained = self.parameterAsFile(parameters, "PRETRAINED_MODEL", context)
        if pretrained:
            argv += ["--pretrained-model", pretrained]
        model_arguments = self.parameterAsString(parameters, "MODEL_ARGUMENTS", context)
        if model_arguments:
            argv += ["--model-arguments", model_arguments]
        r = run_engine("train", argv, feedback)
        return {"OUTPUT_MODEL": r["output_model"], "MODEL_DEFINITION": r["model_definition"],
                "BEST_EPOCH": r["best_epoch"], "ACCURACY": r["accuracy"], "MIOU": r["miou"]}
