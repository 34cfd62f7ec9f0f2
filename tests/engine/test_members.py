"""Issue 16: MODEL_ARGUMENTS members: several networks trained one after another (other seeds) and averaged in the
one model written; auto by pixel size; the package, Classify (torch and ONNX Runtime) and fine-tuning take it."""
import json
import os
import re

import numpy as np
import pytest
import rasterio
import torch

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.core.errors import DeepPixelError, Terminated
from deep_pixel.core.progress import RecordingProgress as Said
from deep_pixel.model.package import load_package
from deep_pixel.model.registry import build_model
from deep_pixel.train.checkpoint import checkpoint_path
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions
from gis_files import package_with_parameter, scene_chips

LIGHT = dict(encoder_depth=4, decoder_channels=[64, 32, 16, 16])
QUICK = {"chip_size": 32, "steps_per_epoch": 3, "lr_test_steps": 0}


def test_one_network_by_default_and_a_count_from_1_to_8():
    assert TrainOptions().arg("members") == 1
    assert TrainOptions(model_arguments={"members": 3}).arg("members") == 3
    for bad in (0, 9, -1):
        with pytest.raises(DeepPixelError, match="members"):
            TrainOptions(model_arguments={"members": bad}).validate()


def test_the_average_network_gives_the_mean_of_its_members_probabilities():
    torch.manual_seed(0)
    nets = [build_model("UNET", "resnet18", 4, 3, **LIGHT).eval() for _ in range(2)]
    both = build_model("UNET", "resnet18", 4, 3, members=2, **LIGHT).eval()
    for k, net in enumerate(nets):
        both.members[k].load_state_dict(net.state_dict())
    x = torch.randn(2, 4, 64, 64)
    with torch.no_grad():
        mean = (torch.softmax(nets[0](x), 1) + torch.softmax(nets[1](x), 1)) / 2
        assert torch.allclose(torch.softmax(both(x), 1), mean, atol=1e-5)
    assert all(k.startswith("members.") for k in both.state_dict())


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("members") / "chips")


@pytest.fixture(scope="module")
def averaged(chips, tmp_path_factory):
    said = Said()
    opts = TrainOptions(backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", max_epochs=1,
                        model_arguments={**QUICK, "members": 2})
    return train_model(chips, str(tmp_path_factory.mktemp("members") / "model"), opts, said), said


def test_two_members_are_trained_with_their_seeds_and_written_as_one_model(averaged):
    result, said = averaged
    with open(result.emd_path) as f:
        emd = json.load(f)
    assert emd["ModelParameters"]["members"] == 2
    log = result.log
    assert [m["seed"] for m in log["members"]] == [0, 1000]
    assert [e["member"] for e in log["epochs"]] == [1, 2]
    assert any(m.startswith("2 networks are trained one after another (seeds 0, 1000)") for m in said.messages)
    assert any(m.startswith("Member 2 of 2 (seed 1000)") for m in said.messages)
    assert any(m.startswith("Members' best epochs: 1 (mIoU") for m in said.messages)
    with open(result.folder + "/model_metrics.html") as f:
        assert "2 networks averaged (seed 0: best epoch 1 of 1, seed 1000: best epoch 1 of 1;" in f.read()
    net = load_package(result.emd_path).build("cpu")
    first, second = net.members[0].state_dict(), net.members[1].state_dict()
    assert any(not torch.equal(first[k], second[k]) for k in first)     # two different networks


def test_classify_runs_the_averaged_model_in_torch_and_onnx_runtime_alike(averaged, scene, tmp_path):
    result, _ = averaged
    outs = {}
    for runtime in ("torch", "onnxruntime"):
        if runtime == "onnxruntime":
            pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
        out = str(tmp_path / f"{runtime}.tif")
        classify(scene.image, result.emd_path, out, ClassifyOptions(device="cpu", runtime=runtime,
                                                                    precision="float32"))
        with rasterio.open(out) as ds:
            outs[runtime] = ds.read(1)
    assert len(np.unique(outs["torch"])) >= 2
    if len(outs) == 2:
        assert np.mean(outs["torch"] == outs["onnxruntime"]) > 0.999


def test_time_limit_is_shared_among_the_members(chips, tmp_path):
    said = Said()
    opts = TrainOptions(backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", time_limit=0.1,
                        stop_when_not_improving=False, model_arguments={**QUICK, "members": 2})
    result = train_model(chips, str(tmp_path / "m"), opts, said)
    shares = [m for m in said.messages if "share of TIME_LIMIT" in m and m.startswith("Stopping")]
    minutes = [float(re.search(r"TIME_LIMIT \(([0-9.]+) min\)", m).group(1)) for m in shares]
    assert len(shares) == 2 and shares[0].startswith("Stopping: member 1's share"), shares
    assert 0.03 < minutes[0] <= 0.05 and 0.03 < minutes[1] <= 0.1 - minutes[0] + 0.005, shares   # time left / members left
    assert result.log["stopped_by_time_limit"] and len(result.log["members"]) == 2


