"""``suggest``: Suggest Samples: the windows of a raster where new labels would help the model most.

The options' flags come from SuggestOptions' declarations (deep_pixel/core/params.py)."""
from __future__ import annotations

from ..core.params import add_cli_arguments, from_cli
from ..suggest.options import SuggestOptions
from ..suggest.output import check_suggest_destinations, write_suggestions

HELP = ("Suggest Samples: the K most uncertain windows of a raster (spread out, away from the samples) as "
        "polygons to label next.")


def add_arguments(p):
    p.add_argument("--input-raster", required=True, help="the raster to label")
    p.add_argument("--model-definition", help="the model's .emd or .dlpk (the raster is classified with it)")
    p.add_argument("--input-uncertainty", help="or an uncertainty raster of the raster (Classify Pixels' "
                                               "--output-uncertainty)")
    p.add_argument("--input-samples", help="polygons labelled already (suggestions keep away from them)")
    p.add_argument("--output", help="GeoPackage of the suggested windows (fields rank, mean_uncertainty, "
                                    "class_mix); without it they are only printed")
    add_cli_arguments(p, SuggestOptions)


def run(args, progress):
    return execute(args.input_raster, args.model_definition, args.input_uncertainty, args.input_samples,
                   args.output, from_cli(SuggestOptions, args), progress)


def execute(input_raster: str, model_definition: str | None, input_uncertainty: str | None,
            input_samples: str | None, output: str | None, options: SuggestOptions, progress) -> dict:
    """The command's work and its result dict (the command line and in-process Processing share it)."""
    from ..suggest.run import suggest
    check_suggest_destinations(input_raster, model_definition, input_uncertainty, input_samples,
                               options.mask_polygons, output)
    r = suggest(input_raster, model_definition, input_uncertainty, input_samples, options, progress)
    if output:
        write_suggestions(r, output)
    return {"output": output, "suggestions": [s.to_json() for s in r.suggestions], "crs_wkt": r.crs_wkt,
            "window_size": r.window_size, "measure": r.measure, "candidates": r.candidates, "notes": r.notes}
