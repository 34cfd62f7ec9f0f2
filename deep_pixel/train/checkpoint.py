"""Checkpoints: the best model so far, kept beside the output folder while training runs.

After every epoch that improves the monitored metric a complete model package (the final layout:
``<name>.emd``, ``<name>.pth``, ``<name>.dlpk``, report, log of the epochs so far) is written to a
hidden temporary folder and renamed to ``<output>.checkpoint``, so a killed run (power cut, out of
memory killer, closed QGIS) keeps its last completed epoch in a folder that loads and classifies.
The output folder itself still appears only when training completes; the checkpoint is then
removed. A cancel removes it too: the user asked for nothing to be left.

Each checkpoint also holds ``resume.pt`` (see resume.py): a run started again with the same chips and
options continues from it instead of starting over. In a distributed run only rank 0 writes.

Replacing the previous checkpoint takes two renames (old away, new in place); a kill between them
leaves the previous one complete under ``.<name>.checkpoint.old-*``.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time

from ..core.errors import DeepPixelError
from ..io.destinations import Place, check_clashes, check_writable
from ..io.staging import check_folder_name, check_output_folder
from . import resume

SUFFIX = ".checkpoint"
REFRESH_SECONDS = 60.0


def checkpoint_path(output_folder: str) -> str:
    """``<output>.checkpoint``, beside the output folder."""
    return os.path.normpath(os.path.abspath(output_folder)) + SUFFIX


def check_train_destinations(folders, output_folder: str, pretrained_model: str | None, name: str) -> None:
    """Before any work: neither the model folder nor its checkpoint folder (which training replaces and
    removes) may be, hold or lie inside an input (the chips folders, PRETRAINED_MODEL) in any spelling;
    both must be writable, and the model folder new or empty."""
    check_folder_name(output_folder)
    ckpt = checkpoint_path(output_folder)
    model = Place("OUTPUT_MODEL", output_folder, "folder")
    check_clashes([Place("INPUT_TRAINING_DATA", f, "folder") for f in folders]
                  + [Place("PRETRAINED_MODEL", pretrained_model or "", "model")],
                  [model, Place("OUTPUT_MODEL", ckpt, "folder",
                                name="OUTPUT_MODEL's checkpoint folder (replaced as training runs)")])
    _check_foreign(ckpt, name)
    check_writable(model)            # the checkpoint folder lies beside it
    check_output_folder(output_folder)


def _check_foreign(path: str, name: str) -> None:
    """``<output>.checkpoint`` may only be absent, empty, or a checkpoint of this model (to resume from)."""
    if not os.path.lexists(path):
        return
    ours = os.path.isdir(path) and not os.path.islink(path) and (
        not os.listdir(path) or os.path.isfile(os.path.join(path, name + ".emd")))
    if not ours:
        raise DeepPixelError(f"{path} exists and is not a checkpoint of the model {name!r}; "
                             "training keeps its checkpoints there. Move or delete it, or choose another "
                             "output folder.")


class Checkpoints:
    """Writes, replaces and removes the checkpoint folder of one training run (check_train_destinations
    has checked its place)."""

    def __init__(self, output_folder: str, name: str, progress=None, active: bool = True):
        self.path = checkpoint_path(output_folder)
        self.name = name
        self.progress = progress
        self.active = active                 # False: another process (rank 0) writes the checkpoints
        self.epoch: int | None = None        # epoch of the checkpoint this run wrote
        self.adopted: int | None = None      # epoch of the earlier run's checkpoint this run resumed from
        self.written_at: float | None = None  # time.monotonic() of this run's last checkpoint

    def due(self) -> bool:
        """Whether a kept epoch that is not the best (MODEL_ARGUMENTS keep last or plateau) is worth a checkpoint: the
        last one is at least REFRESH_SECONDS old (writing one every short epoch would cost training time)."""
        return self.written_at is None or time.monotonic() - self.written_at >= REFRESH_SECONDS

    def take_over(self, fingerprint: str) -> dict | None:
        """The resume state of an earlier run's checkpoint made with the same chips and options (this
        run then owns it), or None (an unusable earlier checkpoint is replaced by this run's first one)."""
        if not self.active or not os.path.isdir(self.path) or not os.listdir(self.path):
            return None
        state, why = resume.load(self.path, fingerprint)
        if state is not None:
            self.adopted = int(state["epoch"])
            return state
        if self.progress is not None:
            self.progress.warn(f"An earlier checkpoint {self.path} (from an interrupted run) will be replaced "
                               f"by this run's first checkpoint ({why}, so training starts over); copy it "
                               "elsewhere now to keep it.")
        return None

    def save(self, epoch: int, write, resume_state: dict | None = None) -> None:
        """``write(folder)`` writes the package into a fresh folder (with ``resume_state`` beside it); it
        then replaces the checkpoint."""
        if not self.active:
            return
        parent = os.path.dirname(self.path)
        base = os.path.basename(self.path)
        old = None
        try:
            tmp = tempfile.mkdtemp(prefix="." + base + ".partial-", dir=parent)
        except OSError as e:
            raise _write_error(self.path, e) from e
        try:
            write(tmp)
            if resume_state is not None:
                resume.save(tmp, resume_state)
            if os.path.isdir(self.path):
                old = tempfile.mkdtemp(prefix="." + base + ".old-", dir=parent)
                os.rmdir(old)
                os.rename(self.path, old)
            os.rename(tmp, self.path)
            self.written_at = time.monotonic()
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if old and not os.path.exists(self.path):
                os.rename(old, self.path)          # put the previous checkpoint back
            if isinstance(e, OSError):
                raise _write_error(self.path, e) from e
            raise
        if old:
            shutil.rmtree(old, ignore_errors=True)
        first = self.epoch is None and self.adopted is None
        self.epoch, self.adopted = epoch, None
        if self.progress is not None:
            self.progress.log(f"Checkpoint of epoch {epoch} (best so far) written to {self.path}"
                              + (" (a loadable model; it is removed when training completes)." if first else "."))

    def remove(self, completed: bool = False) -> None:
        """Delete the checkpoint this run wrote; when training completed, also one it resumed from (a
        checkpoint of an earlier run is otherwise left alone)."""
        if self.epoch is not None or (completed and self.adopted is not None):
            shutil.rmtree(self.path, ignore_errors=True)
            self.epoch = self.adopted = None

    def kept_notice(self) -> str | None:
        epoch = self.epoch if self.epoch is not None else self.adopted
        if epoch is None or not os.path.isdir(self.path):
            return None
        return (f"Training stopped before completing; the best model so far (epoch {epoch}) is kept in "
                f"{self.path}. It loads and classifies like a finished model; run the same command again "
                "to resume from it.")


def _write_error(path, e) -> DeepPixelError:
    why = getattr(e, "strerror", None) or e
    if getattr(e, "errno", None) not in (errno.ENOSPC, errno.EDQUOT, None):
        return DeepPixelError(f"Writing the checkpoint {path} failed ({why}): choose another output folder.")
    try:
        free = f"{shutil.disk_usage(os.path.dirname(path)).free / 2**20:.0f} MiB free"
    except OSError:
        free = "free space unknown"
    return DeepPixelError(f"Writing the checkpoint {path} failed ({why}). The disk "
                          f"may be full ({free}): free some space or choose another output folder.")
