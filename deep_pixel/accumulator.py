"""Blending tile predictions into a seamless class raster, holding one tile and one seam band.

Each tile's class probabilities are weighted by a Hann (cosine) window that fades towards the
tile's borders, except along the raster's outer edges where no other tile can take over. Tiles
arrive strip by strip (rows of tiles), left to right. ``RollingBlender`` keeps the weighted sums
only where they are still changing: a tile-sized window over the current tile's columns, and the
"carry", the rows the next strip of tiles overlaps (about twice the padding, full width). Columns
of the current strip are final as soon as the next tile starts to their right; they are handed out
as blocks to decide. Memory: classes x tile x tile + classes x seam rows x raster width, never
classes x tile x width, let alone classes x height x width.
"""
from __future__ import annotations

from functools import lru_cache

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
    """(tile, tile) weights for a tile at (y0, x0) of a height x width raster (read-only, shared)."""
    return _window_2d(tile, y0 <= 0, y0 + tile >= height, x0 <= 0, x0 + tile >= width)


@lru_cache(maxsize=16)
def _window_2d(tile, top, bottom, left, right) -> np.ndarray:
    w = _window_1d(tile, top, bottom)[:, None] * _window_1d(tile, left, right)[None, :]
    w.flags.writeable = False
    return w


class RollingBlender:
    """Weighted probability sums for one strip of tiles at a time; hands out final blocks.

    Per strip: ``start_strip(r0, next_r0)``, then for each tile position in increasing column order
    ``move_to(c0)`` (returns the blocks that became final) and, unless the tile was skipped,
    ``add(probs)``; finally ``end_strip()``. A block is ``(col, sums, weights)`` for the strip's
    final rows [r0, min(next_r0, height)) and columns [col, col + n).
    """

    def __init__(self, height: int, width: int, num_classes: int, tile: int):
        self.height, self.width, self.classes, self.tile = height, width, num_classes, tile
        self.sums = np.zeros((num_classes, tile, tile), dtype=np.float32)
        self.weights = np.zeros((tile, tile), dtype=np.float32)
        self.carry = np.zeros((num_classes, 0, width), dtype=np.float32)
        self.carry_w = np.zeros((0, width), dtype=np.float32)
        self.r0 = self.final_rows = self.x = 0
        self.peak_bytes = 0

    @property
    def nbytes(self) -> int:
        """The largest blending memory held at once (window + both carries)."""
        return self.peak_bytes

    def start_strip(self, r0: int, next_r0: int) -> None:
        t = self.tile
        self.r0, self.x = r0, 0
        self.final_rows = min(next_r0, self.height) - r0
        keep = t - self.final_rows if next_r0 < self.height else 0      # rows the next strip shares
        self.new_carry = np.zeros((self.classes, keep, self.width), dtype=np.float32)
        self.new_carry_w = np.zeros((keep, self.width), dtype=np.float32)
        self.peak_bytes = max(self.peak_bytes, self.sums.nbytes + self.weights.nbytes + self.new_carry.nbytes
                              + self.new_carry_w.nbytes + self.carry.nbytes + self.carry_w.nbytes)
        self._load(0, t)

    def _load(self, a: int, b: int) -> None:
        """Window columns [a, b) start from the previous strip's carry (top rows) and zeros."""
        self.sums[:, :, a:b] = 0
        self.weights[:, a:b] = 0
        x0, x1 = self.x + a, min(self.x + b, self.width)
        h = self.carry_w.shape[0]
        if x1 > x0 and h:
            self.sums[:, :h, a:a + x1 - x0] = self.carry[:, :, x0:x1]
            self.weights[:h, a:a + x1 - x0] = self.carry_w[:, x0:x1]

    def _final(self, n: int):
        """The window's first ``n`` columns are final: a block, and their shared rows to the carry."""
        x0, x1 = self.x, min(self.x + n, self.width)
        if x1 <= x0:
            return None
        f = self.final_rows
        keep = self.new_carry_w.shape[0]
        if keep:
            self.new_carry[:, :, x0:x1] = self.sums[:, f:f + keep, :x1 - x0]
            self.new_carry_w[:, x0:x1] = self.weights[f:f + keep, :x1 - x0]
        return x0, self.sums[:, :f, :x1 - x0].copy(), self.weights[:f, :x1 - x0].copy()

    def move_to(self, c0: int) -> list:
        """Slide the window to the tile starting at column ``c0``; returns the blocks now final."""
        shift = c0 - self.x
        if shift <= 0:
            return []
        if shift > self.tile:
            raise ValueError(f"tile columns jump by {shift} px, more than a tile ({self.tile})")
        block = self._final(shift)
        t = self.tile
        self.sums[:, :, :t - shift] = self.sums[:, :, shift:]
        self.weights[:, :t - shift] = self.weights[:, shift:]
        self.x = c0
        self._load(t - shift, t)
        return [block] if block else []

    def add(self, probs: np.ndarray) -> None:
        """probs: (classes, tile, tile) of the tile at (strip row, current column)."""
        w = blend_window(self.tile, self.r0, self.x, self.height, self.width)
        self.sums += probs * w
        self.weights += w

    def end_strip(self) -> list:
        block = self._final(self.tile)
        self.carry, self.carry_w = self.new_carry, self.new_carry_w
        return [block] if block else []


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
