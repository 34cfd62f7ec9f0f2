"""Processing parameters built from the engine's declarations (deep_pixel/core/params.py), and read back.

The name is the field name in capitals (the qgis_process and modeler interface), the label, help,
default, range, choices, optional and advanced flags are the declaration's.
"""
from __future__ import annotations

from qgis.core import (
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..deep_pixel.core.params import declared, describe, processing_name
from ..qgis_compat import advanced_flag, number_type, source_type
from .layers import vector_file

OUTPUT_KINDS = ("raster_out",)


def add_declared(alg, cls, outputs: bool = False, only=None, skip=()) -> None:
    """Add the declared options of ``cls`` to ``alg``: inputs (default) or outputs (``outputs=True``);
    ``only``/``skip`` (field names) place some of them between the algorithm's own parameters."""
    defaults = cls()
    for f, spec in declared(cls, "processing"):
        if (spec.kind in OUTPUT_KINDS) != outputs or f.name in skip or (only is not None and f.name not in only):
            continue
        parameter = _definition(processing_name(f), spec, getattr(defaults, f.name))
        parameter.setHelp(describe(spec))
        if spec.advanced:
            parameter.setFlags(parameter.flags() | advanced_flag())
        alg.addParameter(parameter)


def _definition(name, spec, default):
    label = spec.label
    if spec.kind in ("int", "float"):
        kw = {"optional": spec.optional}
        if default is not None:
            kw["defaultValue"] = default
        if spec.minimum is not None:
            kw["minValue"] = spec.minimum
        if spec.maximum is not None:
            kw["maxValue"] = spec.maximum
        return QgsProcessingParameterNumber(name, label, number_type(spec.kind), **kw)
    if spec.kind == "bool":
        return QgsProcessingParameterBoolean(name, label, defaultValue=default)
    if spec.kind == "vector":
        return QgsProcessingParameterFeatureSource(name, label, [source_type("polygon")], optional=spec.optional)
    if spec.kind == "enum":
        return QgsProcessingParameterEnum(name, label, options=list(spec.choices), defaultValue=default,
                                          usesStaticStrings=True, optional=spec.optional)
    if spec.kind == "field":
        return QgsProcessingParameterField(name, label, parentLayerParameterName=spec.parent, optional=spec.optional)
    if spec.kind == "keyvalues":
        return QgsProcessingParameterString(name, label, optional=True)
    if spec.kind == "file":
        return QgsProcessingParameterFile(name, label, optional=spec.optional, fileFilter=spec.file_filter)
    if spec.kind == "raster_out":
        return QgsProcessingParameterRasterDestination(name, label, optional=spec.optional, createByDefault=False)
    if spec.choices:
        label = f"{label} ({', '.join(spec.choices)})"
    return QgsProcessingParameterString(name, label, defaultValue=default, optional=spec.optional or bool(spec.choices))


def read_declared(alg, cls, parameters, context, feedback):
    """An instance of ``cls`` from the algorithm's parameter values (empty optional values -> None)."""
    values = {}
    defaults = cls()
    for f, spec in declared(cls, "processing"):
        name = processing_name(f)
        given = parameters.get(name)
        if spec.optional and given in (None, "") and spec.kind != "keyvalues":
            values[f.name] = None
        elif spec.kind == "int":
            values[f.name] = alg.parameterAsInt(parameters, name, context)
        elif spec.kind == "float":
            values[f.name] = alg.parameterAsDouble(parameters, name, context)
        elif spec.kind == "bool":
            values[f.name] = alg.parameterAsBool(parameters, name, context)
        elif spec.kind == "vector":
            values[f.name] = vector_file(alg, parameters, name, context, feedback)[0]
        elif spec.kind == "enum":
            values[f.name] = alg.parameterAsEnumString(parameters, name, context) or getattr(defaults, f.name)
        elif spec.kind == "field":
            values[f.name] = alg.parameterAsString(parameters, name, context) or None
        elif spec.kind == "file":
            values[f.name] = alg.parameterAsFile(parameters, name, context) or None
        elif spec.kind == "keyvalues":
            values[f.name] = spec.parse(alg.parameterAsString(parameters, name, context) or "")
        elif spec.kind == "raster_out":
            values[f.name] = alg.parameterAsOutputLayer(parameters, name, context) or None
        else:
            text = (alg.parameterAsString(parameters, name, context) or "").strip()
            values[f.name] = (text.lower() if spec.choices else text) or getattr(defaults, f.name)
    return cls(**values)
