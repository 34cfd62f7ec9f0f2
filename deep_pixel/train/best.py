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
    decay (README, Model quality: stop 30). With ``average_plateau`` as well, the weights kept are the average
    of the sound epochs' since the metric last clearly improved (``first``: the first of them): on sparse labels
    the weights of one epoch swing (held-out mIoU 0.18 to 0.49 from one late epoch to the next on the aerial
    scene), and their average over the plateau does not (README, Model quality: stop 31).
    """

    def __init__(self, monitor: str, patience: int, min_improvement: float = 0.0):
        self.monitor, self.patience, self.min_improvement = monitor, patience, min_improvement
        self.value, self.state, self.epoch, self.summary, self.stale = None, None, 0, {}, 0
        self.reference = None        # the value when patience last restarted
        self.keep_last, self.average_plateau, self.improved = False, False, False
        self.first, self._sum, self._count = 0, None, 0       # the epochs averaged (average_plateau)

    def fresh(self) -> "BestEpoch":
        """A new record with the same settings (the next member)."""
        other = BestEpoch(self.monitor, self.patience, self.min_improvement)
        other.keep_last, other.average_plateau = self.keep_last, self.average_plateau
        return other

    def update(self, epoch: int, value, summary: dict, model, sound: bool = True) -> bool:
        """Record an epoch; True when its weights are kept (the best so far, or with ``keep_last`` any sound
        epoch; ``improved`` says whether it is the best). An epoch that is not sound (see health.py: its
        losses are not numbers) is never kept."""
        self.improved = False
        if not sound:
            self.stale += 1
            return False
        self.improved = better(self.monitor, value, self.value)
        clear = self.improved and self._clear_gain(value)
        if self.improved or self.state is None or self.keep_last:
            self.value = value if self.improved else self.value
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            self.epoch, self.summary = epoch, summary
            if self.average_plateau:             # set with keep_last (loop._prepare_split)
                self._average(epoch, restart=clear or self._sum is None)
        if clear:
            self.reference, self.stale = value, 0
        else:
            self.stale += 1
        return self.epoch == epoch

    def _average(self, epoch: int, restart: bool) -> None:
        """``state`` becomes the average of the epochs since ``first`` (this one restarts it when ``restart``)."""
        import torch
        if restart:
            self.first, self._count = epoch, 0
            self._sum = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in self.state.items()
                         if v.is_floating_point()}
        self._count += 1
        for k, total in self._sum.items():
            total.add_(self.state[k])
            self.state[k] = (total / self._count).to(self.state[k].dtype)

    @property
    def averaged(self) -> bool:
        """Whether ``state`` is an average of more than one epoch."""
        return self._count > 1

    def describe(self) -> str:
        """Which weights ``state`` holds, in words (the log and the progress bar)."""
        if self.averaged:
            return f"average of epochs {self.first}-{self.epoch}"
        return f"{'last' if self.keep_last else 'best'} epoch {self.epoch}"

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
