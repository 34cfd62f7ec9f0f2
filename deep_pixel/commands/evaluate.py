"""``evaluate``: Compute Accuracy of a classified raster against reference polygons or a raster."""
from __future__ import annotations

from ..accuracy_report import write_outputs
from ..evaluate import SAMPLINGS, EvaluateOptions, evaluate

HELP = "Compute Accuracy: confusion matrix, overall accuracy, kappa, per-class metrics and mIoU."


def add_arguments(p):
    d = EvaluateOptions()
    p.add_argument("--input-classified", required=True, help="the classified raster (class values)")
    p.add_argument("--reference", help="reference polygons (vector file) with --class-field")
    p.add_argument("--reference-raster", help="or a reference raster of class values (0 = no reference)")
    p.add_argument("--class-field", default=d.class_field, help="class field of the reference polygons")
    p.add_argument("--number-of-points", type=int, default=d.number_of_points,
                   help="0: every reference pixel; N: a stratified random sample of N pixels")
    p.add_argument("--sampling", choices=SAMPLINGS, default=d.sampling)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--output-report", help="HTML report (a .json is written beside it)")
    p.add_argument("--output-table", help="per-class metrics as CSV")


def run(args, progress):
    sampling = args.sampling
    if args.number_of_points and sampling == "ALL_PIXELS":
        sampling = "STRATIFIED_RANDOM"
    options = EvaluateOptions(class_field=args.class_field, number_of_points=args.number_of_points,
                              sampling=sampling, seed=args.seed)
    r = evaluate(args.input_classified, args.reference, args.reference_raster, options, progress)
    write_outputs(r, args.input_classified, args.reference or args.reference_raster, args.output_report,
                  args.output_table)
    s = r.summary
    return {"overall_accuracy": s["overall_accuracy"], "kappa": s["kappa"], "mean_iou": s["mean_iou"],
            "pixels": s["pixels"], "per_class": s["per_class"], "names": r.names, "notes": r.notes,
            "output_report": r.output_report, "output_json": r.output_json, "output_table": r.output_table}
