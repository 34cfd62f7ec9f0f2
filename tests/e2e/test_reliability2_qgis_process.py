"""Issue 14 through qgis_process, second part: termination, training inputs, model packages, folders.

Each case runs scripts/qgis_process as a user would, on small files made here, and checks the exit
status, the message, that no Python traceback reached the user and that nothing was left behind.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import rasterio
from conftest import ROOT, run_qgis_process, snapshot
from gis_files import colliding_images, gdal_burn, write_raster, write_vector
from shapely.geometry import Polygon, box

from deep_pixel.export.samples import repair

QGIS_PROCESS = os.path.join(ROOT, "scripts", "qgis_process")


def _fails(proc, *words):
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text, text
    for w in words:
        assert w in text, text
    return text


def _landscape(tmp_path, size=64):
    """A raster and two polygons of classes 1 and 2 covering most of it."""
    data = np.random.default_rng(0).integers(1, 200, (3, size, size)).astype(np.uint16)
    raster = write_raster(tmp_path / "r.tif", data)
    half = 1000 + size // 2
    vector = write_vector(tmp_path / "s.gpkg", [box(1000, 2000 - size, half, 2000), box(half, 2000 - size,
                                                                                         1000 + size, 2000)], [1, 2])
    return raster, vector


def _export(raster, vector, out, size=32, stride=32):
    return run_qgis_process("run", "deeppixel:exporttrainingdata", "--", f"INPUT_RASTER={raster}",
                            f"INPUT_SAMPLES={vector}", "CLASS_FIELD=cls", f"TILE_SIZE_X={size}", f"TILE_SIZE_Y={size}",
                            f"STRIDE_X={stride}", f"STRIDE_Y={stride}", f"OUTPUT_FOLDER={out}", check=False)


def _train(chips, out, *extra):
    return run_qgis_process("run", "deeppixel:trainmodel", "--", f"INPUT_TRAINING_DATA={chips}", "MAX_EPOCHS=1",
                            "BACKBONE=resnet18", "BATCH_SIZE=2", "DEVICE=cpu", "VALIDATION_PERCENT=0",
                            f"OUTPUT_MODEL={out}", *extra, check=False)


@pytest.fixture(scope="module")
def chips(tmp_path_factory):
    """A tiny exported chips folder (four 32 px chips, classes 1 and 2), made through qgis_process."""
    base = tmp_path_factory.mktemp("rel2_chips")
    raster, vector = _landscape(base)
    proc = _export(raster, vector, base / "chips")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return base / "chips"


# -- termination ----------------------------------------------------------------------------------

def sigterm_qgis_process(args, ready, env=None, timeout=180):
    """Run ``scripts/qgis_process run <args>``, send SIGTERM once ``ready()``; returns (exit status, output)."""
    proc = subprocess.Popen([QGIS_PROCESS, "run", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, **(env or {})))
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be stopped: {proc.communicate()}"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out + err
    assert proc.returncode not in (0, -signal.SIGTERM), text          # stopped by our handler, not killed
    assert "Traceback" not in text, text
    return text


def test_sigterm_stops_an_in_process_export_and_removes_its_staging_folder(tmp_path):
    """qgis_process runs the algorithm in its main thread: SIGTERM acts like cancel (processing_provider/base.py)."""
    raster, vector = _landscape(tmp_path, size=2048)
    before = snapshot(tmp_path)
    text = sigterm_qgis_process(["deeppixel:exporttrainingdata", "--", f"INPUT_RASTER={raster}",
                                 f"INPUT_SAMPLES={vector}", "CLASS_FIELD=cls", "TILE_SIZE_X=32", "TILE_SIZE_Y=32",
                                 "STRIDE_X=16", "STRIDE_Y=16", f"OUTPUT_FOLDER={tmp_path / 'chips'}"],
                                lambda: glob.glob(str(tmp_path / ".chips.partial-*" / "images" / "*.tif")))
    assert "SIGTERM" in text, text
    after = snapshot(tmp_path)
    after.pop("r.tif.aux.xml", None)          # QGIS's statistics cache for the layer it opened
    assert after == before and not glob.glob(str(tmp_path / ".*"))      # no chips, no hidden staging folder


def _engines_running(marker):
    """Processes whose command line mentions ``marker`` (an engine left running after QGIS stopped)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_sigterm_to_qgis_stops_the_external_engine_which_keeps_its_checkpoint(chips, tmp_path):
    """With DEEP_PIXEL_PYTHON, SIGTERM to qgis_process stops the engine child as cancel does (SIGTERM): it
    keeps its training checkpoint, says where, and is not left running."""
    out = tmp_path / "m"
    text = sigterm_qgis_process(["deeppixel:trainmodel", "--", f"INPUT_TRAINING_DATA={chips}", "MAX_EPOCHS=200",
                                 "STOP_WHEN_NOT_IMPROVING=false", "BACKBONE=resnet18", "BATCH_SIZE=2", "DEVICE=cpu",
                                 "VALIDATION_PERCENT=0", "MODEL_ARGUMENTS=chip_size=32,steps_per_epoch=2",
                                 f"OUTPUT_MODEL={out}"], lambda: os.path.isdir(str(out) + ".checkpoint"),
                                env={"DEEP_PIXEL_PYTHON": sys.executable})
    assert f"is kept in {out}.checkpoint" in text, text
    assert sorted(os.listdir(tmp_path)) == ["m.checkpoint"] and not _engines_running(str(out))


def _copy_chips(chips, folder):
    shutil.copytree(chips, folder)
    return folder


def _first_chip(folder, sub):
    return sorted((folder / sub).glob("*.tif"))[0]


# -- training inputs -------------------------------------------------------------------------------

