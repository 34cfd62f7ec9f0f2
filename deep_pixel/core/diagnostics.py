"""What the engine can run on: versions, CUDA, missing packages and how to install them.

Uses ``importlib.util.find_spec`` to see what is missing without importing it, so QGIS can ask
before anything heavy is loaded.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys

# import name -> pip requirement (kept in step with requirements.txt)
REQUIREMENTS = {
    "numpy": "numpy<2",
    "torch": "torch==2.14.1",
    "torchvision": "torchvision==0.29.1",
    "segmentation_models_pytorch": "segmentation-models-pytorch==0.6.0",
    "rasterio": "rasterio",
    "shapely": "shapely",
}
HEAVY = ("torch", "torchvision", "segmentation_models_pytorch")
# Optional: without them the engine runs and says what is missing when a feature needs one.
OPTIONAL = {
    "onnxruntime": "onnxruntime==1.32.0",
    "distributed": "distributed==2025.12.0",
    "dask": "dask==2025.12.0",
}


def python_command() -> str:
    """The interpreter to call for pip: QGIS embeds Python, so sys.executable may be QGIS itself."""
    exe = sys.executable or ""
    if os.path.basename(exe).lower().startswith("python"):
        return exe
    if os.name == "nt":
        return os.path.join(sys.exec_prefix, "python.exe")
    candidate = os.path.join(sys.exec_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    return candidate if os.path.exists(candidate) else "python3"


def missing(modules=None) -> list:
    """Import names from ``modules`` (default: all) that this Python cannot find."""
    names = modules or list(REQUIREMENTS)
    out = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except (ImportError, ValueError):
            out.append(name)
    return out


def install_hint(names) -> str:
    """The command that installs ``names`` for this Python, plus the Debian/Windows notes."""
    known = {**REQUIREMENTS, **OPTIONAL}
    reqs = " ".join(f'"{known.get(n, n)}"' for n in names)
    cmd = f'"{python_command()}" -m pip install --user {reqs}'
    notes = []
    if "rasterio" in names or "shapely" in names:
        notes.append("On Debian/Ubuntu prefer the system packages: sudo apt install python3-rasterio "
                     "python3-shapely (they share QGIS's GDAL and GEOS).")
    notes.append("Or point Deep Pixel at another Python that has them: set DEEP_PIXEL_PYTHON to its "
                  "interpreter (see the README, 'External engine').")
    return cmd + "\n" + "\n".join(notes)


def not_installed(module: str) -> str | None:
    """None when ``module`` can be found here, else the sentence saying so (for logs and errors)."""
    return f"{module} is not installed (pip install {module})" if missing([module]) else None


def missing_message(names) -> str:
    return (f"Deep Pixel needs the Python package(s) {', '.join(names)}, which this Python "
            f"({python_command()}) cannot import. Install them with:\n{install_hint(names)}")


def _version(module: str):
    try:
        m = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - report any import failure as text
        return f"not importable ({type(e).__name__}: {e})"
    return getattr(m, "__version__", "unknown")


def report(engine_mode: str = "in-process") -> dict:
    """A dict describing this Python and what the engine will use."""
    info = {"engine_mode": engine_mode, "python": sys.version.split()[0], "python_executable": python_command(),
            "platform": platform.platform(), "missing": missing()}
    for name in REQUIREMENTS:
        info[name] = _version(name) if name not in info["missing"] else "missing"
    if "rasterio" not in info["missing"]:
        try:
            import rasterio
            info["gdal"] = rasterio.__gdal_version__
            info["proj"] = getattr(rasterio, "__proj_version__", "unknown")
        except Exception as e:  # noqa: BLE001
            info["gdal"] = f"unknown ({e})"
    if "shapely" not in info["missing"]:
        try:
            import shapely
            info["geos"] = ".".join(map(str, shapely.geos_version)) if hasattr(shapely, "geos_version") \
                else __import__("shapely.geos", fromlist=["x"]).geos_version_string
        except Exception:  # noqa: BLE001
            info["geos"] = "unknown"
    if "torch" not in info["missing"]:
        try:
            import torch

            from .device import select_device
            info["torch_cuda_build"] = torch.version.cuda
            info["cuda_available"] = torch.cuda.is_available()
            info["devices"] = [
                f"cuda:{i} {torch.cuda.get_device_properties(i).name}, "
                f"{torch.cuda.get_device_properties(i).total_memory / 2**30:.1f} GiB"
                for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
            info["device_auto"] = select_device("auto")[1]
            info["cpu_threads"] = torch.get_num_threads()
        except Exception as e:  # noqa: BLE001
            info["torch_error"] = f"{type(e).__name__}: {e}"
    return info


def format_report(info: dict) -> str:
    lines = ["Deep Pixel diagnostics"]
    for k, v in info.items():
        if k == "missing":
            v = ", ".join(v) if v else "none"
        lines.append(f"  {k:28s} {v}")
    if info.get("missing"):
        lines.append("")
        lines.append(missing_message(info["missing"]))
    return "\n".join(lines)
