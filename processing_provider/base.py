"""Shared pieces of the Processing algorithms: feedback adapter, error mapping, engine access."""
from __future__ import annotations

import contextlib
import functools
import time
import traceback

from qgis.core import Qgis, QgsMessageLog, QgsProcessingAlgorithm, QgsProcessingException

from ..deep_pixel.cli.signals import sigterm_cancels
from ..deep_pixel.core.errors import DeepPixelError
from ..deep_pixel.core.progress import Progress
from .layers import vector_file


class FeedbackProgress(Progress):
    """Engine progress onto ``QgsProcessingFeedback`` (progress bar, log, cancel button)."""

    def __init__(self, feedback, message_interval: float = 2.0):
        self.feedback = feedback
        self.message_interval = message_interval
        self._last_message = float("-inf")

    def report(self, fraction, message=None):
        if self.feedback is None:
            return
        self.feedback.setProgress(100.0 * min(max(fraction, 0.0), 1.0))
        now = time.monotonic()
        # The progress text is also printed by qgis_process: keep it to one line every few seconds.
        if message and (now - self._last_message >= self.message_interval or fraction >= 1.0):
            self._last_message = now
            self.feedback.setProgressText(message)

    def log(self, message):
        if self.feedback is not None:
            self.feedback.pushInfo(message)

    def warn(self, message):
        """A warning, shown as one (not as an "ERROR:" line in qgis_process)."""
        if self.feedback is not None:
            self.feedback.pushWarning(message)

    def cancelled(self):
        return self.feedback is not None and self.feedback.isCanceled()


@contextlib.contextmanager
def engine_errors():
    """Turn engine errors into Processing errors with the same message. Run in the main thread (qgis_process),
    SIGTERM acts like cancel meanwhile (deep_pixel/cli/signals.py); the previous handler comes back after."""
    try:
        with sigterm_cancels():
            yield
    except DeepPixelError as e:
        raise QgsProcessingException(str(e)) from e
    except QgsProcessingException:
        raise
    except Exception as e:       # a bug, not an input problem: one line here, the traceback in the log
        QgsMessageLog.logMessage(traceback.format_exc(), "Deep Pixel", Qgis.MessageLevel.Critical)
        raise QgsProcessingException(
            f"Unexpected error ({type(e).__name__}: {e}). This is a bug in Deep Pixel: please report it; the "
            "traceback is in the Log Messages panel (Deep Pixel tab).") from e


class DeepPixelAlgorithm(QgsProcessingAlgorithm):
    """Common identity of our algorithms; subclasses set NAME, DISPLAY and HELP.

    Each subclass's processAlgorithm runs inside :func:`engine_errors`, reading its parameters included
    (a MODEL_ARGUMENTS range error there reached qgis_process as a Python traceback), so every engine
    error is a Processing error with the same message and SIGTERM acts like cancel throughout."""
    NAME = ""
    DISPLAY = ""
    HELP = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("processAlgorithm")
        if own is None or getattr(own, "engine_errors", False):
            return

        @functools.wraps(own)
        def process(self, parameters, context, feedback):
            with engine_errors():
                return own(self, parameters, context, feedback)
        process.engine_errors = True
        cls.processAlgorithm = process

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        """In the main thread (a background task runs processAlgorithm in its own): the raster inputs' files,
        and the vector inputs' files, so that processAlgorithm never touches the project's layers from the task's
        thread (that crashed QGIS while the dock's Review tab classified, and then exported, in the background)."""
        self._raster_files, self._vector_files = {}, {}
        for definition in self.parameterDefinitions():
            name = definition.name()
            if parameters.get(name) in (None, ""):
                continue
            if definition.type() == "raster":
                layer = self.parameterAsRasterLayer(parameters, name, context)
                if layer is not None and layer.providerType() == "gdal":
                    self._raster_files[name] = layer.source().split("|")[0]
            elif definition.type() in ("source", "vector"):
                # a path string matching a project layer's source resolves to that layer: its file (or a
                # copy written by Processing for memory/selected-only layers) is found here, in the main thread
                try:
                    self._vector_files[name] = vector_file(self, parameters, name, context, feedback)
                except QgsProcessingException:      # said again, inside the error wrapper, by processAlgorithm
                    pass
        return True

    def raster_file(self, parameters, name, context) -> str:
        """The file of raster parameter ``name``: found in the main thread by prepareAlgorithm, or now."""
        from .layers import raster_path
        found = getattr(self, "_raster_files", {}).get(name)
        return found or raster_path(self.parameterAsRasterLayer(parameters, name, context), name)

    def name(self):
        return self.NAME

    def displayName(self):  # noqa: N802
        return self.DISPLAY

    def group(self):
        return "Deep learning"

    def groupId(self):  # noqa: N802
        return "deeplearning"

    def shortHelpString(self):  # noqa: N802
        return self.HELP

    def createInstance(self):  # noqa: N802
        return type(self)()
