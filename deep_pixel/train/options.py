"""Train Model parameters: defaults defined once, MODEL_ARGUMENTS parsing, network choice."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import NamedTuple

from ..core.device import DEVICES_HELP
from ..core.errors import DeepPixelError
from ..core.params import check_ranges, option
from ..model.registry import ARCHITECTURES, BACKBONES, MAX_MEMBERS, MAX_PIXEL_BRANCH

MONITORS = ("valid_loss", "miou", "accuracy")
AUGMENTATIONS = ("default", "none", "custom")
DECODERS = ("auto", "light", "default")
LR_SCALING = ("none", "linear", "sqrt")
KEEP_CHOICES = ("auto", "best", "last", "plateau")
# On CPU this U-Net decoder ran ~6x more steps per minute than smp's default (README, Train Model).
LIGHT_DECODER = {"encoder_depth": 4, "decoder_channels": [64, 32, 16, 16]}
LIGHT_ARCHITECTURES = ("UNET", "UNETPLUSPLUS", "MANET")
# bench_quality (README, Model quality): the per-pixel branch raised held-out mIoU on both multispectral
# scenes (Landsat 30 m, 8 bands; Sentinel-2 10 m, 10 bands) and lowered it on the 0.5 m RGB aerial scene,
# where classes are shapes and one pixel's colour says little. Auto turns it on for "spectral" rasters:
# more than 3 bands and pixels of at least SPECTRAL_MIN_METRES (a 4-band 0.5 m urban scene is a shape
# problem like the aerial one).
AUTO_PIXEL_BRANCH = 32
SPECTRAL_MIN_METRES = 2.0


def spectral(bands: int, metres: float | None) -> bool:
    """Whether a raster is multispectral at a resolution where a pixel's own spectrum says much (the auto rule)."""
    return bands > 3 and (metres is None or metres >= SPECTRAL_MIN_METRES)


class Arg(NamedTuple):
    """One MODEL_ARGUMENTS key: its type, default, help and what is allowed."""
    kind: type
    default: object
    help: str
    low: float | None = None        # numbers (each value of a list): the allowed range
    high: float | None = None
    choices: tuple = ()             # words: the allowed ones (augmentations: any of them, joined by +)


