"""Run an engine command in QGIS's Python or in an external Python, with one calling convention.

Algorithms read their declared options into the engine's options dataclass
(param_builder.read_declared) and call :func:`run_engine_options` with the command's inputs. Without
an external interpreter the command's ``execute`` gets the dataclass in-process with Processing
feedback; with one (environment variable ``DEEP_PIXEL_PYTHON`` or the plugin setting
``deeppixel/engine_python``), ``python -m deep_pixel --progress json <command> ... --options-json F``
runs as a child process whose JSON lines become Processing progress, messages and errors, and
cancelling kills it.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import queue

# The engine runs in the user-chosen Python: an argument list, never a shell.
import subprocess  # nosec B404
import tempfile
import threading
import time

from qgis.core import QgsProcessingException, QgsSettings

from ..deep_pixel.core.diagnostics import HEAVY, missing, missing_message
from ..deep_pixel.core.errors import Cancelled
from .base import FeedbackProgress, engine_errors

PLUGIN_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTING_KEY = "deeppixel/engine_python"
ENV_KEY = "DEEP_PIXEL_PYTHON"
SCHEDULER_KEY = "deeppixel/dask_scheduler"
SCHEDULER_ENV = "DEEP_PIXEL_DASK_SCHEDULER"
# What commands need besides QGIS: export and evaluate work without torch.
LIGHT = ("numpy", "rasterio", "shapely")


def engine_python() -> str | None:
    """The external interpreter to use, or None for in-process."""
    value = os.environ.get(ENV_KEY) or QgsSettings().value(SETTING_KEY, "", type=str)
    return value.strip() or None


def dask_scheduler() -> str | None:
    """The Dask scheduler Classify Pixels uses when DASK_SCHEDULER is empty (settings or environment)."""
    value = os.environ.get(SCHEDULER_ENV) or QgsSettings().value(SCHEDULER_KEY, "", type=str)
    return value.strip() or None


def _with_default_scheduler(options):
    """Classify options with the configured scheduler, unless the run names one or asks for WORKERS."""
    if not hasattr(options, "dask_scheduler") or options.dask_scheduler or options.workers:
        return options
    scheduler = dask_scheduler()
    return dataclasses.replace(options, dask_scheduler=scheduler) if scheduler else options


def engine_mode() -> str:
    python = engine_python()
    return f"external: {python}" if python else "in-process (QGIS's Python)"


def run_engine_options(command: str, inputs: dict, options, feedback, needs=HEAVY) -> dict:
    """Run ``deep_pixel <command>`` with its inputs (flag -> value) and an options dataclass.

    In-process the dataclass goes straight to the command's ``execute``; the external engine gets
    the inputs as flags and the options as a JSON file (``--options-json``)."""
    options = _with_default_scheduler(options)
    python = engine_python()
    if python:
        from ..deep_pixel.core.params import to_json
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
            json.dump(to_json(options), f)
        try:
            argv = [a for flag, value in inputs.items() if value is not None
                    for a in (f"--{flag.replace('_', '-')}", *(value if isinstance(value, list) else [value]))]
            with engine_errors():        # SIGTERM here stops the engine as cancel does (see _run_external)
                return _run_external(python, command, argv + ["--options-json", f.name], feedback)
        finally:
            os.remove(f.name)
    absent = missing(list(needs))
    if absent:
        raise QgsProcessingException(missing_message(absent))
    module = importlib.import_module(f"..deep_pixel.cli.{command}", __package__)
    with engine_errors():
        return module.execute(**inputs, options=options, progress=FeedbackProgress(feedback))


STOP_GRACE_S = 30


def _reader(stream, q):
    for line in iter(stream.readline, ""):
        q.put(line)
    q.put(None)


def _stop(proc) -> None:
    """Stop the external engine as cancel does: SIGTERM lets it remove its partial outputs; SIGKILL only
    if it has not finished within STOP_GRACE_S."""
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def _take(line: str, progress, got: dict) -> None:
    """One line of the engine's JSON-lines output onto Processing's feedback, or into ``got``."""
    try:
        msg = json.loads(line)
    except ValueError:
        progress.log(line.rstrip())
        return
    kind = msg.get("type")
    if kind == "progress":
        progress.report(msg.get("fraction", 0.0), msg.get("message"))
    elif kind == "log":
        progress.log(msg.get("message", ""))
    elif kind == "warning":
        progress.warn(msg.get("message", ""))
    elif kind == "result":
        got["result"] = msg.get("result")
    elif kind in ("error", "cancelled"):
        got["failure"] = msg.get("message")


def _run_external(python: str, command: str, argv: list, feedback) -> dict:
    if not os.path.exists(python):
        raise QgsProcessingException(f"The external engine Python {python!r} (set by {ENV_KEY} or the "
                                     "Deep Pixel settings) does not exist. Fix the path or clear it.")
    env = dict(os.environ)
    env["PYTHONPATH"] = PLUGIN_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop(ENV_KEY, None)
    cmd = [python, "-m", "deep_pixel", "--progress", "json", command, *[str(a) for a in argv]]
    if feedback is not None:
        feedback.pushInfo(f"External engine: {python}")
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, cwd=PLUGIN_ROOT, env=env, stdout=subprocess.PIPE, stderr=err,  # nosec B603
                                text=True, encoding="utf-8")
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        progress = FeedbackProgress(feedback)
        got = {"result": None, "failure": None}
        deadline = None
        while True:
            try:
                if feedback is not None and feedback.isCanceled():
                    raise QgsProcessingException("Cancelled: the external engine was stopped; no output was written.")
                if deadline is not None and time.monotonic() > deadline:
                    proc.kill()
                line = lines.get(timeout=0.1)
                if line is None:
                    break
                _take(line, progress, got)
            except queue.Empty:
                continue
            except Cancelled:     # SIGTERM to QGIS (base.engine_errors): the engine stops as on cancel and says so
                proc.terminate()
                deadline = time.monotonic() + STOP_GRACE_S
            except BaseException:     # cancel, or anything else: the engine is stopped, never left running
                _stop(proc)
                raise
        result, failure = got["result"], got["failure"]
        rc = proc.wait()
        proc.stdout.close()
        if failure:
            raise QgsProcessingException(failure)
        if rc != 0 or result is None:
            err.seek(0)
            tail = err.read()[-3000:]
            raise QgsProcessingException(f"The external engine {python} failed (exit {rc}):\n{tail}")
        return result
