"""Export on the real Landsat tutorial scene (8 bands int16, nodata, text class field)."""
import json

import numpy as np
import rasterio
import rasterio.features
from shapely.geometry import mapping

from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples, resolve_class_values
from deep_pixel.io.vector import read_vector


def independent_labels(landsat, mapping_):
    """The polygons burned onto the whole image grid in one go with rasterio (not our burner)."""
    vec = read_vector(landsat["samples"])
    with rasterio.open(landsat["image"]) as ds:
        shapes = [(mapping(g), mapping_[c]) for g, c in zip(vec.geometries, vec.attributes["class"])]
        return rasterio.features.rasterize(shapes, out_shape=(ds.height, ds.width), transform=ds.transform,
                                           dtype="uint8"), ds.read()


def test_landsat_chips_hold_every_labelled_pixel(landsat, tmp_path):
    vec = read_vector(landsat["samples"])
    values, schema, mapping_ = resolve_class_values(vec.attributes["class"])
    assert set(mapping_) == {"forest", "water", "herbaceous", "barren", "urban"}
    out = tmp_path / "chips"
    export_training_data(landsat["image"], Samples(vec.geometries, values, vec.crs_wkt), str(out),
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=48, stride_y=48),
                         schema=schema, class_mapping=mapping_, class_field="class")
    full, image = independent_labels(landsat, mapping_)
    meta = json.load(open(out / "deep_pixel_export.json"))
    covered = np.zeros(full.shape, bool)
    accumulated = np.zeros(6, np.int64)
    for chip in meta["chips"]:
        r, c, h, w = chip["row"], chip["col"], chip["height"], chip["width"]
        with rasterio.open(out / chip["label"]) as lb, rasterio.open(out / chip["image"]) as im:
            np.testing.assert_array_equal(lb.read(1), full[r:r + h, c:c + w])
            np.testing.assert_array_equal(im.read(), image[:, r:r + h, c:c + w])
            assert im.dtypes[0] == "int16" and im.count == 8 and im.nodata == -9999
        covered[r:r + h, c:c + w] = True
        accumulated += np.bincount(full[r:r + h, c:c + w].ravel(), minlength=6)
    # Every labelled pixel of the polygons is in some chip.
    assert covered[full > 0].all()
    stats = json.load(open(out / "esri_accumulated_stats.json"))
    by_value = dict(zip([c["ClassValue"] for c in stats["Classes"]], stats["ClassPixelStats"]["NumPixelsPerClass"]))
    assert by_value == {v: int(accumulated[v]) for v in range(1, 6)}
    unique = np.bincount(full.ravel(), minlength=6)
    assert meta["labelled_pixels_per_class"] == {str(v): int(unique[v]) for v in range(1, 6)}
    assert stats["NumBands"] == 8 and stats["MetaDataMode"] == "Classified_Tiles"
    # The constant eighth band has std 0; stats cover all 8 bands.
    assert meta["band_stats"]["std"][7] == 0 and len(meta["band_stats"]["mean"]) == 8


def test_landsat_labels_agree_with_the_published_label_raster(landsat, tmp_path):
    """Our rasterization versus the tutorial's own burned labels (same polygons, ids 1..5)."""
    vec = read_vector(landsat["samples"])
    values, schema, mapping_ = resolve_class_values(vec.attributes["class"])
    full, _ = independent_labels(landsat, mapping_)
    with rasterio.open(landsat["labels"]) as ds:
        ref = ds.read(1)
    assert np.array_equal(full > 0, ref > 0)  # same labelled footprint
    agree = 0
    for v in range(1, 6):  # match each of our values to the tutorial id it overlaps most
        ids, counts = np.unique(ref[full == v], return_counts=True)
        agree += counts.max()
    assert agree / np.count_nonzero(ref) > 0.97
