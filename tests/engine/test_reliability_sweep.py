"""Hostile inputs found by a sweep (stop 23): each gave "Unexpected error" or replaced another tool's file.

Real files, the real command line: a clear error that names the problem and the fix, no traceback,
nothing written, inputs and earlier outputs unchanged.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import rasterio

from conftest import snapshot

from deep_pixel.io.synthetic import write_samples_gpkg
from deep_pixel.io.vector import read_vector

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "deep_pixel", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def refused(proc, *words):
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "Traceback" not in text and "Unexpected error" not in text, text
    for w in words:
        assert w in text, text
    return text


@pytest.fixture
def mislabelled(scene, tmp_path):
    """The scene's polygons (UTM coordinates) in a GeoPackage that says EPSG:4326: a wrong CRS."""
    vec = read_vector(scene.samples)
    path = tmp_path / "mislabelled.gpkg"
    write_samples_gpkg(str(path), list(zip(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]])),
                       "EPSG:4326")
    return str(path)


def test_samples_whose_crs_does_not_fit_their_coordinates_are_named(scene, mislabelled, tmp_path):
    before = snapshot(os.path.dirname(scene.image))
    out = tmp_path / "chips"
    text = refused(cli("export", "--input-raster", scene.image, "--input-samples", mislabelled,
                       "--class-field", "Classvalue", "--output-folder", out),
                   "sample layer", "EPSG:4326", "EPSG:32633", "Assigned Coordinate Reference System")
    assert "cannot be reprojected" in text and not out.exists()
    assert snapshot(os.path.dirname(scene.image)) == before


def test_a_mask_whose_crs_does_not_fit_is_named_not_called_empty(scene, trained_scene_model, mislabelled, tmp_path):
    out = tmp_path / "classes.tif"
    refused(cli("classify", "--input-raster", scene.image, "--model-definition", trained_scene_model,
                "--mask-polygons", mislabelled, "--output-raster", out), "mask layer", "cannot be reprojected")
    assert os.listdir(tmp_path) == ["mislabelled.gpkg"]


def test_reference_raster_on_another_grid_with_no_crs_is_named(scene, tmp_path):
    classified = tmp_path / "no_crs.tif"
    with rasterio.open(scene.truth) as src:
        profile, data = src.profile, src.read()
    profile.update(crs=None, width=profile["width"] // 2, height=profile["height"] // 2)
    with rasterio.open(classified, "w", **profile) as dst:
        dst.write(data[:, :profile["height"], :profile["width"]])
    refused(cli("evaluate", "--input-classified", classified, "--reference-raster", scene.truth,
                "--output-report", tmp_path / "report.html"), "INPUT_CLASSIFIED has no CRS", "Assign")
    assert sorted(os.listdir(tmp_path)) == ["no_crs.tif"]


def test_a_report_never_replaces_another_tools_file_beside_it(scene, tmp_path):
    """OUTPUT_REPORT x.html also writes x.json: beside an export's deep_pixel_export.json (or a model's
    training_log.json) that would destroy it. Refused; an earlier report of Compute Accuracy is replaced."""
    folder = tmp_path / "chips"
    folder.mkdir()
    (folder / "deep_pixel_export.json").write_text(json.dumps({"band_stats": {"mean": [1.0]}}))
    before = snapshot(folder)
    args = ["evaluate", "--input-classified", scene.truth, "--reference", scene.samples, "--class-field", "Classvalue"]
    refused(cli(*args, "--output-report", folder / "deep_pixel_export.html"), "deep_pixel_export.json",
            "not a report of Compute Accuracy")
    assert snapshot(folder) == before
    report = tmp_path / "accuracy.html"
    for _ in range(2):                          # the second run replaces the first's report, as asked
        proc = cli(*args, "--output-report", report, "--output-table", tmp_path / "accuracy.csv")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "accuracy.json").read_text())["per_class"]


def test_an_output_that_cannot_be_replaced_is_named_and_kept(scene, trained_scene_model, tmp_path):
    """The classification is done, but the earlier output is locked (immutable here; open in another program
    on Windows): a clear error, the earlier file unchanged, no temporary file left."""
    out = tmp_path / "classes.tif"
    shutil.copy(scene.truth, out)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(out)]).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and a filesystem with the immutable flag)")
    try:
        before = snapshot(tmp_path)
        refused(cli("classify", "--input-raster", scene.image, "--model-definition", trained_scene_model,
                    "--output-raster", out), f"{out} cannot be replaced", "The earlier file is unchanged")
        assert snapshot(tmp_path) == before
    finally:
        subprocess.run(["chattr", "-i", str(out)])
