"""What Classify Pixels writes: the class raster (colour table, .qml, category names, overviews) and
the optional per-pixel rasters (confidence, uncertainty), strip by strip under temporary names,
renamed when complete."""
from __future__ import annotations

import json
import os

import numpy as np
from rasterio.windows import Window

from ..io.geotiff import CONFIDENCE_NODATA, NODATA, StagedGeoTiff, class_dtype, class_tags, colormap
from .pipeline import PerPixel

UNCERTAINTY_NODATA = CONFIDENCE_NODATA
MEASURE_TAGS = {"entropy": "normalised entropy of the blended class probabilities (0 sure - 1 unsure)",
                "margin": "1 - (p1 - p2) of the two most likely classes (0 sure - 1 unsure)"}


class ClassOutputs:
    """The class raster (and optional confidence and uncertainty rasters) being written, and how rows are
    decided.

    ``row_range`` (first, end): the files hold only those raster rows (a shard's block); else all.
    ``uncertainty_path``: the uncertainty raster, of ``measure`` (entropy or margin).
    """

    def __init__(self, output_path, confidence_path, ds, info, package, row_range=None, uncertainty_path=None,
                 measure="entropy"):
        self.dtype = class_dtype(package.class_values)
        self.lut = np.array([NODATA] + list(package.class_values), dtype=self.dtype)
        self.first, end = row_range or (0, info.height)
        grid = dict(width=info.width, height=end - self.first, crs=ds.crs,
                    transform=ds.window_transform(Window(0, self.first, info.width, end - self.first)))
        self.output_path, self.measure = output_path, measure
        self.classified = 0                          # pixels given a class (0: an output of nodata only)
        self.out = StagedGeoTiff(output_path, dtype=self.dtype, nodata=NODATA, **grid)
        self.conf = self.unc = None
        try:
            if confidence_path:
                self.conf = StagedGeoTiff(confidence_path, dtype="float32", nodata=CONFIDENCE_NODATA, **grid)
            if uncertainty_path:
                self.unc = StagedGeoTiff(uncertainty_path, dtype="float32", nodata=UNCERTAINTY_NODATA, **grid)
        except BaseException:
            self.discard()
            raise

    def per_pixel(self) -> PerPixel:
        """What the strips must compute besides the classes (nothing extra when no raster asks for it)."""
        return PerPixel(self.conf is not None, self.measure if self.unc is not None else None)

    def write(self, rows) -> None:
        """A strip's final rows (pipeline.StripRows) -> classes (confidence, uncertainty) in the output files."""
        if rows.row < self.first:
            return                                   # a shard's halo strip: another block owns its rows
        keep = rows.keep & (rows.index >= 0)
        self.classified += int(keep.sum())
        at = rows.row - self.first
        self.out.write_rows(at, np.where(keep, self.lut[rows.index + 1], NODATA).astype(self.dtype))
        if self.conf is not None:
            self.conf.write_rows(at, np.where(keep, rows.confidence, CONFIDENCE_NODATA).astype("float32"))
        if self.unc is not None:
            self.unc.write_rows(at, np.where(keep, rows.uncertainty, UNCERTAINTY_NODATA).astype("float32"))

    def finish(self, package, options, tile, progress) -> None:
        progress.report(1.0, "writing overviews and metadata")
        self.out.finish(colormap=colormap(package.schema) if self.dtype == "uint8" else None,
                        tags=class_tags(package, options, tile))
        classes = [c.to_json() for c in package.schema.classes]
        self.out.set_style(classes)
        self.out.set_category_names(classes)
        if self.conf is not None:
            self.conf.finish(tags={"DEEP_PIXEL_CONFIDENCE": "probability of the winning class (blended)"})
        if self.unc is not None:
            self._finish_uncertainty(package, classes)
        progress.check_cancelled()
        for staged in (self.out, self.conf, self.unc):
            if staged is not None:
                staged.commit()

    def _finish_uncertainty(self, package, classes) -> None:
        """Tags (the measure; the class raster beside it and the model's chip size, for Suggest Samples) and
        the colour-ramp .qml, renamed with the raster."""
        from ..io.styles import ramp_style_xml
        self.unc.finish(tags={"DEEP_PIXEL_UNCERTAINTY": self.measure,
                              "DEEP_PIXEL_UNCERTAINTY_MEANING": MEASURE_TAGS.get(self.measure, self.measure),
                              "DEEP_PIXEL_CLASS_RASTER": os.path.basename(self.output_path),
                              "DEEP_PIXEL_CLASSES": json.dumps(classes),
                              "DEEP_PIXEL_MODEL_CHIP_SIZE": str(int(package.tile_size[0]))})
        with open(self.unc.tmp + ".qml", "w", encoding="utf-8") as f:
            f.write(ramp_style_xml())

    def discard(self) -> None:
        for staged in (self.out, self.conf, self.unc):
            if staged is not None:
                staged.discard()
