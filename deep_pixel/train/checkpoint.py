"""Checkpoints: the best model so far, kept beside the output folder while training runs.

After every epoch that improves the monitored metric a complete model package (the final layout:
``<name>.emd``, ``<name>.pth``, ``<name>.dlpk``, report, log of the epochs so far) is written to a
hidden temporary folder and renamed to ``<output>.checkpoint``, so a killed run (power cut, out of
memory killer, closed QGIS) keeps its last completed epoch in a folder that loads and classifies.
The output folder itself still appears only when training completes; the checkpoint is then
removed. A cancel removes it too: the user asked for nothing to be left.

Replacing the previous checkpoint takes two renames (old away, new in place); a kill between them
leaves the previous one complete under ``.<name>.checkpoint.old-*``.
"""
from __future__ import annotations

import os
import shutil
import tempfile

from ..core.errors import DeepPixelError

SUFFIX = ".checkpoint"


def checkpoint_path(output_folder: str) -> str:
    """``<output>.checkpoint``, beside the output folder."""
    return os.path.normpath(os.path.abspath(output_folder)) + SUFFIX


class Checkpoints:
    """Writes, replaces and removes the checkpoint folder of one training run."""

    def __init__(self, output_folder: str, name: str, inputs=(), progress=None):
        self.path = checkpoint_path(output_folder)
        self.name = name
        self.progress = progress
        self.epoch: int | None = None        # epoch of the checkpoint this run wrote
        self._check(inputs)

    def _check(self, inputs) -> None:
        real = os.path.realpath(self.path)
        for p in inputs:
            if p and os.path.realpath(p) in (real, *(os.path.join(real, d) for d in ("images", "labels"))):
                raise DeepPixelError(f"The checkpoint folder {self.path} (the output folder name + '{SUFFIX}') "
                                     "is an input; choose another output folder name.")
        if not os.path.lexists(self.path):
            return
        ours = os.path.isdir(self.path) and not os.path.islink(self.path) and (
            not os.listdir(self.path) or os.path.isfile(os.path.join(self.path, self.name + ".emd")))
        if not ours:
            raise DeepPixelError(f"{self.path} exists and is not a checkpoint of the model {self.name!r}; "
                                 "training keeps its checkpoints there. Move or delete it, or choose another "
                                 "output folder.")
        if os.listdir(self.path) and self.progress is not None:
            self.progress.warn(f"An earlier checkpoint {self.path} (from an interrupted run) will be replaced "
                               "by this run's first checkpoint; copy it elsewhere now to keep it.")

    def save(self, epoch: int, write) -> None:
        """``write(folder)`` writes the package into a fresh folder; it then replaces the checkpoint."""
        parent = os.path.dirname(self.path)
        base = os.path.basename(self.path)
        old = None
        try:
            tmp = tempfile.mkdtemp(prefix="." + base + ".partial-", dir=parent)
        except OSError as e:
            raise _write_error(self.path, e) from e
        try:
            write(tmp)
            if os.path.isdir(self.path):
                old = tempfile.mkdtemp(prefix="." + base + ".old-", dir=parent)
                os.rmdir(old)
                os.rename(self.path, old)
            os.rename(tmp, self.path)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if old and not os.path.exists(self.path):
                os.rename(old, self.path)          # put the previous checkpoint back
            if isinstance(e, OSError):
                raise _write_error(self.path, e) from e
            raise
        if old:
            shutil.rmtree(old, ignore_errors=True)
        first = self.epoch is None
        self.epoch = epoch
        if self.progress is not None:
            self.progress.log(f"Checkpoint of epoch {epoch} (best so far) written to {self.path}"
                              + (" (a loadable model; it is removed when training completes)." if first else "."))

    def remove(self) -> None:
        """Delete the checkpoint this run wrote (a checkpoint of an earlier run is left alone)."""
        if self.epoch is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.epoch = None

    def kept_notice(self) -> str | None:
        if self.epoch is None or not os.path.isdir(self.path):
            return None
        return (f"Training stopped before completing; the best model so far (epoch {self.epoch}) is kept in "
                f"{self.path}. It loads and classifies like a finished model.")


def _write_error(path, e) -> DeepPixelError:
    try:
        free = f"{shutil.disk_usage(os.path.dirname(path)).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return DeepPixelError(f"Writing the checkpoint {path} failed ({getattr(e, 'strerror', None) or e}). The disk "
                          f"may be full ({free}): free some space or choose another output folder.")
