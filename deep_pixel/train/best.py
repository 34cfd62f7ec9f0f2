"""The best epoch so far (weights kept, early stopping on a plateau)."""
from __future__ import annotations

import copy
import math


def better(monitor, value, best):
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - 1e-6 if monitor == "valid_loss" else value > best + 1e-6


class BestEpoch:
    """The best epoch so far by the monitored metric: its number, summary and weights; early stopping.

    Any gain makes an epoch the best (its weights are kept), but only a gain of at least ``min_improvement``
    times the value where patience last restarted restarts it: a metric that creeps is on a plateau.
    With ``keep_last`` every sound epoch's weights are kept (the metric still decides the plateau): when the
    epochs are measured on the training chips, the best fit to them is no better a pick than the end of the
    decay (README, Model quality: stop 30).
    """

    def __init__(self, monitor: str, patience: int, min_improvement: float = 0.0):
        self.monitor, self.patience, self.min_improvement = monitor, patience, min_improvement
        self.value, self.state, self.epoch, self.summary, self.stale = None, None, 0, {}, 0
        self.reference = None        # the value when patience last restarted
        self.keep_last, self.improved = False, False

    def update(self, epoch: int, value, summary: dict, model, sound: bool = True) -> bool:
        """Record an epoch; True when its weights are kept (the best so far, or with ``keep_last`` any sound
        epoch; ``improved`` says whether it is the best). An epoch that is not sound (see health.py: its
        losses are not numbers) is never kept."""
        self.improved = False
        if not sound:
            self.stale += 1
            return False
        self.improved = better(self.monitor, value, self.value)
        if self.improved or self.state is None or self.keep_last:
            self.value = value if self.improved else self.value
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            self.epoch, self.summary = epoch, summary
        if self.improved and self._clear_gain(value):
            self.reference, self.stale = value, 0
        else:
            self.stale += 1
        return self.epoch == epoch

    def _clear_gain(self, value) -> bool:
        if self.reference is None:
            return True
        margin = self.min_improvement * abs(self.reference)
        return value < self.reference - margin if self.monitor == "valid_loss" else value > self.reference + margin

    def restart(self) -> None:
        """Patience starts again (annealing after a plateau gets its own epochs)."""
        self.stale, self.reference = 0, self.value

    @property
    def exhausted(self) -> bool:
        return self.stale >= self.patience
