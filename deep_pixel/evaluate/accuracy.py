"""Compute Accuracy: a classified raster against reference polygons or a reference raster.

Every reference pixel counts by default (window by window, bounded memory); optionally a
stratified random sample of pixels (the same number per reference class, seeded). Reference
value 0 is "no reference" and ignored; a classified pixel with no class (nodata) where the
reference has one counts as an error (the "unclassified" column) and is reported.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject
from rasterio.windows import Window

from ..core.errors import DeepPixelError
from ..core.metrics import ConfusionMatrix
from ..core.params import check_ranges, option
from ..core.progress import Progress, check
from ..io.raster import footprint_bounds, gdal_reading, open_raster, read_bands

SAMPLINGS = ("ALL_PIXELS", "STRATIFIED_RANDOM")
BLOCK = 512


@dataclass
class EvaluateOptions:
    """Compute Accuracy's options, each declared once (deep_pixel/core/params.py builds the interfaces)."""
    class_field: str | None = option(
        None, "Class field of the reference polygons", "integer class values or class names (default: "
        "Classvalue, Value, Classname or class)", kind="field", parent="REFERENCE", optional=True)
    sampling: str = option("ALL_PIXELS", "Sampling", "every reference pixel, or the same number of random pixels "
                           "in each reference class (NUMBER_OF_POINTS > 0 switches to it)", kind="enum",
                           choices=SAMPLINGS)
    number_of_points: int = option(0, "Number of random points (0 = every reference pixel)",
                                   "per-class random pixels for STRATIFIED_RANDOM", minimum=0,
                                   maximum=100_000_000)
    seed: int = option(0, "Random seed", "makes the random points reproducible", minimum=0,
                       maximum=2**32 - 1)

    def resolved(self) -> "EvaluateOptions":
        """The options as evaluated: a number of points means stratified random sampling."""
        if self.number_of_points and self.sampling == "ALL_PIXELS":
            return replace(self, sampling="STRATIFIED_RANDOM")
        return self

    def validate(self):
        if self.sampling not in SAMPLINGS:
            raise DeepPixelError(f"SAMPLING must be one of {', '.join(SAMPLINGS)}, not {self.sampling!r}.")
        if self.number_of_points < 0:
            raise DeepPixelError("NUMBER_OF_POINTS must be 0 (all reference pixels) or more.")
        if self.sampling == "STRATIFIED_RANDOM" and self.number_of_points == 0:
            raise DeepPixelError("SAMPLING=STRATIFIED_RANDOM needs NUMBER_OF_POINTS (e.g. 500).")
        check_ranges(self)


@dataclass
class EvaluateResult:
    summary: dict
    names: dict
    notes: list = field(default_factory=list)
    output_report: str | None = None
    output_json: str | None = None
    output_table: str | None = None


def classified_classes(ds) -> dict:
    """{value: name} from the tags Classify Pixels writes, else {}."""
    try:
        return {int(c["value"]): str(c["name"]) for c in json.loads(ds.tags().get("DEEP_PIXEL_CLASSES", "[]"))}
    except (ValueError, TypeError, KeyError):
        return {}


class _RasterReference:
    """Reference raster values on the classified grid (nearest resampling when the grids differ)."""

    def __init__(self, path, target, notes):
        self.ds = open_raster(path)
        _require_integers(self.ds, "REFERENCE_RASTER", path)
        self.path = path
        self.same = (self.ds.crs == target.crs and self.ds.transform.almost_equals(target.transform)
                     and self.ds.shape == target.shape)
        self.target = target
        self.nodata = self.ds.nodata
        if not self.same and (self.ds.crs is None or target.crs is None):
            self.ds.close()
            which = "INPUT_CLASSIFIED" if target.crs is None else "REFERENCE_RASTER " + path
            raise DeepPixelError(f"The {which} has no CRS and the two rasters are on different grids, so the "
                                 "reference cannot be placed on the classified raster. Assign the CRS it is in "
                                 "(Raster > Projections > Assign Projection, or gdal_edit.py -a_srs EPSG:<code>) "
                                 "and run again.")
        if not self.same:
            notes.append(f"The reference raster {os.path.basename(path)} is on another grid (CRS, cell size or "
                         "extent): it was resampled onto the classified raster's grid (nearest neighbour).")

    def read(self, window):
        if self.same:
            ref = read_bands(self.ds, 1, window)
        else:
            ref = np.zeros((int(window.height), int(window.width)), dtype=self.ds.dtypes[0])
            with gdal_reading(self.path):
                reproject(rasterio.band(self.ds, 1), ref, dst_transform=self.target.window_transform(window),
                          dst_crs=self.target.crs, dst_nodata=0, resampling=Resampling.nearest)
        if self.nodata is not None and not np.isnan(self.nodata):
            ref = np.where(ref == self.nodata, 0, ref)
        ref = ref.astype(np.int64)
        _check_values(ref, "REFERENCE_RASTER", self.path, None)
        return ref

    def close(self):
        self.ds.close()


