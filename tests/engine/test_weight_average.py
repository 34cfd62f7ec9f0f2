"""Issue 16: the running average of the weights is what epochs measure and what the package keeps.
Real (tiny) trainings on chips of the synthetic scene."""
import pytest
import torch

from deep_pixel.train.average import WeightAverage
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions
from gis_files import scene_chips


def test_the_average_follows_the_weights_with_a_warm_start_and_copies_counters():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    avg = WeightAverage(net, epochs=2, steps_per_epoch=10)           # decay 1 - 1/20
    assert avg.decay == pytest.approx(0.95)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
        net[1].num_batches_tracked.fill_(7)
    avg.update(net)                                  # first update keeps 2/11 of the old average
    assert torch.allclose(avg.model[0].weight, start + 9 / 11, atol=1e-6)
    assert int(avg.model[1].num_batches_tracked) == 7
    for _ in range(400):
        avg.update(net)
    assert torch.allclose(avg.model[0].weight, net[0].weight, atol=1e-4)
    assert not any(p.requires_grad for p in avg.model.parameters())
    assert net[0].weight.requires_grad                 # the trained network is untouched


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("average") / "chips", stride=64)


def _weights(chips, folder, average_epochs):
    args = {"chip_size": 32, "steps_per_epoch": 4, "lr_test_steps": 0, "semi_supervised": False,
            "average_epochs": average_epochs}
    opts = TrainOptions(backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", max_epochs=2,
                        stop_when_not_improving=False,
                        model_arguments=args)
    result = train_model(chips, str(folder), opts)
    return {k: v.clone() for k, v in result.model.state_dict().items()}, result


def test_the_package_holds_the_average_and_zero_turns_it_off(chips, tmp_path):
    plain, _ = _weights(chips, tmp_path / "plain", 0)
    latest, _ = _weights(chips, tmp_path / "latest", 1e-6)      # a time constant under one step: the last weights
    averaged, result = _weights(chips, tmp_path / "averaged", 1.0)
    floats = [k for k, v in plain.items() if v.is_floating_point()]
    assert all(torch.equal(plain[k], latest[k]) for k in floats)  # training itself is the same
    assert any(not torch.allclose(plain[k], averaged[k]) for k in floats)
    written = torch.load(next((tmp_path / "averaged").glob("*.pth")), map_location="cpu", weights_only=True)
    assert all(torch.equal(written[k], averaged[k]) for k in floats)
    assert result.summary["mean_iou"] is not None
