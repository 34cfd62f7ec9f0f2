"""Training batches from in-memory chips: random crops that are labelled enough, flips and
quarter turns, normalisation through the shared InputTransform, label values -> class indices.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import DeepPixelError
from ..core.inputs import InputTransform

IGNORE_INDEX = -100
AUGMENTATION_NAMES = ("hflip", "vflip", "rot90")


def augmentation_set(mode: str, custom: str = "") -> set:
    if mode == "none":
        return set()
    if mode == "default":
        return set(AUGMENTATION_NAMES)
    names = {t.strip().lower() for t in custom.replace("+", ",").split(",") if t.strip()}
    unknown = names - set(AUGMENTATION_NAMES)
    if unknown:
        raise DeepPixelError(f"Unknown augmentation(s) {', '.join(sorted(unknown))}; use "
                             f"{', '.join(AUGMENTATION_NAMES)} in MODEL_ARGUMENTS augmentations=...")
    return names


def label_lut(class_values, ignore_values=(), size: int = 65536) -> np.ndarray:
    """Class value -> output channel index; 0, ignored and unknown values -> IGNORE_INDEX."""
    lut = np.full(size, IGNORE_INDEX, dtype=np.int64)
    for i, v in enumerate(class_values):
        if v not in ignore_values:
            lut[v] = i
    return lut


def pad_to(x: np.ndarray, multiple: int, value) -> np.ndarray:
    """Pad the last two axes at the bottom/right to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not ph and not pw:
        return x
    pad = [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(x, pad, constant_values=value)


class BatchMaker:
    """Turns chips into (input, target) numpy batches; all randomness from one seeded generator."""

    def __init__(self, chips, transform: InputTransform, lut: np.ndarray, crop: int, multiple: int,
                 augmentations=(), min_labelled: float = 0.02, seed: int = 0, tries: int = 8):
        self.chips = chips
        self.transform = transform
        self.lut = lut
        self.crop = crop
        self.multiple = multiple
        self.aug = set(augmentations)
        self.min_labelled = min_labelled
        self.rng = np.random.default_rng(seed)
        self.tries = tries

    def _crop(self, chip):
        h, w = chip.labels.shape
        ch, cw = min(self.crop, h), min(self.crop, w)
        best, best_frac = (0, 0), -1.0
        for _ in range(self.tries):
            y = int(self.rng.integers(0, h - ch + 1))
            x = int(self.rng.integers(0, w - cw + 1))
            frac = np.count_nonzero(self.lut[chip.labels[y:y + ch, x:x + cw]] >= 0) / (ch * cw)
            if frac > best_frac:
                best, best_frac = (y, x), frac
            if frac >= self.min_labelled:
                break
        y, x = best
        return (chip.image[:, y:y + ch, x:x + cw], chip.labels[y:y + ch, x:x + cw],
                chip.valid[y:y + ch, x:x + cw])

    def _augment(self, image, target):
        if "hflip" in self.aug and self.rng.random() < 0.5:
            image, target = image[:, :, ::-1], target[:, ::-1]
        if "vflip" in self.aug and self.rng.random() < 0.5:
            image, target = image[:, ::-1], target[::-1]
        if "rot90" in self.aug and image.shape[1] == image.shape[2]:
            k = int(self.rng.integers(0, 4))
            if k:
                image, target = np.rot90(image, k, axes=(1, 2)), np.rot90(target, k)
        return image, target

    def sample(self, indices):
        """A training batch of random crops of the chips at ``indices``."""
        images, targets = [], []
        for i in indices:
            raw, labels, valid = self._crop(self.chips[i])
            image, target = self._augment(self.transform.apply(raw, valid), self.lut[labels])
            images.append(pad_to(image, self.multiple, 0.0))
            targets.append(pad_to(target, self.multiple, IGNORE_INDEX))
        return _stack(images, targets)

    def whole(self, indices):
        """Whole chips, no augmentation (validation); padded to the network's multiple."""
        images, targets = [], []
        for i in indices:
            c = self.chips[i]
            images.append(pad_to(self.transform.apply(c.image, c.valid), self.multiple, 0.0))
            targets.append(pad_to(self.lut[c.labels], self.multiple, IGNORE_INDEX))
        return _stack(images, targets)


def _stack(images, targets):
    shapes = {t.shape for t in targets}
    if len(shapes) > 1:   # chips of several sizes: pad to the largest
        h = max(s[0] for s in shapes)
        w = max(s[1] for s in shapes)
        images = [np.pad(a, [(0, 0), (0, h - a.shape[1]), (0, w - a.shape[2])]) for a in images]
        targets = [np.pad(t, [(0, h - t.shape[0]), (0, w - t.shape[1])], constant_values=IGNORE_INDEX)
                   for t in targets]
    return (np.ascontiguousarray(np.stack(images), dtype=np.float32),
            np.ascontiguousarray(np.stack(targets), dtype=np.int64))
