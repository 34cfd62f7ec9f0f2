"""Export Training Data: a raster and labelled samples -> a folder of image and label chips."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np
import rasterio
from rasterio.windows import Window

from ..chips import writer as chips_layout
from ..core.errors import DeepPixelError
from ..core.params import check_ranges, option
from ..core.progress import Progress, check
from ..core.schema import ClassSchema
from ..core.tiles import MIN_TILE, TileParams
from ..io.bandstats import BandStats, raster_stats
from ..io.gdal_mask import alpha_band, gdal_masked, valid_in
from ..io.raster import (describe, footprint_bounds, open_raster, raster_bounds, read_window, valid_mask,
                         window_transform)
from ..io.destinations import Place, check_destinations
from ..io.staging import check_output_folder, staged_folder
from .samples import LabelBurner, Samples

IMAGE_FORMATS = ("TIFF", "PNG")


# Chips are network inputs: 8192 px is far beyond what a network trains on, and a chip that size is
# already hundreds of MiB per band in float; larger values are typing errors that would exhaust memory.
MAX_CHIP = 8192


@dataclass
class ExportOptions:
    """Export Training Data's options, each declared once (deep_pixel/core/params.py builds the interfaces)."""
    image_format: str = option("TIFF", "Image format", "TIFF, or PNG for at most 3 bands of 8-bit data",
                               kind="enum", choices=IMAGE_FORMATS)
    tile_size_x: int = option(256, "Tile size X (pixels)", "chip width", minimum=1, maximum=MAX_CHIP)
    tile_size_y: int = option(256, "Tile size Y (pixels)", "chip height", minimum=1, maximum=MAX_CHIP)
    stride_x: int = option(128, "Stride X (pixels)", "distance between chips; equal to the tile size: no overlap",
                           minimum=1, maximum=MAX_CHIP * 4)
    stride_y: int = option(128, "Stride Y (pixels)", "distance between chips; equal to the tile size: no overlap",
                           minimum=1, maximum=MAX_CHIP * 4)
    rotation_angle: float = option(0.0, "Rotation angle (0, 90 or 180 degrees)",
                                   "90: extra chips rotated by 90, 180 and 270 degrees; 180: one extra", minimum=0,
                                   maximum=360)
    output_nofeature_tiles: bool = option(False, "Also export tiles without samples",
                                          "also export chips without any labelled pixel")
    buffer_radius: float = option(0.0, "Buffer radius for point samples (raster CRS units)",
                                  "point samples become discs of this radius", minimum=0)
    min_labelled_fraction: float = option(0.0, "Minimum labelled fraction of a chip",
                                          "chips with fewer labelled pixels are skipped", minimum=0, maximum=1)
    bands: tuple = field(default_factory=tuple)     # 1-based bands (command line --bands; all by default)

    def rotations(self) -> list:
        """Quarter turns of the extra chips (0 is the original)."""
        a = float(self.rotation_angle) % 360
        if a == 0:
            return [0]
        if a % 90 != 0:
            raise DeepPixelError(f"Rotation angle {self.rotation_angle} is not supported: use 0 "
                                 "(no rotation), 90 (chips at 90/180/270 degrees) or 180.")
        step = int(a // 90)
        return list(range(0, 4, step))

    def validate(self, info) -> None:
        fmt = self.image_format.upper()
        if fmt not in IMAGE_FORMATS:
            raise DeepPixelError(f"Image format {self.image_format!r} is not supported; use TIFF or PNG.")
        check_ranges(replace(self, image_format=fmt))
        count = len(self.bands) or info.count
        if fmt == "PNG" and (count > 3 or info.dtype != "uint8"):
            raise DeepPixelError(f"PNG chips hold at most 3 bands of 8-bit data; this raster has {count} "
                                 f"band(s) of {info.dtype}. Use IMAGE_FORMAT=TIFF.")
        if not 0.0 <= self.min_labelled_fraction <= 1.0:
            raise DeepPixelError("The minimum labelled fraction must be between 0 and 1.")
        if self.buffer_radius < 0:
            raise DeepPixelError("The buffer radius cannot be negative.")
        for b in self.bands:
            if not 1 <= b <= info.count:
                raise DeepPixelError(f"Band {b} does not exist; the raster has bands 1 to {info.count}.")
        rot = self.rotations()
        if len(rot) > 1 and self.tile_size_x != self.tile_size_y and 1 in rot:
            raise DeepPixelError("Rotating chips by 90 degrees needs square tiles: set TILE_SIZE_X "
                                 "equal to TILE_SIZE_Y, or use rotation 0 or 180.")


@dataclass
class ExportResult:
    folder: str
    num_chips: int
    pixels_per_class: dict
    schema: ClassSchema
    class_mapping: dict


def export_training_data(raster_path: str, samples: Samples, output_folder: str,
                         options: ExportOptions | None = None, schema: ClassSchema | None = None,
                         class_mapping: dict | None = None, class_field: str | None = None,
                         mask_geometries: list | None = None, mask_crs_wkt: str | None = None,
                         progress: Progress | None = None) -> ExportResult:
    """Cut ``raster_path`` into image chips and matching label chips.

    ``samples`` holds geometries with integer class values (see ``samples.resolve_class_values``
    for text classes). The output is written to a temporary folder and renamed to
    ``output_folder`` when complete; the input files are only read.
    """
    options = options or ExportOptions()
    progress = check(progress)
    check_destinations([Place.infer("INPUT_RASTER", raster_path)], [Place("OUTPUT_FOLDER", output_folder, "folder")])
    check_output_folder(output_folder, inputs=[raster_path])
    schema = schema or ClassSchema.from_values(v for v in samples.values if v is not None)
    with open_raster(raster_path) as ds:
        info = describe(ds)
        options = _bands_without_alpha(options, ds, progress)
        options.validate(info)
        _check_georeferenced(ds, raster_path)
        if info.crs_wkt is None and samples.crs_wkt:
            raise DeepPixelError(f"The raster {raster_path} has no coordinate reference system, so the "
                                 "samples cannot be placed on it. Assign its CRS first "
                                 "(gdal_edit.py -a_srs EPSG:xxxx, or Layer Properties > Source).")
        burner = LabelBurner(samples, info.crs_wkt, options.buffer_radius, mask_geometries, mask_crs_wkt)
        _check_overlap(ds, burner, raster_path)
        if burner.skipped:
            progress.warn(f"{burner.skipped} sample feature(s) have no geometry or no class value (NULL) and were "
                          "left out; give them a class (or delete them) if they were meant to count.")
        if burner.repaired:
            progress.warn(f"{burner.repaired} invalid (e.g. self-intersecting) polygon(s) were repaired with "
                          "make_valid before labelling; check them in QGIS (Vector > Geometry Tools > Check "
                          "Validity) if that was not intended.")
        grid = _ChipGrid.of(options, info)
        progress.log(f"Raster {os.path.basename(raster_path)}: {info.width}x{info.height} px, "
                     f"{info.count} band(s) {info.dtype}; {len(grid)} candidate tiles of "
                     f"{options.tile_size_x}x{options.tile_size_y} px every {options.stride_x}x{options.stride_y} px.")
        with staged_folder(output_folder) as tmp:
            writer = chips_layout.ChipWriter(tmp, options.image_format.upper(), ds, options.bands)
            whole = _whole_raster(ds, info, options, progress)
            result = _cut(ds, info, grid, burner, writer, options, schema, progress, _hidden_fill(ds, info, whole))
            result["raster_band_stats"] = whole
            try:
                chips_layout.write_metadata(tmp, writer, info, options, schema, class_mapping or {},
                                            class_field, result)
            except OSError as e:
                raise chips_layout.write_error(tmp, e) from e
            progress.report(1.0, f"{writer.count} chips written")
    if writer.count == 0:
        progress.warn("No chip was written: no tile had enough labelled pixels. Lower "
                      "MIN_LABELLED_FRACTION, use a smaller tile size, or check that the samples "
                      "lie on the raster.")
    progress.log(f"Wrote {writer.count} chips to {output_folder}.")
    return ExportResult(output_folder, writer.count, result["accumulated"], schema, class_mapping or {})


def _check_georeferenced(ds, path):
    """Samples are placed by map coordinates: a raster without a geotransform has none."""
    if not ds.transform.is_identity:
        return
    gcps, _ = ds.gcps
    how = (f"it has {len(gcps)} ground control points: warp it onto a grid first (gdalwarp {os.path.basename(path)} "
           "georeferenced.tif)") if gcps else "georeference it first (QGIS Georeferencer, or gdal_translate -a_ullr " \
        "ULX ULY LRX LRY -a_srs EPSG:xxxx)"
    raise DeepPixelError(f"The raster {path} has no geotransform (no position on the map), so the samples cannot "
                         f"be placed on it: {how}.")


def _check_overlap(ds, burner, path):
    b = burner.bounds
    left, bottom, right, top = raster_bounds(ds)
    if b[0] > right or b[2] < left or b[1] > top or b[3] < bottom:
        raise DeepPixelError(
            f"No sample lies on the raster {os.path.basename(path)}: the samples cover "
            f"({b[0]:.6g}, {b[1]:.6g}, {b[2]:.6g}, {b[3]:.6g}) but the raster covers "
            f"({left:.6g}, {bottom:.6g}, {right:.6g}, {top:.6g}) in its CRS. "
            "Check that both layers have the right CRS.")


@dataclass(frozen=True)
class _ChipGrid:
    """The chip windows of one raster: TileParams' starts along each axis, row by row."""
    rows: list
    columns: list
    height: int
    width: int
    tile_y: int
    tile_x: int

    @classmethod
    def of(cls, options: ExportOptions, info) -> "_ChipGrid":
        across = TileParams(options.tile_size_x, stride=options.stride_x)
        down = TileParams(options.tile_size_y, stride=options.stride_y)
        if min(info.width, info.height) < MIN_TILE:
            raise DeepPixelError(
                f"The raster is {info.width}x{info.height} pixels: too small to cut training chips from (a chip "
                f"needs at least {MIN_TILE}x{MIN_TILE} pixels). Export from a larger raster (or a larger extent "
                "of it).")
        for axis, length in ((across, info.width), (down, info.height)):
            axis.check()
            if axis.tile > length:
                raise DeepPixelError(
                    f"Tile size {across.tile}x{down.tile} is larger than the raster ({info.width}x{info.height} "
                    f"pixels). Use a tile size of at most {min(info.width, info.height)} pixels.")
        return cls(down.starts(info.height), across.starts(info.width), info.height, info.width,
                   down.tile, across.tile)

    def __len__(self):
        return len(self.rows) * len(self.columns)

    def windows(self):
        """Row-major windows (row by row, so reads follow the raster's storage order)."""
        for r in self.rows:
            for c in self.columns:
                yield Window(c, r, self.tile_x, self.tile_y)

    def owned(self, window):
        """The part of a tile that no tile before it in row-major order covers (for unique counts)."""
        cols, rows = self.columns, self.rows
        c, r = int(window.col_off), int(window.row_off)
        ci, ri = cols.index(c), rows.index(r)
        c_end = cols[ci + 1] if ci + 1 < len(cols) else self.width
        r_end = rows[ri + 1] if ri + 1 < len(rows) else self.height
        return slice(0, r_end - r), slice(0, c_end - c)


def _bands_without_alpha(options: ExportOptions, ds, progress) -> ExportOptions:
    """With no bands chosen: every band but an alpha band (it is the mask that hides pixels, not imagery)."""
    alpha = None if options.bands else alpha_band(ds)
    if alpha is None:
        return options
    progress.log(f"Band {alpha} is the raster's alpha (transparency) band: it hides the transparent pixels and is "
                 "not exported as an image band (the model reads the other bands, so it also classifies a copy "
                 "without the alpha band).")
    return replace(options, bands=tuple(b for b in range(1, ds.count + 1) if b != alpha))


def _whole_raster(ds, info, options, progress) -> dict | None:
    """Band statistics of the whole raster (Train Model normalises with them: the chips alone can be a biased
    sample of the scene); None when it holds no valid pixel."""
    progress.report(0.0, "band statistics of the whole raster")
    bands = list(options.bands or range(1, info.count + 1))
    out = raster_stats(ds, bands, info.nodata)
    if out.get("count"):
        _warn_fill_values(out, bands, progress)
    return out if out.get("count") else None


FILL_MAGNITUDE = 1e30      # float rasters: values this large are fill values (float32's largest is 3.4e38)


def _warn_fill_values(stats: dict, bands, progress) -> None:
    """Values like 3.4e38 in a float raster are an undeclared nodata (fill) value: they would set the mean and
    standard deviation that Train Model normalises with, and the model would learn nothing. Said, with the fix."""
    found = {band: next(v for v in (low, high) if abs(v) >= FILL_MAGNITUDE)
             for band, low, high in zip(bands, stats["min"], stats["max"]) if max(abs(low), abs(high)) >= FILL_MAGNITUDE}
    if found:
        value = next(iter(found.values()))
        progress.warn(f"Band(s) {', '.join(map(str, found))} hold values of {value:.3g}: that looks like a fill value "
                      "that is not declared as nodata, and it would spoil the band statistics training normalises "
                      f"with. Declare it (gdal_edit.py -a_nodata {value:.9g} raster.tif, or Layer Properties > "
                      "Transparency) and export again.")


def _hidden_fill(ds, info, whole):
    """What the chips hold where the raster's GDAL mask hides a pixel (None: no such mask): its nodata value, else
    each band's whole-raster mean (a column, one row per band), which standardises to 0 as Classify's masked
    inputs do (not the black or white of a collar, which the network would learn as context it never sees when
    classifying)."""
    if not gdal_masked(ds) or (info.nodata is None and not whole):
        return None
    if info.nodata is not None:
        return info.nodata
    mean = np.asarray(whole["mean"], dtype=np.float64)[:, None]
    return np.rint(mean) if np.issubdtype(np.dtype(info.dtype), np.integer) else mean


def _hide(data, valid, nodata, fill):
    """``data`` with the pixels that the GDAL mask hides (valid by the nodata rule, not by ``valid``) set to
    ``fill``."""
    if fill is None:
        return data
    hidden = ~valid & valid_mask(data, nodata)
    if not hidden.any():
        return data
    data = data.copy()
    data[:, hidden] = fill
    return data


def _cut(ds, info, grid, burner, writer, options, schema, progress, fill=None):
    max_value = max(schema.values + burner.values)
    accumulated = np.zeros(max_value + 1, dtype=np.int64)
    images_per_class = np.zeros(max_value + 1, dtype=np.int64)
    unique = np.zeros(max_value + 1, dtype=np.int64)
    stats = BandStats(len(options.bands) or info.count)
    rotations = options.rotations()
    total = len(grid)
    read_any = valid_any = False
    for i, window in enumerate(grid.windows()):
        progress.check_cancelled()
        bounds = footprint_bounds(window, ds.transform)
        shape_hw = (int(window.height), int(window.width))
        touches = burner.touches(bounds)
        if not burner.in_mask(bounds) or (not touches and not options.output_nofeature_tiles):
            progress.report((i + 1) / total * 0.98)
            continue
        data = read_window(ds, window, options.bands or None)
        valid = valid_in(ds, data, window, info.nodata)
        data = _hide(data, valid, info.nodata, fill)
        read_any, valid_any = True, valid_any or bool(valid.any())
        if touches:
            labels = burner.burn(window_transform(ds, window), shape_hw, bounds)
            labels[~valid] = 0
        else:
            labels = np.zeros(shape_hw, dtype=np.uint8)
        rows, cols = grid.owned(window)
        unique += np.bincount(labels[rows, cols].ravel(), minlength=max_value + 1)[:max_value + 1]
        labelled = int(np.count_nonzero(labels))
        fraction = labelled / labels.size
        if (labelled == 0 and not options.output_nofeature_tiles) or fraction < options.min_labelled_fraction:
            progress.report((i + 1) / total * 0.98)
            continue
        stats.add(data, valid)
        counts = np.bincount(labels.ravel(), minlength=max_value + 1)[:max_value + 1]
        for k in rotations:
            writer.write(np.rot90(data, k, axes=(1, 2)), np.rot90(labels, k), window, k * 90,
                         fraction, counts)
            accumulated += counts
            images_per_class += counts > 0
        progress.report((i + 1) / total * 0.98, f"tile {i + 1}/{total}, {writer.count} chips")
    if read_any and not valid_any:
        raise DeepPixelError(
            f"The raster {info.path} holds only nodata (value {info.nodata}) or NaN where the samples are" + (
                ", or pixels its GDAL mask (alpha band or .msk/internal mask) hides" if gdal_masked(ds) else "")
            + ": there is nothing to learn from. Check the raster's nodata value (gdal_edit.py -unsetnodata removes "
            "a wrong one) and that the samples lie on the imagery.")
    present = [v for v in range(1, max_value + 1)]
    return {
        "accumulated": {v: int(accumulated[v]) for v in present if schema.by_value(v) or accumulated[v]},
        "images_per_class": {v: int(images_per_class[v]) for v in present if schema.by_value(v) or images_per_class[v]},
        "unique": {v: int(unique[v]) for v in present if schema.by_value(v) or unique[v]},
        "band_stats": stats.result(),
    }


def read_raster_crs(path: str) -> str | None:
    with rasterio.open(path) as ds:
        return ds.crs.to_wkt() if ds.crs else None
