"""Step 1, Export Training Data: a raster and labelled samples -> a folder of image and label chips."""
from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "ExportOptions": ".run", "ExportResult": ".run", "export_training_data": ".run",
    "export_files": ".from_files", "Samples": ".samples"})
