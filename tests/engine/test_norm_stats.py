"""Issue 16 (stops 32-34): the network written gets batch-norm statistics of its own weights, measured again on
random crops of the source raster or on crops drawn as for training, the latter kept by auto only when they fit
the measured chips better (MODEL_ARGUMENTS norm_statistics). Real tiny trainings on chips of the
synthetic scene; the statistics are checked against the crops themselves."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from deep_pixel.chips.reader import read_chip_folders
from deep_pixel.core.progress import RecordingProgress
from deep_pixel.model.package import load_package
from deep_pixel.model.registry import build_model
from deep_pixel.train import norm_stats
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions
from deep_pixel.train.pretrain import Crops
from gis_files import chips_without_source, scene_chips

SEED = 3


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("norm_stats") / "chips", stride=64)


def _train(folder, out, statistics):
    progress = RecordingProgress()
    args = {"chip_size": 32, "steps_per_epoch": 3, "lr_test_steps": 0, "norm_statistics": statistics}
    result = train_model(folder, str(out), TrainOptions(backbone="resnet18", batch_size=4, learning_rate=3e-3,
                                                        device="cpu", max_epochs=2, seed=SEED,
                                                        model_arguments=args), progress)
    return result, "\n".join(progress.messages)


def test_the_network_written_has_the_statistics_of_its_weights_on_raster_crops(chips, scene, tmp_path):
    measured, log = _train(chips, tmp_path / "raster", "raster")
    as_trained, log_trained = _train(chips, tmp_path / "training", "training")
    assert f"measured again on {norm_stats.CROPS} random {norm_stats.SIZE} px crops of " \
           f"{os.path.basename(scene.image)}" in log
    assert "Batch-norm statistics" not in log_trained
    a, b = load_package(measured.emd_path), load_package(as_trained.emd_path)
    net_a, net_b = a.build("cpu").eval(), b.build("cpu").eval()
    sa, sb = net_a.state_dict(), net_b.state_dict()
    assert torch.equal(sa["encoder.conv1.weight"], sb["encoder.conv1.weight"])      # the same weights (MAX_EPOCHS)
    assert not torch.allclose(sa["encoder.bn1.running_mean"], sb["encoder.bn1.running_mean"])
    # the first layer's mean is the mean of its inputs over the crops read (same seed, same crops)
    crops = Crops(read_chip_folders([chips]), a.transform, norm_stats.SIZE, SEED)
    try:
        with torch.no_grad():
            means = [net_a.encoder.conv1(torch.from_numpy(crops.batch(norm_stats.BATCH))).mean((0, 2, 3))
                     for _ in range(norm_stats.CROPS // norm_stats.BATCH)]
    finally:
        crops.close()
    assert torch.allclose(sa["encoder.bn1.running_mean"], torch.stack(means).mean(0), atol=1e-4)
    # the .emd's metrics are those of the network written
    emd = json.load(open(measured.emd_path))
    assert emd["mIoU"] == pytest.approx(measured.summary["mean_iou"])


def test_without_the_source_raster_crops_of_the_chips_are_read(chips, tmp_path):
    result, log = _train(chips_without_source(chips, str(tmp_path)), tmp_path / "model", "raster")
    assert "measured again on 64 random 64 px crops of the" in log and "chips" in log     # the 64 px chips' side
    assert np.isfinite(result.summary["mean_iou"])


def test_a_frozen_encoder_keeps_its_statistics():
    net = build_model("UNET", "resnet18", 4, 3)
    encoder = {id(m) for m in net.encoder.modules()}
    frozen = norm_stats.layers(SimpleNamespace(frozen=True), net)
    trained = norm_stats.layers(SimpleNamespace(frozen=False), net)
    assert frozen and not any(id(m) in encoder for m in frozen)
    assert len(trained) > len(frozen) and any(id(m) in encoder for m in trained)


@pytest.fixture(scope="module")
def as_trained(chips, tmp_path_factory):
    result, log = _train(chips, tmp_path_factory.mktemp("as_trained") / "model", "training")
    return load_package(result.emd_path).build("cpu").state_dict(), result


@pytest.mark.parametrize("clear_gain, kept", [(-1.0, "crops"), (2.0, "training")])
def test_auto_keeps_crops_statistics_only_when_they_fit_the_measured_chips_better(chips, as_trained, tmp_path,
                                                                                   monkeypatch, clear_gain, kept):
    monkeypatch.setattr(norm_stats, "CLEAR_GAIN", clear_gain)     # any change kept / none kept
    result, log = _train(chips, tmp_path / "auto", "auto")
    state, trained = load_package(result.emd_path).build("cpu").state_dict(), as_trained[0]
    assert torch.equal(state["encoder.conv1.weight"], trained["encoder.conv1.weight"])
    same = torch.equal(state["encoder.bn1.running_mean"], trained["encoder.bn1.running_mean"])
    assert "crops of the training chips drawn as training draws them" in log
    if kept == "crops":
        assert not same and ": kept)" in log
    else:
        assert same and "Batch-norm statistics: training's kept" in log
        assert result.summary["mean_iou"] == pytest.approx(as_trained[1].summary["mean_iou"])
    assert json.load(open(result.emd_path))["mIoU"] == pytest.approx(result.summary["mean_iou"])


def test_crops_statistics_are_those_of_the_training_draw(chips, as_trained, tmp_path):
    result, log = _train(chips, tmp_path / "crops", "crops")
    state, trained = load_package(result.emd_path).build("cpu").state_dict(), as_trained[0]
    count = norm_stats.drawn(2 * 3, 4)                   # a short run reads the fewest: MAX_EPOCHS x steps, batch
    assert count == norm_stats.CROPS
    assert f"measured again on {count} 32 px crops of the training chips" in log
    assert torch.equal(state["encoder.conv1.weight"], trained["encoder.conv1.weight"])
    assert not torch.allclose(state["encoder.bn1.running_mean"], trained["encoder.bn1.running_mean"])
    assert state["encoder.bn1.num_batches_tracked"] == count // 4                 # batches of BATCH_SIZE 4


def test_a_longer_run_reads_more_crops_for_its_statistics_up_to_a_bound():
    assert norm_stats.drawn(100, 8) == 80                # a tenth of the crops trained on
    assert norm_stats.drawn(22 * 30, 8) == norm_stats.DRAWN == 512      # the aerial scene's shortest bench run
