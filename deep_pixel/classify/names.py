"""Classify Pixels' output file names in one place (light: the Processing adapter imports it).

A folder input writes, per image, ``<image>`` + CLASSIFIED (and CONFIDENCE, UNCERTAINTY when those
outputs are asked for) into the output folder; ``style_path`` (io/styles.py) names each ``.qml``.
"""
from __future__ import annotations

import os

CLASSIFIED = "_classified.tif"
CONFIDENCE = "_confidence.tif"
UNCERTAINTY = "_uncertainty.tif"


def folder_for_output(output_raster: str) -> str:
    """The output folder of a folder input when the interface asks for a GeoTIFF name (Processing's
    OUTPUT_RASTER): that name without its extension (``out.tif`` -> ``out``)."""
    return os.path.splitext(output_raster)[0]
