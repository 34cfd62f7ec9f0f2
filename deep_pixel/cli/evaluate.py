"""``evaluate``: Compute Accuracy of a classified raster against reference polygons or a raster.

The options' flags come from EvaluateOptions' declarations (deep_pixel/core/params.py)."""
from __future__ import annotations

from ..core.params import add_cli_arguments, from_cli
from ..evaluate.accuracy import EvaluateOptions, evaluate
from ..evaluate.report import check_evaluate_destinations, write_outputs

HELP = "Compute Accuracy: confusion matrix, overall accuracy, kappa, per-class metrics and mIoU."


def add_arguments(p):
    p.add_argument("--input-classified", required=True, help="the classified raster (class values)")
    p.add_argument("--reference", help="reference polygons (vector file) with --class-field")
    p.add_argument("--reference-raster", help="or a reference raster of class values (0 = no reference)")
    p.add_argument("--output-report", help="HTML report (a .json is written beside it)")
    p.add_argument("--output-table", help="per-class metrics as CSV")
    add_cli_arguments(p, EvaluateOptions)


def run(args, progress):
    return execute(args.input_classified, args.reference, args.reference_raster, args.output_report,
                   args.output_table, from_cli(EvaluateOptions, args), progress)


def execute(input_classified: str, reference: str | None, reference_raster: str | None, output_report: str | None,
            output_table: str | None, options: EvaluateOptions, progress) -> dict:
    """The command's work and its result dict (the command line and in-process Processing share it)."""
    check_evaluate_destinations(input_classified, reference, reference_raster, output_report, output_table)
    r = evaluate(input_classified, reference, reference_raster, options, progress)
    write_outputs(r, input_classified, reference or reference_raster, output_report, output_table)
    s = r.summary
    return {"overall_accuracy": s["overall_accuracy"], "kappa": s["kappa"], "mean_iou": s["mean_iou"],
            "pixels": s["pixels"], "per_class": s["per_class"], "names": r.names, "notes": r.notes,
            "output_report": r.output_report, "output_json": r.output_json, "output_table": r.output_table}
