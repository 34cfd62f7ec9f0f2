"""Train Model parameters: defaults defined once, MODEL_ARGUMENTS parsing, network choice."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.device import DEVICES_HELP
from ..core.errors import DeepPixelError
from ..core.params import option
from ..model.registry import ARCHITECTURES, BACKBONES

MONITORS = ("valid_loss", "miou", "accuracy")
AUGMENTATIONS = ("default", "none", "custom")
DECODERS = ("auto", "light", "default")
# SPEC section 9: on CPU this U-Net decoder ran ~6x more steps per minute than smp's default.
LIGHT_DECODER = {"encoder_depth": 4, "decoder_channels": [64, 32, 16, 16]}
LIGHT_ARCHITECTURES = ("UNET", "UNETPLUSPLUS", "MANET")

# MODEL_ARGUMENTS keys -> (type, default, help)
MODEL_ARGUMENTS = {
    "class_balancing": (bool, True, "loss weights 1/sqrt(pixel frequency) per class"),
    "focal_loss": (bool, False, "focal loss (gamma 2) instead of plain cross-entropy"),
    "dice_loss_fraction": (float, 0.0, "share of Dice loss mixed into the loss (0-1)"),
    "ignore_classes": (list, [], "class values left out of training (e.g. 3,5)"),
    "chip_size": (int, 0, "random crop size in pixels (0: 64 on CPU, the whole chip on CUDA)"),
    "decoder": (str, "auto", "light (encoder_depth 4, decoder 64-32-16-16), default (smp), "
                             "auto (light on CPU for U-Net family)"),
    "patience": (int, 5, "epochs without gain before stopping"),
    "weight_decay": (float, 1e-4, "AdamW weight decay"),
    "warmup_fraction": (float, 0.05, "share of steps with linear learning-rate warm-up"),
    "steps_per_epoch": (int, 0, "training batches per epoch (0: one pass over the training chips, at least "
                                "30 batches)"),
    "min_labelled_fraction": (float, 0.02, "random crops must be at least this much labelled"),
    "unfreeze_after": (int, 0, "with a frozen backbone: unfreeze it after N epochs (0: keep frozen)"),
    "lr_test_steps": (int, 30, "steps of the learning-rate range test"),
    "augmentations": (str, "hflip,vflip,rot90", "with AUGMENTATION=custom: any of hflip, vflip, rot90 "
                                                "(separated by +)"),
    "ndvi": (bool, True, "add NDVI as an input channel when red and near-infrared bands are named"),
}


# Measured on the Landsat tutorial (bench/bench_quality.py): with few chips a spatially separate
# validation set removes scarce labels (and the overlapping training chips next to it) and picks the
# best epoch from a handful of pixels; training on every chip gave held-out mIoU 0.85 against 0.32.
AUTO_VALIDATION_MIN_CHIPS = 200
AUTO_VALIDATION_PERCENT = 10.0
MIN_STEPS_PER_EPOCH = 30


DEFAULT_MODEL_TYPE = "UNET"
DEFAULT_BACKBONE = "resnet34"


@dataclass
class TrainOptions:
    """Train Model's options, each declared once (deep_pixel/core/params.py builds the interfaces)."""
    max_epochs: int = option(20, "Maximum epochs", "upper bound on the epochs; training stops earlier when the "
                             "monitored metric stops improving", minimum=1)
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
        None, "Validation chips (%; empty: 10, or none with fewer than 200 chips)",
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
    model_arguments: dict = option(
        {}, "Model arguments (key=value, ...)", "; ".join(f"{k} ({v[2]})" for k, v in MODEL_ARGUMENTS.items()),
        kind="keyvalues", optional=True, parse=lambda text: parse_model_arguments(text))
    seed: int = option(0, "Random seed", "makes training reproducible", minimum=0)
    device: str = option("auto", "Device", DEVICES_HELP)

    @property
    def network_given(self) -> bool:
        """MODEL_TYPE or BACKBONE set: else a pretrained package brings its own network."""
        return self.model_type is not None or self.backbone is not None

    def network(self) -> tuple:
        """(model type, backbone) when not fine-tuning a package."""
        return (self.model_type or DEFAULT_MODEL_TYPE).upper(), self.backbone or DEFAULT_BACKBONE

    def resolved_validation_percent(self, chips: int) -> float:
        if self.validation_percent is not None:
            return self.validation_percent
        return AUTO_VALIDATION_PERCENT if chips >= AUTO_VALIDATION_MIN_CHIPS else 0.0

    def arg(self, key):
        return self.model_arguments.get(key, MODEL_ARGUMENTS[key][1])

    def validate(self) -> None:
        if self.model_type is not None:
            if self.model_type.upper() not in ARCHITECTURES:
                raise DeepPixelError(f"Unknown MODEL_TYPE {self.model_type!r}; choose one of "
                                     f"{', '.join(ARCHITECTURES)}.")
            self.model_type = self.model_type.upper()
        if self.learning_rate == 0:
            self.learning_rate = None                   # 0 (Processing's empty number) = range test
        if self.max_epochs < 1:
            raise DeepPixelError("MAX_EPOCHS must be at least 1.")
        if self.batch_size < 1:
            raise DeepPixelError("BATCH_SIZE must be at least 1.")
        if self.learning_rate is not None and not 0 < self.learning_rate < 10:
            raise DeepPixelError(f"LEARNING_RATE {self.learning_rate} is out of range; use e.g. 0.001, "
                                 "or leave it empty to have it found by a range test.")
        if self.validation_percent is not None and not 0 <= self.validation_percent < 100:
            raise DeepPixelError("VALIDATION_PERCENT must be between 0 and 99.")
        if self.monitor not in MONITORS:
            raise DeepPixelError(f"MONITOR must be one of {', '.join(MONITORS)}, not {self.monitor!r}.")
        if self.augmentation not in AUGMENTATIONS:
            raise DeepPixelError(f"AUGMENTATION must be one of {', '.join(AUGMENTATIONS)}.")
        if not 0 <= self.arg("dice_loss_fraction") <= 1:
            raise DeepPixelError("dice_loss_fraction must be between 0 and 1.")
        if self.arg("decoder") not in DECODERS:
            raise DeepPixelError(f"decoder must be one of {', '.join(DECODERS)}.")
        size = self.arg("chip_size")
        if size and (size < 16 or size % 16):
            raise DeepPixelError(f"chip_size {size} must be a multiple of 16 (at least 16).")


def _parse_value(key, text):
    kind = MODEL_ARGUMENTS[key][0]
    text = text.strip()
    try:
        if kind is bool:
            low = text.lower()
            if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(text)
            return low in ("true", "1", "yes", "on")
        if kind is list:
            return [int(v) for v in text.replace(";", ",").replace(" ", ",").split(",") if v]
        return kind(text)
    except ValueError:
        raise DeepPixelError(f"MODEL_ARGUMENTS: {key}={text!r} is not a valid {kind.__name__}.") from None


def parse_model_arguments(text) -> dict:
    """``"class_balancing=true, chip_size=64"`` (or a list / dict of such) -> dict of typed values.

    Commas inside a value are allowed for ignore_classes (``ignore_classes=3,5``).
    """
    if not text:
        return {}
    if isinstance(text, dict):
        items = [f"{k}={v}" for k, v in text.items()]
    elif isinstance(text, (list, tuple)):
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
        out[key] = _parse_value(key, value)
    return out


def network_parameters(options: TrainOptions, on_cuda: bool) -> tuple:
    """(extra smp parameters, sentence saying why) for the chosen decoder."""
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
        return dict(LIGHT_DECODER), f"decoder light ({why})"
    return {}, f"decoder default ({why})"
