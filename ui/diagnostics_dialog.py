"""The Diagnostics dialog: a copyable report of what the engine runs on."""
from __future__ import annotations

import json
# The report comes from the user-chosen engine Python: an argument list, never a shell.
import subprocess  # nosec B404

from qgis.core import Qgis
from qgis.PyQt.QtGui import QGuiApplication
from qgis.PyQt.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit, QPushButton, QVBoxLayout


def diagnostics_text() -> str:
    """QGIS and Python facts, plus the engine's report (in-process and, if set, external)."""
    from ..deep_pixel.core.diagnostics import format_report, report
    from ..processing_provider.engine_runner import PLUGIN_ROOT, engine_mode, engine_python
    lines = [f"QGIS {Qgis.QGIS_VERSION}", ""]
    lines.append(format_report(report(engine_mode())))
    python = engine_python()
    if python:
        lines += ["", f"External engine {python}:"]
        try:
            proc = subprocess.run([python, "-m", "deep_pixel", "--progress", "json", "diagnose"],  # nosec B603
                                  capture_output=True, text=True, cwd=PLUGIN_ROOT, timeout=120)
            result = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
            info = next((r["result"] for r in result if r.get("type") == "result"), None)
            lines.append(format_report(info) if info else f"failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        except (OSError, subprocess.TimeoutExpired, ValueError) as e:
            lines.append(f"cannot run it: {e}")
    return "\n".join(lines)


class DiagnosticsDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Deep Pixel diagnostics")
        self.resize(720, 480)
        layout = QVBoxLayout(self)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setPlainText(diagnostics_text())
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        copy = QPushButton("Copy to clipboard", self)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.toPlainText()))
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
