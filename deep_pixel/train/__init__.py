"""Step 2, Train Model: chips folders -> a model package (options, loop, step, split, checkpoints,
augmentation, learning-rate finder, what is written and the training report)."""
from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "TrainOptions": ".options", "TrainResult": ".loop", "train_model": ".loop"})
