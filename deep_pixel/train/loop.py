"""Train Model: chips folders -> a self-describing model folder (.emd, .pth, .dlpk, report, log).

The loop: spatially separate validation chips, band-statistics normalisation via InputTransform,
random labelled crops with flips/rotations streamed from the chip files by a DataLoader
(deep_pixel/chips/dataset.py: pixels are never all in memory), cross-entropy ignoring unlabelled
pixels, AdamW with warm-up then cosine decay (rate from a range test when none is given), evaluation
every epoch, the best epoch kept, early stopping. The output folder appears only when training ends;
meanwhile the best epoch so far is kept as a loadable package in ``<output>.checkpoint`` (see
checkpoint.py), which survives a killed run, lets the same command resume from it (resume.py), and
is removed on completion or cancel. Launched by torchrun, the same loop trains one model on several
processes (distributed.py).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ..chips.dataset import ChipLoader, auto_workers
from ..chips.reader import read_chip_folders
from ..core.device import select_device
from ..core.errors import Cancelled, DeepPixelError, Terminated
from ..core.inputs import InputTransform
from ..core.progress import Progress, check
from ..io.raster import pixel_height_metres
from ..io.staging import staged_folder
from ..model.registry import build_model
from . import distributed, members, norm_stats, resume
from .augment import BatchMaker, augmentation_set, label_lut
from .average import WeightAverage
from .best import BestEpoch
from .budget import CLOCK_LAG, Budget
from .checkpoint import Checkpoints, check_train_destinations
from .epoch import evaluate_epoch, train_epoch
from .health import Health
from .indices import INDICES, log_indices, pick_statistics, spectral_indices
from .stop import fit_to_time, maybe_unfreeze, should_stop, time_up
from .lr_finder import find_learning_rate
from .options import AUTO_VALIDATION_MIN_CHIPS, MIN_STEPS_PER_EPOCH, TrainOptions, network_parameters
from .pretrained import freeze, load_matching, load_pretrained
from .split import spatial_split
from .step import SegmentationLoss, Stepper, class_weights
from .pretrain import pretrain_network
from .write import model_name
from .write_run import run_log, write_best

# Random crop size when chip_size is 0, on every device: on CUDA (one H100) whole 256 px chips scored lower on
# both real scenes with 256 px chips than 64 px crops (held-out mIoU: Sentinel-2 0.733/0.911 against 0.782/0.922,
# aerial 0.288 against 0.440; README, docs/gpu_run_h100_quality.txt).
DEFAULT_CROP = 64
# A process whose chips' pixels take less than this holds them in memory; more, and it reads each
# example from the chip files (memory then does not grow with the folder). bench/bench_train_scale.py:
# reading a 64 px crop from a 256 px chip costs ~3 ms against ~0.3 ms held (about 10% of a 1-thread CPU
# step of the light U-Net), so small folders, where holding is cheap, keep the old speed.
KEEP_PIXELS_BELOW = 256 * 2**20
KEPT_WORDS = {"last": "The model is written from the last epoch (after the final decay), not from the epoch that "
                      "fits the measured chips best",
              "plateau": "The model is written from the average of the epochs' weights since the monitored "
                         "metric last clearly improved (through the final decay), not from the epoch that fits "
                         "the measured chips best"}


@dataclass
class TrainResult:
    folder: str
    emd_path: str
    best_epoch: int
    epochs_run: int
    summary: dict
    log: dict
    model: object = None         # the trained network (best epoch, eval mode, on its device)


def train_model(folders: str | list[str], output_folder: str, options: TrainOptions | None = None,
                progress: Progress | None = None) -> TrainResult:
    """Train on one or several chips folders and write the model folder ``output_folder``.

    The best epoch so far is kept in ``<output_folder>.checkpoint`` while training runs; a run started
    again with the same chips and options resumes from it. Under torchrun, ranks other than 0 log
    nothing and write nothing.
    """
    options = options or TrainOptions()
    progress = check(progress)
    options.validate()
    main = distributed.launched_rank() == 0
    progress = progress if main else Progress()
    folders = _distinct([folders] if isinstance(folders, str) else list(folders), progress)
    check_train_destinations(folders, output_folder, options.pretrained_model, model_name(output_folder))
    checkpoints = Checkpoints(output_folder, model_name(output_folder), progress, active=main)
    run = _Run(options, progress, model_name(output_folder))
    try:
        result = _train(run, folders, output_folder, checkpoints)
    except Cancelled as e:
        if not isinstance(e, Terminated):        # SIGTERM (a scheduler's stop) keeps the best epoch so far
            checkpoints.remove()
            raise
        notice = checkpoints.kept_notice()
        raise Terminated(f"{e} {notice}" if notice else str(e)) from e
    except BaseException as e:
        notice = checkpoints.kept_notice()
        if notice:
            progress.warn(notice)
        lost = distributed.peer_lost(run.dist, e)
        if lost is not None:
            raise lost from e
        raise
    finally:
        if run.loader is not None:
            run.loader.close()
        distributed.finish(run.dist, getattr(run, "stepper", None), getattr(run, "model", None))
    return result


def _distinct(folders: list, progress) -> list:
    """Each chips folder once: one given twice (however spelled) would count its chips twice."""
    from ..io.destinations import same_file_key
    seen, out = set(), []
    for folder in folders:
        key = same_file_key(folder)
        if key in seen:
            progress.warn(f"The chips folder {folder} is given more than once (INPUT_TRAINING_DATA or "
                          "ADDITIONAL_TRAINING_DATA); it is used once.")
            continue
        seen.add(key)
        out.append(folder)
    return out


class _Run:
    """One training run: what ``_prepare`` sets up, and what ``_fit`` and ``write_best`` (write_run.py) share."""

    def __init__(self, options: TrainOptions, progress: Progress, name: str):
        self.options, self.progress, self.name = options, progress, name
        self.epochs, self.stopped_early, self.step, self.start_epoch = [], False, 0, 0
        self.stopped_by_time = False
        self.said_clock = None          # the budget whose clock take-over was said (stop.say_clock)
        self.pretrained_until = 0.03               # progress share taken before training (pretraining raises it)
        self.best = BestEpoch(options.monitor, options.arg("patience"), options.arg("min_improvement"))
        self.t_start = time.monotonic()            # TIME_LIMIT counts from here
        self.dist, self.loader, self.resumed, self.frozen, self.started = distributed.Dist(), None, None, False, None
        self.members, self.member, self.finished = 1, 0, []       # members.py: networks trained and averaged


def _train(run: _Run, folders, output_folder, checkpoints) -> TrainResult:
    progress = run.progress
    _prepare(run, folders, checkpoints)
    _fit(run, checkpoints)
    for _ in range(1, run.members):
        members.next_member(run)
        _prepare_model(run)
        _prepare_optimiser(run, checkpoints)
        _fit(run, checkpoints)
    if run.members > 1:
        members.combine(run)
    else:
        run.model.load_state_dict(run.best.state)
        if run.best.averaged or norm_stats.wanted(run):     # the summary written is that of the network written
            run.best.summary = members.measure_final(run)
    run.model.eval()
    log = run_log(run)
    if run.dist.main:
        progress.report(0.96, "writing the model package")
        with staged_folder(output_folder) as tmp:
            progress.check_cancelled()
            log = write_best(run, tmp, run.model, with_onnx=True)
        checkpoints.remove(completed=True)
    distributed.barrier(run.dist)                # the other ranks wait until the package is in place
    emd_path = os.path.join(output_folder, run.name + ".emd")
    best = run.best
    which = best.describe()
    progress.report(1.0, f"model written: {which}")
    progress.log(f"Model written to {output_folder} ({which}, accuracy "
                 f"{_pct(best.summary.get('overall_accuracy'))}, mIoU {_pct(best.summary.get('mean_iou'))}).")
    return TrainResult(output_folder, emd_path, best.epoch, len(run.epochs), best.summary, log, run.model)


def _prepare(run: _Run, folders, checkpoints) -> None:
    """Device (and process group), data, network, split, batches, model, optimiser, in that order."""
    import torch
    options, progress = run.options, run.progress
    device, reason = select_device(options.device)
    run.dist, run.device, run.reason = distributed.start(device, reason)
    progress.log(f"Device: {run.reason}.")
    torch.manual_seed(options.seed)
    _prepare_data(run, folders)
    _prepare_network(run)
    members.plan(run)
    _prepare_split(run)
    _prepare_batches(run)
    _prepare_model(run)
    _prepare_optimiser(run, checkpoints)


def _prepare_data(run: _Run, folders) -> None:
    run.fingerprint = resume.fingerprint(folders, run.options)
    data = read_chip_folders(folders, run.progress.sub(0.0, 0.03)) if run.dist.main else None
    run.data = distributed.share(run.dist, data)        # rank 0 reads the index; every rank gets it
    run.ignore = set(run.options.arg("ignore_classes"))
    schema = run.data.schema
    for v in run.ignore:
        schema = schema.without_value(v) if schema.by_value(v) else schema
    if len(schema) < 1:
        raise DeepPixelError("Every class is in ignore_classes: nothing is left to train.")
    present = [c.name for c in schema.classes if run.data.pixels_per_class().get(c.value)]
    if len(present) == 1:
        run.progress.warn(f"The training data hold one class only ({present[0]}): the model will put every pixel "
                          "in it. Draw samples of at least two classes (what is not it, too), export again, and "
                          "train on that.")
    run.schema, run.class_values = schema, schema.values


def _prepare_network(run: _Run) -> None:
    """Architecture, backbone, decoder and input transform: the pretrained package's, or the options'."""
    options, progress, data = run.options, run.progress, run.data
    run.pkg, run.encoder_state = load_pretrained(options, data, progress)
    if run.pkg is not None:
        pkg = run.pkg
        run.model_type, run.backbone, run.params = pkg.model_type, pkg.backbone, dict(pkg.model_params)
        run.transform = pkg.transform
        named = {tuple(p): n for n, p in spectral_indices(data.band_names, data.bands, list(INDICES))}
        run.indices = [(named.get(tuple(p), "normalised difference"), list(p)) for p in run.transform.indices]
        progress.log(f"Fine-tuning {run.model_type}/{run.backbone} from {os.path.basename(pkg.emd_path)}: "
                     "architecture, backbone, decoder and normalisation come from that model.")
        run.why = "from the pretrained model"
        return
    run.model_type, run.backbone = options.network()
    metres = pixel_height_metres(data.pixel_size, data.crs_wkt)
    run.params, run.why = network_parameters(options, run.device.type == "cuda", len(data.bands), metres)
    pick_statistics(run)
    wanted = [name for name in INDICES if options.arg(name.lower())]
    run.indices = spectral_indices(data.band_names, data.bands, wanted)
    run.transform = InputTransform(data.band_stats["mean"], data.band_stats["std"], [p for _, p in run.indices])
    log_indices(run)


def _prepare_split(run: _Run) -> None:
    options, progress, data = run.options, run.progress, run.data
    validation_percent = options.resolved_validation_percent(len(data.chips))
    if options.validation_percent is None:
        progress.log(f"VALIDATION_PERCENT not given: {validation_percent:g}% "
                     + ("(the default)." if validation_percent else
                        f"(fewer than {AUTO_VALIDATION_MIN_CHIPS} chips: every chip trains; give VALIDATION_PERCENT "
                        "to hold some out)."))
    run.split = spatial_split(data.chips, validation_percent, options.seed)
    run.train_idx, valid_idx = run.split["train"], run.split["valid"]
    progress.log(f"{len(data.chips)} chips from {len(data.folders)} folder(s), {data.num_bands} band(s), "
                 f"classes {run.class_values}; {len(run.train_idx)} for training, {len(valid_idx)} for validation "
                 f"(spatially apart, {len(run.split['dropped'])} training chips dropped because they overlap "
                 "validation chips).")
    if not valid_idx:
        progress.warn("No separate validation chips (too few chips, VALIDATION_PERCENT=0, or none lies apart from "
                      "the training chips): metrics and the best epoch are measured on the training chips.")
    run.eval_idx = valid_idx or run.train_idx
    keep = options.arg("keep")
    if keep == "auto":
        keep = "best" if valid_idx else "plateau"
    run.best.keep_last, run.best.average_plateau = keep != "best", keep == "plateau"
    if keep != "best":
        progress.log(KEPT_WORDS[keep] + (" (keep=auto: no validation chips)." if options.arg("keep") == "auto"
                                         else f" (keep={keep})."))
    if len(run.train_idx) < run.dist.world:
        raise DeepPixelError(f"{len(run.train_idx)} training chip(s) for {run.dist.world} processes: each process "
                             "needs at least one. Start fewer processes (torchrun --nproc_per_node) or export more "
                             "chips.")
    run.train_shard = distributed.shard(run.train_idx, run.dist)     # each rank trains on its own chips
    run.eval_shard = distributed.shard(run.eval_idx, run.dist)
    counts = data.pixels_per_class(valid_idx) if valid_idx else {}
    if valid_idx and not any(counts.get(v) for v in run.class_values if v not in run.ignore):
        raise DeepPixelError(f"None of the {len(valid_idx)} validation chips holds a labelled pixel of a class that "
                             "is trained, so no epoch could be measured. Raise VALIDATION_PERCENT, or set it to 0 "
                             "to measure on the training chips, or draw more training samples.")


def _prepare_batches(run: _Run) -> None:
    """Crop size, the batch maker and the loss (with class weights)."""
    options, progress, data = run.options, run.progress, run.data
    depth = int(run.params.get("encoder_depth", 5))
    run.multiple = 2 ** depth
    run.crop = options.arg("chip_size") or DEFAULT_CROP
    if options.arg("chip_size") and run.crop % run.multiple:    # whole chips of any size are padded instead
        m = run.multiple
        raise DeepPixelError(f"chip_size {run.crop} does not fit {run.model_type} with encoder depth {depth}: crops "
                             f"must be a multiple of {m} px (2**encoder_depth), e.g. {m}, {2 * m}, {4 * m} or "
                             f"{8 * m}. Change chip_size in MODEL_ARGUMENTS.")
    run.maker = BatchMaker(data.chips, run.transform, label_lut(run.class_values, run.ignore), run.crop,
                           run.multiple, augmentation_set(options.augmentation, options.arg("augmentations")),
                           options.arg("min_labelled_fraction"), options.seed)
    workers, why = options.arg("loader_workers"), "as requested"
    if workers < 0:
        workers, why = auto_workers(run.device.type)
    mine = sorted(set(run.train_shard) | set(run.eval_shard))      # the chips this process reads
    size = data.pixel_bytes(mine)
    if size < KEEP_PIXELS_BELOW:
        data.keep(mine)
    run.loader = ChipLoader(run.maker, workers, pin_memory=run.device.type == "cuda")
    progress.log(f"Chips {'held in memory' if size < KEEP_PIXELS_BELOW else 'read from disk for each example'} "
                 f"({size / 2**20:.0f} MiB of pixels; {KEEP_PIXELS_BELOW / 2**20:.0f} MiB or more are read from disk); "
                 f"{workers} loader worker process(es) ({why}).")
    weights = None
    if options.arg("class_balancing"):
        weights = class_weights(data.pixels_per_class(run.train_idx), run.class_values)
        progress.log("Class weights (1/sqrt frequency): " + ", ".join(
            f"{v}={w:.2f}" for v, w in zip(run.class_values, weights)))
    run.loss_fn = SegmentationLoss(len(run.class_values), weights, options.arg("focal_loss"),
                                   options.arg("dice_loss_fraction"))


def _prepare_model(run: _Run) -> None:
    import torch
    options, progress = run.options, run.progress
    model = build_model(run.model_type, run.backbone, run.transform.channels, len(run.class_values), **run.params)
    if run.pkg is not None:
        load_matching(model, torch.load(run.pkg.weights_path, map_location="cpu", weights_only=True),
                      f"pretrained model {options.pretrained_model}", progress)
    elif run.encoder_state is not None:
        load_matching(model.encoder, run.encoder_state, f"encoder weights file {options.pretrained_model}",
                      progress, run.backbone)
    run.frozen = bool(options.pretrained_model) and options.freeze_backbone
    freeze(model, run.frozen)
    run.model = model.to(run.device).train()
    progress.log(f"Network {run.model_type}/{run.backbone}, {run.transform.channels} input channel(s), "
                 f"{len(run.class_values)} classes, {run.why}; crops of {run.crop} px, batch {options.batch_size}"
                 + (", backbone frozen" if run.frozen else "") + ".")


def _prepare_optimiser(run: _Run, checkpoints) -> None:
    """AdamW; resume from a matching checkpoint, else the learning rate (range test when not given); warm-up
    then cosine decay; under torchrun, the model wrapped for DistributedDataParallel."""
    import torch
    options, progress, d = run.options, run.progress, run.dist
    optimizer = torch.optim.AdamW(run.model.parameters(), lr=options.learning_rate or 1e-3,
                                  weight_decay=options.arg("weight_decay"))
    run.stepper = Stepper(run.model, optimizer, run.loss_fn, run.device, options.batch_size, progress)
    if options.arg("semi_supervised"):
        from .semi import Consistency
        run.stepper.semi = Consistency(options.arg("pseudo_threshold"), options.arg("unlabelled_weight"), options.seed)
        progress.log(f"Semi-supervised: unlabelled pixels of the crops learn from confident (>= "
                     f"{options.arg('pseudo_threshold'):g}) pseudo-labels, weight {options.arg('unlabelled_weight'):g}, "
                     "ramped in from 15% to 40% of training.")
    run.batch = options.batch_size      # random crops: a chip drawn twice in a batch gives two examples (no cap)
    run.steps_per_epoch = options.arg("steps_per_epoch") or max(
        MIN_STEPS_PER_EPOCH, math.ceil(len(run.train_idx) / (run.batch * d.world)))
    run.total = run.steps_per_epoch * options.epoch_bound
    state = distributed.share(d, checkpoints.take_over(run.fingerprint) if d.main and not run.member else None)
    if run.member:
        members.reuse_start(run)
    elif state is not None:
        resume.apply(run, state)
        freeze(run.model, run.frozen)
        progress.log(f"Resumed from the checkpoint of epoch {run.start_epoch} in {checkpoints.path} (written by a run "
                     f"with {run.resumed['processes']} process(es)): weights, optimiser state and learning rate "
                     f"{run.lr:.3g}; training goes on with epoch {run.start_epoch + 1}.")
    else:
        pretrain_network(run)
        _pick_learning_rate(run)
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] = run.lr
    run.health = Health(run.lr, bool(options.pretrained_model))
    # TIME_LIMIT steers the learning rate only when MAX_EPOCHS is empty (a given MAX_EPOCHS keeps the schedule,
    # and the weights of a seed, the same on any machine), only once the run falls behind it (so a run that keeps
    # up repeats from its SEED) and never under torchrun (see budget.py)
    run.budget = Budget(run.total, members.minutes_for(run), options.arg("warmup_fraction"), timed=False,
                        start=run.t_start, lag=CLOCK_LAG if not d.active and options.max_epochs is None else None)
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, run.budget.factor)
    run.step = min(run.start_epoch * run.steps_per_epoch, run.total)
    if run.step:                                  # a resumed run goes on along the same schedule
        run.scheduler.last_epoch = run.step - 1
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            run.scheduler.step()
    if options.arg("average_epochs"):
        run.stepper.average = WeightAverage(run.model, options.arg("average_epochs"), run.steps_per_epoch)
    if d.active:
        run.stepper.model = distributed.wrap(run.model, d, run.device)
        run.stepper.agree = lambda flag: distributed.all_agree(d, flag, run.device)
    start = run.pretrained_until + (0.05 if run.lr_test else 0.0)
    run.train_progress = progress.sub(*members.span(run, start, 0.95))


def _pick_learning_rate(run: _Run) -> None:
    """LEARNING_RATE, or a range test (on rank 0 alone, shared); scaled for the processes by lr_scaling."""
    options, progress, d = run.options, run.progress, run.dist
    rng = np.random.default_rng(options.seed + 1)

    def random_batch():
        return list(rng.choice(run.train_idx, size=run.batch, replace=len(run.train_idx) < run.batch))

    run.lr_test, base = None, options.learning_rate
    if base is None:
        found = None
        if d.main:
            found = find_learning_rate(run.stepper, run.maker.sample, random_batch, options.arg("lr_test_steps"),
                                       progress.sub(run.pretrained_until, run.pretrained_until + 0.05))
        run.lr_test = distributed.share(d, found)
        base = run.lr_test["lr"]
        progress.log(f"Learning-rate range test picked {base:.2g}.")
    rule = options.arg("lr_scaling")
    run.lr = distributed.scaled_rate(base, rule, d.world) if d.active else base
    if d.active:
        progress.log(distributed.describe(d, run.batch, rule, run.lr, base))


def _fit(run: _Run, checkpoints) -> None:
    """Epochs until the bound, TIME_LIMIT or the end of the decay after a plateau; the best one is checkpointed."""
    options, progress = run.options, run.progress
    sound = None
    for epoch in range(run.start_epoch + 1, options.epoch_bound + 1):
        if run.epochs and time_up(run):
            break
        maybe_unfreeze(run, epoch)
        losses, seconds = train_epoch(run, epoch)
        record = evaluate_epoch(run, epoch, losses, seconds)
        sound = run.health.sound(record)
        kept = run.best.update(epoch, record[options.monitor], run.summary, run.stepper.measured, sound)
        progress.log(f"Epoch {epoch}: train loss {record['train_loss']:.4f}, valid loss {record['valid_loss']:.4f}, "
                     f"accuracy {_pct(record['accuracy'])}, mIoU {_pct(record['miou'])}, learning rate "
                     f"{record['lr']:.2g}" + (" (best so far)" if run.best.improved else ""))
        run.health.check_epoch(epoch, progress)
        if epoch == run.start_epoch + 1:
            fit_to_time(run)
        if kept and (run.best.improved or checkpoints.due()):
            _checkpoint(run, checkpoints, epoch)
        if should_stop(run, epoch):
            break
    if sound is not None:                # a resumed run may have had no epoch left to train
        run.health.check_end(run.epochs, sound)


def _checkpoint(run: _Run, checkpoints, epoch: int) -> None:
    progress = run.progress
    progress.check_cancelled()
    state = resume.capture(run, epoch) if checkpoints.active else None
    checkpoints.save(epoch, lambda folder, e=epoch: write_best(run, folder, run.stepper.measured, checkpoint={
        "epoch": e, "epochs_run": e, "complete": False,
        "note": "best epoch so far of an unfinished training run"}), state)
    run.train_progress.report(run.budget.fraction(run.step), f"epoch {epoch}: checkpoint written")
    progress.check_cancelled()


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.1f}%"
