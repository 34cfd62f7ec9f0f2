"""Issue 14: silently wrong results and tracebacks from unusual rasters, geometries and values.

Rotated grids and invalid polygons are labelled as GDAL burns them; non-integer classes, float or
negative class rasters, rasters without a geotransform, all-nodata and damaged rasters are refused
with a message naming the file and the fix; SIGTERM acts like cancel.
"""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import snapshot
from gis_files import EPSG, gdal_burn, write_raster, write_vector
from osgeo import gdal, ogr
from shapely.geometry import Polygon, box

from deep_pixel.core.errors import DeepPixelError
from deep_pixel.evaluate.accuracy import EvaluateOptions, evaluate
from deep_pixel.export.from_files import export_files
from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples, repair

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROTATED = Affine(0.866, -0.5, 1000, -0.5, -0.866, 2000)      # 1 m pixels turned by 30 degrees


def exported_labels(folder):
    with rasterio.open(os.path.join(folder, "labels", "000000000.tif")) as ds:
        return ds.read(1)


def test_rotated_grid_is_labelled_as_gdal_burns_it(tmp_path):
    image = write_raster(tmp_path / "rot.tif", np.random.default_rng(0).integers(1, 200, (3, 64, 64), np.uint16),
                         transform=ROTATED)
    polys = [box(1010, 1960, 1030, 1990), Polygon([(990, 1970), (1005, 1950), (1020, 1945), (995, 1940)])]
    vec = write_vector(tmp_path / "s.gpkg", polys, [1, 2])
    export_files(image, vec, str(tmp_path / "c"), ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=64,
                                                                 stride_y=64), class_field="cls")
    expected = gdal_burn(image, vec)
    got = exported_labels(tmp_path / "c")
    assert (expected > 0).sum() > 300
    assert np.array_equal(got, expected)


def test_self_intersecting_polygons_are_repaired_not_halved(tmp_path):
    image = write_raster(tmp_path / "r.tif", np.random.default_rng(0).integers(1, 200, (3, 64, 64), np.uint16))
    bowtie = Polygon([(1005, 1995), (1055, 1945), (1055, 1995), (1005, 1945)])   # two triangles, one crossing
    assert not bowtie.is_valid and bowtie.buffer(0).area < 0.6 * repair(bowtie).area
    vec = write_vector(tmp_path / "s.gpkg", [bowtie], [3])
    fixed = write_vector(tmp_path / "fixed.gpkg", [repair(bowtie)], [3])
    warnings = []
    from deep_pixel.core.progress import Progress
    progress = Progress()
    progress.warn = lambda m: warnings.append(m)
    export_files(image, vec, str(tmp_path / "c"), ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=64,
                                                                 stride_y=64), class_field="cls", progress=progress)
    assert np.array_equal(exported_labels(tmp_path / "c"), gdal_burn(image, fixed))
    assert any("1 invalid" in w and "make_valid" in w for w in warnings)


def test_non_integer_class_values_are_refused_with_feature_ids(tmp_path):
    image = write_raster(tmp_path / "r.tif", np.ones((3, 64, 64), np.uint16))
    vec = write_vector(tmp_path / "s.gpkg", [box(1000, 1950, 1020, 1990), box(1030, 1950, 1050, 1990)], [1.0, 2.5],
                       ogr.OFTReal)
    with pytest.raises(DeepPixelError, match=r"not whole: feature id\(s\) 2 \(2.5\)"):
        export_files(image, vec, str(tmp_path / "c"), class_field="cls")
    assert not os.path.exists(tmp_path / "c")


def test_raster_without_geotransform_says_so(tmp_path):
    image = write_raster(tmp_path / "r.tif", np.ones((3, 64, 64), np.uint16), transform=None)
    with pytest.raises(DeepPixelError, match="has no geotransform"):
        export_training_data(image, Samples([box(0, 0, 10, 10)], [1], None), str(tmp_path / "c"))


def test_all_nodata_raster_is_an_error_at_export(tmp_path):
    image = write_raster(tmp_path / "r.tif", np.zeros((3, 64, 64), np.uint16), nodata=0)
    s = Samples([box(1000, 1950, 1050, 1990)], [1], rasterio.crs.CRS.from_epsg(EPSG).to_wkt())
    with pytest.raises(DeepPixelError, match="holds only nodata"):
        export_training_data(image, s, str(tmp_path / "c"), ExportOptions(tile_size_x=32, tile_size_y=32))
    assert sorted(os.listdir(tmp_path)) == ["r.tif"]


class TestComputeAccuracyValues:
    @pytest.fixture
    def reference(self, tmp_path):
        return write_raster(tmp_path / "ref.tif", np.full((1, 32, 32), 2, np.uint8))

    def test_float_classified_is_refused(self, tmp_path, reference):
        c = write_raster(tmp_path / "c.tif", np.full((1, 32, 32), 2.7, np.float32))
        with pytest.raises(DeepPixelError, match="INPUT_CLASSIFIED .* holds float32 values.*gdal_translate"):
            evaluate(c, reference_raster=reference)

    def test_float_reference_is_refused(self, tmp_path):
        c = write_raster(tmp_path / "c.tif", np.full((1, 32, 32), 2, np.uint8))
        r = write_raster(tmp_path / "r.tif", np.full((1, 32, 32), 2.5, np.float32))
        with pytest.raises(DeepPixelError, match="REFERENCE_RASTER .* holds float32"):
            evaluate(c, reference_raster=r)

    def test_negative_classified_values_do_not_wrap(self, tmp_path, reference):
        data = np.full((1, 32, 32), 2, np.int16)
        data[0, :4] = -1
        c = write_raster(tmp_path / "c.tif", data)
        with pytest.raises(DeepPixelError, match="negative value -1"):
            evaluate(c, reference_raster=reference)

    def test_reference_classes_message_fits_compute_accuracy(self, tmp_path):
        c = write_raster(tmp_path / "c.tif", np.full((1, 32, 32), 1, np.uint8))
        with rasterio.open(c, "r+") as ds:
            ds.update_tags(DEEP_PIXEL_CLASSES=json.dumps([{"value": 1, "name": "water"}]))
        vec = write_vector(tmp_path / "s.gpkg", [box(1000, 1980, 1010, 1990)], ["urban"], ogr.OFTString)
        with pytest.raises(DeepPixelError) as e:
            evaluate(c, reference=vec, options=EvaluateOptions(class_field="cls"))
        assert "CLASS_FIELD" in str(e.value) and "schema" not in str(e.value)


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "deep_pixel", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, **kw)


