"""Writing the chips folder in the "Classified Tiles" layout, plus our own metadata (names: layout.py)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import rasterio
from rasterio.windows import Window

from .. import __version__
from ..core.errors import DeepPixelError
from .layout import ESRI_MODEL_DEFINITION, ESRI_STATS, EXPORT_METADATA, IMAGES, LABELS, MAP, STATS


class ChipWriter:
    """Writes numbered image/label chip pairs and remembers where each came from."""

    def __init__(self, folder: str, image_format: str, ds, bands=()):
        self.folder = folder
        self.format = image_format
        self.ext = ".tif" if image_format == "TIFF" else ".png"
        self.crs = ds.crs
        self.ds_transform = ds.transform
        self.nodata = ds.nodata
        self.chips: list = []
        os.makedirs(os.path.join(folder, IMAGES))
        os.makedirs(os.path.join(folder, LABELS))

    @property
    def count(self) -> int:
        return len(self.chips)

    def _profile(self, array, transform, nodata):
        if self.format == "TIFF":
            profile = {"driver": "GTiff", "compress": "deflate"}
            if array.shape[1] % 16 == 0 and array.shape[2] % 16 == 0:
                profile.update(tiled=True, blockxsize=min(array.shape[2], 256),
                               blockysize=min(array.shape[1], 256))
        else:
            profile = {"driver": "PNG"}
        profile.update(count=array.shape[0], height=array.shape[1], width=array.shape[2],
                       dtype=array.dtype.name, crs=self.crs, transform=transform)
        if nodata is not None:
            profile["nodata"] = nodata
        return profile

    def _write(self, path, array, transform, nodata):
        # GDAL reports some write failures (full disk, file size limit) only as log messages on
        # close, so every chip is read back: a damaged chip is an error, never a silent output.
        try:
            with rasterio.open(path, "w", **self._profile(array, transform, nodata)) as dst:
                dst.write(array)
            with rasterio.open(path) as chk:
                intact = np.array_equal(chk.read(), array, equal_nan=np.issubdtype(array.dtype, np.floating))
        except (OSError, rasterio.errors.RasterioError) as e:
            raise write_error(path, e) from e
        if not intact:
            raise write_error(path, "the file read back differs from what was written")

    def write(self, image: np.ndarray, labels: np.ndarray, window: Window, rotation: int,
              labelled_fraction: float, counts: np.ndarray) -> str:
        name = f"{len(self.chips):09d}"
        transform = rasterio.windows.transform(window, self.ds_transform)
        image_rel = f"{IMAGES}/{name}{self.ext}"
        label_rel = f"{LABELS}/{name}{self.ext}"
        self._write(os.path.join(self.folder, image_rel), np.ascontiguousarray(image), transform, self.nodata)
        self._write(os.path.join(self.folder, label_rel), np.ascontiguousarray(labels[None]), transform, None)
        self.chips.append({
            "name": name, "image": image_rel, "label": label_rel,
            "col": int(window.col_off), "row": int(window.row_off),
            "width": int(window.width), "height": int(window.height), "rotation": rotation,
            "labelled_fraction": round(float(labelled_fraction), 6),
            "pixels_per_class": {str(v): int(n) for v, n in enumerate(counts) if v > 0 and n > 0},
        })
        return name


def write_error(path, cause) -> DeepPixelError:
    folder = os.path.dirname(path)
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return DeepPixelError(f"Writing {path} failed ({cause}). The disk may be full ({free}) or a file size "
                          "limit reached: free some space or choose another output folder. Nothing was kept.")


def _dump(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)


def write_metadata(folder, writer, info, options, schema, class_mapping, class_field, result) -> None:
    """map.txt, stats.txt, esri_accumulated_stats.json, esri_model_definition.emd, our JSON."""
    with open(os.path.join(folder, MAP), "w", encoding="utf-8") as f:
        for chip in writer.chips:
            f.write(f"{chip['image']} {chip['label']}\n")
    accumulated = result["accumulated"]
    values = sorted(set(schema.values) | set(accumulated))
    names = {c.value: c.name for c in schema}
    classes = [{"ClassValue": v, "ClassName": names.get(v, f"Class {v}"),
                "Color": list(schema.by_value(v).color) if schema.by_value(v) else [128, 128, 128]}
               for v in values]
    bands = list(options.bands) or list(range(1, info.count + 1))
    stats = result["band_stats"]
    _dump(os.path.join(folder, ESRI_STATS), {
        "Version": "1.0", "NumBands": len(bands), "TileSizeX": options.tile_size_x,
        "TileSizeY": options.tile_size_y, "NumClasses": len(values), "NumTiles": writer.count,
        "MetaDataMode": "Classified_Tiles", "ImageSpaceUsed": "MAP_SPACE",
        "Classes": classes,
        "ClassPixelStats": {
            "NumImagesPerClass": [result["images_per_class"].get(v, 0) for v in values],
            "NumPixelsPerClass": [accumulated.get(v, 0) for v in values],
        },
        "BandStats": {k: stats.get(k) for k in ("min", "max", "mean", "std")},
    })
    _dump(os.path.join(folder, ESRI_MODEL_DEFINITION), {
        "Framework": "PyTorch", "ModelConfiguration": "", "ModelType": "ImageClassification",
        "ImageHeight": options.tile_size_y, "ImageWidth": options.tile_size_x,
        "ExtractBands": bands, "Classes": schema.to_emd_classes(),
        "DataRange": [min(stats["min"]), max(stats["max"])] if stats.get("count") else None,
        "ImageSpaceUsed": "MAP_SPACE",
    })
    _dump(os.path.join(folder, EXPORT_METADATA), {
        "format": "deep_pixel_chips", "format_version": 1, "deep_pixel_version": __version__,
        "source": {"path": info.path, "width": info.width, "height": info.height,
                   "count": info.count, "dtype": info.dtype, "nodata": info.nodata,
                   "crs_wkt": info.crs_wkt, "is_geographic": info.is_geographic,
                   "transform": list(info.transform), "pixel_size": list(info.pixel_size),
                   "band_names": list(info.band_names)},
        "bands": bands,
        "options": {"image_format": options.image_format.upper(), "tile_size": [options.tile_size_x, options.tile_size_y],
                    "stride": [options.stride_x, options.stride_y], "rotation_angle": options.rotation_angle,
                    "output_nofeature_tiles": options.output_nofeature_tiles,
                    "buffer_radius": options.buffer_radius,
                    "min_labelled_fraction": options.min_labelled_fraction},
        "class_field": class_field, "class_mapping": class_mapping,
        "schema": schema.to_json(),
        "band_stats": stats,
        "band_stats_area": "valid pixels of the exported chips",
        "raster_band_stats": result.get("raster_band_stats"),
        "labelled_pixels_per_class": {str(v): n for v, n in result["unique"].items()},
        "chip_pixels_per_class": {str(v): n for v, n in accumulated.items()},
        "chips": writer.chips,
    })
    lines = [f"Deep Pixel training chips ({__version__})", "",
             f"Source raster: {info.path}", f"Size: {info.width} x {info.height} px, {info.count} band(s), {info.dtype}",
             f"Pixel size: {info.pixel_size[0]:.6g} x {info.pixel_size[1]:.6g}",
             f"Chips: {writer.count} of {options.tile_size_x} x {options.tile_size_y} px, "
             f"stride {options.stride_x} x {options.stride_y}, format {options.image_format.upper()}", ""]
    if class_mapping:
        lines.append(f"Class field {class_field!r} (text) mapped to values: "
                     + ", ".join(f"{k}={v}" for k, v in class_mapping.items()))
        lines.append("")
    lines.append(f"{'value':>5}  {'class':<20} {'labelled px':>12} {'px in chips':>12} {'chips':>6}")
    for v in values:
        lines.append(f"{v:>5}  {names.get(v, f'Class {v}'):<20} {result['unique'].get(v, 0):>12} "
                     f"{accumulated.get(v, 0):>12} {result['images_per_class'].get(v, 0):>6}")
    with open(os.path.join(folder, STATS), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
