"""Reading rasters window by window, nodata masks, and describing a raster for the user."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
from rasterio.windows import Window

from ..core.errors import DeepPixelError

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


def open_raster(path: str):
    """Open a raster with rasterio, turning failures into a clear error."""
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
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
    names = tuple(d or f"Band_{i + 1}" for i, d in enumerate(ds.descriptions))
    return RasterInfo(
        path=ds.name, width=ds.width, height=ds.height, count=ds.count, dtype=ds.dtypes[0],
        crs_wkt=crs.to_wkt() if crs else None, is_geographic=bool(crs and crs.is_geographic),
        transform=tuple(ds.transform)[:6], nodata=ds.nodata, band_names=names)


def read_window(ds, window: Window, bands=None) -> np.ndarray:
    """Read (bands, h, w); parts of the window outside the raster are filled with nodata/0."""
    indexes = list(bands) if bands else list(range(1, ds.count + 1))
    inside = (window.col_off >= 0 and window.row_off >= 0
              and window.col_off + window.width <= ds.width
              and window.row_off + window.height <= ds.height)
    if inside:
        return ds.read(indexes, window=window)
    fill = ds.nodata if ds.nodata is not None and not np.isnan(ds.nodata) else 0
    return ds.read(indexes, window=window, boundless=True, fill_value=fill)


def valid_mask(data: np.ndarray, nodata) -> np.ndarray:
    """(h, w) bool: True where every band holds a real value (not nodata, not NaN/inf)."""
    valid = np.ones(data.shape[1:], dtype=bool)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.all(np.isfinite(data), axis=0)
    if nodata is not None and not np.isnan(nodata):
        valid &= np.all(data != np.asarray(nodata).astype(data.dtype), axis=0)
    return valid


def window_transform(ds, window: Window):
    return rasterio.windows.transform(window, ds.transform)
