"""Which runtime and precision run the network, chosen at run time, with the reason for the log.

Measured on this project's 2-core Xeon (AVX-512 BF16 + AMX, U-Net/resnet34, 2 threads, 512-1024 px
tiles): torch eager float32 0.6 MP/s, torch channels_last 0.9-1.1, torch.jit freeze +
optimize_for_inference 1.0, ONNX Runtime float32 1.3, torch bfloat16 autocast (oneDNN, AMX) 3.5.
Hence on CPU: bfloat16 torch where the processor has BF16 instructions, else ONNX Runtime when
installed, else torch float32 channels_last. On CUDA: torch with bfloat16 autocast on tensor cores
(float16 before Ampere; float16 overflowed on a briefly trained network on an H200, bfloat16 has
float32's range).
``bench/bench_runtimes.py`` re-measures this on the machine at hand.
"""
from __future__ import annotations

from ..core.diagnostics import not_installed
from ..core.errors import Cancelled, DeepPixelError

RUNTIMES = ("auto", "torch", "onnxruntime")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
RUNTIME_HELP = "auto (fastest measured for this processor), torch, or onnxruntime"
PRECISION_HELP = ("auto (bfloat16 on CPUs with AVX-512 BF16/AMX and on CUDA GPUs from Ampere on, float16 "
                  "on older GPUs, else float32), float32, bfloat16 or float16")


def cpu_bf16() -> str | None:
    """'AMX' or 'AVX-512 BF16' when this CPU computes bfloat16 natively (and torch's oneDNN can use it)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    import torch
    if not torch.backends.mkldnn.is_available():
        return None
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "AVX-512 BF16"
    return None


def cpu_threads() -> int:
    import torch
    return torch.get_num_threads()


def choose_runtime(package, device, runtime: str = "auto", precision: str = "auto", progress=None):
    """(runtime object, reason sentence) for ``package`` on ``device``."""
    runtime, precision = (runtime or "auto").lower(), (precision or "auto").lower()
    if runtime not in RUNTIMES:
        raise DeepPixelError(f"Unknown RUNTIME {runtime!r}; use {RUNTIME_HELP}.")
    if precision not in PRECISIONS:
        raise DeepPixelError(f"Unknown PRECISION {precision!r}; use {PRECISION_HELP}.")
    if device.type == "cuda":
        return _cuda(package, device, runtime, precision, progress)
    return _cpu(package, device, runtime, precision, progress)


def _torch(package, device, precision, why, progress=None):
    from .runtimes import TorchRuntime
    warn = progress.warn if progress is not None else None
    return TorchRuntime(package.build(device), device, precision, warn), f"torch, {precision}, channels_last ({why})"


def _onnx(package, device, progress):
    from ..model.onnx_file import onnx_for
    from .runtimes import OnnxRuntime
    path, note = onnx_for(package, progress)
    try:
        rt = OnnxRuntime(path, device.type == "cuda", cpu_threads())
    except Exception as e:  # onnxruntime raises its own types for damaged or foreign files
        raise DeepPixelError(f"ONNX Runtime cannot load {path} ({type(e).__name__}: {str(e)[:200]}); "
                             "delete it to have it rebuilt from the weights") from e
    return rt, f"ONNX Runtime {rt.providers[0]}, float32, {cpu_threads()} threads, model {note}"


def _cuda(package, device, runtime, precision, progress):
    if runtime == "onnxruntime":
        missing = not_installed("onnxruntime")
        if missing:
            raise DeepPixelError(f"RUNTIME=onnxruntime but {missing}. Use RUNTIME=auto or torch.")
        return _onnx(package, device, progress)
    if precision == "auto":
        import torch
        # bfloat16 has float32's range (float16 overflows on weakly trained networks); tensor cores
        # run it from Ampere (compute capability 8) on; older GPUs get float16.
        precision = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return _torch(package, device, precision, "CUDA: autocast on tensor cores, cudnn.benchmark"
                  if precision != "float32" else "CUDA, float32 as requested", progress)


def _cpu(package, device, runtime, precision, progress):
    bf16 = cpu_bf16()
    if precision in ("bfloat16", "float16") or (precision == "auto" and bf16 and runtime != "onnxruntime"):
        if precision == "auto":
            precision = "bfloat16"
            why = f"this CPU has {bf16}: bfloat16 oneDNN kernels, about 2.5x ONNX Runtime float32 here"
        else:
            why = f"{precision} as requested" + ("" if bf16 else "; this CPU has no BF16 instructions (slow)")
        if runtime == "onnxruntime":
            raise DeepPixelError(f"PRECISION={precision} runs on torch; use RUNTIME=auto or torch, "
                                 "or PRECISION=float32 with ONNX Runtime.")
        return _torch(package, device, precision, why, progress)
    if runtime in ("auto", "onnxruntime"):
        missing = not_installed("onnxruntime")
        if missing and runtime == "onnxruntime":
            raise DeepPixelError(f"RUNTIME=onnxruntime but {missing}. Use RUNTIME=auto or torch.")
        if not missing:
            try:
                return _onnx(package, device, progress)
            except Cancelled:
                raise
            except DeepPixelError as e:
                if runtime == "onnxruntime":
                    raise
                missing = str(e)
        return _torch(package, device, "float32", f"ONNX Runtime not used: {missing}; "
                      f"{'no BF16 instructions on this CPU' if not bf16 else 'float32 as requested'}")
    return _torch(package, device, "float32", "as requested")

