"""Streamed training chips (issue 13 part 1) and resuming a run from its checkpoint.

The chips index holds no pixels; examples read through windows of the chip files equal the in-memory
ones; a DataLoader with worker processes gives the same batches as the training process alone; an
unreadable chip is one clear error; a rerun of an interrupted training resumes from its checkpoint.
"""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from deep_pixel.chips.dataset import ChipDataset, ChipLoader, training_keys, validation_keys
from deep_pixel.chips.reader import read_chip_folders
from deep_pixel.core.errors import DeepPixelError, Terminated
from deep_pixel.core.inputs import InputTransform
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples
from deep_pixel.io.vector import read_vector
from deep_pixel.model.package import load_package
from deep_pixel.train.augment import BatchMaker, augmentation_set, label_lut
from deep_pixel.train.checkpoint import checkpoint_path
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    vec = read_vector(scene.samples)
    out = str(tmp_path_factory.mktemp("stream") / "chips")
    export_training_data(scene.image, Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]],
                                              vec.crs_wkt), out,
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=32, stride_y=32), schema=scene.schema)
    return out


def maker_of(data, crop=32):
    tf = InputTransform(data.band_stats["mean"], data.band_stats["std"], [[3, 2]])
    return BatchMaker(data.chips, tf, label_lut(data.schema.values), crop, 16, augmentation_set("default"), 0.02)


def tiny(**kw):
    args = {"chip_size": 32, "steps_per_epoch": 3, **kw.pop("model_arguments", {})}
    base = dict(max_epochs=3, backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu",
                validation_percent=10.0, stop_when_not_improving=False, model_arguments=args)
    base.update(kw)
    return TrainOptions(**base)


def test_the_index_holds_no_pixels(chips):
    data = read_chip_folders([chips])
    assert data.chips and not any(c.kept for c in data.chips)
    size = len(pickle.dumps(data))                      # what rank 0 sends the other ranks
    assert size < 0.05 * data.pixel_bytes(), (size, data.pixel_bytes())
    assert data.pixels_per_class() == {v: n for v, n in data.pixels_per_class().items() if n}
    counts = {}
    for c in data.chips:                                # the class counts match the label chips
        for v, n in zip(*np.unique(c.labels, return_counts=True)):
            if v:
                counts[int(v)] = counts.get(int(v), 0) + int(n)
    assert counts == data.pixels_per_class()


def test_streamed_examples_equal_the_in_memory_ones(chips):
    streamed, held = read_chip_folders([chips]), read_chip_folders([chips])
    held.keep()
    a, b = ChipDataset(maker_of(streamed)), ChipDataset(maker_of(held))
    for key in [(0, (0, 0, 1, 0)), (5, (0, 0, 1, 1)), (17, (3, 0, 2, 9)), (5, None), (30, None)]:
        (xa, ya), (xb, yb) = a[key], b[key]
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    x, y = a[(5, None)]
    assert x.shape == (5, 64, 64) and y.shape == (64, 64)
    x, y = a[(5, (0, 0, 1, 1))]
    assert x.shape == (5, 32, 32) and (y >= 0).any()         # a crop with labelled pixels
    maker = maker_of(streamed)                # the learning-rate test's path draws with the maker's own generator
    xs, ys = maker.sample([1, 2, 3])
    assert xs.shape == (3, 5, 32, 32) and ys.dtype == np.int64


def test_workers_give_the_same_batches_as_the_training_process(chips):
    data = read_chip_folders([chips])
    keys = training_keys(list(range(12)), 4, 3, seed=7, epoch=2)
    alone, pool = ChipLoader(maker_of(data), 0), ChipLoader(maker_of(data), 2)
    try:
        for _ in range(2):                    # the workers stay alive from one pass to the next
            for (xa, ya), (xb, yb) in zip(alone.run(keys), pool.run(keys), strict=True):
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
        whole = list(pool.run(validation_keys([0, 1, 2], 2)))
        assert [tuple(x.shape) for x, _ in whole] == [(2, 5, 64, 64), (1, 5, 64, 64)]
    finally:
        pool.close()
        alone.close()