def _good_raster(path, command, scene):
    """A tiled GeoTIFF the command could read: the scene (classify: the model's bands and pixel size),
    3-band uint16 pixels (export) or a class raster (evaluate)."""
    if command == "classify":
        with rasterio.open(scene.image) as src:
            profile, data = dict(src.profile), src.read()
    else:
        count, dtype, top = (3, "uint16", 60000) if command == "export" else (1, "uint8", 4)
        data = np.random.default_rng(1).integers(1, top, (count, 512, 512)).astype(dtype)
        profile = dict(driver="GTiff", width=512, height=512, count=count, dtype=dtype,
                       crs=rasterio.crs.CRS.from_epsg(EPSG), transform=Affine(1, 0, 1000, 0, -1, 2000))
    profile.update(tiled=True, blockxsize=128, blockysize=128)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


@pytest.mark.parametrize("command", ["export", "classify", "evaluate"])
@pytest.mark.parametrize("damage", ["truncated", "empty", "vrt_without_source"])
def test_damaged_rasters_give_a_clear_error_through_the_command_line(tmp_path, damage, command, scene, request):
    good = _good_raster(tmp_path / "good.tif", command, scene)
    if damage == "truncated":
        bad = tmp_path / "bad.tif"
        bad.write_bytes(good.read_bytes()[:os.path.getsize(good) // 3])
    elif damage == "empty":
        bad = tmp_path / "bad.tif"
        bad.write_bytes(b"")
    else:
        bad = tmp_path / "bad.vrt"
        gdal.Translate(str(bad), str(good), format="VRT")
    vec = write_vector(tmp_path / "s.gpkg", [box(1000, 1500, 1500, 2000)], [1])
    reference = _good_raster(tmp_path / "reference.tif", command, scene)
    if damage == "vrt_without_source":
        os.remove(good)
    before = snapshot(tmp_path)
    if command == "export":
        args = ["--input-raster", bad, "--input-samples", vec, "--class-field", "cls", "--output-folder",
                tmp_path / "chips"]
    elif command == "classify":
        args = ["--input-raster", bad, "--model-definition", request.getfixturevalue("trained_scene_model"),
                "--output-raster", tmp_path / "out.tif"]
    else:
        args = ["--input-classified", bad, "--reference-raster", reference, "--output-report", tmp_path / "r.html"]
    proc = cli(command, *map(str, args))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr, proc.stderr
    assert "Unexpected error" not in proc.stderr, proc.stderr
    assert snapshot(tmp_path) == before


def test_sigterm_acts_like_cancel(tmp_path, scene, trained_scene_model):
    big = str(tmp_path / "big.tif")            # the scene repeated to 2048 x 2048 (generating one takes 35 s)
    with rasterio.open(scene.image) as src:
        profile, image, names = src.profile, src.read(), src.descriptions
    reps = (1, -(-2048 // image.shape[1]), -(-2048 // image.shape[2]))
    profile.update(width=2048, height=2048, compress=None)
    with rasterio.open(big, "w", **profile) as dst:
        dst.write(np.tile(image, reps)[:, :2048, :2048])
        dst.descriptions = names
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "deep_pixel", "--progress", "json", "classify", "--input-raster",
                             big, "--model-definition", trained_scene_model, "--output-raster",
                             str(out / "classes.tif"), "--tile-size", "256"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if '"progress"' in line and '"fraction": 0.0' not in line:
            break
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert '"cancelled"' in rest and "SIGTERM" in rest and "Traceback" not in err
    assert os.listdir(out) == []                               # no partial raster, no staging file


def test_without_gdal_bindings_vector_steps_say_so(tmp_path, monkeypatch):
    """A Python without osgeo (a server with rasterio's wheel alone): reading or writing vectors is refused with
    the fix, the suggestions GeoPackage before any work; Processing's output (written by QGIS) is not refused."""
    from deep_pixel.io.vector import read_vector
    from deep_pixel.suggest.output import check_suggest_destinations
    samples = str(tmp_path / "s.gpkg")
    write_vector(samples, [box(0, 0, 1, 1)], [1])
    monkeypatch.setitem(sys.modules, "osgeo", None)
    with pytest.raises(DeepPixelError, match=r"Reading vector files needs GDAL's Python bindings .*python3-gdal"):
        read_vector(samples)
    with pytest.raises(DeepPixelError, match="Writing the suggestions GeoPackage needs GDAL's Python bindings"):
        check_suggest_destinations("in.tif", "m.emd", None, None, None, str(tmp_path / "out.gpkg"))
    check_suggest_destinations("in.tif", "m.emd", None, None, None, str(tmp_path / "out.shp"), require_gpkg=False)
    assert sorted(os.listdir(tmp_path)) == ["s.gpkg"]
