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

from conftest import snapshot

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
    assert os.path.isfile(os.path.join(ckpt, "killed.emd")) and os.path.isfile(os.path.join(ckpt, "training_log.json"))
    assert not os.path.exists(os.path.join(ckpt, "killed.dlpk"))      # not zipped: that cost a quarter of training
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
    with pytest.raises(DeepPixelError, match="OUTPUT_MODEL .* would overwrite the input INPUT_TRAINING_DATA"):
        train_model(a, a, tiny())
    with pytest.raises(DeepPixelError, match="OUTPUT_MODEL .* contains the input INPUT_TRAINING_DATA"):
        train_model(a, str(tmp_path), tiny())
    with pytest.raises(DeepPixelError, match="OUTPUT_MODEL .* lies inside the input folder INPUT_TRAINING_DATA"):
        train_model(a, os.path.join(a, "model"), tiny())
    (tmp_path / "m.checkpoint").write_text("not a model")
    with pytest.raises(DeepPixelError, match="is not a checkpoint of the model 'm'.*Move or delete it"):
        train_model(a, str(tmp_path / "m"), tiny())
    assert (tmp_path / "m.checkpoint").read_text() == "not a model" and not (tmp_path / "m").exists()


def test_pretrained_model_inside_the_checkpoint_folder_is_an_input(tmp_path):
    """PRETRAINED_MODEL=<x>/m.checkpoint/m.emd with OUTPUT_MODEL=<x>/m: training would replace and then remove
    that checkpoint folder, the user's input model (it did: the model was gone after the run)."""
    a = write_chips(tmp_path / "a")
    train_model(a, str(tmp_path / "src" / "m"), tiny(max_epochs=1, validation_percent=0))
    os.rename(tmp_path / "src" / "m", tmp_path / "m.checkpoint")
    before = snapshot(tmp_path)
    for spelling in (tmp_path / "m.checkpoint" / "m.emd", tmp_path / "a" / ".." / "m.checkpoint" / "m.dlpk"):
        with pytest.raises(DeepPixelError, match=r"OUTPUT_MODEL's checkpoint folder .*m\.checkpoint .*contains the "
                                                 r"input PRETRAINED_MODEL .*choose another name for OUTPUT_MODEL"):
            train_model(a, str(tmp_path / "m"), tiny(max_epochs=1, validation_percent=0, backbone=None,
                                                     model_type=None, pretrained_model=str(spelling)))
        assert snapshot(tmp_path) == before                   # the model intact, nothing new
    link = tmp_path / "link"
    os.symlink(tmp_path, link)                               # through a symbolic link: the same folder
    with pytest.raises(DeepPixelError, match="contains the input PRETRAINED_MODEL"):
        train_model(a, str(link / "m"), tiny(pretrained_model=str(tmp_path / "m.checkpoint" / "m.emd")))
    with pytest.raises(DeepPixelError, match="OUTPUT_MODEL .* would overwrite the input PRETRAINED_MODEL"):
        train_model(a, str(tmp_path / "w.pth"), tiny(pretrained_model=str(tmp_path / "w.pth")))


def test_output_model_checks_use_the_shared_destination_rules(tmp_path, monkeypatch):
    """Write permission is checked before any work (simulated: root writes anywhere), a file in the way
    of the model folder is refused, and a chips folder inside the checkpoint folder is an input."""
    import deep_pixel.io.destinations as destinations
    a = write_chips(tmp_path / "a")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(DeepPixelError, match="OUTPUT_MODEL .*file exists and is a file"):
        train_model(a, str(tmp_path / "file"), tiny())
    b = write_chips(tmp_path / "m.checkpoint" / "images")
    with pytest.raises(DeepPixelError, match="OUTPUT_MODEL's checkpoint folder .* contains the input INPUT_TRAINING"):
        train_model(b, str(tmp_path / "m"), tiny())
    monkeypatch.setattr(destinations.os, "access", lambda path, mode: False)
    with pytest.raises(DeepPixelError, match="OUTPUT_MODEL .* cannot be written: no permission to write in"):
        train_model(a, str(tmp_path / "new" / "m"), tiny())
    assert sorted(os.listdir(tmp_path)) == ["a", "file", "m.checkpoint"]


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
