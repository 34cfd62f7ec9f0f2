"""The sample layer: creating it (GeoPackage with the sample fields) and styling it by class
(a categorized renderer whose categories and colours come from the schema)."""
from __future__ import annotations

import os

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsField,
    QgsFields,
    QgsFillSymbol,
    QgsProject,
    QgsRendererCategory,
    QgsSymbol,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QColor
from ..qgis_compat import field_type

# Fill opacity of sample polygons: the raster under them must stay readable while labelling.
FILL_ALPHA = 110
OTHER_COLOR = (160, 160, 160)

SAMPLE_LAYER_NAME = "samples"
CLASS_FIELD_PREFERENCE = ("Classvalue", "Value", "Classname", "class")


def sample_fields() -> QgsFields:
    fields = QgsFields()
    fields.append(QgsField("Classname", field_type("text")))
    fields.append(QgsField("Classvalue", field_type("int")))
    for name in ("RED", "GREEN", "BLUE"):
        fields.append(QgsField(name, field_type("int")))
    return fields


def create_sample_layer(path: str, crs, layer_name: str = SAMPLE_LAYER_NAME, add_to_project: bool = True):
    """A new polygon GeoPackage layer with the sample fields in ``crs``; returns the loaded layer."""
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = layer_name
    if os.path.exists(path):
        # Add a layer to an existing GeoPackage instead of replacing the file.
        options.actionOnExistingFile = QgsVectorFileWriter.ActionOnExistingFile.CreateOrOverwriteLayer
    writer = QgsVectorFileWriter.create(path, sample_fields(), QgsWkbTypes.Type.Polygon, crs,
                                        QgsProject.instance().transformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.WriterError.NoError:
        message = writer.errorMessage()
        del writer
        raise OSError(f"Cannot create {path}: {message}")
    del writer  # closes the file
    layer = QgsVectorLayer(f"{path}|layername={layer_name}", layer_name, "ogr")
    if not layer.isValid():
        raise OSError(f"The new sample layer {path} cannot be opened.")
    if add_to_project:
        QgsProject.instance().addMapLayer(layer)
    return layer


def default_class_field(layer) -> str:
    names = [f.name() for f in layer.fields()] if layer is not None else []
    lower = {n.lower(): n for n in names}
    for pref in CLASS_FIELD_PREFERENCE:
        if pref.lower() in lower:
            return lower[pref.lower()]
    ints = [f.name() for f in layer.fields() if f.isNumeric()] if layer is not None else []
    return ints[0] if ints else (names[0] if names else "")


def is_text_field(layer, field_name: str) -> bool:
    """Whether ``field_name`` of ``layer`` holds text (class names) rather than numbers (values)."""
    idx = layer.fields().indexOf(field_name) if layer is not None and field_name else -1
    if idx < 0:
        return False
    return not layer.fields().at(idx).isNumeric()


def class_symbol(color, geometry_type=None):
    """A semi-transparent fill with an opaque outline of the class colour (marker/line for other types)."""
    r, g, b = (int(c) for c in color[:3])
    if geometry_type is None or geometry_type == QgsWkbTypes.GeometryType.PolygonGeometry:
        return QgsFillSymbol.createSimple({
            "color": f"{r},{g},{b},{FILL_ALPHA}", "outline_color": f"{r},{g},{b},255",
            "outline_width": "0.6", "outline_width_unit": "MM"})
    symbol = QgsSymbol.defaultSymbol(geometry_type)
    symbol.setColor(QColor(r, g, b))
    return symbol


def schema_renderer(schema, class_field: str, text_field: bool = False, geometry_type=None):
    """One category per class (value, or name when the class field is text) plus "other values"."""
    categories = []
    for info in schema:
        key = info.name if text_field else info.value
        categories.append(QgsRendererCategory(key, class_symbol(info.color, geometry_type),
                                              f"{info.value} {info.name}"))
    # An empty value is QGIS's "all other values" category: samples not in the schema stay visible.
    categories.append(QgsRendererCategory("", class_symbol(OTHER_COLOR, geometry_type), "Not in the schema"))
    return QgsCategorizedSymbolRenderer(class_field, categories)


def apply_schema_style(layer, schema, class_field: str) -> bool:
    """Style ``layer`` by ``class_field`` with the schema's colours; False when it cannot be styled."""
    if layer is None or schema is None or not class_field or layer.fields().indexOf(class_field) < 0:
        return False
    layer.setRenderer(schema_renderer(schema, class_field, is_text_field(layer, class_field),
                                      layer.geometryType()))
    layer.triggerRepaint()
    layer.emitStyleChanged()
    return True
