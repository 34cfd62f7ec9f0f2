"""Before any work: no output may overwrite an input, another output or a sidecar of either.

Each input and output is a ``Place``: the Processing parameter name that gave it (used in the
message), its path and its kind. A kind says which files a path stands for: a raster is its file,
``.aux.xml``, ``.ovr``, ``.msk`` and ``.qml``; a shapefile all its parts; an HTML report its
``.json``; a folder everything inside it. Two places clash when any of their files is one file,
whatever the spelling (relative, ``..``, symbolic links, letter case on a case-insensitive
filesystem).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..chips.layout import EXPORT_METADATA, IMAGES, LABELS, METADATA_FILES, STATS
from ..core.errors import DeepPixelError

# Files GDAL or QGIS keep beside a raster (appended to the full name, or replacing the extension).
RASTER_APPENDED = ("", ".aux.xml", ".ovr", ".msk")
RASTER_STEM = (".qml", ".tfw", ".wld")
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd", ".qml")
SQLITE_APPENDED = ("", "-wal", "-shm", "-journal")
MODEL_PARTS = (".emd", ".pth", ".dlpk", ".onnx")
VECTOR_EXTENSIONS = (".shp", ".gpkg", ".sqlite", ".geojson", ".json", ".kml", ".gml", ".fgb", ".csv")
KINDS = ("raster", "vector", "model", "folder", "report", "file")


@dataclass(frozen=True)
class Place:
    role: str          # OUTPUT_RASTER, INPUT_CLASSIFIED, ...: the parameter to change
    path: str
    kind: str = "file"
    name: str = ""     # how messages call it when it is not the parameter's own path (default: the role)

    @property
    def called(self) -> str:
        return self.name or self.role

    @classmethod
    def infer(cls, role: str, path: str | None, folders: bool = True) -> "Place":
        """A place whose kind follows from what it is: a folder, a vector or model file, else a raster."""
        ext = os.path.splitext(path or "")[1].lower()
        if folders and path and os.path.isdir(path):
            return cls(role, path, "folder")
        if ext in MODEL_PARTS:
            return cls(role, path, "model")
        return cls(role, path or "", "vector" if ext in VECTOR_EXTENSIONS else "raster")

    def files(self) -> list:
        """The paths this place stands for (a folder: the folder itself)."""
        stem, ext = os.path.splitext(self.path)
        if self.kind == "raster":
            return [self.path + s for s in RASTER_APPENDED] + [stem + s for s in RASTER_STEM]
        if self.kind == "vector" and ext.lower() == ".shp":
            return [stem + s for s in SHAPEFILE_PARTS]
        if self.kind == "vector" and ext.lower() in (".gpkg", ".sqlite"):
            return [self.path + s for s in SQLITE_APPENDED]
        if self.kind == "model":
            return [self.path] + [stem + s for s in MODEL_PARTS]
        if self.kind == "report":
            return [self.path, stem + ".json"]
        return [self.path]


def same_file_key(path: str) -> str:
    """One spelling per file: absolute, symbolic links resolved, case folded where the folder ignores case."""
    real = os.path.realpath(os.path.abspath(os.path.expanduser(path)))
    parent = os.path.dirname(real)
    return os.path.normcase(real.casefold() if _ignores_case(parent) else real)


def _ignores_case(folder: str) -> bool:
    """Does this (existing part of the) folder's filesystem treat 'A' and 'a' as one name?"""
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder) if os.path.dirname(folder) != folder else ""
    if not folder:
        return False
    swapped = folder.swapcase()
    return swapped != folder and os.path.isdir(swapped) and os.path.samefile(folder, swapped)


def _within(key: str, folder_key: str) -> bool:
    return key == folder_key or key.startswith(folder_key.rstrip(os.sep) + os.sep)


