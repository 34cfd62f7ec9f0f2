"""Classify Pixels parameters and their defaults (every interface reads them from here)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.device import DEVICES_HELP
from ..core.params import check_ranges, option
from ..core.tiles import AUTO_PADDING, AUTO_PADDING_MULTIPLES, MAX_AUTO_TILE, MIN_AUTO_TILE
from .runtime_choice import PRECISION_HELP, PRECISIONS, RUNTIME_HELP, RUNTIMES

UNCERTAINTY_MEASURES = ("entropy", "margin")
BACKGROUND_NAMES = ("background", "unclassified", "other", "nodata", "no data")
# The batch holds at most this many tile pixels on CPU (batching does not speed a CPU up; memory grows).
CPU_BATCH_PIXELS = 1024 * 1024
# Dask blocks (classify/shard.py) are whole strips, about BLOCK_ROWS output rows and at least
# MIN_BLOCK_STRIPS strips: the halo (usually one strip per block) is recomputed, so fewer, larger
# blocks waste less; a crash loses at most a block. The layout depends on the raster and the tiles
# only (not on the number of workers), so a rerun with other workers still resumes.
BLOCK_ROWS = 8192
MIN_BLOCK_STRIPS = 12


@dataclass
class ClassifyOptions:
    """Classify Pixels' options, each declared once (deep_pixel/core/params.py builds the interfaces)."""
    tile_size: int = option(
        0, "Tile size (pixels)", f"0: chosen per raster between {MIN_AUTO_TILE} and {MAX_AUTO_TILE} px, the size "
        "that computes the fewest pixels; else a multiple of the network's downsampling factor", minimum=0,
        maximum=8192)
    padding: int | None = option(
        None, "Padding (pixels)", f"pixels blended at each tile border; empty: the network's effective border, "
        f"{AUTO_PADDING} px (or {AUTO_PADDING_MULTIPLES} x its downsampling factor if larger); less than half "
        "the tile", kind="int", minimum=0, maximum=4096, optional=True)
    batch_size: int = option(
        4, "Batch size", "tiles per forward pass; on CPU lowered so one batch stays within "
        f"{CPU_BATCH_PIXELS // 2**20} megapixels, on CUDA raised to what half the free GPU memory holds", minimum=1,
        maximum=1024)
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
    ensemble_models: str | None = option(
        None, "More models to average (.emd/.dlpk, separated by ;)", "their class probabilities are averaged with "
        "the model's: models trained on the same export with other seeds make steadier maps together (one "
        "forward pass per model); empty: the model alone", optional=True, advanced=True)
    runtime: str = option("auto", "Runtime", RUNTIME_HELP, choices=RUNTIMES, advanced=True)
    precision: str = option("auto", "Precision", PRECISION_HELP, choices=PRECISIONS, advanced=True)
    output_confidence: str | None = option(
        None, "Confidence raster (winning class probability)", "optional float32 GeoTIFF of the winning class's "
        "blended probability", kind="raster_out", optional=True)
    output_uncertainty: str | None = option(
        None, "Uncertainty raster (0 sure - 1 unsure)", "optional float32 GeoTIFF of how unsure the blended class "
        "probabilities are (UNCERTAINTY_MEASURE), styled with a colour ramp", kind="raster_out", optional=True)
    uncertainty_measure: str = option(
        "entropy", "Uncertainty measure", "entropy: normalised entropy of the class probabilities; margin: 1 - "
        "(p1 - p2), the gap between the two most likely classes", kind="enum", choices=UNCERTAINTY_MEASURES)
    dask_scheduler: str | None = option(
        None, "Dask scheduler (tcp://HOST:8786)", "classify on an existing Dask cluster: blocks of tile rows "
        "(a folder: one task per image), the same output as one process; empty: this process (or WORKERS)",
        optional=True, advanced=True)
    workers: int = option(
        0, "Local Dask workers", "0: this process; N: a Dask LocalCluster of N worker processes on this "
        "machine (each loads the model once); rerunning after a crash does only the blocks not yet finished",
        minimum=0, maximum=256, advanced=True)
    block_strips: int = option(
        0, "Strips of tiles per Dask block", f"0: automatic (about {BLOCK_ROWS} rows, at least {MIN_BLOCK_STRIPS} "
        f"strips: the halo strip each block recomputes stays within 1/{MIN_BLOCK_STRIPS} of the work); smaller "
        "blocks spread a small raster over more workers",
        minimum=0, advanced=True)
    grid_offset: tuple = (0, 0)             # (rows, cols): shifts the tile grid (tests, tiling checks); not a parameter

    def validate(self) -> None:
        """Every value within its declared range and type (TILE_SIZE, PADDING, BATCH_SIZE minimums included)."""
        check_ranges(self)


def cpu_batch(requested: int, tile: int) -> int:
    """The batch size on CPU: the requested one, lowered so one batch stays within CPU_BATCH_PIXELS."""
    return max(1, min(requested, CPU_BATCH_PIXELS // (tile * tile)))