def test_a_chip_unreadable_during_training_is_one_clear_error(chips, tmp_path):
    import shutil
    folder = str(tmp_path / "chips")
    shutil.copytree(chips, folder)
    data = read_chip_folders([folder])
    broken = data.chips[3].image_path
    with open(broken, "wb") as f:
        f.write(b"not a tiff any more")
    for workers in (0, 1):
        loader = ChipLoader(maker_of(data), workers)
        try:
            with pytest.raises(DeepPixelError) as e:
                list(loader.run([[(2, (0, 0, 0, 0)), (3, (0, 0, 0, 1))]]))
        finally:
            loader.close()
        assert str(e.value).startswith(f"Cannot read the image chip {broken}: ")
        assert str(e.value).endswith("Re-export the chips or fix map.txt.") and "Traceback" not in str(e.value)


def test_training_streams_with_loader_workers(chips, tmp_path, monkeypatch):
    import deep_pixel.train.loop as loop
    import re
    progress = RecordingProgress()          # these chips (about 2 MiB) are below the budget: held in memory
    train_model(chips, str(tmp_path / "held"), tiny(max_epochs=1, model_arguments={"steps_per_epoch": 1}), progress)
    said = [m for m in progress.messages if m.startswith("Chips ")]
    assert re.match(r"Chips held in memory \(\d MiB of pixels; 256 MiB or more are read from disk\); 0 loader worker "
                    r"process\(es\) \((CPU|inside QGIS), chips are read in the training process", said[0]), said
    monkeypatch.setattr(loop, "KEEP_PIXELS_BELOW", 1)               # as if they were many: streamed
    progress = RecordingProgress()
    result = train_model(chips, str(tmp_path / "m"), tiny(max_epochs=1, model_arguments={"loader_workers": 1}),
                         progress)
    assert any(m.startswith("Chips read from disk for each example") and
               "1 loader worker process(es) (as requested)" in m for m in progress.messages)
    assert load_package(result.folder).num_classes == 5


class StopAfterCheckpoint(RecordingProgress):
    """Stops the run (as SIGTERM does: the checkpoint is kept) once the first checkpoint is written."""

    def cancelled(self):
        return any("checkpoint written" in m for m in self.messages)

    def check_cancelled(self):
        if self.cancelled():
            raise Terminated()


def _interrupted(chips, out, options):
    with pytest.raises(Terminated, match="is kept in"):
        train_model(chips, out, options, StopAfterCheckpoint())
    return load_package(checkpoint_path(out)).emd["Checkpoint"]["epoch"]


def test_a_rerun_resumes_from_the_checkpoint(chips, tmp_path):
    out = str(tmp_path / "m")
    args = {"chip_size": 64, "steps_per_epoch": 4, "lr_test_steps": 5}
    epoch = _interrupted(chips, out, tiny(learning_rate=None, model_arguments=args))
    assert epoch < 3
    progress = RecordingProgress()
    result = train_model(chips, out, tiny(learning_rate=None, device="auto",
                                          model_arguments={**args, "loader_workers": 0}), progress)
    resumed = [m for m in progress.messages if m.startswith("Resumed from the checkpoint of epoch")]
    assert resumed and resumed[0].startswith(f"Resumed from the checkpoint of epoch {epoch} in {checkpoint_path(out)}")
    assert not any("learning-rate test" in m or "range test picked" in m for m in progress.messages)
    trained = [int(m.split()[1].rstrip(":")) for m in progress.messages if m.startswith("Epoch ") and "train loss" in m]
    assert trained == list(range(epoch + 1, 4))          # only the epochs after the checkpoint's
    log = json.load(open(os.path.join(result.folder, "training_log.json")))
    assert log["resumed_from_epoch"] == epoch and [e["epoch"] for e in log["epochs"]] == [1, 2, 3]
    assert log["lr_range_test"] and len(log["lr_range_test"]["rates"]) >= 5     # the first run's test, kept
    assert sorted(os.listdir(tmp_path)) == ["m"]         # the checkpoint it resumed from is gone


def test_a_rerun_with_other_options_starts_over(chips, tmp_path):
    out = str(tmp_path / "m")
    _interrupted(chips, out, tiny(model_arguments={"chip_size": 64, "steps_per_epoch": 4}))
    progress = RecordingProgress()
    train_model(chips, out, tiny(max_epochs=2, model_arguments={"chip_size": 64, "steps_per_epoch": 4}), progress)
    assert not any(m.startswith("Resumed") for m in progress.messages)
    assert any(f"An earlier checkpoint {checkpoint_path(out)}" in m and "made with other chips or options" in m
               for m in progress.messages)
    assert sorted(os.listdir(tmp_path)) == ["m"]
