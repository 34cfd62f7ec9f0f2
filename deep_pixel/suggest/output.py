"""Suggest Samples' output: a GeoPackage of the suggested windows (rank, mean_uncertainty, class_mix),
checked before any work and written under a temporary name, renamed when complete."""
from __future__ import annotations

import os

from ..core.errors import DeepPixelError
from ..io.destinations import Place, check_destinations
from ..io.staging import staged_file
from ..io.vector import ogr_bindings

FIELDS = (("rank", "int"), ("mean_uncertainty", "real"), ("class_mix", "text"))


def check_suggest_destinations(input_raster, model_definition, input_uncertainty, input_samples, mask_polygons,
                               output, require_gpkg: bool = True) -> None:
    """Refuse, before any work, an output that would replace an input (``require_gpkg``: the command line's
    output is a GeoPackage; Processing writes any vector format itself)."""
    if output and require_gpkg and not output.lower().endswith(".gpkg"):
        raise DeepPixelError(f"OUTPUT {output}: Suggest Samples writes a GeoPackage; use a .gpkg file name.")
    if output and require_gpkg:
        ogr_bindings("Writing the suggestions GeoPackage")
    check_destinations([Place("INPUT_RASTER", input_raster or "", "raster"),
                        Place.infer("MODEL_DEFINITION", model_definition),
                        Place("INPUT_UNCERTAINTY", input_uncertainty or "", "raster"),
                        Place("INPUT_SAMPLES", input_samples or "", "vector"),
                        Place("MASK_POLYGONS", mask_polygons or "", "vector")],
                       [Place.infer("OUTPUT", output, folders=False)])


def write_suggestions(result, output: str) -> str:
    """The suggestions as polygons (layer ``suggestions``, the raster's CRS) in the GeoPackage ``output``."""
    ogr, osr = ogr_bindings("Writing the suggestions GeoPackage")
    ogr.UseExceptions()
    with staged_file(output) as tmp:
        os.remove(tmp)                                  # the GeoPackage driver creates the file itself
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(tmp)
        srs = None
        if result.crs_wkt:
            srs = osr.SpatialReference()
            srs.ImportFromWkt(result.crs_wkt)
        layer = ds.CreateLayer("suggestions", srs, ogr.wkbPolygon)
        kinds = {"int": ogr.OFTInteger, "real": ogr.OFTReal, "text": ogr.OFTString}
        for name, kind in FIELDS:
            layer.CreateField(ogr.FieldDefn(name, kinds[kind]))
        for s in result.suggestions:
            f = ogr.Feature(layer.GetLayerDefn())
            f.SetField("rank", s.rank)
            f.SetField("mean_uncertainty", s.mean_uncertainty)
            f.SetField("class_mix", s.class_mix)
            f.SetGeometry(ogr.CreateGeometryFromWkt(s.wkt))
            layer.CreateFeature(f)
        ds = None
    return output
