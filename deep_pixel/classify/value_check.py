"""Are the raster's values like the training data's? A raster of another product or scale (reflectance 0-1
against digital numbers 0-10000, 8-bit rescaled imagery) is classified without any error, and nearly every
pixel lands in one class. A sample of small windows is compared with the model's band statistics."""
from __future__ import annotations

import numpy as np

GRID = 5                 # GRID x GRID windows spread over the raster
WINDOW = 64              # px on a side
FAR = 6.0                # band median this many training standard deviations from the training mean,
SPREAD = 20.0            # or the band's spread this many times smaller or larger than in training


def sample_values(ds, bands) -> np.ndarray | None:
    """(bands, n) valid pixel values of a few small windows spread over ``ds``; None when none is valid."""
    from ..io.gdal_mask import valid_in
    from ..io.raster import spread_windows
    parts = []
    for window in spread_windows(ds, GRID, WINDOW):
        data = ds.read(bands, window=window)
        valid = valid_in(ds, data, window)
        parts.append(data[:, valid].astype(np.float64))
    values = np.concatenate(parts, axis=1) if parts else np.empty((len(bands), 0))
    return values if values.shape[1] else None


def check_values(ds, bands, transform, progress) -> None:
    """Warn when most bands lie far from the training data: the median beyond FAR training standard deviations
    from the training mean, or a spread SPREAD times smaller or larger (another scale)."""
    from rasterio.errors import RasterioError
    try:
        values = sample_values(ds, bands)
    except (RasterioError, OSError):     # a damaged raster: Classify's own reading names it
        return
    if values is None:
        return
    mean, std = np.asarray(transform.mean, np.float64), np.asarray(transform.std, np.float64)
    median, spread = np.median(values, axis=1), values.std(axis=1)
    known = std > 1e-6                                  # a constant training band says nothing about scale
    unit = np.where(known, std, 1.0)
    ratio = np.where(known, (spread + 1e-12) / unit, 1.0)
    far = (np.abs(median - mean) / unit > FAR) | (ratio < 1 / SPREAD) | (ratio > SPREAD)
    if far.sum() * 2 <= len(bands):
        return
    shown = "; ".join(f"band {b}: median {m:.4g}, std {v:.3g} against a training mean of {a:.4g}, std {s:.3g}"
                      for b, m, v, a, s in list(zip(bands, median, spread, mean, std))[:3])
    progress.warn(f"The raster's values are far from the training data's in {int(far.sum())} of {len(bands)} "
                  f"band(s) ({shown}). Is it the same product and scale (e.g. reflectance 0-1 against 0-10000, or "
                  "imagery rescaled to 8 bits)? The classes will be unreliable: classify a raster like the one "
                  "the model was trained on, or train on this one.")
