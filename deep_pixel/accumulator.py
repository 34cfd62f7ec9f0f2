"""Blending tile predictions into a seamless class raster, one strip of rows at a time.

Each tile's class probabilities are weighted by a Hann (cosine) window that fades towards the
tile's borders, except along the raster's outer edges where no other tile can take over. The sums
of weighted probabilities and of weights are kept only for the rows that tiles still touch (one
tile height), so memory is classes x tile x raster width, never classes x height x width.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-3


def _window_1d(tile: int, at_start: bool, at_end: bool) -> np.ndarray:
    i = np.arange(tile, dtype=np.float32)
    w = np.sin(np.pi * (i + 0.5) / tile) ** 2
    half = tile // 2
    if at_start:
        w[:half] = 1.0
    if at_end:
        w[half:] = 1.0
    return np.maximum(w, EPS)


def blend_window(tile: int, y0: int, x0: int, height: int, width: int) -> np.ndarray:
    """(tile, tile) weights for a tile at (y0, x0) of a height x width raster."""
    wy = _window_1d(tile, y0 <= 0, y0 + tile >= height)
    wx = _window_1d(tile, x0 <= 0, x0 + tile >= width)
    return wy[:, None] * wx[None, :]


class StripAccumulator:
    """Sums weighted probabilities for the rows [top, top + tile) and hands out finished rows."""

    def __init__(self, height: int, width: int, num_classes: int, tile: int):
        self.height, self.width, self.tile = height, width, tile
        self.top = 0
        self.probs = np.zeros((num_classes, tile, width), dtype=np.float32)
        self.weights = np.zeros((tile, width), dtype=np.float32)
        self.valid = np.zeros((tile, width), dtype=bool)

    @property
    def nbytes(self) -> int:
        return self.probs.nbytes + self.weights.nbytes + self.valid.nbytes

    def mark_valid(self, y0: int, valid: np.ndarray) -> None:
        """valid: (rows, width) input pixels to classify, for rows starting at raster row y0."""
        r = y0 - self.top
        h = min(valid.shape[0], self.height - y0, self.tile - r)
        self.valid[r:r + h] |= valid[:h]

    def add(self, probs: np.ndarray, y0: int, x0: int) -> None:
        """probs: (classes, tile, tile) for the tile at raster (y0, x0); parts outside the raster are cut."""
        t = self.tile
        w = blend_window(t, y0, x0, self.height, self.width)
        h = min(t, self.height - y0)
        cw = min(t, self.width - x0)
        r = y0 - self.top
        if r < 0 or r + h > t:
            raise ValueError(f"tile at row {y0} is outside the accumulator rows {self.top}..{self.top + t}")
        w = w[:h, :cw]
        self.probs[:, r:r + h, x0:x0 + cw] += probs[:, :h, :cw] * w
        self.weights[r:r + h, x0:x0 + cw] += w

    def advance(self, new_top: int):
        """Rows above ``new_top`` are final: returns (row, probs, weights, valid) for them; shifts the buffer."""
        new_top = min(new_top, self.height)
        n = new_top - self.top
        if n <= 0:
            return None
        n = min(n, self.tile)
        out = (self.top, self.probs[:, :n].copy(), self.weights[:n].copy(), self.valid[:n].copy())
        for buf in (self.probs[:], self.weights[None], self.valid[None]):
            buf[:, : self.tile - n] = buf[:, n:]
            buf[:, self.tile - n:] = 0
        self.top += n
        if self.top < new_top:          # a jump past the buffer: the rows between got no tile
            self.top = new_top
        return out

    def finish(self):
        return self.advance(self.height)


def decide(probs: np.ndarray, weights: np.ndarray, excluded=()):
    """(classes, rows, w) summed probabilities -> (index (rows, w) int, confidence float32, covered bool)."""
    covered = weights > 0
    p = probs
    if excluded:
        p = probs.copy()
        p[list(excluded)] = -1.0
    index = np.argmax(p, axis=0)
    best = np.take_along_axis(p, index[None], axis=0)[0]
    confidence = np.divide(best, weights, out=np.zeros_like(weights), where=covered)
    return index, confidence, covered
