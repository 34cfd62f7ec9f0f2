"""Train Model's starting weights: a package to fine-tune, or an encoder weights file."""
from __future__ import annotations

import os

from ..core.errors import DeepPixelError
from .health import check_finite_weights

HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.")   # ImageNet heads: no place in an encoder


def load_pretrained(options, data, progress):
    """-> (package or None, encoder state dict or None)."""
    path = options.pretrained_model
    if not path:
        return None, None
    if not os.path.exists(path):
        raise DeepPixelError(f"The pretrained model {path} does not exist.")
    if path.lower().endswith((".emd", ".dlpk")) or os.path.isdir(path):
        from ..model.package import load_package
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
    from ..model.package import load_state_dict
    state = load_state_dict(path)
    if any(k.startswith("members.0.") for k in state):      # a .pth of averaged networks: its first member's
        state = {k[len("members.0."):]: v for k, v in state.items() if k.startswith("members.0.")}
    return None, {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in state.items()}


def load_matching(module, state, what, progress, backbone=None):
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
    check_finite_weights(fit, what)
    module.load_state_dict(fit, strict=False)
    skipped = len(own) - len(fit)
    progress.log(f"Loaded {len(fit)} tensors from the {what}" + (f"; {skipped} kept fresh (shapes differ or "
                                                                  "missing)." if skipped else "."))


def freeze(model, frozen: bool):
    from ..model.registry import encoders
    for encoder in encoders(model):
        for p in encoder.parameters():
            p.requires_grad_(not frozen)


def frozen_eval(model) -> None:
    """The frozen encoder(s) in eval mode: their pretrained batch-norm statistics are kept."""
    from ..model.registry import encoders
    for encoder in encoders(model):
        encoder.eval()
