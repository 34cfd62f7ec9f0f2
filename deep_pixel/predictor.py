"""The network on batches of tiles: softmax probabilities, test-time augmentation, CUDA care.

On CUDA the forward pass runs under mixed precision and an out-of-memory error halves the batch
and retries; on CPU it runs in float32. Test-time augmentation averages the 8 flips/rotations.
"""
from __future__ import annotations

import numpy as np

from .device import is_oom
from .errors import DeepPixelError

# (k rotations by 90 degrees, horizontal flip) for the 8 symmetries of the square.
DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


class Predictor:
    def __init__(self, model, device, tta: bool = False, progress=None):
        import torch
        self.torch = torch
        self.model = model
        self.device = device
        self.tta = tta
        self.cuda = device.type == "cuda"
        self.progress = progress
        self.max_batch = None             # lowered after an out-of-memory error

    def _forward(self, x):
        torch = self.torch
        with torch.inference_mode():
            if self.cuda:
                with torch.autocast("cuda", dtype=torch.float16):
                    logits = self.model(x)
            else:
                logits = self.model(x)
            return torch.softmax(logits.float(), dim=1)

    def _predict(self, x):
        if not self.tta:
            return self._forward(x)
        torch = self.torch
        total = None
        for k, flip in DIHEDRAL:
            t = torch.flip(x, dims=(3,)) if flip else x
            t = torch.rot90(t, k, dims=(2, 3))
            p = torch.rot90(self._forward(t), -k, dims=(2, 3))
            p = torch.flip(p, dims=(3,)) if flip else p
            total = p if total is None else total + p
        return total / len(DIHEDRAL)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(n, channels, t, t) float32 -> (n, classes, t, t) float32 probabilities."""
        torch = self.torch
        out = []
        i = 0
        while i < len(batch):
            size = min(len(batch) - i, self.max_batch or len(batch))
            x = torch.from_numpy(np.ascontiguousarray(batch[i:i + size]))
            if self.cuda:
                x = x.pin_memory().to(self.device, non_blocking=True)
            try:
                out.append(self._predict(x).cpu().numpy())
            except RuntimeError as e:
                if not (self.cuda and is_oom(e)):
                    raise
                torch.cuda.empty_cache()
                if size == 1:
                    raise DeepPixelError("The GPU ran out of memory on a single tile: use a smaller TILE_SIZE "
                                         "or DEVICE=cpu.") from e
                self.max_batch = size // 2
                if self.progress is not None:
                    self.progress.warn(f"GPU out of memory: batch size lowered to {self.max_batch}.")
                continue
            i += size
        return np.concatenate(out, axis=0)
