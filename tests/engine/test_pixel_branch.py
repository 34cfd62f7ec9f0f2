"""Issue 16: the per-pixel branch (1x1 convolutions on the input bands added to the decoder's scores):
auto by band count and pixel size, recorded in the .emd, rebuilt by Classify Pixels and the ONNX file, refused when
the .emd's value is not a channel count."""
import json

import numpy as np
import pytest
import rasterio
import torch

from deep_pixel.classify.options import ClassifyOptions
from deep_pixel.classify.run import classify
from deep_pixel.core.errors import DeepPixelError
from deep_pixel.model.package import load_package
from deep_pixel.model.registry import build_model
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import AUTO_PIXEL_BRANCH, TrainOptions, network_parameters
from gis_files import package_with_parameter, scene_chips

LIGHT = dict(encoder_depth=4, decoder_channels=[64, 32, 16, 16])


def test_auto_adds_the_branch_for_multispectral_rasters_only():
    auto = TrainOptions(device="cpu")
    assert "pixel_branch" not in network_parameters(auto, False, bands=3)[0]
    params, why = network_parameters(auto, False, bands=4)
    assert params["pixel_branch"] == AUTO_PIXEL_BRANCH and "auto: 4 bands" in why
    assert "pixel_branch" not in network_parameters(TrainOptions(model_arguments={"pixel_branch": 0}), False, 10)[0]
    assert network_parameters(TrainOptions(model_arguments={"pixel_branch": 8}), False, 3)[0]["pixel_branch"] == 8
    # auto also needs pixels of 2 m or more: a 4-band 0.5 m urban scene is about shapes, as the RGB aerial one is
    params, why = network_parameters(auto, False, bands=4, metres=0.5)
    assert "pixel_branch" not in params and "0.5 m pixels" in why
    assert network_parameters(auto, False, bands=4, metres=10.0)[0]["pixel_branch"] == AUTO_PIXEL_BRANCH
    assert network_parameters(TrainOptions(model_arguments={"pixel_branch": 8}), False, 4, 0.5)[0]["pixel_branch"] == 8


def test_pixel_height_in_metres_from_the_crs():
    from rasterio.crs import CRS

    from deep_pixel.io.raster import pixel_height_metres
    assert pixel_height_metres((30.0, 30.0), CRS.from_epsg(32615).to_wkt()) == 30.0
    assert pixel_height_metres((1e-5, 1e-5), CRS.from_epsg(4326).to_wkt()) == pytest.approx(1.1132)
    assert pixel_height_metres(None, None) is None


def test_the_branch_reaches_every_output_pixel_and_survives_a_state_dict_round_trip():
    torch.manual_seed(0)
    net = build_model("UNET", "resnet18", 5, 3, pixel_branch=8, **LIGHT).eval()
    plain = build_model("UNET", "resnet18", 5, 3, **LIGHT)
    assert not any(k.startswith("pixel_branch") for k in plain.state_dict())
    x = torch.randn(1, 5, 64, 64)
    with torch.no_grad():
        base = net(x)
        y = x.clone()
        y[0, :, 40, 21] += 3.0                       # one pixel changed: the branch changes that pixel's scores
        diff = (net(y) - base).abs()[0].sum(0)
    assert diff[40, 21] > 0 and diff[40, 21] >= diff.max() * 0.5
    again = build_model("UNET", "resnet18", 5, 3, pixel_branch=8, **LIGHT).eval()
    again.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert torch.equal(again(x), base)
    with pytest.raises(RuntimeError):
        plain.load_state_dict(net.state_dict())       # the branch's weights do not fit a network without it


@pytest.fixture(scope="module")
def branched_model(scene, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("branch")
    chips = scene_chips(scene, tmp / "chips")
    opts = TrainOptions(backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", max_epochs=1,
                        model_arguments={"chip_size": 32, "steps_per_epoch": 3, "lr_test_steps": 0})
    return train_model(chips, str(tmp / "model"), opts)


def test_a_trained_package_records_and_rebuilds_the_branch(branched_model, scene, tmp_path):
    with open(branched_model.emd_path) as f:
        params = json.load(f)["ModelParameters"]
    assert params["pixel_branch"] == AUTO_PIXEL_BRANCH          # the synthetic scene has 4 bands
    net = load_package(branched_model.emd_path).build("cpu")
    assert type(net).__name__.endswith("PixelBranch") and hasattr(net, "pixel_branch")
    outs = {}
    for runtime in ("torch", "onnxruntime"):
        if runtime == "onnxruntime":
            pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
        out = str(tmp_path / f"{runtime}.tif")
        classify(scene.image, branched_model.emd_path, out,
                 ClassifyOptions(device="cpu", runtime=runtime, precision="float32"))
        with rasterio.open(out) as ds:
            outs[runtime] = ds.read(1)
    if len(outs) == 2:
        assert np.mean(outs["torch"] == outs["onnxruntime"]) > 0.999


@pytest.mark.parametrize("value", [-1, 999, "wide", 2.5, True])
def test_an_emd_whose_pixel_branch_is_not_a_channel_count_is_refused(branched_model, tmp_path, value):
    bad = package_with_parameter(branched_model.emd_path, str(tmp_path), "pixel_branch", value)
    with pytest.raises(DeepPixelError, match="pixel_branch"):
        load_package(bad)