def test_train_refuses_a_chip_linked_from_outside_the_chips_folder(chips, tmp_path):
    folder = _copy_chips(chips, tmp_path / "chips")
    chip = _first_chip(folder, "images")
    (tmp_path / "elsewhere").mkdir()
    outside = tmp_path / "elsewhere" / chip.name
    os.rename(chip, outside)
    os.symlink(outside, chip)
    before = snapshot(tmp_path)
    _fails(_train(folder, tmp_path / "m"), f"{chip} is a symbolic link to {outside}, outside the chips folder",
           "Copy the files into the folder")
    assert snapshot(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["chips", "elsewhere"]


def test_train_refuses_steps_per_epoch_out_of_range(chips, tmp_path):
    _fails(_train(chips, tmp_path / "m", "MODEL_ARGUMENTS=steps_per_epoch=-1"),
           "steps_per_epoch=-1 is out of range; allowed: 0 to")
    assert os.listdir(tmp_path) == []


def test_train_refuses_a_label_value_missing_from_the_class_list(chips, tmp_path):
    folder = _copy_chips(chips, tmp_path / "chips")
    label = _first_chip(folder, "labels")
    with rasterio.open(label, "r+") as ds:
        data = ds.read(1)
        data[:4, :4] = 9
        ds.write(data, 1)
    before = snapshot(tmp_path)
    _fails(_train(folder, tmp_path / "m"), f"The label chip {label} holds the class value 9, which is not in the "
                                          "chips folder's class list")
    assert snapshot(tmp_path) == before and os.listdir(tmp_path) == ["chips"]


# -- model packages, outputs, geometries ----------------------------------------------------------

def test_classify_refuses_a_zip_bomb_package(tmp_path):
    raster, _ = _landscape(tmp_path)
    bomb = tmp_path / "bomb.dlpk"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb.emd", json.dumps({"ModelFile": "bomb.pth"}))
        z.writestr("bomb.pth", b"\0" * (64 * 2**20))            # 64 MiB of zeros in about 64 KiB
    before = snapshot(tmp_path)
    _fails(run_qgis_process("run", "deeppixel:classifypixels", "--", f"INPUT_RASTER={raster}",
                            f"MODEL_DEFINITION={bomb}", f"OUTPUT_RASTER={tmp_path / 'c.tif'}", check=False),
           "refused as a zip bomb")
    after = snapshot(tmp_path)
    after.pop("r.tif.aux.xml", None)          # QGIS's statistics cache for the layer it opened
    assert after == before and not glob.glob(str(tmp_path / ".*"))


def test_export_repairs_a_self_intersecting_polygon_and_says_so(tmp_path):
    raster, _ = _landscape(tmp_path)
    bowtie = Polygon([(1005, 1995), (1055, 1945), (1055, 1995), (1005, 1945)])
    vector = write_vector(tmp_path / "bowtie.gpkg", [bowtie], [3])
    proc = _export(raster, vector, tmp_path / "chips", size=64, stride=64)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in text, text
    assert "1 invalid" in text and "repaired with make_valid" in text, text
    with rasterio.open(tmp_path / "chips" / "labels" / "000000000.tif") as ds:
        assert np.array_equal(ds.read(1), gdal_burn(raster, write_vector(tmp_path / "fixed.gpkg", [
            repair(bowtie)], [3])))


def test_classify_a_folder_with_scene_tif_and_scene_tiff(scene, trained_scene_model, tmp_path):
    images = colliding_images(scene, tmp_path / "images", size=64)
    proc = run_qgis_process("run", "deeppixel:classifypixels", "--", f"INPUT_RASTER={images}",
                            f"MODEL_DEFINITION={trained_scene_model}", "DEVICE=cpu",
                            f"OUTPUT_RASTER={tmp_path / 'out.tif'}", check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    written = sorted(f for f in os.listdir(tmp_path / "out") if f.endswith(".tif"))
    assert written == ["scene_tif_classified.tif", "scene_tiff_classified.tif"]
    with rasterio.open(tmp_path / "out" / written[0]) as a, rasterio.open(tmp_path / "out" / written[1]) as b:
        assert not np.array_equal(a.read(1), b.read(1))          # two images, two outputs (b is a mirror)


def test_compute_accuracy_refuses_an_output_that_is_a_folder(tmp_path):
    classified = write_raster(tmp_path / "c.tif", np.full((1, 32, 32), 2, np.uint8))
    reference = write_raster(tmp_path / "ref.tif", np.full((1, 32, 32), 2, np.uint8))
    (tmp_path / "reports").mkdir()
    before = snapshot(tmp_path)
    _fails(run_qgis_process("run", "deeppixel:computeaccuracy", "--", f"INPUT_CLASSIFIED={classified}",
                            f"REFERENCE_RASTER={reference}", f"OUTPUT_REPORT={tmp_path / 'reports'}", check=False),
           f"OUTPUT_REPORT {tmp_path / 'reports'} is a folder; give a file name inside it")
    after = snapshot(tmp_path)
    for f in ("c.tif.aux.xml", "ref.tif.aux.xml"):
        after.pop(f, None)
    assert after == before and os.listdir(tmp_path / "reports") == []




def test_samples_with_a_crs_that_does_not_fit_their_coordinates_through_qgis_process(tmp_path):
    """A layer labelled EPSG:4326 holding projected coordinates: named with the fix, no traceback, nothing made."""
    raster, _ = _landscape(tmp_path)
    write_vector(tmp_path / "wrong.gpkg", [box(1000, 1950, 1030, 2000)], [1], epsg=4326)
    text = _fails(_export(raster, tmp_path / "wrong.gpkg", tmp_path / "chips"), "cannot be reprojected",
                  "EPSG:4326", "Assigned Coordinate Reference System")
    assert "Unexpected error" not in text and not (tmp_path / "chips").exists()
