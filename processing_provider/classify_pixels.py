"""Processing algorithm ``deeppixel:classifypixels``."""
from __future__ import annotations

import os

from qgis.core import (QgsProcessingException, QgsProcessingOutputMultipleLayers,
                       QgsProcessingOutputNumber,
                       QgsProcessingParameterBoolean, QgsProcessingParameterFeatureSource,
                       QgsProcessingParameterFile, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString)

from ..deep_pixel.classify_options import AUTO_PADDING, AUTO_PADDING_MULTIPLES, MAX_AUTO_TILE, MIN_AUTO_TILE, ClassifyOptions
from ..deep_pixel.device import DEVICES_HELP
from ..deep_pixel.runtime_choice import PRECISION_HELP, RUNTIME_HELP
from .base import DeepPixelAlgorithm
from .engine_runner import run_engine
from .layers import raster_path, vector_file
from ..qgis_compat import advanced_flag, number_type, source_type

HELP = """Classifies every pixel of a raster with a model trained by Train Model (its .emd or .dlpk). The output is a GeoTIFF of class values (0 = nodata) with the model's colours and class names; in QGIS it is added with a paletted renderer, and a .qml style is written beside it.

<b>Tile size</b>: 0 chooses it per raster between 384 and 1024 px, the size that computes the fewest pixels (the networks are fully convolutional; larger tiles keep more context and overlap less). <b>Padding</b>: pixels at each tile border that are blended with the neighbouring tiles (default: the network's measured effective border, 48 px); tiles overlap and their probabilities are averaged with a smooth window, so no seams appear. The log gives the overlap factor (pixels computed / raster pixels).
<b>Runtime</b> and <b>precision</b> (advanced): auto picks the fastest measured engine for this processor and says why in the log: torch with bfloat16 on CPUs with AVX-512 BF16 or AMX, ONNX Runtime (float32) on other CPUs when installed, torch float16 on CUDA.
<b>Predict background</b>: off means classes named background/other are not predicted (their pixels go to the most likely other class).
<b>Test-time augmentation</b>: averages the 8 flips and rotations (8x slower, usually a little more accurate).
<b>Mask polygons</b>: only pixels inside them are classified; the rest is nodata. Nodata input pixels stay nodata.
<b>Confidence</b>: an optional raster of the winning class's probability (0-1).
<b>A folder of images</b> (qgis_process or Python: INPUT_RASTER=&lt;folder&gt;) gives one &lt;image&gt;_classified.tif per image (and &lt;image&gt;_confidence.tif when a confidence output is asked for) in the folder named like OUTPUT_RASTER without its extension.
The raster must have the model's bands in the model's order; a pixel size far from the model's is refused with the resampling command to use."""


