"""Reading chips folders: ours, the reference layout (backslashes, unsorted/repeated lines), errors;
and the spatial train/validation split."""
import json
import os
import random
import shutil

import numpy as np
import pytest

from deep_pixel.chips.reader import read_chip_folders, read_folder
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples
from deep_pixel.io.vector import read_vector
from deep_pixel.train.split import spatial_split


@pytest.fixture(scope="module")
def ours(scene, tmp_path_factory):
    vec = read_vector(scene.samples)
    out = str(tmp_path_factory.mktemp("chips") / "ours")
    export_training_data(scene.image, Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]],
                                              vec.crs_wkt), out,
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=32, stride_y=32), schema=scene.schema)
    return out


def reference_copy(ours, target):
    """The same chips as another tool writes them: no deep_pixel_export.json, Windows paths, shuffled."""
    shutil.copytree(ours, target)
    os.remove(os.path.join(target, "deep_pixel_export.json"))
    lines = open(os.path.join(target, "map.txt")).read().splitlines()
    lines = [ln.replace("/", "\\") for ln in lines] + [lines[0].replace("/", "\\")]
    random.Random(1).shuffle(lines)
    open(os.path.join(target, "map.txt"), "w").write("\r\n".join(lines) + "\r\n")
    emd = os.path.join(target, "esri_model_definition.emd")
    os.remove(emd)                      # classes then come from esri_accumulated_stats.json
    return target


def test_reference_layout_reads_like_ours(ours, tmp_path):
    a = read_folder(ours)
    b = read_folder(reference_copy(ours, str(tmp_path / "ref")))
    assert len(b.chips) == len(a.chips)
    assert [c.name.split("/", 1)[1] for c in b.chips] == [c.name.split("/", 1)[1] for c in a.chips]
    assert [(c.value, c.name) for c in b.schema] == [(c.value, c.name) for c in a.schema]
    np.testing.assert_allclose(b.band_stats["mean"], a.band_stats["mean"], rtol=0.02)
    np.testing.assert_allclose(b.band_stats["std"], a.band_stats["std"], rtol=0.05)
    assert all(c.box is not None and c.space.startswith("crs:") for c in b.chips)   # georeferenced footprints
    both = read_chip_folders([ours, str(tmp_path / "ref")])
    assert len(both.chips) == 2 * len(a.chips) and both.num_bands == 4


def test_missing_label_and_bad_folders_are_explained(ours, tmp_path):
    ref = reference_copy(ours, str(tmp_path / "ref"))
    os.remove(os.path.join(ref, "labels", "000000003.tif"))
    with pytest.raises(DeepPixelError, match=r"label chip .*000000003.tif listed in map.txt is missing"):
        read_folder(ref)
    with pytest.raises(DeepPixelError, match="map.txt is missing"):
        read_folder(str(tmp_path))
    with pytest.raises(DeepPixelError, match="does not exist"):
        read_folder(str(tmp_path / "nowhere"))


def test_conflicting_classes_between_folders(ours, tmp_path):
    other = str(tmp_path / "other")
    shutil.copytree(ours, other)
    meta = json.load(open(os.path.join(other, "deep_pixel_export.json")))
    meta["schema"]["classes"][0]["name"] = "lake"
    json.dump(meta, open(os.path.join(other, "deep_pixel_export.json"), "w"))
    with pytest.raises(DeepPixelError, match="Class value 1 is 'water' in one training folder and 'lake'"):
        read_chip_folders([ours, other])


def test_spatial_split_is_apart_and_reproducible(ours):
    data = read_folder(ours)
    s1 = spatial_split(data.chips, 20, seed=5)
    s2 = spatial_split(data.chips, 20, seed=5)
    s3 = spatial_split(data.chips, 20, seed=6)
    assert s1 == s2 and s1["valid"] != s3["valid"]
    assert len(s1["valid"]) >= 0.2 * len(data.chips) and s1["train"]
    for t in s1["train"]:
        for v in s1["valid"]:
            a, b = data.chips[t].box, data.chips[v].box
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    none = spatial_split(data.chips, 0, seed=5)
    assert none["valid"] == [] and len(none["train"]) == len(data.chips)


def test_chips_read_without_gdal_bindings_as_with_them(ours, monkeypatch):
    """A server with rasterio's wheel alone (no osgeo): chips are read through rasterio, the same pixels."""
    import sys

    from deep_pixel.chips.chip import read_pixels
    lines = open(os.path.join(ours, "map.txt")).read().split()
    image, label = (os.path.join(ours, p) for p in lines[:2])
    window = (5, 7, 20, 30)
    with_gdal = [read_pixels(p, "image", w) for p in (image, label) for w in (None, window)]
    monkeypatch.setitem(sys.modules, "osgeo", None)          # `from osgeo import gdal` raises ImportError
    without = [read_pixels(p, "image", w) for p in (image, label) for w in (None, window)]
    for a, b in zip(with_gdal, without):
        assert a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)
    assert without[1].shape[1:] == (20, 30)
    folder = read_folder(ours)
    assert folder.chips and folder.chips[0].read_image()[0].shape[0] == with_gdal[0].shape[0]
    with pytest.raises(DeepPixelError, match="Cannot read the image chip"):
        read_pixels(os.path.join(ours, "map.txt"), "image")


def test_an_export_with_fewer_chips_than_the_batch_still_trains_full_batches(scene, tmp_path):
    """Random crops: a chip drawn twice in a batch gives two examples, so BATCH_SIZE holds with 2 chips (until
    stop 29 the batch was capped at the number of chips: the 4-chip aerial export trained with batch 4)."""
    import glob

    from gis_files import scene_chips

    from deep_pixel.train.loop import train_model
    from deep_pixel.train.options import TrainOptions
    folder = scene_chips(scene, tmp_path / "chips", stride=192, size=192)
    chips = len(glob.glob(str(tmp_path / "chips" / "images" / "*")))
    assert 0 < chips < 6
    result = train_model([folder], str(tmp_path / "model"), TrainOptions(
        max_epochs=1, backbone="resnet18", batch_size=6, learning_rate=2e-3, device="cpu",
        model_arguments={"chip_size": 64, "steps_per_epoch": 2, "lr_test_steps": 0}))
    assert result.log["batch"] == 6
