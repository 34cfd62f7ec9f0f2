"""``make zip``: dist/deeppixel-<version>.zip for QGIS's "Install from ZIP".

Holds only what the plugin runs: no tests, benchmarks, caches, venvs or build files.
"""
import configparser
import os
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE_FILES = ("metadata.txt", "__init__.py", "plugin.py", "qgis_compat.py", "icon.svg", "README.md", "LICENSE",
                 "requirements.txt")
INCLUDE_DIRS = ("deep_pixel", "processing_provider", "ui", "models")
SKIP_PARTS = ("__pycache__", ".pytest_cache", ".ruff_cache")


def version() -> str:
    cp = configparser.ConfigParser()
    cp.read(os.path.join(ROOT, "metadata.txt"), encoding="utf-8")
    return cp["general"]["version"]


def files():
    for f in INCLUDE_FILES:
        if os.path.isfile(os.path.join(ROOT, f)):
            yield f
    for d in INCLUDE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, d)):
            dirnames[:] = sorted(n for n in dirnames if n not in SKIP_PARTS and not n.startswith("."))
            for f in sorted(filenames):
                if f.endswith((".pyc", ".pyo")) or f.startswith("."):
                    continue
                yield os.path.relpath(os.path.join(dirpath, f), ROOT)


def main(out_dir=None) -> str:
    out_dir = out_dir or os.path.join(ROOT, "dist")
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, f"deeppixel-{version()}.zip")
    tmp = target + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files():
            zf.write(os.path.join(ROOT, rel), arcname=os.path.join("deeppixel", rel))
    os.replace(tmp, target)
    print(target)
    return target


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
