"""SIGTERM acts like cancel (a scheduler's stop, a container stop, a closed terminal, ``kill``).

While a command runs, SIGTERM raises :class:`Terminated` (a ``Cancelled``) in the main thread: it unwinds
through the staging code, which removes partial outputs, and Train Model keeps its checkpoint. The
command line (cli/main.py) and in-process Processing runs (processing_provider/base.py: qgis_process
runs algorithms in its main thread) use the same handler. Elsewhere (a background task's thread) nothing
changes: Python runs signal handlers in the main thread only.
"""
from __future__ import annotations

import signal
import threading

from ..core.errors import Cancelled, DeepPixelError, Terminated

_received = [0]          # SIGTERMs handled so far (a block compares the count at its start and end)


def _terminate(signum, frame):
    """Further signals are ignored so that the clean-up itself is not interrupted."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _received[0] += 1
    raise Terminated()


class sigterm_cancels:  # noqa: N801 (used as a context manager, like contextlib's)
    """``with sigterm_cancels():`` SIGTERM raises Terminated inside the block; the previous handler is
    restored after it. Nested blocks leave the outer one's handling in place."""

    def __enter__(self):
        self.previous, self.received = None, _received[0]
        if threading.current_thread() is not threading.main_thread():
            return self
        current = signal.getsignal(signal.SIGTERM)
        if current is None or current in (_terminate, signal.SIG_IGN):
            return self             # a handler set outside Python, an outer block, or SIGTERM ignored on purpose
        try:
            self.previous = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:                               # not the main interpreter
            self.previous = None
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if exc is not None and _received[0] > self.received and _made_by_c_code(exc):
            # Terminated was raised inside C code (GDAL, rasterio, numpy), which turned it into its own error
            # (e.g. rasterio's "A valid dtype is required"): it is still the stop that was asked for
            raise Terminated() from exc
        return False


def _made_by_c_code(exc) -> bool:
    """A Python or library error (not one of ours, nor a message meant for the user, e.g. the external engine's
    own account of its stop, which names the checkpoint it kept)."""
    return not isinstance(exc, (Cancelled, DeepPixelError)) and \
        type(exc).__module__.split(".")[0] in ("builtins", "rasterio", "numpy", "torch")
