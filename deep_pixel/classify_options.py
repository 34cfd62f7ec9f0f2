"""Classify Pixels parameters and their defaults (every interface reads them from here)."""
from __future__ import annotations

from dataclasses import dataclass

from .device import DEVICES_HELP
from .errors import DeepPixelError
from .params import check_ranges, option
from .runtime_choice import PRECISION_HELP, PRECISIONS, RUNTIME_HELP, RUNTIMES

BACKGROUND_NAMES = ("background", "unclassified", "other", "nodata", "no data")
# TILE_SIZE 0 picks the tile size per raster: at least MIN_AUTO_TILE (small tiles lose context at
# their borders: offset grids of 64 px tiles agreed on 98.4%, 256 px 99.7%, 384 px 99.8-99.96%), at
# most MAX_AUTO_TILE (the CPU memory budget for one tile's activations), and within that range the
# size that computes the fewest pixels for this raster (tiles spread evenly, none wasted past the edge).
MIN_AUTO_TILE = 384
MAX_AUTO_TILE = 1024
# PADDING empty = the network's effective border: AUTO_PADDING px, at least AUTO_PADDING_MULTIPLES x
# its downsampling factor, at most a quarter of a small explicit tile. Measured on the three real scenes (bench/bench_border.py):
# a tile's classes differ from a much larger tile's on 1-2% of the pixels 24-32 px from its border,
# 0.5-1.3% at 32-48 px, near the floor beyond; offset grids of 512 px tiles agreed on 99.45% with 32 px
# and 99.75% with 48 px for a briefly trained Sentinel-2 model. A quarter of the tile (the reference
# default) made the network compute every pixel up to 4 times for no visible difference.
AUTO_PADDING = 48
AUTO_PADDING_MULTIPLES = 1
# The batch holds at most this many tile pixels on CPU (batching does not speed a CPU up; memory grows).
CPU_BATCH_PIXELS = 1024 * 1024


@dataclass
class ClassifyOptions:
    """Classify Pixels' options, each declared once (deep_pixel/params.py builds the interfaces)."""
    tile_size: int = option(
        0, "Tile size (pixels)", f"0: chosen per raster between {MIN_AUTO_TILE} and {MAX_AUTO_TILE} px, the size "
        "that computes the fewest pixels; else a multiple of the network's downsampling factor", minimum=0)
    padding: int | None = option(
        None, "Padding (pixels)", f"pixels blended at each tile border; empty: the network's effective border, "
        f"{AUTO_PADDING} px (or {AUTO_PADDING_MULTIPLES} x its downsampling factor if larger); less than half "
        "the tile", kind="int", minimum=0, optional=True)
    batch_size: int = option(
        4, "Batch size", "tiles per forward pass; on CPU lowered so one batch stays within "
        f"{CPU_BATCH_PIXELS // 2**20} megapixels, on CUDA raised to what half the free GPU memory holds", minimum=1)
    predict_background: bool = option(
        True, "Predict background classes", "off: classes named background/other/unclassified are not "
        "predicted; their pixels go to the most likely other class")
    test_time_augmentation: bool = option(
        False, "Test-time augmentation (8 flips/rotations)", "average the 8 flips and rotations (8x slower, "
        "usually a little more accurate)")
    mask_polygons: str | None = option(
        None, "Classify only inside these polygons", "vector file (or layer): pixels outside are nodata",
        kind="vector", optional=True)
    device: str = option("auto", "Device", DEVICES_HELP)
    runtime: str = option("auto", "Runtime", RUNTIME_HELP, choices=RUNTIMES, advanced=True)
    precision: str = option("auto", "Precision", PRECISION_HELP, choices=PRECISIONS, advanced=True)
    output_confidence: str | None = option(
        None, "Confidence raster (winning class probability)", "optional float32 GeoTIFF of the winning class's "
        "blended probability", kind="raster_out", optional=True)
    grid_offset: tuple = (0, 0)             # (rows, cols): shifts the tile grid (tests, tiling checks); not a parameter

    def validate(self) -> None:
        check_ranges(self)
        if self.tile_size < 0:
            raise DeepPixelError("TILE_SIZE must be 0 (the model's chip size) or a positive number of pixels.")
        if self.padding is not None and self.padding < 0:
            raise DeepPixelError("PADDING must be 0 or more pixels.")
        if self.batch_size < 1:
            raise DeepPixelError("BATCH_SIZE must be at least 1.")


