"""The Review tab's map layers: a round's class and uncertainty rasters and its suggested windows."""
from __future__ import annotations

import os

from qgis.core import (
    QgsFillSymbol,
    QgsPalLayerSettings,
    QgsProject,
    QgsRasterLayer,
    QgsSingleSymbolRenderer,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from ..deep_pixel.io.styles import style_path

SUGGESTION_COLOR = "#ff00d0"


def _insert(layer, above=None) -> None:
    """Add to the project just above the layer ``above`` (rasters go above the dock's raster, so the
    sample polygons stay on top of them), else at the top."""
    project = QgsProject.instance()
    project.addMapLayer(layer, False)
    root = project.layerTreeRoot()
    node = root.findLayer(above.id()) if above is not None else None
    if node is not None and node.parent() is not None:
        parent = node.parent()
        parent.insertLayer(parent.children().index(node), layer)
    else:
        root.insertLayer(0, layer)


def add_raster(path: str, name: str, above=None):
    """The raster with the style Classify Pixels wrote beside it (classes: palette; uncertainty: ramp)."""
    layer = QgsRasterLayer(path, name)
    if not layer.isValid():
        raise ValueError(f"QGIS cannot open {path}")
    qml = style_path(path)
    if os.path.isfile(qml):
        layer.loadNamedStyle(qml)
    _insert(layer, above)
    return layer


def add_suggestions(source: str, name: str):
    """The suggested windows as outlines labelled with their rank, on top of the map."""
    layer = QgsVectorLayer(source, name, "ogr")
    if not layer.isValid():
        raise ValueError(f"QGIS cannot open {source}")
    symbol = QgsFillSymbol.createSimple({"style": "no", "outline_color": SUGGESTION_COLOR, "outline_width": "0.7",
                                         "outline_width_unit": "MM"})
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    settings = QgsPalLayerSettings()
    settings.fieldName = "rank"
    text = QgsTextFormat()
    text.setColor(QColor(SUGGESTION_COLOR))
    text.setSize(10)
    text.buffer().setEnabled(True)
    settings.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)
    _insert(layer)
    return layer


def remove_layers(ids) -> None:
    project = QgsProject.instance()
    for layer_id in ids:
        if layer_id and project.mapLayer(layer_id) is not None:
            project.removeMapLayer(layer_id)
