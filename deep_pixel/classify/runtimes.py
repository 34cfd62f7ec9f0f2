"""The engines that run the network's forward pass on a batch of tiles.

Each runtime maps a float32 batch (n, channels, h, w) to float32 class probabilities
(n, classes, h, w). ``choose_runtime`` (runtime_choice.py) decides which one runs and says why.

- ``TorchRuntime``: channels_last, inference mode; on CUDA bfloat16 (or float16 before Ampere)
  autocast on tensor cores and cudnn.benchmark; on CPUs with AVX-512 BF16 or AMX, bfloat16 autocast
  through oneDNN. A batch whose reduced-precision result is not finite is recomputed in float32,
  and float32 is kept from then on (with a warning).
- ``OnnxRuntime``: ONNX Runtime with the CPU execution provider (the CUDA provider when the
  installed onnxruntime has it and the device is CUDA), full graph optimisation.
"""
from __future__ import annotations

import numpy as np


class TorchRuntime:
    def __init__(self, model, device, precision: str = "float32", on_overflow=None):
        import torch
        self.torch = torch
        self.on_overflow = on_overflow
        self.device = device
        self.cuda = device.type == "cuda"
        self.precision = precision
        self.model = model.to(memory_format=torch.channels_last)
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        self.name = "torch"

    def _autocast(self):
        torch = self.torch
        if self.precision == "float32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self.cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            with self._autocast():
                logits = self.model(x)
            if self.precision != "float32" and not bool(torch.isfinite(logits).all()):
                self._overflowed()           # float16's range is 65504: a weakly trained network can exceed it
                logits = self.model(x)
            probs = torch.softmax(logits.float(), dim=1)
        return probs.cpu().numpy() if self.cuda else probs.contiguous().numpy()

    def _overflowed(self):
        if self.on_overflow is not None:
            self.on_overflow(f"{self.precision} overflowed in this network (values beyond its range): "
                             "classifying in float32 from here on.")
        self.precision = "float32"


class OnnxRuntime:
    def __init__(self, path: str, cuda: bool, threads: int):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.input = self.session.get_inputs()[0].name
        self.providers = self.session.get_providers()
        self.cuda = self.providers[0] == "CUDAExecutionProvider"
        self.precision = "float32"
        self.name = "onnxruntime"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {self.input: x})[0]
