"""The model package's ONNX file: written by Train Model, found (or rebuilt) by Classify Pixels.

``<name>.onnx`` holds the network followed by a softmax, input ``image`` (N, channels, H, W)
standardised as the package's InputTransform does, output ``probabilities`` (N, classes, H, W),
with dynamic batch and spatial axes. H and W share one symbolic name (``tile``): square tiles,
which is what the Deepness QGIS plugin checks for. The metadata Deepness reads is written too
(``model_type``, ``class_names``, ``resolution``, ``tile_size``/``tiles_size``, ``tiles_overlap``,
``standardization_mean``/``standardization_std`` in its convention: values / 255, then (x - mean) / std).

The weights (.pth) stay the source of truth: the .emd records the .onnx and its SHA-256; a missing
or stale .onnx is rebuilt into a cache folder (never into the user's package), never an error.
"""
from __future__ import annotations

import json
import os
import tempfile

from ..core.diagnostics import not_installed
from ..core.errors import DeepPixelError
from ..io.staging import staged_file
from .package import sha256_file

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def onnx_available() -> str | None:
    """None when torch can export ONNX here (it needs the onnx package), else why not."""
    return not_installed("onnx")


def deepness_metadata(package_like, overlap_percent: int = 10) -> dict:
    """Deepness plugin metadata (JSON-encoded values) from an .emd-like dict or a ModelPackage."""
    emd = package_like if isinstance(package_like, dict) else package_like.emd
    classes = emd.get("Classes") or []
    names = {str(i): str(c.get("Name", f"class {c.get('Value')}")) for i, c in enumerate(classes)}
    transform = emd.get("InputTransform") or {}
    cell = emd.get("CellSize") or [None]
    meta = {"model_type": "Segmentor", "class_names": names,
            "tile_size": int(emd.get("ImageHeight", 256)), "tiles_size": int(emd.get("ImageHeight", 256)),
            "tiles_overlap": int(overlap_percent),
            "standardization_mean": [m / 255.0 for m in transform.get("mean", [])],
            "standardization_std": [max(s, 1e-6) / 255.0 for s in transform.get("std", [])],
            "deep_pixel_classes": [c.get("Value") for c in classes]}
    if cell[0] and _metric(emd.get("CRS")):
        meta["resolution"] = float(cell[0]) * 100.0          # centimetres per pixel
    return {k: json.dumps(v) for k, v in meta.items()}


def _metric(crs_wkt) -> bool:
    return bool(crs_wkt) and ("PROJCS" in crs_wkt or "PROJCRS" in crs_wkt)


def export_onnx(model, in_channels: int, tile: int, target: str, metadata: dict) -> str:
    """Write ``model`` + softmax to ``target`` (atomically) with ``metadata``; returns its SHA-256."""
    import copy
    import warnings

    import onnx
    import torch

    class WithSoftmax(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    net = WithSoftmax(copy.deepcopy(model).float().cpu()).eval()
    example = torch.zeros(1, in_channels, tile, tile)
    with staged_file(target) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")          # tracer warnings about the network's shape checks
        torch.onnx.export(net, (example,), tmp, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch", 2: "tile", 3: "tile"},
                                        OUTPUT_NAME: {0: "batch", 2: "tile", 3: "tile"}})
        proto = onnx.load(tmp)
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, tmp)
        digest = sha256_file(tmp)
    return digest


def packaged_onnx(package) -> str | None:
    """The package's own .onnx when the .emd records it and its hash matches, else None."""
    name = package.emd.get("OnnxFile")
    if not isinstance(name, str) or os.path.basename(name) != name:
        return None
    path = os.path.join(package.folder, name)
    if os.path.isfile(path) and package.emd.get("OnnxSHA256") == sha256_file(path):
        return path
    return None


def cache_folder() -> str:
    base = os.environ.get("DEEP_PIXEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "deep_pixel")
    folder = os.path.join(base, "onnx")
    try:
        os.makedirs(folder, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, delete=True)
        probe.close()
    except OSError:
        folder = os.path.join(tempfile.gettempdir(), "deep_pixel_onnx")
        os.makedirs(folder, exist_ok=True)
    return folder


def onnx_for(package, progress=None) -> tuple:
    """(path, note) of an ONNX file for this package: its own, a cached rebuild, or a new rebuild.

    Raises DeepPixelError when none exists and none can be built (the caller falls back to torch)."""
    own = packaged_onnx(package)
    if own:
        return own, f"the package's {os.path.basename(own)} (SHA-256 checked)"
    key = package.weights_hash[:20] + "-" + _params_key(package)
    cached = os.path.join(cache_folder(), key + ".onnx")
    if os.path.isfile(cached):
        return cached, "rebuilt earlier from the weights (cache)"
    why = onnx_available()
    if why:
        raise DeepPixelError(f"the package has no usable .onnx and it cannot be rebuilt: {why}")
    if progress is not None:
        progress.log("The model package has no usable .onnx: rebuilding it from the weights (once; cached).")
    model = package.build("cpu")
    export_onnx(model, package.in_channels, package.tile_size[0], cached, deepness_metadata(package))
    return cached, "rebuilt from the weights (the package had none or a stale one)"


def _params_key(package) -> str:
    import hashlib
    text = json.dumps([package.model_type, package.backbone, package.in_channels, package.num_classes,
                       package.model_params], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
