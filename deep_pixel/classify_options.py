"""Classify Pixels parameters and their defaults (every interface reads them from here)."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import DeepPixelError

BACKGROUND_NAMES = ("background", "unclassified", "other", "nodata", "no data")
# TILE_SIZE 0 takes the model's chip size, but at least this: the networks are fully convolutional,
# and small tiles (64 px chips are the CPU training default) lose context at their borders, which
# makes the output depend on where the tiles fall (measured: 98.4% agreement between offset grids
# of 64 px tiles, 99.7% with 256 px and 99.8-99.96% with 384 px tiles) and costs more overlap per pixel.
MIN_AUTO_TILE = 384


@dataclass
class ClassifyOptions:
    tile_size: int = 0                      # 0: the model's chip size (at least MIN_AUTO_TILE)
    padding: int | None = None              # None: tile / 4 (at most tile / 2)
    batch_size: int = 4
    predict_background: bool = True         # False: classes named "background" etc. become nodata
    test_time_augmentation: bool = False    # True: the 8 flips/rotations averaged
    device: str = "auto"
    mask_polygons: str | None = None        # vector file: only pixels inside are classified
    output_confidence: str | None = None    # optional float32 raster of the winning probability
    grid_offset: tuple = (0, 0)             # (rows, cols): shifts the tile grid (tests, tiling checks)

    def validate(self) -> None:
        if self.tile_size < 0:
            raise DeepPixelError("TILE_SIZE must be 0 (the model's chip size) or a positive number of pixels.")
        if self.padding is not None and self.padding < 0:
            raise DeepPixelError("PADDING must be 0 or more pixels.")
        if self.batch_size < 1:
            raise DeepPixelError("BATCH_SIZE must be at least 1.")


@dataclass(frozen=True)
class TileParams:
    """One object owns the tile geometry: size, padding, step and the network's size multiple."""
    tile: int
    padding: int
    multiple: int

    @property
    def step(self) -> int:
        """Tile spacing, a multiple of the network's downsampling factor.

        Every tile then starts at a multiple of that factor from the raster's origin, so all tiles
        see the pixels at the same phase of the network's pooling grid: moving or resizing the tile
        grid changes nothing but the blending (the network is not shift-invariant by other shifts).
        """
        return max(self.multiple, (self.tile - 2 * self.padding) // self.multiple * self.multiple)

    def starts(self, length: int, offset: int = 0) -> list:
        """Increasing tile starts covering [0, length); the last tile may reach past the end."""
        if length <= self.tile:
            return [0]
        offset = offset // self.multiple * self.multiple % self.step
        starts = [0] + list(range(offset or self.step, length - self.tile + self.step, self.step))
        while starts[-1] + self.tile < length:
            starts.append(starts[-1] + self.step)
        return starts

    @classmethod
    def resolve(cls, options: ClassifyOptions, model_tile: int, multiple: int, raster_hw: tuple) -> "TileParams":
        tile = options.tile_size or max(model_tile, MIN_AUTO_TILE) // multiple * multiple
        if tile % multiple:
            raise DeepPixelError(f"TILE_SIZE {tile} does not fit this network: it must be a multiple of {multiple} "
                                 f"pixels (e.g. {max(multiple, tile // multiple * multiple)}).")
        # A raster smaller than a tile is classified as one padded tile (no wasted work).
        small = max(raster_hw)
        if small < tile:
            tile = max(multiple, -(-small // multiple) * multiple)
        padding = tile // 4 if options.padding is None else options.padding
        if 2 * padding >= tile:
            raise DeepPixelError(f"PADDING {padding} leaves nothing of a {tile} px tile: use less than half "
                                 f"the tile, at most {tile // 2 - 1} (default {tile // 4}).")
        return cls(tile, padding, multiple)
