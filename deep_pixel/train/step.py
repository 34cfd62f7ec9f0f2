"""Loss, one optimisation step (mixed precision and out-of-memory retry on CUDA), evaluation."""
from __future__ import annotations

import math

import numpy as np

from ..core.device import is_oom
from ..core.errors import DeepPixelError
from ..core.metrics import ConfusionMatrix
from .augment import IGNORE_INDEX


def class_weights(pixels_per_class: dict, class_values) -> list:
    """1/sqrt(pixel frequency), scaled to mean 1 over the classes present (absent classes get 0)."""
    counts = np.array([pixels_per_class.get(v, 0) for v in class_values], dtype=np.float64)
    w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1) / max(counts.sum(), 1)), 0.0)
    present = w > 0
    if present.any():
        w[present] /= w[present].mean()
    return w.tolist()


class SegmentationLoss:
    """Cross-entropy (optionally focal, class-weighted, mixed with Dice) over labelled pixels only.

    Pixels equal to IGNORE_INDEX (unlabelled, ignored classes, padding) add nothing: a batch with
    no labelled pixel has loss 0 and zero gradient, instead of the NaN of a mean over nothing.
    """

    def __init__(self, num_classes: int, weights=None, focal: bool = False, dice_fraction: float = 0.0,
                 gamma: float = 2.0):
        self.num_classes = num_classes
        self.weights = weights
        self.focal = focal
        self.dice_fraction = dice_fraction
        self.gamma = gamma

    def __call__(self, logits, target):
        import torch
        logits = logits.float()
        mask = target != IGNORE_INDEX
        safe = torch.where(mask, target, torch.zeros_like(target))
        logp = torch.log_softmax(logits, dim=1)
        logp_t = logp.gather(1, safe.unsqueeze(1)).squeeze(1)
        w = mask.float()
        if self.weights is not None:
            w = w * torch.as_tensor(self.weights, dtype=logits.dtype, device=logits.device)[safe]
        per_pixel = -logp_t
        if self.focal:
            per_pixel = per_pixel * (1 - logp_t.exp()).pow(self.gamma)
        loss = (per_pixel * w).sum() / w.sum().clamp_min(1e-6)
        if self.dice_fraction > 0:
            probs = logp.exp() * mask.unsqueeze(1)
            onehot = torch.nn.functional.one_hot(safe, self.num_classes).permute(0, 3, 1, 2) * mask.unsqueeze(1)
            inter = (probs * onehot).sum((0, 2, 3))
            denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
            present = onehot.sum((0, 2, 3)) > 0
            dice = 1 - (2 * inter + 1e-6) / (denom + 1e-6)
            dice = (dice * present).sum() / present.sum().clamp_min(1)
            loss = (1 - self.dice_fraction) * loss + self.dice_fraction * dice
        return loss


