"""The model package: a folder ``<name>/`` with ``<name>.emd``, ``<name>.pth``, ``<name>.dlpk``.

The .emd is JSON with the reference key names plus what Deep Pixel needs to rebuild the network
with nothing re-entered: ``ModelParameters`` (architecture, backbone, in_channels, classes and
extra smp arguments), ``Classes`` (output channel i is ``Classes[i]``), ``ExtractBands``
(1-based raster bands in input order), ``InputTransform`` (normalisation), ``ImageHeight`` /
``ImageWidth``, ``CRS`` / ``CellSize`` and ``WeightsSHA256``. Unknown keys are ignored.
Weights are a plain state dict read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass

from ..core.errors import DeepPixelError
from ..core.inputs import InputTransform
from ..core.schema import ClassSchema

EMD_VERSION = 1


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelPackage:
    folder: str
    emd_path: str
    emd: dict
    schema: ClassSchema
    model_type: str
    backbone: str
    in_channels: int
    model_params: dict
    bands: list
    transform: InputTransform
    tile_size: tuple          # (height, width)
    crs_wkt: str | None
    cell_size: tuple | None
    weights_path: str
    weights_hash: str

    @property
    def num_classes(self) -> int:
        return len(self.schema)

    @property
    def class_values(self) -> list:
        return self.schema.values

    def build(self, device="cpu"):
        """The network with its weights, in eval mode on ``device``."""
        import torch

        from .registry import build_model
        model = build_model(self.model_type, self.backbone, self.in_channels, self.num_classes,
                            **self.model_params)
        state = load_state_dict(self.weights_path)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise DeepPixelError(f"The weights {self.weights_path} do not fit {self.model_type}/"
                                 f"{self.backbone} with {self.in_channels} channels and "
                                 f"{self.num_classes} classes ({str(e)[:300]}).") from e
        return model.to(device).eval().requires_grad_(False) if isinstance(device, torch.device) or device \
            else model.eval()


def load_state_dict(path: str) -> dict:
    import torch
    if not os.path.isfile(path):
        raise DeepPixelError(f"The weights file {path} is missing; the model package is incomplete.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise DeepPixelError(f"Cannot read the weights {path}: the file is truncated, corrupt or not "
                             f"a plain state dict ({type(e).__name__}). Re-train or re-copy the model.") from e
    if not isinstance(state, dict):
        raise DeepPixelError(f"The weights {path} are not a state dict.")
    return state


def _need(emd, key, kind, where):
    if key not in emd:
        raise DeepPixelError(f"{where}: key {key!r} is missing from the model definition.")
    value = emd[key]
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DeepPixelError(f"{where}: key {key!r} should be {kind.__name__}, not {type(value).__name__}.")
    return value


def read_emd(emd_path: str, verify_hash: bool = True) -> ModelPackage:
    """Read and validate a .emd; the weights file sits beside it."""
    where = os.path.basename(emd_path)
    try:
        with open(emd_path, encoding="utf-8") as f:
            emd = json.load(f)
    except OSError as e:
        raise DeepPixelError(f"Cannot read the model definition {emd_path}: {e.strerror}.") from e
    except ValueError as e:
        raise DeepPixelError(f"The model definition {emd_path} is not valid JSON ({e}).") from e
    if not isinstance(emd, dict):
        raise DeepPixelError(f"{where}: the model definition must be a JSON object.")
    params = _need(emd, "ModelParameters", dict, where)
    schema = ClassSchema.from_records(_need(emd, "Classes", list, where), where)
    if len(schema) < 1:
        raise DeepPixelError(f"{where}: the model has no classes.")
    bands = _need(emd, "ExtractBands", list, where)
    if not bands or not all(isinstance(b, int) and b >= 1 for b in bands):
        raise DeepPixelError(f"{where}: ExtractBands must list 1-based band numbers.")
    transform = InputTransform.from_json(_need(emd, "InputTransform", dict, where))
    if transform.bands != len(bands):
        raise DeepPixelError(f"{where}: InputTransform has {transform.bands} bands but ExtractBands {len(bands)}.")
    in_channels = _need(params, "in_channels", int, where)
    if in_channels != transform.channels:
        raise DeepPixelError(f"{where}: in_channels {in_channels} does not match the input transform "
                             f"({transform.channels} channels).")
    if _need(params, "classes", int, where) != len(schema):
        raise DeepPixelError(f"{where}: ModelParameters.classes does not match the number of Classes.")
    model_file = _need(emd, "ModelFile", str, where)
    if os.path.basename(model_file) != model_file:
        raise DeepPixelError(f"{where}: ModelFile must be a file name beside the .emd, not {model_file!r}.")
    weights = os.path.join(os.path.dirname(os.path.abspath(emd_path)), model_file)
    if not os.path.isfile(weights):
        raise DeepPixelError(f"The weights file {model_file} named by {where} is missing.")
    expected = emd.get("WeightsSHA256")
    actual = sha256_file(weights)
    if verify_hash and expected and expected != actual:
        raise DeepPixelError(f"The weights {model_file} do not match the hash recorded in {where}: the "
                             "file was changed or damaged. Re-copy the model package.")
    cell = emd.get("CellSize")
    return ModelPackage(
        folder=os.path.dirname(os.path.abspath(emd_path)), emd_path=emd_path, emd=emd, schema=schema,
        model_type=_need(params, "architecture", str, where), backbone=_need(params, "backbone", str, where),
        in_channels=in_channels, model_params={k: v for k, v in params.items()
                                               if k not in ("architecture", "backbone", "in_channels", "classes")},
        bands=bands, transform=transform,
        tile_size=(_need(emd, "ImageHeight", int, where), _need(emd, "ImageWidth", int, where)),
        crs_wkt=emd.get("CRS") if isinstance(emd.get("CRS"), str) else None,
        cell_size=tuple(cell) if isinstance(cell, list) and len(cell) == 2 else None,
        weights_path=weights, weights_hash=actual)


def safe_extract(dlpk_path: str, target: str) -> None:
    """Extract a zip, refusing entries that escape ``target`` (``..``, absolute paths, links)."""
    try:
        zf = zipfile.ZipFile(dlpk_path)
    except (OSError, zipfile.BadZipFile) as e:
        raise DeepPixelError(f"{dlpk_path} is not a readable .dlpk (zip) file: {e}.") from e
    root = os.path.realpath(target)
    with zf:
        for info in zf.infolist():
            name = info.filename
            mode = info.external_attr >> 16
            if name.startswith(("/", "\\")) or ":" in name or ".." in name.replace("\\", "/").split("/"):
                raise DeepPixelError(f"{dlpk_path}: entry {name!r} points outside the package; refused.")
            if stat.S_ISLNK(mode):
                raise DeepPixelError(f"{dlpk_path}: entry {name!r} is a symbolic link; refused.")
            dest = os.path.realpath(os.path.join(root, name))
            if not dest.startswith(root + os.sep):
                raise DeepPixelError(f"{dlpk_path}: entry {name!r} points outside the package; refused.")
        try:
            zf.extractall(root)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DeepPixelError(f"{dlpk_path} is damaged ({e}); re-copy the model package.") from e


def load_package(path: str, verify_hash: bool = True) -> ModelPackage:
    """A model package from a .emd, a .dlpk or the model folder."""
    if os.path.isdir(path):
        emds = sorted(f for f in os.listdir(path) if f.endswith(".emd") and not f.startswith("esri_"))
        if not emds:
            raise DeepPixelError(f"The folder {path} holds no .emd model definition.")
        path = os.path.join(path, emds[0])
    if not os.path.exists(path):
        raise DeepPixelError(f"The model definition {path} does not exist.")
    if path.lower().endswith(".dlpk"):
        digest = sha256_file(path)[:16]
        cache = os.path.join(tempfile.gettempdir(), "deep_pixel_dlpk", digest)
        if not os.path.isdir(cache):
            tmp = tempfile.mkdtemp(prefix="extract-", dir=os.path.dirname(cache) if os.path.isdir(
                os.path.dirname(cache)) else _mk(os.path.dirname(cache)))
            try:
                safe_extract(path, tmp)
                os.replace(tmp, cache)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        emds = [os.path.join(dp, f) for dp, _, fs in os.walk(cache) for f in fs if f.endswith(".emd")]
        if not emds:
            raise DeepPixelError(f"{path} holds no .emd model definition.")
        path = sorted(emds)[0]
    elif not path.lower().endswith(".emd"):
        raise DeepPixelError(f"{path} is neither a .emd nor a .dlpk model file.")
    return read_emd(path, verify_hash)


def _mk(folder):
    os.makedirs(folder, exist_ok=True)
    return folder


def write_dlpk(folder: str, name: str) -> str:
    """Zip every file of the model folder into ``<folder>/<name>.dlpk`` (written atomically)."""
    target = os.path.join(folder, name + ".dlpk")
    tmp = target + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(os.listdir(folder)):
            p = os.path.join(folder, f)
            # the .onnx stays out: it doubles the download and is rebuilt from the weights when missing
            if os.path.isfile(p) and not f.endswith((".dlpk", ".partial", ".onnx")):
                zf.write(p, arcname=f)
    os.replace(tmp, target)
    return target


def write_package(folder: str, name: str, state_dict: dict, emd: dict, extra_files: dict | None = None,
                  onnx_writer=None) -> str:
    """Write ``<name>.pth``, ``<name>.emd`` (with ModelFile and hash), extras, then ``<name>.dlpk``.

    ``onnx_writer(path) -> SHA-256`` (optional) writes ``<name>.onnx``, recorded in the .emd.

    ``folder`` should be a staging folder that the caller renames when everything is written.
    Returns the .emd path.
    """
    import torch
    os.makedirs(folder, exist_ok=True)
    pth = os.path.join(folder, name + ".pth")
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, pth)
    emd = dict(emd)
    emd.update(ModelFile=name + ".pth", WeightsSHA256=sha256_file(pth), DeepPixelEmdVersion=EMD_VERSION)
    if onnx_writer is not None:
        emd.update(OnnxFile=name + ".onnx", OnnxSHA256=onnx_writer(os.path.join(folder, name + ".onnx")))
    emd_path = os.path.join(folder, name + ".emd")
    with open(emd_path, "w", encoding="utf-8") as f:
        json.dump(emd, f, indent=2)
    for fname, content in (extra_files or {}).items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(os.path.join(folder, fname), mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(content)
    write_dlpk(folder, name)
    return emd_path