class ClassifyPixelsAlgorithm(DeepPixelAlgorithm):
    NAME = "classifypixels"
    DISPLAY = "Classify Pixels"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        d = ClassifyOptions()
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_RASTER", "Input raster"))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL_DEFINITION", "Model definition (.emd or .dlpk)", fileFilter="Deep Pixel models (*.emd *.dlpk)"))
        self.addParameter(QgsProcessingParameterNumber(
            "TILE_SIZE", f"Tile size (pixels; 0 = chosen per raster, {MIN_AUTO_TILE} to {MAX_AUTO_TILE})",
            number_type("int"),
            defaultValue=d.tile_size, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "PADDING", f"Padding (pixels; empty = the network's border, {AUTO_PADDING} px or "
            f"{AUTO_PADDING_MULTIPLES} x its downsampling factor)",
            number_type("int"),
            optional=True, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "BATCH_SIZE", "Batch size", number_type("int"), defaultValue=d.batch_size, minValue=1))
        self.addParameter(QgsProcessingParameterBoolean(
            "PREDICT_BACKGROUND", "Predict background classes", defaultValue=d.predict_background))
        self.addParameter(QgsProcessingParameterBoolean(
            "TEST_TIME_AUGMENTATION", "Test-time augmentation (8 flips/rotations)",
            defaultValue=d.test_time_augmentation))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "MASK_POLYGONS", "Classify only inside these polygons", [source_type("polygon")], optional=True))
        self.addParameter(QgsProcessingParameterString("DEVICE", f"Device ({DEVICES_HELP})", defaultValue=d.device))
        for name, label, default in (("RUNTIME", f"Runtime ({RUNTIME_HELP})", d.runtime),
                                     ("PRECISION", f"Precision ({PRECISION_HELP})", d.precision)):
            parameter = QgsProcessingParameterString(name, label, defaultValue=default, optional=True)
            parameter.setFlags(parameter.flags() | advanced_flag())
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_RASTER", "Classified raster"))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_CONFIDENCE", "Confidence raster (winning class probability)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("TILES", "Tiles classified"))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUT_RASTERS", "Classified rasters (folder input)"))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """A folder of images is a valid INPUT_RASTER too (the raster parameter alone refuses it)."""
        if not _input_folder(parameters.get("INPUT_RASTER")):
            return super().checkParameterValues(parameters, context)
        for definition in self.parameterDefinitions():
            name = definition.name()
            if name != "INPUT_RASTER" and not definition.checkValueIsAcceptable(parameters.get(name), context):
                return False, f"Incorrect parameter value for {name}"
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        folder = _input_folder(parameters.get("INPUT_RASTER"))
        raster = folder or raster_path(self.parameterAsRasterLayer(parameters, "INPUT_RASTER", context),
                                       "INPUT_RASTER")
        model = self.parameterAsFile(parameters, "MODEL_DEFINITION", context)
        if not model:
            raise QgsProcessingException("MODEL_DEFINITION: give the .emd or .dlpk written by Train Model.")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT_RASTER", context)
        if not output.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(f"OUTPUT_RASTER {output}: Classify Pixels writes GeoTIFF; use a .tif name.")
        planned = output
        if folder:
            output = os.path.splitext(output)[0]          # the folder receiving <image>_classified.tif
        argv = ["--input-raster", raster, "--model-definition", model, "--output-raster", output,
                "--tile-size", self.parameterAsInt(parameters, "TILE_SIZE", context),
                "--batch-size", self.parameterAsInt(parameters, "BATCH_SIZE", context),
                "--device", self.parameterAsString(parameters, "DEVICE", context) or "auto",
                "--runtime", (self.parameterAsString(parameters, "RUNTIME", context) or "auto").strip().lower(),
                "--precision", (self.parameterAsString(parameters, "PRECISION", context) or "auto").strip().lower()]
        if parameters.get("PADDING") not in (None, ""):
            argv += ["--padding", self.parameterAsInt(parameters, "PADDING", context)]
        if not self.parameterAsBool(parameters, "PREDICT_BACKGROUND", context):
            argv.append("--no-predict-background")
        if self.parameterAsBool(parameters, "TEST_TIME_AUGMENTATION", context):
            argv.append("--test-time-augmentation")
        if parameters.get("MASK_POLYGONS") not in (None, ""):
            mask, _layer_name = vector_file(self, parameters, "MASK_POLYGONS", context, feedback)
            argv += ["--mask-polygons", mask]
        confidence = None
        if parameters.get("OUTPUT_CONFIDENCE") not in (None, ""):
            confidence = self.parameterAsOutputLayer(parameters, "OUTPUT_CONFIDENCE", context)
            if confidence:
                argv += ["--output-confidence", confidence]
        r = run_engine("classify", argv, feedback)
        from .styling import ClassStylePostProcessor
        classes = r.get("classes") or []
        outputs = r.get("outputs") or []
        if folder:
            ClassStylePostProcessor.replace_output(context, planned, outputs, classes)
            if confidence:       # one confidence raster beside each image's classes
                confidence_files = [o[:-len("_classified.tif")] + "_confidence.tif" for o in outputs]
                ClassStylePostProcessor.replace_output(context, confidence, confidence_files, None)
                confidence = output
        elif classes:
            ClassStylePostProcessor.attach(context, output, classes,
                                           os.path.splitext(os.path.basename(output))[0])
        results = {"OUTPUT_RASTER": output, "TILES": r["tiles"]}
        if folder:
            results["OUTPUT_RASTERS"] = outputs
        if confidence:
            results["OUTPUT_CONFIDENCE"] = confidence
        return results


def _input_folder(value):
    """The folder when INPUT_RASTER names a folder of images (qgis_process, Python), else None."""
    if isinstance(value, str) and value.strip() and os.path.isdir(value.strip()):
        return value.strip()
    return None
