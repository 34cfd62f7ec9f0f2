"""What Classify Pixels writes: the class raster (colour table, .qml, category names, overviews) and
the optional per-pixel rasters, strip by strip under temporary names, renamed when complete."""
from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from ..io.geotiff import CONFIDENCE_NODATA, NODATA, StagedGeoTiff, class_dtype, class_tags, colormap


class ClassOutputs:
    """The class raster (and optional confidence raster) being written, and how rows are decided.

    ``row_range`` (first, end): the files hold only those raster rows (a shard's block); else all.
    """

    def __init__(self, output_path, confidence_path, ds, info, package, row_range=None):
        self.dtype = class_dtype(package.class_values)
        self.lut = np.array([NODATA] + list(package.class_values), dtype=self.dtype)
        self.first, end = row_range or (0, info.height)
        grid = dict(width=info.width, height=end - self.first, crs=ds.crs,
                    transform=ds.window_transform(Window(0, self.first, info.width, end - self.first)))
        self.out = StagedGeoTiff(output_path, dtype=self.dtype, nodata=NODATA, **grid)
        self.conf = None
        if confidence_path:
            try:
                self.conf = StagedGeoTiff(confidence_path, dtype="float32", nodata=CONFIDENCE_NODATA, **grid)
            except BaseException:
                self.out.discard()
                raise

    def write(self, rows) -> None:
        """A strip's final rows (tile_pipeline.StripRows) -> classes (and confidence) in the output files."""
        if rows.row < self.first:
            return                                   # a shard's halo strip: another block owns its rows
        keep = rows.keep & (rows.index >= 0)
        at = rows.row - self.first
        self.out.write_rows(at, np.where(keep, self.lut[rows.index + 1], NODATA).astype(self.dtype))
        if self.conf is not None:
            self.conf.write_rows(at, np.where(keep, rows.confidence, CONFIDENCE_NODATA).astype("float32"))

    def finish(self, package, options, tile, progress) -> None:
        progress.report(1.0, "writing overviews and metadata")
        self.out.finish(colormap=colormap(package.schema) if self.dtype == "uint8" else None,
                        tags=class_tags(package, options, tile))
        classes = [c.to_json() for c in package.schema.classes]
        self.out.set_style(classes)
        self.out.set_category_names(classes)
        if self.conf is not None:
            self.conf.finish(tags={"DEEP_PIXEL_CONFIDENCE": "probability of the winning class (blended)"})
        progress.check_cancelled()
        self.out.commit()
        if self.conf is not None:
            self.conf.commit()

    def discard(self) -> None:
        self.out.discard()
        if self.conf is not None:
            self.conf.discard()
