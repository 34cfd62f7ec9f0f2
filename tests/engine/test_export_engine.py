"""Export Training Data on generated rasters and polygons (engine only, no QGIS)."""
import json
import os

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import Point, box

from deep_pixel.core.errors import Cancelled, DeepPixelError
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples, resolve_class_values

UTM = "EPSG:32633"


def make_raster(path, width=100, height=80, count=3, dtype="uint16", nodata=None, crs=UTM, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 1000, size=(count, height, width)).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype,
                       crs=crs, transform=from_origin(1000, 2000, 1, 1), nodata=nodata) as dst:
        dst.write(data)
    return data


def crs_wkt():
    return rasterio.crs.CRS.from_string(UTM).to_wkt()


def read_chips(folder):
    meta = json.load(open(os.path.join(folder, "deep_pixel_export.json")))
    out = []
    for chip in meta["chips"]:
        with rasterio.open(os.path.join(folder, chip["image"])) as im, \
                rasterio.open(os.path.join(folder, chip["label"])) as lb:
            out.append((chip, im.read(), lb.read(1)))
    return meta, out


def test_chips_match_raster_and_labels(tmp_path):
    data = make_raster(tmp_path / "r.tif")
    # A polygon at raster x 10..30, y 10..20 (pixel columns 10..29, rows 10..19).
    poly = box(1010, 1980, 1030, 1990)
    samples = Samples([poly], [7], crs_wkt())
    out = tmp_path / "chips"
    res = export_training_data(str(tmp_path / "r.tif"), samples, str(out),
                               ExportOptions(tile_size_x=32, tile_size_y=32, stride_x=16, stride_y=16))
    meta, chips = read_chips(out)
    assert res.num_chips == len(chips) > 0
    for chip, image, label in chips:
        r, c = chip["row"], chip["col"]
        np.testing.assert_array_equal(image, data[:, r:r + 32, c:c + 32])
        expected = np.zeros((80, 100), np.uint8)
        expected[10:20, 10:30] = 7
        np.testing.assert_array_equal(label, expected[r:r + 32, c:c + 32])
    assert meta["labelled_pixels_per_class"] == {"7": 200}
    stats = json.load(open(out / "esri_accumulated_stats.json"))
    assert stats["NumTiles"] == len(chips)
    assert stats["ClassPixelStats"]["NumPixelsPerClass"] == [sum(int((lb == 7).sum()) for _, _, lb in chips)]
    lines = open(out / "map.txt").read().splitlines()
    assert lines[0] == "images/000000000.tif labels/000000000.tif"
    assert len(lines) == len(chips)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_dtypes_and_band_count_pass_through(tmp_path, dtype):
    make_raster(tmp_path / "r.tif", count=5, dtype=dtype)
    samples = Samples([box(1000, 1920, 1100, 2000)], [1], crs_wkt())
    export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=64, stride_y=64))
    with rasterio.open(tmp_path / "c" / "images" / "000000000.tif") as ds:
        assert ds.dtypes[0] == dtype and ds.count == 5 and ds.crs.to_string() == UTM


def test_nodata_pixels_are_unlabelled(tmp_path):
    data = make_raster(tmp_path / "r.tif", nodata=0)
    data[:, :, :50] = 0
    with rasterio.open(tmp_path / "r.tif", "r+") as ds:
        ds.write(data)
    samples = Samples([box(1000, 1920, 1100, 2000)], [2], crs_wkt())
    export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=36, stride_y=16))
    meta, chips = read_chips(tmp_path / "c")
    for _chip, image, label in chips:
        assert np.all(label[image[0] == 0] == 0)
        assert np.all(label[image[0] != 0] == 2)
    assert meta["labelled_pixels_per_class"] == {"2": 50 * 80}


def test_samples_in_another_crs_are_reprojected(tmp_path):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape
    poly = box(1010, 1950, 1030, 1990)
    geo = shape(transform_geom(UTM, "EPSG:4326", mapping(poly)))
    samples = Samples([geo], [3], rasterio.crs.CRS.from_epsg(4326).to_wkt())
    export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                         ExportOptions(tile_size_x=64, tile_size_y=64))
    meta, chips = read_chips(tmp_path / "c")
    assert abs(meta["labelled_pixels_per_class"]["3"] - 800) <= 20


