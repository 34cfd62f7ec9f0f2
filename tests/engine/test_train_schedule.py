"""Issue 16: the schedule follows the plateau and TIME_LIMIT, semi-supervision from unlabelled pixels,
spectral indices from band names. Real (tiny) trainings on chips of the synthetic scene."""
import json
import os
import time

import numpy as np
import pytest
import torch

from deep_pixel.core.progress import RecordingProgress
from deep_pixel.train.augment import IGNORE_INDEX
from deep_pixel.train.best import BestEpoch
from deep_pixel.train.budget import FLOOR, Budget
from deep_pixel.train.indices import band_role, spectral_indices
from deep_pixel.train.loop import train_model
from deep_pixel.train.options import TrainOptions
from deep_pixel.train.semi import Consistency
from gis_files import scene_chips


def options(**kw):
    args = dict({"chip_size": 32, "steps_per_epoch": 3, "lr_test_steps": 0}, **kw.pop("model_arguments", {}))
    base = dict(backbone="resnet18", batch_size=4, learning_rate=3e-3, device="cpu", model_arguments=args)
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def chips(scene, tmp_path_factory):
    return scene_chips(scene, tmp_path_factory.mktemp("schedule") / "chips", stride=64)


def test_budget_warms_up_decays_to_the_floor_and_anneals():
    b = Budget(100, None, 0.1)
    assert b.factor(0) < 0.2 and b.factor(10) == pytest.approx(1.0)
    assert b.factor(55) == pytest.approx(FLOOR + (1 - FLOOR) * 0.5) and b.factor(100) == pytest.approx(FLOOR)
    assert not b.done(99) and b.done(100)
    assert b.anneal(30, 20) and not b.anneal(31, 20)          # once only
    assert b.fraction(30) == pytest.approx(0.3) and b.fraction(50) == 1.0 and b.done(50)
    assert b.steps_left(40) == 10
    late = Budget(100, None, 0.1)
    assert not late.anneal(85, 20)                            # near the end: no annealing, it stops


def test_budget_in_time_decays_by_the_clock():
    b = Budget(10_000, 1.0, 0.05, start=time.monotonic() - 45)     # 45 s of a 60 s limit spent
    assert b.fraction(10) == pytest.approx(0.75, abs=0.01) and not b.out_of_time()
    assert b.factor(10) < 0.2
    assert b.eta(10, 0, time.monotonic() - 45) <= 15.1
    untimed = Budget(10_000, 1.0, 0.05, timed=False, start=time.monotonic() - 45)
    assert untimed.fraction(10) == pytest.approx(0.001)        # steps only (MAX_EPOCHS given, or torchrun)
    assert Budget(10, 1.0, 0.05, start=time.monotonic() - 61).out_of_time()


def test_the_clock_takes_over_only_a_run_that_falls_behind():
    behind = Budget(100, 1.0, 0.05, timed=False, start=time.monotonic() - 30, lag=0.1)     # half the time spent
    assert behind.fraction(30) == pytest.approx(0.5, abs=0.01) and behind.taken_over == 30
    assert behind.fraction(31) == pytest.approx(0.5, abs=0.01)                              # it keeps the clock
    keeping_up = Budget(100, 1.0, 0.05, timed=False, start=time.monotonic() - 30, lag=0.1)
    assert keeping_up.fraction(45) == pytest.approx(0.45) and keeping_up.taken_over is None
    assert Budget(100, 1.0, 0.05, timed=False, start=time.monotonic() - 30).fraction(10) == pytest.approx(0.1)


