"""``export``: raster + labelled vector file -> chips folder."""
from __future__ import annotations

from dataclasses import fields

from ..export import ExportOptions, export_training_data
from ..samples import Samples, pick_class_field, resolve_class_values, schema_from_name_field
from ..schema import ClassSchema
from ..vector_io import read_vector

HELP = "Export Training Data: cut a raster and training polygons into image/label chips."


def add_arguments(p):
    d = ExportOptions()
    p.add_argument("--input-raster", required=True, help="raster to cut (any GDAL raster)")
    p.add_argument("--input-samples", required=True, help="vector file of training polygons (or points)")
    p.add_argument("--samples-layer", help="layer name inside the vector file (default: the first)")
    p.add_argument("--class-field", help="integer class field, or a text field of class names "
                                         "(default: Classvalue, Value, Classname or class)")
    p.add_argument("--schema", help="class schema JSON or .emd giving class values, names and colours")
    p.add_argument("--output-folder", required=True, help="new or empty folder for the chips")
    p.add_argument("--image-format", choices=("TIFF", "PNG"), default=d.image_format)
    p.add_argument("--tile-size-x", type=int, default=d.tile_size_x)
    p.add_argument("--tile-size-y", type=int, default=d.tile_size_y)
    p.add_argument("--stride-x", type=int, default=d.stride_x)
    p.add_argument("--stride-y", type=int, default=d.stride_y)
    p.add_argument("--rotation-angle", type=float, default=d.rotation_angle,
                   help="90: extra chips rotated by 90, 180 and 270 degrees")
    p.add_argument("--output-nofeature-tiles", action="store_true", default=d.output_nofeature_tiles,
                   help="also export tiles without any sample")
    p.add_argument("--buffer-radius", type=float, default=d.buffer_radius,
                   help="buffer for point samples, in the raster's CRS units")
    p.add_argument("--mask-polygons", help="vector file: export chips only inside these polygons")
    p.add_argument("--mask-layer", help="layer name inside the mask vector file")
    p.add_argument("--min-labelled-fraction", type=float, default=d.min_labelled_fraction)
    p.add_argument("--bands", type=int, nargs="*", default=list(d.bands),
                   help="1-based bands to export (default: all)")


def options_from_args(args) -> ExportOptions:
    values = {f.name: getattr(args, f.name) for f in fields(ExportOptions) if hasattr(args, f.name)}
    values["bands"] = tuple(values.get("bands") or ())
    return ExportOptions(**values)


def run(args, progress):
    vec = read_vector(args.input_samples, args.samples_layer)
    field = pick_class_field(vec.field_names, args.class_field)
    schema = ClassSchema.load(args.schema) if args.schema else None
    values, schema, mapping = resolve_class_values(vec.attributes[field], schema)
    if mapping:
        progress.log("Class names mapped to values: " + ", ".join(f"{k}={v}" for k, v in mapping.items()))
    elif not args.schema:
        named = schema_from_name_field(vec.attributes, field, values)
        if named is not None:
            schema = named
            progress.log("Class names from the samples' name field: "
                         + ", ".join(f"{c.value}={c.name}" for c in named.classes))
    mask = read_vector(args.mask_polygons, args.mask_layer) if args.mask_polygons else None
    result = export_training_data(
        args.input_raster, Samples(vec.geometries, values, vec.crs_wkt), args.output_folder,
        options_from_args(args), schema=schema, class_mapping=mapping, class_field=field,
        mask_geometries=mask.geometries if mask else None, mask_crs_wkt=mask.crs_wkt if mask else None,
        progress=progress)
    return {"output_folder": result.folder, "chips": result.num_chips,
            "pixels_per_class": result.pixels_per_class, "class_mapping": result.class_mapping}
