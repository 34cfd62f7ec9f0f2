"""Reading vector files for the command line (GDAL/OGR), as plain shapely geometries.

Inside QGIS the Processing adapter reads layers itself; this module serves ``python -m deep_pixel``
and library users who start from a file (GeoPackage, shapefile, GeoJSON...).
"""
from __future__ import annotations

from dataclasses import dataclass

from shapely import wkb

from ..core.errors import DeepPixelError


@dataclass
class VectorData:
    geometries: list
    attributes: dict          # field name -> list of values, one per feature
    crs_wkt: str | None
    field_names: list
    fids: list = None         # the features' ids (for messages naming a feature)


def ogr_bindings(purpose: str = "Reading vector files"):
    """(ogr, osr) from GDAL's Python bindings, or a clear error naming what needs them."""
    try:
        from osgeo import ogr, osr
    except ImportError as e:
        raise DeepPixelError(f"{purpose} needs GDAL's Python bindings (osgeo; Debian: python3-gdal, conda: gdal), "
                             "which this Python lacks. Install them, or run this step in QGIS's Python.") from e
    return ogr, osr


def read_vector(path: str, layer: str | None = None) -> VectorData:
    ogr, osr = ogr_bindings()
    ogr.UseExceptions()
    try:
        src = ogr.Open(path)
    except RuntimeError as e:
        raise DeepPixelError(f"Cannot open vector file {path!r}: {e}.") from e
    if src is None:
        raise DeepPixelError(f"Cannot open vector file {path!r}; check the path and format.")
    lyr = src.GetLayerByName(layer) if layer else src.GetLayer(0)
    if lyr is None:
        raise DeepPixelError(f"Vector file {path!r} has no layer {layer!r}.")
    defn = lyr.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    srs = lyr.GetSpatialRef()
    if srs is not None:
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    geoms, attrs, fids = [], {n: [] for n in names}, []
    for feat in lyr:
        fids.append(feat.GetFID())
        g = feat.GetGeometryRef()
        geoms.append(wkb.loads(bytes(g.ExportToIsoWkb())) if g is not None else None)
        for n in names:
            attrs[n].append(feat.GetField(n))
    return VectorData(geoms, attrs, srs.ExportToWkt() if srs is not None else None, names, fids)
