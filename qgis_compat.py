"""One place for the QGIS API names that differ between QGIS 3.22 (Qt5) and QGIS 4 (Qt6).

QGIS 3.36+ moved many enums into ``Qgis`` and Qt6 builds type fields with ``QMetaType``; QGIS 3.22
has only the older, class-scoped names. Each helper returns the newest name this QGIS has.
``scripts/check_qt6.py`` (``make lint``) refuses the Qt5-only spellings everywhere else.
"""
from __future__ import annotations

from qgis.core import (Qgis, QgsFeatureSink, QgsProcessing, QgsProcessingParameterDefinition,
                       QgsProcessingParameterNumber, QgsWkbTypes)


def _new_or_old(new_enum: str, new_member: str, old):
    enum = getattr(Qgis, new_enum, None)
    return getattr(enum, new_member) if enum is not None and hasattr(enum, new_member) else old


def number_type(kind: str):
    """Integer or Double for QgsProcessingParameterNumber."""
    name = "Integer" if kind == "int" else "Double"
    return _new_or_old("ProcessingNumberParameterType", name, getattr(QgsProcessingParameterNumber.Type, name))


def advanced_flag():
    return _new_or_old("ProcessingParameterFlag", "Advanced", QgsProcessingParameterDefinition.Flag.FlagAdvanced)


def source_type(kind: str):
    """polygon, point, vector (any geometry or none) as a Processing source type."""
    new = {"polygon": "VectorPolygon", "point": "VectorPoint", "vector": "Vector"}[kind]
    old = {"polygon": QgsProcessing.SourceType.TypeVectorPolygon, "point": QgsProcessing.SourceType.TypeVectorPoint,
           "vector": QgsProcessing.SourceType.TypeVector}[kind]
    return _new_or_old("ProcessingSourceType", new, old)


def no_geometry():
    return _new_or_old("WkbType", "NoGeometry", QgsWkbTypes.Type.NoGeometry)


def fast_insert():
    return _new_or_old("FeatureSinkFlag", "FastInsert", QgsFeatureSink.Flag.FastInsert)


def warning_level():
    return Qgis.MessageLevel.Warning


def field_type(kind: str):
    """A QgsField type: QMetaType on Qt6 builds and QGIS >= 3.38, QVariant before."""
    from qgis.PyQt.QtCore import QMetaType, QVariant
    qt6_names = {"int": "Int", "text": "QString", "double": "Double", "int64": "LongLong"}
    if Qgis.QGIS_VERSION_INT >= 33800:
        return getattr(QMetaType.Type, qt6_names[kind])
    qt5_names = {"int": "Int", "text": "String", "double": "Double", "int64": "LongLong"}
    return getattr(QVariant.Type, qt5_names[kind])
