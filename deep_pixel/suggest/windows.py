"""Ranking candidate windows by mean uncertainty and picking K that are spread out.

A candidate window is k x k cells of a CellGrid (grid.py), at every cell position, so windows move in
steps of one cell (a quarter of the window when the size allows). Its sums come from a summed-area
table of the grid. A window is eligible when at least half its pixels have an uncertainty value, no
labelled pixel lies in it or within one cell of it, and (with a mask) every pixel is inside the mask.
Picking is greedy, most uncertain first; a picked window blocks every window closer than one window
size to it, so no two overlap or touch and the picks spread out (without that gap the first few
picks of the synthetic scene lined up along one uncertain field edge). Equal means are ordered by a permutation drawn from
the seed, so a seed gives one answer and another seed may pick differently among equals.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_VALID_FRACTION = 0.5
TIE_DECIMALS = 6                  # means equal to this many decimals are ties


@dataclass
class Pick:
    row: int                      # top-left cell of the window
    col: int
    mean: float                   # mean uncertainty of its valid pixels
    class_counts: np.ndarray | None


def cells_per_window(window: int) -> int:
    """How many cells across a window: 4 when the size divides by 4, else 2 or 1 (cells are whole pixels)."""
    return next(k for k in (4, 2, 1) if window % k == 0 and window // k >= 1)


def box_sums(a: np.ndarray, k: int) -> np.ndarray:
    """Sums of every k x k box of the last two axes (summed-area table): shape (..., h - k + 1, w - k + 1)."""
    s = np.zeros(a.shape[:-2] + (a.shape[-2] + 1, a.shape[-1] + 1), dtype=np.float64)
    s[..., 1:, 1:] = a.cumsum(axis=-2).cumsum(axis=-1)
    return s[..., k:, k:] - s[..., :-k, k:] - s[..., k:, :-k] + s[..., :-k, :-k]


def window_means(grid, k: int) -> tuple:
    """(mean uncertainty, eligible) of every k x k-cell window position."""
    pixels = (k * grid.cell) ** 2
    valid = box_sums(grid.valid, k)
    means = box_sums(grid.sums, k) / np.maximum(valid, 1)
    eligible = valid >= MIN_VALID_FRACTION * pixels
    near = box_sums(np.pad(grid.labelled, 1), k + 2)          # the window grown by one cell on each side
    eligible &= near == 0
    if grid.inside is not None:
        eligible &= box_sums(grid.inside, k) >= pixels
    return means, eligible


def pick_windows(grid, k: int, count: int, seed: int, gap: int | None = None) -> tuple:
    """([Pick], eligible windows): up to ``count`` windows, most uncertain first, none overlapping or touching
    (``gap``: the fewest whole cells between two windows; default one window, ``k``, so that the picks
    spread over the raster instead of lining up along one uncertain edge)."""
    gap = k if gap is None else max(1, gap)
    means, eligible = window_means(grid, k)
    if means.size == 0:
        return [], 0
    flat = np.flatnonzero(eligible)
    ties = np.random.default_rng(seed).permutation(means.size)[flat]
    order = flat[np.lexsort((ties, -np.round(means.ravel()[flat], TIE_DECIMALS)))]
    blocked = np.zeros(means.shape, dtype=bool)
    picks = []
    width = means.shape[1]
    for f in order:
        i, j = divmod(int(f), width)
        if blocked[i, j]:
            continue
        reach = k + gap - 1
        blocked[max(0, i - reach):i + reach + 1, max(0, j - reach):j + reach + 1] = True
        counts = None if grid.classes is None else grid.classes[:, i:i + k, j:j + k].sum(axis=(1, 2))
        picks.append(Pick(i, j, float(means[i, j]), counts))
        if len(picks) == count:
            break
    return picks, int(flat.size)


def class_mix(counts, names, min_share: float = 0.01) -> str:
    """'water 60%, forest 40%': the predicted classes of a window, largest first (shares under 1% left out)."""
    if counts is None or counts.sum() == 0:
        return ""
    shares = counts / counts.sum()
    order = sorted(range(len(shares)), key=lambda i: (-shares[i], i))
    return ", ".join(f"{names[i]} {shares[i] * 100:.0f}%" for i in order if shares[i] >= min_share)
