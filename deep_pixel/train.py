"""Train Model: chips folders -> a self-describing model folder (.emd, .pth, .dlpk, report, log).

The loop: spatially separate validation chips, band-statistics normalisation via InputTransform,
random labelled crops with flips/rotations, cross-entropy ignoring unlabelled pixels, AdamW with
warm-up then cosine decay (rate from a range test when none is given), evaluation every epoch,
the best epoch kept, early stopping. The output folder appears only when training ends; meanwhile the best epoch so far is kept as a
loadable package in ``<output>.checkpoint`` (see train_checkpoint), which survives a killed run and
is removed on completion or cancel.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from .augment import BatchMaker, augmentation_set, label_lut
from .chips import read_chip_folders
from .device import select_device
from .errors import Cancelled, DeepPixelError
from .files import check_output_folder, staged_folder
from .inputs import InputTransform
from .lr_finder import find_learning_rate
from .models import build_model
from .progress import Progress, check
from .train_options import AUTO_VALIDATION_MIN_CHIPS, MIN_STEPS_PER_EPOCH, TrainOptions, network_parameters
from .train_checkpoint import Checkpoints
from .train_package import build_emd, model_name, sample_pictures, training_log, write_model
from .train_split import spatial_split
from .train_step import SegmentationLoss, Stepper, class_weights

CPU_CHIP_SIZE = 64


@dataclass
class TrainResult:
    folder: str
    emd_path: str
    best_epoch: int
    epochs_run: int
    summary: dict
    log: dict
    model: object = None         # the trained network (best epoch, eval mode, on its device)


def ndvi_pair(band_names, bands):
    """[nir, red] positions in the model's band list when the names say which bands they are."""
    names = [(band_names[b - 1] if b - 1 < len(band_names) else "").strip().lower() for b in bands]
    nir = [i for i, n in enumerate(names) if n in ("nir", "near infrared", "near-infrared", "nir1")]
    red = [i for i, n in enumerate(names) if n == "red"]
    return [nir[0], red[0]] if nir and red else None


def _load_pretrained(options, data, progress):
    """-> (package or None, encoder state dict or None)."""
    path = options.pretrained_model
    if not path:
        return None, None
    if not os.path.exists(path):
        raise DeepPixelError(f"The pretrained model {path} does not exist.")
    if path.lower().endswith((".emd", ".dlpk")) or os.path.isdir(path):
        from .package import load_package
        pkg = load_package(path)
        model_type, backbone = options.network()
        if options.network_given and (pkg.model_type, pkg.backbone.lower()) != (model_type, backbone.lower()):
            raise DeepPixelError(f"The pretrained model {os.path.basename(path)} is {pkg.model_type}/{pkg.backbone} "
                                 f"but MODEL_TYPE/BACKBONE are {model_type}/{backbone}: a model "
                                 f"is fine-tuned with its own network. Set MODEL_TYPE={pkg.model_type} and "
                                 f"BACKBONE={pkg.backbone} (or leave both out), or leave PRETRAINED_MODEL empty.")
        if pkg.transform.bands != data.num_bands:
            raise DeepPixelError(f"The pretrained model {os.path.basename(path)} takes {pkg.transform.bands} "
                                 f"band(s) but the chips have {data.num_bands}; fine-tune only on chips "
                                 "exported from the same bands.")
        return pkg, None
    from .package import load_state_dict
    state = load_state_dict(path)
    return None, {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in state.items()}


HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")   # ImageNet heads: no place in an encoder


def _load_matching(module, state, what, progress, backbone=None):
    own = module.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fit:
        raise DeepPixelError(f"No weight of the {what} fits this network (wrong backbone?). Use weights "
                             "of the same BACKBONE.")
    if backbone is not None:
        # A first convolution of another band count may differ; anything else left over means the
        # file was saved from another backbone (resnet18 weights half-fill a resnet34, silently).
        unused = [k for k in state if k not in fit and not k.startswith(HEAD_PREFIXES)]
        missing = [k for k in own if k not in fit and "num_batches_tracked" not in k]
        if len(unused) > 2 or len(missing) > 2:
            raise DeepPixelError(f"The {what} does not fit BACKBONE {backbone}: {len(missing)} tensor(s) of the "
                                 f"encoder find no match and {len(unused)} of the file have no place (e.g. "
                                 f"{(unused or missing)[0]!r}). It was saved from another backbone; set BACKBONE "
                                 "to the one it comes from.")
    module.load_state_dict(fit, strict=False)
    skipped = len(own) - len(fit)
    progress.log(f"Loaded {len(fit)} tensors from the {what}" + (f"; {skipped} kept fresh (shapes differ or "
                                                                  "missing)." if skipped else "."))


