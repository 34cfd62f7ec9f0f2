"""One epoch of Train Model: the training pass over this process's chips, then the validation pass.

Both read their chips through the run's ChipLoader (deep_pixel/chips/dataset.py). Under torchrun each
rank trains on its own shard and evaluates its share of the validation chips; the validation sums
(loss, labelled pixels, confusion matrix) and the training losses are added up across ranks, so the
epoch's record, and every decision taken from it, is the same on every rank.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ..chips.dataset import training_keys, validation_keys
from ..core.errors import DeepPixelError
from . import distributed
from .members import later_seconds
from .pretrained import frozen_eval


def chip_order(run, epoch: int, count: int | None = None) -> list:
    """This rank's chips for the epoch, shuffled (seeded by seed, rank and epoch), repeated to fill it (or
    ``count`` examples)."""
    count = count or run.steps_per_epoch * run.batch
    rng = np.random.default_rng([run.options.seed, run.dist.rank, epoch])
    order = rng.permutation(run.train_shard).tolist()
    while len(order) < count:
        order += rng.permutation(run.train_shard).tolist()
    return order[:count]


def train_epoch(run, epoch: int) -> tuple:
    """One epoch of training steps: (losses, seconds)."""
    options, progress = run.options, run.progress
    run.model.train()
    if run.frozen:
        frozen_eval(run.model)
    order = chip_order(run, epoch)
    distributed.log_ranks(run.dist, {"epoch": epoch, "chips": sorted(set(order))})
    keys = training_keys(order, run.batch, run.steps_per_epoch, options.seed, epoch, run.dist.rank)
    losses, t0 = [], time.monotonic()
    run.started = run.started or (t0, run.step)
    run.health.start_epoch()
    for b, (x, y) in enumerate(run.loader.run(keys)):
        progress.check_cancelled()
        if run.stepper.semi is not None:
            run.stepper.semi.follow(run.budget.fraction(run.step))
        loss = run.stepper.step(lambda sub, x=x, y=y: (x[sub[0]:sub[-1] + 1], y[sub[0]:sub[-1] + 1]),
                                list(range(len(x))))
        run.health.batch(epoch, b + 1, loss, run.stepper.applied)
        with warnings.catch_warnings():     # a skipped step (loss not a number) is counted in health.py
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            run.scheduler.step()
        run.step += 1
        losses.append(loss)
        run.train_progress.report(run.budget.fraction(run.step), f"epoch {_of(epoch, options)} batch {b + 1}/"
                                  f"{run.steps_per_epoch} loss {loss:.3f} ETA {_eta(run)}")
        if not run.dist.active and run.budget.out_of_time():      # TIME_LIMIT: end the epoch here
            break
    return losses, time.monotonic() - t0


def _of(epoch: int, options) -> str:
    return f"{epoch}/{options.max_epochs}" if options.max_epochs else str(epoch)


def _eta(run) -> str:
    started, first_step = run.started
    eta = run.budget.eta(run.step, first_step, started)
    eta += later_seconds(run, eta)                # the members still to train (members.py)
    return f"{int(eta) // 60:02d}:{int(eta) % 60:02d}"


def measured_keys(run) -> list:
    """The batches of whole chips that an epoch is measured on (this process's share)."""
    return validation_keys(run.eval_shard, max(1, min(run.stepper.micro, run.options.batch_size)))


def measure_chips(run, batches, extra=()) -> tuple:
    """(summed loss, labelled pixels, ConfusionMatrix, ``extra`` summed) of the stepper's measured network over
    ``batches``, each summed over the torchrun processes (one all-reduce)."""
    loss_sum, weight, cm = run.stepper.evaluate(batches, run.class_values)
    totals = distributed.sum_all(run.dist, [loss_sum, weight, *extra] + cm.matrix.ravel().tolist(), run.device)
    k = 2 + len(extra)
    cm.matrix = np.rint(totals[k:]).astype(np.int64).reshape(cm.matrix.shape)
    return totals[0], totals[1], cm, totals[2:k]


def evaluate_epoch(run, epoch: int, losses: list, train_seconds: float) -> dict:
    """Validation loss and metrics of the epoch (summed over ranks); appends and returns its record
    (summary in run.summary)."""
    options, progress, stepper = run.options, run.progress, run.stepper
    t0 = time.monotonic() - train_seconds
    progress.check_cancelled()
    keys = measured_keys(run)
    at, fraction = f"epoch {_of(epoch, options)} validation", run.budget.fraction(run.step)

    def batches():
        for k, batch in enumerate(run.loader.run(keys), 1):
            run.train_progress.report(fraction, f"{at} {k}/{len(keys)}")
            progress.check_cancelled()
            yield batch
    loss_sum, weight, cm, (train_sum, train_n) = measure_chips(run, batches(), [float(np.sum(losses)), len(losses)])
    if not weight:
        raise DeepPixelError("No labelled pixel of the measured chips counts: under each label the image chip is "
                             "nodata (or the class is in ignore_classes). Check the chips' nodata value (or the "
                             "raster's, then export again) and that the polygons lie over image data.")
    run.summary = cm.summary()
    record = {"epoch": epoch, "train_loss": float(train_sum / train_n) if train_n else math.nan,
              "valid_loss": float(loss_sum / weight) if weight else float("nan"),
              "accuracy": run.summary["overall_accuracy"], "miou": run.summary["mean_iou"],
              "lr": stepper.optimizer.param_groups[0]["lr"], "seconds": round(time.monotonic() - t0, 2),
              "train_seconds": round(train_seconds, 3),
              "chips_per_second": round(len(losses) * run.batch * run.dist.world / max(train_seconds, 1e-9), 2)}
    run.epochs.append(record)
    return record
