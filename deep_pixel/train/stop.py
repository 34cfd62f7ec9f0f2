"""When Train Model stops: a plateau (then the final decay), the decay's end, TIME_LIMIT; unfreezing on schedule.

Every decision here is the same on every torchrun process: the metrics are reduced across ranks, the step
counts agree, and the clock is only read through ``time_up`` (all processes agree) or on rank 0 and shared.
"""
from __future__ import annotations

from . import distributed
from .members import limit_words
from .pretrained import freeze


def maybe_unfreeze(run, epoch: int) -> None:
    options = run.options
    if run.frozen and options.arg("unfreeze_after") and epoch == options.arg("unfreeze_after") + 1:
        run.frozen = False
        freeze(run.model, False)
        if run.dist.active:          # DistributedDataParallel tracks the parameters that train
            run.stepper.model = distributed.wrap(run.model, run.dist, run.device)
        run.progress.log(f"Epoch {epoch}: backbone unfrozen.")


def should_stop(run, epoch: int) -> bool:
    """After an epoch: a plateau starts the final decay (or stops), the decay's end or TIME_LIMIT stops."""
    options, progress, budget = run.options, run.progress, run.budget
    say_clock(run, epoch)
    if options.stop_when_not_improving and run.best.exhausted and not budget.annealing:
        epochs = options.arg("anneal_epochs")
        if epochs and budget.anneal(run.step, epochs * run.steps_per_epoch):
            run.best.restart()
            progress.log(f"Epoch {epoch}: {options.monitor} on a plateau for {run.best.patience} epochs; the learning "
                         f"rate now decays to its end over {epochs} more epoch(s).")
            return False
        run.stopped_early = True
        progress.log(f"Stopping: {options.monitor} did not improve for {run.best.patience} epochs.")
        return True
    if budget.annealing and budget.fraction(run.step) >= 1:
        run.stopped_early = True
        progress.log(f"Stopping: the learning rate has decayed to its end after the plateau (epoch {epoch}).")
        return True
    if time_up(run):                              # agreed by every rank under torchrun
        run.stopped_by_time = True
        progress.log(f"Stopping: {limit_words(run)} reached after epoch {epoch}.")
        return True
    if budget.fraction(run.step) >= 1 and epoch < options.epoch_bound:     # steps only: the same on every rank
        progress.log(f"Stopping: the learning rate has decayed to its end (epoch {epoch}).")
        return True
    return False


def say_clock(run, epoch: int) -> None:
    """Once: the run fell behind TIME_LIMIT, so the clock now steers its learning rate (budget.py)."""
    budget = run.budget
    if budget.taken_over is None or run.said_clock is budget:
        return
    run.said_clock = budget
    run.progress.log(f"Epoch {epoch}: training is behind its {limit_words(run)} (more of the time spent than of "
                     f"the steps done); the learning rate now decays by the clock to end on time, so this run "
                     "will not repeat exactly from its SEED (a longer TIME_LIMIT, or MAX_EPOCHS, keeps it "
                     "repeatable).")


def fit_to_time(run) -> None:
    """Under torchrun, with MAX_EPOCHS empty and a TIME_LIMIT: after the first epoch, the step bound becomes the
    steps that fit in the limit at that pace (rank 0's, shared), so the decay still ends on time without the
    clock steering the rate (see budget.py)."""
    budget = run.budget
    if not (run.dist.active and run.options.max_epochs is None and budget.seconds):
        return
    fits = int(run.step * budget.seconds / max(budget.elapsed(), 1e-6))
    total = distributed.share(run.dist, min(budget.total, max(run.step + 1, fits)))
    budget.total = total
    run.total = total
    run.progress.log(f"{limit_words(run)} at the first epoch's pace: about {total} steps in "
                     "all; the learning rate decays over them.")


def time_up(run) -> bool:
    """TIME_LIMIT reached (under torchrun: on any process, so that all stop together)."""
    out = run.budget.out_of_time()
    if run.dist.active:
        out = not distributed.all_agree(run.dist, not out, run.device)
    return out