def test_points_with_buffer_and_rotation(tmp_path):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    samples = Samples([Point(1020.5, 1960.5)], [4], crs_wkt())
    export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                         ExportOptions(tile_size_x=32, tile_size_y=32, stride_x=32, stride_y=32,
                                       buffer_radius=3, rotation_angle=90))
    meta, chips = read_chips(tmp_path / "c")
    assert [c["rotation"] for c in meta["chips"]] == [0, 90, 180, 270]
    base_img, base_lab = chips[0][1], chips[0][2]
    assert 20 <= int((base_lab == 4).sum()) <= 36  # a disc of radius 3 px
    np.testing.assert_array_equal(chips[1][2], np.rot90(base_lab))
    np.testing.assert_array_equal(chips[2][1], np.rot90(base_img, 2, axes=(1, 2)))


def test_text_classes_are_mapped_and_reported(tmp_path):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    values, schema, mapping = resolve_class_values(["water", "forest", "water"])
    assert mapping == {"forest": 1, "water": 2}
    samples = Samples([box(1000, 1990, 1010, 2000), box(1020, 1990, 1030, 2000), box(1040, 1990, 1050, 2000)],
                      values, crs_wkt())
    export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                         ExportOptions(tile_size_x=64, tile_size_y=64), schema=schema, class_mapping=mapping,
                         class_field="class")
    emd = json.load(open(tmp_path / "c" / "esri_model_definition.emd"))
    assert [(c["Value"], c["Name"]) for c in emd["Classes"]] == [(1, "forest"), (2, "water")]
    meta = json.load(open(tmp_path / "c" / "deep_pixel_export.json"))
    assert meta["class_mapping"] == mapping and meta["labelled_pixels_per_class"] == {"1": 100, "2": 200}
    assert "forest=1" in open(tmp_path / "c" / "stats.txt").read()


def test_min_labelled_fraction_and_nofeature_tiles(tmp_path):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    samples = Samples([box(1000, 1996, 1004, 2000)], [1], crs_wkt())  # 16 px in the first tile
    opts = dict(tile_size_x=32, tile_size_y=32, stride_x=32, stride_y=32)
    assert export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "a"),
                                ExportOptions(**opts)).num_chips == 1
    assert export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "b"),
                                ExportOptions(output_nofeature_tiles=True, **opts)).num_chips == 4
    assert export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                                ExportOptions(min_labelled_fraction=0.05, **opts)).num_chips == 0


def test_mask_polygons_limit_chips(tmp_path):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    samples = Samples([box(1000, 1936, 1064, 2000)], [1], crs_wkt())
    res = export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                               ExportOptions(tile_size_x=32, tile_size_y=32, stride_x=32, stride_y=32),
                               mask_geometries=[box(1000, 1968, 1016, 2000)], mask_crs_wkt=crs_wkt())
    meta, chips = read_chips(tmp_path / "c")
    assert res.num_chips == 1 and int((chips[0][2] == 1).sum()) == 16 * 32


@pytest.mark.parametrize("opts, words", [
    (dict(tile_size_x=128, tile_size_y=128), "larger than the raster"),
    (dict(tile_size_x=32, tile_size_y=32, stride_x=0), "Stride"),
    (dict(tile_size_x=32, tile_size_y=32, image_format="PNG"), "Use IMAGE_FORMAT=TIFF"),
    (dict(tile_size_x=32, tile_size_y=32, rotation_angle=45), "Rotation angle 45"),
])
def test_bad_options_are_explained(tmp_path, opts, words):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    samples = Samples([box(1000, 1936, 1064, 2000)], [1], crs_wkt())
    with pytest.raises(DeepPixelError, match=words):
        export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"), ExportOptions(**opts))
    assert not os.path.exists(tmp_path / "c")


