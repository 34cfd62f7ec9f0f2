"""One raster's classification, prepared once: bands, tiles, runtime, predictor, batch, mask.

``classify_raster`` runs a Job over every strip of tiles; a shard worker (shard.py) runs the same
Job over a range of strips, so a sharded output is the single-process output, pixel for pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import DeepPixelError
from ..core.tiles import TileParams
from ..io.gdal_mask import alpha_band
from ..io.raster import describe, footprint_bounds
from .checks import bands_to_read, check_grid, excluded_classes
from .pipeline import run_tiles


@dataclass
class Job:
    info: object
    bands: list
    tile: TileParams
    rows: list              # tile row starts (strips), top to bottom
    cols: list              # tile column starts
    excluded: list
    mask: object            # None or Window -> bool array (inside MASK_POLYGONS)
    runtime: object
    predictor: object
    batch: int
    num_classes: int
    transform: object       # the package's input transform
    offset: tuple = (0, 0)  # the tile grid's shift (ClassifyOptions.grid_offset)

    @property
    def total(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def overlap(self) -> float:
        return self.tile.overlap_factor(self.info.height, self.info.width, self.offset)

    def halo(self) -> int:
        """Strips above a strip whose tiles reach into it: a block computes them, then drops their rows."""
        t = self.tile.tile
        return max((i - j for i in range(len(self.rows)) for j in range(i)
                    if self.rows[j] + t > self.rows[i]), default=0)

    def run(self, ds, rows, outputs, progress, next_row=None):
        """Classify the strips starting at ``rows`` (a run of self.rows); outputs.write gets each strip."""
        return run_tiles(self, ds, rows, outputs, progress, next_row=next_row)

    def log_plan(self, options, progress) -> None:
        info, tile, batch = self.info, self.tile, self.batch
        progress.log(f"{info.width} x {info.height} px, {len(self.bands)} band(s): {self.total} tiles of "
                     f"{tile.tile} px (padding {tile.padding}) in {len(self.rows)} strips, overlap factor "
                     f"{self.overlap:.2f} (pixels computed / raster pixels), batch size {batch}" + (
                         f" ({options.batch_size} asked; one batch stays within the CPU memory budget)"
                         if batch < options.batch_size else "")
                     + (", test-time augmentation x8" if options.test_time_augmentation else "") + ".")


def prepare_job(ds, package, options, device, progress, runtime=None, members=None) -> Job:
    """Check that the raster fits the model and choose tiles, runtime and batch (``runtime``: reuse one;
    ``members``: the ENSEMBLE_MODELS packages, None: loaded from ``options``)."""
    info = describe(ds)
    bands = bands_to_read(info, package, alpha_band(ds))
    check_grid(info, package, progress)
    depth = int(package.model_params.get("encoder_depth", 5))
    tile = TileParams.resolve(options, package.tile_size[0], 2 ** depth, (info.height, info.width))
    excluded = excluded_classes(package.schema, options.predict_background, progress)
    mask = mask_burner(options.mask_polygons, ds, info)
    if runtime is None:
        from .runtime_choice import choose_runtime
        from .ensemble import with_members
        runtime, why = choose_runtime(package, device, options.runtime, options.precision, progress)
        runtime, why = with_members(runtime, why, package, options, device, progress, members)
        averaged = int(package.model_params.get("members") or 1)
        if averaged > 1:
            why += f"; the model averages {averaged} networks (Train Model's members), each run on every tile"
        progress.log(f"Runtime: {why}.")
    from .predictor import Predictor
    predictor = Predictor(runtime, options.test_time_augmentation, progress)
    rows = tile.starts(info.height, options.grid_offset[0])
    cols = tile.starts(info.width, options.grid_offset[1])
    return Job(info, bands, tile, rows, cols, excluded, mask, runtime, predictor,
               batch_size(options.batch_size, tile.tile, device), package.num_classes, package.transform,
               options.grid_offset)


def batch_size(requested, tile, device):
    from .options import cpu_batch
    if device.type != "cuda":
        return cpu_batch(requested, tile)
    from ..core.device import cuda_batch
    return cuda_batch(requested, tile, device)


def mask_burner(mask_path, ds, info):
    """None, or a function Window -> (h, w) bool True inside the mask polygons (burned like samples)."""
    if not mask_path:
        return None
    from ..export.samples import LabelBurner, NoUsableFeatures, Samples
    from ..io.vector import read_vector
    vec = read_vector(mask_path)
    try:
        burner = LabelBurner(Samples(vec.geometries, [1] * len(vec.geometries), vec.crs_wkt), info.crs_wkt,
                             what="mask layer")
    except NoUsableFeatures:
        raise DeepPixelError(f"The mask layer {mask_path} has no usable polygons.") from None

    def burn(window):
        shape = (int(window.height), int(window.width))
        return burner.burn(ds.window_transform(window), shape, footprint_bounds(window, ds.transform)) > 0
    return burn
