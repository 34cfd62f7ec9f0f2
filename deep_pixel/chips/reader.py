"""Reading chips folders for training: ours and the reference "Classified Tiles" layout.

Accepted: ``map.txt`` with ``images/x.tif labels/x.tif`` lines, written with forward or back
slashes, in any order, with repeated lines; classes from our ``deep_pixel_export.json``, else from
``esri_accumulated_stats.json`` / ``esri_model_definition.emd``, else from the label values seen.
Band statistics come from the export metadata; a folder without them gets them computed from its
chips. Several folders are merged when their band count agrees.

The result is an index (chip paths, sizes, footprints, labelled pixels per class, band statistics):
pixels are not kept. Each label chip is read once here (class counts and class checks), each image
chip only opened for its size and georeferencing; training reads chips back window by window
(deep_pixel/chips/chip.py, deep_pixel/chips/dataset.py), so memory does not grow with the folder.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import DeepPixelError
from ..core.progress import Progress, check
from ..core.schema import ClassInfo, ClassSchema, default_color
from ..io.bandstats import BandStats
from .chip import Chip, class_counts, label_chip, read_header, read_pixels
from .layout import ESRI_MODEL_DEFINITION, ESRI_STATS, EXPORT_METADATA, IMAGES, LABELS, MAP


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
    raster_stats: dict | None = None     # the whole source raster's band statistics (None: not recorded)
    sources: list = field(default_factory=list)    # each folder's source raster as Export recorded it (path, size...)

    @property
    def num_bands(self) -> int:
        return len(self.bands)

    def pixels_per_class(self, indices=None) -> dict:
        counts: dict = {}
        for i in (range(len(self.chips)) if indices is None else indices):
            for v, c in self.chips[i].counts.items():
                counts[v] = counts.get(v, 0) + c
        return counts

    def keep(self, indices=None) -> None:
        """Hold the pixels of these chips (all by default) in memory: the in-memory way of training."""
        for i in (range(len(self.chips)) if indices is None else indices):
            self.chips[i].keep()

    def pixel_bytes(self, indices=None) -> int:
        """Memory the pixels of these chips would take if held (image, labels and valid mask)."""
        item = np.dtype(self.dtype).itemsize
        return sum(h * w * (b * item + 2) for b, h, w in
                   (self.chips[i].shape for i in (range(len(self.chips)) if indices is None else indices)))


def read_map(folder: str) -> list:
    """(image, label) relative paths from map.txt: slashes normalised, sorted, duplicates dropped."""
    path = os.path.join(folder, MAP)
    if not os.path.isfile(path):
        if not os.listdir(folder):
            raise DeepPixelError(f"The training data folder {folder} is empty. Give the output folder of "
                                 f"Export Training Data (it holds {MAP}, {IMAGES}/ and {LABELS}/).")
        raise DeepPixelError(f"{folder} is not a training chips folder: {MAP} is missing. Run Export "
                             "Training Data first and give its output folder.")
    pairs = set()
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise DeepPixelError(f"{path} is not a text file (byte {e.start} is not UTF-8): it should list "
                             f"'{IMAGES}/<name> {LABELS}/<name>' lines. Export the chips again.") from None
    except OSError as e:
        raise DeepPixelError(f"Cannot read {path}: {e.strerror}.") from e
    for n, line in enumerate(lines, 1):
        parts = line.strip().replace("\\", "/").split()
        if not parts:
            continue
        if len(parts) != 2 or any("\x00" in p for p in parts):
            raise DeepPixelError(f"{path}, line {n}: expected '{IMAGES}/<name> {LABELS}/<name>', "
                                 f"got {line.strip()[:200]!r}.")
        pairs.add(tuple(p[2:] if p.startswith("./") else p for p in parts))
    if not pairs:
        raise DeepPixelError(f"{path} lists no chips: the export wrote nothing. Export again with more "
                             "samples or OUTPUT_NOFEATURE_TILES.")
    return sorted(pairs)


def _inside(folder, path):
    real = os.path.realpath(path)
    return real.startswith(os.path.realpath(folder) + os.sep)


def _resolve(folder, rel):
    """A map.txt path inside ``folder``. Absolute paths written on another machine (the reference
    tools write them) resolve to their last two parts (``images/x.tif``) inside the folder; a chip
    is never read from outside the chips folder (map.txt is input we do not trust), nor through a
    symbolic link that leads out of it (refused, naming the link)."""
    p = os.path.join(folder, rel)
    if os.path.isfile(p) and _inside(folder, p):
        return p
    tail = "/".join(part for part in rel.split("/")[-2:] if part not in ("", ".", ".."))
    q = os.path.join(folder, tail or "?")
    if tail and os.path.lexists(q) and not _inside(folder, q):
        raise _link_out(folder, q)
    if not os.path.lexists(q) and os.path.normpath(rel) != os.path.normpath(tail):
        raise DeepPixelError(f"{MAP} lists {rel}, outside the chips folder {folder}; chips are read only from "
                             f"inside it, and {tail or rel} is not there either. Fix that line of {MAP} (paths "
                             "relative to the folder, e.g. images/000000001.tif) or export the chips again.")
    return q


def _link_out(folder, path) -> DeepPixelError:
    """The error for ``path`` (inside ``folder`` by name) whose real location is outside the folder."""
    link, part = path, folder
    for name in os.path.relpath(path, folder).split(os.sep):
        part = os.path.join(part, name)
        if os.path.islink(part):
            link = part
            break
    return DeepPixelError(f"{link} is a symbolic link to {os.path.realpath(link)}, outside the chips folder "
                          f"{folder}: chips are read only from inside it. Copy the files into the folder instead "
                          f"of linking them, or remove that line from {MAP}.")


def _load_json(path, progress=None):
    """A JSON object from ``path``, or None when the file is absent, unreadable or not an object."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        if progress is not None:
            progress.warn(f"{path} is not a readable JSON object; it is ignored.")
        return None
    return data


