"""Step 3, Classify Pixels: a raster and a model package -> a styled class raster (options and tile
choice, checks, runtimes, predictor, the tile pipeline and the blending of overlapping tiles)."""
from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "ClassifyOptions": ".options", "ClassifyResult": ".run", "classify": ".run"})
