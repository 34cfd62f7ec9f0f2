"""MODEL_ARGUMENTS ``members``: several networks trained one after another, averaged in the one model written.

Each member is a whole training run (its own seed, weights, optimiser, schedule, best epoch and plateau) on the
same chips, split, batches and learning rate (the range test runs once). TIME_LIMIT is shared: each member gets
the time left divided by the members left, so one that stops early at its plateau leaves its time to the next.
The package holds one ``MemberAverage`` network (model/registry.py) whose output is the log of the members' mean
class probabilities, so Classify, ONNX Runtime, the .dlpk and Dask shards run it as any other network.
"""
from __future__ import annotations

import dataclasses
import time

from ..core.errors import DeepPixelError

SEED_STEP = 1000            # member k trains with SEED + 1000 k
# The members' weights together: a package keeps them in its .pth, again in the .onnx (which protobuf caps at
# 2 GiB) and both in the .dlpk (which Classify unpacks up to 4 GiB, model/dlpk.py).
MAX_WEIGHT_BYTES = 3 << 29


def plan(run) -> None:
    """How many members this run trains (run.members), said in the log."""
    run.members = run.options.arg("members")
    averaged = run.params.get("members") or 1
    if averaged > 1 and run.members > 1:
        raise DeepPixelError(f"PRETRAINED_MODEL already averages {averaged} networks: it is fine-tuned as one model. "
                             "Remove members from MODEL_ARGUMENTS (or set it to 1).")
    run.base_options, run.t_all = run.options, run.t_start     # (run.member and run.finished start in _Run)
    if run.members > 1:
        _check_size(run)
        minutes = run.options.time_limit
        run.progress.log(f"{run.members} networks are trained one after another (seeds {_seeds(run)}) and their class "
                         "probabilities averaged in the model (MODEL_ARGUMENTS members)" + (
                             f"; TIME_LIMIT {minutes:g} min is shared among them" if minutes else "")
                         + f". Classify runs each of them on every tile ({run.members}x the time of one network).")