class _PolygonReference:
    def __init__(self, path, class_field, target, names, notes):
        from ..core.schema import ClassInfo, ClassSchema
        from ..export.samples import LabelBurner, Samples, pick_class_field, resolve_class_values
        from ..io.vector import read_vector
        vec = read_vector(path)
        fieldname = pick_class_field(list(vec.attributes), class_field)
        schema = ClassSchema([ClassInfo(v, n) for v, n in sorted(names.items())]) if names else None
        values, _schema, mapping = resolve_class_values(
            vec.attributes[fieldname], schema, vec.fids,
            fix=f"Choose the CLASS_FIELD of {path} that holds the classified raster's class values or names.",
            known="the classified raster's classes")
        if mapping:
            notes.append("Reference class names mapped to values: "
                         + ", ".join(f"{k}={v}" for k, v in sorted(mapping.items(), key=lambda kv: kv[1])))
            for name, value in mapping.items():
                names.setdefault(value, name)
        self.burner = LabelBurner(Samples(vec.geometries, values, vec.crs_wkt),
                                  target.crs.to_wkt() if target.crs else None, what="reference layer")
        if self.burner.repaired:
            notes.append(f"{self.burner.repaired} invalid reference polygon(s) were repaired (make_valid).")
        self.target = target

    def read(self, window):
        t = self.target.window_transform(window)
        bounds = footprint_bounds(window, self.target.transform)
        return self.burner.burn(t, (int(window.height), int(window.width)), bounds).astype(np.int64)

    def close(self):
        pass


def _require_integers(ds, role: str, path: str) -> None:
    """Class rasters hold integers: a float raster's values would be truncated into wrong classes."""
    if np.dtype(ds.dtypes[0]).kind not in "iu":
        raise DeepPixelError(
            f"{role} {path} holds {ds.dtypes[0]} values, but a class raster holds integer class values (what "
            f"Classify Pixels writes). If its values are whole class numbers, convert it first: gdal_translate "
            f"-ot UInt16 {os.path.basename(path)} classes_int.tif")


def _check_values(values: np.ndarray, role: str, path: str, names: dict | None) -> None:
    """Refuse negative classes (they would wrap onto the last class) and classes the raster does not list."""
    if values.size and int(values.min()) < 0:
        raise DeepPixelError(f"{role} {path} holds the negative value {int(values.min())}: class values are "
                             "1 or more (0 or the raster's nodata = no class). Set that value as the raster's "
                             "nodata (gdal_edit.py -a_nodata) or renumber the classes.")
    if names:
        unknown = sorted(set(np.unique(values).tolist()) - set(names) - {0})
        if unknown:
            raise DeepPixelError(f"{role} {path} holds class value(s) {unknown[:10]} that its own class list "
                                 f"({sorted(names)}) does not have: the raster is not what Classify Pixels "
                                 "wrote, or was edited. Classify again, or give a raster without that list.")


def _classified(ds, window) -> np.ndarray:
    """Classified values of a window, its nodata as 0 (no class)."""
    pred = read_bands(ds, 1, window)
    if ds.nodata is not None and not np.isnan(ds.nodata) and ds.nodata != 0:
        pred = np.where(pred == ds.nodata, 0, pred)
    return pred


def _windows(ds):
    for r in range(0, ds.height, BLOCK):
        for c in range(0, ds.width, BLOCK):
            yield Window(c, r, min(BLOCK, ds.width - c), min(BLOCK, ds.height - r))


