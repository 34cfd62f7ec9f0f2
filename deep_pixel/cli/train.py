"""``train``: chips folder(s) -> model folder (.emd, .pth, .onnx, .dlpk, model_metrics.html, training_log.json).

The options' flags come from TrainOptions' declarations (deep_pixel/core/params.py)."""
from __future__ import annotations

import sys

from ..core.params import add_cli_arguments, from_cli
from ..train.distributed import launched_rank
from ..train.loop import train_model
from ..train.options import TrainOptions

HELP = ("Train Model: train a segmentation network on exported chips and write a model package "
        "(several processes or machines: start it with torchrun, see deep_pixel/train/distributed.py).")


def add_arguments(p):
    p.add_argument("--input-training-data", required=True, nargs="+", help="one or more chips folders")
    p.add_argument("--output-model", required=True, help="new or empty folder for the model package")
    add_cli_arguments(p, TrainOptions)


def run(args, progress):
    if launched_rank():         # under torchrun only rank 0 prints its progress and the result on stdout
        sys.stdout = sys.stderr     # its result and errors go to stderr
    return execute(args.input_training_data, args.output_model, from_cli(TrainOptions, args), progress)


def execute(input_training_data: list, output_model: str, options: TrainOptions, progress) -> dict:
    """The command's work and its result dict (the command line and in-process Processing share it)."""
    r = train_model(input_training_data, output_model, options, progress)
    return {"output_model": r.folder, "model_definition": r.emd_path, "best_epoch": r.best_epoch,
            "epochs_run": r.epochs_run, "accuracy": r.summary.get("overall_accuracy"),
            "miou": r.summary.get("mean_iou")}
