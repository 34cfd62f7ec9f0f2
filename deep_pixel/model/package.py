"""The model package: a folder ``<name>/`` with ``<name>.emd``, ``<name>.pth``, ``<name>.dlpk``.

The .emd is JSON with the reference key names plus what Deep Pixel needs to rebuild the network
with nothing re-entered: ``ModelParameters`` (architecture, backbone, in_channels, classes and
extra smp arguments), ``Classes`` (output channel i is ``Classes[i]``), ``ExtractBands``
(1-based raster bands in input order), ``InputTransform`` (normalisation), ``ImageHeight`` /
``ImageWidth``, ``CRS`` / ``CellSize`` and ``WeightsSHA256``. Unknown keys are ignored.
Weights are a plain state dict read with ``torch.load(weights_only=True)``.

``read_emd`` refuses every value Classify or Train could not use (a CellSize of 0, a CRS that does
not parse, a band index out of range...) with the file, the key, the value and the fix, so nothing
fails later with a traceback. A .dlpk is unpacked by ``dlpk.py`` (limits, one .emd, a shared cache).
"""
from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass

from ..core.errors import DeepPixelError
from ..core.inputs import InputTransform
from ..core.schema import ClassSchema
from ..core.tiles import MIN_TILE
from .dlpk import FIX, cached_package, sha256_file
from .dlpk import safe_extract as safe_extract  # re-exported: the package's public names stay here
from .registry import ARCHITECTURES, MAX_MEMBERS, MAX_PIXEL_BRANCH

EMD_VERSION = 1
# ImageHeight / ImageWidth: the chip size the network was trained on. No GPU trains on chips larger
# than this; a larger value is damage, and Classify would try to hold tiles of that size in memory.
MAX_TILE = 8192
# segmentation_models_pytorch encoders have at most 5 stages (the tile must be a multiple of 2**depth).
MAX_ENCODER_DEPTH = 5
MAX_DECODER_CHANNELS = 4096
# InputTransform means and standard deviations are computed in float32: far below its 3.4e38 limit,
# or every pixel becomes infinite.
MAX_STATISTIC = 1e30


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
        try:
            model = build_model(self.model_type, self.backbone, self.in_channels, self.num_classes,
                                **self.model_params)
        except (AssertionError, IndexError, AttributeError, ZeroDivisionError) as e:  # smp's own checks
            raise DeepPixelError(f"{os.path.basename(self.emd_path)}: ModelParameters {_show(self.model_params)} do "
                                 f"not build a {self.model_type}/{self.backbone} network ({e}). {FIX}") from e
        state = load_state_dict(self.weights_path)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as e:
            raise DeepPixelError(f"The weights {self.weights_path} do not fit {self.model_type}/"
                                 f"{self.backbone} with {self.in_channels} channels and "
                                 f"{self.num_classes} classes ({str(e)[:300]}). {FIX}") from e
        return model.to(device).eval().requires_grad_(False) if isinstance(device, torch.device) or device \
            else model.eval()


