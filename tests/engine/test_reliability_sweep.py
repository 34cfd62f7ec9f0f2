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
    refused(cli(*args, "--output-report", folder / "deep_pixel_export.html"), "replace",
            str(folder / "deep_pixel_export.json"))
    assert snapshot(folder) == before
    model = tmp_path / "model"                   # a model's training log beside the report's .json
    model.mkdir()
    (model / "training_log.json").write_text(json.dumps({"epochs": []}))
    refused(cli(*args, "--output-report", model / "training_log.html"), "training_log.json",
            "not a report of Compute Accuracy")
    assert json.loads((model / "training_log.json").read_text()) == {"epochs": []}
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


def _export_engine(image, geoms, values, out, crs_wkt, **kw):
    from deep_pixel.core.progress import RecordingProgress
    from deep_pixel.export.run import ExportOptions, export_training_data
    from deep_pixel.export.samples import Samples
    progress = RecordingProgress()
    export_training_data(str(image), Samples(geoms, values, crs_wkt), str(out),
                         ExportOptions(tile_size_x=32, tile_size_y=32, **kw), progress=progress)
    return progress


def test_a_raster_too_small_for_any_chip_is_named_whatever_the_tile_size(tmp_path):
    import numpy as np
    from gis_files import write_raster
    from shapely.geometry import box
    image = write_raster(tmp_path / "tiny.tif", np.ones((3, 5, 7), np.uint8))
    samples = _one_polygon(tmp_path, box(1000, 1995, 1007, 2000))
    for tile in (256, 5):
        refused(cli("export", "--input-raster", image, "--input-samples", samples, "--class-field", "cls", "--tile-size-x", tile, "--tile-size-y", tile,
                    "--output-folder", tmp_path / "chips"), "7x5 pixels: too small to cut training chips")
    assert not (tmp_path / "chips").exists()


def _one_polygon(tmp_path, geom):
    from gis_files import write_vector
    return write_vector(tmp_path / "one.gpkg", [geom], [1])


def test_undeclared_fill_values_and_null_classes_are_said(scene, tmp_path):
    """A float raster with a block of 3e38 (a fill value not declared as nodata) would set the band statistics;
    features with a NULL class are left out: both are said, with the fix."""
    import numpy as np
    with rasterio.open(scene.image) as src:
        profile, data = src.profile, src.read().astype("float32")
    data[:, :10, :10] = 3e38
    profile.update(dtype="float32", nodata=None)
    image = tmp_path / "filled.tif"
    with rasterio.open(image, "w", **profile) as dst:
        dst.write(data)
    vec = read_vector(scene.samples)
    values = [int(v) for v in vec.attributes["Classvalue"]]
    values[0] = values[1] = None
    progress = _export_engine(image, vec.geometries, values, tmp_path / "chips", vec.crs_wkt)
    said = "\n".join(m for m in progress.messages if m.startswith("Warning: "))
    assert "hold values of 3e+38" in said and "gdal_edit.py -a_nodata" in said, said
    assert "2 sample feature(s) have no geometry or no class value" in said, said
    assert np.isfinite(data).all()


def test_the_exports_class_template_is_not_taken_for_a_model(scene, tmp_path):
    from gis_files import scene_chips
    chips = scene_chips(scene, tmp_path / "chips", stride=128)
    refused(cli("classify", "--input-raster", scene.image, "--model-definition",
                os.path.join(chips, "esri_model_definition.emd"), "--output-raster", tmp_path / "c.tif"),
            "class template that Export Training Data writes", "OUTPUT_MODEL")
    assert not (tmp_path / "c.tif").exists()


def test_a_model_definition_with_a_byte_order_mark_loads(trained_scene_model, tmp_path):
    from deep_pixel.model.package import load_package
    folder = tmp_path / "bom"
    shutil.copytree(os.path.dirname(trained_scene_model), folder)
    emd = folder / os.path.basename(trained_scene_model)
    emd.write_bytes(b"\xef\xbb\xbf" + emd.read_bytes())
    assert load_package(str(emd)).schema.values == load_package(trained_scene_model).schema.values


