"""Suggest Samples: where new labels would help the model most (its most uncertain windows, spread out,
away from what is labelled already)."""
from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "SuggestOptions": ".options", "SuggestResult": ".run", "suggest": ".run", "write_suggestions": ".output"})
