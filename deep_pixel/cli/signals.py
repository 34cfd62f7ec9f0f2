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

from ..core.errors import Terminated


def _terminate(signum, frame):
    """Further signals are ignored so that the clean-up itself is not interrupted."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


class sigterm_cancels:  # noqa: N801 (used as a context manager, like contextlib's)
    """``with sigterm_cancels():`` SIGTERM raises Terminated inside the block; the previous handler is
    restored after it. Nested blocks leave the outer one's handling in place."""

    def __enter__(self):
        self.previous = None
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

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False
