"""Processing algorithm ``deeppixel:classifypixels``."""
from __future__ import annotations

import os

from qgis.core import (
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsRasterLayer,
)

from ..deep_pixel.classify.options import ClassifyOptions
from ..deep_pixel.classify.names import CLASSIFIED, CONFIDENCE, UNCERTAINTY, folder_for_output
from ..deep_pixel.core.tiles import AUTO_PADDING, MAX_AUTO_TILE, MIN_AUTO_TILE
from ..deep_pixel.io.styles import style_path
from .base import DeepPixelAlgorithm
from .engine_runner import run_engine_options
from .param_builder import add_declared, read_declared

HELP = f"""Classifies every pixel of a raster with a model trained by Train Model (its .emd or .dlpk). The output is a GeoTIFF of class values (0 = nodata) with the model's colours and class names; in QGIS it is added with a paletted renderer, and a .qml style is written beside it.

<b>Tile size</b>: 0 chooses it per raster between {MIN_AUTO_TILE} and {MAX_AUTO_TILE} px, the size that computes the fewest pixels (the networks are fully convolutional; larger tiles keep more context and overlap less). <b>Padding</b>: pixels at each tile border that are blended with the neighbouring tiles (default: the network's measured effective border, {AUTO_PADDING} px); tiles overlap and their probabilities are averaged with a smooth window, so no seams appear. The log gives the overlap factor (pixels computed / raster pixels).
<b>Runtime</b> and <b>precision</b> (advanced): auto picks the fastest measured engine for this processor and says why in the log: torch with bfloat16 on CPUs with AVX-512 BF16 or AMX, ONNX Runtime (float32) on other CPUs when installed, torch float16 on CUDA.
<b>Predict background</b>: off means classes named background/other are not predicted (their pixels go to the most likely other class).
<b>Test-time augmentation</b>: averages the 8 flips and rotations (8x slower, usually a little more accurate).
<b>Mask polygons</b>: only pixels inside them are classified; the rest is nodata. Nodata input pixels stay nodata.
<b>Confidence</b>: an optional raster of the winning class's probability (0-1).
<b>Uncertainty</b>: an optional raster from 0 (sure) to 1 (unsure), styled with a colour ramp: the normalised entropy of the blended class probabilities, or with <b>uncertainty measure</b> margin 1 - (p1 - p2) of the two most likely classes. Suggest Samples reads it to propose where to label next.
<b>A folder of images</b> (qgis_process or Python: INPUT_RASTER=&lt;folder&gt;) gives one &lt;image&gt;{CLASSIFIED} per image (and &lt;image&gt;{CONFIDENCE}, &lt;image&gt;{UNCERTAINTY} when those outputs are asked for) in the folder named like OUTPUT_RASTER without its extension.
The raster must have the model's bands in the model's order; a pixel size far from the model's is refused with the resampling command to use."""


class ClassifyPixelsAlgorithm(DeepPixelAlgorithm):
    NAME = "classifypixels"
    DISPLAY = "Classify Pixels"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_RASTER", "Input raster"))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL_DEFINITION", "Model definition (.emd or .dlpk)", fileFilter="Deep Pixel models (*.emd *.dlpk)"))
        add_declared(self, ClassifyOptions)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_RASTER", "Classified raster"))
        add_declared(self, ClassifyOptions, outputs=True)
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
        raster = folder or self.raster_file(parameters, "INPUT_RASTER", context)
        model = self.parameterAsFile(parameters, "MODEL_DEFINITION", context)
        if not model:
            raise QgsProcessingException("MODEL_DEFINITION: give the .emd or .dlpk written by Train Model.")
        output = self.parameterAsOutputLayer(parameters, "OUTPUT_RASTER", context)
        if not output.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(f"OUTPUT_RASTER {output}: Classify Pixels writes GeoTIFF; use a .tif name.")
        options = read_declared(self, ClassifyOptions, parameters, context, feedback)
        r = run_engine_options("classify", {"input_raster": raster, "model_definition": model,
                                            "output_raster": folder_for_output(output) if folder else output},
                               options, feedback)
        from .styling import ClassStylePostProcessor
        classes = r.get("classes") or []
        outputs = r.get("outputs") or []
        if folder:            # each image's rasters (the engine's names) are loaded instead of the planned ones
            ClassStylePostProcessor.replace_output(context, output, outputs, classes)
            if options.output_confidence:
                ClassStylePostProcessor.replace_output(context, options.output_confidence,
                                                       r.get("confidence_outputs") or [], None)
        elif classes:
            ClassStylePostProcessor.attach(context, output, classes,
                                           os.path.splitext(os.path.basename(output))[0])
        if options.output_uncertainty:
            _load_uncertainty(context, options.output_uncertainty, r.get("uncertainty_outputs") or [], folder)
        results = {"OUTPUT_RASTER": r["output_raster"], "TILES": r["tiles"]}
        if folder:
            results["OUTPUT_RASTERS"] = outputs
        if r.get("output_confidence"):
            results["OUTPUT_CONFIDENCE"] = r["output_confidence"]
        if r.get("output_uncertainty"):
            results["OUTPUT_UNCERTAINTY"] = r["output_uncertainty"]
        return results


class RampStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles an uncertainty raster with the colour ramp of the .qml the engine wrote beside it."""
    _alive = []   # Processing keeps only a C++ pointer: hold the Python objects until used

    def __init__(self, path):
        super().__init__()
        self.path = path

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            qml = style_path(self.path)
            if os.path.isfile(qml):
                layer.loadNamedStyle(qml)
                layer.triggerRepaint()
            layer.setName(os.path.splitext(os.path.basename(self.path))[0])

    @classmethod
    def attach(cls, context, path) -> None:
        if not context.willLoadLayerOnCompletion(path):
            return
        processor = cls(path)
        cls._alive.append(processor)
        context.layerToLoadOnCompletionDetails(path).setPostProcessor(processor)


def _load_uncertainty(context, planned, outputs, folder) -> None:
    """Each uncertainty raster loaded with its colour ramp; a folder input loads one per image."""
    from .styling import ClassStylePostProcessor
    if folder:
        ClassStylePostProcessor.replace_output(context, planned, outputs, None)
    for path in outputs if folder else [planned]:
        RampStylePostProcessor.attach(context, path)


def _input_folder(value):
    """The folder when INPUT_RASTER names a folder of images (qgis_process, Python), else None."""
    if isinstance(value, str) and value.strip() and os.path.isdir(value.strip()):
        return value.strip()
    return None
