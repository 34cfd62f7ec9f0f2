"""Processing algorithm ``deeppixel:exporttrainingdata``."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
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

from ..deep_pixel.export import IMAGE_FORMATS, ExportOptions, export_training_data
from ..deep_pixel.schema import ClassSchema
from .base import DeepPixelAlgorithm, FeedbackProgress, engine_errors
from .layers import raster_path, read_geometries, samples_from_source

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
            "INPUT_SAMPLES", "Training samples", [QgsProcessing.TypeVectorPolygon, QgsProcessing.TypeVectorPoint]))
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
            self.addParameter(QgsProcessingParameterNumber(name, label, QgsProcessingParameterNumber.Integer,
                                                           defaultValue=value, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            "ROTATION_ANGLE", "Rotation angle (0, 90 or 180 degrees)", QgsProcessingParameterNumber.Double,
            defaultValue=d.rotation_angle, minValue=0, maxValue=360))
        self.addParameter(QgsProcessingParameterBoolean(
            "OUTPUT_NOFEATURE_TILES", "Also export tiles without samples", defaultValue=d.output_nofeature_tiles))
        self.addParameter(QgsProcessingParameterNumber(
            "BUFFER_RADIUS", "Buffer radius for point samples (raster CRS units)",
            QgsProcessingParameterNumber.Double, defaultValue=d.buffer_radius, minValue=0))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "MASK_POLYGONS", "Mask polygons (chips only inside them)", [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "MIN_LABELLED_FRACTION", "Minimum labelled fraction of a chip", QgsProcessingParameterNumber.Double,
            defaultValue=d.min_labelled_fraction, minValue=0, maxValue=1))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputNumber("NUM_CHIPS", "Number of chips"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        progress = FeedbackProgress(feedback)
        with engine_errors():
            raster = raster_path(self.parameterAsRasterLayer(parameters, "INPUT_RASTER", context), "INPUT_RASTER")
            schema_path = self.parameterAsFile(parameters, "CLASS_SCHEMA", context)
            schema = ClassSchema.load(schema_path) if schema_path else None
            source = self.parameterAsSource(parameters, "INPUT_SAMPLES", context)
            samples, schema, mapping, field = samples_from_source(
                source, self.parameterAsString(parameters, "CLASS_FIELD", context), schema, feedback)
            if mapping:
                feedback.pushInfo(f"Text field {field!r} mapped to class values: "
                                  + ", ".join(f"{k}={v}" for k, v in mapping.items()))
            mask_source = self.parameterAsSource(parameters, "MASK_POLYGONS", context)
            mask_geoms, _, mask_crs = read_geometries(mask_source) if mask_source else (None, None, None)
            options = ExportOptions(
                image_format=self.parameterAsEnumString(parameters, "IMAGE_FORMAT", context),
                tile_size_x=self.parameterAsInt(parameters, "TILE_SIZE_X", context),
                tile_size_y=self.parameterAsInt(parameters, "TILE_SIZE_Y", context),
                stride_x=self.parameterAsInt(parameters, "STRIDE_X", context),
                stride_y=self.parameterAsInt(parameters, "STRIDE_Y", context),
                rotation_angle=self.parameterAsDouble(parameters, "ROTATION_ANGLE", context),
                output_nofeature_tiles=self.parameterAsBool(parameters, "OUTPUT_NOFEATURE_TILES", context),
                buffer_radius=self.parameterAsDouble(parameters, "BUFFER_RADIUS", context),
                min_labelled_fraction=self.parameterAsDouble(parameters, "MIN_LABELLED_FRACTION", context))
            output = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
            result = export_training_data(raster, samples, output, options, schema=schema,
                                          class_mapping=mapping, class_field=field,
                                          mask_geometries=mask_geoms, mask_crs_wkt=mask_crs,
                                          progress=progress)
        return {"OUTPUT_FOLDER": result.folder, "NUM_CHIPS": result.num_chips}
