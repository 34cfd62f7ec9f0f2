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

    def _final(self, n: int, sink=None):
        """The window's first ``n`` columns are final: a block (to ``sink`` as views, else returned as
        copies), and their shared rows to the carry."""
        x0, x1 = self.x, min(self.x + n, self.width)
        if x1 <= x0:
            return None
        f = self.final_rows
        keep = self.new_carry_w.shape[0]
        if keep:
            self.new_carry[:, :, x0:x1] = self.sums[:, f:f + keep, :x1 - x0]
            self.new_carry_w[:, x0:x1] = self.weights[f:f + keep, :x1 - x0]
        block = (x0, self.sums[:, :f, :x1 - x0], self.weights[:f, :x1 - x0])
        if sink is not None:
            sink([block])
            return None
        return block[0], block[1].copy(), block[2].copy()

    def move_to(self, c0: int, sink=None) -> list:
        """Slide the window to the tile starting at column ``c0``; the blocks now final go to
        ``sink(blocks)`` (views, valid during the call) or are returned (copies)."""
        shift = c0 - self.x
        if shift <= 0:
            return []
        if shift > self.tile:
            raise ValueError(f"tile columns jump by {shift} px, more than a tile ({self.tile})")
        block = self._final(shift, sink)
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

    def end_strip(self, sink=None) -> list:
        block = self._final(self.tile, sink)
        self.carry, self.carry_w = self.new_carry, self.new_carry_w
        return [block] if block else []


def decide(probs: np.ndarray, weights: np.ndarray, excluded=()):
    """(classes, rows, w) summed probabilities -> (index (rows, w) int16, confidence float32, covered bool).

    A running maximum over the few classes (contiguous passes) rather than ``argmax(axis=0)``,
    which strides across the class planes and took 4x longer; ties go to the first class, as argmax."""
    covered = weights > 0
    candidates = [c for c in range(probs.shape[0]) if c not in set(excluded)] or [0]
    best = probs[candidates[0]].copy()
    index = np.full(best.shape, candidates[0], dtype=np.int16)
    for c in candidates[1:]:
        higher = probs[c] > best
        index += (np.int16(c) - index) * higher          # arithmetic: 3x faster than masked assignment
        np.maximum(best, probs[c], out=best)
    confidence = np.divide(best, weights, out=np.zeros_like(weights), where=covered)
    return index, confidence, covered


def uncertainty(probs: np.ndarray, weights: np.ndarray, measure: str, excluded=()) -> np.ndarray:
    """(classes, rows, w) summed probabilities -> (rows, w) float32 from 0 (sure) to 1 (unsure).

    The probabilities are those of the classes that can be predicted (renormalised when some are
    excluded). ``entropy``: -sum(p log p) / log(classes); ``margin``: 1 - (p1 - p2), the two most
    likely classes. Pixels no tile covered get 0 (the outputs make them nodata)."""
    candidates = [c for c in range(probs.shape[0]) if c not in set(excluded)]
    out = np.zeros(weights.shape, dtype=np.float32)
    if len(candidates) < 2:
        return out
    total = probs[candidates[0]].copy()
    for c in candidates[1:]:
        total += probs[c]
    inv = np.divide(np.float32(1), total, out=np.zeros_like(total), where=(weights > 0) & (total > 0))
    if measure == "margin":
        first, second = np.zeros_like(total), np.zeros_like(total)
        for c in candidates:
            np.maximum(second, np.minimum(first, probs[c]), out=second)
            np.maximum(first, probs[c], out=first)
        out[:] = (first - second) * inv
        np.subtract(np.float32(1), out, out=out, where=inv > 0)
    else:
        for c in candidates:
            p = probs[c] * inv
            np.clip(p, np.float32(1e-12), np.float32(1), out=p)
            out -= p * np.log(p)
        out *= np.float32(1 / np.log(len(candidates)))
    return np.clip(out, 0, 1, out=out)
