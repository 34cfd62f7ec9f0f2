"""Sample layer styling: a categorized renderer whose categories and colours come from the schema."""
from __future__ import annotations

from qgis.core import QgsCategorizedSymbolRenderer, QgsFillSymbol, QgsRendererCategory, QgsSymbol, QgsWkbTypes
from qgis.PyQt.QtGui import QColor

# Fill opacity of sample polygons: the raster under them must stay readable while labelling.
FILL_ALPHA = 110
OTHER_COLOR = (160, 160, 160)


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
