"""``export``: raster + labelled vector file -> chips folder.

The options' flags come from ExportOptions' declarations (deep_pixel/core/params.py)."""
from __future__ import annotations

from dataclasses import replace

from ..core.params import add_cli_arguments, from_cli
from ..export.from_files import export_files
from ..export.run import ExportOptions

HELP = "Export Training Data: cut a raster and training polygons into image/label chips."


def add_arguments(p):
    p.add_argument("--input-raster", required=True, help="raster to cut (any GDAL raster)")
    p.add_argument("--input-samples", required=True, help="vector file of training polygons (or points)")
    p.add_argument("--samples-layer", help="layer name inside the vector file (default: the first)")
    p.add_argument("--class-field", help="integer class field, or a text field of class names "
                                         "(default: Classvalue, Value, Classname or class)")
    p.add_argument("--schema", help="class schema JSON or .emd giving class values, names and colours")
    p.add_argument("--output-folder", required=True, help="new or empty folder for the chips")
    p.add_argument("--mask-polygons", help="vector file: export chips only inside these polygons")
    p.add_argument("--mask-layer", help="layer name inside the mask vector file")
    add_cli_arguments(p, ExportOptions)
    p.add_argument("--bands", type=int, nargs="*", default=[], help="1-based bands to export (default: all)")


def run(args, progress):
    options = replace(from_cli(ExportOptions, args), bands=tuple(args.bands or ()))
    return execute(args.input_raster, args.input_samples, args.output_folder, options, progress,
                   samples_layer=args.samples_layer, class_field=args.class_field, schema=args.schema,
                   mask_polygons=args.mask_polygons, mask_layer=args.mask_layer)


def execute(input_raster: str, input_samples: str, output_folder: str, options: ExportOptions, progress,
            **inputs) -> dict:
    """The command's work and its result dict (the command line and in-process Processing share it)."""
    result = export_files(input_raster, input_samples, output_folder, options, progress=progress, **inputs)
    return {"output_folder": result.folder, "chips": result.num_chips,
            "pixels_per_class": result.pixels_per_class, "class_mapping": result.class_mapping}
