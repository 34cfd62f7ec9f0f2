"""Processing algorithm ``deeppixel:exporttrainingdata``."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)

from ..deep_pixel.export import IMAGE_FORMATS, ExportOptions
from .base import DeepPixelAlgorithm
from .engine_runner import LIGHT, run_engine
from .layers import option, raster_path, vector_file
from ..qgis_compat import number_type, source_type

HELP = """Cuts a raster and labelled training polygons into image chips and label chips for training.

<b>Class field</b>: an integer field (Classvalue, Value) or a text field of class names; names are numbered in sorted order (or by the class schema when given) and the mapping is written to the output.
<b>Output folder</b>: images/, labels/ (0 = unlabelled), map.txt, stats.txt, esri_accumulated_stats.json, esri_model_definition.emd and deep_pixel_export.json (band statistics, CRS, chip positions). It must be new or empty.
<b>Stride</b>: equal to the tile size means no overlap. <b>Rotation angle</b> 90 adds chips rotated by 90, 180 and 270 degrees.
"""


class ExportTrainingDataAlgorithm(DeepPixelAlgorithm):
    NAME = "exporttrainingdata"
    DISPLAY = "Export Training Data"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        d = ExportOptions()
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_RASTER", "Input raster"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "INPUT_SAMPLES", "Training samples", [source_type("polygon"), source_type("point")]))
        self.addParameter(QgsProcessingParameterField(
            "CLASS_FIELD", "Class field (default: Classvalue, Value, Classname or class)",
            parentLayerParameterName="INPUT_SAMPLES", optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "CLASS_SCHEMA", "Class schema (JSON or .emd; optional)", optional=True,
            fileFilter="Class schema (*.json *.emd)"))
        self.addParameter(QgsProcessingParameterEnum(
            "IMAGE_FORMAT", "Image format", options=list(IMAGE_FORMATS), defaultValue=d.image_format,
            usesStaticStrings=True))
        for name, label, value in (("TILE_SIZE_X", "Tile size X (pixels)", d.tile_size_x),
                                   ("TILE_SIZE_Y", "Tile size Y (pixels)", d.tile_size_y),
                                   ("STRIDE_X", "Stride X (pixels)", d.stride_x),
                                   ("STRIDE_Y", "Stride Y (pixels)", d.stride_y)):
            self.addParameter(QgsProcessingParameterNumber(name, label, number_type("int"),
                                                           defaultValue=value, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "ROTATION_ANGLE", "Rotation angle (0, 90 or 180 degrees)", number_type("float"),
            defaultValue=d.rotation_angle, minValue=0, maxValue=360))
        self.addParameter(QgsProcessingParameterBoolean(
            "OUTPUT_NOFEATURE_TILES", "Also export tiles without samples", defaultValue=d.output_nofeature_tiles))
        self.addParameter(QgsProcessingParameterNumber(
            "BUFFER_RADIUS", "Buffer radius for point samples (raster CRS units)",
            number_type("float"), defaultValue=d.buffer_radius, minValue=0))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "MASK_POLYGONS", "Mask polygons (chips only inside them)", [source_type("polygon")],
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_LABELLED_FRACTION", "Minimum labelled fraction of a chip", number_type("float"),
            defaultValue=d.min_labelled_fraction, minValue=0, maxValue=1))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputNumber("NUM_CHIPS", "Number of chips"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        raster = raster_path(self.parameterAsRasterLayer(parameters, "INPUT_RASTER", context), "INPUT_RASTER")
        samples, samples_layer = vector_file(self, parameters, "INPUT_SAMPLES", context, feedback)
        argv = ["--input-raster", raster, "--input-samples", samples,
                "--output-folder", self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                "--image-format", self.parameterAsEnumString(parameters, "IMAGE_FORMAT", context)]
        if samples_layer:
            argv += ["--samples-layer", samples_layer]
        field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        if field:
            argv += ["--class-field", field]
        schema = self.parameterAsFile(parameters, "CLASS_SCHEMA", context)
        if schema:
            argv += ["--schema", schema]
        for name in ("TILE_SIZE_X", "TILE_SIZE_Y", "STRIDE_X", "STRIDE_Y"):
            argv += [option(name), self.parameterAsInt(parameters, name, context)]
        for name in ("ROTATION_ANGLE", "BUFFER_RADIUS", "MIN_LABELLED_FRACTION"):
            argv += [option(name), repr(self.parameterAsDouble(parameters, name, context))]
        if self.parameterAsBool(parameters, "OUTPUT_NOFEATURE_TILES", context):
            argv.append("--output-nofeature-tiles")
        if parameters.get("MASK_POLYGONS"):
            mask, mask_layer = vector_file(self, parameters, "MASK_POLYGONS", context, feedback)
            argv += ["--mask-polygons", mask] + (["--mask-layer", mask_layer] if mask_layer else [])
        result = run_engine("export", argv, feedback, needs=LIGHT)
        return {"OUTPUT_FOLDER": result["output_folder"], "NUM_CHIPS": result["chips"]}
