"""Training examples from chips: random crops that are labelled enough, flips and
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


def flip_and_turn(image, target, aug, rng) -> tuple:
    """Random flips and quarter turns (those named in ``aug``) of a (bands, h, w) image and its (h, w) target,
    the same for both; ``target`` may be None (an image alone)."""
    def apply(f_image, f_target):
        return f_image(image), (None if target is None else f_target(target))
    if "hflip" in aug and rng.random() < 0.5:
        image, target = apply(lambda a: a[:, :, ::-1], lambda t: t[:, ::-1])
    if "vflip" in aug and rng.random() < 0.5:
        image, target = apply(lambda a: a[:, ::-1], lambda t: t[::-1])
    if "rot90" in aug and image.shape[1] == image.shape[2]:
        k = int(rng.integers(0, 4))
        if k:
            image, target = apply(lambda a: np.rot90(a, k, axes=(1, 2)), lambda t: np.rot90(t, k))
    return image, target


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
    """Turns chips into (input, target) numpy examples and batches.

    ``example(chip, rng)`` is one random crop (read through a window of the image chip), augmented and
    normalised; ``sample`` draws a batch with the maker's own seeded generator (the learning-rate
    test), and deep_pixel/chips/dataset.py draws each example of a DataLoader with a generator seeded
    from (seed, epoch, position), so worker processes give the same batches as the main process.
    """

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

    def _window(self, labels, rng) -> tuple:
        """(row, col, height, width) of a crop at least ``min_labelled`` labelled (the best of ``tries``)."""
        h, w = labels.shape
        ch, cw = min(self.crop, h), min(self.crop, w)
        best, best_frac = (0, 0), -1.0
        for _ in range(self.tries):
            y = int(rng.integers(0, h - ch + 1))
            x = int(rng.integers(0, w - cw + 1))
            frac = np.count_nonzero(self.lut[labels[y:y + ch, x:x + cw]] >= 0) / (ch * cw)
            if frac > best_frac:
                best, best_frac = (y, x), frac
            if frac >= self.min_labelled:
                break
        return best + (ch, cw)

    def _augment(self, image, target, rng):
        return flip_and_turn(image, target, self.aug, rng)

    def example(self, chip, rng) -> tuple:
        """One training example of ``chip``: a random labelled crop, augmented; padded to the multiple."""
        labels = chip.labels
        y, x, h, w = self._window(labels, rng)
        raw, valid = chip.read_image((y, x, h, w))
        image, target = self._augment(self.transform.apply(raw, valid), self._target(labels[y:y + h, x:x + w], valid),
                                      rng)
        return pad_to(image, self.multiple, 0.0), pad_to(target, self.multiple, IGNORE_INDEX)

    def whole_example(self, chip) -> tuple:
        """The whole chip, no augmentation (validation); padded to the network's multiple."""
        raw, valid = chip.read_image()
        return (pad_to(self.transform.apply(raw, valid), self.multiple, 0.0),
                pad_to(self._target(chip.labels, valid), self.multiple, IGNORE_INDEX))

    def _target(self, labels, valid):
        """Class indices of ``labels``; a label over a nodata pixel is ignored (it teaches nothing true)."""
        target = self.lut[labels]
        target[~valid] = IGNORE_INDEX
        return target

    def sample(self, indices):
        """A training batch of random crops of the chips at ``indices``."""
        return stack_examples([self.example(self.chips[i], self.rng) for i in indices])

    def whole(self, indices):
        """Whole chips, no augmentation (validation); padded to the network's multiple."""
        return stack_examples([self.whole_example(self.chips[i]) for i in indices])


def stack_examples(examples) -> tuple:
    """[(image, target), ...] -> (float32 batch, int64 batch); chips of several sizes padded to the largest."""
    images, targets = [e[0] for e in examples], [e[1] for e in examples]
    shapes = {t.shape for t in targets}
    if len(shapes) > 1:   # chips of several sizes: pad to the largest
        h = max(s[0] for s in shapes)
        w = max(s[1] for s in shapes)
        images = [np.pad(a, [(0, 0), (0, h - a.shape[1]), (0, w - a.shape[2])]) for a in images]
        targets = [np.pad(t, [(0, h - t.shape[0]), (0, w - t.shape[1])], constant_values=IGNORE_INDEX)
                   for t in targets]
    return (np.ascontiguousarray(np.stack(images), dtype=np.float32),
            np.ascontiguousarray(np.stack(targets), dtype=np.int64))
