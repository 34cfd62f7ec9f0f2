"""QGIS layers -> engine inputs: raster layers to the files GDAL reads, vector sources to files."""
from __future__ import annotations

from qgis.core import QgsProcessingException


def raster_path(layer, parameter_name: str) -> str:
    """The file GDAL reads for a raster layer; other providers get a clear error."""
    if layer is None:
        raise QgsProcessingException(f"{parameter_name}: no raster layer was given or it could not be loaded.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{parameter_name}: layer {layer.name()!r} comes from the {layer.providerType()!r} provider; "
            "Deep Pixel reads rasters through GDAL. Save it as a GeoTIFF first (Export > Save As).")
    return layer.source().split("|")[0]


def vector_file(alg, parameters, name, context, feedback):
    """(path, layer name) of a vector parameter as a file the engine can read.

    File-backed layers are passed as they are; memory, database and filtered or selected-only
    inputs are first written to a temporary GeoPackage by Processing.
    """
    found = getattr(alg, "_vector_files", {}).get(name)       # resolved in prepareAlgorithm (the main thread)
    if found is not None:
        return found
    path, layer_name = alg.parameterAsCompatibleSourceLayerPathAndLayerName(
        parameters, name, context, ["gpkg", "shp", "geojson", "sqlite", "fgb"], "gpkg", feedback)
    if not path:
        raise QgsProcessingException(f"{name}: no vector layer was given or it could not be loaded.")
    return path, layer_name or None
