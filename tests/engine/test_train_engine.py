"""Train Model engine: real (tiny) trainings on chips exported from the synthetic scene."""
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from deep_pixel.chips.reader import read_chip_folders
from deep_pixel.core.errors import Cancelled, DeepPixelError
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.model.package import load_package
from deep_pixel.model.registry import build_model
from deep_pixel.train.augment import AUGMENTATION_NAMES, IGNORE_INDEX, BatchMaker, flip_and_turn, label_lut
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import LIGHT_DECODER, TrainOptions, parse_model_arguments
from deep_pixel.train.step import SegmentationLoss, Stepper
from gis_files import scene_chips

TINY = {"chip_size": 32, "steps_per_epoch": 4}


def tiny(**kw):
    args = dict(TINY, **kw.pop("model_arguments", {}))
    base = dict(max_epochs=3, backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu",
                validation_percent=10.0, model_arguments=args)
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("train") / "chips")


@pytest.fixture(scope="module")
def trained(chips, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("model") / "landcover")
    progress = RecordingProgress()
    result = train_model(chips, out, tiny(max_epochs=4, stop_when_not_improving=False), progress)
    return result, progress


def test_loss_falls_on_a_fixed_batch(chips):
    torch.manual_seed(0)
    data = read_chip_folders([chips])
    from deep_pixel.core.inputs import InputTransform
    tf = InputTransform(data.band_stats["mean"], data.band_stats["std"])
    maker = BatchMaker(data.chips, tf, label_lut(data.schema.values), 32, 16, (), 0.02, seed=0)
    x, y = maker.sample(list(range(4)))
    model = build_model("UNET", "resnet18", 4, len(data.schema), **LIGHT_DECODER)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    stepper = Stepper(model, opt, SegmentationLoss(len(data.schema)), torch.device("cpu"), 4)
    losses = [stepper.step(lambda idx: (x, y), [0, 1, 2, 3]) for _ in range(12)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_flips_and_turns_move_image_and_target_together():
    image = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    target = image[0].astype(np.int64)                  # the target is band 0: it must follow every change
    seen = set()
    for seed in range(40):
        a, t = flip_and_turn(image, target, AUGMENTATION_NAMES, np.random.default_rng(seed))
        assert np.array_equal(a[0], t) and np.array_equal(a[1], t + 36)
        b, none = flip_and_turn(image, None, AUGMENTATION_NAMES, np.random.default_rng(seed))
        assert none is None and np.array_equal(a, b)      # an image alone gets the same change
        seen.add(a.tobytes())
    assert len(seen) == 8                                 # all 8 symmetries of the square occur
    same, _ = flip_and_turn(image, target, (), np.random.default_rng(0))
    assert same is image


def test_unlabelled_chip_contributes_nothing(chips):
    torch.manual_seed(0)
    model = build_model("UNET", "resnet18", 4, 5, **LIGHT_DECODER).eval()
    x = torch.randn(2, 4, 32, 32)
    target = torch.randint(0, 5, (2, 32, 32))
    target[1] = IGNORE_INDEX                                  # the second chip: all unlabelled
    for loss_fn in (SegmentationLoss(5), SegmentationLoss(5, [1, 2, 1, 1, 3], focal=True, dice_fraction=0.3)):
        model.zero_grad()
        loss_fn(model(x[1:]), target[1:]).backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(float(g.abs().max()) == 0.0 for g in grads)
        with torch.no_grad():
            both, alone = loss_fn(model(x), target), loss_fn(model(x[:1]), target[:1])
        assert float(both) == pytest.approx(float(alone), rel=1e-5)
    with torch.no_grad():
        assert float(SegmentationLoss(5)(model(x[1:]), target[1:])) == 0.0


def test_training_writes_a_complete_package(trained):
    result, progress = trained
    files = sorted(os.listdir(result.folder))
    assert files == ["landcover.dlpk", "landcover.emd", "landcover.onnx", "landcover.pth", "model_metrics.html",
                     "training_log.json"]
    emd = json.load(open(result.emd_path))
    assert emd["OnnxFile"] == "landcover.onnx" and len(emd["OnnxSHA256"]) == 64
    with zipfile.ZipFile(os.path.join(os.path.dirname(result.emd_path), "landcover.dlpk")) as zf:
        assert "landcover.onnx" not in zf.namelist()         # rebuilt from the weights when needed
    assert oct(os.stat(result.emd_path).st_mode & 0o777) != "0o600"          # not private
    for key in ("Framework", "ModelConfiguration", "ModelType", "ModelFile", "ImageHeight", "ImageWidth",
                "ExtractBands", "Classes", "ModelName", "ModelParameters", "NormalizationStats", "DataRange",
                "ImageSpaceUsed", "MinCellSize", "MaxCellSize", "accuracy", "mIoU", "per_class_metrics", "CRS",
                "CellSize", "InputTransform", "SchemaVersion", "WeightsSHA256"):
        assert key in emd, key
    assert emd["ModelParameters"]["decoder_channels"] == [64, 32, 16, 16]      # CPU: light decoder recorded
    assert emd["ModelParameters"]["in_channels"] == 6                     # 4 bands + NDVI + NDWI
    assert [i["Name"] for i in emd["SpectralIndices"]] == ["NDVI", "NDWI"]
    assert emd["InputTransform"]["indices"] == [[3, 2], [1, 3]]                 # (nir, red), (green, nir)
    assert [c["Name"] for c in emd["Classes"]] == ["water", "forest", "cropland", "grassland", "built-up"]
    log = json.load(open(os.path.join(result.folder, "training_log.json")))
    assert len(log["epochs"]) == 4 and log["best_epoch"] == result.best_epoch
    assert log["epochs"][-1]["train_loss"] < log["epochs"][0]["train_loss"]
    html = open(os.path.join(result.folder, "model_metrics.html")).read()
    assert html.count("data:image/png;base64,") >= 1 and "<svg" in html and "IoU" in html
    assert any("ETA" in m and "loss" in m for m in progress.messages)
    assert any(m.startswith("Device: CPU as requested") for m in progress.messages)
    # spatially apart: no validation chip window overlaps a training chip window
    meta = json.load(open(os.path.join(emd["Training"]["training_folders"][0], "deep_pixel_export.json")))
    win = {"chips/" + c["image"]: (c["col"], c["row"], c["col"] + c["width"], c["row"] + c["height"]) for c in meta["chips"]}
    tr = [win[n] for n in log["split"]["train"]]
    va = [win[n] for n in log["split"]["valid"]]
    assert va and tr
    assert not any(a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3] for a in tr for b in va)


