"""Training health: batches whose loss is not a number, epochs that diverged, runs that made no step.

A batch whose loss is NaN or infinite updates no weight (the Stepper skips it; on CUDA the gradient
scaler does). An epoch is *sound* when at least one of its batches updated the weights and its
validation loss is a number below ABSURD_LOSS; only sound epochs can be the best epoch (and be
checkpointed).
Training fails, naming the cause and the fix, when:

- it made no optimisation step at all;
- an epoch had no batch with a finite loss: nothing can change any more, so it stops at once;
- the last epoch is not sound ("ended with a NaN loss", or one no learning network reaches).

A failed run leaves no model folder; a checkpoint of an earlier sound best epoch stays where
train_model keeps checkpoints after errors.
"""
from __future__ import annotations

import math

from ..core.errors import DeepPixelError

EXTREME_PIXELS = ("check the image chips for extreme pixel values (an undeclared nodata value such as -3.4e38 "
                  "is a common one: set the raster's nodata value and export the chips again) and the band "
                  "statistics in the chips folder's deep_pixel_export.json")
# A fresh network starts near ln(number of classes), 0.7 to 3; but after a few steps, with batch-norm
# statistics not yet settled, a sound network's validation loss can be in the thousands (3.4e3 seen
# after 2 x 3 steps on the Landsat chips, where training then goes on normally). Only weights that
# blew up reach a million; below that it is a young network, not a diverged one.
ABSURD_LOSS = 1e6


def finite(value) -> bool:
    return value is not None and math.isfinite(value)


class Health:
    """Counts the batches of a run and of its current epoch; checks each epoch and the end of training."""

    def __init__(self, learning_rate: float, pretrained: bool = False):
        self.lr, self.pretrained = learning_rate, pretrained
        self.batches = self.applied = 0                   # the whole run
        self.epoch_batches = self.epoch_applied = 0       # the current epoch
        self.first_bad = None                            # (epoch, batch, batches before it) of the first bad loss

    def start_epoch(self) -> None:
        self.epoch_batches = self.epoch_applied = 0

    def batch(self, epoch: int, number: int, loss: float, applied: bool) -> None:
        if not finite(loss) and self.first_bad is None:
            self.first_bad = (epoch, number, self.batches)
        self.batches += 1
        self.epoch_batches += 1
        self.applied += bool(applied)
        self.epoch_applied += bool(applied)

    def sound(self, record: dict) -> bool:
        """True when the epoch just trained updated the weights and its validation loss is below ABSURD_LOSS."""
        return self.epoch_applied > 0 and finite(record["valid_loss"]) and record["valid_loss"] < ABSURD_LOSS

    def check_epoch(self, epoch: int, progress) -> None:
        """Stop when no batch of the epoch had a finite loss; warn when some did not."""
        skipped = self.epoch_batches - self.epoch_applied
        if self.epoch_batches and not self.epoch_applied:
            raise DeepPixelError(self._diverged(f"in epoch {epoch}: the loss of each of its {self.epoch_batches} "
                                                "batches was not a number (NaN or infinite), so no weight could be "
                                                "updated any more"))
        if skipped:
            progress.warn(f"Epoch {epoch}: {skipped} of {self.epoch_batches} batches had a loss that is not a number "
                          "and updated nothing. If it happens again, lower LEARNING_RATE.")

    def check_end(self, epochs: list, sound_last: bool) -> None:
        """After the last epoch: refuse a run that made no step or ended with a loss that is not a number."""
        if not self.batches:
            raise DeepPixelError(f"Training made no optimisation step (0 batches in {len(epochs)} epoch(s)), so "
                                 "there is no model to write. Set steps_per_epoch in MODEL_ARGUMENTS to 1 or more, "
                                 "or leave it out.")
        if not sound_last:
            last, loss = epochs[-1]["epoch"], epochs[-1]["valid_loss"]
            what = (f"{loss:.3g}, far above what a learning network reaches (below {ABSURD_LOSS:g})" if finite(loss)
                    else f"{loss}, not a number")
            raise DeepPixelError(self._diverged(f"by the end: the validation loss of the last epoch ({last}) is {what}"))

    def _diverged(self, where: str) -> str:
        if self.first_bad is not None and self.first_bad[2] == 0 and not self.applied:
            return (f"Training failed {where}. The loss was not a number from the very first batch, before any "
                    f"weight changed, so the inputs or the starting weights are at fault: {EXTREME_PIXELS}"
                    + (", and PRETRAINED_MODEL" if self.pretrained else "") + ".")
        first = (f" (the first loss that is not a number came at epoch {self.first_bad[0]}, batch "
                 f"{self.first_bad[1]})" if self.first_bad else "")
        return (f"Training diverged {where}{first}; the model is not usable. Lower LEARNING_RATE (this run used "
                f"{self.lr:.3g}; try {self.lr / 10:.3g}, or leave it empty to have it found by a range test), "
                f"and {EXTREME_PIXELS}.")


def check_finite_weights(state: dict, what: str) -> None:
    """Refuse starting weights that hold NaN or infinite values (they give a loss that is not a number)."""
    import torch
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise DeepPixelError(f"The {what} holds weights that are not numbers (NaN or infinite) in {len(bad)} "
                             f"tensor(s), e.g. {bad[0]!r}: it comes from a training run that diverged. Use another "
                             "PRETRAINED_MODEL, or leave it empty.")