# MODEL_ARGUMENTS keys -> Arg(type, default, help, allowed range or choices); booleans allow true/false
MODEL_ARGUMENTS = {
    "class_balancing": Arg(bool, True, "loss weights 1/sqrt(pixel frequency) per class"),
    "focal_loss": Arg(bool, False, "focal loss (gamma 2) instead of plain cross-entropy"),
    "dice_loss_fraction": Arg(float, 0.0, "share of Dice loss mixed into the loss (0-1)", 0, 1),
    "ignore_classes": Arg(list, [], "class values left out of training (e.g. 3,5)", 1, 65535),
    "chip_size": Arg(int, 0, "random crop size in pixels (0: 64, on CPU and CUDA)", 0, 4096),
    "decoder": Arg(str, "auto", "light (encoder_depth 4, decoder 64-32-16-16), default (smp), "
                                "auto (light on CPU for U-Net family)", choices=DECODERS),
    "pixel_branch": Arg(int, -1, "hidden channels of a per-pixel branch (1x1 convolutions on the input bands) "
                                 "whose class scores are added to the decoder's (0: none; -1: auto, "
                                 f"{AUTO_PIXEL_BRANCH} for rasters of more than 3 bands with pixels of "
                                 f"{SPECTRAL_MIN_METRES:g} m or more, none otherwise)", -1,
                         MAX_PIXEL_BRANCH),
    "members": Arg(int, 1, "networks trained one after another with other seeds and averaged (their class "
                           "probabilities) in the one model written; TIME_LIMIT is shared among them and Classify "
                           "takes that many times as long", 1, MAX_MEMBERS),
    "patience": Arg(int, 10, "epochs without gain before stopping", 1, 1000),
    "anneal_epochs": Arg(int, 3, "at a plateau (patience used up) before the end: epochs over which the learning "
                                 "rate decays to its end before training stops (0: stop at once)", 0, 1000),
    "min_improvement": Arg(float, 0.01, "a gain smaller than this share of the best value counts as none for "
                                        "patience (the plateau)", 0, 1),
    "keep": Arg(str, "auto", "which epoch's weights the model is written from: best (by the monitored metric), "
                             "last (the latest epoch, after the final decay), plateau (the average of the "
                             "epochs' weights since the monitored metric last clearly improved, the last "
                             "included), auto (plateau when the epochs are measured on the training chips, best "
                             "when there are validation chips)",
                choices=KEEP_CHOICES),
    "average_epochs": Arg(float, 0.0, "time constant, in epochs, of the running average of the weights that is "
                                      "measured and kept (0: the weights as they are at the end of each epoch)",
                          0, 1000),
    "norm_statistics": Arg(str, "auto", "batch-norm statistics of the network written: those left by training "
                                        "(training), measured again on crops drawn as for training (crops) or on "
                                        "random crops of the source raster (raster), or the crops' kept only when "
                                        "they fit the measured chips clearly better (auto; README, Model "
                                        "quality, stops 32-34)",
                           choices=("training", "auto", "crops", "raster")),
    "weight_decay": Arg(float, 1e-4, "AdamW weight decay", 0, 1),
    "warmup_fraction": Arg(float, 0.05, "share of steps with linear learning-rate warm-up", 0, 1),
    "steps_per_epoch": Arg(int, 0, "training batches per epoch (0: one pass over the training chips, at least "
                                   "30 batches)", 0, 100000),
    "min_labelled_fraction": Arg(float, 0.02, "random crops must be at least this much labelled", 0, 1),
    "unfreeze_after": Arg(int, 0, "with a frozen backbone: unfreeze it after N epochs (0: keep frozen)", 0, 10000),
    "lr_test_steps": Arg(int, 30, "steps of the learning-rate range test run when LEARNING_RATE is empty "
                                  "(at least 5)", 0, 10000),
    "augmentations": Arg(str, "hflip,vflip,rot90", "with AUGMENTATION=custom: any of hflip, vflip, rot90 "
                                                   "(separated by +)", choices=("hflip", "vflip", "rot90")),
    "normalise": Arg(str, "raster", "band statistics the inputs are standardised with: the whole source "
                                    "raster's (raster; recorded by Export) or the exported chips' (chips)",
                     choices=("raster", "chips")),
    "ndvi": Arg(bool, True, "add NDVI as an input channel when red and near-infrared bands are named (or the "
                            "near infrared assumed: the 4th band of an RGB-tagged 4-band raster)"),
    "ndwi": Arg(bool, True, "add NDWI (green - nir) / (green + nir) as an input channel when green and "
                            "near-infrared bands are named"),
    "semi_supervised": Arg(bool, True, "also learn from the unlabelled pixels of the training crops (confident "
                                       "pseudo-labels under a strong photometric change), ramped in after the "
                                       "warm-up"),
    "pseudo_threshold": Arg(float, 0.9, "semi_supervised: the confidence an unlabelled pixel's class needs", 0, 1),
    "unlabelled_weight": Arg(float, 1.0, "semi_supervised: weight of the unlabelled pixels' loss", 0, 100),
    "pretrain_parts": Arg(str, "encoder+decoder", "with PRETRAIN_ON_RASTER: what the pretraining passes on to "
                                                  "training: the encoder, or the encoder and the decoder",
                          choices=("encoder", "encoder+decoder")),
    "loader_workers": Arg(int, -1, "processes reading training chips (-1: auto, 0 on CPU, up to 4 on CUDA; 0: "
                                   "the training process reads them)", -1, 64),
    "lr_scaling": Arg(str, "none", "with torchrun: learning rate as is (none), x the number of processes "
                                   "(linear) or x its square root (sqrt)", choices=LR_SCALING),
}


# Measured on the Landsat tutorial (bench/bench_quality.py): with few chips a spatially separate
# validation set removes scarce labels (and the overlapping training chips next to it) and picks the
# best epoch from a handful of pixels; training on every chip gave held-out mIoU 0.85 against 0.32.
AUTO_VALIDATION_MIN_CHIPS = 200
AUTO_VALIDATION_PERCENT = 10.0
MIN_STEPS_PER_EPOCH = 30
AUTO_MAX_EPOCHS = 100           # MAX_EPOCHS empty: the schedule's length (a plateau or TIME_LIMIT usually ends training first)
DEFAULT_TIME_LIMIT = 8.0        # minutes (bench_quality: longer training helped the aerial scene; 10 min is the goal with export and classify)


