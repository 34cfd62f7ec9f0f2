"""A .dlpk (a zip of the model folder), opened without trusting it.

Before anything is written the archive is checked whole: no entry may leave the target folder or be
a link, and the entry count, the total uncompressed size and each entry's compression ratio are
bounded (a zip bomb is refused, not unpacked). Only the package's one .emd and the files it names
(``ModelFile``, ``OnnxFile``) are unpacked, flat, into the target folder.

Classify and Train read a .dlpk through a cache, ``<temp>/deep_pixel_dlpk-<uid>/<key>``, where the
key is the SHA-256 of the .dlpk (its first 32 hex digits). A run unpacks into a private ``.extract-*`` folder beside the
entry and renames it into place; when another run got there first, its entry is checked against
the manifest written with it (the .dlpk's hash and each file's hash) and used, and ours is
removed. Each run tidies the cache: temporary folders abandoned by killed runs are removed, and
only the KEEP_PACKAGES most recently used packages stay.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import struct
import tempfile
import time
import zipfile
import zlib

from ..core.errors import DeepPixelError

# A package holds a handful of files (.emd, .pth, perhaps .onnx, the report, its pictures, the
# training log); a few hundred entries is already far beyond any real one.
MAX_ENTRIES = 256
# The largest network we build (UNet++ on resnet101) weighs under 0.5 GiB, its .onnx as much again;
# 4 GiB unpacked leaves room for foreign extras and still fits an ordinary temporary folder.
MAX_TOTAL_BYTES = 4 << 30
# Weights and pictures hardly compress (a .pth about 1.1:1), text 5-20:1; deflate only goes far
# beyond 200:1 (up to about 1000:1) on runs of one byte, which is what a zip bomb is made of.
MAX_RATIO = 200
# An entry this small cannot fill a disk whatever its ratio (a short, blank-padded .emd compresses well).
RATIO_FREE_BYTES = 1 << 20
# An .emd is a few KiB of JSON.
MAX_EMD_BYTES = 16 << 20
# A private extraction folder this old belongs to a run that was killed: remove it.
STALE_SECONDS = 3600
# Packages kept in the cache; older ones go once unused for EVICT_AFTER_SECONDS (a run reads its
# package at the start, so one used minutes ago is not being read any more).
KEEP_PACKAGES = 4
EVICT_AFTER_SECONDS = 600
MANIFEST = ".deep_pixel_manifest.json"
TEMP_PREFIX = ".extract-"
TRASH_PREFIX = ".trash-"
# The fix for a damaged or foreign package, ending every such message (here and in package.py).
FIX = "Re-export the model with Train Model, or re-copy the package if it was damaged on the way."
# What a damaged or hostile archive makes zipfile raise while reading.
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError, NotImplementedError,
                ValueError, IndexError, KeyError, struct.error, zlib.error)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def open_archive(dlpk_path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(dlpk_path)
    except _READ_ERRORS as e:
        raise DeepPixelError(f"{dlpk_path} is not a readable .dlpk (zip) file: {e}. {FIX}") from e


def check_entries(zf: zipfile.ZipFile, dlpk_path: str) -> None:
    """Refuse the whole archive for one escaping or linked entry, too many entries or a zip bomb."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise DeepPixelError(f"{dlpk_path} holds {len(infos)} files, more than the {MAX_ENTRIES} a model "
                             f"package can hold: it is not a model package; refused. {FIX}")
    total = 0
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ":" in name or ".." in parts:
            raise DeepPixelError(f"{dlpk_path}: entry {name!r} points outside the package; refused. {FIX}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DeepPixelError(f"{dlpk_path}: entry {name!r} is a symbolic link; refused. {FIX}")
        size = info.file_size
        total += size
        if size > RATIO_FREE_BYTES and size > MAX_RATIO * max(info.compress_size, 1):
            raise DeepPixelError(
                f"{dlpk_path}: entry {name!r} unpacks {info.compress_size} bytes into {_mib(size)} "
                f"(more than {MAX_RATIO}:1, which no model file compresses to); refused as a zip bomb. {FIX}")
    if total > MAX_TOTAL_BYTES:
        raise DeepPixelError(f"{dlpk_path} would unpack to {_mib(total)}, more than the {_mib(MAX_TOTAL_BYTES)} "
                             f"a model package may hold; refused as a zip bomb. {FIX}")


def _base(member: str) -> str:
    return member.replace("\\", "/").rsplit("/", 1)[-1]


def choose_emd(zf: zipfile.ZipFile, dlpk_path: str) -> str:
    """The archive member of the package's model definition: the one .emd, preferably at the root."""
    emds = [i.filename for i in zf.infolist() if not i.is_dir() and i.filename.lower().endswith(".emd")]
    own = [n for n in emds if not _base(n).startswith("esri_")] or emds
    at_root = [n for n in own if _base(n) == n]
    candidates = sorted(at_root or own)
    if not candidates:
        raise DeepPixelError(f"{dlpk_path} holds no .emd model definition: a .dlpk from Train Model holds "
                             f"<name>.emd beside <name>.pth. {FIX}")
    if len(candidates) > 1:
        raise DeepPixelError(f"{dlpk_path} holds {len(candidates)} model definitions ({', '.join(candidates)}); "
                             "a package holds exactly one .emd. Keep one (with the weights it names) or "
                             "re-export the model with Train Model.")
    return candidates[0]


def needed_members(zf: zipfile.ZipFile, emd_member: str, dlpk_path: str) -> list:
    """The .emd and the files beside it that it names (ModelFile, OnnxFile) and the archive holds."""
    info = zf.getinfo(emd_member)
    if info.file_size > MAX_EMD_BYTES:
        raise DeepPixelError(f"{dlpk_path}: {emd_member} is {_mib(info.file_size)}; a model definition is a "
                             f"few KiB of JSON. {FIX}")
    try:
        emd = json.loads(zf.read(info).decode("utf-8"))
    except (ValueError, *_READ_ERRORS):
        emd = None                    # read_emd, on the unpacked file, says what is wrong with it
    folder = emd_member[:len(emd_member) - len(_base(emd_member))]
    names = set(zf.namelist())
    members = [emd_member]
    for key in ("ModelFile", "OnnxFile"):
        value = emd.get(key) if isinstance(emd, dict) else None
        if (isinstance(value, str) and value not in ("", ".", "..", MANIFEST) and _base(value) == value
                and folder + value in names and folder + value not in members):
            members.append(folder + value)
    return members


def _copy_member(zf, info, dest, dlpk_path) -> str:
    """Unpack one entry to ``dest`` (a new file), never past its declared size; its SHA-256."""
    h, written = hashlib.sha256(), 0
    with zf.open(info) as src, open(dest, "xb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            written += len(block)
            if written > info.file_size:
                raise DeepPixelError(f"{dlpk_path}: entry {info.filename!r} unpacks to more than it declares; "
                                     f"refused. {FIX}")
            h.update(block)
            out.write(block)
    return h.hexdigest()


def _check_space(folder: str, zf, members: list) -> None:
    needed = sum(zf.getinfo(m).file_size for m in members)
    free = shutil.disk_usage(folder).free
    if needed + (16 << 20) > free:
        raise DeepPixelError(f"Unpacking the model package needs {_mib(needed)} in {folder} but only {_mib(free)} "
                             "are free. Free some space there, or point TMPDIR (TEMP on Windows) to a larger disk.")


def extract_package(zf: zipfile.ZipFile, dlpk_path: str, target: str) -> tuple:
    """Check the archive, unpack its .emd and the files it names flat into ``target``.

    Returns (the .emd's file name, {file name: SHA-256})."""
    check_entries(zf, dlpk_path)
    try:
        emd_member = choose_emd(zf, dlpk_path)
        members = needed_members(zf, emd_member, dlpk_path)
        _check_space(target, zf, members)
        hashes = {_base(m): _copy_member(zf, zf.getinfo(m), os.path.join(target, _base(m)), dlpk_path)
                  for m in members}
    except DeepPixelError:
        raise
    except OSError as e:
        raise _write_error(e, target, dlpk_path) from e
    except _READ_ERRORS as e:
        raise DeepPixelError(f"{dlpk_path} is damaged ({e}). {FIX}") from e
    return _base(emd_member), hashes


def _write_error(e: OSError, folder: str, dlpk_path: str) -> DeepPixelError:
    if e.errno == errno.ENOSPC:
        return DeepPixelError(f"The disk holding {folder} filled up while unpacking {dlpk_path}. Free some "
                              "space, or point TMPDIR (TEMP on Windows) to a larger disk.")
    return DeepPixelError(f"Cannot unpack {dlpk_path} into {folder} ({e}). Point TMPDIR (TEMP on Windows) to a "
                          "writable folder, or give the .emd instead of the .dlpk.")


def safe_extract(dlpk_path: str, target: str) -> str:
    """Unpack the package's .emd and the files it names into the folder ``target``; the .emd's path.

    Nothing is written when the archive is refused; on a later error the files written are removed."""
    with open_archive(dlpk_path) as zf:
        written = set(os.listdir(target))
        try:
            emd_name, _ = extract_package(zf, dlpk_path, target)
        except BaseException:
            for name in set(os.listdir(target)) - written:
                os.remove(os.path.join(target, name))
            raise
    return os.path.join(target, emd_name)


# -- the cache ------------------------------------------------------------------------------------

def cache_root() -> str:
    """``<temp>/deep_pixel_dlpk-<uid>``: one per user, so no one else's files are ever read."""
    user = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    root = os.path.join(tempfile.gettempdir(), "deep_pixel_dlpk" + user)
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        ours = _ours(root) and not os.path.islink(root)
    except OSError as e:
        raise DeepPixelError(f"Cannot create {root} to unpack the model package ({e.strerror}). Point TMPDIR "
                             "(TEMP on Windows) to a writable folder, or give the .emd instead of the .dlpk.") from e
    if not ours:
        raise DeepPixelError(f"{root} belongs to another user (or is a link), so model packages are not unpacked "
                             "there. Remove it, or point TMPDIR (TEMP on Windows) to a folder of your own.")
    return root


def cached_package(dlpk_path: str) -> str:
    """The path of the package's .emd, unpacked once into the cache (safe with several runs at once)."""
    try:
        digest = sha256_file(dlpk_path)
    except OSError as e:
        raise DeepPixelError(f"Cannot read the model package {dlpk_path}: {e.strerror}.") from e
    root = cache_root()
    entry = os.path.join(root, digest[:32])
    tidy_cache(root, keep=entry)
    for _attempt in range(3):
        emd, inode = _valid_entry(entry, digest)
        if emd:
            try:
                os.utime(entry)      # "recently used", for tidy_cache
            except OSError:
                pass
            return emd
        if inode is not None:        # damaged or tampered with: set aside (only the one we judged)
            _discard(entry, inode)
        _install(dlpk_path, digest, root, entry)
    raise DeepPixelError(f"Could not unpack {dlpk_path} into {root}: the unpacked copy kept failing its check "
                         "(another program changing it?). Try again, or give the .emd instead of the .dlpk.")


def _install(dlpk_path: str, digest: str, root: str, entry: str) -> None:
    """Unpack privately, then rename into place; a run that lost the race removes its copy."""
    try:
        tmp = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=root)
    except OSError as e:
        raise _write_error(e, root, dlpk_path) from e
    try:
        with open_archive(dlpk_path) as zf:
            emd_name, hashes = extract_package(zf, dlpk_path, tmp)
        try:
            with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
                json.dump({"dlpk_sha256": digest, "emd": emd_name, "files": hashes}, f)
        except OSError as e:
            raise _write_error(e, tmp, dlpk_path) from e
        try:
            os.rename(tmp, entry)
            return
        except OSError as e:
            if not os.path.isdir(entry) and e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise DeepPixelError(f"Cannot move the unpacked package into {entry} ({e}).") from e
            # another run renamed its copy first: theirs is checked by the caller, ours goes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _valid_entry(entry: str, digest: str) -> tuple:
    """(the .emd's path, None) when the entry holds what its manifest says; else (None, its inode or None)."""
    try:
        inode = os.lstat(entry).st_ino
    except OSError:
        return None, None
    try:
        with open(os.path.join(entry, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        files, emd = manifest["files"], manifest["emd"]
        ok = (manifest["dlpk_sha256"] == digest and emd in files and all(
            os.path.basename(n) == n and sha256_file(os.path.join(entry, n)) == h for n, h in files.items()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ok = False
    return (os.path.join(entry, emd), None) if ok else (None, inode)


def _discard(path: str, inode: int | None = None) -> None:
    """Rename ``path`` aside (atomic), then remove it; with ``inode``, only if it is still that folder."""
    trash = os.path.join(os.path.dirname(path), TRASH_PREFIX + os.urandom(6).hex())
    try:
        os.rename(path, trash)
    except OSError:
        return                       # already gone (another run removed it)
    if inode is not None and os.lstat(trash).st_ino != inode:
        try:                         # a fresh copy replaced it meanwhile: put that one back
            os.rename(trash, path)
            return
        except OSError:
            pass
    _remove(trash)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except OSError:
            pass


def tidy_cache(root: str, keep: str) -> None:
    """Remove abandoned temporary folders and all but the KEEP_PACKAGES most recently used packages."""
    now = time.time()
    try:
        names = os.listdir(root)
    except OSError:
        return
    packages = []
    for name in names:
        path = os.path.join(root, name)
        try:
            age = now - os.lstat(path).st_mtime
        except OSError:
            continue                 # removed by another run meanwhile
        if name.startswith(TRASH_PREFIX) or name.startswith(TEMP_PREFIX) and age > STALE_SECONDS:
            _remove(path)
        elif not name.startswith(".") and path != keep:
            packages.append((age, path))
    for age, path in sorted(packages)[KEEP_PACKAGES:]:
        if age > EVICT_AFTER_SECONDS:
            _discard(path)
    _tidy_legacy(now)


def _tidy_legacy(now: float) -> None:
    """Earlier versions unpacked into ``<temp>/deep_pixel_dlpk`` and never cleaned it: remove our part."""
    legacy = os.path.join(tempfile.gettempdir(), "deep_pixel_dlpk")
    try:
        names = os.listdir(legacy) if _ours(legacy) else []
    except OSError:
        return
    for name in names:
        path = os.path.join(legacy, name)
        try:
            if _ours(path) and now - os.lstat(path).st_mtime > EVICT_AFTER_SECONDS:
                _remove(path)
        except OSError:
            continue
    try:
        os.rmdir(legacy)             # only when empty
    except OSError:
        pass


def _ours(path: str) -> bool:
    """Owned by this user (on Windows the temporary folder is the user's own)."""
    return not hasattr(os, "getuid") or os.lstat(path).st_uid == os.getuid()
