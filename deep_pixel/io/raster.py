"""Reading rasters window by window, nodata masks, and describing a raster for the user."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.windows import Window

from ..core.errors import DeepPixelError

METRES_PER_DEGREE = 111_320.0
RGB = ("red", "green", "blue")
ASSUMED_NIR = "nir (assumed)"     # the 4th band of an undescribed RGB-tagged 4-band raster
SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


@dataclass(frozen=True)
class RasterInfo:
    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str | None
    is_geographic: bool
    transform: tuple
    nodata: float | None
    band_names: tuple

    @property
    def pixel_size(self) -> tuple:
        a, b, _c, d, e, _f = self.transform[:6]
        return (float(np.hypot(a, d)), float(np.hypot(b, e)))


def pixel_metres(pixel_size, geographic: bool, lat: float = 0.0) -> tuple:
    """(x, y) pixel size in metres: degrees are converted at latitude ``lat`` (x shrinks with its cosine)."""
    if not geographic:
        return tuple(pixel_size)
    return (pixel_size[0] * METRES_PER_DEGREE * math.cos(math.radians(lat)), pixel_size[1] * METRES_PER_DEGREE)


def pixel_height_metres(pixel_size, crs_wkt: str | None):
    """A pixel's height in metres (degrees converted) from its size and CRS; None when the size is unknown.
    A CRS that cannot be read leaves the size in its own units."""
    if not pixel_size:
        return None
    try:
        geographic = bool(crs_wkt) and rasterio.crs.CRS.from_wkt(crs_wkt).is_geographic
    except rasterio.errors.CRSError:
        geographic = False
    return pixel_metres(pixel_size, geographic)[1]


def open_raster(path: str):
    """Open a raster with rasterio, turning failures into a clear error."""
    try:
        return rasterio.open(path)
    except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError, CPLE_BaseError) as e:
        raise DeepPixelError(
            f"Cannot open raster {path!r}: {e}. Check the path and that GDAL can read the format.") from e


def describe(ds) -> RasterInfo:
    if ds.dtypes[0] not in SUPPORTED_DTYPES:
        raise DeepPixelError(f"Raster {ds.name}: data type {ds.dtypes[0]} is not supported; "
                             f"convert it to one of {', '.join(SUPPORTED_DTYPES)}.")
    if len(set(ds.dtypes)) > 1:
        raise DeepPixelError(f"Raster {ds.name} mixes band data types {sorted(set(ds.dtypes))}; "
                             "convert it to one data type (e.g. gdal_translate -ot Float32).")
    crs = ds.crs
    colours = [c.name for c in ds.colorinterp]
    if "alpha" in colours:
        from .gdal_mask import alpha_band
        alpha_holds_data = alpha_band(ds) is None
    else:
        alpha_holds_data = False
    names = band_names(ds.descriptions, colours, alpha_holds_data)
    return RasterInfo(
        path=ds.name, width=ds.width, height=ds.height, count=ds.count, dtype=ds.dtypes[0],
        crs_wkt=crs.to_wkt() if crs else None, is_geographic=bool(crs and crs.is_geographic),
        transform=tuple(ds.transform)[:6], nodata=ds.nodata, band_names=names)


def band_names(descriptions, colour_interpretations, alpha_holds_data: bool = False) -> tuple:
    """A name per band: its description; in a raster without any description, its colour interpretation when
    that is red, green or blue (an RGB aerial photo's bands carry only that); else Band_<n>. The fourth band
    of an undescribed RGB-tagged 4-band raster is taken as near infrared (see _assumed_nir). Spectral indices,
    the order check in Classify and the training report's pictures read these names."""
    described = any(descriptions)
    colours = [c if c in RGB and colour_interpretations.count(c) == 1 and not described
               else None for c in colour_interpretations]
    colours += [None] * (len(descriptions) - len(colours))
    names = [d or colours[i] or f"Band_{i + 1}" for i, d in enumerate(descriptions)]
    return tuple(names if described else _assumed_nir(names, colour_interpretations, alpha_holds_data))


def _assumed_nir(names: list, colours, alpha_holds_data: bool) -> list:
    """Four bands besides an alpha mask, three tagged red, green and blue, the fourth untagged (or tagged alpha
    while holding data, as GDAL tags any 4th band of an 8-bit GeoTIFF written without PHOTOMETRIC): RGB + near
    infrared, the order of NAIP and most 4-band aerial and satellite products, so NDVI and NDWI can be added.
    Named so that the training log and the model's .emd say it was assumed; any band description overrules it
    (band_names does not call this for a described raster)."""
    colours = list(colours) + ["undefined"] * (len(names) - len(colours))
    data = [i for i, c in enumerate(colours) if c != "alpha" or alpha_holds_data]     # an alpha mask is no band
    rest = [i for i in data if names[i] not in RGB]
    if len(data) == 4 and len(rest) == 1 and colours[rest[0]] in ("undefined", "gray", "alpha"):
        names[rest[0]] = ASSUMED_NIR
    return names


@contextlib.contextmanager
def gdal_reading(path: str):
    """GDAL's failures while reading pixels (a truncated file, a VRT whose source is missing, a damaged
    block) as one clear error naming the file and GDAL's reason."""
    try:
        yield
    except (rasterio.errors.RasterioError, rasterio.errors.RasterioIOError, CPLE_BaseError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DeepPixelError(
            f"Cannot read the pixels of {path}: {reason}. The file may be truncated or damaged, or a file it "
            f"refers to (a VRT's source) may be missing; check it with: gdalinfo -checksum {path}") from e


def read_bands(ds, indexes, window: Window, **kwargs) -> np.ndarray:
    """``ds.read`` with GDAL's failures turned into a clear error."""
    with gdal_reading(ds.name):
        return ds.read(indexes, window=window, **kwargs)


def read_window(ds, window: Window, bands=None) -> np.ndarray:
    """Read (bands, h, w); parts of the window outside the raster are filled with nodata/0."""
    indexes = list(bands) if bands else list(range(1, ds.count + 1))
    if inside(ds, window):
        return read_bands(ds, indexes, window)
    fill = ds.nodata if ds.nodata is not None and not np.isnan(ds.nodata) else 0
    return read_bands(ds, indexes, window, boundless=True, fill_value=fill)


def valid_mask(data: np.ndarray, nodata) -> np.ndarray:
    """(h, w) bool: True where every band holds a real value (not nodata, not NaN/inf)."""
    valid = np.ones(data.shape[1:], dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.all(np.isfinite(data), axis=0)
    if nodata is not None and not np.isnan(nodata):
        valid &= np.all(data != np.asarray(nodata).astype(data.dtype), axis=0)
    return valid


def inside(ds, window: Window) -> bool:
    """Whether ``window`` lies wholly inside ``ds``."""
    return (window.col_off >= 0 and window.row_off >= 0 and window.col_off + window.width <= ds.width
            and window.row_off + window.height <= ds.height)


def spread_windows(ds, grid: int, size: int):
    """Up to grid x grid windows of ``size`` px on a side, spread evenly over ``ds`` (corners included)."""
    h, w = min(size, ds.height), min(size, ds.width)
    rows = sorted({int(r) for r in np.linspace(0, ds.height - h, grid)})
    cols = sorted({int(c) for c in np.linspace(0, ds.width - w, grid)})
    return [Window(c, r, w, h) for r in rows for c in cols]


def window_transform(ds, window: Window):
    return rasterio.windows.transform(window, ds.transform)


def footprint_bounds(window: Window, transform) -> tuple:
    """(left, bottom, right, top) around all four corners of ``window``: right for rotated grids too,
    where the two corners rasterio's window bounds use miss part of the window."""
    c0, r0 = window.col_off, window.row_off
    c1, r1 = c0 + window.width, r0 + window.height
    xs, ys = zip(*(transform * (c, r) for c, r in ((c0, r0), (c1, r0), (c0, r1), (c1, r1))))
    return (min(xs), min(ys), max(xs), max(ys))


def raster_bounds(ds) -> tuple:
    """The whole raster's footprint_bounds."""
    return footprint_bounds(Window(0, 0, ds.width, ds.height), ds.transform)