class Stepper:
    """Runs forward/backward/update on a device. On CUDA: autocast fp16, gradient scaling, pinned
    host memory, and on out-of-memory the micro-batch is halved and the step retried (the
    effective batch stays the same through gradient accumulation)."""

    def __init__(self, model, optimizer, loss_fn, device, batch_size: int, progress=None, agree=None):
        import torch
        self.model, self.optimizer, self.loss_fn, self.device = model, optimizer, loss_fn, device
        self.cuda = device.type == "cuda"
        self.micro = batch_size
        self.progress = progress
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda)
        self.applied = False            # whether the last step updated the weights
        self.agree = agree              # distributed: flag -> whether it holds on every process
        self.semi = None                # semi.Consistency: also learn from the crops' unlabelled pixels
        self.supervised = None          # with semi: the last batch's loss on its labelled pixels (what is reported)
        self.average = None             # average.WeightAverage: the weights that are measured and kept

    def objective(self, x, y):
        """The loss of one (micro-)batch: supervised, plus pseudo-labels once semi-supervision has weight."""
        self.supervised = None
        if self.semi is not None and self.semi.weight > 0:
            from .semi import consistency_loss
            return consistency_loss(self, x, y)
        return self.loss_fn(self.forward(x), y)

    @property
    def measured(self):
        """The network that epochs measure and the package keeps: the weight average, or the network itself."""
        return self.average.model if self.average is not None else self.plain

    @property
    def plain(self):
        """The network itself (``model`` may be its DistributedDataParallel wrapper)."""
        return getattr(self.model, "module", self.model)

    def to_device(self, array):
        import torch
        t = array if torch.is_tensor(array) else torch.from_numpy(array)
        if self.cuda:
            return (t if t.is_pinned() else t.pin_memory()).to(self.device, non_blocking=True)
        return t

    def forward(self, x, model=None):
        import torch
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.cuda):
            return (model or self.model)(x)

    def step(self, make_batch, indices) -> float:
        """One optimiser step over ``indices``; ``make_batch(sub_indices)`` -> (x, y) numpy."""
        while True:
            try:
                return self._step(make_batch, indices)
            except RuntimeError as e:
                if not (self.cuda and is_oom(e)):
                    raise
                import torch
                self.optimizer.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                if self.micro <= 1:
                    raise DeepPixelError("CUDA ran out of memory even with a batch of 1: use a smaller "
                                         "chip_size in MODEL_ARGUMENTS, a lighter BACKBONE, or DEVICE=cpu.") from e
                self.micro //= 2
                if self.progress is not None:
                    self.progress.warn(f"CUDA out of memory: batch halved to {self.micro} and the step retried.")

    def _step(self, make_batch, indices) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        total, finite = 0.0, True
        chunks = [indices[i:i + self.micro] for i in range(0, len(indices), self.micro)]
        for chunk in chunks:
            x, y = make_batch(chunk)
            loss = self.objective(self.to_device(x), self.to_device(y))
            self.scaler.scale(loss * (len(chunk) / len(indices))).backward()
            shown = self.supervised if self.supervised is not None else loss      # the labelled pixels' loss
            total += float(shown.detach()) * len(chunk) / len(indices)
            finite = finite and math.isfinite(float(loss.detach()))
        finite = finite and math.isfinite(total)
        if self.agree is not None:      # every process steps, or none (their gradients were averaged)
            finite = self.agree(finite)
        self.applied = self._update(finite)
        if self.applied and self.average is not None:
            self.average.update(self.plain)
        return total

    def _update(self, finite: bool) -> bool:
        """The optimiser step; False when it was skipped because the loss or the gradients are not numbers."""
        if not self.cuda:
            if finite:                  # a NaN/inf gradient would spoil every weight it touches
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            return finite
        scale = self.scaler.get_scale()
        self.scaler.step(self.optimizer)        # skips the update itself on NaN/inf gradients
        self.scaler.update()                    # ... and then lowers the scale
        return finite and self.scaler.get_scale() >= scale

    def evaluate(self, batches, class_values) -> tuple:
        """(summed loss over labelled pixels, labelled pixels, ConfusionMatrix) over ``batches`` of (x, y)
        whole chips, without augmentation, on the measured network (never the distributed wrapper)."""
        import torch
        values = np.asarray(class_values)
        cm = ConfusionMatrix(class_values)
        loss_sum, weight = 0.0, 0
        net = self.measured
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                for x, y in batches:
                    y = y.numpy() if torch.is_tensor(y) else y
                    logits = self.forward(self.to_device(x), net).float()
                    n = int((y != IGNORE_INDEX).sum())
                    loss_sum += float(self.loss_fn(logits, self.to_device(y))) * n
                    weight += n
                    pred = values[logits.argmax(1).cpu().numpy()]
                    ref = np.where(y >= 0, values[np.maximum(y, 0)], 0)
                    cm.add(ref, pred)
        finally:
            net.train(was_training)
        return loss_sum, weight, cm