def load_state_dict(path: str) -> dict:
    import torch
    if not os.path.isfile(path):
        raise DeepPixelError(f"The weights file {path} is missing; the model package is incomplete. Copy the "
                             "whole model folder (or the .dlpk).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated or foreign files
        raise DeepPixelError(f"Cannot read the weights {path}: the file is truncated, corrupt or not "
                             f"a plain state dict ({type(e).__name__}). Re-train or re-copy the model.") from e
    if not isinstance(state, dict):
        raise DeepPixelError(f"The weights {path} are not a state dict. {FIX}")
    return state


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(where: str, key: str, value, should: str) -> DeepPixelError:
    return DeepPixelError(f"{where}: key {key!r} is {_show(value)}; it should be {should}. {FIX}")


def _real(value, limit=math.inf) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < limit


def _need(emd, key, kind, where, label=None):
    label = label or key
    if key not in emd:
        raise DeepPixelError(f"{where}: key {label!r} is missing from the model definition. {FIX}")
    value = emd[key]
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DeepPixelError(f"{where}: key {label!r} should be {kind.__name__}, not {type(value).__name__} "
                             f"({_show(value)}). {FIX}")
    return value


def _int(emd, key, where, low, high, label=None):
    value = _need(emd, key, int, where, label)
    if not low <= value <= high:
        raise _bad(where, label or key, value, f"a whole number from {low} to {high}")
    return value


def _classes(emd, where) -> ClassSchema:
    records = _need(emd, "Classes", list, where)
    try:
        schema = ClassSchema.from_records(records, where)
    except DeepPixelError as e:
        text = str(e)[len(where):].lstrip(":, ") if str(e).startswith(where) else str(e)
        raise DeepPixelError(f"{where}: key 'Classes': {text} {FIX}") from e
    if len(schema) < 1:
        raise DeepPixelError(f"{where}: the model has no classes (key 'Classes' is empty). {FIX}")
    return schema


def _bands(emd, where) -> list:
    bands = _need(emd, "ExtractBands", list, where)
    if not bands or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in bands):
        raise _bad(where, "ExtractBands", bands, "the 1-based band numbers the model reads, e.g. [1, 2, 3]")
    names = emd.get("BandNames")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise _bad(where, "BandNames", names, "a list of band names (text), or null")
    return bands


def _transform(emd, where, n_bands) -> InputTransform:
    raw = _need(emd, "InputTransform", dict, where)
    for key in ("mean", "std"):
        values = raw.get(key)
        if not isinstance(values, list) or not values or not all(_real(v, MAX_STATISTIC) for v in values):
            raise _bad(where, f"InputTransform.{key}", values,
                       f"a list of numbers (below {MAX_STATISTIC:g} in size), one per band")
    if len(raw["mean"]) != n_bands:
        raise DeepPixelError(f"{where}: InputTransform has {len(raw['mean'])} bands but ExtractBands {n_bands}. {FIX}")
    if len(raw["std"]) != n_bands or any(v < 0 for v in raw["std"]):
        raise _bad(where, "InputTransform.std", raw["std"], f"{n_bands} numbers of 0 or more, one per band")
    indices = raw.get("indices") or []
    if not isinstance(indices, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(i, int) and not isinstance(i, bool)
                                                        and 0 <= i < n_bands for i in p) for p in indices):
        raise _bad(where, "InputTransform.indices", indices,
                   f"a list of [a, b] band positions from 0 to {n_bands - 1} (for (a - b) / (a + b))")
    try:
        return InputTransform.from_json({**raw, "indices": indices})
    except DeepPixelError as e:
        raise DeepPixelError(f"{where}: key 'InputTransform': {e} {FIX}") from e


def _model_parameters(params, where, transform, n_classes) -> int:
    """Check ModelParameters against the transform and the classes; the network's input channels."""
    arch = _need(params, "architecture", str, where, "ModelParameters.architecture")
    if arch.upper().replace("-", "").replace("_", "") not in ARCHITECTURES:
        raise _bad(where, "ModelParameters.architecture", arch, "one of " + ", ".join(ARCHITECTURES))
    if not _need(params, "backbone", str, where, "ModelParameters.backbone").strip():
        raise _bad(where, "ModelParameters.backbone", params["backbone"], "an encoder name, e.g. resnet34")
    in_channels = _need(params, "in_channels", int, where, "ModelParameters.in_channels")
    if in_channels != transform.channels:
        raise DeepPixelError(f"{where}: in_channels {in_channels} does not match the input transform "
                             f"({transform.channels} channels). {FIX}")
    if _need(params, "classes", int, where, "ModelParameters.classes") != n_classes:
        raise DeepPixelError(f"{where}: ModelParameters.classes does not match the number of Classes "
                             f"({params['classes']} and {n_classes}). {FIX}")
    if "encoder_depth" in params:     # Classify and Train read it with int(): null is no depth
        _int(params, "encoder_depth", where, 1, MAX_ENCODER_DEPTH, "ModelParameters.encoder_depth")
    channels = params.get("decoder_channels")
    if channels is not None and not (isinstance(channels, list) and 0 < len(channels) <= 8 and all(
            isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_DECODER_CHANNELS for c in channels)):
        raise _bad(where, "ModelParameters.decoder_channels", channels,
                   f"a list of up to 8 channel counts from 1 to {MAX_DECODER_CHANNELS}, or null")
    if params.get("pixel_branch") is not None:
        _int(params, "pixel_branch", where, 0, MAX_PIXEL_BRANCH, "ModelParameters.pixel_branch")
    if params.get("members") is not None:
        _int(params, "members", where, 1, MAX_MEMBERS, "ModelParameters.members")
    attention = params.get("decoder_attention_type")
    if attention is not None and not isinstance(attention, str):
        raise _bad(where, "ModelParameters.decoder_attention_type", attention, "a name (e.g. scse) or null")
    return in_channels


