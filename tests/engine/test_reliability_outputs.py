"""No input or earlier output is destroyed: destinations are checked before any work (issue 14).

Each case runs the real command (engine or command line) on real files, then checks that the
inputs are byte for byte unchanged and that nothing new (no temporary file) appeared.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from conftest import snapshot
from gis_files import colliding_images

from deep_pixel.core.errors import DeepPixelError
from deep_pixel.io.destinations import Place, check_destinations

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args):
    return subprocess.run([sys.executable, "-m", "deep_pixel", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


@pytest.fixture
def work(scene, tmp_path):
    """A private copy of the scene's truth raster (a class raster) and samples, with a user's style."""
    classified = tmp_path / "classes.tif"
    shutil.copy(scene.truth, classified)
    (tmp_path / "classes.qml").write_text("<qgis>the user's own style</qgis>")
    samples = tmp_path / ("samples" + os.path.splitext(scene.samples)[1])
    shutil.copy(scene.samples, samples)
    return tmp_path, str(classified), str(samples)


@pytest.mark.parametrize("report, table, culprit", [
    ("classes.tif", None, "OUTPUT_REPORT"),                  # the report would replace the raster
    ("classes.qml", None, "OUTPUT_REPORT"),                  # ... or its style (a sidecar)
    ("r.html", "{samples}", "OUTPUT_TABLE"),                 # the table would replace the reference
    ("r.html", "r.json", "OUTPUT_TABLE"),                    # the table is the report's own .json
    ("./sub/../classes.tif", None, "OUTPUT_REPORT"),         # another spelling of the input
])
def test_evaluate_refuses_outputs_over_inputs(work, report, table, culprit):
    folder, classified, samples = work
    before = snapshot(folder)
    args = ["evaluate", "--input-classified", classified, "--reference", samples, "--class-field", "Classvalue",
            "--output-report", os.path.join(folder, report)]
    if table:
        args += ["--output-table", os.path.join(folder, table.format(samples=os.path.basename(samples)))]
    os.makedirs(folder / "sub", exist_ok=True)
    proc = cli(*args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{culprit} " in proc.stderr and "would overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(folder) == before                        # inputs intact, nothing half-written


def test_a_symbolic_link_to_the_input_is_the_input(work):
    folder, classified, samples = work
    os.symlink(folder, folder / "link")
    with pytest.raises(DeepPixelError, match="OUTPUT_REPORT .* would overwrite the input INPUT_CLASSIFIED"):
        check_destinations([Place("INPUT_CLASSIFIED", classified, "raster")],
                           [Place("OUTPUT_REPORT", str(folder / "link" / "classes.tif"), "report")])


def test_shapefile_parts_and_folders(tmp_path):
    shp = tmp_path / "ref.shp"
    for ext in (".shp", ".dbf", ".shx", ".prj"):
        (tmp_path / ("ref" + ext)).write_text("x")
    with pytest.raises(DeepPixelError, match=r"OUTPUT_TABLE .*ref\.dbf would overwrite the input REFERENCE"):
        check_destinations([Place("REFERENCE", str(shp), "vector")], [Place("OUTPUT_TABLE", str(tmp_path / "ref.dbf"))])
    with pytest.raises(DeepPixelError, match="OUTPUT_FOLDER .* contains the input INPUT_RASTER"):
        check_destinations([Place("INPUT_RASTER", str(tmp_path / "ref.shp"), "raster")],
                           [Place("OUTPUT_FOLDER", str(tmp_path), "folder")])
    with pytest.raises(DeepPixelError, match="is a folder; give a file name inside it"):
        check_destinations([], [Place("OUTPUT_RASTER", str(tmp_path), "raster")])
    check_destinations([Place("REFERENCE", str(shp), "vector")], [Place("OUTPUT_TABLE", str(tmp_path / "t.csv"))])


def test_unwritable_destination_is_refused_first(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): permissions are not enforced")
        with pytest.raises(DeepPixelError, match="no permission to write in"):
            check_destinations([], [Place("OUTPUT_RASTER", str(locked / "out.tif"), "raster")])
    finally:
        os.chmod(locked, 0o700)


def test_case_insensitive_folders_compare_names_without_case(tmp_path):
    from deep_pixel.io.destinations import _ignores_case
    if not _ignores_case(str(tmp_path)):
        pytest.skip("this filesystem is case-sensitive; the rule is exercised where a folder ignores case")
    with pytest.raises(DeepPixelError, match="would overwrite"):
        check_destinations([Place("INPUT_RASTER", str(tmp_path / "A.tif"), "raster")],
                           [Place("OUTPUT_RASTER", str(tmp_path / "a.TIF"), "raster")])


def test_classify_refuses_before_loading_anything(scene, tmp_path, trained_scene_model):
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    image = tmp_path / "scene.tif"
    shutil.copy(scene.image, image)
    (tmp_path / "scene.qml").write_text("<qgis/>")
    before = snapshot(tmp_path)
    cases = [
        (str(tmp_path / "out.tif"), ClassifyOptions(output_confidence=str(tmp_path / "out.tif")),
         "OUTPUT_CONFIDENCE .* would overwrite the output OUTPUT_RASTER"),
        (str(tmp_path / "scene.tiff"), ClassifyOptions(), "OUTPUT_RASTER .*scene.qml"),   # the input's style
        (str(tmp_path / "dir.tif"), ClassifyOptions(), "is a folder"),
        (str(tmp_path / "x.tif"), ClassifyOptions(output_confidence=str(tmp_path / "scene.tif")),
         "OUTPUT_CONFIDENCE .* would overwrite the input INPUT_RASTER"),
    ]
    os.makedirs(tmp_path / "dir.tif")
    before["dir.tif"] = None
    for output, options, message in cases:
        with pytest.raises(DeepPixelError, match=message):
            classify(str(image), trained_scene_model, output, options)
    after = snapshot(tmp_path)
    after["dir.tif"] = None
    assert after == before


def test_folder_with_colliding_names_gets_distinct_outputs(scene, tmp_path, trained_scene_model):
    from deep_pixel.classify.run import classify
    images = colliding_images(scene, tmp_path / "images")
    result = classify(images, trained_scene_model, str(tmp_path / "out"))
    names = sorted(os.path.basename(p) for p in result.outputs)
    assert names == ["scene_tif_classified.tif", "scene_tiff_classified.tif"]
    with rasterio.open(result.outputs[0]) as a, rasterio.open(result.outputs[1]) as b:
        assert a.read(1).shape == b.read(1).shape == (96, 96)
        assert not np.array_equal(a.read(1), b.read(1))          # each image's own classes (b is a mirror)


def test_folder_names_the_image_that_failed_and_what_was_kept(scene, tmp_path, trained_scene_model):
    images = tmp_path / "images"
    images.mkdir()
    with rasterio.open(scene.image) as src:
        profile, data = src.profile, src.read(window=((0, 96), (0, 96)))
        profile.update(width=96, height=96, transform=src.window_transform(((0, 96), (0, 96))))
    with rasterio.open(images / "a_good.tif", "w", **profile) as dst:
        dst.write(data)
    (images / "b_broken.tif").write_bytes(b"II*\x00not a tiff at all")
    with rasterio.open(images / "c_later.tif", "w", **profile) as dst:
        dst.write(data)
    proc = cli("classify", "--input-raster", str(images), "--model-definition", trained_scene_model,
               "--output-raster", str(tmp_path / "out"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Image 2/3 b_broken.tif failed" in proc.stderr
    assert "Kept (complete): a_good_classified.tif" in proc.stderr and "the 1 image(s) after it" in proc.stderr
    left = sorted(f for f in os.listdir(tmp_path / "out") if not f.endswith((".qml", ".aux.xml")))
    assert left == ["a_good_classified.tif"]                  # no partial file of b_broken
