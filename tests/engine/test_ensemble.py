"""ENSEMBLE_MODELS: Classify Pixels averages the class probabilities of several models trained on the same export;
members that read other bands, statistics or classes are refused before anything is written."""
import json
import os
import shutil

import numpy as np
import pytest
import rasterio

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.core.progress import RecordingProgress


@pytest.fixture(scope="module")
def member(second_scene_model):
    return second_scene_model


def _classify(scene, model, out, **kw):
    path = str(out) + ".tif"
    progress = RecordingProgress()
    classify(scene.image, model, path, ClassifyOptions(device="cpu", precision="float32", output_confidence=str(out)
                                                       + "_conf.tif", **kw), progress)
    with rasterio.open(path) as a, rasterio.open(str(out) + "_conf.tif") as c:
        return a.read(1), c.read(1), progress


def test_the_average_of_two_models(scene, trained_scene_model, member, tmp_path):
    a, conf_a, _ = _classify(scene, trained_scene_model, tmp_path / "a")
    b, conf_b, _ = _classify(scene, member, tmp_path / "b")
    both, conf, progress = _classify(scene, trained_scene_model, tmp_path / "ab", ensemble_models=member)
    assert any("averaged with 1 more model(s)" in m for m in progress.messages)
    agree = (a == b) & (a > 0)
    assert 0 < agree.mean() < 1                          # the two models differ somewhere
    # where both pick a class, their average picks it too, with the mean of their probabilities for it
    assert (both[agree] == a[agree]).mean() > 0.999
    np.testing.assert_allclose(conf[agree], (conf_a[agree] + conf_b[agree]) / 2, atol=2e-3)
    assert not np.array_equal(both, a) and not np.array_equal(both, b)


def test_a_model_averaged_with_itself_is_the_model(scene, trained_scene_model, tmp_path):
    a, conf_a, _ = _classify(scene, trained_scene_model, tmp_path / "a")
    aa, conf_aa, _ = _classify(scene, trained_scene_model, tmp_path / "aa",
                               ensemble_models=f" {trained_scene_model} ;\n")
    assert np.array_equal(a, aa)
    np.testing.assert_allclose(conf_a, conf_aa, atol=1e-5)


def _edited_copy(emd_path, folder, edit):
    shutil.copytree(os.path.dirname(emd_path), folder)
    path = os.path.join(folder, os.path.basename(emd_path))
    emd = json.load(open(path))
    edit(emd)
    with open(path, "w") as f:
        json.dump(emd, f)
    return path


def _restat(emd):
    emd["InputTransform"]["mean"] = [m + 50.0 for m in emd["InputTransform"]["mean"]]


def _reclass(emd):
    first = emd["Classes"][0]
    first["Value" if "Value" in first else "value"] = 99


@pytest.mark.parametrize("edit, words", [(_restat, "band statistics differ"), (_reclass, "classes")])
def test_a_member_from_another_export_is_refused_before_writing(scene, trained_scene_model, tmp_path, edit, words):
    other = _edited_copy(trained_scene_model, str(tmp_path / "other"), edit)
    out = tmp_path / "out.tif"
    with pytest.raises(DeepPixelError, match="ENSEMBLE_MODELS") as e:
        classify(scene.image, trained_scene_model, str(out), ClassifyOptions(device="cpu", ensemble_models=other))
    assert words in str(e.value) and other in str(e.value) and "another SEED" in str(e.value)
    assert os.listdir(tmp_path) == ["other"]


def test_a_missing_member_is_named(scene, trained_scene_model, tmp_path):
    with pytest.raises(DeepPixelError, match="ENSEMBLE_MODELS: .*nowhere.emd does not exist"):
        classify(scene.image, trained_scene_model, str(tmp_path / "out.tif"),
                 ClassifyOptions(device="cpu", ensemble_models=str(tmp_path / "nowhere.emd")))
    assert not os.listdir(tmp_path)


def test_a_folder_of_images_is_averaged_as_one_raster_is(scene, trained_scene_model, member, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(scene.image, images / "scene.tif")
    both, _, _ = _classify(scene, trained_scene_model, tmp_path / "one", ensemble_models=member)
    alone, _, _ = _classify(scene, trained_scene_model, tmp_path / "alone")
    classify(str(images), trained_scene_model, str(tmp_path / "out"),
             ClassifyOptions(device="cpu", precision="float32", ensemble_models=member))
    with rasterio.open(tmp_path / "out" / "scene_classified.tif") as ds:
        folder = ds.read(1)
    assert np.array_equal(folder, both) and not np.array_equal(folder, alone)
