"""A raster's own GDAL mask beside its nodata value: a per-dataset mask (a .msk file, a GeoTIFF's internal mask,
as JPEG-compressed orthophotos often have) or an alpha band (RGBA). Masked pixels are nodata for Export, Train
Model and Classify alike.

A band tagged alpha is not always one: GDAL writes a 4-band 8-bit GeoTIFF created without PHOTOMETRIC as RGBA,
so an RGB + near-infrared image made with gdal_translate, gdal_merge or rasterio's defaults has its infrared band
tagged alpha. An alpha band is fully transparent or fully opaque nearly everywhere; a band with many values in
between holds data, and is read as data only."""
from __future__ import annotations

import os

import numpy as np
from rasterio.windows import Window

from .raster import gdal_reading, inside, spread_windows, valid_mask

MASK_SHARE = 0.95            # a real alpha band: at least this share of sampled pixels at 0 or at its largest value
SAMPLE_GRID, SAMPLE_SIZE = 3, 64
_alpha_checked: dict = {}


def gdal_masked(ds) -> bool:
    """Whether ``ds`` carries a GDAL mask besides its nodata value."""
    return alpha_band(ds) is not None or _per_dataset_mask(ds)


def valid_in(ds, data: np.ndarray, window: Window, nodata=None) -> np.ndarray:
    """valid_mask of ``data`` (read from ``window`` of ``ds``, decimated to its size), less the pixels that the
    raster's GDAL mask hides. Parts of the window outside the raster are masked too."""
    valid = valid_mask(data, ds.nodata if nodata is None else nodata)
    alpha = alpha_band(ds)
    if alpha or _per_dataset_mask(ds):
        read = dict(window=window, out_shape=data.shape[1:], boundless=not inside(ds, window))
        with gdal_reading(ds.name):
            valid &= (ds.read(alpha, **read) if alpha else ds.read_masks(1, **read)) > 0
    return valid


def _per_dataset_mask(ds) -> bool:
    """A mask of its own (.msk, internal); GDAL's alpha-band mask is alpha_band's to judge."""
    from rasterio.enums import MaskFlags
    return any(MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags for flags in ds.mask_flag_enums)


def alpha_band(ds) -> int | None:
    """The 1-based band tagged alpha (GDAL's own mask sees one only as the last of 2 or 4 bands; an RGB +
    near-infrared + alpha raster has it as band 5), when it holds a mask; judged once per file."""
    from rasterio.enums import ColorInterp
    tagged = [i + 1 for i, c in enumerate(ds.colorinterp) if c == ColorInterp.alpha]
    if not tagged:
        return None
    key = (ds.name, tagged[0], _stamp(ds.name))
    if key not in _alpha_checked:
        if len(_alpha_checked) > 256:
            _alpha_checked.clear()
        _alpha_checked[key] = holds_a_mask(ds, tagged[0])
    return tagged[0] if _alpha_checked[key] else None


def holds_a_mask(ds, band: int) -> bool:
    """Whether ``band`` is 0 or its largest value in at least MASK_SHARE of a few windows spread over ``ds``."""
    with gdal_reading(ds.name):
        values = np.concatenate([ds.read(band, window=w).ravel() for w in spread_windows(ds, SAMPLE_GRID,
                                                                                           SAMPLE_SIZE)])
    extreme = np.count_nonzero((values == 0) | (values == values.max()))
    return extreme >= MASK_SHARE * values.size


def _stamp(path: str):
    try:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    except OSError:
        return None
