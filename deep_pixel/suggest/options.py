"""Suggest Samples parameters and their defaults (every interface reads them from here)."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.device import DEVICES_HELP
from ..core.params import check_ranges, option

UNCERTAINTY_MEASURES = ("entropy", "margin")      # as Classify Pixels' UNCERTAINTY_MEASURE


@dataclass
class SuggestOptions:
    """Suggest Samples' options, each declared once (deep_pixel/core/params.py builds the interfaces)."""
    number_of_suggestions: int = option(
        10, "Number of suggestions", "windows to suggest (fewer when the raster has no more room for windows "
        "that neither overlap nor touch)", minimum=1, maximum=10000)
    window_size: int = option(
        0, "Window size (pixels; 0 = the model's chip size / 2)", "side of each suggested square window in "
        "pixels; 0: half the chip size the model was trained on", minimum=0)
    mask_polygons: str | None = option(
        None, "Suggest only inside these polygons", "vector file (or layer): every pixel of a suggested window "
        "lies inside them", kind="vector", optional=True)
    seed: int = option(0, "Random seed", "picks among equally uncertain windows (the same seed, the same "
                       "suggestions)", minimum=0)
    uncertainty_measure: str = option(
        "entropy", "Uncertainty measure (with a model)", "entropy: normalised entropy of the class "
        "probabilities; margin: 1 - (p1 - p2) of the two most likely classes", kind="enum",
        choices=UNCERTAINTY_MEASURES)
    device: str = option("auto", "Device (with a model)", DEVICES_HELP)

    def validate(self) -> None:
        check_ranges(self)
