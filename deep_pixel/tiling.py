"""Tile geometry: one object owns where tiles go on a raster grid."""
from __future__ import annotations

from dataclasses import dataclass

from rasterio.windows import Window

from .errors import DeepPixelError


def _starts(length: int, tile: int, stride: int) -> list:
    """Tile origins along one axis: every ``stride``, the last one flush with the far edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class TileGrid:
    """A grid of ``tile_x`` x ``tile_y`` windows every ``stride_x``/``stride_y`` pixels.

    The grid always covers the whole raster: the last column and row of tiles are moved back to
    end at the raster's edge, so every pixel lies in at least one full-size tile.
    """
    width: int
    height: int
    tile_x: int
    tile_y: int
    stride_x: int
    stride_y: int

    def __post_init__(self):
        for name in ("tile_x", "tile_y"):
            if getattr(self, name) < 8:
                raise DeepPixelError(f"Tile size {getattr(self, name)} is too small; use at least 8 pixels.")
        for name in ("stride_x", "stride_y"):
            if getattr(self, name) <= 0:
                raise DeepPixelError(f"Stride {getattr(self, name)} must be a positive number of pixels "
                                     "(equal to the tile size for no overlap).")
        if self.tile_x > self.width or self.tile_y > self.height:
            raise DeepPixelError(
                f"Tile size {self.tile_x}x{self.tile_y} is larger than the raster "
                f"({self.width}x{self.height} pixels). Use a tile size of at most "
                f"{min(self.width, self.height)} pixels.")

    @property
    def columns(self) -> list:
        return _starts(self.width, self.tile_x, self.stride_x)

    @property
    def rows(self) -> list:
        return _starts(self.height, self.tile_y, self.stride_y)

    def __len__(self):
        return len(self.columns) * len(self.rows)

    def windows(self):
        """Row-major windows (row by row, so reads follow the raster's storage order)."""
        for r in self.rows:
            for c in self.columns:
                yield Window(c, r, self.tile_x, self.tile_y)