def test_training_on_one_class_is_warned(scene, tmp_path):
    from deep_pixel.core.progress import RecordingProgress
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    vec = read_vector(scene.samples)
    keep = [i for i, v in enumerate(vec.attributes["Classvalue"]) if int(v) == 1]
    _export_engine(scene.image, [vec.geometries[i] for i in keep], [1] * len(keep), tmp_path / "chips", vec.crs_wkt,
                   stride_x=64, stride_y=64)
    progress = RecordingProgress()
    train_model(str(tmp_path / "chips"), str(tmp_path / "model"), TrainOptions(
        max_epochs=1, backbone="resnet18", batch_size=4, learning_rate=1e-3, device="cpu",
        model_arguments={"chip_size": 32, "steps_per_epoch": 2, "lr_test_steps": 0}), progress)
    assert any(m.startswith("Warning: ") and "one class only" in m for m in progress.messages), progress.messages


def test_a_shapefile_without_its_dbf_is_named(tmp_path):
    import numpy as np
    from gis_files import write_raster, write_vector
    from shapely.geometry import box
    image = write_raster(tmp_path / "r.tif", np.ones((3, 64, 64), np.uint8))
    write_vector(tmp_path / "s.shp", [box(1000, 1950, 1030, 2000)], [1])
    os.remove(tmp_path / "s.dbf")
    refused(cli("export", "--input-raster", image, "--input-samples", tmp_path / "s.shp", "--class-field", "cls",
                "--output-folder", tmp_path / "chips"), "no attribute field at all", ".dbf")


def test_a_chips_folder_given_twice_counts_once(scene, tmp_path):
    from gis_files import scene_chips
    from deep_pixel.core.progress import RecordingProgress
    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    chips = scene_chips(scene, tmp_path / "chips", stride=128)
    progress = RecordingProgress()
    train_model([chips, os.path.join(chips, "..", "chips")], str(tmp_path / "model"), TrainOptions(
        max_epochs=1, backbone="resnet18", batch_size=4, learning_rate=1e-3, device="cpu",
        model_arguments={"chip_size": 32, "steps_per_epoch": 2, "lr_test_steps": 0}), progress)
    assert any("given more than once" in m for m in progress.messages)
    assert any(" chips from 1 folder(s)" in m for m in progress.messages), progress.messages


def test_a_classification_with_no_pixel_classified_is_said(scene, trained_scene_model, tmp_path):
    import numpy as np
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    from deep_pixel.core.progress import RecordingProgress
    with rasterio.open(scene.image) as src:
        profile = src.profile
    profile.update(dtype="float32", nodata=None)
    image = tmp_path / "all_nan.tif"
    with rasterio.open(image, "w", **profile) as dst:
        dst.write(np.full((profile["count"], profile["height"], profile["width"]), np.nan, np.float32))
    progress = RecordingProgress()
    classify(str(image), trained_scene_model, str(tmp_path / "c.tif"), ClassifyOptions(device="cpu"), progress)
    assert any(m.startswith("Warning: No pixel was classified") for m in progress.messages), progress.messages


def test_an_output_never_replaces_a_chip_of_an_export(scene, trained_scene_model, tmp_path):
    """Classify's output named after a chip (images/, labels/) or an export's own file is refused: the next
    training would use it. A file of the user's own beside the chips can be written and written again."""
    from gis_files import scene_chips
    chips = scene_chips(scene, tmp_path / "chips", stride=128)
    before = snapshot(chips)
    chip = os.path.join(chips, "images", sorted(os.listdir(os.path.join(chips, "images")))[0])
    refused(cli("classify", "--input-raster", scene.image, "--model-definition", trained_scene_model,
                "--output-raster", chip), "is a file of the training chips folder")
    assert snapshot(chips) == before
    mine = os.path.join(chips, "my_classes.tif")
    for _ in range(2):
        proc = cli("classify", "--input-raster", scene.image, "--model-definition", trained_scene_model,
                   "--output-raster", mine)
        assert proc.returncode == 0, proc.stdout + proc.stderr