DEFAULT_MODEL_TYPE = "UNET"
DEFAULT_BACKBONE = "resnet34"


@dataclass
class TrainOptions:
    """Train Model's options, each declared once (deep_pixel/core/params.py builds the interfaces)."""
    max_epochs: int | None = option(
        None, "Maximum epochs (empty: until learning stops)", f"upper bound on the epochs; empty: up to "
        f"{AUTO_MAX_EPOCHS}, an epoch being one pass over the training chips (at least {MIN_STEPS_PER_EPOCH} "
        "batches); training stops earlier at TIME_LIMIT or when the monitored metric stops improving", kind="int",
        minimum=1, optional=True)
    time_limit: float = option(
        DEFAULT_TIME_LIMIT, "Time limit (minutes; 0: none)", "training (with its learning-rate test) stops by then, "
        "the learning rate decaying to its end on time; 0: no limit", minimum=0, maximum=100000)
    model_type: str | None = option(
        None, "Model type", f"network architecture; empty: {DEFAULT_MODEL_TYPE}, or the pretrained model's",
        kind="enum", choices=tuple(ARCHITECTURES), optional=True)
    backbone: str | None = option(
        None, "Backbone", f"encoder; empty: {DEFAULT_BACKBONE}, or the pretrained model's", kind="enum",
        choices=BACKBONES, optional=True, strict=False)
    batch_size: int = option(8, "Batch size", "chips per training step", minimum=1)
    learning_rate: float | None = option(
        None, "Learning rate (empty: range test)", "empty or 0: found with a learning-rate range test", kind="float",
        minimum=0, optional=True)
    validation_percent: float | None = option(
        None, f"Validation chips (%; empty: {AUTO_VALIDATION_PERCENT:g}, or none with fewer than "
              f"{AUTO_VALIDATION_MIN_CHIPS} chips)",
        f"chips held out, spatially apart, for validation; empty: {AUTO_VALIDATION_PERCENT:g}, or 0 with fewer "
        f"than {AUTO_VALIDATION_MIN_CHIPS} chips", kind="float", minimum=0, maximum=99, optional=True)
    stop_when_not_improving: bool = option(True, "Stop when the model stops improving",
                                           "off: train all epochs", aliases=("--no-early-stop",))
    monitor: str = option("valid_loss", "Monitored metric", "what picks the best epoch and stops training",
                          kind="enum", choices=MONITORS)
    freeze_backbone: bool = option(True, "Freeze backbone (with a pretrained model)",
                                   "with PRETRAINED_MODEL: keep the backbone's weights at first")
    pretrained_model: str | None = option(
        None, "Pretrained model (.emd/.dlpk to fine-tune, or encoder weights)", "our .emd/.dlpk to fine-tune "
        "(its network is used), or an encoder weights file", kind="file", optional=True,
        file_filter="Models (*.emd *.dlpk *.pth *.pt)")
    augmentation: str = option("default", "Augmentation", "default: flips and 90-degree rotations", kind="enum",
                               choices=AUGMENTATIONS)
    pretrain_on_raster: float = option(
        0.0, "Self-supervised pretraining on the raster (minutes; 0: none)", "before training, the network learns "
        "for this long to fill in masked squares of random crops of the export's source raster (every pixel, no "
        "label, nothing downloaded); its encoder and decoder then start training. Not with PRETRAINED_MODEL",
        minimum=0, maximum=600, advanced=True)
    model_arguments: dict = option(
        {}, "Model arguments (key=value, ...)", "; ".join(f"{k} ({v.help})" for k, v in MODEL_ARGUMENTS.items()),
        kind="keyvalues", optional=True, parse=lambda text: parse_option(text))
    seed: int = option(0, "Random seed", "the same seed trains the same model (with MAX_EPOCHS empty: when training "
                       "keeps up with TIME_LIMIT; the log says when it falls behind)", minimum=0)
    device: str = option("auto", "Device", DEVICES_HELP)

    @property
    def network_given(self) -> bool:
        """MODEL_TYPE or BACKBONE set: else a pretrained package brings its own network."""
        return self.model_type is not None or self.backbone is not None

    def network(self) -> tuple:
        """(model type, backbone) when not fine-tuning a package."""
        return (self.model_type or DEFAULT_MODEL_TYPE).upper(), self.backbone or DEFAULT_BACKBONE

    @property
    def epoch_bound(self) -> int:
        return self.max_epochs or AUTO_MAX_EPOCHS

    def resolved_validation_percent(self, chips: int) -> float:
        if self.validation_percent is not None:
            return self.validation_percent
        return AUTO_VALIDATION_PERCENT if chips >= AUTO_VALIDATION_MIN_CHIPS else 0.0

    def arg(self, key):
        return (self.model_arguments or {}).get(key, MODEL_ARGUMENTS[key].default)

    def validate(self) -> None:
        if self.model_type is not None:
            if self.model_type.upper() not in ARCHITECTURES:
                raise DeepPixelError(f"Unknown MODEL_TYPE {self.model_type!r}; choose one of "
                                     f"{', '.join(ARCHITECTURES)}.")
            self.model_type = self.model_type.upper()
        if self.learning_rate == 0:
            self.learning_rate = None                   # 0 (Processing's empty number) = range test
        check_ranges(self)
        if self.learning_rate is not None and not 0 < self.learning_rate < 10:
            raise DeepPixelError(f"LEARNING_RATE {self.learning_rate} is out of range (above 0, below 10); use "
                                 "e.g. 0.001, or leave it empty to have it found by a range test.")
        if self.pretrain_on_raster and self.pretrained_model:
            raise DeepPixelError("PRETRAIN_ON_RASTER starts a new network from your imagery, and PRETRAINED_MODEL "
                                 "brings a trained one: set one of them (PRETRAIN_ON_RASTER=0 to fine-tune).")
        if self.validation_percent is not None and not 0 <= self.validation_percent < 100:
            raise DeepPixelError("VALIDATION_PERCENT must be between 0 and 99.")
        self.model_arguments = check_model_arguments(self.model_arguments)


_KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
               list: "a list of class values (e.g. 3,5)"}


def allowed(key) -> str:
    """What MODEL_ARGUMENTS ``key`` accepts, in words."""
    arg = MODEL_ARGUMENTS[key]
    if key == "chip_size":
        return f"0, or a multiple of 16 from 16 to {arg.high:g}"
    if arg.choices:
        return ("any of " if key == "augmentations" else "one of ") + ", ".join(arg.choices)
    if arg.low is not None:
        return f"{'each ' if arg.kind is list else ''}{arg.low:g} to {arg.high:g}"
    return _KIND_WORDS[arg.kind]


def _refuse(key, value, why="out of range") -> DeepPixelError:
    default = MODEL_ARGUMENTS[key].default
    return DeepPixelError(f"MODEL_ARGUMENTS: {key}={value} is {why}; allowed: {allowed(key)} "
                          f"({MODEL_ARGUMENTS[key].help}). Change {key} or leave it out (default "
                          f"{default if default != [] else 'none'}).")


def _parse_value(key, text):
    kind = MODEL_ARGUMENTS[key].kind
    text = text.strip()
    try:
        if kind is bool:
            low = text.lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(text)
            return low in ("true", "1", "yes", "on")
        if kind is list:
            return [int(v) for v in text.replace(";", ",").replace(" ", ",").split(",") if v]
        if kind is int:
            return _whole(float(text) if "." in text or "e" in text.lower() else int(text))
        return kind(text)
    except (ValueError, OverflowError):
        raise _refuse(key, repr(text), f"not {_KIND_WORDS[kind]}") from None