def _number(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:       # an integer beyond float range
        return False


def _numbers(v, n) -> bool:
    return isinstance(v, list) and len(v) == n and all(_number(x) for x in v)


def _windows(meta) -> dict:
    """image path -> (x0, y0, x1, y1) from our export metadata; malformed entries are skipped."""
    out = {}
    chips = meta.get("chips") if meta else None
    for c in chips if isinstance(chips, list) else []:
        if not isinstance(c, dict) or not isinstance(c.get("image"), str):
            continue
        v = [c.get(k) for k in ("col", "row", "width", "height")]
        if all(_number(x) for x in v) and v[2] > 0 and v[3] > 0:
            out[c["image"].replace("\\", "/")] = (v[0], v[1], v[0] + v[2], v[1] + v[3])
    return out


def _valid_stats(stats, bands) -> bool:
    if not isinstance(stats, dict) or not _number(stats.get("count")) or stats["count"] <= 0:
        return False
    if not all(_numbers(stats.get(k), bands) for k in ("mean", "std", "min", "max")):
        return False
    return all(s >= 0 for s in stats["std"])


def _reference_schema(folder) -> tuple:
    """(ClassSchema or None, the file it comes from) from the reference tools' metadata."""
    stats_path = os.path.join(folder, ESRI_STATS)
    emd_path = os.path.join(folder, ESRI_MODEL_DEFINITION)
    stats, emd = _load_json(stats_path) or {}, _load_json(emd_path) or {}
    emd_classes, stats_classes = emd.get("Classes"), stats.get("Classes")
    records = [{"Value": c.get("Value"), "Name": c.get("Name"), "Color": c.get("Color")}
               for c in (emd_classes if isinstance(emd_classes, list) else []) if isinstance(c, dict)]
    source = emd_path
    if not records:
        records = [{"Value": c.get("ClassValue"), "Name": c.get("ClassName"),
                    "Color": c.get("Color")}
                   for c in (stats_classes if isinstance(stats_classes, list) else []) if isinstance(c, dict)]
        source = stats_path
    records = [r for r in records if r["Value"] not in (None, 0)]
    if not records:
        return None, None
    for r in records:
        if r["Color"] is None:
            r.pop("Color")
    return ClassSchema.from_records(records, source), source


def _folder_schema(folder, meta) -> tuple:
    """(ClassSchema or None, the file listing the classes): ours, else the reference tools'."""
    if meta.get("schema"):
        records = meta["schema"]
        records = records.get("classes", records) if isinstance(records, dict) else records
        source = os.path.join(folder, EXPORT_METADATA)
        schema = ClassSchema.from_records(records, source)
        if schema:
            return schema, source
    return _reference_schema(folder)


def _check_label_values(chips, label_paths, schema, source) -> None:
    """Every label value of every chip is in the folder's class list (it would become a new class)."""
    if not schema:
        return
    known = set(schema.values) | {0}
    for chip, path in zip(chips, label_paths):
        extra = sorted(set(chip.counts) - known)
        if extra:
            listed = ", ".join(f"{c.value} {c.name}" for c in schema)
            raise DeepPixelError(
                f"The label chip {path} holds the class value {extra[0]}, which is not in the chips folder's class "
                f"list ({os.path.basename(source)}: {listed}). Export the chips again with a class schema that "
                f"has class {extra[0]}, or add it to the class list in {source}.")


def _read_pair(folder, k, img_rel, lab_rel, windows) -> tuple:
    """One map.txt line -> (Chip, dtype and CRS of the image chip): the label chip is read, the image only opened."""
    image_path, label_path = _resolve(folder, img_rel), _resolve(folder, lab_rel)
    shape, dtype, nodata, bounds, crs = read_header(image_path, "image")
    labels = read_pixels(label_path, "label")
    if labels.shape[1:] != shape[1:]:
        raise DeepPixelError(f"{lab_rel} is {labels.shape[2]}x{labels.shape[1]} px but {img_rel} is "
                             f"{shape[2]}x{shape[1]}: image and label chips must match. "
                             f"Re-export the chips or remove that line from {MAP}.")
    if img_rel in windows:
        box, space = windows[img_rel], f"window:{folder}"
    elif bounds is not None:
        box, space = tuple(bounds), f"crs:{crs}"
    else:
        box, space = None, f"chip:{folder}:{k}"
    chip = Chip(image_path, label_path, f"{os.path.basename(folder)}/{img_rel}", box, space, shape, nodata,
                class_counts(label_chip(labels, lab_rel)))
    return chip, dtype, crs


def _read_chips(folder, pairs, windows, progress) -> tuple:
    """Every chip of map.txt -> (chips, (dtype, CRS) of the first image chip); all of the same band count."""
    chips, first, dtypes = [], None, {}
    for k, (img_rel, lab_rel) in enumerate(pairs):
        progress.check_cancelled()
        chip, dtype, crs = _read_pair(folder, k, img_rel, lab_rel, windows)
        dtypes[str(dtype)] = dtypes.get(str(dtype), 0) + 1
        if not chips:
            first = (dtype, crs)
        elif chip.shape[0] != chips[0].shape[0]:
            raise DeepPixelError(f"{img_rel} has {chip.shape[0]} band(s) but {chips[0].name} (the first chip of "
                                 f"{MAP}) has {chips[0].shape[0]}: every chip of a folder must come from the same "
                                 "bands. Re-export the chips, or remove the odd ones from map.txt.")
        chips.append(chip)
        progress.report((k + 1) / len(pairs), f"indexed {k + 1}/{len(pairs)} chips")
    if len(dtypes) > 1:
        progress.warn(f"{os.path.basename(folder)}: image chips of several data types (" + ", ".join(
            f"{n} {t}" for t, n in dtypes.items()) + "): one band statistic cannot fit values of different scales. "
            "If some chips were rescaled (e.g. to 8 bits), export them all again from the same raster.")
    return chips, first


def read_folder(folder: str, progress: Progress | None = None) -> ChipSet:
    """One chips folder -> ChipSet (an index: the chips' pixels are read when training asks for them)."""
    progress = check(progress)
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder):
        raise DeepPixelError(f"The training data folder {folder} does not exist.")
    pairs = read_map(folder)
    meta = _load_json(os.path.join(folder, EXPORT_METADATA), progress)
    chips, (dtype, first_crs) = _read_chips(folder, pairs, _windows(meta), progress)
    shape = chips[0].shape
    meta = meta or {}
    bands = _bands(folder, meta, shape[0], progress)
    schema, source = _folder_schema(folder, meta)
    _check_label_values(chips, [_resolve(folder, lab) for _, lab in pairs], schema, source)
    stats = meta.get("band_stats")
    if not _valid_stats(stats, shape[0]):
        progress.log(f"{os.path.basename(folder)}: no usable export band statistics; computing them from the chips.")
        stats = _stats_from_chips(chips)
    raster = meta.get("raster_band_stats")
    src = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    pixel = src.get("pixel_size")
    names = src.get("band_names")
    crs_wkt = src.get("crs_wkt")
    return ChipSet(chips=chips, schema=schema, bands=list(bands), band_stats=stats, dtype=str(dtype),
                   tile_size=(shape[1], shape[2]),
                   crs_wkt=crs_wkt if isinstance(crs_wkt, str) and crs_wkt else first_crs,
                   pixel_size=tuple(float(v) for v in pixel) if _numbers(pixel, 2) else None,
                   band_names=[str(n) for n in names] if isinstance(names, list) else [], folders=[folder],
                   sources=[src] if src else [],
                   raster_stats=raster if _valid_stats(raster, shape[0]) else None)