def _check_size(run) -> None:
    """Refuse, before training, members whose weights together would not fit a package."""
    from ..model.registry import build_model
    net = build_model(run.model_type, run.backbone, run.transform.channels, len(run.class_values), **run.params)
    one = sum(p.numel() * p.element_size() for p in net.state_dict().values())
    if one * run.members > MAX_WEIGHT_BYTES:
        fit = max(1, MAX_WEIGHT_BYTES // one)
        raise DeepPixelError(f"members={run.members} networks of {run.model_type}/{run.backbone} weigh "
                             f"{one * run.members / 2**30:.1f} GiB together, more than a model package holds "
                             f"({MAX_WEIGHT_BYTES / 2**30:.1f} GiB): set members to {fit} or less, or choose a lighter "
                             "BACKBONE.")


def _seeds(run) -> str:
    return ", ".join(str(run.base_options.seed + SEED_STEP * k) for k in range(run.members))


def minutes_for(run) -> float | None:
    """The current member's share of TIME_LIMIT: the time left over the members left."""
    total = run.base_options.time_limit
    if not total or run.members == 1:
        return total
    left = total * 60.0 - (time.monotonic() - run.t_all)
    return max(left, 1.0) / (run.members - run.member) / 60.0


def limit_words(run) -> str:
    """'TIME_LIMIT of 8 min', or the current member's share of it."""
    if run.members == 1:
        return f"TIME_LIMIT of {run.options.time_limit:g} min"
    return f"member {run.member + 1}'s share of TIME_LIMIT ({run.budget.seconds / 60:.2g} min)"


def span(run, start: float, end: float) -> tuple:
    """The share of the progress bar between ``start`` and ``end`` that the current member trains in."""
    width = (end - start) / run.members
    return start + width * run.member, start + width * (run.member + 1)


def reuse_start(run) -> None:
    """A member after the first: the first one's learning rate, and its starting weights from PRETRAIN_ON_RASTER."""
    from .pretrained import load_matching
    if getattr(run, "pretrained_state", None) is not None:
        load_matching(run.model, run.pretrained_state, "self-supervised pretraining", run.progress)
    run.progress.log(f"Learning rate {run.lr:.2g} (the first member's).")


def later_seconds(run, eta: float) -> float:
    """Seconds the members after the current one are expected to take (each as long as this one in all)."""
    later = run.members - run.member - 1
    return later * (run.budget.elapsed() + eta) if later > 0 else 0.0


def _file(run) -> None:
    """Keep the member just trained (its best weights, summary and epochs)."""
    run.finished.append({"member": run.member + 1, "seed": run.options.seed, "best_epoch": run.best.epoch,
                         "epochs_run": len(run.epochs), "summary": run.best.summary, "state": run.best.state,
                         "epochs": run.epochs, "stopped_by_time_limit": run.stopped_by_time})


def next_member(run) -> None:
    """Keep the member just trained and set the run up for the next one (new seed, clock, best epoch, epochs)."""
    _file(run)
    run.member += 1
    options = run.options = dataclasses.replace(run.base_options, seed=run.base_options.seed + SEED_STEP * run.member)
    run.best = run.best.fresh()
    run.epochs, run.step, run.start_epoch, run.started = [], 0, 0, None
    run.stopped_early = run.stopped_by_time = False
    run.t_start = time.monotonic()
    run.progress.log(f"Member {run.member + 1} of {run.members} (seed {options.seed}).")


def combine(run) -> None:
    """run.model, run.best and run.epochs become the average of the members (its own measured summary)."""
    from ..model.registry import MemberAverage, build_model
    from .loop import _pct
    _file(run)
    one = {k: v for k, v in run.params.items() if k != "members"}
    nets = []
    for done in run.finished:
        net = build_model(run.model_type, run.backbone, run.transform.channels, len(run.class_values), **one)
        net.load_state_dict(done["state"])
        nets.append(net)
    run.model = MemberAverage(nets).to(run.device).eval()
    run.params = {**one, "members": len(nets)}
    run.epochs = [dict(e, member=d["member"]) for d in run.finished for e in d["epochs"]]
    run.stopped_by_time = any(d["stopped_by_time_limit"] for d in run.finished)
    run.best.epoch, run.best.summary = run.finished[-1]["best_epoch"], measure_final(run)
    run.progress.log("Members' best epochs: " + ", ".join(
        f"{d['best_epoch']} (mIoU {_pct(d['summary'].get('mean_iou'))})" for d in run.finished)
        + f"; averaged: mIoU {_pct(run.best.summary.get('mean_iou'))} on the same chips.")


def members_log(run) -> list:
    """training_log.json's ``members``: each member's seed, best epoch, epochs run and summary."""
    return [{k: d[k] for k in ("member", "seed", "best_epoch", "epochs_run", "stopped_by_time_limit")}
            | {"mean_iou": d["summary"].get("mean_iou"), "overall_accuracy": d["summary"].get("overall_accuracy")}
            for d in run.finished]


def measure_final(run) -> dict:
    """The summary of ``run.model`` as written (one network, members averaged, or an epoch average), with the
    batch-norm statistics that norm_statistics asks for (norm_stats.py; run.best.state takes them): the stepper
    measures, and the package pictures, that network from now on."""
    from .norm_stats import settle, wanted
    run.stepper.average, run.stepper.model = None, run.model
    if wanted(run):
        run.progress.report(0.95, "measuring batch-norm statistics")
    summary = settle(run, run.model, lambda: measure(run))
    run.best.state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    return summary


def measure(run) -> dict:
    """The confusion-matrix summary of the stepper's network on the chips that epochs are measured on."""
    from .epoch import measure_chips, measured_keys
    return measure_chips(run, run.loader.run(measured_keys(run)))[2].summary()
