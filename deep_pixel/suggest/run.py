"""Suggest Samples: a raster and a model (or its uncertainty raster) -> the K windows where labels would
help most: the highest mean uncertainty, spread out, away from the samples, optionally inside a mask.

With a model the raster is classified first (Classify Pixels with an uncertainty output, into a
temporary folder removed afterwards); the uncertainty and class rasters are then read block by block
into a grid of cells (grid.py), and windows are ranked and picked on that grid (windows.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import rasterio

from ..core.errors import DeepPixelError
from ..core.progress import Progress, check
from ..io.raster import open_raster
from .grid import GridReader, polygon_burner
from .options import SuggestOptions
from .windows import cells_per_window, class_mix, pick_windows


@dataclass
class Suggestion:
    rank: int
    mean_uncertainty: float
    class_mix: str
    wkt: str                      # polygon in the raster's CRS
    row: int                      # the window in raster pixels
    col: int
    size: int

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SuggestResult:
    suggestions: list
    crs_wkt: str | None
    window_size: int
    measure: str
    candidates: int               # eligible window positions
    notes: list = field(default_factory=list)


def suggest(input_raster: str, model_definition: str | None = None, input_uncertainty: str | None = None,
            input_samples: str | None = None, options: SuggestOptions | None = None,
            progress: Progress | None = None) -> SuggestResult:
    """The suggested windows for ``input_raster`` (see the module's docstring)."""
    options = options or SuggestOptions()
    progress = check(progress)
    options.validate()
    if bool(model_definition) == bool(input_uncertainty):
        raise DeepPixelError("Give MODEL_DEFINITION (the model to ask) or INPUT_UNCERTAINTY (an uncertainty raster "
                             "written by Classify Pixels), one of the two.")
    if input_uncertainty:
        return _from_rasters(input_raster, input_uncertainty, None, None, input_samples, options, progress)
    from ..model.package import load_package
    package = load_package(model_definition)
    work = _work_folder()
    try:
        unc, classes = _classify(input_raster, model_definition, work, options, progress.sub(0, 0.8))
        return _from_rasters(input_raster, unc, classes, package, input_samples, options, progress.sub(0.8, 1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


WORK_PREFIX = "deep_pixel_suggest-"
STALE_AFTER_S = 24 * 3600        # where a process cannot be asked whether it still runs (not POSIX)


def _work_folder() -> str:
    """``<temp>/deep_pixel_suggest-<pid>-*`` for the classification: removed by the run on every exit it
    sees (cancel and SIGTERM included); what a killed run left is removed by the next run."""
    temp = tempfile.gettempdir()
    for name in os.listdir(temp):
        if name.startswith(WORK_PREFIX) and _abandoned(os.path.join(temp, name)):
            shutil.rmtree(os.path.join(temp, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-")


def _abandoned(path: str) -> bool:
    """A work folder of this user whose run has ended (its process is gone) without removing it."""
    try:
        st = os.lstat(path)
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != getattr(os, "getuid", lambda: 0)():
            return False
        pid = int(os.path.basename(path)[len(WORK_PREFIX):].split("-")[0])
    except (OSError, ValueError):
        return False
    if os.name != "posix":
        import time
        return time.time() - st.st_mtime > STALE_AFTER_S
    try:
        os.kill(pid, 0)          # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _classify(raster, model, work, options, progress) -> tuple:
    from ..classify.options import ClassifyOptions
    from ..classify.run import classify
    unc, classes = os.path.join(work, "uncertainty.tif"), os.path.join(work, "classes.tif")
    progress.log("Classifying the raster to find where the model is unsure.")
    classify(raster, model, classes, ClassifyOptions(
        device=options.device, mask_polygons=options.mask_polygons, output_uncertainty=unc,
        uncertainty_measure=options.uncertainty_measure), progress)
    return unc, classes


def _from_rasters(raster, unc_path, class_path, package, samples, options, progress) -> SuggestResult:
    with open_raster(raster) as ds, open_raster(unc_path) as unc:
        _check_same_grid(ds, unc, unc_path)
        tags = unc.tags()
        class_path = class_path or _class_raster_beside(unc_path, tags, unc)
        names, values = _classes(package, tags)
        size = _window_size(options.window_size, package, tags, ds)
        k = cells_per_window(size)
        sample_burn = polygon_burner(samples, ds, "INPUT_SAMPLES", allow_empty=True, touched=True)
        mask_burn = polygon_burner(options.mask_polygons, ds, "MASK_POLYGONS")
        with (open_raster(class_path) if class_path and values else contextlib.nullcontext()) as cls:
            grid = GridReader(unc, cls, values if cls is not None else None, sample_burn, mask_burn,
                              size // k).read(progress.sub(0, 0.9))
        picks, candidates = pick_windows(grid, k, options.number_of_suggestions, options.seed)
        found = [_suggestion(n + 1, p, grid.cell, size, ds, names) for n, p in enumerate(picks)]
        crs = ds.crs.to_wkt() if ds.crs else None
    notes = []
    if len(found) < options.number_of_suggestions:
        notes.append(f"Only {len(found)} of the {options.number_of_suggestions} windows asked for fit: windows of "
                     f"{size} px must not overlap or touch each other or the samples, must have values for at least "
                     "half their pixels and lie inside MASK_POLYGONS when given. A smaller WINDOW_SIZE gives more.")
        progress.warn(notes[-1])
    progress.log(f"{len(found)} windows of {size} x {size} px suggested out of {candidates} eligible positions.")
    progress.report(1.0, "suggestions ready")
    return SuggestResult(found, crs, size, tags.get("DEEP_PIXEL_UNCERTAINTY", "uncertainty"), candidates, notes)


def _check_same_grid(ds, unc, unc_path) -> None:
    if (unc.width, unc.height) != (ds.width, ds.height) or not unc.transform.almost_equals(ds.transform):
        raise DeepPixelError(f"INPUT_UNCERTAINTY {unc_path} ({unc.width} x {unc.height} px) is not on the grid of "
                             f"INPUT_RASTER ({ds.width} x {ds.height} px): give the uncertainty raster Classify "
                             "Pixels wrote for this raster.")
    if unc.count != 1 or unc.dtypes[0] not in ("float32", "float64"):
        raise DeepPixelError(f"INPUT_UNCERTAINTY {unc_path} must be a one-band float raster of values from 0 to 1 "
                             "(Classify Pixels' OUTPUT_UNCERTAINTY).")


def _class_raster_beside(unc_path, tags, unc) -> str | None:
    """The class raster Classify Pixels wrote with this uncertainty raster, when it is still beside it."""
    name = tags.get("DEEP_PIXEL_CLASS_RASTER")
    path = os.path.join(os.path.dirname(os.path.abspath(unc_path)), name) if name else None
    if not path or not os.path.isfile(path):
        return None
    with rasterio.open(path) as ds:
        return path if (ds.width, ds.height) == (unc.width, unc.height) else None


def _classes(package, tags) -> tuple:
    """(names, values) of the model's classes (from the package, or the tags of the uncertainty raster)."""
    if package is not None:
        return [c.name for c in package.schema.classes], [c.value for c in package.schema.classes]
    try:
        classes = json.loads(tags.get("DEEP_PIXEL_CLASSES", "[]"))
        return [str(c["name"]) for c in classes], [int(c["value"]) for c in classes]
    except (ValueError, TypeError, KeyError):
        return [], []


def _window_size(asked, package, tags, ds) -> int:
    size = asked
    if not size:
        chip = package.tile_size[0] if package is not None else int(tags.get("DEEP_PIXEL_MODEL_CHIP_SIZE", 0) or 0)
        if not chip:
            raise DeepPixelError("WINDOW_SIZE is 0 (the model's chip size / 2) but INPUT_UNCERTAINTY does not say the "
                                 "model's chip size: give WINDOW_SIZE in pixels.")
        size = max(1, chip // 2)
    if size > min(ds.width, ds.height):
        raise DeepPixelError(f"WINDOW_SIZE {size} px does not fit the raster ({ds.width} x {ds.height} px): choose at "
                             f"most {min(ds.width, ds.height)}.")
    return size


def _suggestion(rank, pick, cell, size, ds, names) -> Suggestion:
    row, col = pick.row * cell, pick.col * cell
    corners = [ds.transform * (c, r) for c, r in ((col, row), (col + size, row), (col + size, row + size),
                                                   (col, row + size), (col, row))]
    wkt = "POLYGON ((" + ", ".join(f"{x!r} {y!r}" for x, y in corners) + "))"
    return Suggestion(rank, round(pick.mean, 6), class_mix(pick.class_counts, names), wkt, row, col, size)
