"""Refuse Qt5-only and QGIS-3-only idioms in the plugin's QGIS code (``make lint``; QGIS 4 is Qt6).

The engine (deep_pixel/) never imports Qt or QGIS; this checks the adapters. qgis_compat.py is the
one place allowed to name the old spellings (it picks the newest the running QGIS has).
Exit status 1 with one line per finding, ``path:line: idiom (fix)``.
"""
from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKED = ("plugin.py", "__init__.py", "processing_provider", "ui", "scripts")
ALLOWED = {"qgis_compat.py", os.path.join("scripts", "check_qt6.py")}
RULES = [
    (r"\bexec_\(", "exec_() is gone in PyQt6: use exec()"),
    (r"\b(from|import)\s+PyQt5\b", "import Qt through qgis.PyQt"),
    (r"\bQVariant\.(Type\.)?(Int|String|Double|LongLong|Bool)\b", "field types: qgis_compat.field_type()"),
    (r"QgsProcessingParameterNumber\.(Type\.)?(Integer|Double)\b", "qgis_compat.number_type()"),
    (r"QgsProcessingParameterDefinition\.(Flag\.)?Flag[A-Z]\w*", "qgis_compat.advanced_flag()"),
    (r"QgsProcessing\.(SourceType\.)?Type[A-Z]\w*", "qgis_compat.source_type()"),
    (r"\bQgis\.(Warning|Info|Critical|Success)\b", "Qgis.MessageLevel.<level> (scoped)"),
    (r"QgsFeatureSink\.(Flag\.)?FastInsert\b", "qgis_compat.fast_insert()"),
    (r"QgsWkbTypes\.NoGeometry\b", "qgis_compat.no_geometry()"),
    (r"\bQt\.(Align(Left|Right|Center|VCenter|HCenter|Top|Bottom)|Checked|Unchecked|UserRole|DisplayRole)\b",
     "Qt6 enums are scoped: Qt.AlignmentFlag.AlignLeft, Qt.CheckState.Checked, Qt.ItemDataRole.UserRole"),
]


def python_files():
    for entry in CHECKED:
        path = os.path.join(ROOT, entry)
        if os.path.isfile(path):
            yield path
        for folder, _dirs, files in os.walk(path):
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def problems(line: str) -> list:
    """The fixes a line of code needs for Qt6/QGIS 4 (empty when it is fine)."""
    return [fix for pattern, fix in RULES if re.search(pattern, line)]


def findings():
    for path in python_files():
        rel = os.path.relpath(path, ROOT)
        if rel in ALLOWED:
            continue
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                for fix in problems(line):
                    yield f"{rel}:{number}: {line.strip()[:80]} ({fix})"


def main() -> int:
    found = list(findings())
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
