"""The chips folder's file names, in one place (writer.py writes them, reader.py and train/resume.py read them).

    images/000000000.tif   labels/000000000.tif   map.txt   stats.txt
    esri_accumulated_stats.json   esri_model_definition.emd   deep_pixel_export.json

The "Classified Tiles" layout of the reference tools (images/, labels/, map.txt, the esri_* files),
plus our own metadata (EXPORT_METADATA: band statistics, CRS, class mapping, every chip's window).
"""
from __future__ import annotations

IMAGES = "images"                                       # image chips
LABELS = "labels"                                       # 1-band class chips (0 = unlabelled)
MAP = "map.txt"                                         # "images/<n>.tif labels/<n>.tif" per chip
STATS = "stats.txt"                                     # human-readable summary
ESRI_STATS = "esri_accumulated_stats.json"              # NumTiles, Classes, ClassPixelStats, BandStats
ESRI_MODEL_DEFINITION = "esri_model_definition.emd"     # template with Classes (Value, Name, Color)
EXPORT_METADATA = "deep_pixel_export.json"              # ours

# The files that describe a folder's chips (a resumed training run checks they are unchanged).
METADATA_FILES = (MAP, EXPORT_METADATA, ESRI_STATS, ESRI_MODEL_DEFINITION)
