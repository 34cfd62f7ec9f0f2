"""``classify``: raster (or folder of rasters) + model package -> class raster (GeoTIFF).

The options' flags come from ClassifyOptions' declarations (deep_pixel/core/params.py)."""
from __future__ import annotations

from ..classify.options import ClassifyOptions
from ..classify.run import classify
from ..core.params import add_cli_arguments, from_cli

HELP = "Classify Pixels: classify a raster with a model package (.emd or .dlpk)."


def add_arguments(p):
    p.add_argument("--input-raster", required=True, help="a raster file, a VRT, or a folder of images")
    p.add_argument("--model-definition", required=True, help="the model's .emd or .dlpk")
    p.add_argument("--output-raster", required=True, help="output GeoTIFF (a folder for a folder input)")
    add_cli_arguments(p, ClassifyOptions)


def run(args, progress):
    return execute(args.input_raster, args.model_definition, args.output_raster,
                   from_cli(ClassifyOptions, args), progress)


def execute(input_raster: str, model_definition: str, output_raster: str, options: ClassifyOptions,
            progress) -> dict:
    """The command's work and its result dict (the command line and in-process Processing share it)."""
    r = classify(input_raster, model_definition, output_raster, options, progress)
    return {"output_raster": r.output_raster, "output_confidence": r.output_confidence, "outputs": r.outputs,
            "confidence_outputs": r.confidence_outputs, "output_uncertainty": r.output_uncertainty,
            "uncertainty_outputs": r.uncertainty_outputs, "device": r.device, "tiles": r.tiles,
            "skipped_tiles": r.skipped_tiles, "seconds": round(r.seconds, 2), "class_values": r.class_values,
            "classes": r.classes, "tile_size": r.tile.tile, "padding": r.tile.padding, "runtime": r.runtime,
            "precision": r.precision, "overlap_factor": round(r.overlap_factor, 3)}
