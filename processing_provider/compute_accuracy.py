"""Processing algorithm ``deeppixel:computeaccuracy``."""
from __future__ import annotations

from qgis.core import (QgsFeature, QgsField, QgsFields, QgsProcessingException,
                       QgsProcessingOutputNumber, QgsProcessingParameterEnum, QgsProcessingParameterFeatureSink,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterField,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer)

from ..deep_pixel.evaluate import SAMPLINGS, EvaluateOptions
from .base import DeepPixelAlgorithm
from .engine_runner import LIGHT, run_engine
from .layers import raster_path, vector_file
from ..qgis_compat import fast_insert, field_type, no_geometry, number_type, source_type

HELP = """Scores a classified raster (e.g. the output of Classify Pixels) against reference data kept apart from training: reference polygons with a class field, or a reference raster of class values (0 = no reference).

Reports the confusion matrix, overall accuracy, kappa, per-class precision (user's accuracy), recall (producer's accuracy), F1 and IoU, and the mean IoU; as an HTML report (with a .json beside it), a per-class table, and numeric outputs for models and qgis_process --json.
<b>Sampling</b>: every reference pixel by default; STRATIFIED_RANDOM with NUMBER_OF_POINTS draws the same number of random pixels in each reference class (reproducible with SEED).
A reference raster on another grid is resampled onto the classified raster's grid (nearest neighbour), and the report says so. Classified pixels without a class (nodata) inside the reference count as errors."""


class ComputeAccuracyAlgorithm(DeepPixelAlgorithm):
    NAME = "computeaccuracy"
    DISPLAY = "Compute Accuracy"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        d = EvaluateOptions()
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_CLASSIFIED", "Classified raster"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "REFERENCE", "Reference polygons", [source_type("polygon")], optional=True))
        self.addParameter(QgsProcessingParameterField(
            "CLASS_FIELD", "Class field of the reference polygons (default: Classvalue, Value, Classname or class)",
            parentLayerParameterName="REFERENCE", optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE_RASTER", "Or: reference raster (class values, 0 = no reference)", optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            "SAMPLING", "Sampling", options=list(SAMPLINGS), defaultValue=d.sampling, usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            "NUMBER_OF_POINTS", "Number of random points (0 = every reference pixel)",
            number_type("int"), defaultValue=d.number_of_points, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "SEED", "Random seed", number_type("int"), defaultValue=d.seed, minValue=0))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_REPORT", "Accuracy report", fileFilter="HTML files (*.html)"))
        self.addParameter(QgsProcessingParameterFeatureSink(
            "OUTPUT_TABLE", "Per-class accuracy table", source_type("vector"), optional=True,
            createByDefault=True))
        for name, label in (("OVERALL_ACCURACY", "Overall accuracy"), ("KAPPA", "Kappa"),
                            ("MEAN_IOU", "Mean IoU")):
            self.addOutput(QgsProcessingOutputNumber(name, label))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        classified = raster_path(self.parameterAsRasterLayer(parameters, "INPUT_CLASSIFIED", context),
                                 "INPUT_CLASSIFIED")
        has_vector = parameters.get("REFERENCE") not in (None, "")
        has_raster = parameters.get("REFERENCE_RASTER") not in (None, "")
        if has_vector == has_raster:
            raise QgsProcessingException("Give exactly one reference: REFERENCE (polygons, with CLASS_FIELD) or "
                                         "REFERENCE_RASTER.")
        argv = ["--input-classified", classified, "--sampling",
                self.parameterAsEnumString(parameters, "SAMPLING", context),
                "--number-of-points", self.parameterAsInt(parameters, "NUMBER_OF_POINTS", context),
                "--seed", self.parameterAsInt(parameters, "SEED", context),
                "--output-report", self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context)]
        if has_vector:
            path, _layer = vector_file(self, parameters, "REFERENCE", context, feedback)
            argv += ["--reference", path]
            field = self.parameterAsString(parameters, "CLASS_FIELD", context)
            if field:
                argv += ["--class-field", field]
        else:
            argv += ["--reference-raster", raster_path(
                self.parameterAsRasterLayer(parameters, "REFERENCE_RASTER", context), "REFERENCE_RASTER")]
        r = run_engine("evaluate", argv, feedback, needs=LIGHT)
        results = {"OUTPUT_REPORT": r["output_report"], "OVERALL_ACCURACY": r["overall_accuracy"],
                   "KAPPA": r["kappa"], "MEAN_IOU": r["mean_iou"]}
        table_id = self._write_table(parameters, context, r)
        if table_id:
            results["OUTPUT_TABLE"] = table_id
        return results

    def _write_table(self, parameters, context, r):
        fields = QgsFields()
        fields.append(QgsField("value", field_type("int")))
        fields.append(QgsField("name", field_type("text")))
        for name in ("precision", "recall", "f1", "iou"):
            fields.append(QgsField(name, field_type("double")))
        fields.append(QgsField("pixels", field_type("int64")))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT_TABLE", context, fields, no_geometry())
        if sink is None:
            return None
        names = {int(k): v for k, v in (r.get("names") or {}).items()}
        for p in r["per_class"]:
            f = QgsFeature(fields)
            f.setAttributes([int(p["value"]), names.get(int(p["value"]), ""), p["precision"], p["recall"],
                             p["f1"], p["iou"], int(p["support"])])
            sink.addFeature(f, fast_insert())
        return dest
