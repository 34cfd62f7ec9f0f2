"""Step 4, Compute Accuracy: a class raster against reference polygons or a reference raster."""
from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "EvaluateOptions": ".accuracy", "EvaluateResult": ".accuracy", "evaluate": ".accuracy"})