def _crs(emd, where) -> str | None:
    """The training raster's CRS as WKT (what Classify compares and parses), None when not recorded."""
    value = emd.get("CRS")
    if value is None or value == "":
        return None
    should = "the training raster's CRS as WKT (or EPSG:xxxx), or null"
    if not isinstance(value, str):
        raise _bad(where, "CRS", value, should)
    import rasterio
    from rasterio.crs import CRS
    with rasterio.Env():             # GDAL's complaints go to logging, not to the console
        if _parses(CRS.from_wkt, value):
            return value
        try:
            return CRS.from_user_input(value).to_wkt()
        except Exception as e:  # rasterio raises CRSError; GDAL's failures may surface as other types
            raise _bad(where, "CRS", value, should) from e


def _parses(parse, text) -> bool:
    """Whether `parse(text)` succeeds (any failure means no: rasterio and GDAL raise several types)."""
    try:
        parse(text)
    except Exception:
        return False
    return True


def _cell_size(emd, where) -> tuple | None:
    cell = emd.get("CellSize")
    if cell is None:
        return None
    if not (isinstance(cell, list) and len(cell) == 2 and all(_real(v) and v > 0 for v in cell)):
        raise _bad(where, "CellSize", cell, "[width, height] of the training raster's pixels, both above 0, or null")
    return tuple(cell)


def _weights(emd, emd_path, where, verify_hash) -> tuple:
    """(path, SHA-256) of the weights file the .emd names, checked against WeightsSHA256."""
    model_file = _need(emd, "ModelFile", str, where)
    if os.path.basename(model_file) != model_file or model_file in ("", ".", ".."):
        raise DeepPixelError(f"{where}: ModelFile must be a file name beside the .emd, not {model_file!r}. {FIX}")
    weights = os.path.join(os.path.dirname(os.path.abspath(emd_path)), model_file)
    if not os.path.isfile(weights):
        raise DeepPixelError(f"The weights file {model_file} named by {where} is missing. Copy the whole model "
                             "folder (or the .dlpk), not the .emd alone.")
    expected = emd.get("WeightsSHA256")
    if expected is not None and not isinstance(expected, str):
        raise _bad(where, "WeightsSHA256", expected, "the SHA-256 of the weights as 64 hexadecimal digits")
    actual = sha256_file(weights)
    if verify_hash and expected and expected != actual:
        raise DeepPixelError(f"The weights {model_file} do not match the hash recorded in {where}: the "
                             "file was changed or damaged. Re-copy the model package.")
    return weights, actual


def _load_emd_json(emd_path, where) -> dict:
    try:
        with open(emd_path, encoding="utf-8-sig") as f:       # a byte-order mark (Windows editors) is fine
            emd = json.load(f)
    except OSError as e:
        raise DeepPixelError(f"Cannot read the model definition {emd_path}: {e.strerror}.") from e
    except (ValueError, RecursionError) as e:
        raise DeepPixelError(f"The model definition {emd_path} is not valid JSON ({e}). {FIX}") from e
    if not isinstance(emd, dict):
        raise DeepPixelError(f"{where}: the model definition must be a JSON object. {FIX}")
    return emd


