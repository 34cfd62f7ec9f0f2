"""Train Model's inputs (issue 14): MODEL_ARGUMENTS ranges, label values missing from the class list,
symbolic links out of a chips folder, NaN pixels and weights, diverging training. Shares the
fixtures and helpers of test_reliability_train.py."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from test_reliability_train import (ROOT, Reports, _copy, _fails, base_folder, exported, tiny,  # noqa: F401
                                    write_chips)

from deep_pixel.chips.reader import read_chip_folders
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.model.package import load_package
from deep_pixel.model.registry import build_model
from deep_pixel.train.checkpoint import checkpoint_path
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions


def _no_leftovers(parent, keep):
    """Only ``keep`` in ``parent``: no model folder, no checkpoint, no hidden .partial folder."""
    assert sorted(os.listdir(parent)) == sorted(keep)


@pytest.mark.parametrize("arguments,match", [
    ({"steps_per_epoch": -1}, r"steps_per_epoch=-1 is out of range; allowed: 0 to 100000"),
    ({"weight_decay": 2.0}, r"weight_decay=2\.0 is out of range; allowed: 0 to 1 \(AdamW weight decay\)"),
    ({"patience": 0}, r"patience=0 is out of range; allowed: 1 to 1000"),
    ({"warmup_fraction": 1.5}, r"warmup_fraction=1\.5 is out of range; allowed: 0 to 1"),
    ({"min_labelled_fraction": -0.1}, r"min_labelled_fraction=-0\.1 is out of range; allowed: 0 to 1"),
    ({"dice_loss_fraction": float("nan")}, r"dice_loss_fraction=nan is out of range; allowed: 0 to 1"),
    ({"chip_size": 8192}, r"chip_size=8192 is out of range; allowed: 0, or a multiple of 16 from 16 to 4096"),
    ({"chip_size": 40}, r"chip_size=40 is not a multiple of 16; allowed: 0, or a multiple of 16"),
    ({"lr_test_steps": -3}, r"lr_test_steps=-3 is out of range; allowed: 0 to 10000"),
    ({"unfreeze_after": -1}, r"unfreeze_after=-1 is out of range; allowed: 0 to 10000"),
    ({"ignore_classes": [2, 0]}, r"ignore_classes=0 is out of range; allowed: each 1 to 65535"),
    ({"decoder": "fast"}, r"decoder='fast' is not allowed; allowed: one of auto, light, default"),
    ({"augmentations": "hflip+spin"}, r"augmentations='hflip\+spin' is not allowed; allowed: any of hflip, vflip"),
    ({"patience": 2.5}, r"patience=2\.5 is not a whole number"),
    ({"class_balancing": "maybe"}, r"class_balancing='maybe' is not true or false"),
])
def test_model_arguments_out_of_range_name_the_key_and_range(tmp_path, arguments, match):
    """Each MODEL_ARGUMENTS key is checked against its declared range (steps_per_epoch=-1 used to train
    zero steps and package the untrained network as a success)."""
    a = write_chips(tmp_path / "a")
    with pytest.raises(DeepPixelError, match="MODEL_ARGUMENTS: " + match) as e:
        train_model(a, str(tmp_path / "m"), tiny(model_arguments=arguments))
    assert "Change " in str(e.value) and "or leave it out (default" in str(e.value)
    _no_leftovers(tmp_path, ["a"])


def test_model_arguments_text_and_json_are_checked_the_same_way(tmp_path):
    from deep_pixel.train.options import parse_model_arguments
    assert parse_model_arguments("steps_per_epoch=64.0, decoder=Light, ignore_classes=3 5") == {
        "steps_per_epoch": 64, "decoder": "light", "ignore_classes": [3, 5]}
    with pytest.raises(DeepPixelError, match=r"weight_decay=5\.0 is out of range; allowed: 0 to 1"):
        parse_model_arguments("weight_decay=5")
    options = tmp_path / "options.json"                 # the external engine's --options-json
    options.write_text(json.dumps({"model_arguments": {"patience": -2}}))
    from deep_pixel.core.params import from_json_file
    with pytest.raises(DeepPixelError, match=r"patience=-2 is out of range; allowed: 1 to 1000"):
        from_json_file(TrainOptions, str(options)).validate()


def test_model_arguments_out_of_range_on_the_command_line_is_one_line(tmp_path):
    a = write_chips(tmp_path / "a")
    proc = subprocess.run([sys.executable, "-m", "deep_pixel", "train", "--input-training-data", a,
                           "--output-model", str(tmp_path / "m"), "--model-arguments", "steps_per_epoch=-5"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "argument --model-arguments: MODEL_ARGUMENTS: steps_per_epoch=-5 is out of range; allowed: 0 to 100000" \
        in proc.stderr
    _no_leftovers(tmp_path, ["a"])


def _rewrite(path, change):
    """Rewrite a GeoTIFF chip with ``change(array)`` applied (same profile; float32 if it returns floats)."""
    with rasterio.open(path) as ds:
        profile, data = ds.profile, ds.read()
    data = change(data)
    profile.update(dtype=data.dtype.name)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _first_pair(folder):
    with open(os.path.join(folder, "map.txt")) as f:
        return f.readline().split()


def _with_value(value):
    def change(labels):
        labels = labels.copy()
        labels[0, :3, :3] = value
        return labels
    return change


def test_label_value_missing_from_the_class_list_names_the_chip_and_value(base_folder, tmp_path):  # noqa: F811 (the fixture imported above)
    folder = _copy(base_folder)
    try:
        _, label = _first_pair(folder)
        _rewrite(os.path.join(folder, label), _with_value(9))
        listed = ", ".join(f"{c['value']} {c['name']}" for c in json.load(
            open(os.path.join(folder, "deep_pixel_export.json")))["schema"]["classes"])
        with pytest.raises(DeepPixelError) as e:
            train_model(folder, str(tmp_path / "m"), tiny())
        assert str(e.value) == (
            f"The label chip {os.path.join(folder, label)} holds the class value 9, which is not in the chips "
            f"folder's class list (deep_pixel_export.json: {listed}). Export the chips again with a class schema "
            f"that has class 9, or add it to the class list in {os.path.join(folder, 'deep_pixel_export.json')}.")
        assert os.listdir(tmp_path) == []
        os.remove(os.path.join(folder, "deep_pixel_export.json"))       # the reference layout: its .emd lists them
        with pytest.raises(DeepPixelError, match=r"holds the class value 9, which is not in the chips folder's class "
                                                 r"list \(esri_model_definition\.emd: "):
            read_chip_folders([folder])
        os.remove(os.path.join(folder, "esri_model_definition.emd"))
        os.remove(os.path.join(folder, "esri_accumulated_stats.json"))
        assert 9 in read_chip_folders([folder]).schema.values           # no class list: classes are the values seen
    finally:
        shutil.rmtree(os.path.dirname(folder))


def test_symbolic_links_out_of_the_chips_folder_are_refused(base_folder, tmp_path):  # noqa: F811 (the fixture imported above)
    folder = _copy(base_folder)
    outside = tmp_path / "outside"
    outside.mkdir()
    try:
        image, _ = _first_pair(folder)
        link = os.path.join(folder, image)
        os.rename(link, outside / "chip.tif")
        os.symlink(outside / "chip.tif", link)
        with pytest.raises(DeepPixelError) as e:
            train_model(folder, str(tmp_path / "m"), tiny())
        assert str(e.value) == (
            f"{link} is a symbolic link to {outside / 'chip.tif'}, outside the chips folder {folder}: chips are read "
            "only from inside it. Copy the files into the folder instead of linking them, or remove that line from "
            "map.txt.")
        _no_leftovers(tmp_path, ["outside"])
        os.remove(link)                                               # a link that stays inside is fine
        os.rename(outside / "chip.tif", os.path.join(folder, "kept.tif"))
        os.symlink(os.path.join("..", "kept.tif"), link)
        assert len(read_chip_folders([folder]).chips) == 3
        labels = os.path.join(folder, "labels")                       # a linked folder is refused too
        os.rename(labels, outside / "labels")
        os.symlink(outside / "labels", labels)
        with pytest.raises(DeepPixelError, match=f"^{labels} is a symbolic link to {outside / 'labels'}, outside "
                                                 "the chips folder"):
            read_chip_folders([folder])
    finally:
        shutil.rmtree(os.path.dirname(folder))


def test_nan_pixels_do_not_poison_the_band_statistics(tmp_path):
    a = write_chips(tmp_path / "a")
    finite = read_chip_folders([a]).band_stats

    def with_nan(image):
        image = image.astype("float32")
        image[:, 0, :] = np.nan
        image[1, 5, 5] = np.inf
        return image
    for name in sorted(os.listdir(os.path.join(a, "images"))):
        _rewrite(os.path.join(a, "images", name), with_nan)
    data = read_chip_folders([a])
    assert np.isfinite(data.band_stats["mean"]).all() and np.isfinite(data.band_stats["std"]).all()
    assert data.band_stats["count"] < finite["count"]                  # NaN/inf pixels count as nodata
    assert not data.chips[0].valid[0].any() and not data.chips[0].valid[5, 5]


def test_pretrained_weights_that_are_not_numbers_are_refused(tmp_path):
    a = write_chips(tmp_path / "a")
    state = build_model("UNET", "resnet18", 3, 2).encoder.state_dict()
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    enc = str(tmp_path / "diverged.pth")
    torch.save(state, enc)
    _fails(a, tmp_path / "m", rf"The encoder weights file {enc} holds weights that are not numbers \(NaN or "
           r"infinite\) in 1 tensor\(s\), e\.g\. 'conv1\.weight': it comes from a training run that diverged\. Use "
           "another PRETRAINED_MODEL, or leave it empty.", pretrained_model=enc)


def test_validation_chips_without_a_labelled_pixel_are_refused(tmp_path):
    from deep_pixel.train.split import spatial_split
    a = write_chips(tmp_path / "a", n=6)
    valid = spatial_split(read_chip_folders([a]).chips, 50, 0)["valid"]
    for i in valid:
        _rewrite(os.path.join(a, "labels", f"{i:03d}.tif"), np.zeros_like)
    _fails(a, tmp_path / "m", rf"None of the {len(valid)} validation chips holds a labelled pixel of a class that is "
           "trained.*Raise VALIDATION_PERCENT, or set it to 0", validation_percent=50)


def _diverging(epochs, steps, learning_rate=9.9, warmup=0.0):
    """An absurd learning rate with full weight decay: each step multiplies every weight by 1 - rate."""
    return tiny(learning_rate=learning_rate, validation_percent=0, batch_size=2, max_epochs=epochs,
                model_arguments={"weight_decay": 1.0, "warmup_fraction": warmup, "steps_per_epoch": steps})


def test_training_whose_loss_becomes_nan_is_an_error_and_leaves_nothing(tmp_path):
    """Once every batch of an epoch has a NaN loss nothing can change any more: training stops there."""
    import re
    a = write_chips(tmp_path / "a")
    progress = Reports()
    with pytest.raises(DeepPixelError) as e:
        train_model(a, str(tmp_path / "m"), _diverging(6, 8), progress)
    message = str(e.value)
    found = re.match(r"Training diverged in epoch (\d): the loss of each of its 8 batches was not a number \(NaN or "
                     r"infinite\), so no weight could be updated any more \(the first loss that is not a number came "
                     r"at epoch \d, batch \d\); the model is not usable\. Lower LEARNING_RATE \(this run used 9\.9; "
                     r"try 0\.99, or leave it empty to have it found by a range test\), and check the image chips for "
                     r"extreme pixel values", message)
    assert found, message
    epochs = [m for m in progress.messages if m.startswith("Epoch ") and "train loss" in m]
    assert len(epochs) == int(found.group(1)) < 6 and "train loss nan" in epochs[-1]     # it stopped there
    assert not any(m.startswith("Checkpoint of epoch") for m in progress.messages)     # no epoch was sound
    _no_leftovers(tmp_path, ["a"])


def test_training_that_ends_diverged_keeps_only_the_sound_checkpoint(tmp_path):
    """Linear warm-up over the whole run: sound early epochs at small rates, then the weights blow up."""
    a = write_chips(tmp_path / "a")
    progress = Reports()
    options = _diverging(6, 3, learning_rate=5.0, warmup=1.0)
    with pytest.raises(DeepPixelError, match=r"^Training diverged by the end: the validation loss of the last epoch "
                                             r"\(6\) is .*Lower LEARNING_RATE \(this run used 5; try 0\.5"):
        train_model(a, str(tmp_path / "m"), options, progress)
    ckpt = checkpoint_path(str(tmp_path / "m"))
    _no_leftovers(tmp_path, ["a", "m.checkpoint"])
    kept = load_package(ckpt)
    epoch = kept.emd["Checkpoint"]["epoch"]
    assert any(m.startswith(f"Warning: Training stopped before completing; the best model so far (epoch {epoch}) is "
                            f"kept in {ckpt}") for m in progress.messages)
    log = json.load(open(os.path.join(ckpt, "training_log.json")))
    assert 0 < log["epochs"][epoch - 1]["valid_loss"] < 100                    # only a sound epoch is kept
    written = [int(m.split()[3]) for m in progress.messages if m.startswith("Checkpoint of epoch")]
    assert written and written[-1] == epoch < 6


def test_loss_that_is_not_a_number_from_the_first_batch_blames_the_inputs(tmp_path):
    """Band statistics beyond float32 (a damaged deep_pixel_export.json) make every input infinite."""
    a = write_chips(tmp_path / "a")
    with open(os.path.join(a, "deep_pixel_export.json"), "w") as f:
        json.dump({"band_stats": {"count": 4096, "mean": [1e39] * 3, "std": [290.0] * 3, "min": [1.0] * 3,
                                  "max": [999.0] * 3}}, f)
    _fails(a, tmp_path / "m", r"^Training failed in epoch 1: the loss of each of its 2 batches was not a number \(NaN "
           r"or infinite\), so no weight could be updated any more\. The loss was not a number from the very first "
           r"batch, before any weight changed, so the inputs or the starting weights are at fault: check the image "
           r"chips for extreme pixel values .* and the band statistics in the chips folder's deep_pixel_export\.json\.$",
           validation_percent=0, max_epochs=3)
    _no_leftovers(tmp_path, ["a"])
