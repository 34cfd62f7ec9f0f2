"""Processing algorithm ``deeppixel:suggestsamples``."""
from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterLayer,
)

from ..deep_pixel.suggest.options import SuggestOptions
from ..deep_pixel.suggest.output import check_suggest_destinations
from ..qgis_compat import fast_insert, field_type, source_type
from .base import DeepPixelAlgorithm, engine_errors
from .engine_runner import LIGHT, run_engine_options
from .layers import vector_file
from .param_builder import add_declared, read_declared

HELP = """Suggests where to label next: the windows of the raster where the model is most unsure, as square polygons to draw samples in, then retrain (Train Model with PRETRAINED_MODEL).

Give the model (<b>Model definition</b>: the raster is classified with it first, the uncertainty kept in a temporary file) or an <b>uncertainty raster</b> of this raster written by Classify Pixels (OUTPUT_UNCERTAINTY).
The <b>number of suggestions</b> windows with the highest mean uncertainty are picked, most uncertain first; no two overlap or touch (at least one window size lies between them, so they spread over the raster), none overlaps or touches the <b>samples labelled already</b>, and with <b>mask polygons</b> every window lies inside them. At least half of a window's pixels must have a value (not nodata).
<b>Window size</b>: pixels per side; 0 takes half the chip size the model was trained on. <b>Random seed</b>: picks among equally uncertain windows, so the same seed gives the same suggestions.
Fields: rank (1 = most uncertain), mean_uncertainty (0 sure - 1 unsure), class_mix (the predicted classes inside, e.g. "water 60%, forest 40%")."""

FIELDS = (("rank", "int"), ("mean_uncertainty", "double"), ("class_mix", "text"))


class SuggestSamplesAlgorithm(DeepPixelAlgorithm):
    NAME = "suggestsamples"
    DISPLAY = "Suggest Samples"
    HELP = HELP

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT_RASTER", "Input raster"))
        self.addParameter(QgsProcessingParameterFile(
            "MODEL_DEFINITION", "Model definition (.emd or .dlpk)", optional=True,
            fileFilter="Deep Pixel models (*.emd *.dlpk)"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "INPUT_UNCERTAINTY", "Or: uncertainty raster (Classify Pixels' OUTPUT_UNCERTAINTY)", optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "INPUT_SAMPLES", "Samples labelled already", [source_type("vector")], optional=True))
        add_declared(self, SuggestOptions)
        self.addParameter(QgsProcessingParameterFeatureSink(
            "OUTPUT", "Suggested windows", source_type("polygon")))
        self.addOutput(QgsProcessingOutputNumber("SUGGESTIONS", "Windows suggested"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        raster = self.raster_file(parameters, "INPUT_RASTER", context)
        model = self.parameterAsFile(parameters, "MODEL_DEFINITION", context) or None
        uncertainty = None
        if parameters.get("INPUT_UNCERTAINTY") not in (None, ""):
            uncertainty = self.raster_file(parameters, "INPUT_UNCERTAINTY", context)
        if bool(model) == bool(uncertainty):
            raise QgsProcessingException("Give MODEL_DEFINITION (the model to ask) or INPUT_UNCERTAINTY (an "
                                         "uncertainty raster written by Classify Pixels), one of the two.")
        samples = None
        if parameters.get("INPUT_SAMPLES") not in (None, ""):
            samples = vector_file(self, parameters, "INPUT_SAMPLES", context, feedback)[0]
        options = read_declared(self, SuggestOptions, parameters, context, feedback)
        with engine_errors():      # QGIS writes OUTPUT (a sink) itself: it must not replace an input
            check_suggest_destinations(raster, model, uncertainty, samples, options.mask_polygons,
                                       self._sink_file(parameters, context), require_gpkg=False)
        inputs = {"input_raster": raster, "model_definition": model, "input_uncertainty": uncertainty,
                  "input_samples": samples, "output": None}
        r = run_engine_options("suggest", inputs, options, feedback, **({} if model else {"needs": LIGHT}))
        dest = self._write(parameters, context, r)
        return {"OUTPUT": dest, "SUGGESTIONS": len(r["suggestions"])}

    def _sink_file(self, parameters, context):
        """OUTPUT's file when it is one (not a memory layer or a database)."""
        dest = self.parameterAsOutputLayer(parameters, "OUTPUT", context) or ""
        dest = (dest[4:] if dest.startswith("ogr:") else dest).split("|")[0]
        if not dest or dest.startswith(("memory:", "postgres:", "spatialite:", "mssql:", "oracle:")):
            return None
        return dest

    def _write(self, parameters, context, r):
        fields = QgsFields()
        for name, kind in FIELDS:
            fields.append(QgsField(name, field_type(kind)))
        crs = QgsCoordinateReferenceSystem.fromWkt(r["crs_wkt"]) if r.get("crs_wkt") else QgsCoordinateReferenceSystem()
        polygon = QgsGeometry.fromWkt("POLYGON ((0 0, 1 0, 1 1, 0 0))").wkbType()
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, fields, polygon, crs)
        if sink is None:
            raise QgsProcessingException("OUTPUT: the layer for the suggested windows could not be created.")
        for s in r["suggestions"]:
            f = QgsFeature(fields)
            f.setGeometry(QgsGeometry.fromWkt(s["wkt"]))
            f.setAttributes([int(s["rank"]), float(s["mean_uncertainty"]), s["class_mix"]])
            sink.addFeature(f, fast_insert())
        return dest
