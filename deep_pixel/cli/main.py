"""``python -m deep_pixel <command>``: the engine's command line.

Each command lives in ``deep_pixel/cli/<name>.py`` with ``HELP``, ``add_arguments(parser)``
and ``run(args, progress) -> dict``. The result dict is printed as JSON on the last line.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from .. import __version__
from ..core.errors import Cancelled, DeepPixelError
from ..core.progress import ConsoleProgress, JsonLinesProgress
from .signals import sigterm_cancels

COMMANDS = ("export", "train", "classify", "evaluate", "suggest", "diagnose")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deep_pixel",
                                     description="Deep Pixel: deep-learning pixel classification of rasters.")
    parser.add_argument("--version", action="version", version=f"deep_pixel {__version__}")
    parser.add_argument("--progress", choices=("bar", "json"), default="bar",
                        help="progress as a bar on stderr, or JSON lines on stdout (for other programs)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f".{name}", __package__)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    progress = JsonLinesProgress() if args.progress == "json" else ConsoleProgress()
    try:
        with sigterm_cancels():         # SIGTERM acts like cancel (cli/signals.py)
            result = args._module.run(args, progress)
    except Cancelled as e:
        _fail(args, "cancelled", str(e))
        return 3
    except DeepPixelError as e:
        _fail(args, "error", str(e))
        return 1
    except KeyboardInterrupt:
        _fail(args, "cancelled", "Interrupted; no output was written.")
        return 3
    except Exception as e:       # a bug, not an input problem: one line, the traceback only on request
        if os.environ.get("DEEP_PIXEL_DEBUG"):
            raise
        _fail(args, "error", f"Unexpected error ({type(e).__name__}: {e}). This is a bug in Deep Pixel: please "
                             "report it with the command; DEEP_PIXEL_DEBUG=1 shows the traceback.")
        return 1
    if args.progress == "json":
        print(json.dumps({"type": "result", "result": result}, default=str))
    else:
        print(json.dumps(result, indent=2, default=str))
    return 0


def _fail(args, kind, message):
    if args.progress == "json":
        print(json.dumps({"type": kind, "message": message}), flush=True)
    else:
        print(f"\n{kind}: {message}", file=sys.stderr)