def test_fine_tuning_an_averaged_model_keeps_its_members_and_refuses_more(averaged, chips, tmp_path):
    result, _ = averaged
    tuned = train_model(chips, str(tmp_path / "tuned"), TrainOptions(
        pretrained_model=result.emd_path, batch_size=4, learning_rate=1e-3, device="cpu", max_epochs=1,
        model_arguments=QUICK))
    assert load_package(tuned.emd_path).model_params["members"] == 2
    assert "members" not in tuned.log                    # fine-tuned as one model: no networks trained apart
    with pytest.raises(DeepPixelError, match="already averages 2 networks"):
        train_model(chips, str(tmp_path / "more"), TrainOptions(
            pretrained_model=result.emd_path, device="cpu", max_epochs=1, model_arguments={**QUICK, "members": 2}))


@pytest.mark.parametrize("value", [0, 99, "three", 1.5])
def test_an_emd_whose_members_is_not_a_count_is_refused(averaged, tmp_path, value):
    bad = package_with_parameter(averaged[0].emd_path, str(tmp_path), "members", value)
    with pytest.raises(DeepPixelError, match="members"):
        load_package(bad)


def test_members_too_heavy_for_a_package_are_refused_before_training(chips, tmp_path):
    opts = TrainOptions(model_type="UNETPLUSPLUS", backbone="resnet101", device="cpu", max_epochs=1,
                        model_arguments={**QUICK, "members": 8, "decoder": "default"})
    with pytest.raises(DeepPixelError, match=r"members=8 networks of UNETPLUSPLUS/resnet101 weigh [0-9.]+ GiB "
                                              r"together, more than a model package holds .*set members to [1-5] or"):
        train_model(chips, str(tmp_path / "m"), opts)
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.checkpoint").exists()


def test_a_failed_onnx_export_keeps_the_trained_model(chips, tmp_path, monkeypatch):
    """The .onnx is an optional copy of the weights: its failure (e.g. protobuf's 2 GiB cap) is said, not fatal."""
    import deep_pixel.model.onnx_file as onnx_file

    def fail(*args, **kwargs):
        raise RuntimeError("Exporting model exceeds maximum protobuf size of 2GB")
    monkeypatch.setattr(onnx_file, "export_onnx", fail)
    said = Said()
    result = train_model(chips, str(tmp_path / "m"), TrainOptions(
        backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", max_epochs=1, model_arguments=QUICK),
        said)
    assert any(m.startswith("Warning: No .onnx written (exporting the network failed: RuntimeError: Exporting model exceeds")
               for m in said.messages), said.messages
    pkg = load_package(result.emd_path)
    assert "OnnxFile" not in pkg.emd and not (tmp_path / "m" / "m.onnx").exists()


def test_dask_workers_classify_the_averaged_model_as_one_process_does(averaged, scene, tmp_path):
    pytest.importorskip("distributed", reason="dask/distributed are not installed (make setup installs them)")
    options = dict(tile_size=128, padding=16, runtime="torch", precision="float32", device="cpu", block_strips=1)
    classify(scene.image, averaged[0].emd_path, str(tmp_path / "one.tif"), ClassifyOptions(**options))
    result = classify(scene.image, averaged[0].emd_path, str(tmp_path / "dask.tif"),
                      ClassifyOptions(workers=2, **options))
    with rasterio.open(tmp_path / "one.tif") as a, rasterio.open(tmp_path / "dask.tif") as b:
        assert result.device == "dask" and np.array_equal(a.read(1), b.read(1))


class StopInSecondNetwork(Said):
    """Stops the run as SIGTERM does (the checkpoint is kept) once the second network has written one."""

    def cancelled(self):
        start = next((i for i, m in enumerate(self.messages) if m.startswith("Member 2 of 2")), None)
        return start is not None and any("checkpoint written" in m for m in self.messages[start:])

    def check_cancelled(self):
        if self.cancelled():
            raise Terminated()


def test_a_run_stopped_in_its_second_network_resumes_that_network_as_the_first(chips, tmp_path):
    out = str(tmp_path / "m")
    opts = TrainOptions(backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", max_epochs=2,
                        stop_when_not_improving=False, model_arguments={**QUICK, "members": 2})
    with pytest.raises(Terminated, match="is kept in"):
        train_model(chips, out, opts, StopInSecondNetwork())
    kept = load_package(checkpoint_path(out))
    assert "members" not in kept.model_params and kept.emd["Checkpoint"]["epoch"] >= 1     # the second network
    said = Said()
    result = train_model(chips, out, opts, said)
    assert any(m.startswith("Resumed from the checkpoint of epoch") for m in said.messages), said.messages
    assert sum(m.startswith("Member 2 of 2") for m in said.messages) == 1                   # then trains one more
    assert [m["seed"] for m in result.log["members"]] == [0, 1000]
    assert load_package(result.emd_path).model_params["members"] == 2 and sorted(os.listdir(tmp_path)) == ["m"]
