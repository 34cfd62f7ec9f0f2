"""ENSEMBLE_MODELS: the class probabilities of several trained models, averaged tile by tile.

Models trained on the same export with other seeds make different mistakes where labels are few; their average
is steadier than any one of them (README, Model quality: 0.5 m aerial scene, 3 seeds, held-out mIoU 0.414 on
average alone, 0.460 averaged). Every member reads the same bands with the same statistics as MODEL_DEFINITION's
package (the tiles are normalised once) and predicts the same classes; a member that does not is refused.
"""
from __future__ import annotations

import os

import numpy as np

from ..core.errors import DeepPixelError

FIX = ("ENSEMBLE_MODELS takes models trained on the same export (e.g. Train Model run again with another SEED), "
       "separated by ';'.")


def member_paths(text: str | None) -> list:
    """The .emd/.dlpk paths of ENSEMBLE_MODELS (separated by ';' or new lines; blanks ignored)."""
    if not text:
        return []
    return [p.strip() for p in text.replace("\n", ";").split(";") if p.strip()]


def _depth(package) -> int:
    return int(package.model_params.get("encoder_depth", 5))


def _difference(package, member) -> str | None:
    """What makes ``member`` unfit to be averaged with ``package``; None when it fits."""
    if list(member.class_values) != list(package.class_values):
        return f"its classes {member.class_values} are not the model's {package.class_values}"
    if list(member.bands) != list(package.bands):
        return f"it reads bands {member.bands}, the model reads {package.bands}"
    a, b = member.transform, package.transform
    if not (np.allclose(a.mean, b.mean, rtol=1e-5) and np.allclose(a.std, b.std, rtol=1e-5)):
        return "its band statistics differ (it was trained on another export)"
    if [list(i) for i in a.indices] != [list(i) for i in b.indices]:
        return f"its spectral indices {a.indices} are not the model's {b.indices}"
    if _depth(member) != _depth(package):
        return f"its encoder depth {_depth(member)} is not the model's {_depth(package)}"
    return None


def load_members(text: str | None, package) -> list:
    """The packages of ENSEMBLE_MODELS, each checked against ``package`` (DeepPixelError naming the file)."""
    from ..model.package import load_package
    members = []
    for path in member_paths(text):
        if not os.path.exists(path):
            raise DeepPixelError(f"ENSEMBLE_MODELS: {path} does not exist. {FIX}")
        try:
            member = load_package(path)
        except DeepPixelError as e:
            raise DeepPixelError(f"ENSEMBLE_MODELS: {e}") from None
        why = _difference(package, member)
        if why:
            raise DeepPixelError(f"ENSEMBLE_MODELS: {path} cannot be averaged with {package.emd_path}: {why}. {FIX}")
        members.append(member)
    return members


class EnsembleRuntime:
    """Several runtimes as one: the mean of their class probabilities (named after the first)."""

    def __init__(self, runtimes: list):
        self.runtimes = runtimes
        self.cuda = getattr(runtimes[0], "cuda", False)
        self.name = runtimes[0].name

    @property
    def precision(self) -> str:
        return self.runtimes[0].precision

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        total = self.runtimes[0](batch)
        for runtime in self.runtimes[1:]:
            total = total + runtime(batch)
        return total / len(self.runtimes)


def with_members(runtime, why: str, package, options, device, progress=None, members=None) -> tuple:
    """(runtime, why): ``runtime`` alone, or averaged with the ENSEMBLE_MODELS members' runtimes (``members``: their
    packages when already loaded and checked)."""
    if members is None:
        members = load_members(options.ensemble_models, package)
    if not members:
        return runtime, why
    from .runtime_choice import choose_runtime
    runtimes = [runtime] + [choose_runtime(m, device, options.runtime, options.precision, progress)[0]
                            for m in members]
    return EnsembleRuntime(runtimes), f"{why}; class probabilities averaged with {len(members)} more model(s)"
