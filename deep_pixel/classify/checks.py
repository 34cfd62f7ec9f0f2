"""Does this raster fit this model? Bands, band order, CRS and pixel size, background classes."""
from __future__ import annotations

from ..core.errors import DeepPixelError
from ..io.raster import pixel_metres
from .options import BACKGROUND_NAMES


def bands_to_read(info, package, alpha: int | None = None) -> list:
    """1-based band numbers to read, or a clear error when the raster cannot feed the model. A raster's alpha
    band (``alpha``: its number, when it holds a mask) after the model's bands is its mask, not a band too many."""
    bands = list(package.bands)
    wanted = len(bands)
    alpha_after = info.count == wanted + 1 and alpha == info.count
    if bands == list(range(1, wanted + 1)) and info.count != wanted and not alpha_after:
        raise DeepPixelError(
            f"The model takes {wanted} band(s) but {info.path} has {info.count}. Classify a raster with the "
            f"same bands, in the same order, as the one the training chips came from.")
    if max(bands) > info.count:
        raise DeepPixelError(f"The model reads bands {bands} but {info.path} has only {info.count} band(s).")
    names = package.emd.get("BandNames")
    if isinstance(names, list) and len(names) == wanted:
        mine = [info.band_names[b - 1] for b in bands]
        if _named(names) and _named(mine) and mine != names and sorted(mine) == sorted(names):
            raise DeepPixelError(f"The raster's bands are in another order ({', '.join(mine)}) than the model's "
                                 f"({', '.join(names)}). Reorder them (e.g. gdal_translate -b ...).")
    return bands


def _named(names) -> bool:
    return all(n and not n.lower().startswith(("band_", "band ")) for n in names)


def check_grid(info, package, progress) -> None:
    """CRS and pixel size against the model: a large pixel-size mismatch is an error, the rest is reported."""
    if info.crs_wkt is None:
        raise DeepPixelError(f"{info.path} has no coordinate reference system; assign one "
                             "(e.g. gdal_edit.py -a_srs EPSG:xxxx) so the output can be placed.")
    if package.crs_wkt and package.crs_wkt != info.crs_wkt:
        progress.warn("The raster's CRS differs from the training raster's; the model sees pixels, so this "
                      "only matters through the pixel size checked next.")
    if not package.cell_size:
        return
    from rasterio.crs import CRS
    model_geo = bool(package.crs_wkt) and CRS.from_wkt(package.crs_wkt).is_geographic
    lat = abs(info.transform[5])
    mine = pixel_metres(info.pixel_size, info.is_geographic, lat if info.is_geographic else 0.0)
    theirs = pixel_metres(tuple(package.cell_size), model_geo, lat if model_geo else 0.0)
    ratio = max(mine[0] / theirs[0], theirs[0] / mine[0])
    if ratio > 2.0:
        raise DeepPixelError(
            f"The raster's pixels are {mine[0]:.3g} m but the model was trained on {theirs[0]:.3g} m pixels "
            f"({ratio:.1f}x apart): objects would look {ratio:.1f}x too {'big' if mine[0] < theirs[0] else 'small'}."
            f" Resample the raster first (gdalwarp -tr {theirs[0]:.6g} {theirs[1]:.6g} ...).")
    if ratio > 1.25:
        progress.warn(f"Pixel size {mine[0]:.3g} m differs from the model's {theirs[0]:.3g} m ({ratio:.2f}x); "
                      "results may degrade. Resample the raster if they do.")


def excluded_classes(schema, predict_background: bool, progress) -> tuple:
    """Model output indices left out of the decision when PREDICT_BACKGROUND is off."""
    if predict_background:
        return ()
    idx = tuple(i for i, c in enumerate(schema.classes) if c.name.strip().lower() in BACKGROUND_NAMES)
    if not idx:
        progress.log("PREDICT_BACKGROUND is off but the model has no class named background: nothing changes.")
    elif len(idx) == len(schema):
        raise DeepPixelError("PREDICT_BACKGROUND is off but every class of the model is a background class.")
    else:
        progress.log("Background class(es) " + ", ".join(schema.classes[i].name for i in idx)
                     + " are not predicted: their pixels go to the most likely other class.")
    return idx
