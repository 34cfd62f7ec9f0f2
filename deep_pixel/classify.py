"""Classify Pixels: a raster (or a folder of rasters) and a model package -> a styled class raster.

Windows are read strip by strip with real neighbouring pixels; tile probabilities are blended by
``StripAccumulator``; finished rows go straight to a tiled GeoTIFF under a temporary name. Memory
depends on the tile and the raster width, never on the raster height.
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np
from rasterio.windows import Window

from .accumulator import StripAccumulator, decide
from .classify_checks import bands_to_read, check_grid, excluded_classes
from .classify_options import ClassifyOptions, TileParams
from .errors import DeepPixelError
from .geotiff_out import CONFIDENCE_NODATA, NODATA, StagedGeoTiff, class_dtype, class_tags, colormap
from .progress import Progress, check
from .raster import describe, open_raster, valid_mask

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


def classify(input_path: str, model_path: str, output_path: str, options: ClassifyOptions | None = None,
             progress: Progress | None = None) -> ClassifyResult:
    """Classify one raster, or every image of a folder into the output folder."""
    options = options or ClassifyOptions()
    progress = check(progress)
    options.validate()
    from .package import load_package
    package = load_package(model_path)
    if os.path.isdir(input_path):
        return _classify_folder(input_path, package, output_path, options, progress)
    return classify_raster(input_path, package, output_path, options, progress)


def _classify_folder(folder, package, output_folder, options, progress):
    images = sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith(IMAGE_EXTENSIONS)
                    and not os.path.basename(p).startswith("."))
    if not images:
        raise DeepPixelError(f"The folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    if os.path.abspath(output_folder) == os.path.abspath(folder):
        raise DeepPixelError("The output folder is the input folder: choose another one so no image is overwritten.")
    os.makedirs(output_folder, exist_ok=True)
    results = []
    for i, image in enumerate(images):
        progress.log(f"Image {i + 1}/{len(images)}: {os.path.basename(image)}")
        stem = os.path.join(output_folder, os.path.splitext(os.path.basename(image))[0])
        # A confidence output is asked for by any name; each image gets its own beside its classes.
        own = replace(options, output_confidence=stem + "_confidence.tif" if options.output_confidence else None)
        results.append(classify_raster(image, package, stem + "_classified.tif", own,
                                       progress.sub(i / len(images), (i + 1) / len(images))))
    first = results[0]
    first.outputs = [r.output_raster for r in results]
    first.output_raster = output_folder
    first.output_confidence = output_folder if options.output_confidence else None
    first.tiles = sum(r.tiles for r in results)
    first.seconds = sum(r.seconds for r in results)
    return first


def _check_output(input_path, output_path):
    if not output_path:
        raise DeepPixelError("OUTPUT_RASTER is empty: give a .tif file name.")
    if os.path.abspath(output_path) == os.path.abspath(input_path):
        raise DeepPixelError(f"The output {output_path} is the input raster: choose another file name.")
    if not output_path.lower().endswith((".tif", ".tiff")):
        raise DeepPixelError(f"The output {output_path} must be a GeoTIFF (.tif).")


def classify_raster(input_path, package, output_path, options, progress) -> ClassifyResult:
    import torch

    from .device import select_device
    _check_output(input_path, output_path)
    if options.output_confidence:
        _check_output(input_path, options.output_confidence)
    started = time.monotonic()
    device, reason = select_device(options.device)
    progress.log(f"Device: {reason}.")
    with open_raster(input_path) as ds:
        info = describe(ds)
        bands = bands_to_read(info, package)
        check_grid(info, package, progress)
        model = package.build(device)
        depth = int(package.model_params.get("encoder_depth", 5))
        tile = TileParams.resolve(options, package.tile_size[0], 2 ** depth, (info.height, info.width))
        excluded = excluded_classes(package.schema, options.predict_background, progress)
        mask = _mask_burner(options.mask_polygons, ds, info)
        from .predictor import Predictor
        predictor = Predictor(model, device, options.test_time_augmentation, progress)
        rows = tile.starts(info.height, options.grid_offset[0])
        cols = tile.starts(info.width, options.grid_offset[1])
        total = len(rows) * len(cols)
        progress.log(f"{info.width} x {info.height} px, {len(bands)} band(s): {total} tiles of {tile.tile} px "
                     f"(padding {tile.padding}, step {tile.step}) in {len(rows)} strips, batch size "
                     f"{options.batch_size}" + (", test-time augmentation x8" if options.test_time_augmentation
                                                else "") + ".")
        dtype = class_dtype(package.class_values)
        out = StagedGeoTiff(output_path, width=info.width, height=info.height, crs=ds.crs, transform=ds.transform,
                            dtype=dtype, nodata=NODATA)
        conf = None
        try:
            if options.output_confidence:
                conf = StagedGeoTiff(options.output_confidence, width=info.width, height=info.height, crs=ds.crs,
                                     transform=ds.transform, dtype="float32", nodata=CONFIDENCE_NODATA)
            lut = np.array([NODATA] + list(package.class_values), dtype=dtype)
            acc = StripAccumulator(info.height, info.width, package.num_classes, tile.tile)
            torch_threads = torch.get_num_threads()
            state = {"done": 0, "skipped": 0, "t0": time.monotonic()}

            def flush(finished):
                if finished is None:
                    return
                row, probs, weights, valid = finished
                index, confidence, covered = decide(probs, weights, excluded)
                keep = covered & valid
                out.write_rows(row, np.where(keep, lut[index + 1], NODATA).astype(dtype))
                if conf is not None:
                    conf.write_rows(row, np.where(keep, confidence, CONFIDENCE_NODATA).astype("float32"))

            for r0 in rows:
                flush(acc.advance(r0))
                strip, valid, keep = _read_strip(ds, bands, info, r0, tile.tile, cols[-1] + tile.tile, mask)
                acc.mark_valid(r0, keep)
                _classify_strip(strip, valid, keep, r0, cols, tile.tile, package.transform, predictor, acc,
                                options.batch_size, total, state, progress)
            flush(acc.finish())
            progress.report(1.0, "writing overviews and metadata")
            out.finish(colormap=colormap(package.schema) if dtype == "uint8" else None,
                       tags=class_tags(package, options, tile))
            classes = [c.to_json() for c in package.schema.classes]
            out.set_style(classes)
            out.set_category_names(classes)
            if conf is not None:
                conf.finish(tags={"DEEP_PIXEL_CONFIDENCE": "probability of the winning class (blended)"})
            progress.check_cancelled()
            out.commit()
            if conf is not None:
                conf.commit()
        except BaseException:
            out.discard()
            if conf is not None:
                conf.discard()
            raise
    seconds = time.monotonic() - started
    progress.log(f"Classified {total - state['skipped']} tiles in {seconds:.1f} s on {device.type} "
                 f"({torch_threads} CPU threads); {state['skipped']} tiles without valid pixels skipped. "
                 f"Output: {output_path}")
    return ClassifyResult(output_path, options.output_confidence, str(device), total, state["skipped"], seconds,
                          list(package.class_values), tile, acc.nbytes,
                          [c.to_json() for c in package.schema.classes])


def _mirror(a, pad_rows, pad_cols):
    """Extend the last axes of ``a`` by mirroring (tiles reaching past the raster's end)."""
    if not pad_rows and not pad_cols:
        return a
    spec = [(0, 0)] * (a.ndim - 2) + [(0, pad_rows), (0, pad_cols)]
    small = pad_rows >= a.shape[-2] or pad_cols >= a.shape[-1]
    return np.pad(a, spec, mode="symmetric" if not small else "edge")


def _read_strip(ds, bands, info, r0, t, width_needed, mask):
    """Rows [r0, r0 + t): (bands, t, width_needed) values, and (rows, width) masks of the pixels with
    data (the network's input) and of those to classify (with data and inside the mask polygons)."""
    h = min(t, info.height - r0)
    data = ds.read(bands, window=Window(0, r0, info.width, h))
    valid = valid_mask(data, info.nodata)
    keep = valid & mask(Window(0, r0, info.width, h)) if mask is not None else valid
    return _mirror(data, t - h, width_needed - info.width), valid, keep


def _classify_strip(strip, valid, keep, r0, cols, t, transform, predictor, acc, batch_size, total, state,
                    progress):
    valid = _mirror(valid, strip.shape[1] - valid.shape[0], strip.shape[2] - valid.shape[1])
    keep = _mirror(keep, strip.shape[1] - keep.shape[0], strip.shape[2] - keep.shape[1])
    pending = [c0 for c0 in cols if keep[:, c0:c0 + t].any()]
    skipped = len(cols) - len(pending)
    state["skipped"] += skipped
    state["done"] += skipped
    for i in range(0, len(pending), batch_size):
        progress.check_cancelled()
        group = pending[i:i + batch_size]
        batch = np.stack([transform.apply(strip[:, :, c0:c0 + t], valid[:, c0:c0 + t]) for c0 in group])
        probs = predictor(batch)
        for c0, p in zip(group, probs):
            acc.add(p, r0, c0)
        state["done"] += len(group)
        elapsed = time.monotonic() - state["t0"]
        left = elapsed / max(1, state["done"] - state["skipped"]) * (total - state["done"])
        if not state.get("eta_logged"):         # once, in the log: the first batch times the rest
            state["eta_logged"] = True
            progress.log(f"First batch: {elapsed / max(1, state['done'] - state['skipped']):.2f} s per tile; "
                         f"estimated time left about {left:.0f} s (tiles without valid pixels are skipped).")
        progress.report(state["done"] / total * 0.97, f"tile {state['done']}/{total}, ETA {left:.0f} s")


def _mask_burner(mask_path, ds, info):
    """None, or a function Window -> (h, w) bool True inside the mask polygons (burned like samples)."""
    if not mask_path:
        return None
    from rasterio.windows import bounds

    from .samples import LabelBurner, Samples
    from .vector_io import read_vector
    vec = read_vector(mask_path)
    try:
        burner = LabelBurner(Samples(vec.geometries, [1] * len(vec.geometries), vec.crs_wkt), info.crs_wkt)
    except DeepPixelError:
        raise DeepPixelError(f"The mask layer {mask_path} has no usable polygons.") from None

    def burn(window):
        shape = (int(window.height), int(window.width))
        return burner.burn(ds.window_transform(window), shape, bounds(window, ds.transform)) > 0
    return burn
