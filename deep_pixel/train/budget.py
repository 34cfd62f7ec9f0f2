"""How far a training run has gone, in steps and in time: the learning-rate schedule and when to stop.

The run's progress is a fraction p from 0 to 1: steps done / step bound. The learning rate warms up linearly over
the first ``warmup_fraction`` of p, then follows a cosine down to 2% at p = 1. With MAX_EPOCHS empty and a
TIME_LIMIT, the clock takes over only when the run falls behind: once the share of the limit spent passes the
share of the steps done by ``lag`` (CLOCK_LAG), p becomes the larger of the two from then on, so a run cut by
its time limit still ends on a small learning rate (on any machine, fast or slow). A run that keeps up (most end
at a plateau well before their limit) never reads the clock for its learning rate, so its SEED repeats it; a
``timed`` budget follows the clock from the start. When the monitored metric reaches a plateau early, ``anneal``
shortens what is left to a final decay of a few epochs instead of stopping on a high learning rate; training
ends at p = 1.

Under torchrun the time does not steer the learning rate (each process would compute its own, and their
weights would drift apart): p is steps only, and the time limit is checked at the end of each epoch, with
every process agreeing (loop.py).
"""
from __future__ import annotations

import math
import time

FLOOR = 0.02                 # the learning rate at the end, as a share of the peak
CLOCK_LAG = 0.1              # the time's share ahead of the steps' share by this much: the clock takes over


class Budget:
    """Steps and seconds of one run: progress fraction, learning-rate factor, time left, plateau annealing."""

    def __init__(self, total_steps: int, minutes: float | None, warmup_fraction: float, timed: bool = True,
                 start: float | None = None, lag: float | None = None):
        self.total = max(1, int(total_steps))
        self.seconds = minutes * 60.0 if minutes else None
        self.warmup = warmup_fraction
        self.timed = timed and self.seconds is not None
        self.lag = lag if self.seconds is not None else None      # untimed: how far behind before the clock steers
        self.taken_over = None       # the step at which the clock took over (a run that fell behind)
        self.start = time.monotonic() if start is None else start
        self.cut = None              # (step, p) where annealing began, and its length in steps

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def out_of_time(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds

    def fraction(self, step: int) -> float:
        """Progress 0-1: steps against the bound, time against TIME_LIMIT (when it steers), or the annealing."""
        if self.cut is not None:
            (at, p0), length = self.cut
            return min(1.0, p0 + (1 - p0) * (step - at) / length)
        p = step / self.total
        if not self.timed and self.lag is not None and self.elapsed() / self.seconds > p + self.lag:
            self.timed, self.taken_over = True, step
        if self.timed:
            p = max(p, self.elapsed() / self.seconds)
        return min(1.0, p)

    def factor(self, step: int) -> float:
        """Learning rate as a share of the peak at ``step`` (LambdaLR's function)."""
        p = self.fraction(step)
        warm = min(1.0, max(p, (step + 1) / self.total) / self.warmup) if self.warmup > 0 else 1.0
        if p < self.warmup:
            return warm
        t = (p - self.warmup) / max(1e-9, 1 - self.warmup)
        return FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    def anneal(self, step: int, steps: int) -> bool:
        """Decay to the end over the next ``steps`` steps; False when already annealing or nearly at the end."""
        p = self.fraction(step)
        if self.cut is not None or p >= 0.8:
            return False
        self.cut = ((step, max(p, self.warmup)), max(1, steps))
        return True

    @property
    def annealing(self) -> bool:
        return self.cut is not None

    def done(self, step: int) -> bool:
        return self.fraction(step) >= 1.0 or self.out_of_time()

    def steps_left(self, step: int) -> int:
        if self.cut is not None:
            (at, _), length = self.cut
            return max(0, at + length - step)
        return max(0, self.total - step)

    def eta(self, step: int, first_step: int, started: float) -> float:
        """Seconds left: the pace of the steps so far times the steps left, never beyond the time limit."""
        per_step = (time.monotonic() - started) / max(step - first_step, 1)
        left = per_step * self.steps_left(step)
        if self.seconds is not None:
            left = min(left, max(0.0, self.seconds - self.elapsed()))
        return left
