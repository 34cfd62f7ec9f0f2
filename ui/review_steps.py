"""One Processing algorithm run as a QGIS background task, for the Review tab's chains of steps."""
from __future__ import annotations

from qgis.core import QgsApplication, QgsProcessingAlgRunnerTask, QgsProcessingContext, QgsProject
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .export_panel import TaskFeedback


class AlgorithmStep(QObject):
    """Runs one algorithm in a QgsProcessingAlgRunnerTask (QGIS's task manager, its status-bar cancel
    button included). ``span`` maps the algorithm's 0-100 onto a part of the panel's progress bar."""

    progress = pyqtSignal(float)                 # 0-100 of the whole action
    text = pyqtSignal(str)
    finished = pyqtSignal(bool, dict, str, bool)  # successful, results, error text, cancelled

    def __init__(self, parent=None):
        super().__init__(parent)
        self.task = None
        self.feedback = None
        self.context = None
        self._alg = None
        self.span = (0.0, 100.0)
        self.log = ""

    def running(self) -> bool:
        return self.task is not None

    def start(self, alg_id: str, params: dict, description: str, span=(0.0, 100.0)) -> str | None:
        """Starts the task; returns None, or why it could not start."""
        if self.running():
            return "Another step is still running."
        alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
        if alg is None:
            return f"Algorithm {alg_id} is not available: is the Deep Pixel provider loaded?"
        self.span = span
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = TaskFeedback()
        self.feedback.progressText.connect(self.text)
        task = QgsProcessingAlgRunnerTask(alg, params, self.context, self.feedback)
        task.setDescription(description)
        task.progressChanged.connect(self._progress)
        task.executed.connect(self._executed)
        self.task, self._alg, self.log = task, alg, ""
        self._progress(0.0)
        QgsApplication.taskManager().addTask(task)
        return None

    def cancel(self):
        if self.task is not None:
            self.feedback.cancel()
            self.task.cancel()

    def _progress(self, value):
        lo, hi = self.span
        self.progress.emit(lo + (hi - lo) * min(max(float(value), 0.0), 100.0) / 100.0)

    def _executed(self, successful: bool, results: dict):
        self.log = self.feedback.textLog() if self.feedback is not None else ""
        cancelled = self.feedback is not None and self.feedback.isCanceled()
        self.task = None
        error = ""
        if not successful:
            lines = [line.strip() for line in self.log.splitlines() if line.strip()]
            error = lines[-1] if lines else "see the Log Messages panel"
        self.finished.emit(bool(successful) and not cancelled, dict(results or {}), error, cancelled)
