"""What Train Model writes: the .emd dictionary, the sample pictures, the log and the report."""
from __future__ import annotations

import json
import os

import numpy as np

from .. import __version__
from ..core.schema import SCHEMA_VERSION
from ..model.package import write_package
from .augment import pad_to
from .report import render_report, sample_picture


def build_emd(name, data, schema, options, model_type, backbone, in_channels, params, transform,
              summary, log, tile_size) -> dict:
    stats = data.band_stats
    per_class = {str(p["value"]): {k: p[k] for k in ("precision", "recall", "f1", "iou", "support")}
                 for p in summary.get("per_class", [])}
    return {
        "Framework": "PyTorch",
        "ModelConfiguration": "DeepPixel_SMP",
        "ModelType": "ImageClassification",
        "ModelName": model_type,
        "ModelParameters": {"architecture": model_type, "backbone": backbone, "in_channels": in_channels,
                            "classes": len(schema), **params},
        "ImageHeight": int(tile_size[0]), "ImageWidth": int(tile_size[1]),
        "ExtractBands": list(data.bands),
        "Classes": schema.to_emd_classes(),
        "NormalizationStats": {"band_min_values": stats.get("min"), "band_max_values": stats.get("max"),
                               "band_mean_values": stats.get("mean"), "band_std_values": stats.get("std"),
                               "scaled_min_values": None, "scaled_max_values": None},
        "DataRange": [min(stats["min"]), max(stats["max"])] if stats.get("min") else None,
        "InputTransform": transform.to_json(),
        "ImageSpaceUsed": "MAP_SPACE",
        "IsMultispectral": data.num_bands != 3,
        "MinCellSize": min(map(abs, data.pixel_size)) if data.pixel_size else None,
        "MaxCellSize": max(map(abs, data.pixel_size)) if data.pixel_size else None,
        "CellSize": [abs(v) for v in data.pixel_size] if data.pixel_size else None,
        "CRS": data.crs_wkt,
        "BandNames": [data.band_names[b - 1] if b - 1 < len(data.band_names) else f"band {b}"
                      for b in data.bands],
        "SourceDataType": data.dtype,
        "accuracy": summary.get("overall_accuracy"), "mIoU": summary.get("mean_iou"),
        "kappa": summary.get("kappa"), "per_class_metrics": per_class,
        "MetricsOn": "validation" if log.get("validation_chips") else "training",
        "Training": {"best_epoch": log["best_epoch"], "epochs_run": len(log["epochs"]),
                     "monitor": options.monitor, "learning_rate": log["learning_rate"],
                     "batch_size": options.batch_size, "chip_size": log["chip_size"],
                     "seed": options.seed, "device": log["device"], "augmentation": options.augmentation,
                     "model_arguments": options.model_arguments,
                     "training_folders": list(data.folders)},
        "SchemaVersion": SCHEMA_VERSION,
        "DeepPixelVersion": __version__,
    }


def training_log(epochs, best_epoch, options, stopped_early, lr, lr_test, reason, crop, data, split,
                 model_type, backbone, why, params) -> dict:
    """training_log.json (also the source of the report and the .emd's Training section)."""
    train_idx, valid_idx = split["train"], split["valid"]
    return {"epochs": list(epochs), "best_epoch": best_epoch, "monitor": options.monitor,
            "stopped_early": stopped_early, "learning_rate": lr, "lr_range_test": lr_test, "device": reason,
            "chip_size": crop, "training_chips": len(train_idx), "validation_chips": len(valid_idx),
            "dropped_chips": len(split["dropped"]),
            "split": {"train": [data.chips[i].name for i in train_idx],
                      "valid": [data.chips[i].name for i in valid_idx]},
            "settings": {"architecture": model_type, "backbone": backbone, "network": why, **params,
                         "batch_size": options.batch_size, "max_epochs": options.max_epochs,
                         "time_limit_minutes": options.time_limit,
                         "learning_rate": f"{lr:.3g}" + (" (range test)" if lr_test else ""),
                         "validation_percent": options.validation_percent, "monitor": options.monitor,
                         "augmentation": options.augmentation, "seed": options.seed, "device": reason,
                         "model_arguments": options.model_arguments, "folders": "; ".join(data.folders)}}


def sample_pictures(model_predict, data, indices, schema, transform, multiple, max_count=4) -> list:
    """Up to ``max_count`` (data URI, caption) of image | reference | prediction."""
    names = [n.lower() for n in data.band_names]
    rgb = tuple(names.index(c) for c in ("red", "green", "blue")) if all(
        c in names for c in ("red", "green", "blue")) else (2, 1, 0)
    out = []
    for i in list(indices)[:max_count]:
        c = data.chips[i]
        x = pad_to(transform.apply(c.image, c.valid), multiple, 0.0)
        pred = model_predict(x[None])[0][: c.labels.shape[0], : c.labels.shape[1]]
        pred = np.where(c.valid, pred, 0)
        out.append((sample_picture(c.image, c.valid, c.labels, pred, schema, rgb), c.name))
    return out


def write_model(folder, name, state_dict, emd, log, summary, schema, pictures, onnx_model=None, progress=None,
                dlpk: bool = True) -> str:
    """The package; with ``onnx_model``, also ``<name>.onnx`` (skipped, with a note, without the onnx package)."""
    html_text = render_report(name, log, summary, schema, pictures)
    extras = {"model_metrics.html": html_text,
              "training_log.json": json.dumps(log, indent=2, default=_json_default)}
    writer = None
    if onnx_model is not None:
        from ..model.onnx_file import deepness_metadata, export_onnx, onnx_available
        missing = onnx_available()
        if missing:
            if progress is not None:
                progress.log(f"No .onnx written: {missing}. Classify Pixels runs the weights with torch.")
        else:
            def writer(path):
                try:
                    return export_onnx(onnx_model, emd["ModelParameters"]["in_channels"], emd["ImageHeight"], path,
                                       deepness_metadata(emd))
                except Exception as e:      # the trained weights must not be lost to their optional ONNX copy
                    if progress is not None:
                        progress.warn(f"No .onnx written (exporting the network failed: {type(e).__name__}: "
                                      f"{str(e)[:200]}). Classify Pixels runs the weights with torch.")
                    return None
    return write_package(folder, name, state_dict, emd, extras, writer, dlpk)


def _json_default(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return str(v)


def model_name(output_folder: str) -> str:
    return os.path.basename(os.path.normpath(output_folder)) or "model"
