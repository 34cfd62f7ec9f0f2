"""Classify Pixels: a raster (or a folder of rasters) and a model package -> a styled class raster.

Tiles are read with real neighbouring pixels, classified in batches by the fastest runtime for the
machine, blended by ``RollingBlender`` and their final rows written to a tiled GeoTIFF under a
temporary name (tile_pipeline.py), reads and writes overlapping the network. Memory depends on the
tile size, and only through a seam band of a few dozen rows on the raster width; never on the height.
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field, replace

import rasterio

from ..core.errors import Cancelled, DeepPixelError
from ..core.progress import Progress, check
from ..core.tiles import TileParams
from ..io.destinations import Place, check_destinations
from ..io.raster import open_raster
from .ensemble import load_members, member_paths
from .job import prepare_job
from .names import CLASSIFIED, CONFIDENCE, UNCERTAINTY
from .options import ClassifyOptions
from .value_check import check_values
from .outputs import ClassOutputs

# GDAL's block cache while classifying (its default is 5% of the RAM): enough for the overlap of
# neighbouring tiles and the output's partly written blocks; more would only grow with the raster.
GDAL_CACHE_BYTES = 64 * 2**20
IMAGE_EXTENSIONS = (".tif", ".tiff", ".vrt", ".img", ".jp2", ".png", ".jpg")


@dataclass
class ClassifyResult:
    output_raster: str
    output_confidence: str | None
    device: str
    tiles: int
    skipped_tiles: int
    seconds: float
    class_values: list
    tile: TileParams
    accumulator_bytes: int = 0
    classes: list = field(default_factory=list)   # [{"value", "name", "color"}] for styling
    outputs: list = field(default_factory=list)   # one per image for a folder input
    confidence_outputs: list = field(default_factory=list)   # one per image, when a confidence output is asked
    runtime: str = ""
    precision: str = ""
    overlap_factor: float = 0.0                   # pixels computed / raster pixels
    output_uncertainty: str | None = None
    uncertainty_outputs: list = field(default_factory=list)  # one per image, when an uncertainty output is asked


def classify(input_path: str, model_path: str, output_path: str, options: ClassifyOptions | None = None,
             progress: Progress | None = None) -> ClassifyResult:
    """Classify one raster, or every image of a folder into the output folder."""
    options = options or ClassifyOptions()
    progress = check(progress)
    options.validate()
    folder = os.path.isdir(input_path)
    if not folder:
        _check_output(output_path)
    if options.output_uncertainty and (getattr(options, "dask_scheduler", None) or getattr(options, "workers", 0)):
        raise DeepPixelError("OUTPUT_UNCERTAINTY is not written by the Dask path (DASK_SCHEDULER, WORKERS) yet: "
                             "leave those empty to get the uncertainty raster.")
    check_destinations(
        [Place("INPUT_RASTER", input_path, "folder" if folder else "raster"),
         Place("MODEL_DEFINITION", model_path, "folder" if os.path.isdir(model_path) else "model"),
         Place("MASK_POLYGONS", options.mask_polygons or "", "vector")]
        + [Place("ENSEMBLE_MODELS", p, "model") for p in member_paths(options.ensemble_models)],
        [Place("OUTPUT_RASTER", output_path, "folder" if folder else "raster"),
         Place("OUTPUT_CONFIDENCE", "" if folder else options.output_confidence or "", "raster"),
         Place("OUTPUT_UNCERTAINTY", "" if folder else options.output_uncertainty or "", "raster")])
    from ..model.package import load_package
    package = load_package(model_path)
    members = load_members(options.ensemble_models, package)      # refused before any output is written
    if options.dask_scheduler or options.workers:
        return _classify_on_dask(input_path, model_path, output_path, options, progress, package, folder)
    if folder:
        return _classify_folder(input_path, package, output_path, options, progress, members)
    return classify_raster(input_path, package, output_path, options, progress, members)


def _classify_on_dask(input_path, model_path, output_path, options, progress, package, folder) -> ClassifyResult:
    """Blocks of tile rows (one raster) or one task per image (a folder) on a Dask cluster."""
    from .shard import classify_images_on_dask, classify_sharded
    classes = [c.to_json() for c in package.schema.classes]
    if folder:
        images = _folder_images(input_path)
        outputs = classify_images_on_dask(images, folder_outputs(images, output_path), model_path, options, progress)
        return ClassifyResult(output_path, output_path if options.output_confidence else None, "dask", 0, 0, 0.0,
                              list(package.class_values), None, 0, classes, outputs=[o[0] for o in outputs],
                              confidence_outputs=[o[1] for o in outputs if o[1]])
    s = classify_sharded(input_path, model_path, output_path, options, progress, package)
    return ClassifyResult(output_path, options.output_confidence, "dask", s["tiles"], 0, s["seconds"],
                          list(package.class_values), s["tile"], 0, classes, runtime=options.runtime,
                          precision=options.precision, overlap_factor=s["overlap"])


def folder_outputs(images: list, output_folder: str) -> list:
    """One distinct output stem per image: ``<name>``, or ``<name>_<ext>`` where names differ only by
    extension or letter case (scene.tif and scene.TIFF would otherwise write one file)."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in images]
    folded = [s.casefold() for s in stems]
    names = []
    for path, stem, key in zip(images, stems, folded):
        ext = os.path.splitext(path)[1].lstrip(".")
        names.append(f"{stem}_{ext}" if folded.count(key) > 1 else stem)
    if len({n.casefold() for n in names}) < len(names):
        seen = [n for n in names if sum(m.casefold() == n.casefold() for m in names) > 1]
        raise DeepPixelError(f"Images of the folder would share output names ({', '.join(sorted(set(seen)))}): "
                             "rename them so that their names differ by more than letter case.")
    return [os.path.join(output_folder, n) for n in names]


