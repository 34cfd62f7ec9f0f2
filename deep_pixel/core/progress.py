"""The progress and cancellation interface shared by Processing, the command line and tests.

Engine code talks only to :class:`Progress`. Adapters subclass it: Processing maps it onto
``QgsProcessingFeedback``, the command line onto a progress bar or JSON lines.
"""
from __future__ import annotations

import json
import sys
import time

from .errors import Cancelled


class Progress:
    """Silent base implementation; subclasses override what they can show."""

    def report(self, fraction: float, message: str | None = None) -> None:
        """Overall completion in [0, 1], with an optional short status message."""

    def log(self, message: str) -> None:
        """An informative line for the user."""

    def warn(self, message: str) -> None:
        """Something the user should know about but that does not stop the job."""
        self.log("Warning: " + message)

    def cancelled(self) -> bool:
        """True once the user asked to stop."""
        return False

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the user asked to stop."""
        if self.cancelled():
            raise Cancelled()

    def sub(self, start: float, end: float) -> "Progress":
        """A view of this progress that maps [0, 1] onto [start, end]."""
        return _SubProgress(self, start, end)


class _SubProgress(Progress):
    def __init__(self, parent: Progress, start: float, end: float):
        self._parent, self._start, self._span = parent, start, end - start

    def report(self, fraction, message=None):
        self._parent.report(self._start + self._span * min(max(fraction, 0.0), 1.0), message)

    def log(self, message):
        self._parent.log(message)

    def warn(self, message):
        self._parent.warn(message)

    def cancelled(self):
        return self._parent.cancelled()


class RecordingProgress(Progress):
    """Keeps everything it is told; cancels after ``cancel_after`` reports (tests use it)."""

    def __init__(self, cancel_after: int | None = None):
        self.fractions: list[float] = []
        self.messages: list[str] = []
        self.cancel_after = cancel_after

    def report(self, fraction, message=None):
        self.fractions.append(fraction)
        if message:
            self.messages.append(message)

    def log(self, message):
        self.messages.append(message)

    def warn(self, message):
        self.messages.append("Warning: " + message)

    def cancelled(self):
        return self.cancel_after is not None and len(self.fractions) >= self.cancel_after


class ConsoleProgress(Progress):
    """A one-line progress bar with ETA on stderr, for the command line."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self._last = -1.0
        self._message = ""

    def report(self, fraction, message=None):
        fraction = min(max(fraction, 0.0), 1.0)
        if message:
            self._message = message
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.2:
            return
        self._last = now
        elapsed = now - self.started
        eta = elapsed / fraction * (1 - fraction) if fraction > 0.001 else float("nan")
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        eta_text = "--:--" if eta != eta else "%02d:%02d" % divmod(int(eta), 60)
        line = f"\r[{bar}] {fraction * 100:5.1f}% ETA {eta_text} {self._message[:50]:<50}"
        self.stream.write(line)
        if fraction >= 1.0:
            self.stream.write("\n")
        self.stream.flush()

    def log(self, message):
        self.stream.write("\r" + " " * (self.width + 70) + "\r" + message + "\n")
        self.stream.flush()


class JsonLinesProgress(Progress):
    """Machine-readable progress: one JSON object per line on stdout (for an external engine)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self._last = -1.0

    def _emit(self, **record):
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def report(self, fraction, message=None):
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < 0.1 and not message:
            return
        self._last = now
        self._emit(type="progress", fraction=round(float(fraction), 4), message=message)

    def log(self, message):
        self._emit(type="log", message=message)

    def warn(self, message):
        self._emit(type="warning", message=message)


def check(progress: Progress | None) -> Progress:
    """The given progress, or a silent one."""
    return progress if progress is not None else Progress()