def evaluate(classified: str, reference: str | None = None, reference_raster: str | None = None,
             options: EvaluateOptions | None = None, progress: Progress | None = None) -> EvaluateResult:
    options = (options or EvaluateOptions()).resolved()
    options.validate()
    progress = check(progress)
    if bool(reference) == bool(reference_raster):
        raise DeepPixelError("Give exactly one reference: polygons (REFERENCE with CLASS_FIELD) or a raster "
                             "(REFERENCE_RASTER).")
    notes = []
    with open_raster(classified) as ds:
        if ds.count != 1:
            raise DeepPixelError(f"{classified} has {ds.count} bands; the classified raster must have one band "
                                 "of class values (the output of Classify Pixels).")
        _require_integers(ds, "INPUT_CLASSIFIED", classified)
        names = classified_classes(ds)
        ref = (_PolygonReference(reference, options.class_field, ds, names, notes) if reference
               else _RasterReference(reference_raster, ds, notes))
        try:
            pairs = _collect(ds, ref, options, progress)
        finally:
            ref.close()
    ref_values, pred_values = pairs
    _check_values(pred_values, "INPUT_CLASSIFIED", classified, names)
    if ref_values.size == 0:
        raise DeepPixelError("The reference and the classified raster do not overlap (or every reference pixel is "
                             "0). Check that both cover the same area and the reference's CRS.")
    values = sorted(set(np.unique(ref_values).tolist()) | set(names) | (set(np.unique(pred_values).tolist()) - {0}))
    cm = ConfusionMatrix(values)
    cm.add(ref_values, pred_values)
    unclassified = int(((pred_values == 0)).sum())
    if unclassified:
        notes.append(f"{unclassified} reference pixel(s) have no class in the classified raster (nodata): "
                     "they count as errors (column 'unclassified').")
    summary = cm.summary()
    summary["unclassified_reference_pixels"] = unclassified
    summary["sampling"] = options.sampling if options.number_of_points else "ALL_PIXELS"
    for line in notes:
        progress.log(line)
    progress.log(f"{summary['pixels']} reference pixels: overall accuracy {summary['overall_accuracy']}, "
                 f"kappa {summary['kappa']}, mIoU {summary['mean_iou']}.")
    return EvaluateResult(summary, {v: names.get(v, f"class {v}") for v in values}, notes)


def _collect(ds, ref, options, progress):
    """(reference values, classified values) of the evaluated pixels, as 1-D arrays."""
    windows = list(_windows(ds))
    if options.number_of_points:
        return _stratified(ds, ref, windows, options, progress)
    refs, preds = [], []
    for i, w in enumerate(windows):
        progress.check_cancelled()
        r = ref.read(w)
        keep = r > 0
        if keep.any():
            refs.append(r[keep])
            preds.append(_classified(ds, w)[keep].astype(np.int64))
        progress.report((i + 1) / len(windows), f"block {i + 1}/{len(windows)}")
    if not refs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(refs), np.concatenate(preds)


def _stratified(ds, ref, windows, options, progress):
    """Two passes: count reference pixels per class, then keep seeded random ranks within each class."""
    counts = {}
    for i, w in enumerate(windows):
        progress.check_cancelled()
        v, n = np.unique(ref.read(w), return_counts=True)
        for value, count in zip(v.tolist(), n.tolist()):
            if value > 0:
                counts[value] = counts.get(value, 0) + count
        progress.report(0.5 * (i + 1) / len(windows), "counting reference pixels")
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    per_class = -(-options.number_of_points // len(counts))
    rng = np.random.default_rng(options.seed)
    chosen = {v: np.sort(rng.choice(n, size=min(per_class, n), replace=False)) for v, n in sorted(counts.items())}
    seen = dict.fromkeys(counts, 0)
    refs, preds = [], []
    for i, w in enumerate(windows):
        progress.check_cancelled()
        r = ref.read(w).ravel()
        p = None
        for value in counts:
            where = np.nonzero(r == value)[0]
            if not where.size:
                continue
            lo, hi = np.searchsorted(chosen[value], [seen[value], seen[value] + where.size])
            picks = where[chosen[value][lo:hi] - seen[value]]
            seen[value] += where.size
            if picks.size:
                p = _classified(ds, w).ravel() if p is None else p
                refs.append(np.full(picks.size, value, np.int64))
                preds.append(p[picks].astype(np.int64))
        progress.report(0.5 + 0.5 * (i + 1) / len(windows), "sampling points")
    return np.concatenate(refs), np.concatenate(preds)