def test_the_same_seed_under_a_time_limit_trains_the_same_model(chips, tmp_path):
    """MAX_EPOCHS empty, TIME_LIMIT set (the defaults): a run that keeps up with its limit never reads the clock for
    its learning rate, so a seed repeats it (while the clock steered, each run trained another model)."""
    def run(name):
        progress = RecordingProgress()
        r = train_model(chips, str(tmp_path / name), options(time_limit=3, model_arguments={
            "patience": 1, "min_improvement": 0.5, "anneal_epochs": 2}), progress)
        assert not any("behind its TIME_LIMIT" in m for m in progress.messages)
        return r.epochs_run, r.model.state_dict()
    (epochs_a, a), (epochs_b, b) = run("a"), run("b")
    assert epochs_a == epochs_b < 10
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_plateau_needs_a_clear_gain():
    net = torch.nn.Linear(1, 1)
    best = BestEpoch("valid_loss", patience=2, min_improvement=0.05)
    assert best.update(1, 1.0, {}, net)
    assert best.update(2, 0.99, {}, net) and best.stale == 1       # best weights kept, but no clear gain
    assert best.update(3, 0.98, {}, net) and best.exhausted
    best.restart()
    assert not best.exhausted and best.update(4, 0.90, {}, net) and best.stale == 0


def test_keep_last_keeps_every_sound_epoch_while_the_metric_still_decides_the_plateau():
    net = torch.nn.Linear(1, 1)
    best = BestEpoch("valid_loss", patience=2)
    best.keep_last = True
    assert best.update(1, 1.0, {"e": 1}, net) and best.improved
    assert best.update(2, 1.5, {"e": 2}, net) and not best.improved                 # worse, yet kept
    assert best.epoch == 2 and best.summary == {"e": 2} and best.value == 1.0 and best.stale == 1
    assert not best.update(3, float("nan"), {"e": 3}, net, sound=False) and best.epoch == 2
    assert best.exhausted                                                           # the plateau still counts


def test_plateau_keeps_the_average_of_the_epochs_since_the_metric_last_clearly_improved():
    net = torch.nn.Linear(1, 1, bias=False)
    best = BestEpoch("valid_loss", patience=5, min_improvement=0.1)
    best.keep_last = best.average_plateau = True

    def epoch(n, loss, weight, sound=True):
        net.weight.data.fill_(weight)
        return best.update(n, loss, {"e": n}, net, sound)
    assert epoch(1, 1.0, 10.0) and float(best.state["weight"]) == 10.0 and not best.averaged
    assert epoch(2, 0.5, 20.0) and float(best.state["weight"]) == 20.0            # a clear gain restarts it
    assert epoch(3, 0.49, 30.0) and float(best.state["weight"]) == 25.0            # 2% gain: the plateau
    assert epoch(4, 0.8, 40.0) and float(best.state["weight"]) == 30.0 and best.averaged
    assert not epoch(5, float("nan"), 1e6, sound=False) and float(best.state["weight"]) == 30.0
    assert best.describe() == "average of epochs 2-4" and best.epoch == 4 and best.value == 0.49
    assert epoch(6, 0.1, 50.0) and float(best.state["weight"]) == 50.0 and best.describe() == "last epoch 6"
    member = best.fresh()
    assert member.keep_last and member.average_plateau and member.state is None


def test_without_validation_chips_the_model_is_the_plateau_average(chips, tmp_path):
    progress = RecordingProgress()
    flat = {"min_improvement": 1.0}                  # no gain is clear after the first epoch: epochs 1-4 averaged
    r = train_model(chips, str(tmp_path / "m"), options(max_epochs=4, validation_percent=0, model_arguments=flat),
                    progress)
    assert r.log["kept_epoch"] == "average" and r.log["averaged_epochs"] == [1, 4] and r.best_epoch == 4
    assert any("written from the average" in m and "keep=auto" in m for m in progress.messages)
    assert any("(average of epochs 1-4, accuracy" in m for m in progress.messages)
    assert json.load(open(os.path.join(r.folder, "training_log.json")))["averaged_epochs"] == [1, 4]
    last = train_model(chips, str(tmp_path / "l"), options(max_epochs=4, validation_percent=0,
                                                           model_arguments=dict(flat, keep="last")), RecordingProgress())
    assert last.log["kept_epoch"] == "last" and last.best_epoch == last.epochs_run == 4
    kept = train_model(chips, str(tmp_path / "b"), options(max_epochs=4, validation_percent=0,
                                                           model_arguments={"keep": "best"}), RecordingProgress())
    assert kept.log["kept_epoch"] == "best"
    losses = [e["valid_loss"] for e in kept.log["epochs"]]
    assert kept.best_epoch == 1 + losses.index(min(losses))


