"""Architecture registry over segmentation-models-pytorch (no downloads: encoder_weights=None)."""
from __future__ import annotations

import functools
import math

from ..core.errors import DeepPixelError

# Public MODEL_TYPE name -> segmentation_models_pytorch class name.
ARCHITECTURES = {
    "UNET": "Unet", "UNETPLUSPLUS": "UnetPlusPlus", "FPN": "FPN", "PSPNET": "PSPNet",
    "DEEPLABV3PLUS": "DeepLabV3Plus", "MANET": "MAnet", "LINKNET": "Linknet", "SEGFORMER": "Segformer",
}
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "efficientnet-b0", "efficientnet-b2",
             "mobilenet_v2", "mit_b0", "mit_b1", "timm-regnetx_002")
# Parameters a package may carry besides architecture/backbone/channels/classes (passed to smp).
EXTRA_PARAMETERS = ("encoder_depth", "decoder_channels", "decoder_attention_type")
# Deep Pixel's own addition: a per-pixel branch (1x1 convolutions on the input bands, ``pixel_branch``
# hidden channels) whose class scores are added to the decoder's, so a pixel's own spectrum reaches the
# output at full resolution (smp's U-Net has no skip at the input's resolution; one- or two-pixel-wide
# rivers and roads were smeared into their surroundings).
MAX_PIXEL_BRANCH = 256
# Deep Pixel's other addition: ``members`` networks of the same build (trained one after another with other seeds,
# train/members.py) in one module whose class probabilities are their average (README, Model quality).
MAX_MEMBERS = 8


def build_model(model_type: str, backbone: str, in_channels: int, num_classes: int, **params):
    """A freshly initialised network; load weights separately."""
    members = int(params.get("members") or 1)
    if members > 1:
        one = {k: v for k, v in params.items() if k != "members"}
        return MemberAverage([build_model(model_type, backbone, in_channels, num_classes, **one)
                              for _ in range(members)])
    import segmentation_models_pytorch as smp
    key = model_type.upper().replace("-", "").replace("_", "")
    if key not in ARCHITECTURES:
        raise DeepPixelError(f"Unknown model type {model_type!r}; choose one of {', '.join(ARCHITECTURES)}.")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()
              if k in EXTRA_PARAMETERS and v is not None}
    if key == "SEGFORMER" and "decoder_channels" in kwargs and isinstance(kwargs["decoder_channels"], tuple):
        kwargs["decoder_segmentation_channels"] = kwargs.pop("decoder_channels")[0]
    cls = getattr(smp, ARCHITECTURES[key])
    try:
        model = cls(encoder_name=backbone, encoder_weights=None, in_channels=in_channels,
                    classes=num_classes, **kwargs)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise DeepPixelError(f"Cannot build {model_type} with backbone {backbone!r}: {e}. "
                             f"Known backbones include {', '.join(BACKBONES)}.") from e
    hidden = int(params.get("pixel_branch") or 0)
    if not hidden:
        return model
    return add_pixel_branch(model, in_channels, num_classes, hidden)


_BRANCHED = {}


def add_pixel_branch(model, in_channels: int, num_classes: int, hidden: int):
    """``model`` with a per-pixel branch whose class scores are added to its own (module ``pixel_branch``)."""
    import torch.nn as nn
    model.pixel_branch = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(hidden, num_classes, 1))
    base = type(model)
    if base not in _BRANCHED:
        def forward(self, x):
            return base.forward(self, x) + self.pixel_branch(x)
        _BRANCHED[base] = type(base.__name__ + "PixelBranch", (base,), {"forward": forward})
    model.__class__ = _BRANCHED[base]
    return model


def encoders(model) -> list:
    """The encoder of a network, or of each member of a MemberAverage (what freezing and fine-tuning touch)."""
    return [m.encoder for m in model.members] if hasattr(model, "members") else [model.encoder]


@functools.lru_cache(maxsize=None)
def _member_average_class():
    """The MemberAverage module class, made on first use (torch is imported lazily: the plugin loads without it)."""
    import torch
    import torch.nn as nn

    class MemberAverage(nn.Module):
        """Several networks as one: returns the log of their mean class probabilities, so that the softmax that
        Classify (and ONNX Runtime's users) apply gives the average of the members' probabilities."""

        def __init__(self, networks):
            super().__init__()
            self.members = nn.ModuleList(networks)

        def forward(self, x):
            logs = torch.stack([torch.log_softmax(m(x).float(), dim=1) for m in self.members])
            return torch.logsumexp(logs, dim=0) - math.log(len(self.members))
    return MemberAverage


def MemberAverage(networks):
    """A ``MemberAverage`` module of ``networks``."""
    return _member_average_class()(networks)
