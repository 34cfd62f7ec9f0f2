"""The engine must stay free of QGIS and Qt; adapters import Qt only through qgis.PyQt."""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_engine_imports_no_qgis_or_qt():
    code = (
        "import importlib, pkgutil, sys\n"
        "import deep_pixel\n"
        "for m in pkgutil.walk_packages(deep_pixel.__path__, 'deep_pixel.'):\n"
        "    if m.name != 'deep_pixel.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'processing'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _python_files(*folders):
    for folder in folders:
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(dirpath, f)


def test_qt_only_through_qgis_pyqt():
    offenders = []
    files = list(_python_files("deep_pixel", "processing_provider", "ui")) + [
        os.path.join(ROOT, "plugin.py"), os.path.join(ROOT, "__init__.py")]
    for path in files:
        tree = ast.parse(open(path, encoding="utf-8").read(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{os.path.relpath(path, ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")]
    assert not offenders, offenders


def test_modules_stay_small():
    big = [(os.path.relpath(p, ROOT), n) for p in _python_files("deep_pixel", "processing_provider", "ui")
           for n in [sum(1 for _ in open(p, encoding="utf-8"))] if n > 450]
    assert not big, f"modules over ~400 lines: {big}"
