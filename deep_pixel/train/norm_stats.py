"""Batch-norm statistics of the network written (MODEL_ARGUMENTS norm_statistics).

Each batch-norm layer keeps a running mean and variance of its inputs, nudged at every training step (momentum
0.1): on a few chips they follow the last few batches of augmented crops (strongly changed ones under
semi-supervision), and the weight and epoch averages (average.py, best.py) average them as if they were
weights. Classify uses those statistics. The choices:

- ``training``: the statistics as training left them.
- ``crops``: measured again, in training mode and without gradients, on crops drawn as training draws them
  (the same loader, flips and turns; ``drawn``: a tenth of the crops trained on, from ``CROPS`` to ``DRAWN``);
  the weights do not change.
- ``raster``: the same on ``CROPS`` random crops of the export's source raster (every pixel, labelled or not;
  the chips when the raster cannot be read).
- ``auto`` (the default): ``crops`` is measured, and kept only when it fits the chips that epochs are measured on
  clearly better (mIoU higher by ``CLEAR_GAIN``); otherwise training's statistics stay.

A frozen encoder keeps its own. Measured (README, Model quality: stops 32-34): on the aerial scene, whose
network does not fit its four training chips, the held-out mIoU of single epochs swung less and ``crops`` raised
the plateau average; on Landsat, whose network fits its chips exactly, every measuring again lowered it; 512
crops of the training draw instead of 64 raised auto's aerial mean (stop 34).
"""
from __future__ import annotations

import numpy as np

from .pretrain import Crops

CROPS = 64                   # raster crops read, and the fewest crops of the training draw read
DRAWN = 512                  # the most crops of the training draw read (64 at stop 33; README, Model quality: stop 34)
SHARE = 10                   # ... and at most one in SHARE of the crops trained on (a short run pays little for it)
SIZE = 128                   # the raster crops' side in pixels (the chips' side when smaller, without the raster)
BATCH = 8
CLEAR_GAIN = 0.01            # auto: the mIoU gain on the measured chips that keeps the statistics measured again
_DRAW = 1 << 20              # the training draw's epoch number: past any real epoch's


def wanted(run) -> bool:
    """Whether the network written may get statistics other than training's (MODEL_ARGUMENTS norm_statistics)."""
    return run.options.arg("norm_statistics") != "training"


def layers(run, model) -> list:
    """The batch-norm layers whose statistics are measured again (not those of a frozen encoder)."""
    import torch
    from ..model.registry import encoders
    kept = {id(m) for e in encoders(model) for m in e.modules()} if run.frozen else set()
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and id(m) not in kept]


def settle(run, model, measure) -> dict:
    """Give ``model`` the statistics that norm_statistics asks for; ``measure()`` -> the summary of ``model`` on
    the measured chips, which is returned (for the statistics kept)."""
    from .loop import _pct
    choice = run.options.arg("norm_statistics")
    if choice == "training" or not layers(run, model):
        return measure()
    if choice != "auto":
        _log(run, remeasure(run, model, choice), "")
        return measure()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    plain = measure()
    read = remeasure(run, model, "crops")
    again = measure()
    went = f"{_pct(plain.get('mean_iou'))} -> {_pct(again.get('mean_iou'))}"
    if _gain(again, plain) >= CLEAR_GAIN:
        _log(run, read, f" (mIoU on the measured chips {went}: kept)")
        return again
    model.load_state_dict(before)
    run.progress.log(f"Batch-norm statistics: training's kept (measured again on {read}, the measured chips' "
                     f"mIoU went {went}, not {100 * CLEAR_GAIN:g} points higher).")
    return plain


def _gain(again: dict, plain: dict) -> float:
    a, p = again.get("mean_iou"), plain.get("mean_iou")
    if a is None or p is None or not (np.isfinite(a) and np.isfinite(p)):
        return -1.0
    return a - p


def _log(run, read: str, verdict: str) -> None:
    run.progress.log(f"Batch-norm statistics of the network written measured again on {read}{verdict}.")


def remeasure(run, model, source: str = "raster") -> str:
    """``model``'s batch-norm statistics measured again (``source``: ``crops`` as training draws them, or
    ``raster``: ``CROPS`` random crops of the source raster); what was read, in words ("" when the network has no
    batch-norm layer to measure)."""
    import torch
    norms = layers(run, model)
    if not norms:
        return ""
    was_training, momenta = model.training, [m.momentum for m in norms]
    batches, read, close = _training_draw(run) if source == "crops" else _raster_draw(run)
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None                # a plain average over every crop read
        model.eval()
        for m in norms:
            m.train()
        with torch.no_grad():
            for x in batches:
                run.progress.check_cancelled()
                run.stepper.forward(run.stepper.to_device(x), model)
        return read
    finally:
        close()
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)


def drawn(steps: int, batch: int) -> int:
    """How many crops of the training draw are read after ``steps`` training steps of ``batch`` crops: a tenth of
    those trained on, at least ``CROPS`` and at most ``DRAWN`` (512 crops of 64 px: about 5 s on 2 CPU cores)."""
    return min(DRAWN, max(CROPS, steps * batch // SHARE))


def _training_draw(run) -> tuple:
    """(batches, words, close): crops drawn from this process's training chips as an epoch draws them."""
    from ..chips.dataset import training_keys
    from .epoch import chip_order
    steps = max(1, -(-drawn(run.step, run.batch) // run.batch))
    order = chip_order(run, _DRAW, steps * run.batch)
    keys = training_keys(order, run.batch, steps, run.options.seed, _DRAW, run.dist.rank)
    words = f"{steps * run.batch} {run.crop} px crops of the training chips drawn as training draws them"
    return (x for x, _ in run.loader.run(keys)), words, lambda: None


def _raster_draw(run) -> tuple:
    """(batches, words, close): ``CROPS`` random crops of the source raster (of the chips without it)."""
    crops = Crops(run.data, run.transform, SIZE, run.options.seed)
    if not crops.rasters:
        crops.close()
        side = min(min(c.shape[1:]) for c in crops.chips)
        crops = Crops(run.data, run.transform, max(run.multiple, min(SIZE, side // run.multiple * run.multiple)),
                      run.options.seed)
    words = f"{CROPS} {crops.described.replace('random crops', f'random {crops.crop} px crops', 1)}"
    return (crops.batch(BATCH) for _ in range(CROPS // BATCH)), words, crops.close
