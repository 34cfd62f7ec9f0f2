"""Bad input and interruption for Export Training Data: clear errors, nothing half-written."""
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from deep_pixel.core.errors import DeepPixelError
from deep_pixel.core.schema import ClassInfo, ClassSchema
from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples, resolve_class_values

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UTM = rasterio.crs.CRS.from_epsg(32633)
OPTS = ExportOptions(tile_size_x=32, tile_size_y=32, stride_x=32, stride_y=32)


def raster(path, count=3, dtype="uint16", crs=UTM, nodata=None, size=64, data=None, transform=None):
    if data is None:
        data = np.random.default_rng(0).integers(1, 500, (count, size, size)).astype(dtype)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype.name, crs=crs, nodata=nodata,
                       transform=transform or from_origin(1000, 2000, 1, 1)) as dst:
        dst.write(data)
    return str(path)


def samples(value=1, geom=None):
    return Samples([geom or box(1000, 1936, 1064, 2000)], [value], UTM.to_wkt())


def leftovers(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith("."))


def test_value_zero_negative_duplicate_in_samples():
    with pytest.raises(DeepPixelError, match="reserved"):
        resolve_class_values([0, 1])
    with pytest.raises(DeepPixelError, match="1 or more"):
        resolve_class_values([-2, 1])
    with pytest.raises(DeepPixelError, match="used twice"):
        ClassSchema([ClassInfo(1, "a"), ClassInfo(1, "b")])


def test_text_class_not_in_schema():
    schema = ClassSchema([ClassInfo(1, "water"), ClassInfo(2, "forest")])
    with pytest.raises(DeepPixelError, match=r"\['urban'\] are not in the class schema"):
        resolve_class_values(["water", "urban"], schema)


def test_empty_and_all_invalid_sample_layers(tmp_path):
    path = raster(tmp_path / "r.tif")
    with pytest.raises(DeepPixelError, match="no class values"):
        resolve_class_values([None, "", None])
    empty = Samples([box(0, 0, 0, 0).buffer(0), None], [1, 1], UTM.to_wkt())
    with pytest.raises(DeepPixelError, match="no usable features"):
        export_training_data(path, empty, str(tmp_path / "c"), OPTS)
    assert not os.path.exists(tmp_path / "c")


def test_raster_without_crs(tmp_path):
    path = raster(tmp_path / "r.tif", crs=None)
    with pytest.raises(DeepPixelError, match="no coordinate reference system"):
        export_training_data(path, samples(), str(tmp_path / "c"), OPTS)


def test_geographic_raster_with_projected_samples(tmp_path):
    from rasterio.warp import transform_bounds
    west, south, east, north = transform_bounds(UTM, "EPSG:4326", 500000, 5600000, 500640, 5600640)
    path = raster(tmp_path / "r.tif", crs="EPSG:4326", size=64,
                  transform=from_origin(west, north, (east - west) / 64, (north - south) / 64))
    s = Samples([box(500100, 5600100, 500400, 5600400)], [2], UTM.to_wkt())
    res = export_training_data(path, s, str(tmp_path / "c"), OPTS)
    assert res.num_chips >= 1 and 0 < res.pixels_per_class[2] < 64 * 64


@pytest.mark.parametrize("count", [1, 12])
def test_one_and_twelve_bands(tmp_path, count):
    path = raster(tmp_path / "r.tif", count=count)
    export_training_data(path, samples(), str(tmp_path / "c"), OPTS)
    with rasterio.open(tmp_path / "c" / "images" / "000000000.tif") as ds:
        assert ds.count == count


def test_float32_nan_nodata(tmp_path):
    data = np.ones((2, 64, 64), np.float32)
    data[:, :10, :] = np.nan
    path = raster(tmp_path / "r.tif", data=data, nodata=float("nan"))
    res = export_training_data(path, samples(), str(tmp_path / "c"), OPTS)
    assert res.pixels_per_class[1] == 64 * 64 - 10 * 64  # the NaN rows are unlabelled


def test_output_equal_to_input(tmp_path):
    path = raster(tmp_path / "r.tif")
    with pytest.raises(DeepPixelError, match="OUTPUT_FOLDER .* would overwrite the input INPUT_RASTER"):
        export_training_data(path, samples(), path, OPTS)
    with pytest.raises(DeepPixelError, match="contains the input"):
        export_training_data(path, samples(), str(tmp_path), OPTS)


def test_input_is_not_modified(tmp_path):
    path = raster(tmp_path / "r.tif")
    before = open(path, "rb").read()
    export_training_data(path, samples(), str(tmp_path / "c"), OPTS)
    assert open(path, "rb").read() == before


def test_disk_full_leaves_nothing(tmp_path):
    """A file size limit makes writes fail like a full disk; the export must clean up and explain."""
    path = raster(tmp_path / "r.tif", size=256, count=4)
    out = tmp_path / "out" / "chips"
    (tmp_path / "out").mkdir()
    code = ("import signal, resource, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
            "from deep_pixel.cli.main import main\n"
            f"sys.exit(main(['export', '--input-raster', {path!r}, '--input-samples', {str(tmp_path / 's.gpkg')!r},"
            f" '--output-folder', {str(out)!r}, '--tile-size-x', '128', '--tile-size-y', '128',"
            " '--output-nofeature-tiles']))\n")
    from deep_pixel.io.synthetic import write_samples_gpkg
    write_samples_gpkg(str(tmp_path / "s.gpkg"), [(box(1000, 1744, 1256, 2000), 1)], "EPSG:32633",
                       ClassSchema([ClassInfo(1, "all")]))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "disk" in proc.stderr.lower() or "space" in proc.stderr.lower()
    assert os.listdir(tmp_path / "out") == []


def test_killed_export_leaves_no_complete_looking_output(tmp_path):
    from deep_pixel.io.synthetic import make_scene
    scene = make_scene(str(tmp_path / "scene"), width=1024, height=1024, seed=1)
    out = tmp_path / "chips"
    proc = subprocess.Popen([sys.executable, "-m", "deep_pixel", "export", "--input-raster", scene.image,
                             "--input-samples", scene.samples, "--output-folder", str(out),
                             "--tile-size-x", "32", "--tile-size-y", "32", "--stride-x", "8", "--stride-y", "8",
                             "--output-nofeature-tiles"], cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not [f for f in os.listdir(tmp_path) if f.startswith(".chips.partial")]:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()  # only a hidden ".chips.partial-*" folder may remain, never "chips"
    assert resource.getrlimit(resource.RLIMIT_FSIZE)  # (the parent process is unaffected)