def _clash(out: Place, other: Place, what: str) -> str | None:
    """Why ``out`` would destroy ``other`` (an input or an earlier output), or None."""
    out_keys = {same_file_key(p): p for p in out.files()}
    other_keys = {same_file_key(p): p for p in other.files()}
    shared = sorted(out_keys.keys() & other_keys.keys())
    fix = f"Nothing was written: choose another name for {out.role}."
    if shared:
        same = same_file_key(out.path) == same_file_key(other.path)
        detail = "" if same else f" (both would use {out_keys[shared[0]]})"
        return f"{out.called} {out.path} would overwrite the {what} {other.called} {other.path}{detail}. {fix}"
    if out.kind == "folder":
        inside = [p for k, p in other_keys.items() if _within(k, same_file_key(out.path))]
        if inside:
            return f"{out.called} {out.path} contains the {what} {other.called} {inside[0]}. {fix}"
    if other.kind == "folder":
        inside = [p for k, p in out_keys.items() if _within(k, same_file_key(other.path))]
        if inside:
            return (f"{out.called} {out.path} lies inside the {what} folder {other.called} {other.path}: it would "
                    f"change that folder. {fix}")
    return None


def check_destinations(inputs: list, outputs: list) -> None:
    """Refuse, before any work, an output that would replace an input, another output or their sidecars.

    Also refuses a file output that is an existing folder, and an output folder that cannot be made.
    ``inputs`` and ``outputs`` are Places; empty paths are skipped.
    """
    check_clashes(inputs, outputs)
    for out in outputs:
        check_writable(out)


def check_clashes(inputs: list, outputs: list) -> None:
    """The first half of check_destinations: no output may be (or hold, or lie inside) an input or an
    earlier output."""
    inputs = [p for p in inputs if p.path]
    outputs = [p for p in outputs if p.path]
    for i, out in enumerate(outputs):
        problems = [_clash(out, other, "input") for other in inputs]
        problems += [_clash(out, other, "output") for other in outputs[:i]]
        problem = next((p for p in problems if p), None)
        if problem:
            raise DeepPixelError(problem)


def check_writable(out: Place) -> None:
    """The second half: a file output is not a folder (nor a folder output a file), and it can be written."""
    if not out.path:
        return
    path = os.path.abspath(os.path.expanduser(out.path))
    if out.kind != "folder" and os.path.isdir(path):
        raise DeepPixelError(f"{out.called} {out.path} is a folder; give a file name inside it, e.g. "
                             f"{os.path.join(out.path, 'output' + _extension(out))}.")
    if out.kind == "folder" and os.path.exists(path) and not os.path.isdir(path):
        raise DeepPixelError(f"{out.called} {out.path} exists and is a file; give {out.role} the path "
                             "of a new or empty folder.")
    if out.kind != "folder":
        _check_not_in_a_product(out, path)
    parent = os.path.dirname(path)
    existing = parent
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing) if os.path.dirname(existing) != existing else ""
    if existing and not os.path.isdir(existing):
        raise DeepPixelError(f"{out.called} {out.path} cannot be written: {existing} is a file, not a folder.")
    if existing and not os.access(existing, os.W_OK | os.X_OK):
        raise DeepPixelError(f"{out.called} {out.path} cannot be written: no permission to write in {existing}. "
                             "Choose a folder you can write to.")


def _check_not_in_a_product(out: Place, path: str) -> None:
    """An output must not replace a file of a chips folder (a chip or its label in images/ or labels/, or the
    export's own files): later trainings would use it without a word. Other files beside them are the user's."""
    existing = [p for p in out.files() if os.path.exists(p)]
    if not existing:
        return
    folder = os.path.dirname(path)
    own = {os.path.basename(p) for p in existing} & {*METADATA_FILES, STATS}
    chips = folder if own and os.path.isfile(os.path.join(folder, EXPORT_METADATA)) else None
    if os.path.basename(folder) in (IMAGES, LABELS) and os.path.isfile(
            os.path.join(os.path.dirname(folder), EXPORT_METADATA)):
        chips = os.path.dirname(folder)
    if chips:
        named = next((p for p in existing if os.path.basename(p) in own), existing[0])
        which = "is" if named == out.path else f"would replace {named},"
        raise DeepPixelError(f"{out.called} {out.path} {which} a file of the training chips folder {chips} (written "
                             "by Export Training Data): replaced, it would change what later trainings learn from. "
                             f"Nothing was written: choose another name or folder for {out.role}.")


def _extension(out: Place) -> str:
    return {"raster": ".tif", "report": ".html"}.get(out.kind, os.path.splitext(out.path)[1] or ".txt")
