"""How much code carries the four algorithms' parameters from Processing and the command line to the engine.

    .venv/bin/python scripts/plumbing_size.py [BEFORE_REVISION]     (default 74f92b3, before issue 17)

Prints, for the revision and for the working tree, the lines of the interface files (the four
algorithms' Processing files, engine_runner.py, the command modules and the command line's main
module, plus the builders core/params.py and param_builder.py where they exist) and how many of
those lines name a declared parameter (PROCESSING_NAME, field_name or --flag-name).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ALGORITHMS = ("classify_pixels", "compute_accuracy", "export_training_data", "train_model")
COMMANDS = ("classify", "evaluate", "export", "train")
BEFORE = [f"processing_provider/{a}.py" for a in ALGORITHMS] + ["processing_provider/engine_runner.py"] + [
    f"deep_pixel/commands/{c}.py" for c in COMMANDS] + ["deep_pixel/cli.py"]
NOW = [f"processing_provider/{a}.py" for a in ALGORITHMS] + ["processing_provider/engine_runner.py"] + [
    f"deep_pixel/cli/{c}.py" for c in COMMANDS] + ["deep_pixel/cli/main.py", "deep_pixel/core/params.py",
                                                   "processing_provider/param_builder.py"]


def parameter_pattern():
    from deep_pixel.classify.options import ClassifyOptions
    from deep_pixel.core.params import declared, processing_name
    from deep_pixel.evaluate.accuracy import EvaluateOptions
    from deep_pixel.export.run import ExportOptions
    from deep_pixel.train.options import TrainOptions
    names = {processing_name(f) for c in (ClassifyOptions, EvaluateOptions, ExportOptions, TrainOptions)
             for f, _ in declared(c)}
    words = {w for n in names for w in (n, n.lower(), "--" + n.lower().replace("_", "-"))}
    return re.compile(r"(?<![A-Za-z_])(" + "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
                      + r")(?![A-Za-z_])")


def measure(files, revision=None) -> tuple:
    pattern, lines = parameter_pattern(), []
    for path in files:
        if revision:
            text = subprocess.run(["git", "-C", ROOT, "show", f"{revision}:{path}"], capture_output=True,
                                  text=True, check=True).stdout
        else:
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                text = f.read()
        lines += text.splitlines()
    return len(lines), sum(1 for line in lines if pattern.search(line))


def main() -> int:
    revision = sys.argv[1] if len(sys.argv) > 1 else "74f92b3"
    for label, files, rev in ((revision, BEFORE, revision), ("now", NOW, None)):
        total, naming = measure(files, rev)
        print(f"{label:>8}: {total:5d} lines in {len(files)} files, {naming:4d} of them name a declared parameter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
