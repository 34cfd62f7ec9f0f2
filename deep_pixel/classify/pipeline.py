"""The Classify Pixels loop: read tiles ahead, run the network in batches, blend, write rows behind.

Tiles are read one window at a time in a background thread (with real neighbouring pixels, mirrored
past the raster's end, standardised for the network); the network runs on batches of tiles with
valid pixels; ``RollingBlender`` blends them; each strip's final rows are decided block by block
and written by a background thread while the next strip is computed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rasterio.windows import Window

from ..io.gdal_mask import valid_in
from ..io.raster import read_bands
from .blend import RollingBlender, decide, uncertainty
from .strip_io import BackgroundWriter, Prefetcher

if TYPE_CHECKING:
    from .job import Job


@dataclass
class TileData:
    c0: int
    x: np.ndarray | None      # (channels, t, t) network input; None: no pixel to classify (skipped)
    keep: np.ndarray          # (h, w) pixels to classify, inside the raster


def mirror(a, pad_rows, pad_cols):
    """Extend the last axes of ``a`` by mirroring (tiles reaching past the raster's end)."""
    if not pad_rows and not pad_cols:
        return a
    spec = [(0, 0)] * (a.ndim - 2) + [(0, pad_rows), (0, pad_cols)]
    small = pad_rows >= a.shape[-2] or pad_cols >= a.shape[-1]
    return np.pad(a, spec, mode="symmetric" if not small else "edge")


class TileReader:
    """(r0, c0) -> TileData: one window of a Job's raster read, masked, mirrored and standardised."""

    def __init__(self, ds, job: Job):
        self.ds, self.job = ds, job

    def __call__(self, key) -> TileData:
        r0, c0 = key
        job = self.job
        t, info = job.tile.tile, job.info
        h, w = min(t, info.height - r0), min(t, info.width - c0)
        window = Window(c0, r0, w, h)
        data = read_bands(self.ds, job.bands, window)
        valid = valid_in(self.ds, data, window, info.nodata)
        keep = valid & job.mask(window) if job.mask is not None else valid
        if not keep.any():
            return TileData(c0, None, keep)
        x = job.transform.apply(mirror(data, t - h, t - w), mirror(valid, t - h, t - w))
        return TileData(c0, x, keep)


@dataclass(frozen=True)
class PerPixel:
    """The optional per-pixel rasters asked for: the winning probability, an uncertainty measure."""
    confidence: bool = False
    uncertainty: str | None = None      # None, "entropy" or "margin"

    @classmethod
    def of(cls, wanted) -> "PerPixel":
        """A PerPixel, or a bool (the confidence raster alone, as callers before the uncertainty said it)."""
        return wanted if isinstance(wanted, PerPixel) else cls(confidence=bool(wanted))


class StripRows:
    """The final rows of one strip: class index (-1 = not covered), confidence, uncertainty, pixels to keep."""

    def __init__(self, row: int, rows: int, width: int, excluded, per_pixel):
        self.row, self.excluded = row, excluded
        wanted = PerPixel.of(per_pixel)
        self.measure = wanted.uncertainty
        self.index = np.full((rows, width), -1, dtype=np.int16)
        self.keep = np.zeros((rows, width), dtype=bool)
        self.confidence = np.zeros((rows, width), dtype=np.float32) if wanted.confidence else None
        self.uncertainty = np.zeros((rows, width), dtype=np.float32) if self.measure else None

    def put_keep(self, tile: TileData) -> None:
        rows = min(self.keep.shape[0], tile.keep.shape[0])
        self.keep[:rows, tile.c0:tile.c0 + tile.keep.shape[1]] = tile.keep[:rows]

    def put_blocks(self, blocks) -> None:
        for col, sums, weights in blocks:
            index, confidence, covered = decide(sums, weights, self.excluded)
            n = index.shape[1]
            self.index[:, col:col + n] = index if covered.all() else np.where(covered, index, -1)
            if self.confidence is not None:
                self.confidence[:, col:col + n] = confidence
            if self.measure:
                self.uncertainty[:, col:col + n] = uncertainty(sums, weights, self.measure, self.excluded)


class _Progress:
    """Tiles done, skipped, the ETA and the one-off first-batch estimate."""

    def __init__(self, total, progress):
        self.total, self.progress = total, progress
        self.done = self.skipped = 0
        self.t0 = time.monotonic()
        self.logged = False

    def tiles(self, computed: int, skipped: int) -> None:
        self.done += computed + skipped
        self.skipped += skipped
        if not computed:
            return
        elapsed = time.monotonic() - self.t0
        per_tile = elapsed / max(1, self.done - self.skipped)
        left = per_tile * (self.total - self.done)
        if not self.logged:
            self.logged = True
            self.progress.log(f"First batch: {per_tile:.2f} s per tile; estimated time left about {left:.0f} s "
                              "(tiles without valid pixels are skipped).")
        self.progress.report(self.done / self.total * 0.97, f"tile {self.done}/{self.total}, ETA {left:.0f} s")


class _StripLoop:
    """The state of one run over strips: the job, the blender, the tile counter and the progress."""

    def __init__(self, job: Job, rows, progress):
        info = job.info
        self.job, self.progress = job, progress
        self.blender = RollingBlender(info.height, info.width, job.num_classes, job.tile.tile)
        self.counter = _Progress(len(rows) * len(job.cols), progress)

    def blend(self, pending, out: StripRows) -> None:
        """Predict the pending tiles that have pixels to classify; blend all of them in column order."""
        if not pending:
            return
        self.progress.check_cancelled()
        computed = [t for t in pending if t.x is not None]
        probs = iter(self.job.predictor(np.stack([t.x for t in computed])) if computed else [])
        for t in pending:
            self.blender.move_to(t.c0, out.put_blocks)
            if t.x is not None:
                self.blender.add(next(probs))
        self.counter.tiles(len(computed), len(pending) - len(computed))


def run_tiles(job: Job, ds, rows, outputs, progress, next_row=None):
    """Classify every tile of ``job`` in the strips starting at ``rows``; ``outputs.write(StripRows)``
    receives each strip's final rows, in order, with the per-pixel rasters ``outputs.per_pixel()`` asks
    for. ``next_row``: where the strip after the last one starts (default: the raster's end), for a run
    over part of the strips.

    Returns (tiles skipped, blending bytes)."""
    info, cols = job.info, job.cols
    loop = _StripLoop(job, rows, progress)
    per_pixel = outputs.per_pixel()
    tiles = Prefetcher(TileReader(ds, job), [(r0, c0) for r0 in rows for c0 in cols], depth=max(1, job.batch))
    writer = BackgroundWriter(outputs.write, depth=1)
    try:
        stream = iter(tiles)
        for i, r0 in enumerate(rows):
            next_r0 = rows[i + 1] if i + 1 < len(rows) else (next_row or info.height)
            loop.blender.start_strip(r0, next_r0)
            out = StripRows(r0, min(next_r0, info.height) - r0, info.width, job.excluded, per_pixel)
            pending = []
            for _ in cols:
                pending.append(next(stream)[1])
                out.put_keep(pending[-1])
                if sum(t.x is not None for t in pending) == job.batch:
                    loop.blend(pending, out)
                    pending = []
            loop.blend(pending, out)
            loop.blender.end_strip(out.put_blocks)
            writer.submit(out)
        writer.drain()
    finally:
        tiles.close()
        writer.close()
    return loop.counter.skipped, loop.blender.nbytes
