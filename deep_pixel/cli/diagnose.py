"""``diagnose``: versions, CUDA and missing packages of this Python."""
from __future__ import annotations

import sys

from ..core.diagnostics import format_report, report

HELP = "Show Python, torch, CUDA, GDAL/PROJ, rasterio and smp versions, and what is missing."


def add_arguments(p):
    p.add_argument("--engine-mode", default="in-process", help="label for the engine mode in the report")


def run(args, progress):
    info = report(args.engine_mode)
    if args.progress != "json":
        print(format_report(info), file=sys.stderr)
    return info