def test_package_loads_back_and_predicts_the_same(trained, chips):
    result, _ = trained
    pkg = load_package(result.folder)
    data = read_chip_folders([chips])
    x = torch.from_numpy(np.stack([pkg.transform.apply(c.image, c.valid) for c in data.chips[:3]]))
    with torch.no_grad():
        before = result.model(x)
        after = pkg.build("cpu")(x)
    assert torch.allclose(before, after, atol=1e-5)
    dl = load_package(os.path.join(result.folder, "landcover.dlpk"))
    assert dl.model_params == pkg.model_params and dl.num_classes == 5


def test_fine_tuning_from_the_package(trained, chips, tmp_path):
    result, _ = trained
    progress = RecordingProgress()
    tuned = train_model(chips, str(tmp_path / "tuned"),
                        tiny(max_epochs=1, pretrained_model=result.emd_path), progress)
    old = torch.load(os.path.join(result.folder, "landcover.pth"), weights_only=True)
    new = torch.load(os.path.join(tuned.folder, "tuned.pth"), weights_only=True)
    enc = [k for k in old if k.startswith("encoder.") and "num_batches" not in k]
    dec = [k for k in old if k.startswith("decoder.") and old[k].dtype.is_floating_point]
    assert all(torch.equal(old[k], new[k]) for k in enc)                 # frozen backbone kept
    assert any(not torch.equal(old[k], new[k]) for k in dec)             # the decoder learned
    assert any("Fine-tuning UNET/resnet18" in m for m in progress.messages)
    assert json.load(open(tuned.emd_path))["InputTransform"] == json.load(open(result.emd_path))["InputTransform"]


def test_options_ignore_classes_balancing_and_lr_test(chips, tmp_path):
    progress = RecordingProgress()
    r = train_model(chips, str(tmp_path / "m"),
                    tiny(max_epochs=1, learning_rate=None, validation_percent=0, monitor="miou",
                         model_arguments={"ignore_classes": [5], "class_balancing": True, "focal_loss": True,
                                          "dice_loss_fraction": 0.2, "lr_test_steps": 6}), progress)
    emd = json.load(open(r.emd_path))
    assert [c["Value"] for c in emd["Classes"]] == [1, 2, 3, 4]
    assert 1e-5 <= r.log["learning_rate"] <= 1e-2 and len(r.log["lr_range_test"]["rates"]) >= 5
    assert any("Class weights" in m for m in progress.messages)
    assert any("No separate validation chips" in m for m in progress.messages)


def test_cancel_leaves_no_model(chips, tmp_path):
    with pytest.raises(Cancelled):
        train_model(chips, str(tmp_path / "m"), tiny(), RecordingProgress(cancel_after=8))
    assert os.listdir(tmp_path) == []


def test_model_arguments_parsing_and_errors(chips, tmp_path):
    args = parse_model_arguments("class_balancing=true, ignore_classes=3,5, chip_size=32; decoder=light")
    assert args == {"class_balancing": True, "ignore_classes": [3, 5], "chip_size": 32, "decoder": "light"}
    with pytest.raises(DeepPixelError, match="unknown key 'colour'"):
        parse_model_arguments("colour=red")
    with pytest.raises(DeepPixelError, match="multiple of 16"):
        train_model(chips, str(tmp_path / "m"), tiny(model_arguments={"chip_size": 30}))
    with pytest.raises(DeepPixelError, match="decoder=light exists"):
        train_model(chips, str(tmp_path / "m"), tiny(model_type="FPN", model_arguments={"decoder": "light"}))
    assert not os.path.exists(tmp_path / "m")


def test_few_chips_train_on_every_chip_unless_told(chips, tmp_path):
    """VALIDATION_PERCENT left out: below 200 chips no chip is held out (measured: much better on sparse data)."""
    progress = RecordingProgress()
    result = train_model(chips, str(tmp_path / "m"), tiny(max_epochs=1, validation_percent=None), progress)
    log = json.load(open(os.path.join(result.folder, "training_log.json")))
    assert log["split"]["valid"] == [] and log["split"]["train"]
    assert any("every chip trains" in m for m in progress.messages)