def test_samples_outside_raster_and_non_empty_output(tmp_path):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    far = Samples([box(5000, 5000, 5010, 5010)], [1], crs_wkt())
    with pytest.raises(DeepPixelError, match="No sample lies on the raster"):
        export_training_data(str(tmp_path / "r.tif"), far, str(tmp_path / "c"), ExportOptions(tile_size_x=32, tile_size_y=32))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    ok = Samples([box(1000, 1936, 1064, 2000)], [1], crs_wkt())
    with pytest.raises(DeepPixelError, match="not empty"):
        export_training_data(str(tmp_path / "r.tif"), ok, str(tmp_path / "full"), ExportOptions(tile_size_x=32, tile_size_y=32))
    assert os.listdir(tmp_path / "full") == ["keep.txt"]


def test_cancel_leaves_nothing(tmp_path):
    make_raster(tmp_path / "r.tif", width=64, height=64)
    samples = Samples([box(1000, 1936, 1064, 2000)], [1], crs_wkt())
    with pytest.raises(Cancelled):
        export_training_data(str(tmp_path / "r.tif"), samples, str(tmp_path / "c"),
                             ExportOptions(tile_size_x=16, tile_size_y=16, stride_x=16, stride_y=16),
                             progress=RecordingProgress(cancel_after=3))
    assert sorted(os.listdir(tmp_path)) == ["r.tif"]


def test_integer_class_field_takes_names_from_the_classname_field(scene, tmp_path):
    """Classvalue integers with a Classname beside them (as sample layers have): names come along,
    unless a value has two names (then the generic "Class N")."""
    from deep_pixel.cli.main import main
    from deep_pixel.export.samples import schema_from_name_field
    from deep_pixel.io.vector import read_vector
    out = tmp_path / "named"
    assert main(["export", "--input-raster", scene.image, "--input-samples", scene.samples, "--class-field",
                 "Classvalue", "--tile-size-x", "128", "--tile-size-y", "128", "--output-folder", str(out)]) == 0
    meta = json.load(open(out / "deep_pixel_export.json"))
    names = {c["value"]: c["name"] for c in meta["schema"]["classes"]}
    assert names == {1: "water", 2: "forest", 3: "cropland", 4: "grassland", 5: "built-up"}
    vec = read_vector(scene.samples)
    values = [int(v) for v in vec.attributes["Classvalue"]]
    clash = dict(vec.attributes, Classname=["water"] * len(values))
    assert schema_from_name_field(clash, "Classvalue", values) is None


def test_the_whole_rasters_band_statistics_are_recorded(tmp_path):
    """Issue 16: Train Model normalises with the whole raster's statistics, not only the chips' (a biased sample)."""
    data = make_raster(tmp_path / "r.tif", width=300, height=200, nodata=0).astype(np.float64)
    with rasterio.open(tmp_path / "r.tif", "r+") as ds:          # a bright strip far from the samples
        data[:, :, 250:] += 5000
        ds.write(data.astype("uint16"))
    out = tmp_path / "chips"
    export_training_data(str(tmp_path / "r.tif"), Samples([box(1010, 1960, 1030, 1990)], [1], crs_wkt()), str(out),
                         ExportOptions(tile_size_x=32, tile_size_y=32, stride_x=32, stride_y=32))
    meta = json.load(open(out / "deep_pixel_export.json"))
    whole, chips = meta["raster_band_stats"], meta["band_stats"]
    assert whole["count"] == 300 * 200 and whole["every"] == 1
    np.testing.assert_allclose(whole["mean"], data.reshape(3, -1).mean(1), rtol=1e-9)
    assert all(w > c + 500 for w, c in zip(whole["mean"], chips["mean"]))


def test_band_statistics_of_a_large_raster_come_from_an_even_sample(tmp_path):
    from deep_pixel.io.bandstats import raster_stats
    make_raster(tmp_path / "big.tif", width=1500, height=1000)
    with rasterio.open(tmp_path / "big.tif") as ds:
        s = raster_stats(ds, [1, 2], None, max_pixels=100_000)
        full = ds.read([1, 2]).reshape(2, -1).astype(np.float64)
    assert s["every"] == 4 and 90_000 <= s["count"] <= 100_000
    np.testing.assert_allclose(s["mean"], full.mean(1), rtol=0.01)
