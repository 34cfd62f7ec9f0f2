"""Spatially separate train/validation split of chips, reproducible from a seed.

Chips are grouped into square blocks (two chip widths) by their centre; whole blocks, in a seeded
random order, go to validation until the requested share is reached. Then every training chip whose
footprint overlaps a validation chip is dropped (a buffer), so no pixel is seen on both sides.
Chips without a footprint (reference folders without georeferencing) are their own block.
"""
from __future__ import annotations

import numpy as np


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def spatial_split(chips, percent: float, seed: int) -> dict:
    """-> {"train": [indices], "valid": [indices], "dropped": [indices], "blocks": n}."""
    n = len(chips)
    if percent <= 0 or n < 2:
        return {"train": list(range(n)), "valid": [], "dropped": [], "blocks": 0}
    blocks: dict = {}
    for i, c in enumerate(chips):
        if c.box is None:
            key = (c.space, i)
        else:
            size = 2 * max(c.box[2] - c.box[0], c.box[3] - c.box[1])
            cx, cy = (c.box[0] + c.box[2]) / 2, (c.box[1] + c.box[3]) / 2
            key = (c.space, int(np.floor(cx / size)), int(np.floor(cy / size)))
        blocks.setdefault(key, []).append(i)
    keys = sorted(blocks, key=str)
    order = np.random.default_rng(seed).permutation(len(keys))
    target = max(1, int(round(n * percent / 100.0)))
    valid: list = []
    for k in order:
        if len(valid) >= target:
            break
        if len(valid) + len(blocks[keys[k]]) >= n:    # never take everything
            continue
        valid.extend(blocks[keys[k]])
    vset = set(valid)
    train, dropped = [], []
    for i, c in enumerate(chips):
        if i in vset:
            continue
        clash = c.box is not None and any(chips[j].space == c.space and chips[j].box is not None
                                          and _overlaps(c.box, chips[j].box) for j in valid)
        (dropped if clash else train).append(i)
    if not train:     # a single connected cluster: keep training data, validate on nothing
        return {"train": list(range(n)), "valid": [], "dropped": [], "blocks": len(keys)}
    return {"train": train, "valid": sorted(valid), "dropped": dropped, "blocks": len(keys)}
