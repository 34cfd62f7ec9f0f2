"""Resuming an interrupted training run from its best-so-far checkpoint.

Every checkpoint (``<output>.checkpoint``, see checkpoint.py) holds, beside the loadable package of
the best epoch so far, ``resume.pt``: a fingerprint of the run's chips and options, the epoch, the
epoch records so far, the learning rate (and its range test), the best value and summary, whether
the backbone is frozen, and the optimiser's state at the end of that epoch. A run started again with
the same chips and options (the same command, or torchrun restarting its workers after a failure)
finds it, loads the weights (from the package's ``.pth``, hash checked) and the optimiser state, and
continues with the next epoch: the learning-rate schedule goes on from there, and each epoch's
batches are the same as they would have been (their seeds come from the seed and the epoch). Epochs
after the best one that the interrupted run had trained are trained again.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os

from ..chips.layout import METADATA_FILES

RESUME_FILE = "resume.pt"
RESUME_VERSION = 1
_NOT_IN_FINGERPRINT = ("device",)                 # where it runs does not change what it trains
_ARGUMENTS_NOT_IN_FINGERPRINT = ("loader_workers",)


def fingerprint(folders, options) -> str:
    """SHA-256 of the options (except the device and loader workers) and of each chips folder's metadata."""
    h = hashlib.sha256()
    opts = {k: v for k, v in dataclasses.asdict(options).items() if k not in _NOT_IN_FINGERPRINT}
    opts["model_arguments"] = {k: v for k, v in (opts.get("model_arguments") or {}).items()
                               if k not in _ARGUMENTS_NOT_IN_FINGERPRINT}
    h.update(json.dumps(opts, sort_keys=True, default=str).encode())
    for folder in folders:
        folder = os.path.abspath(folder)
        h.update(folder.encode())
        for name in METADATA_FILES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    h.update(name.encode() + hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def capture(run, epoch: int) -> dict:
    """What a resumed run needs, at the end of ``epoch`` (the best so far; ``run.model`` holds its weights)."""
    return {"version": RESUME_VERSION, "fingerprint": run.fingerprint, "epoch": epoch,
            "epochs": copy.deepcopy(run.epochs), "lr": run.lr, "lr_test": run.lr_test,
            "best_value": run.best.value, "best_summary": run.best.summary, "frozen": run.frozen,
            "processes": run.dist.world, "optimizer": run.stepper.optimizer.state_dict()}


def save(folder: str, state: dict) -> None:
    import torch
    torch.save(state, os.path.join(folder, RESUME_FILE))


def load(checkpoint: str, expected: str) -> tuple:
    """(state with the best weights under "weights", None) when ``checkpoint`` resumes this run, else
    (None, why not)."""
    import torch

    from ..core.errors import Cancelled, DeepPixelError
    from ..model.package import load_package
    path = os.path.join(checkpoint, RESUME_FILE)
    if not os.path.isfile(path):
        return None, "it holds no resume state"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Cancelled:
        raise
    except Exception as e:      # damaged or from another torch: not resumable, never fatal
        return None, f"its resume state cannot be read ({type(e).__name__})"
    if not isinstance(state, dict) or state.get("version") != RESUME_VERSION:
        return None, "its resume state is of another version"
    if state.get("fingerprint") != expected:
        return None, "it was made with other chips or options"
    try:
        pkg = load_package(checkpoint)                 # checks the weights' hash
        state["weights"] = torch.load(pkg.weights_path, map_location="cpu", weights_only=True)
    except Cancelled:
        raise
    except (DeepPixelError, OSError, RuntimeError) as e:
        return None, f"its model cannot be loaded ({e})"
    return state, None


def apply(run, state: dict) -> None:
    """Put the resumed weights, optimiser state, epochs and best epoch into ``run``."""
    import torch
    run.model.load_state_dict(state["weights"])
    run.stepper.optimizer.load_state_dict(state["optimizer"])
    run.start_epoch = int(state["epoch"])
    run.epochs = list(state["epochs"])[:run.start_epoch]
    run.lr, run.lr_test = state["lr"], state["lr_test"]
    run.frozen = bool(state["frozen"])
    best = run.best
    best.value, best.epoch, best.summary, best.stale = state["best_value"], run.start_epoch, state["best_summary"], 0
    best.state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
    run.resumed = {"epoch": run.start_epoch, "processes": state.get("processes", 1)}
    torch.manual_seed(run.options.seed + run.start_epoch)