def _whole(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _typed(key, value):
    """``value`` (text, or a JSON number, boolean or list) as the key's type."""
    kind = MODEL_ARGUMENTS[key].kind
    if isinstance(value, str):
        return _parse_value(key, value)
    try:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is list:
            return [_whole(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        if kind is int:
            return _whole(value)
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    except (ValueError, OverflowError):
        pass
    raise _refuse(key, repr(value), f"not {_KIND_WORDS[kind]}")


def _check_allowed(key, value) -> None:
    arg = MODEL_ARGUMENTS[key]
    if arg.choices:
        words = [w.strip() for w in value.replace("+", ",").split(",") if w.strip()] if key == "augmentations" \
            else [value]
        if not words or any(w not in arg.choices for w in words):
            raise _refuse(key, repr(value), "not allowed")
    elif arg.low is not None:
        for v in (value if arg.kind is list else [value]):
            if not arg.low <= v <= arg.high:            # NaN fails too
                raise _refuse(key, v)
    if key == "chip_size" and value and (value < 16 or value % 16):
        raise _refuse(key, value, "not a multiple of 16")


def check_model_arguments(arguments) -> dict:
    """Known keys, each of its type and within its allowed range -> a new dict of typed values."""
    if not arguments:
        return {}
    if not isinstance(arguments, dict):
        return parse_model_arguments(arguments)
    out = {}
    for key, value in arguments.items():
        name = str(key).strip().lower()
        if name not in MODEL_ARGUMENTS:
            raise DeepPixelError(f"MODEL_ARGUMENTS: unknown key {name!r}. Known keys: "
                                 + ", ".join(MODEL_ARGUMENTS) + ".")
        value = _typed(name, value)
        if isinstance(value, str) and MODEL_ARGUMENTS[name].choices:
            value = value.strip().lower()
        _check_allowed(name, value)
        out[name] = value
    return out


def parse_model_arguments(text) -> dict:
    """``"class_balancing=true, chip_size=64"`` (or a list / dict of such) -> dict of typed values.

    Commas inside a value are allowed for ignore_classes (``ignore_classes=3,5``).
    """
    if not text:
        return {}
    if isinstance(text, dict):
        return check_model_arguments(text)
    if isinstance(text, (list, tuple)):
        items = [str(t) for t in text]
    else:
        items = []
        for part in str(text).replace("\n", ";").replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if "=" in part or not items:
                items.append(part)
            else:
                items[-1] += "," + part     # continuation of a list value
    out = {}
    for item in items:
        if "=" not in item:
            raise DeepPixelError(f"MODEL_ARGUMENTS: {item!r} is not key=value. Known keys: "
                                 + ", ".join(MODEL_ARGUMENTS) + ".")
        key, value = item.split("=", 1)
        key = key.strip().lower()
        if key not in MODEL_ARGUMENTS:
            raise DeepPixelError(f"MODEL_ARGUMENTS: unknown key {key!r}. Known keys: " + ", ".join(MODEL_ARGUMENTS) + ".")
        out[key] = value
    return check_model_arguments(out)


class ModelArgumentsError(DeepPixelError, argparse.ArgumentTypeError):
    """A MODEL_ARGUMENTS error that argparse reports as a usage error (one line, no traceback)."""


def parse_option(text) -> dict:
    """MODEL_ARGUMENTS as the command line and Processing give it (see parse_model_arguments)."""
    try:
        return parse_model_arguments(text)
    except DeepPixelError as e:
        raise ModelArgumentsError(str(e)) from None


def network_parameters(options: TrainOptions, on_cuda: bool, bands: int = 3, metres: float | None = None) -> tuple:
    """(extra network parameters, sentence saying why) for the chosen decoder and pixel branch; ``metres``:
    the training raster's pixel size (None: unknown, the band count decides alone)."""
    decoder = options.arg("decoder")
    if decoder == "auto":
        model_type = options.network()[0]
        decoder = "light" if not on_cuda and model_type in LIGHT_ARCHITECTURES else "default"
        why = ("auto: CPU, so the light decoder (about 6x more steps per minute)" if decoder == "light"
               else "auto: " + ("CUDA" if on_cuda else f"{model_type} has no light variant")
               + ", so the default decoder")
    else:
        why = "as requested"
    if decoder == "light":
        if options.network()[0] not in LIGHT_ARCHITECTURES:
            raise DeepPixelError(f"decoder=light exists for {', '.join(LIGHT_ARCHITECTURES)} only, not "
                                 f"{options.network()[0]}. Remove it or choose UNET.")
        params, why = dict(LIGHT_DECODER), f"decoder light ({why})"
    else:
        params, why = {}, f"decoder default ({why})"
    branch = options.arg("pixel_branch")
    if branch < 0:
        branch = AUTO_PIXEL_BRANCH if spectral(bands, metres) else 0
        said = f"{bands} bands" + (f", {metres:.3g} m pixels" if metres is not None else "")
        why += (f", a per-pixel branch of {branch} channels (auto: {said})" if branch
                else f", no per-pixel branch (auto: {said})")
    elif branch:
        why += f", a per-pixel branch of {branch} channels"
    if branch:
        params["pixel_branch"] = branch
    return params, why
