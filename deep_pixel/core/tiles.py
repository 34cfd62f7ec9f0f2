"""Tile geometry: one object, TileParams, owns where tiles go on a raster grid.

Classify Pixels spreads square tiles evenly with a padding blended at the seams; Export Training
Data places chips every STRIDE pixels with the last one flush with the raster's edge. Both ask
TileParams for the tile starts along an axis.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import DeepPixelError

# TILE_SIZE 0 picks the tile size per raster: at least MIN_AUTO_TILE (small tiles lose context at
# their borders: offset grids of 64 px tiles agreed on 98.4%, 256 px 99.7%, 384 px 99.8-99.96%), at
# most MAX_AUTO_TILE (the CPU memory budget for one tile's activations), and within that range the
# size that computes the fewest pixels for this raster (tiles spread evenly, none wasted past the edge).
MIN_AUTO_TILE = 384
MAX_AUTO_TILE = 1024
# PADDING empty = the network's effective border: AUTO_PADDING px, at least AUTO_PADDING_MULTIPLES x
# its downsampling factor, at most a quarter of a small explicit tile. Measured on the three real
# scenes (bench/bench_border.py): a tile's classes differ from a much larger tile's on 1-2% of the
# pixels 24-32 px from its border, 0.5-1.3% at 32-48 px, near the floor beyond; offset grids of 512 px
# tiles agreed on 99.45% with 32 px and 99.75% with 48 px for a briefly trained Sentinel-2 model. A
# quarter of the tile (the reference default) made the network compute every pixel up to 4 times for
# no visible difference.
AUTO_PADDING = 48
AUTO_PADDING_MULTIPLES = 1
MIN_TILE = 8


@dataclass(frozen=True)
class TileParams:
    """Tile size, padding, spacing and the network's size multiple along one axis (or both).

    ``stride`` given: tiles every ``stride`` pixels, the last one moved back to end at the raster's
    edge (Export Training Data). ``stride`` None: the widest spacing that keeps ``padding`` on both
    sides of every seam, tiles spread evenly (Classify Pixels).
    """
    tile: int
    padding: int = 0
    multiple: int = 1
    stride: int | None = None

    @property
    def step(self) -> int:
        """The spacing of tile starts.

        Without a stride, spacings are multiples of the network's downsampling factor: every tile
        then starts at a multiple of it from the raster's origin, so all tiles see the pixels at the
        same phase of the network's pooling grid and moving the tile grid changes nothing but the
        blending.
        """
        if self.stride is not None:
            return self.stride
        return max(self.multiple, (self.tile - 2 * self.padding) // self.multiple * self.multiple)

    def starts(self, length: int, offset: int = 0) -> list:
        """Increasing tile starts covering [0, length)."""
        if length <= self.tile:
            return [0]
        if self.stride is not None:
            return self._regular(length)
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

    def _regular(self, length: int) -> list:
        starts = list(range(0, length - self.tile + 1, self.stride))
        if starts[-1] + self.tile < length:
            starts.append(length - self.tile)
        return starts

    def overlap_factor(self, height: int, width: int, offset: tuple = (0, 0)) -> float:
        """Pixels the network computes / raster pixels (1.0 = no overlap)."""
        tiles = len(self.starts(height, offset[0])) * len(self.starts(width, offset[1]))
        return tiles * self.tile ** 2 / (height * width)

    def check(self) -> None:
        """A clear error for a tile too small to learn from or a stride that does not advance."""
        if self.tile < MIN_TILE:
            raise DeepPixelError(f"Tile size {self.tile} is too small; use at least {MIN_TILE} pixels.")
        if self.stride is not None and self.stride <= 0:
            raise DeepPixelError(f"Stride {self.stride} must be a positive number of pixels "
                                 "(equal to the tile size for no overlap).")

    @classmethod
    def resolve(cls, options, model_tile: int, multiple: int, raster_hw: tuple) -> "TileParams":
        """Classify Pixels' tiles for a raster: ``options`` gives tile_size (0: automatic) and padding."""
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
