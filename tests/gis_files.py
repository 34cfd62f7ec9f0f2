"""Small real GIS files for tests: GeoTIFFs (rasterio), GeoPackages (OGR) and GDAL's own burn."""
import os

import numpy as np
import rasterio
from affine import Affine
from osgeo import gdal, ogr, osr

EPSG = 32633


def write_raster(path, data, transform=Affine(1, 0, 1000, 0, -1, 2000), crs=EPSG, nodata=None):
    kw = dict(transform=transform, crs=rasterio.crs.CRS.from_epsg(crs)) if transform is not None else {}
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, nodata=nodata, **kw) as dst:
        dst.write(data)
    return str(path)


def write_vector(path, geoms, values, field_type=ogr.OFTInteger, epsg=EPSG):
    """A GeoPackage (a shapefile when ``path`` ends with .shp) with a 'cls' field, written by OGR (as a user's
    file would be); ``epsg`` is the CRS the layer says it is in."""
    driver = "ESRI Shapefile" if str(path).lower().endswith(".shp") else "GPKG"
    ds = ogr.GetDriverByName(driver).CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    lyr = ds.CreateLayer("samples", srs, ogr.wkbUnknown)
    lyr.CreateField(ogr.FieldDefn("cls", field_type))
    for g, v in zip(geoms, values):
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetField("cls", v)
        f.SetGeometry(ogr.CreateGeometryFromWkt(g.wkt))
        lyr.CreateFeature(f)
    ds = None
    return str(path)


def gdal_burn(raster_path, vector_path):
    """What GDAL's rasterizer burns for the vector on the raster's grid (the reference)."""
    src = gdal.Open(raster_path)
    mem = gdal.GetDriverByName("MEM").Create("", src.RasterXSize, src.RasterYSize, 1, gdal.GDT_Byte)
    mem.SetGeoTransform(src.GetGeoTransform())
    mem.SetProjection(src.GetProjection())
    vec = ogr.Open(vector_path)
    gdal.RasterizeLayer(mem, [1], vec.GetLayer(0), options=["ATTRIBUTE=cls"])
    return mem.ReadAsArray()


def scene_chips(scene, folder, stride=32, size=64):
    """Export Training Data of the synthetic test scene (its samples, its schema) into ``folder``."""
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    from deep_pixel.io.vector import read_vector
    vec = read_vector(scene.samples)
    export_training_data(scene.image, Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]],
                                              vec.crs_wkt), str(folder),
                         ExportOptions(tile_size_x=size, tile_size_y=size, stride_x=stride, stride_y=stride),
                         schema=scene.schema)
    return str(folder)


def chips_without_source(chips, folder) -> str:
    """A copy of the export ``chips`` in ``folder`` whose metadata points at a source raster that is gone."""
    import json
    import shutil
    from deep_pixel.chips.layout import EXPORT_METADATA
    moved = str(shutil.copytree(chips, os.path.join(folder, "chips")))
    meta = os.path.join(moved, EXPORT_METADATA)
    with open(meta) as f:
        content = json.load(f)
    content["source"]["path"] = os.path.join(folder, "gone.tif")
    with open(meta, "w") as f:
        json.dump(content, f)
    return moved


def colliding_images(scene, folder, size=96):
    """``folder``/scene.tif and scene.tiff: two crops of the synthetic scene whose outputs' names would
    collide (the .tiff holds the mirror image, so the two outputs differ)."""
    import os
    os.makedirs(folder, exist_ok=True)
    with rasterio.open(scene.image) as src:
        profile, data = src.profile, src.read(window=((0, size), (0, size)))
        profile.update(width=size, height=size, transform=src.window_transform(((0, size), (0, size))))
    for name in ("scene.tif", "scene.tiff"):
        with rasterio.open(os.path.join(folder, name), "w", **profile) as dst:
            dst.write(data if name.endswith(".tif") else data[:, ::-1])
    return str(folder)


def package_with_parameter(emd_path, folder, key, value) -> str:
    """A copy of the package of ``emd_path`` in ``folder`` (its other files linked) whose .emd has
    ModelParameters[``key``] = ``value``; returns the new .emd's path."""
    import json
    source = os.path.dirname(emd_path)
    with open(emd_path) as f:
        emd = json.load(f)
    emd["ModelParameters"][key] = value
    for name in os.listdir(source):
        if not name.endswith(".emd"):
            os.symlink(os.path.join(source, name), os.path.join(folder, name))
    path = os.path.join(folder, os.path.basename(emd_path))
    with open(path, "w") as f:
        json.dump(emd, f)
    return path


def masked_copy(scene, path, rows):
    """The scene without a nodata value, its first ``rows`` rows hidden by a GeoTIFF internal mask (pixels kept)."""
    import glob
    with rasterio.open(scene.image) as src:
        profile, image = src.profile, src.read()
    profile.update(nodata=None)
    mask = np.full(image.shape[1:], 255, np.uint8)
    mask[:rows] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(image)
            dst.write_mask(mask)
    assert not glob.glob(path + ".msk")
    return path