def _freeze(model, frozen: bool):
    for p in model.encoder.parameters():
        p.requires_grad_(not frozen)


def _schedule(total_steps, warmup_fraction):
    warm = max(1, int(total_steps * warmup_fraction))

    def factor(step):
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return factor


def _better(monitor, value, best):
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best - 1e-6 if monitor == "valid_loss" else value > best + 1e-6


def train_model(folders, output_folder: str, options: TrainOptions | None = None,
                progress: Progress | None = None) -> TrainResult:
    """Train on one or several chips folders and write the model folder ``output_folder``.

    The best epoch so far is kept in ``<output_folder>.checkpoint`` while training runs.
    """
    options = options or TrainOptions()
    progress = check(progress)
    options.validate()
    folders = [folders] if isinstance(folders, str) else list(folders)
    check_output_folder(output_folder, inputs=folders)
    checkpoints = Checkpoints(output_folder, model_name(output_folder), folders, progress)
    try:
        result = _train(folders, output_folder, options, progress, checkpoints)
    except Cancelled:
        checkpoints.remove()
        raise
    except BaseException:
        notice = checkpoints.kept_notice()
        if notice:
            progress.warn(notice)
        raise
    checkpoints.remove()
    return result


def _train(folders, output_folder, options, progress, checkpoints) -> TrainResult:
    import torch
    device, reason = select_device(options.device)
    progress.log(f"Device: {reason}.")
    torch.manual_seed(options.seed)
    data = read_chip_folders(folders, progress.sub(0.0, 0.03))
    ignore = set(options.arg("ignore_classes"))
    schema = data.schema
    for v in ignore:
        schema = schema.without_value(v) if schema.by_value(v) else schema
    if len(schema) < 1:
        raise DeepPixelError("Every class is in ignore_classes: nothing is left to train.")
    class_values = schema.values
    pkg, encoder_state = _load_pretrained(options, data, progress)
    if pkg is not None:
        model_type, backbone, params = pkg.model_type, pkg.backbone, dict(pkg.model_params)
        transform = pkg.transform
        progress.log(f"Fine-tuning {model_type}/{backbone} from {os.path.basename(pkg.emd_path)}: "
                     "architecture, backbone, decoder and normalisation come from that model.")
        why = "from the pretrained model"
    else:
        model_type, backbone = options.network()
        params, why = network_parameters(options, device.type == "cuda")
        pair = ndvi_pair(data.band_names, data.bands) if options.arg("ndvi") else None
        transform = InputTransform(data.band_stats["mean"], data.band_stats["std"], [pair] if pair else [])
        if pair:
            progress.log(f"NDVI added as an input channel (bands {data.bands[pair[0]]} nir, {data.bands[pair[1]]} red).")
    depth = int(params.get("encoder_depth", 5))
    multiple = 2 ** depth
    validation_percent = options.resolved_validation_percent(len(data.chips))
    if options.validation_percent is None:
        progress.log(f"VALIDATION_PERCENT not given: {validation_percent:g}% "
                     + ("(the default)." if validation_percent else
                        f"(fewer than {AUTO_VALIDATION_MIN_CHIPS} chips: every chip trains; give VALIDATION_PERCENT "
                        "to hold some out)."))
    split = spatial_split(data.chips, validation_percent, options.seed)
    train_idx, valid_idx = split["train"], split["valid"]
    progress.log(f"{len(data.chips)} chips from {len(data.folders)} folder(s), {data.num_bands} band(s), "
                 f"classes {class_values}; {len(train_idx)} for training, {len(valid_idx)} for validation "
                 f"(spatially apart, {len(split['dropped'])} training chips dropped because they overlap "
                 "validation chips).")
    if not valid_idx:
        progress.warn("No separate validation chips (too few chips or VALIDATION_PERCENT=0): metrics and "
                      "the best epoch are measured on the training chips.")
    eval_idx = valid_idx or train_idx
    crop = options.arg("chip_size") or (CPU_CHIP_SIZE if device.type == "cpu" else max(data.tile_size))
    if options.arg("chip_size") and crop % multiple:    # whole chips of any size are padded instead
        raise DeepPixelError(f"chip_size {crop} does not fit {model_type} with encoder depth {depth}: crops must "
                             f"be a multiple of {multiple} px (2**encoder_depth), e.g. {multiple}, {2 * multiple}, "
                             f"{4 * multiple} or {8 * multiple}. Change chip_size in MODEL_ARGUMENTS.")
    lut = label_lut(class_values, ignore)
    maker = BatchMaker(data.chips, transform, lut, crop, multiple,
                       augmentation_set(options.augmentation, options.arg("augmentations")),
                       options.arg("min_labelled_fraction"), options.seed)
    weights = None
    if options.arg("class_balancing"):
        weights = class_weights(data.pixels_per_class(train_idx), class_values)
        progress.log("Class weights (1/sqrt frequency): " + ", ".join(
            f"{v}={w:.2f}" for v, w in zip(class_values, weights)))
    loss_fn = SegmentationLoss(len(class_values), weights, options.arg("focal_loss"),
                               options.arg("dice_loss_fraction"))
    model = build_model(model_type, backbone, transform.channels, len(class_values), **params)
    if pkg is not None:
        _load_matching(model, torch.load(pkg.weights_path, map_location="cpu", weights_only=True),
                       "pretrained model", progress)
    elif encoder_state is not None:
        _load_matching(model.encoder, encoder_state, "encoder weights file", progress, backbone)
    frozen = bool(options.pretrained_model) and options.freeze_backbone
    _freeze(model, frozen)
    model.to(device).train()
    progress.log(f"Network {model_type}/{backbone}, {transform.channels} input channel(s), "
                 f"{len(class_values)} classes, {why}; crops of {crop} px, batch {options.batch_size}"
                 + (", backbone frozen" if frozen else "") + ".")
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate or 1e-3,
                                  weight_decay=options.arg("weight_decay"))
    stepper = Stepper(model, optimizer, loss_fn, device, options.batch_size, progress)
    stepper.make_batch = maker.sample
    rng = np.random.default_rng(options.seed + 1)
    batch = min(options.batch_size, len(train_idx))

    def random_batch():
        return list(rng.choice(train_idx, size=batch, replace=len(train_idx) < batch))

    lr_test = None
    lr = options.learning_rate
    if lr is None:
        lr_test = find_learning_rate(stepper, random_batch, options.arg("lr_test_steps"), progress.sub(0.03, 0.08))
        lr = lr_test["lr"]
        progress.log(f"Learning-rate range test picked {lr:.2g}.")
    for g in optimizer.param_groups:
        g["lr"] = lr
        g["initial_lr"] = lr
    steps_per_epoch = options.arg("steps_per_epoch") or max(MIN_STEPS_PER_EPOCH, math.ceil(len(train_idx) / batch))
    total = steps_per_epoch * options.max_epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, options.arg("warmup_fraction")))
    epochs, best, best_state, best_epoch, best_summary = [], None, None, 0, {}
    patience, stale, stopped_early = options.arg("patience"), 0, False
    train_progress = progress.sub(0.08, 0.95) if lr_test else progress.sub(0.03, 0.95)
    started = time.monotonic()
    step = 0
    name = model_name(output_folder)

    def predict(x):
        with torch.no_grad():
            return np.asarray(class_values)[stepper.forward(stepper.to_device(x)).float().argmax(1).cpu().numpy()]

    def write_best(folder, checkpoint=None, with_onnx=False):
        """The package of the best epoch so far (``model`` holds its weights) into ``folder``."""
        log = training_log(epochs, best_epoch, options, stopped_early, lr, lr_test, reason, crop, data, split,
                           model_type, backbone, why, params)
        was_training = model.training
        model.eval()
        try:
            pictures = sample_pictures(predict, data, eval_idx, schema, transform, multiple)
        finally:
            model.train(was_training)
            if frozen and was_training:
                model.encoder.eval()
        emd = build_emd(name, data, schema, options, model_type, backbone, transform.channels, params, transform,
                        best_summary, log, data.tile_size)
        if checkpoint:
            emd["Checkpoint"] = checkpoint
        write_model(folder, name, best_state, emd, log, best_summary, schema, pictures,
                    onnx_model=model if with_onnx else None, progress=progress)
        return log

    for epoch in range(1, options.max_epochs + 1):
        if frozen and options.arg("unfreeze_after") and epoch == options.arg("unfreeze_after") + 1:
            frozen = False
            _freeze(model, False)
            progress.log(f"Epoch {epoch}: backbone unfrozen.")
        model.train()
        if frozen:
            model.encoder.eval()    # keep the pretrained batch-norm statistics
        order = rng.permutation(train_idx).tolist()
        while len(order) < steps_per_epoch * batch:
            order += rng.permutation(train_idx).tolist()
        losses, t0 = [], time.monotonic()
        for b in range(steps_per_epoch):
            progress.check_cancelled()
            loss = stepper.step(maker.sample, order[b * batch:(b + 1) * batch])
            scheduler.step()
            step += 1
            losses.append(loss)
            elapsed = time.monotonic() - started
            eta = elapsed / step * (total - step)
            train_progress.report(step / total, f"epoch {epoch}/{options.max_epochs} batch {b + 1}/"
                                  f"{steps_per_epoch} loss {loss:.3f} ETA {int(eta) // 60:02d}:{int(eta) % 60:02d}")
        train_seconds = time.monotonic() - t0
        progress.check_cancelled()
        n_eval = math.ceil(len(eval_idx) / max(1, min(stepper.micro, options.batch_size)))
        evaluated = [0]

        def eval_batch(indices, done=evaluated, at=f"epoch {epoch}/{options.max_epochs} validation", n=n_eval,
                       fraction=step / total):
            done[0] += 1
            train_progress.report(fraction, f"{at} {done[0]}/{n}")
            progress.check_cancelled()
            return maker.whole(indices)
        valid_loss, cm = stepper.evaluate(eval_batch, eval_idx, class_values, options.batch_size)
        summary = cm.summary()
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "valid_loss": valid_loss,
                  "accuracy": summary["overall_accuracy"], "miou": summary["mean_iou"],
                  "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.monotonic() - t0, 2),
                  "train_seconds": round(train_seconds, 3),
                  "chips_per_second": round(steps_per_epoch * batch / max(train_seconds, 1e-9), 2)}
        epochs.append(record)
        value = record[options.monitor]
        improved = _better(options.monitor, value, best)
        if improved or best_state is None:
            best = value if improved else best
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            best_epoch, best_summary, stale = epoch, summary, 0
        else:
            stale += 1
        progress.log(f"Epoch {epoch}: train loss {record['train_loss']:.4f}, valid loss {valid_loss:.4f}, "
                     f"accuracy {_pct(record['accuracy'])}, mIoU {_pct(record['miou'])}"
                     + (" (best so far)" if best_epoch == epoch else ""))
        if best_epoch == epoch:
            progress.check_cancelled()
            checkpoints.save(epoch, lambda folder, e=epoch: write_best(folder, checkpoint={
                "epoch": e, "epochs_run": e, "complete": False,
                "note": "best epoch so far of an unfinished training run"}))
            train_progress.report(step / total, f"epoch {epoch}: checkpoint written")
            progress.check_cancelled()
        if options.stop_when_not_improving and stale >= patience:
            stopped_early = True
            progress.log(f"Stopping: {options.monitor} did not improve for {patience} epochs.")
            break
    model.load_state_dict(best_state)
    model.eval()
    progress.report(0.96, "writing the model package")
    with staged_folder(output_folder) as tmp:
        progress.check_cancelled()
        log = write_best(tmp, with_onnx=True)
    emd_path = os.path.join(output_folder, name + ".emd")
    progress.report(1.0, f"model written: best epoch {best_epoch}")
    progress.log(f"Model written to {output_folder} (best epoch {best_epoch}, accuracy "
                 f"{_pct(best_summary.get('overall_accuracy'))}, mIoU {_pct(best_summary.get('mean_iou'))}).")
    return TrainResult(output_folder, emd_path, best_epoch, len(epochs), best_summary, log, model)


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.1f}%"
