"""Writing outputs safely: into a temporary name next to the target, renamed when complete."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from ..core.errors import DeepPixelError


# What staging and checkpoints add to an output folder's name: ".<name>.partial-XXXXXXXX", "<name>.checkpoint"
NAME_SUFFIXES = 20


def check_folder_name(path: str) -> None:
    """An output folder needs a name of its own ('.', '..' or a root cannot be renamed into) that fits the
    file system with the suffixes of its temporary and checkpoint folders."""
    if not path or not str(path).strip():
        raise DeepPixelError("No output folder was given: give the path of a new folder (e.g. /data/output_1).")
    name = os.path.basename(os.path.normpath(path))
    if name in ("", ".", ".."):
        raise DeepPixelError(f"The output folder {path!r} names no folder of its own (the current or parent folder, "
                             "or a root): give the path of a new folder inside it (e.g. ./output_1).")
    parent = os.path.dirname(os.path.abspath(path))
    try:
        limit = os.pathconf(parent if os.path.isdir(parent) else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(name)) + NAME_SUFFIXES > limit:
        raise DeepPixelError(f"The output folder's name {name[:40]}... is {len(os.fsencode(name))} bytes long; "
                             f"here it may be at most {limit - NAME_SUFFIXES} (file names stop at {limit} bytes, and "
                             "its temporary and checkpoint folders add to it): choose a shorter name.")


def check_output_folder(path: str, inputs=()) -> None:
    """Refuse an output folder that would overwrite inputs or a non-empty folder."""
    check_folder_name(path)
    real = os.path.realpath(path)
    for p in inputs:
        if p and os.path.realpath(p) == real:
            raise DeepPixelError(f"The output folder {path} is also an input; choose another folder.")
        if p and os.path.realpath(p).startswith(real + os.sep):
            raise DeepPixelError(f"The output folder {path} contains the input {p}; choose another folder.")
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise DeepPixelError(f"The output {path} exists and is a file; choose a folder path.")
        if os.listdir(path):
            raise DeepPixelError(
                f"The output folder {path} is not empty. Choose a new or empty folder, or delete "
                "its contents first (nothing is overwritten).")
    parent = os.path.dirname(real) or "."
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise DeepPixelError(f"Cannot create the folder {parent}: {e.strerror}.") from e


def normal_permissions(path: str) -> None:
    """mkstemp/mkdtemp make private files (0600) and folders (0700); outputs get the user's umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


@contextlib.contextmanager
def creation_errors(target: str):
    """A folder that cannot be made or written (permissions, a read-only disk) as one clear error."""
    try:
        yield
    except OSError as e:
        raise DeepPixelError(f"Cannot write {target}: {e.strerror or e} ({e.filename or target}). Choose a folder "
                             "you can write to; nothing was written.") from e


@contextlib.contextmanager
def staged_folder(target: str):
    """Yield a temporary folder beside ``target``; rename it to ``target`` on success.

    On any error (cancel included) the temporary folder is deleted, so no half-written output
    ever carries the target's name.
    """
    parent = os.path.dirname(os.path.abspath(target))
    with creation_errors(target):
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="." + os.path.basename(target) + ".partial-", dir=parent)
    try:
        yield tmp
        if os.path.isdir(target) and not os.listdir(target):
            os.rmdir(target)
        normal_permissions(tmp)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_file(target: str):
    """Yield a temporary file path beside ``target``; rename it to ``target`` on success."""
    parent = os.path.dirname(os.path.abspath(target))
    base, ext = os.path.splitext(os.path.basename(target))
    with creation_errors(target):
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + base + ".partial-", suffix=ext, dir=parent)
    os.close(fd)
    try:
        yield tmp
        normal_permissions(tmp)
        os.replace(tmp, target)
    except BaseException as e:
        for p in (tmp, tmp + ".aux.xml", tmp + ".ovr"):
            with contextlib.suppress(OSError):
                os.remove(p)
        if isinstance(e, OSError):
            raise DeepPixelError(f"Writing {target} failed ({e.strerror or e}); the disk may be full or the "
                                 "folder not writable. Nothing was kept.") from e
        raise
