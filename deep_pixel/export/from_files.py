"""Export Training Data from files: the samples' class field and class names resolved in the engine.

The command line, in-process Processing and Python callers all come through ``export_files``, so
they pick the same class field, map class names to values the same way and take class names from a
name field beside integer values (``Classname`` next to ``Classvalue``) the same way.
"""
from __future__ import annotations

from ..core.progress import Progress, check
from ..core.schema import ClassSchema
from ..io.destinations import Place, check_destinations
from ..io.vector import read_vector
from .run import ExportOptions, ExportResult, export_training_data
from .samples import Samples, pick_class_field, resolve_class_values, schema_from_name_field


def export_files(input_raster: str, input_samples: str, output_folder: str, options: ExportOptions | None = None,
                 samples_layer: str | None = None, class_field: str | None = None, schema: str | None = None,
                 mask_polygons: str | None = None, mask_layer: str | None = None,
                 progress: Progress | None = None) -> ExportResult:
    """Cut ``input_raster`` and the polygons (or points) of ``input_samples`` into a chips folder."""
    progress = check(progress)
    check_destinations([Place.infer("INPUT_RASTER", input_raster), Place("INPUT_SAMPLES", input_samples, "vector"),
                        Place("MASK_POLYGONS", mask_polygons or "", "vector"), Place("CLASS_SCHEMA", schema or "")],
                       [Place("OUTPUT_FOLDER", output_folder, "folder")])
    vec = read_vector(input_samples, samples_layer)
    field = pick_class_field(vec.field_names, class_field)
    given = ClassSchema.load(schema) if schema else None
    values, resolved, mapping = resolve_class_values(vec.attributes[field], given, vec.fids)
    if mapping:
        progress.log("Class names mapped to values: " + ", ".join(f"{k}={v}" for k, v in mapping.items()))
    elif given is None:
        named = schema_from_name_field(vec.attributes, field, values)
        if named is not None:
            resolved = named
            progress.log("Class names from the samples' name field: "
                         + ", ".join(f"{c.value}={c.name}" for c in named.classes))
    mask = read_vector(mask_polygons, mask_layer) if mask_polygons else None
    return export_training_data(
        input_raster, Samples(vec.geometries, values, vec.crs_wkt), output_folder, options or ExportOptions(),
        schema=resolved, class_mapping=mapping, class_field=field,
        mask_geometries=mask.geometries if mask else None, mask_crs_wkt=mask.crs_wkt if mask else None,
        progress=progress)
