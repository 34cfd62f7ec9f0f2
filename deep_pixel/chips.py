"""Reading chips folders for training: ours and the reference "Classified Tiles" layout.

Accepted: ``map.txt`` with ``images/x.tif labels/x.tif`` lines, written with forward or back
slashes, in any order, with repeated lines; classes from our ``deep_pixel_export.json``, else from
``esri_accumulated_stats.json`` / ``esri_model_definition.emd``, else from the label values seen.
Band statistics come from the export metadata; a folder without them gets them computed from its
chips. Several folders are merged when their band count agrees.

Every chip is read into memory once in its raw data type (training samples random crops from it
many times, so reading from disk per step would dominate on CPU).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from .bandstats import BandStats
from .errors import DeepPixelError
from .progress import Progress, check
from .schema import ClassInfo, ClassSchema, default_color

EXPORT_METADATA = "deep_pixel_export.json"


@dataclass
class Chip:
    image: np.ndarray            # (bands, h, w) raw values
    labels: np.ndarray           # (h, w) class values, 0 = unlabelled
    valid: np.ndarray            # (h, w) bool: image pixels that are not nodata
    name: str                    # "<folder>/<image path>" for messages
    box: tuple | None            # (x0, y0, x1, y1) footprint in ``space`` (for the spatial split)
    space: str                   # footprints only compare within one space


@dataclass
class ChipSet:
    chips: list
    schema: ClassSchema
    bands: list                  # 1-based source raster bands, in input order
    band_stats: dict             # mean, std, min, max (lists, one per band)
    dtype: str
    tile_size: tuple             # (height, width) of the chips
    crs_wkt: str | None = None
    pixel_size: tuple | None = None
    band_names: list = field(default_factory=list)
    folders: list = field(default_factory=list)

    @property
    def num_bands(self) -> int:
        return len(self.bands)

    def pixels_per_class(self, indices=None) -> dict:
        counts: dict = {}
        for i in (range(len(self.chips)) if indices is None else indices):
            vals, n = np.unique(self.chips[i].labels, return_counts=True)
            for v, c in zip(vals.tolist(), n.tolist()):
                if v:
                    counts[v] = counts.get(v, 0) + c
        return counts


def read_map(folder: str) -> list:
    """(image, label) relative paths from map.txt: slashes normalised, sorted, duplicates dropped."""
    path = os.path.join(folder, "map.txt")
    if not os.path.isfile(path):
        raise DeepPixelError(f"{folder} is not a training chips folder: map.txt is missing. Run Export "
                             "Training Data first and give its output folder.")
    pairs = set()
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            parts = line.strip().replace("\\", "/").split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DeepPixelError(f"{path}, line {n}: expected 'images/<name> labels/<name>', got {line.strip()!r}.")
            pairs.add(tuple(p[2:] if p.startswith("./") else p for p in parts))
    if not pairs:
        raise DeepPixelError(f"{path} lists no chips: the export wrote nothing. Export again with more "
                             "samples or OUTPUT_NOFEATURE_TILES.")
    return sorted(pairs)


def _resolve(folder, rel):
    """A map.txt path, tolerating absolute paths written on another machine (keep the tail)."""
    p = os.path.join(folder, rel)
    if os.path.isfile(p):
        return p
    tail = "/".join(rel.split("/")[-2:])
    q = os.path.join(folder, tail)
    return q if os.path.isfile(q) else p


def _load_json(path):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _reference_schema(folder) -> ClassSchema | None:
    stats = _load_json(os.path.join(folder, "esri_accumulated_stats.json")) or {}
    emd = _load_json(os.path.join(folder, "esri_model_definition.emd")) or {}
    records = [{"Value": c.get("Value"), "Name": c.get("Name"), "Color": c.get("Color")}
               for c in emd.get("Classes") or [] if isinstance(c, dict)]
    if not records:
        records = [{"Value": c.get("ClassValue"), "Name": c.get("ClassName"),
                    "Color": c.get("Color")}
                   for c in stats.get("Classes") or [] if isinstance(c, dict)]
    records = [r for r in records if r["Value"] not in (None, 0)]
    if not records:
        return None
    for r in records:
        if r["Color"] is None:
            r.pop("Color")
    return ClassSchema.from_records(records, os.path.join(folder, "esri_model_definition.emd"))


def _read_raster(path, what):
    import rasterio
    if not os.path.isfile(path):
        raise DeepPixelError(f"The {what} chip {path} listed in map.txt is missing. Re-export the chips "
                             "or remove that line from map.txt.")
    try:
        with rasterio.open(path) as ds:
            data = ds.read()
            nodata = ds.nodata
            bounds = ds.bounds if not ds.transform.is_identity else None
            crs = ds.crs.to_wkt() if ds.crs else None
    except rasterio.errors.RasterioError as e:
        raise DeepPixelError(f"Cannot read the {what} chip {path}: {e}.") from e
    return data, nodata, bounds, crs


def read_folder(folder: str, progress: Progress | None = None) -> ChipSet:
    """One chips folder -> ChipSet (all chips in memory)."""
    progress = check(progress)
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise DeepPixelError(f"The training data folder {folder} does not exist.")
    pairs = read_map(folder)
    meta = _load_json(os.path.join(folder, EXPORT_METADATA))
    windows = {}
    if meta:
        for c in meta.get("chips", []):
            windows[c["image"].replace("\\", "/")] = (c["col"], c["row"], c["col"] + c["width"],
                                                      c["row"] + c["height"])
    chips, dtype, shape = [], None, None
    for k, (img_rel, lab_rel) in enumerate(pairs):
        progress.check_cancelled()
        image, nodata, bounds, crs = _read_raster(_resolve(folder, img_rel), "image")
        labels, _, _, _ = _read_raster(_resolve(folder, lab_rel), "label")
        if labels.shape[1:] != image.shape[1:]:
            raise DeepPixelError(f"{lab_rel} is {labels.shape[2]}x{labels.shape[1]} px but {img_rel} is "
                                 f"{image.shape[2]}x{image.shape[1]}: image and label chips must match.")
        if shape is None:
            shape, dtype = image.shape, image.dtype
        elif image.shape[0] != shape[0]:
            raise DeepPixelError(f"{img_rel} has {image.shape[0]} band(s) but the first chip has {shape[0]}.")
        valid = np.ones(image.shape[1:], bool) if nodata is None else ~np.all(image == nodata, axis=0)
        lab = labels[0]
        if lab.dtype.kind == "f" or (lab.size and int(lab.min()) < 0):
            raise DeepPixelError(f"{lab_rel}: label chips must hold non-negative integer class values.")
        lab = lab.astype(np.uint16 if int(lab.max(initial=0)) > 255 else np.uint8)
        if img_rel in windows:
            box, space = windows[img_rel], f"window:{folder}"
        elif bounds is not None:
            box, space = tuple(bounds), f"crs:{crs}"
        else:
            box, space = None, f"chip:{folder}:{k}"
        chips.append(Chip(image, lab, valid, f"{os.path.basename(folder)}/{img_rel}", box, space))
        progress.report((k + 1) / len(pairs), f"read {k + 1}/{len(pairs)} chips")
    bands = list(meta.get("bands") or []) if meta else []
    if len(bands) != shape[0]:
        bands = list(range(1, shape[0] + 1))
    schema = None
    if meta and meta.get("schema"):
        schema = ClassSchema.from_records(meta["schema"].get("classes", meta["schema"])
                                          if isinstance(meta["schema"], dict) else meta["schema"],
                                          EXPORT_METADATA)
    schema = schema or _reference_schema(folder)
    stats = (meta or {}).get("band_stats") or {}
    if not stats.get("count") or len(stats.get("mean", [])) != shape[0]:
        progress.log(f"{os.path.basename(folder)}: no export band statistics; computing them from the chips.")
        stats = _stats_from_chips(chips)
    src = (meta or {}).get("source") or {}
    return ChipSet(chips=chips, schema=schema, bands=bands, band_stats=stats, dtype=str(dtype),
                   tile_size=(shape[1], shape[2]), crs_wkt=src.get("crs_wkt") or _first_crs(folder, pairs),
                   pixel_size=tuple(src["pixel_size"]) if src.get("pixel_size") else None,
                   band_names=list(src.get("band_names") or []), folders=[folder])


def _first_crs(folder, pairs):
    try:
        return _read_raster(_resolve(folder, pairs[0][0]), "image")[3]
    except DeepPixelError:
        return None


def _stats_from_chips(chips) -> dict:
    acc = BandStats(chips[0].image.shape[0])
    for c in chips:
        acc.add(c.image, c.valid)
    out = acc.result()
    if not out.get("count"):
        raise DeepPixelError("Every image chip is nodata: there is nothing to train on.")
    return out


def _merge_stats(sets) -> dict:
    """Pool per-band mean/std over folders, weighted by pixel counts."""
    n = np.array([s.band_stats.get("count", 1) for s in sets], dtype=np.float64)
    mean = np.array([s.band_stats["mean"] for s in sets])
    var = np.square(np.array([s.band_stats["std"] for s in sets]))
    w = n[:, None] / n.sum()
    m = (w * mean).sum(0)
    v = (w * (var + np.square(mean - m))).sum(0)
    return {"count": int(n.sum()), "mean": m.tolist(), "std": np.sqrt(v).tolist(),
            "min": np.min([s.band_stats["min"] for s in sets], axis=0).tolist(),
            "max": np.max([s.band_stats["max"] for s in sets], axis=0).tolist()}


def _merge_schemas(sets, values_seen) -> ClassSchema:
    classes: dict = {}
    for s in sets:
        for c in (s.schema or []):
            other = classes.get(c.value)
            if other is not None and other.name != c.name:
                raise DeepPixelError(f"Class value {c.value} is {other.name!r} in one training folder and "
                                     f"{c.name!r} in another; re-export them with the same class schema.")
            classes.setdefault(c.value, c)
    for i, v in enumerate(sorted(values_seen)):
        if v not in classes:
            classes[v] = ClassInfo(v, f"Class {v}", default_color(len(classes) + i))
    return ClassSchema([classes[v] for v in sorted(classes)])


def read_chip_folders(folders, progress: Progress | None = None) -> ChipSet:
    """One or several chips folders -> one ChipSet (same band count required)."""
    progress = check(progress)
    folders = [f for f in folders if f]
    if not folders:
        raise DeepPixelError("No training data folder was given.")
    sets = []
    for i, f in enumerate(folders):
        sets.append(read_folder(f, progress.sub(i / len(folders), (i + 1) / len(folders))))
    first = sets[0]
    for s in sets[1:]:
        if s.num_bands != first.num_bands:
            raise DeepPixelError(f"{s.folders[0]} has {s.num_bands} band(s) but {first.folders[0]} has "
                                 f"{first.num_bands}: all training folders must come from rasters with the same bands.")
        if s.bands != first.bands:
            progress.warn(f"{s.folders[0]} was exported from bands {s.bands}, {first.folders[0]} from {first.bands}.")
    chips = [c for s in sets for c in s.chips]
    seen = set()
    for c in chips:
        seen.update(int(v) for v in np.unique(c.labels) if v)
    if not seen:
        raise DeepPixelError("No chip holds a labelled pixel (every label is 0). Draw training samples "
                             "inside the raster and export again.")
    schema = _merge_schemas(sets, seen)
    stats = first.band_stats if len(sets) == 1 else _merge_stats(sets)
    heights = {s.tile_size for s in sets}
    tile = max(heights)
    return ChipSet(chips=chips, schema=schema, bands=first.bands, band_stats=stats, dtype=first.dtype,
                   tile_size=tile, crs_wkt=first.crs_wkt, pixel_size=first.pixel_size,
                   band_names=first.band_names, folders=[f for s in sets for f in s.folders])
