"""Hostile inputs found by the stop-24 sweep of Train Model's chips folders and output paths.

Real chips exported from the real scene, the real command line where a user would type the path: a clear
error naming the problem and the fix, no traceback, nothing left behind.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from gis_files import scene_chips

from deep_pixel.chips.chip import label_chip
from deep_pixel.core.errors import DeepPixelError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = "chip_size=32, steps_per_epoch=2, lr_test_steps=0"


def train_cli(chips, output, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "deep_pixel", "train", "--input-training-data", str(chips),
                           "--output-model", output, "--max-epochs", "1", "--device", "cpu", "--backbone",
                           "resnet18", "--model-arguments", TINY], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("sweep2") / "chips", stride=128)


@pytest.mark.parametrize("output, words", [
    ("", "No output folder was given"),
    (".", "names no folder of its own"),
    ("..", "names no folder of its own"),
    ("m" * 250, "choose a shorter name"),
])
def test_an_output_folder_without_a_name_of_its_own_is_refused_before_training(chips, tmp_path, output, words):
    """'' trained, then failed renaming into '' and left a 150 MB '<cwd>.checkpoint' in the parent folder; '.'
    failed with 'Invalid argument'; a too long name failed after training, blaming a full disk."""
    cwd = tmp_path / "work" / "empty"
    cwd.mkdir(parents=True)
    proc = train_cli(chips, output, cwd)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and words in text, text
    assert "Traceback" not in text and "Unexpected error" not in text and "Epoch" not in text, text
    assert os.listdir(cwd) == [] and os.listdir(tmp_path / "work") == ["empty"]


def test_a_label_chip_with_differing_bands_is_refused():
    """Class values in bands 2-3 of a 3-band label chip trained silently on band 1 (all 0)."""
    same = np.stack([np.full((4, 4), 2, np.uint8)] * 3)
    assert label_chip(same, "labels/a.tif").max() == 2                 # copies of one band are accepted
    differing = same.copy()
    differing[0] = 0
    with pytest.raises(DeepPixelError, match=r"labels/b.tif has 3 bands that differ.*gdal_translate -b"):
        label_chip(differing, "labels/b.tif")


def test_labels_only_over_nodata_do_not_train_silently(chips, tmp_path):
    """Every labelled pixel nodata in its image chip (chips of another tool): training 'succeeded' on zeroed
    inputs; now those labels are ignored, and with none left the error says why."""
    bad = tmp_path / "chips"
    shutil.copytree(chips, bad)
    for name in os.listdir(bad / "images"):
        with rasterio.open(bad / "labels" / name) as lab:
            labelled = lab.read(1) > 0
        with rasterio.open(bad / "images" / name, "r+") as img:
            data = img.read()
            data[:, labelled] = img.nodata if img.nodata is not None else 0
            if img.nodata is None:
                img.nodata = 0
            img.write(data)
    proc = train_cli(bad, str(tmp_path / "model"), tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "No labelled pixel of the measured chips counts" in text, text
    assert "Traceback" not in text and not (tmp_path / "model").exists()


def test_a_raster_of_another_scale_is_warned_not_classified_silently(scene, trained_scene_model, tmp_path):
    """The same scene as reflectance-like floats (values / 1000) classified with no word, nearly all one class."""
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.classify.run import classify
    from deep_pixel.core.progress import RecordingProgress
    with rasterio.open(scene.image) as src:
        profile = dict(src.profile, dtype="float32")
        data = src.read().astype("float32") / 1000
    scaled = str(tmp_path / "scaled.tif")
    with rasterio.open(scaled, "w", **profile) as dst:
        dst.write(data)
    words = "values are far from the training data's"
    for image, warned in ((scene.image, False), (scaled, True)):
        progress = RecordingProgress()
        classify(image, trained_scene_model, str(tmp_path / f"c{int(warned)}.tif"), ClassifyOptions(device="cpu"),
                 progress)
        said = [m for m in progress.messages if words in m]
        assert bool(said) == warned, progress.messages
    assert "same product and scale" in said[0] and "band 1: median" in said[0], said


@pytest.mark.parametrize("path", ["../outside/images/zz.tif", "/etc/passwd"])
def test_a_map_line_pointing_outside_the_folder_is_named_as_written(chips, tmp_path, path):
    """The error named a path inside the folder that the user never wrote ('.../chips/etc/passwd is missing')."""
    from deep_pixel.chips.reader import read_folder
    copy = tmp_path / "chips"
    shutil.copytree(chips, copy)
    lines = (copy / "map.txt").read_text().splitlines()
    lines[0] = path + " " + lines[0].split()[1]
    (copy / "map.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DeepPixelError, match=f"map.txt lists {path}, outside the chips folder"):
        read_folder(str(copy))


def test_chips_of_several_data_types_are_warned(chips, tmp_path):
    """Some chips rescaled to 8 bits beside the original 16-bit ones trained without a word."""
    from deep_pixel.chips.reader import read_folder
    from deep_pixel.core.progress import RecordingProgress
    copy = tmp_path / "chips"
    shutil.copytree(chips, copy)
    first = copy / "images" / sorted(os.listdir(copy / "images"))[0]
    with rasterio.open(first) as src:
        profile, data = dict(src.profile, dtype="uint8"), src.read()
    with rasterio.open(first, "w", **profile) as dst:
        dst.write((data // 64).astype("uint8"))
    progress = RecordingProgress()
    read_folder(str(copy), progress)
    assert any("several data types (1 uint8" in m for m in progress.messages), progress.messages
    quiet = RecordingProgress()
    read_folder(str(chips), quiet)
    assert not any("several data types" in m for m in quiet.messages)


def _with_metadata(chips, tmp_path, **changes):
    import json
    copy = tmp_path / "chips"
    shutil.copytree(chips, copy)
    meta = json.loads((copy / "deep_pixel_export.json").read_text())
    meta.update(changes)
    (copy / "deep_pixel_export.json").write_text(json.dumps(meta))
    return copy


def test_metadata_bands_beyond_the_source_are_refused_before_training(chips, tmp_path):
    """A hand-edited 'bands' naming band 9 of a 4-band source trained, and only Classify said it."""
    from deep_pixel.chips.reader import read_folder
    copy = _with_metadata(chips, tmp_path, bands=[1, 2, 3, 9])
    with pytest.raises(DeepPixelError, match=r"'bands' \[1, 2, 3, 9\] names band 9, but its source raster has 4"):
        read_folder(str(copy))


def test_metadata_bands_that_do_not_fit_the_chips_are_named(chips, tmp_path):
    from deep_pixel.chips.reader import read_folder
    from deep_pixel.core.progress import RecordingProgress
    progress = RecordingProgress()
    data = read_folder(str(_with_metadata(chips, tmp_path, bands=[2, 3])), progress)
    assert data.bands == [1, 2, 3, 4]
    assert any("'bands' [2, 3] does not list one band number per chip band (4)" in m for m in progress.messages)


def test_training_calls_a_pixel_nodata_as_export_and_classify_do():
    """Training ignored a label only where every band held the nodata value; Export and Classify call a pixel
    nodata when any band does, so a foreign chip's partly-nodata pixels trained on values Classify never sees."""
    from deep_pixel.chips.chip import valid_pixels
    from deep_pixel.io.raster import valid_mask
    image = np.array([[[0, 5, 0, 7]], [[3, 0, 0, 2]]], dtype=np.uint16)       # 2 bands, 1 x 4 pixels
    assert valid_pixels(image, 0).tolist() == [[False, False, False, True]]
    assert np.array_equal(valid_pixels(image, 0), valid_mask(image, 0))
    floats = image.astype(np.float32)
    floats[1, 0, 3] = np.nan
    assert valid_pixels(floats, None).tolist() == [[True, True, True, False]]
