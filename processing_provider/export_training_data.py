"""Processing algorithm ``deeppixel:exporttrainingdata``."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
)

from ..deep_pixel.export.run import ExportOptions
from ..qgis_compat import source_type
from .base import DeepPixelAlgorithm
from .engine_runner import LIGHT, run_engine_options
from .layers import vector_file
from .param_builder import add_declared, read_declared

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
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_RASTER", "Input raster"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "INPUT_SAMPLES", "Training samples", [source_type("polygon"), source_type("point")]))
        self.addParameter(QgsProcessingParameterField(
            "CLASS_FIELD", "Class field (default: Classvalue, Value, Classname or class)",
            parentLayerParameterName="INPUT_SAMPLES", optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "CLASS_SCHEMA", "Class schema (JSON or .emd; optional)", optional=True,
            fileFilter="Class schema (*.json *.emd)"))
        add_declared(self, ExportOptions, skip=["min_labelled_fraction"])
        self.addParameter(QgsProcessingParameterFeatureSource(
            "MASK_POLYGONS", "Mask polygons (chips only inside them)", [source_type("polygon")],
            optional=True))
        add_declared(self, ExportOptions, only=["min_labelled_fraction"])
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", "Output folder"))
        self.addOutput(QgsProcessingOutputNumber("NUM_CHIPS", "Number of chips"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        raster = self.raster_file(parameters, "INPUT_RASTER", context)
        samples, samples_layer = vector_file(self, parameters, "INPUT_SAMPLES", context, feedback)
        inputs = {"input_raster": raster, "input_samples": samples,
                  "output_folder": self.parameterAsString(parameters, "OUTPUT_FOLDER", context),
                  "samples_layer": samples_layer or None,
                  "class_field": self.parameterAsString(parameters, "CLASS_FIELD", context) or None,
                  "schema": self.parameterAsFile(parameters, "CLASS_SCHEMA", context) or None,
                  "mask_polygons": None, "mask_layer": None}
        if parameters.get("MASK_POLYGONS"):
            inputs["mask_polygons"], inputs["mask_layer"] = vector_file(self, parameters, "MASK_POLYGONS", context,
                                                                        feedback)
            inputs["mask_layer"] = inputs["mask_layer"] or None
        options = read_declared(self, ExportOptions, parameters, context, feedback)
        result = run_engine_options("export", inputs, options, feedback, needs=LIGHT)
        return {"OUTPUT_FOLDER": result["output_folder"], "NUM_CHIPS": result["chips"]}
