"""Bad input and interruption for Train Model: clear errors, checkpoints, nothing half-written."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import rasterio
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from deep_pixel.chips.reader import read_chip_folders
from deep_pixel.core.errors import Cancelled, DeepPixelError
from deep_pixel.core.inputs import InputTransform
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.export.run import ExportOptions, export_training_data
from deep_pixel.export.samples import Samples
from deep_pixel.io.vector import read_vector
from deep_pixel.model.package import load_package
from deep_pixel.model.registry import build_model
from deep_pixel.train.augment import label_lut
from deep_pixel.train.checkpoint import checkpoint_path
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny(**kw):
    args = {"chip_size": 32, "steps_per_epoch": 2, **kw.pop("model_arguments", {})}
    base = dict(max_epochs=2, backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu",
                stop_when_not_improving=False, model_arguments=args)
    base.update(kw)
    return TrainOptions(**base)


class Reports(RecordingProgress):
    """RecordingProgress that also keeps the message of every report, in order."""

    def __init__(self, cancel_after=None):
        super().__init__(cancel_after)
        self.reports = []

    def report(self, fraction, message=None):
        super().report(fraction, message)
        self.reports.append(message or "")


def write_chips(folder, n=4, bands=3, size=32, labels=None, label_size=None, seed=0):
    """A reference-layout chips folder (map.txt, images/, labels/), no metadata: quick to make."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "images"))
    os.makedirs(os.path.join(folder, "labels"))
    lines = []
    for i in range(n):
        img = rng.integers(1, 1000, (bands, size, size)).astype("uint16")
        lab = labels if labels is not None else (1 + (np.arange(size)[None, :] >= size // 2)
                                                 * np.ones((size, 1), int)).astype("uint8")
        lh, lw = label_size or lab.shape
        for sub, arr in (("images", img), ("labels", np.asarray(lab, "uint8")[None, :lh, :lw])):
            with rasterio.open(os.path.join(folder, sub, f"{i:03d}.tif"), "w", driver="GTiff", count=arr.shape[0],
                               width=arr.shape[2], height=arr.shape[1], dtype=arr.dtype.name, crs="EPSG:32633",
                               transform=from_origin(1000 + 100 * i, 2000, 1, 1)) as dst:
                dst.write(arr)
        lines.append(f"images/{i:03d}.tif labels/{i:03d}.tif")
    with open(os.path.join(folder, "map.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(folder)


@pytest.fixture(scope="module")
def exported(scene, tmp_path_factory):
    vec = read_vector(scene.samples)
    out = str(tmp_path_factory.mktemp("reltrain") / "chips")
    export_training_data(scene.image, Samples(vec.geometries, [int(v) for v in vec.attributes["Classvalue"]],
                                              vec.crs_wkt), out,
                         ExportOptions(tile_size_x=64, tile_size_y=64, stride_x=64, stride_y=64), schema=scene.schema)
    return out


@pytest.fixture(scope="module")
def reference_run(exported, tmp_path_factory):
    """A complete run with the range test: where each report happens, and the finished folder."""
    parent = tmp_path_factory.mktemp("ref")
    progress = Reports()
    result = train_model(exported, str(parent / "model"),
                         tiny(learning_rate=None, model_arguments={"lr_test_steps": 5}), progress)
    return result, progress, parent


# -- 1. checkpoints ------------------------------------------------------------------------------

def test_completed_run_removes_its_checkpoint(reference_run):
    result, progress, parent = reference_run
    assert sorted(os.listdir(parent)) == ["model"]                       # no checkpoint, nothing hidden
    ckpt = checkpoint_path(result.folder)
    assert any(m.startswith("Checkpoint of epoch 1") and ckpt in m for m in progress.messages)
    assert "Checkpoint" not in json.load(open(result.emd_path))


def test_killed_training_keeps_a_loadable_checkpoint(exported, tmp_path):
    out = tmp_path / "killed"
    ckpt = checkpoint_path(str(out))
    proc = subprocess.Popen(
        [sys.executable, "-m", "deep_pixel", "--progress", "json", "train", "--input-training-data", exported,
         "--output-model", str(out), "--max-epochs", "50", "--no-early-stop", "--backbone", "resnet18",
         "--batch-size", "4", "--learning-rate", "0.003", "--device", "cpu",
         "--model-arguments", "chip_size=32, steps_per_epoch=2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not os.path.isdir(ckpt) and proc.poll() is None:
            time.sleep(0.05)
        assert os.path.isdir(ckpt), proc.communicate(timeout=5) if proc.poll() is not None else "no checkpoint in 90 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        stdout, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()                                  # the output never looks complete
    assert any(ckpt in line and "Checkpoint of epoch" in line for line in stdout.decode().splitlines())
    pkg = load_package(ckpt)                                 # hash, keys and weights all check out
    assert pkg.emd["Checkpoint"]["epoch"] >= 1 and pkg.emd["Checkpoint"]["complete"] is False
    assert os.path.isfile(os.path.join(ckpt, "killed.dlpk")) and os.path.isfile(os.path.join(ckpt, "training_log.json"))
    assert len(json.load(open(os.path.join(ckpt, "training_log.json")))["epochs"]) >= 1
    data = read_chip_folders([exported])
    x = torch.from_numpy(np.stack([pkg.transform.apply(c.image, c.valid) for c in data.chips[:2]]))
    with torch.no_grad():
        classes = np.asarray(pkg.class_values)[pkg.build("cpu")(x).argmax(1).numpy()]
    assert classes.shape == (2, 64, 64) and set(np.unique(classes)) <= set(pkg.class_values)


def test_error_after_an_epoch_keeps_the_checkpoint_and_says_where(tmp_path, monkeypatch):
    import deep_pixel.train.loop as train
    a = write_chips(tmp_path / "a")
    stale = tmp_path / "m.checkpoint"
    stale.mkdir()
    (stale / "m.emd").write_text("{}")                        # an interrupted earlier run's checkpoint

    def full_disk(target):
        raise DeepPixelError("Writing failed: disk full (simulated).")
    monkeypatch.setattr(train, "staged_folder", full_disk)
    progress = Reports()
    with pytest.raises(DeepPixelError, match="disk full"):
        train_model(a, str(tmp_path / "m"), tiny(max_epochs=1, validation_percent=0), progress)
    assert any("earlier checkpoint" in m and str(stale) in m for m in progress.messages)
    assert any(m.startswith("Warning: Training stopped before completing; the best model so far (epoch 1) is kept "
                            f"in {stale}") for m in progress.messages)
    assert not (tmp_path / "m").exists() and sorted(os.listdir(tmp_path)) == ["a", "m.checkpoint"]
    assert load_package(str(stale)).emd["Checkpoint"]["epoch"] == 1     # ours replaced the stale one


# -- 2. cancel at several points -----------------------------------------------------------------

@pytest.mark.parametrize("where", ["learning-rate test", "epoch 1/2 batch 1/", "epoch 1/2 validation 1/",
                                   "epoch 1: checkpoint written", "writing the model package"])
def test_cancel_leaves_no_output_and_no_checkpoint(exported, reference_run, tmp_path, where):
    _, ref, _ = reference_run
    n = next(i for i, m in enumerate(ref.reports) if m.startswith(where)) + 1
    progress = Reports(cancel_after=n)
    with pytest.raises(Cancelled):
        train_model(exported, str(tmp_path / "model"),
                    tiny(learning_rate=None, model_arguments={"lr_test_steps": 5}), progress)
    assert progress.reports[-1].startswith(where)            # it stopped where it was asked to
    assert os.listdir(tmp_path) == []
    if where.startswith(("epoch 1:", "writing")):            # a checkpoint existed and was removed
        assert any(m.startswith("Checkpoint of epoch 1") for m in progress.messages)


# -- 3. clear errors ------------------------------------------------------------------------------

def _fails(folders, out, match, **kw):
    with pytest.raises(DeepPixelError, match=match):
        train_model(folders, str(out), tiny(**kw))
    assert not os.path.exists(out) and not os.path.exists(checkpoint_path(str(out)))


def test_missing_and_mismatched_label_files(tmp_path):
    a = write_chips(tmp_path / "a")
    os.remove(os.path.join(a, "labels", "002.tif"))
    _fails(a, tmp_path / "m", r"label chip .*002\.tif listed in map\.txt is missing.*Re-export")
    b = write_chips(tmp_path / "b", label_size=(32, 16))
    _fails(b, tmp_path / "m", r"labels/000\.tif is 16x32 px but images/000\.tif is 32x32.*must match")


def test_missing_map_and_empty_folder(tmp_path):
    a = write_chips(tmp_path / "a")
    os.remove(os.path.join(a, "map.txt"))
    _fails(a, tmp_path / "m", "map.txt is missing. Run Export Training Data")
    (tmp_path / "empty").mkdir()
    _fails(str(tmp_path / "empty"), tmp_path / "m", "is empty. Give the output folder of Export Training Data")
    open(os.path.join(a, "map.txt"), "w").close()
    _fails(a, tmp_path / "m", "lists no chips")
    _fails(str(tmp_path / "nowhere"), tmp_path / "m", "does not exist")


def test_folders_with_different_band_counts(tmp_path):
    a, b = write_chips(tmp_path / "a", bands=3), write_chips(tmp_path / "b", bands=4)
    _fails([a, b], tmp_path / "m", "has 4 band.*has 3.*same bands")


def test_chip_size_must_fit_the_network(tmp_path):
    a = write_chips(tmp_path / "a")
    _fails(a, tmp_path / "m", r"chip_size 48 does not fit UNET with encoder depth 5: .*multiple of 32 px.*e\.g\. "
           r"32, 64, 128 or 256", model_arguments={"chip_size": 48, "decoder": "default"})
    _fails(a, tmp_path / "m", "multiple of 16", model_arguments={"chip_size": 40})


def test_all_labels_zero(tmp_path):
    a = write_chips(tmp_path / "a", labels=np.zeros((32, 32)))
    _fails(a, tmp_path / "m", r"No chip holds a labelled pixel \(every label is 0\)")
    b = write_chips(tmp_path / "b")
    _fails(b, tmp_path / "m", "nothing is left to train", model_arguments={"ignore_classes": [1, 2]})


def test_output_not_empty_equal_to_input_or_blocked_checkpoint(tmp_path):
    a = write_chips(tmp_path / "a")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DeepPixelError, match="is not empty.*nothing is overwritten"):
        train_model(a, str(tmp_path / "full"), tiny())
    assert os.listdir(tmp_path / "full") == ["keep.txt"]
    with pytest.raises(DeepPixelError, match="also an input"):
        train_model(a, a, tiny())
    with pytest.raises(DeepPixelError, match="contains the input"):
        train_model(a, str(tmp_path), tiny())
    (tmp_path / "m.checkpoint").write_text("not a model")
    with pytest.raises(DeepPixelError, match="is not a checkpoint of the model 'm'.*Move or delete it"):
        train_model(a, str(tmp_path / "m"), tiny())
    assert (tmp_path / "m.checkpoint").read_text() == "not a model" and not (tmp_path / "m").exists()


def test_pretrained_model_of_another_network_or_band_count(tmp_path):
    a = write_chips(tmp_path / "a", bands=3)
    base = train_model(a, str(tmp_path / "base"), tiny(max_epochs=1, validation_percent=0))
    _fails(a, tmp_path / "m", r"is UNET/resnet18 but MODEL_TYPE/BACKBONE are UNET/resnet34.*BACKBONE=resnet18",
           backbone="resnet34", pretrained_model=base.emd_path)
    _fails(a, tmp_path / "m", r"is UNET/resnet18 but MODEL_TYPE/BACKBONE are FPN/resnet18.*MODEL_TYPE=UNET",
           model_type="FPN", pretrained_model=base.emd_path)
    # MODEL_TYPE/BACKBONE left out (Processing and the CLI without them): the package's network is used
    tuned = train_model(a, str(tmp_path / "tuned"), tiny(max_epochs=1, validation_percent=0, backbone=None,
                                                         model_type=None, pretrained_model=base.emd_path))
    assert json.load(open(tuned.emd_path))["ModelParameters"]["backbone"] == "resnet18"
    b = write_chips(tmp_path / "b", bands=4)
    _fails(b, tmp_path / "m", r"takes 3 band\(s\) but the chips have 4", pretrained_model=base.emd_path)
    # an encoder weights file saved from another backbone is refused, not half-loaded
    enc = str(tmp_path / "resnet18_encoder.pth")
    torch.save(build_model("UNET", "resnet18", 3, 2).encoder.state_dict(), enc)
    _fails(a, tmp_path / "m", "does not fit BACKBONE resnet34.*another backbone", backbone="resnet34",
           pretrained_model=enc, max_epochs=1)


# -- 4. property-based: the chips reader on random and mutated metadata ----------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def base_folder(exported, tmp_path_factory):
    """A small copy of real exported chips (3 chips) with all metadata files."""
    folder = str(tmp_path_factory.mktemp("fuzzbase") / "chips")
    shutil.copytree(exported, folder)
    with open(os.path.join(folder, "map.txt")) as f:
        keep = f.read().splitlines()[:3]
    with open(os.path.join(folder, "map.txt"), "w") as f:
        f.write("\n".join(keep) + "\n")
    return folder


def _check_reads(folder):
    try:
        data = read_chip_folders([folder])
    except DeepPixelError:
        return
    assert data.chips and data.num_bands == data.chips[0].image.shape[0]
    assert all(isinstance(b, int) and b >= 1 for b in data.bands)
    tf = InputTransform(data.band_stats["mean"], data.band_stats["std"])
    assert np.isfinite(tf.apply(data.chips[0].image, data.chips[0].valid)).all()
    lut = label_lut(data.schema.values)
    for c in data.chips:
        assert set(np.unique(c.labels)) - {0} <= set(data.schema.values)
        lut[c.labels]
    assert all(isinstance(v, (int, float)) for v in data.tile_size)


def _mutate(value, path, new):
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, dict) and value:
        k = sorted(value)[key % len(value)]
        return {**value, k: _mutate(value[k], rest, new)}
    if isinstance(value, list) and value:
        i = key % len(value)
        return value[:i] + [_mutate(value[i], rest, new)] + value[i + 1:]
    return new


FUZZ = settings(max_examples=int(os.environ.get("DEEP_PIXEL_FUZZ_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MAP_TOKENS = st.sampled_from(["images/000000000.tif", "labels/000000000.tif", "../chips/map.txt", "/etc/passwd",
                              "C:\\data\\chips\\images\\000000000.tif", "images", "map.txt", "\x00", "./x", "..",
                              "labels/../../x.tif", "images/000000001.tif", "labels/000000001.tif"])


@FUZZ
@given(lines=st.lists(st.lists(MAP_TOKENS | st.text(max_size=12), max_size=3), max_size=5), raw=st.binary(max_size=40),
       use_raw=st.booleans())
def test_fuzz_map_txt(base_folder, lines, raw, use_raw):
    folder = _copy(base_folder)
    try:
        content = raw if use_raw else "\n".join(" ".join(parts) for parts in lines).encode("utf-8", "surrogatepass")
        with open(os.path.join(folder, "map.txt"), "wb") as f:
            f.write(content)
        _check_reads(folder)
    finally:
        shutil.rmtree(os.path.dirname(folder))


@FUZZ
@given(name=st.sampled_from(["deep_pixel_export.json", "esri_accumulated_stats.json", "esri_model_definition.emd"]),
       path=st.lists(st.integers(0, 50), max_size=4), new=json_values, whole=st.booleans(), garbage=st.binary(max_size=30))
def test_fuzz_metadata_json(base_folder, name, path, new, whole, garbage):
    folder = _copy(base_folder)
    try:
        target = os.path.join(folder, name)
        if whole and garbage:
            open(target, "wb").write(garbage)
        else:
            doc = json.load(open(target))
            open(target, "w").write(json.dumps(new if whole else _mutate(doc, path, new)))
        _check_reads(folder)
    finally:
        shutil.rmtree(os.path.dirname(folder))


def _copy(base):
    parent = tempfile.mkdtemp(prefix="fuzz-")
    folder = os.path.join(parent, "chips")
    shutil.copytree(base, folder)
    return folder


@pytest.mark.parametrize("name,content", [
    ("deep_pixel_export.json", b"[1]"), ("deep_pixel_export.json", b'{"chips": 5}'),
    ("deep_pixel_export.json", b'{"bands": 7}'), ("deep_pixel_export.json", b'{"source": [], "band_stats": []}'),
    ("deep_pixel_export.json", b'{"band_stats": {"count": 1, "mean": [1, 2, 3, 4]}}'),
    ("deep_pixel_export.json", b'{"chips": [{"image": "images/000000000.tif", "col": 0, "row": 0, "width": 0}]}'),
    ("deep_pixel_export.json", b"[" * 100000), ("esri_accumulated_stats.json", b'{"Classes": 3}'),
    ("map.txt", b"\xff\xfe"), ("map.txt", b"images/000000000.tif map.txt"),
    ("map.txt", b"/etc/passwd labels/000000000.tif"),
])
def test_crashes_found_by_fuzzing_stay_fixed(base_folder, name, content):
    """Inputs that crashed the reader (AttributeError, TypeError, UnicodeDecodeError, RasterioIOError...)."""
    folder = _copy(base_folder)
    try:
        with open(os.path.join(folder, name), "wb") as f:
            f.write(content)
        _check_reads(folder)
    finally:
        shutil.rmtree(os.path.dirname(folder))


# -- 5. training inputs (issue 14): ranges, class lists, links, diverging training ------------------

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


def test_label_value_missing_from_the_class_list_names_the_chip_and_value(base_folder, tmp_path):
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


def test_symbolic_links_out_of_the_chips_folder_are_refused(base_folder, tmp_path):
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
