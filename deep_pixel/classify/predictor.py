"""The network on batches of tiles: softmax probabilities, test-time augmentation, GPU memory care.

The forward pass itself is a runtime (runtimes.py, chosen by runtime_choice.py). On CUDA an
out-of-memory error halves the batch and retries. Test-time augmentation averages the 8
flips/rotations of the square, done on the arrays so that every runtime supports it.
"""
from __future__ import annotations

import numpy as np

from ..core.device import is_oom
from ..core.errors import DeepPixelError

# (k rotations by 90 degrees, horizontal flip) for the 8 symmetries of the square.
DIHEDRAL = [(k, flip) for flip in (False, True) for k in range(4)]


class Predictor:
    def __init__(self, runtime, tta: bool = False, progress=None):
        self.runtime = runtime
        self.tta = tta
        self.cuda = getattr(runtime, "cuda", False)
        self.progress = progress
        self.max_batch = None             # lowered after an out-of-memory error

    def _predict(self, x: np.ndarray) -> np.ndarray:
        if not self.tta:
            return self.runtime(x)
        total = None
        for k, flip in DIHEDRAL:
            t = x[..., ::-1] if flip else x
            p = self.runtime(np.ascontiguousarray(np.rot90(t, k, axes=(2, 3))))
            p = np.rot90(p, -k, axes=(2, 3))
            p = p[..., ::-1] if flip else p
            total = p.copy() if total is None else total + p
        return total / len(DIHEDRAL)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(n, channels, t, t) float32 -> (n, classes, t, t) float32 probabilities."""
        out = []
        i = 0
        while i < len(batch):
            size = min(len(batch) - i, self.max_batch or len(batch))
            try:
                out.append(self._predict(batch[i:i + size]))
            except Exception as e:  # torch and ONNX Runtime raise their own types
                if not (self.cuda and is_oom(e)):
                    raise
                self._release()
                if size == 1:
                    raise DeepPixelError("The GPU ran out of memory on a single tile: use a smaller TILE_SIZE "
                                         "or DEVICE=cpu.") from e
                self.max_batch = size // 2
                if self.progress is not None:
                    self.progress.warn(f"GPU out of memory: batch size lowered to {self.max_batch}.")
                continue
            i += size
        return out[0] if len(out) == 1 else np.concatenate(out, axis=0)

    @staticmethod
    def _release():
        import torch
        torch.cuda.empty_cache()
