"""Per-band statistics accumulated window by window (min, max, mean, std, percentiles)."""
from __future__ import annotations

import numpy as np

PERCENTILES = (1, 2, 5, 50, 95, 98, 99)


class BandStats:
    """Exact min/max/mean/std, percentiles from a bounded random sample of pixels."""

    def __init__(self, bands: int, sample_per_window: int = 4096, max_samples: int = 400_000, seed: int = 0):
        self.bands = bands
        self.count = 0
        self.sum = np.zeros(bands)
        self.sumsq = np.zeros(bands)
        self.min = np.full(bands, np.inf)
        self.max = np.full(bands, -np.inf)
        self._samples: list = []
        self._n_samples = 0
        self.sample_per_window = sample_per_window
        self.max_samples = max_samples
        self._rng = np.random.default_rng(seed)

    def add(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Add the valid pixels of a (bands, h, w) window."""
        pixels = data[:, valid].astype(np.float64)
        if pixels.shape[1] == 0:
            return
        self.count += pixels.shape[1]
        self.sum += pixels.sum(axis=1)
        self.sumsq += np.square(pixels).sum(axis=1)
        self.min = np.minimum(self.min, pixels.min(axis=1))
        self.max = np.maximum(self.max, pixels.max(axis=1))
        if self._n_samples < self.max_samples:
            k = min(self.sample_per_window, pixels.shape[1], self.max_samples - self._n_samples)
            pick = self._rng.choice(pixels.shape[1], size=k, replace=False)
            self._samples.append(pixels[:, pick])
            self._n_samples += k

    def result(self) -> dict:
        if self.count == 0:
            return {"count": 0}
        mean = self.sum / self.count
        var = np.maximum(self.sumsq / self.count - mean ** 2, 0.0)
        sample = np.concatenate(self._samples, axis=1)
        pct = np.percentile(sample, PERCENTILES, axis=1)
        return {
            "count": int(self.count),
            "min": self.min.tolist(), "max": self.max.tolist(),
            "mean": mean.tolist(), "std": np.sqrt(var).tolist(),
            "percentiles": {str(p): pct[i].tolist() for i, p in enumerate(PERCENTILES)},
        }


def raster_stats(ds, bands, nodata, max_pixels: int = 2**20) -> dict:
    """Band statistics of the whole raster ``ds`` (valid pixels) from about ``max_pixels`` pixels on an even
    grid (GDAL reads every k-th row and column, k from the raster's size), in bands of rows."""
    from .gdal_mask import valid_in
    from .raster import read_bands
    from rasterio.windows import Window
    step = max(1, int(np.ceil(np.sqrt(ds.width * ds.height / max_pixels))))
    acc = BandStats(len(bands))
    rows_per_read = max(1, 4096 // step) * step
    for top in range(0, ds.height, rows_per_read):
        h = min(rows_per_read, ds.height - top)
        shape = (len(bands), max(1, h // step), max(1, ds.width // step))       # GDAL decimates (nearest)
        window = Window(0, top, ds.width, h)
        data = read_bands(ds, list(bands), window, out_shape=shape)
        acc.add(data, valid_in(ds, data, window, nodata))
    out = acc.result()
    out["every"] = step
    return out
