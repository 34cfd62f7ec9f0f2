"""QGIS layers <-> engine inputs: rasters to paths, vector features to shapely geometries."""
from __future__ import annotations

from qgis.core import NULL, QgsFeatureRequest, QgsProcessingException
from shapely import wkb

from ..deep_pixel.samples import Samples, pick_class_field, resolve_class_values


def raster_path(layer, parameter_name: str) -> str:
    """The file GDAL reads for a raster layer; other providers get a clear error."""
    if layer is None:
        raise QgsProcessingException(f"{parameter_name}: no raster layer was given or it could not be loaded.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{parameter_name}: layer {layer.name()!r} comes from the {layer.providerType()!r} provider; "
            "Deep Pixel reads rasters through GDAL. Save it as a GeoTIFF first (Export > Save As).")
    return layer.source().split("|")[0]


def option(parameter_name: str) -> str:
    """The engine's command-line option for a Processing parameter: TILE_SIZE_X -> --tile-size-x."""
    return "--" + parameter_name.lower().replace("_", "-")


def vector_file(alg, parameters, name, context, feedback):
    """(path, layer name) of a vector parameter as a file the engine can read.

    File-backed layers are passed as they are; memory, database and filtered or selected-only
    inputs are first written to a temporary GeoPackage by Processing.
    """
    path, layer_name = alg.parameterAsCompatibleSourceLayerPathAndLayerName(
        parameters, name, context, ["gpkg", "shp", "geojson", "sqlite", "fgb"], "gpkg", feedback)
    if not path:
        raise QgsProcessingException(f"{name}: no vector layer was given or it could not be loaded.")
    return path, layer_name or None


def _value(v):
    return None if v is None or v == NULL else v


def read_geometries(source, feedback=None, field: str | None = None):
    """(geometries, raw field values, CRS WKT) of a feature source, skipping empty geometries."""
    geoms, values = [], []
    request = QgsFeatureRequest()
    for feature in source.getFeatures(request):
        if feedback is not None and feedback.isCanceled():
            break
        g = feature.geometry()
        if g is None or g.isNull() or g.isEmpty():
            continue
        geoms.append(wkb.loads(bytes(g.asWkb())))
        values.append(_value(feature[field]) if field else None)
    crs = source.sourceCrs()
    return geoms, values, crs.toWkt() if crs.isValid() else None


def samples_from_source(source, class_field: str | None, schema=None, feedback=None):
    """Engine ``Samples`` from a feature source and its class field (integer or text)."""
    if source is None:
        raise QgsProcessingException("INPUT_SAMPLES: no sample layer was given or it could not be loaded.")
    field = pick_class_field([f.name() for f in source.fields()], class_field or None)
    geoms, raw, crs_wkt = read_geometries(source, feedback, field)
    values, schema, mapping = resolve_class_values(raw, schema)
    return Samples(geoms, values, crs_wkt), schema, mapping, field
