"""An uncertainty raster summed into a grid of square cells, block by block (memory: the grid, not the raster).

Per cell: the sum of the valid uncertainty values and their count, the predicted classes' pixel counts
(from the class raster), the pixels inside labelled samples and, with a mask, inside the mask. A
suggested window is a square of whole cells, so its figures are sums over cells (windows.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.features import rasterize
from rasterio.windows import Window
from shapely.geometry import mapping

from ..core.errors import DeepPixelError
from ..io.raster import footprint_bounds, read_bands, valid_mask

BLOCK_PIXELS = 1024 * 1024        # pixels read at once (one band)


@dataclass
class CellGrid:
    cell: int                   # pixels per cell side
    sums: np.ndarray            # (rows, cols) float64: summed uncertainty of the valid pixels
    valid: np.ndarray           # (rows, cols) int64: valid uncertainty pixels
    labelled: np.ndarray        # (rows, cols) int64: pixels inside the samples
    inside: np.ndarray | None   # (rows, cols) int64: pixels inside the mask (None: no mask)
    classes: np.ndarray | None  # (classes, rows, cols) int64: pixels predicted as each class (None: unknown)

    @property
    def shape(self) -> tuple:
        return self.sums.shape


def cell_sums(block: np.ndarray, cell: int) -> np.ndarray:
    """(h, w) with h, w multiples of ``cell`` -> (h / cell, w / cell) sums."""
    h, w = block.shape
    return block.reshape(h // cell, cell, w // cell, cell).sum(axis=(1, 3), dtype=np.float64)


def polygon_burner(path: str | None, ds, role: str, allow_empty: bool = False, touched: bool = False):
    """None, or Window -> (h, w) bool: True at pixels inside the polygons of ``path`` (every feature): their
    centre inside, or with ``touched`` every pixel a polygon touches (a sliver or a point still counts).

    A layer without usable polygons is None when ``allow_empty`` (nothing labelled yet), else an error."""
    if not path:
        return None
    from ..export.samples import LabelBurner, NoUsableFeatures, Samples
    from ..io.vector import read_vector
    vec = read_vector(path)
    try:
        burner = LabelBurner(Samples(vec.geometries, [1] * len(vec.geometries), vec.crs_wkt),
                             ds.crs.to_wkt() if ds.crs else None, what=f"{role} layer")
    except NoUsableFeatures:
        if allow_empty:
            return None
        raise DeepPixelError(f"{role} {path} has no usable polygons: give a layer with polygons, or leave "
                             f"{role} empty.") from None

    def burn(window):
        shape = (int(window.height), int(window.width))
        hits = burner.candidates(footprint_bounds(window, ds.transform))
        if not hits:
            return np.zeros(shape, dtype=bool)
        return rasterize([mapping(burner.geometries[i]) for i in hits], out_shape=shape, all_touched=touched,
                         transform=ds.window_transform(window), dtype=np.uint8) > 0
    return burn


class GridReader:
    """Reads the uncertainty (and class) raster block by block into a CellGrid."""

    def __init__(self, unc_ds, class_ds, class_values, samples, mask, cell: int):
        self.unc_ds, self.class_ds, self.samples, self.mask, self.cell = unc_ds, class_ds, samples, mask, cell
        self.lut = None
        if class_ds is not None and class_values:
            self.lut = np.full(max(class_values) + 1, -1, dtype=np.int64)
            self.lut[list(class_values)] = np.arange(len(class_values))
        self.n_classes = len(class_values or [])

    def read(self, progress) -> CellGrid:
        cell = self.cell
        rows, cols = self.unc_ds.height // cell, self.unc_ds.width // cell
        grid = CellGrid(cell, np.zeros((rows, cols)), np.zeros((rows, cols), np.int64),
                        np.zeros((rows, cols), np.int64), np.zeros((rows, cols), np.int64) if self.mask else None,
                        np.zeros((self.n_classes, rows, cols), np.int64) if self.lut is not None else None)
        col_cells = max(1, min(cols, 4096 // cell))
        row_cells = max(1, BLOCK_PIXELS // (col_cells * cell * cell))
        for r in range(0, rows, row_cells):
            progress.check_cancelled()
            progress.report(r / max(rows, 1), f"reading cell rows {r}/{rows}")
            for c in range(0, cols, col_cells):
                nr, nc = min(row_cells, rows - r), min(col_cells, cols - c)
                self._block(grid, r, c, Window(c * cell, r * cell, nc * cell, nr * cell))
        return grid

    def _block(self, grid, r, c, window) -> None:
        cell = self.cell
        at = (slice(r, r + int(window.height) // cell), slice(c, c + int(window.width) // cell))
        data = read_bands(self.unc_ds, 1, window)
        ok = valid_mask(data[None], self.unc_ds.nodata) & (data >= 0) & (data <= 1)
        grid.sums[at] = cell_sums(np.where(ok, data, 0), cell)
        grid.valid[at] = cell_sums(ok, cell)
        if self.samples is not None:
            grid.labelled[at] = cell_sums(self.samples(window), cell)
        if self.mask is not None:
            grid.inside[at] = cell_sums(self.mask(window), cell)
        if grid.classes is not None:
            values = read_bands(self.class_ds, 1, window).astype(np.int64)
            index = np.where((values >= 0) & (values < len(self.lut)), self.lut[np.clip(values, 0, len(self.lut) - 1)],
                             -1)
            for i in range(self.n_classes):
                grid.classes[(i, *at)] = cell_sums(index == i, cell)
