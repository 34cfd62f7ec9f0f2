"""Processing algorithm ``deeppixel:computeaccuracy``."""
from __future__ import annotations

from qgis.core import (
    QgsFeature,
    QgsField,
    QgsFields,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
)

from ..deep_pixel.evaluate.accuracy import EvaluateOptions
from ..deep_pixel.evaluate.report import check_evaluate_destinations
from ..qgis_compat import fast_insert, field_type, no_geometry, source_type
from .base import DeepPixelAlgorithm, engine_errors
from .engine_runner import LIGHT, run_engine_options
from .layers import raster_path, vector_file
from .param_builder import add_declared, read_declared

HELP = """Scores a classified raster (e.g. the output of Classify Pixels) against reference data kept apart from training: reference polygons with a class field, or a reference raster of class values (0 = no reference).

Reports the confusion matrix, overall accuracy, kappa, per-class precision (user's accuracy), recall (producer's accuracy), F1 and IoU, and the mean IoU; as an HTML report (with a .json beside it), a per-class table, and numeric outputs for models and qgis_process --json.
<b>Sampling</b>: every reference pixel by default; STRATIFIED_RANDOM with NUMBER_OF_POINTS draws the same number of random pixels in each reference class (reproducible with SEED).
A reference raster on another grid is resampled onto the classified raster's grid (nearest neighbour), and the report says so. Classified pixels without a class (nodata) inside the reference count as errors."""


class ComputeAccuracyAlgorithm(DeepPixelAlgorithm):
    NAME = "computeaccuracy"
    DISPLAY = "Compute Accuracy"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_CLASSIFIED", "Classified raster"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "REFERENCE", "Reference polygons", [source_type("polygon")], optional=True))
        add_declared(self, EvaluateOptions, only=["class_field"])
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE_RASTER", "Or: reference raster (class values, 0 = no reference)", optional=True))
        add_declared(self, EvaluateOptions, skip=["class_field"])
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
        inputs = {"input_classified": classified, "reference": None, "reference_raster": None,
                  "output_report": self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context),
                  "output_table": None}
        if has_vector:
            inputs["reference"] = vector_file(self, parameters, "REFERENCE", context, feedback)[0]
        else:
            inputs["reference_raster"] = raster_path(
                self.parameterAsRasterLayer(parameters, "REFERENCE_RASTER", context), "REFERENCE_RASTER")
        options = read_declared(self, EvaluateOptions, parameters, context, feedback)
        # QGIS writes the table (a sink) itself: it must not replace an input either.
        with engine_errors():
            check_evaluate_destinations(classified, inputs["reference"], inputs["reference_raster"],
                                        inputs["output_report"], self._table_file(parameters, context))
        r = run_engine_options("evaluate", inputs, options, feedback, needs=LIGHT)
        results = {"OUTPUT_REPORT": r["output_report"], "OVERALL_ACCURACY": r["overall_accuracy"],
                   "KAPPA": r["kappa"], "MEAN_IOU": r["mean_iou"]}
        table_id = self._write_table(parameters, context, r)
        if table_id:
            results["OUTPUT_TABLE"] = table_id
        return results

    def _table_file(self, parameters, context):
        """OUTPUT_TABLE's file when it is one (not a memory layer or a database)."""
        if parameters.get("OUTPUT_TABLE") in (None, ""):
            return None
        dest = self.parameterAsOutputLayer(parameters, "OUTPUT_TABLE", context) or ""
        dest = dest[4:] if dest.startswith("ogr:") else dest
        dest = dest.split("|")[0]
        if not dest or dest.startswith(("memory:", "postgres:", "spatialite:", "mssql:", "oracle:")):
            return None
        return dest

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