@dataclass(frozen=True)
class TileParams:
    """One object owns the tile geometry: size, padding, spacing and the network's size multiple."""
    tile: int
    padding: int
    multiple: int

    @property
    def step(self) -> int:
        """The widest tile spacing that keeps ``padding`` on both sides of every seam.

        Spacings are multiples of the network's downsampling factor: every tile then starts at a
        multiple of it from the raster's origin, so all tiles see the pixels at the same phase of the
        network's pooling grid and moving the tile grid changes nothing but the blending.
        """
        return max(self.multiple, (self.tile - 2 * self.padding) // self.multiple * self.multiple)

    def starts(self, length: int, offset: int = 0) -> list:
        """Increasing tile starts covering [0, length), spread evenly so the last one wastes least."""
        if length <= self.tile:
            return [0]
        m, step = self.multiple, self.step
        offset = offset // m * m % step
        if offset:                       # a shifted grid (tiling checks): regular spacing from the offset
            starts = [0] + list(range(offset, length - self.tile + step, step))
            while starts[-1] + self.tile < length:
                starts.append(starts[-1] + step)
            return starts
        n = -(-(length - self.tile) // step) + 1
        even = -(-(length - self.tile) // ((n - 1) * m)) * m
        return [i * even for i in range(n)]

    def overlap_factor(self, height: int, width: int, offset: tuple = (0, 0)) -> float:
        """Pixels the network computes / raster pixels (1.0 = no overlap)."""
        tiles = len(self.starts(height, offset[0])) * len(self.starts(width, offset[1]))
        return tiles * self.tile ** 2 / (height * width)

    @classmethod
    def resolve(cls, options: ClassifyOptions, model_tile: int, multiple: int, raster_hw: tuple) -> "TileParams":
        padding = options.padding if options.padding is not None else auto_padding(multiple, options.tile_size)
        if options.tile_size and options.tile_size % multiple:
            t = options.tile_size
            raise DeepPixelError(f"TILE_SIZE {t} does not fit this network: it must be a multiple of {multiple} "
                                 f"pixels (e.g. {max(multiple, t // multiple * multiple)}).")
        largest = max(raster_hw)
        smallest_tile = max(model_tile, MIN_AUTO_TILE) // multiple * multiple
        if options.tile_size:
            tile = options.tile_size
        elif largest <= smallest_tile or options.padding is not None and 2 * padding >= smallest_tile:
            tile = smallest_tile
        else:
            tile = _fewest_pixels(raster_hw, padding, multiple, smallest_tile, max(smallest_tile, MAX_AUTO_TILE))
        if largest < tile:               # a raster smaller than a tile: one padded tile, no wasted work
            tile = max(multiple, -(-largest // multiple) * multiple)
            padding = min(padding, max(0, (tile - multiple) // 2))
        if 2 * padding >= tile:
            raise DeepPixelError(f"PADDING {padding} leaves nothing of a {tile} px tile: use less than half "
                                 f"the tile, at most {tile // 2 - 1} (empty = {auto_padding(multiple, tile)}).")
        return cls(tile, padding, multiple)


def auto_padding(multiple: int, tile: int = 0) -> int:
    """The default PADDING: the network's effective border, at most a quarter of an explicit tile."""
    border = max(AUTO_PADDING, AUTO_PADDING_MULTIPLES * multiple)
    return min(border, tile // 4) if tile else border


def _fewest_pixels(raster_hw, padding, multiple, low, high) -> int:
    """The tile size in [low, high] that computes the fewest pixels (ties: the larger tile)."""
    best, best_cost = high, None
    for tile in range(high, low - 1, -multiple):
        grid = TileParams(tile, padding, multiple)
        if grid.step <= multiple and tile != high:
            continue
        # 4096 px of per-tile overhead (launch, blending, bookkeeping) favours fewer, larger tiles.
        cost = len(grid.starts(raster_hw[0])) * len(grid.starts(raster_hw[1])) * (tile * tile + 4096)
        if best_cost is None or cost < best_cost:
            best, best_cost = tile, cost
    return best


def cpu_batch(requested: int, tile: int) -> int:
    """The batch size on CPU: the requested one, lowered so one batch stays within CPU_BATCH_PIXELS."""
    return max(1, min(requested, CPU_BATCH_PIXELS // (tile * tile)))
