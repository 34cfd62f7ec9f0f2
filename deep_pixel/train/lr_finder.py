"""Learning-rate range test: raise the rate exponentially over a few steps, watch the loss.

The rate picked is a tenth of the rate at the lowest smoothed loss (the usual rule: safely below
where the loss starts to climb), clamped to [1e-5, 1e-2]. The model and optimiser are restored
afterwards, so the test leaves no trace in the weights.
"""
from __future__ import annotations

import copy
import math

LR_MIN, LR_MAX = 1e-6, 1.0
PICK_RANGE = (1e-5, 1e-2)


def find_learning_rate(stepper, make_batch, sample_batch, steps: int, progress=None) -> dict:
    """-> {"lr": picked, "rates": [...], "losses": [...]}; ``sample_batch()`` gives chip indices and
    ``make_batch(indices)`` the (x, y) arrays of a batch."""
    model, opt = stepper.model, stepper.optimizer
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(opt.state_dict())
    saved_scaler = stepper.scaler.state_dict()
    rates, losses = [], []
    smooth, best = None, math.inf
    steps = max(steps, 5)
    try:
        for k in range(steps):
            if progress is not None:
                progress.check_cancelled()
            lr = LR_MIN * (LR_MAX / LR_MIN) ** (k / (steps - 1))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = stepper.step(make_batch, sample_batch())
            if not math.isfinite(loss):
                break
            smooth = loss if smooth is None else 0.7 * smooth + 0.3 * loss
            rates.append(lr)
            losses.append(smooth)
            best = min(best, smooth)
            if progress is not None:
                progress.report((k + 1) / steps, f"learning-rate test {k + 1}/{steps}: lr {lr:.1e} loss {loss:.3f}")
            if smooth > 4 * best and k > 3:
                break
    finally:
        model.load_state_dict(saved_model)
        opt.load_state_dict(saved_opt)
        stepper.scaler.load_state_dict(saved_scaler)
    if not losses:
        return {"lr": 1e-3, "rates": [], "losses": [], "note": "no finite loss; fell back to 1e-3"}
    at_min = rates[losses.index(min(losses))]
    lr = min(max(at_min / 10, PICK_RANGE[0]), PICK_RANGE[1])
    return {"lr": lr, "rates": rates, "losses": losses}
