"""Choosing the compute device, and saying which one and why."""
from __future__ import annotations

import os

from .errors import DeepPixelError

DEVICES_HELP = "auto (CUDA when available, else CPU), cpu, cuda, or cuda:N"


def select_device(requested: str = "auto"):
    """Return ``(torch.device, reason)``; ``reason`` is one sentence for the user's log."""
    import torch
    requested = (requested or "auto").strip().lower()
    threads = torch.get_num_threads()
    if requested == "cpu":
        return torch.device("cpu"), f"CPU as requested, {threads} threads"
    if requested == "auto":
        if torch.cuda.is_available():
            dev = torch.device("cuda:0")
            return dev, f"CUDA available: {_cuda_name(dev)}"
        return torch.device("cpu"), f"CUDA not available ({_cuda_reason()}): CPU, {threads} threads"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeepPixelError(f"Device {requested!r} was requested but CUDA is not available "
                                 f"({_cuda_reason()}). Use DEVICE=auto or cpu.")
        dev = torch.device(requested if ":" in requested else "cuda:0")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeepPixelError(f"Device {requested!r} does not exist: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                                 f"cuda:{torch.cuda.device_count() - 1}.")
        return dev, f"CUDA as requested: {_cuda_name(dev)}"
    raise DeepPixelError(f"Unknown device {requested!r}; use {DEVICES_HELP}.")


def _cuda_name(dev) -> str:
    import torch
    props = torch.cuda.get_device_properties(dev)
    return f"{dev} {props.name}, {props.total_memory / 2**30:.1f} GiB"


def _cuda_reason() -> str:
    import torch
    if torch.version.cuda is None:
        return "this torch build has no CUDA support"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return "CUDA_VISIBLE_DEVICES is empty"
    return f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable GPU or driver"


def is_oom(error: BaseException) -> bool:
    """True for a CUDA out-of-memory error (so the caller can halve the batch and retry)."""
    import torch
    text = str(error).lower()
    return (isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text
            or "failed to allocate memory" in text)      # ONNX Runtime's CUDA provider


# GPU memory one tile pixel needs in a float16 forward pass (activations and cuDNN workspace, with
# margin); the batch is sized so that half the free memory holds it. OOM still halves it (predictor).
CUDA_BYTES_PER_PIXEL = 1536
CUDA_MAX_BATCH = 32


def cuda_batch(requested: int, tile: int, device) -> int:
    """A batch size that fits the GPU's free memory now: at least 1, up to CUDA_MAX_BATCH."""
    import torch
    free, _total = torch.cuda.mem_get_info(device)
    fits = int(free * 0.5 // (tile * tile * CUDA_BYTES_PER_PIXEL))
    return max(1, min(fits, max(requested, CUDA_MAX_BATCH)))
