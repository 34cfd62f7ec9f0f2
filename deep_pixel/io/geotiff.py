"""Writing classified rasters strip by strip: tiled, compressed GeoTIFF under a temporary name.

The class raster gets nodata 0, a colour table and a QGIS style (.qml) from the model's classes,
internal overviews and the model's hash and parameters as metadata. Nothing carries the target's
name until ``commit()``; ``discard()`` (cancel, error) removes every temporary file.
"""
from __future__ import annotations

import contextlib
import html
import json
import os
import tempfile

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling

from ..core.errors import DeepPixelError
from .staging import creation_errors

NODATA = 0
CONFIDENCE_NODATA = -1.0
SIDECARS = ("", ".aux.xml", ".ovr", ".msk", ".qml")
MAX_CATEGORY_VALUE = 4096         # category names are a list indexed by value: keep it small


def class_dtype(values) -> str:
    return "uint8" if max(values) <= 255 else "uint16"


def _temp_beside(target: str) -> str:
    parent = os.path.dirname(os.path.abspath(target))
    base, ext = os.path.splitext(os.path.basename(target))
    with creation_errors(target):
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + base + ".partial-", suffix=ext or ".tif", dir=parent)
    os.close(fd)
    return tmp


class StagedGeoTiff:
    """One output GeoTIFF (single band) written by row strips."""

    def __init__(self, target: str, *, width: int, height: int, crs, transform, dtype: str, nodata):
        self.target = target
        self.tmp = _temp_beside(target)
        profile = dict(driver="GTiff", width=width, height=height, count=1, dtype=dtype, crs=crs,
                       transform=transform, nodata=nodata, tiled=True, blockxsize=256, blockysize=256,
                       compress="DEFLATE", predictor=2 if dtype != "float32" else 3, BIGTIFF="IF_SAFER")
        if width < 256 or height < 256:           # GTiff blocks must be multiples of 16 and fit sensibly
            profile.update(blockxsize=max(16, min(256, -(-width // 16) * 16)),
                           blockysize=max(16, min(256, -(-height // 16) * 16)))
        try:
            self.ds = rasterio.open(self.tmp, "w", **profile)
        except rasterio.errors.RasterioIOError as e:
            self.discard()
            raise DeepPixelError(f"Cannot create {target}: {e}. Check the folder exists and is writable.") from e

    def write_rows(self, row: int, data: np.ndarray) -> None:
        try:
            self.ds.write(data[None], window=rasterio.windows.Window(0, row, data.shape[1], data.shape[0]))
        except rasterio.errors.RasterioIOError as e:
            raise DeepPixelError(f"Writing {self.target} failed ({e}); the disk may be full. Nothing was kept.") from e

    def finish(self, *, colormap=None, tags=None, overviews=True) -> None:
        try:
            self._finish(colormap, tags, overviews)
        except (OSError, CPLE_BaseError) as e:      # RasterioIOError is an OSError
            raise DeepPixelError(f"Writing {self.target} failed ({e}); the disk may be full. Nothing was kept.") from e

    def _finish(self, colormap, tags, overviews) -> None:
        ds = self.ds
        if colormap:
            ds.write_colormap(1, colormap)
        if tags:
            ds.update_tags(**tags)
        if overviews:
            factors = [f for f in (2, 4, 8, 16, 32, 64) if min(ds.width, ds.height) // f >= 64]
            if factors:
                ds.build_overviews(factors, Resampling.nearest)
                ds.update_tags(ns="rio_overview", resampling="nearest")
        ds.close()

    def set_category_names(self, classes) -> None:
        """GDAL category names (value -> class name) in the raster's .aux.xml, renamed with it.

        GeoTIFF has no tag for them; GDAL keeps them in this sidecar, so GDAL tools, rasterio users and
        other GIS software show class names, not only QGIS (which reads the .qml).
        """
        if not classes or max(c["value"] for c in classes) > MAX_CATEGORY_VALUE:
            return
        names = [""] * (max(c["value"] for c in classes) + 1)
        for c in classes:
            names[c["value"]] = str(c["name"])
        entries = "\n".join(f"      <Category>{html.escape(n, quote=False)}</Category>" for n in names)
        with open(self.tmp + ".aux.xml", "w", encoding="utf-8") as f:
            f.write(f'<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n{entries}\n'
                    f'    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n')

    def set_style(self, classes) -> None:
        """Write the QGIS style beside the temporary file; it is renamed with it."""
        from .styles import class_style_xml
        with open(self.tmp + ".qml", "w", encoding="utf-8") as f:
            f.write(class_style_xml(classes))

    def commit(self) -> str:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)        # mkstemp made it private; outputs get normal permissions
        for ext in SIDECARS:
            final = os.path.splitext(self.target)[0] + ext if ext == ".qml" else self.target + ext
            try:
                if os.path.exists(self.tmp + ext):
                    os.replace(self.tmp + ext, final)
                elif ext and os.path.exists(final):
                    os.remove(final)                      # a stale sidecar of an older file would mislead
            except OSError as e:
                raise DeepPixelError(
                    f"{final} cannot be replaced ({e.strerror or e}): it may be open or locked in another program, "
                    "or read-only. Close it (in QGIS, remove its layer) or choose another output file, then run "
                    "again." + (" The earlier file is unchanged." if not ext else "")) from e
        return self.target

    def discard(self) -> None:
        ds = getattr(self, "ds", None)
        if ds is not None and not ds.closed:
            with contextlib.suppress(Exception):
                ds.close()
        for ext in SIDECARS:
            with contextlib.suppress(OSError):
                os.remove(self.tmp + ext)


def class_tags(package, options, tile) -> dict:
    classes = [{"value": c.value, "name": c.name, "color": list(c.color)} for c in package.schema.classes]
    return {"DEEP_PIXEL_MODEL": os.path.basename(package.emd_path),
            "DEEP_PIXEL_MODEL_SHA256": package.weights_hash,
            "DEEP_PIXEL_MODEL_TYPE": f"{package.model_type}/{package.backbone}",
            "DEEP_PIXEL_CLASSES": json.dumps(classes),
            "DEEP_PIXEL_PARAMETERS": json.dumps({"tile_size": tile.tile, "padding": tile.padding,
                                                 "batch_size": options.batch_size,
                                                 "predict_background": options.predict_background,
                                                 "test_time_augmentation": options.test_time_augmentation})}


def colormap(schema) -> dict:
    table = {0: (0, 0, 0, 0)}
    for c in schema.classes:
        table[c.value] = tuple(c.color[:3]) + (255,)
    return table