def _folder_images(folder) -> list:
    images = sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith(IMAGE_EXTENSIONS)
                    and not os.path.basename(p).startswith("."))
    if not images:
        raise DeepPixelError(f"The folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    return images


def _classify_folder(folder, package, output_folder, options, progress, members=None):
    images = _folder_images(folder)
    stems = folder_outputs(images, output_folder)
    os.makedirs(output_folder, exist_ok=True)
    results = []
    for i, (image, stem) in enumerate(zip(images, stems)):
        progress.log(f"Image {i + 1}/{len(images)}: {os.path.basename(image)}")
        # A confidence output is asked for by any name; each image gets its own beside its classes.
        own = replace(options, output_confidence=stem + CONFIDENCE if options.output_confidence else None,
                      output_uncertainty=stem + UNCERTAINTY if options.output_uncertainty else None)
        try:
            results.append(classify_raster(image, package, stem + CLASSIFIED, own,
                                           progress.sub(i / len(images), (i + 1) / len(images)), members))
        except (DeepPixelError, Cancelled) as e:
            raise type(e)(_folder_failure(image, i, images, results, e)) from e
    first = results[0]
    first.outputs = [r.output_raster for r in results]
    first.confidence_outputs = [r.output_confidence for r in results if r.output_confidence]
    first.output_raster = output_folder
    first.output_confidence = output_folder if options.output_confidence else None
    first.uncertainty_outputs = [r.output_uncertainty for r in results if r.output_uncertainty]
    first.output_uncertainty = output_folder if options.output_uncertainty else None
    first.tiles = sum(r.tiles for r in results)
    first.seconds = sum(r.seconds for r in results)
    return first


def _folder_failure(image, i, images, results, error) -> str:
    kept = ", ".join(os.path.basename(r.output_raster) for r in results) or "none"
    left = len(images) - i - 1
    what = "was cancelled" if isinstance(error, Cancelled) else "failed"
    return (f"Image {i + 1}/{len(images)} {os.path.basename(image)} {what}: {error} Kept (complete): {kept}. "
            f"Not classified: {os.path.basename(image)}" + (f" and the {left} image(s) after it." if left else "."))


def _check_output(output_path):
    if not output_path:
        raise DeepPixelError("OUTPUT_RASTER is empty: give a .tif file name.")
    if not output_path.lower().endswith((".tif", ".tiff")):
        raise DeepPixelError(f"The output {output_path} must be a GeoTIFF (.tif).")


def classify_raster(input_path, package, output_path, options, progress, members=None) -> ClassifyResult:
    """Classify one raster into ``output_path`` (and the optional per-pixel outputs of ``options``); ``members``:
    the ENSEMBLE_MODELS packages when already loaded (None: loaded from ``options``)."""
    from ..core.device import select_device
    _check_output(output_path)
    for extra in (options.output_confidence, options.output_uncertainty):
        if extra:
            _check_output(extra)
    check_destinations([Place("INPUT_RASTER", input_path, "raster")],
                       [Place("OUTPUT_RASTER", output_path, "raster"),
                        Place("OUTPUT_CONFIDENCE", options.output_confidence or "", "raster"),
                        Place("OUTPUT_UNCERTAINTY", options.output_uncertainty or "", "raster")])
    started = time.monotonic()
    device, reason = select_device(options.device)
    progress.log(f"Device: {reason}.")
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), open_raster(input_path) as ds:
        job = prepare_job(ds, package, options, device, progress, members=members)
        check_values(ds, job.bands, package.transform, progress)
        job.log_plan(options, progress)
        outputs = ClassOutputs(output_path, options.output_confidence, ds, job.info, package,
                               uncertainty_path=options.output_uncertainty, measure=options.uncertainty_measure)
        try:
            skipped, blend_bytes = job.run(ds, job.rows, outputs, progress)
            outputs.finish(package, options, job.tile, progress)
            if not outputs.classified:
                progress.warn("No pixel was classified: every pixel is nodata" + (" or outside MASK_POLYGONS"
                              if options.mask_polygons else "") + ", so the output holds nodata only. Check the "
                              "raster's nodata value" + (" and that the mask overlaps it." if options.mask_polygons
                                                         else "."))
        except BaseException:
            outputs.discard()
            raise
    seconds, info, runtime = time.monotonic() - started, job.info, job.runtime
    progress.log(f"Classified {job.total - skipped} tiles in {seconds:.1f} s on {device.type} "
                 f"({runtime.name}, {runtime.precision}); {skipped} tiles without valid pixels skipped; "
                 f"{info.width * info.height / 1e6 / max(seconds, 1e-9):.2f} megapixels/s. Output: {output_path}")
    return ClassifyResult(output_path, options.output_confidence, str(device), job.total, skipped, seconds,
                          list(package.class_values), job.tile, blend_bytes,
                          [c.to_json() for c in package.schema.classes], runtime=runtime.name,
                          precision=runtime.precision, overlap_factor=job.overlap,
                          output_uncertainty=options.output_uncertainty)
