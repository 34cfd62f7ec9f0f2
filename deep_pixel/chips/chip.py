"""One chip of a chips folder, read lazily: an index entry (paths, size, footprint, class counts) whose
pixels are read from its files when asked for, a window at a time, and not kept.

Training reads a random crop of a chip per sample (deep_pixel/train/augment.py): the label chip whole
(small, one band; it picks a crop that is labelled enough) and the image chip through a rasterio
window of that crop only. ``keep()`` holds a chip's pixels in memory instead (the benchmark's
in-memory baseline); the index itself never holds pixels.
"""
from __future__ import annotations

import os

import numpy as np

from ..core.errors import DeepPixelError


class Chip:
    """A chip's index entry; ``image``, ``labels`` and ``valid`` are read from its files on access."""

    __slots__ = ("image_path", "label_path", "name", "box", "space", "shape", "nodata", "counts", "_kept")

    def __init__(self, image_path, label_path, name, box, space, shape, nodata=None, counts=None):
        self.image_path, self.label_path = image_path, label_path
        self.name = name                 # "<folder>/<image path>" for messages
        self.box = box                   # (x0, y0, x1, y1) footprint in ``space`` (for the spatial split)
        self.space = space               # footprints only compare within one space
        self.shape = shape               # (bands, height, width) of the image chip
        self.nodata = nodata
        self.counts = counts or {}       # class value -> labelled pixels (0 left out)
        self._kept = None

    def __getstate__(self):              # slots: pickled for DataLoader workers and torch.distributed
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def image(self) -> np.ndarray:
        """(bands, h, w) raw values."""
        return self.read_image()[0]

    @property
    def valid(self) -> np.ndarray:
        """(h, w) bool: image pixels that are not nodata."""
        return self.read_image()[1]

    @property
    def labels(self) -> np.ndarray:
        """(h, w) class values, 0 = unlabelled."""
        if self._kept is not None:
            return self._kept[1]
        return label_chip(read_pixels(self.label_path, "label"), self.label_path)

    def read_image(self, window=None) -> tuple:
        """(image, valid) of the whole chip or of ``window`` = (row, col, height, width)."""
        if self._kept is not None:
            image, _, valid = self._kept
            if window is None:
                return image, valid
            y, x, h, w = window
            return image[:, y:y + h, x:x + w], valid[y:y + h, x:x + w]
        image = read_pixels(self.image_path, "image", window)
        return image, valid_pixels(image, self.nodata)

    @property
    def kept(self) -> bool:
        return self._kept is not None

    def keep(self) -> None:
        """Hold this chip's pixels in memory (reads once; later reads are slices)."""
        if self._kept is None:
            image, valid = self.read_image()
            self._kept = (image, self.labels, valid)


def _missing(path, what) -> DeepPixelError:
    return DeepPixelError(f"The {what} chip {path} listed in map.txt is missing. Re-export the chips "
                          "or remove that line from map.txt.")


def read_pixels(path, what, window=None) -> np.ndarray:
    """(bands, h, w) pixels of a chip file, or of ``window`` = (row, col, height, width) of it.

    Through GDAL itself where its Python bindings are installed: this runs for every training example,
    and opening a file costs about 0.05 ms there against 1.5 ms through rasterio (measured on the chips
    of bench/bench_train_scale.py); through rasterio elsewhere (a server with rasterio's wheel alone)."""
    if not os.path.isfile(path):
        raise _missing(path, what)
    try:
        from osgeo import gdal
    except ImportError:
        data, message = _read_with_rasterio(path, window)
    else:
        data, message = _read_with_gdal(gdal, path, window)
    if data is None:
        raise DeepPixelError(f"Cannot read the {what} chip {path}: {message or 'not a raster GDAL reads'}. "
                             "Re-export the chips or fix map.txt.")
    return data[None] if data.ndim == 2 else data


def _read_with_gdal(gdal, path, window):
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        ds = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
        data = None
        if ds is not None:
            data = ds.ReadAsArray() if window is None else ds.ReadAsArray(window[1], window[0], window[3], window[2])
        ds = None
        return data, gdal.GetLastErrorMsg()
    finally:
        gdal.PopErrorHandler()


def _read_with_rasterio(path, window):
    import rasterio
    from rasterio.windows import Window
    try:
        with rasterio.open(path) as ds:
            return ds.read(window=None if window is None else Window(window[1], window[0], window[3], window[2])), ""
    except (OSError, ValueError, TypeError, rasterio.errors.RasterioError) as e:
        return None, str(e)


def read_header(path, what):
    """((bands, h, w), dtype, nodata, bounds or None, CRS WKT or None) of an image chip: no pixels read."""
    import rasterio
    if not os.path.isfile(path):
        raise _missing(path, what)
    try:
        with rasterio.open(path) as ds:
            return ((ds.count, ds.height, ds.width), np.dtype(ds.dtypes[0]), ds.nodata,
                    ds.bounds if not ds.transform.is_identity else None, ds.crs.to_wkt() if ds.crs else None)
    except (OSError, ValueError, TypeError, rasterio.errors.RasterioError) as e:
        raise DeepPixelError(f"Cannot read the {what} chip {path}: {e}. Re-export the chips or fix map.txt.") from e


def label_chip(labels, lab_rel) -> np.ndarray:
    """The first band of a label chip as uint8/uint16 class values (checked)."""
    if any(not np.array_equal(labels[0], band) for band in labels[1:]):
        raise DeepPixelError(f"{lab_rel} has {labels.shape[0]} bands that differ; a label chip holds its class values "
                             "in one band. Re-export the chips, or keep only the class band (gdal_translate -b N).")
    lab = labels[0]
    if lab.dtype.kind not in "iu" or (lab.size and int(lab.min()) < 0):
        raise DeepPixelError(f"{lab_rel}: label chips must hold non-negative integer class values.")
    top = int(lab.max(initial=0))
    if top > 65535:
        raise DeepPixelError(f"{lab_rel} holds the class value {top}; class values must be "
                             "1 to 65535 in a label chip (0 = unlabelled). Renumber the classes and export again.")
    return lab.astype(np.uint16 if top > 255 else np.uint8)


def valid_pixels(image, nodata) -> np.ndarray:
    """Pixels that are not nodata, by the rule Export and Classify use (io/raster.py valid_mask): a pixel any of
    whose bands holds the nodata value, NaN or infinity is nodata (before, training needed every band to)."""
    from ..io.raster import valid_mask
    return valid_mask(image, nodata)


def class_counts(labels) -> dict:
    """{class value: pixels} of a label chip, 0 (unlabelled) left out."""
    vals, n = np.unique(labels, return_counts=True)
    return {int(v): int(c) for v, c in zip(vals.tolist(), n.tolist()) if v}