def test_time_limit_stops_training_with_the_rate_decayed(chips, tmp_path):
    progress = RecordingProgress()
    r = train_model(chips, str(tmp_path / "m"), options(time_limit=0.1, stop_when_not_improving=False), progress)
    log = json.load(open(os.path.join(r.folder, "training_log.json")))
    assert log["stopped_by_time_limit"] and 1 <= r.epochs_run < 200
    assert log["epochs"][-1]["lr"] < 3e-3 * 0.5                      # MAX_EPOCHS empty: the clock drove the decay
    assert any("TIME_LIMIT of 0.1 min reached" in m for m in progress.messages)
    assert sum("training is behind its TIME_LIMIT of 0.1 min" in m for m in progress.messages) == 1
    assert any("ETA" in m for m in progress.messages)


def test_a_plateau_anneals_then_stops(chips, tmp_path):
    progress = RecordingProgress()
    r = train_model(chips, str(tmp_path / "m"), options(
        max_epochs=60, time_limit=0, model_arguments={"patience": 1, "min_improvement": 0.5, "anneal_epochs": 2}),
        progress)
    assert any("on a plateau" in m for m in progress.messages), progress.messages
    assert r.epochs_run < 60 and r.log["stopped_early"]
    assert r.log["epochs"][-1]["lr"] < 3e-3 * 0.1


def test_pseudo_labels_only_where_unlabelled_and_confident():
    semi = Consistency(threshold=0.9, seed=0)
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2, 0, 0] = logits[0, 1, 0, 1] = logits[0, 0, 1, 1] = 10.0       # confident at 3 pixels
    y = torch.tensor([[[IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX, 1]]])
    targets, confident = semi.targets(logits, y)
    assert targets.tolist() == [[[2, 1], [IGNORE_INDEX, 1]]] and semi.pseudo_pixels == 2
    x = torch.ones(2, 4, 16, 16)
    a, b = semi.strong(x), Consistency(seed=0).strong(x)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    semi.follow(0.1)
    assert semi.weight == 0
    semi.follow(0.5)
    assert semi.weight == 1.0


def test_semi_supervised_training_is_reproducible(chips, tmp_path):
    def run(name):
        r = train_model(chips, str(tmp_path / name), options(max_epochs=3, stop_when_not_improving=False,
                                                               model_arguments={"semi_supervised": True}))
        return r.log["epochs"][-1]["train_loss"], r.model.state_dict()
    (loss_a, a), (loss_b, b) = run("a"), run("b")
    assert np.isfinite(loss_a) and loss_a == loss_b
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_band_roles_from_names():
    assert [band_role(n) for n in ("B4_red", "B5_rededge1", "B8_nir", "B8A_nir_narrow", "Near infrared", "green",
                                   "band 4 reflectance", "Red Edge", "SWIR1")] == [
        "red", None, "nir", "nir", "nir", "green", None, None, None]
    s2 = ["B2_blue", "B3_green", "B4_red", "B5_rededge1", "B8_nir", "B11_swir1"]
    assert spectral_indices(s2, [1, 2, 3, 4, 5, 6], ["NDVI", "NDWI"]) == [("NDVI", [4, 2]), ("NDWI", [1, 4])]
    assert spectral_indices(s2, [3, 5], ["NDVI", "NDWI"]) == [("NDVI", [1, 0])]       # the model's band positions


@pytest.mark.parametrize("normalise, key", [("raster", "raster_band_stats"), ("chips", "band_stats")])
def test_inputs_are_normalised_with_the_whole_raster_by_default(chips, tmp_path, normalise, key):
    r = train_model(chips, str(tmp_path / "m"), options(max_epochs=1, model_arguments={"normalise": normalise}))
    emd = json.load(open(r.emd_path))
    meta = json.load(open(os.path.join(chips, "deep_pixel_export.json")))
    assert emd["InputTransform"]["mean"] == pytest.approx(meta[key]["mean"])
    assert emd["NormalizationStats"]["band_mean_values"] == pytest.approx(meta[key]["mean"])
