"""Raw raster bands -> network input. Shared by training and inference so they never disagree.

Each band is standardised with the mean and standard deviation measured at export (any band
count, any data type; a constant band gets std 1 so it becomes 0). Optionally a normalised
difference index (e.g. NDVI from red and near-infrared) is appended as an extra channel. Invalid
(nodata) pixels become 0 in every channel.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DeepPixelError


@dataclass
class InputTransform:
    mean: list
    std: list
    # Optional normalised differences: list of [a, b] band positions (0-based in the model's
    # band list) giving (a - b) / (a + b); e.g. NDVI is [nir, red].
    indices: list = field(default_factory=list)

    def __post_init__(self):
        if len(self.mean) != len(self.std) or not self.mean:
            raise DeepPixelError("Normalisation statistics need one mean and one std per band.")
        with np.errstate(over="ignore"):    # statistics beyond float32 (a float64 raster's fill values) become
            self._mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]     # inf: training then names them
            std = np.asarray(self.std, dtype=np.float32)
        self._std = np.where(std > 1e-6, std, 1.0).astype(np.float32)[:, None, None]

    @property
    def bands(self) -> int:
        return len(self.mean)

    @property
    def channels(self) -> int:
        return self.bands + len(self.indices)

    def apply(self, data: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """(bands, h, w) raw values -> (channels, h, w) float32."""
        if data.shape[0] != self.bands:
            raise DeepPixelError(f"The model expects {self.bands} band(s) but got {data.shape[0]}.")
        raw = data.astype(np.float32, copy=False)
        out = np.empty((self.channels,) + data.shape[1:], dtype=np.float32)
        np.subtract(raw, self._mean, out=out[: self.bands])
        out[: self.bands] /= self._std
        for k, (a, b) in enumerate(self.indices):
            num = raw[a] - raw[b]
            den = np.abs(raw[a]) + np.abs(raw[b])
            out[self.bands + k] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        if not np.issubdtype(data.dtype, np.integer) or self.indices:     # integers cannot be NaN
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if valid is not None:
            out *= valid                      # (faster than a masked assignment; values are finite here)
        return out

    def to_json(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "indices": [list(map(int, p)) for p in self.indices]}

    @classmethod
    def from_json(cls, data: dict) -> "InputTransform":
        try:
            return cls([float(v) for v in data["mean"]], [float(v) for v in data["std"]],
                       [list(map(int, p)) for p in data.get("indices", [])])
        except (KeyError, TypeError, ValueError) as e:
            raise DeepPixelError(f"Invalid input normalisation in the model definition: {e}.") from e
