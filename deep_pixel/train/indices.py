"""What the network sees besides the raw bands: the normalisation statistics (whole raster or chips) and
spectral indices added as input channels when the band names say which bands are which.

A band's role comes from the words of its name (the raster's band descriptions, kept by Export): "red",
"green", "nir" or "near infrared" ("B4_red", "B8_nir", "Near-Infrared" all count; "red edge" bands do
not count as red). NDVI = (nir - red) / (nir + red); NDWI (McFeeters) = (green - nir) / (green + nir).
Each index is a normalised difference of two of the model's bands (core/inputs.py computes it the same
way in training and classification); the model's .emd lists them under SpectralIndices.
"""
from __future__ import annotations

import re

# index -> (role of a, role of b): the index is (a - b) / (a + b)
INDICES = {"NDVI": ("nir", "red"), "NDWI": ("green", "nir")}


def band_role(name: str) -> str | None:
    words = [w for w in re.split(r"[^a-z0-9]+", (name or "").lower()) if w]
    if "edge" in words or any(w.startswith("rededge") or w in ("re", "swir", "swir1", "swir2") for w in words):
        return None
    if "nir" in words or "nir1" in words or ("near" in words and "infrared" in words):
        return "nir"
    if "red" in words:
        return "red"
    if "green" in words:
        return "green"
    return None


def spectral_indices(band_names, bands, wanted) -> list:
    """[(index name, [a, b])] for the ``wanted`` indices whose bands are named; positions in the model's bands."""
    roles = {}
    for i, b in enumerate(bands):
        role = band_role(band_names[b - 1] if b - 1 < len(band_names) else "")
        if role and role not in roles:
            roles[role] = i
    found = []
    for name in wanted:
        a, b = INDICES[name]
        if a in roles and b in roles:
            found.append((name, [roles[a], roles[b]]))
    return found


def log_indices(run) -> None:
    """Which indices the network gets, and the assumption behind a near infrared that no description names."""
    from ..io.raster import ASSUMED_NIR
    data, progress = run.data, run.progress
    if any(data.band_names[data.bands[p] - 1] == ASSUMED_NIR for _, pair in run.indices for p in pair):
        progress.log("The raster's bands have no descriptions; three are tagged red, green and blue, so the fourth is "
                     "taken as near infrared (RGB + NIR). If it is not, give the bands descriptions or set "
                     "MODEL_ARGUMENTS ndvi=false,ndwi=false.")
    for name, (a, b) in run.indices:
        progress.log(f"{name} added as an input channel (normalised difference of bands {data.bands[a]} and "
                     f"{data.bands[b]}, named {data.band_names[data.bands[a] - 1]!r} and "
                     f"{data.band_names[data.bands[b] - 1]!r}).")


def pick_statistics(run) -> None:
    """Normalise with the whole raster's band statistics (recorded by Export) unless normalise=chips."""
    data = run.data
    if run.options.arg("normalise") == "raster" and data.raster_stats is not None:
        data.band_stats = data.raster_stats
        run.progress.log("Inputs normalised with the band statistics of the whole source raster.")
    else:
        run.progress.log("Inputs normalised with the band statistics of the exported chips"
                         + ("." if run.options.arg("normalise") == "chips" else
                            " (the chips folder records none of the whole raster: export it again to have them)."))