def read_emd(emd_path: str, verify_hash: bool = True) -> ModelPackage:
    """Read a .emd and refuse every value Classify or Train could not use; the weights sit beside it."""
    where = os.path.basename(emd_path)
    emd = _load_emd_json(emd_path, where)
    if "ModelParameters" not in emd and "Classes" in emd and "ModelFile" not in emd:
        raise DeepPixelError(f"{emd_path} is the class template that Export Training Data writes beside the chips, "
                             "not a trained model (it has no network or weights). Give the .emd (or .dlpk) in the "
                             "folder Train Model wrote (OUTPUT_MODEL).")
    params = _need(emd, "ModelParameters", dict, where)
    schema = _classes(emd, where)
    bands = _bands(emd, where)
    transform = _transform(emd, where, len(bands))
    in_channels = _model_parameters(params, where, transform, len(schema))
    tile_size = tuple(_int(emd, key, where, MIN_TILE, MAX_TILE) for key in ("ImageHeight", "ImageWidth"))
    crs_wkt, cell_size = _crs(emd, where), _cell_size(emd, where)
    weights, actual = _weights(emd, emd_path, where, verify_hash)
    return ModelPackage(
        folder=os.path.dirname(os.path.abspath(emd_path)), emd_path=emd_path, emd=emd, schema=schema,
        model_type=params["architecture"], backbone=params["backbone"], in_channels=in_channels,
        model_params={k: v for k, v in params.items()
                      if k not in ("architecture", "backbone", "in_channels", "classes")},
        bands=bands, transform=transform, tile_size=tile_size, crs_wkt=crs_wkt, cell_size=cell_size,
        weights_path=weights, weights_hash=actual)


def load_package(path: str, verify_hash: bool = True) -> ModelPackage:
    """A model package from a .emd, a .dlpk (unpacked once into a cache: see dlpk.py) or the model folder."""
    if os.path.isdir(path):
        emds = sorted(f for f in os.listdir(path) if f.endswith(".emd") and not f.startswith("esri_"))
        if not emds:
            raise DeepPixelError(f"The folder {path} holds no .emd model definition: choose the folder Train Model "
                                 "wrote (it holds <name>.emd and <name>.pth), its .emd or its .dlpk.")
        path = os.path.join(path, emds[0])
    if not os.path.exists(path):
        raise DeepPixelError(f"The model definition {path} does not exist.")
    if not path.lower().endswith(".dlpk"):
        if not path.lower().endswith(".emd"):
            raise DeepPixelError(f"{path} is neither a .emd nor a .dlpk model file: choose the .emd or .dlpk "
                                 "that Train Model wrote.")
        return read_emd(path, verify_hash)
    emd_path = cached_package(path)
    try:
        return read_emd(emd_path, verify_hash)
    except DeepPixelError as e:
        raise DeepPixelError(f"In {path}: {e}") from e


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
                  onnx_writer=None, dlpk: bool = True) -> str:
    """Write ``<name>.pth``, ``<name>.emd`` (with ModelFile and hash), extras, then ``<name>.dlpk`` (unless
    ``dlpk`` is False: training's checkpoints, where zipping 87 MB of weights at each best epoch took a quarter of
    training's time on the real scenes).

    ``onnx_writer(path) -> SHA-256 or None`` (optional) writes ``<name>.onnx``, recorded in the .emd.

    ``folder`` should be a staging folder that the caller renames when everything is written.
    Returns the .emd path.
    """
    import torch
    os.makedirs(folder, exist_ok=True)
    pth = os.path.join(folder, name + ".pth")
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, pth)
    emd = dict(emd)
    emd.update(ModelFile=name + ".pth", WeightsSHA256=sha256_file(pth), DeepPixelEmdVersion=EMD_VERSION)
    digest = onnx_writer(os.path.join(folder, name + ".onnx")) if onnx_writer is not None else None
    if digest:                                   # None: the writer could not write it (and said why)
        emd.update(OnnxFile=name + ".onnx", OnnxSHA256=digest)
    emd_path = os.path.join(folder, name + ".emd")
    with open(emd_path, "w", encoding="utf-8") as f:
        json.dump(emd, f, indent=2)
    for fname, content in (extra_files or {}).items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(os.path.join(folder, fname), mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(content)
    if dlpk:
        write_dlpk(folder, name)
    return emd_path
