"""The best epoch so far (weights kept, early stopping) and the learning-rate schedule."""
from __future__ import annotations

import copy
import math


def schedule(total_steps, warmup_fraction):
    warm = max(1, int(total_steps * warmup_fraction))

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return factor


def better(monitor, value, best):
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - 1e-6 if monitor == "valid_loss" else value > best + 1e-6


class BestEpoch:
    """The best epoch so far by the monitored metric: its number, summary and weights; early stopping."""

    def __init__(self, monitor: str, patience: int):
        self.monitor, self.patience = monitor, patience
        self.value, self.state, self.epoch, self.summary, self.stale = None, None, 0, {}, 0

    def update(self, epoch: int, value, summary: dict, model, sound: bool = True) -> bool:
        """Record an epoch; True when it is the best so far (its weights are kept). An epoch that is not
        sound (see health.py: its losses are not numbers) is never the best."""
        if not sound:
            self.stale += 1
            return False
        improved = better(self.monitor, value, self.value)
        if improved or self.state is None:
            self.value = value if improved else self.value
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            self.epoch, self.summary, self.stale = epoch, summary, 0
        else:
            self.stale += 1
        return self.epoch == epoch

    @property
    def exhausted(self) -> bool:
        return self.stale >= self.patience