def _bands(folder, meta: dict, count: int, progress) -> list:
    """The source raster's bands that the chips hold (export metadata's ``bands``; 1..count when absent). A list
    that does not fit the chips is named (then 1..count), one beyond the recorded source's band count refused."""
    bands, name = meta.get("bands"), os.path.join(folder, EXPORT_METADATA)
    if bands is None:
        return list(range(1, count + 1))
    if not (isinstance(bands, list) and len(bands) == count
            and all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in bands)):
        progress.warn(f"{name}: 'bands' {str(bands)[:80]} does not list one band number per chip band ({count}); "
                      f"bands 1-{count} of the source are assumed (Classify reads those). Export again to record them.")
        return list(range(1, count + 1))
    src = meta.get("source") if isinstance(meta.get("source"), dict) else {}
    total = src.get("count")
    if _number(total) and max(bands) > total:
        raise DeepPixelError(f"{name}: 'bands' {bands} names band {max(bands)}, but its source raster has {total:g} "
                             "band(s): Classify could not read it. Correct 'bands' or export the training data again.")
    return bands


def _stats_from_chips(chips) -> dict:
    acc = BandStats(chips[0].shape[0])
    for c in chips:                     # one chip at a time
        acc.add(*c.read_image())
    out = acc.result()
    if not out.get("count"):
        raise DeepPixelError("Every image chip is nodata: there is nothing to train on.")
    return out


