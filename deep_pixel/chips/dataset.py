"""Training chips streamed through a torch DataLoader: pixels are read per example, never held.

``ChipDataset`` is a map-style dataset over the chips index whose keys say what to make: ``(chip
index, seed)`` is one random labelled crop of that chip, augmented (BatchMaker.example, with a
generator seeded from ``seed``), and ``(chip index, None)`` the whole chip without augmentation
(validation). The seeds are fixed by the plan, not by the process that makes the example, so the
batches are the same with any number of loader workers and after a resumed run.

``ChipLoader`` owns one DataLoader for the whole run (training epochs and validation passes share
its worker processes, which stay alive between passes): each pass sets the plan (its batches of
keys) and iterates. With 0 workers the examples are made in the training process itself.

torch is imported only when a loader is made (QGIS loads the plugin without torch).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from ..core.errors import Cancelled, DeepPixelError
from ..train.augment import stack_examples

MAX_AUTO_WORKERS = 4


class ChipDataset:
    """Key ``(chip index, seed or None)`` -> (image float32 (C, h, w), target int64 (h, w)) numpy arrays."""

    def __init__(self, maker):
        self.maker = maker

    def __len__(self) -> int:
        return len(self.maker.chips)

    def __getitem__(self, key):
        index, seed = key
        chip = self.maker.chips[index]
        try:
            if seed is None:
                return self.maker.whole_example(chip)
            return self.maker.example(chip, np.random.default_rng(seed))
        except Cancelled:                   # cancel or SIGTERM while reading: never a chip's failure
            raise
        except DeepPixelError as e:          # a chip that cannot be read: its message, not a worker's traceback
            return Failed(str(e))


class Failed:
    """An example (or batch) that could not be made, with the message to raise in the training process."""

    def __init__(self, message: str):
        self.message = message


class Plan:
    """The DataLoader's batch sampler: the batches of keys of the next pass, set before each pass."""

    def __init__(self):
        self.batches: list = []

    def __iter__(self):
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


def collate(examples):
    import torch
    failed = [e for e in examples if isinstance(e, Failed)]
    if failed:
        return failed[0]
    x, y = stack_examples(examples)
    return torch.from_numpy(x), torch.from_numpy(y)


def training_keys(order, batch: int, steps: int, seed: int, epoch: int, rank: int = 0) -> list:
    """``steps`` batches of ``batch`` keys from the chip ``order``; each example's seed is fixed by
    (seed, rank, epoch, position)."""
    return [[(int(order[b * batch + j]), (seed, rank, epoch, b * batch + j)) for j in range(batch)]
            for b in range(steps)]


def validation_keys(indices, batch: int) -> list:
    """Whole chips in batches of ``batch``."""
    indices = [int(i) for i in indices]
    return [[(i, None) for i in indices[k:k + batch]] for k in range(0, len(indices), batch)]


def auto_workers(device_type: str) -> tuple:
    """(loader workers, why) when MODEL_ARGUMENTS loader_workers is -1 (auto)."""
    if "qgis.core" in sys.modules:
        return 0, "inside QGIS, chips are read in the training process (no worker processes forked from QGIS)"
    if device_type != "cuda":
        return 0, ("CPU: chips are read in the training process; its threads already keep every core busy "
                   "(bench/bench_train_scale.py: worker processes were no faster on 2 cores)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = max(1, min(MAX_AUTO_WORKERS, cores - 1))
    return n, f"CUDA: {n} worker process(es) read chips while the GPU trains"


class ChipLoader:
    """One DataLoader for every pass of a training run (training epochs and validation)."""

    def __init__(self, maker, workers: int = 0, pin_memory: bool = False):
        from torch.utils.data import DataLoader
        self.plan = Plan()
        self.workers = workers
        extra = {"persistent_workers": True, "prefetch_factor": 2} if workers else {}
        self.loader = DataLoader(ChipDataset(maker), batch_sampler=self.plan, num_workers=workers,
                                 collate_fn=collate, pin_memory=pin_memory, **extra)

    def run(self, batches):
        """Iterate (x, y) tensors over ``batches`` (lists of keys), in order."""
        self.plan.batches = list(batches)
        for batch in self.loader:
            if isinstance(batch, Failed):
                raise DeepPixelError(batch.message)
            yield batch

    def close(self) -> None:
        """Stop the worker processes."""
        loader, self.loader = self.loader, None
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