def _merge_stats(stats) -> dict:
    """Pool per-band mean/std of several folders' statistics, weighted by pixel counts."""
    n = np.array([s.get("count", 1) for s in stats], dtype=np.float64)
    mean = np.array([s["mean"] for s in stats])
    var = np.square(np.array([s["std"] for s in stats]))
    w = n[:, None] / n.sum()
    m = (w * mean).sum(0)
    v = (w * (var + np.square(mean - m))).sum(0)
    return {"count": int(n.sum()), "mean": m.tolist(), "std": np.sqrt(v).tolist(),
            "min": np.min([s["min"] for s in stats], axis=0).tolist(),
            "max": np.max([s["max"] for s in stats], axis=0).tolist()}


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
        seen.update(c.counts)
    if not seen:
        raise DeepPixelError("No chip holds a labelled pixel (every label is 0). Draw training samples "
                             "inside the raster and export again.")
    schema = _merge_schemas(sets, seen)
    stats = first.band_stats if len(sets) == 1 else _merge_stats([s.band_stats for s in sets])
    rasters = [s.raster_stats for s in sets]
    raster = None if any(r is None for r in rasters) else rasters[0] if len(sets) == 1 else _merge_stats(rasters)
    heights = {s.tile_size for s in sets}
    tile = max(heights)
    return ChipSet(chips=chips, schema=schema, bands=first.bands, band_stats=stats, dtype=first.dtype,
                   tile_size=tile, crs_wkt=first.crs_wkt, pixel_size=first.pixel_size,
                   band_names=first.band_names, folders=[f for s in sets for f in s.folders], raster_stats=raster,
                   sources=[r for s in sets for r in s.sources])
