"""Class rasters styled in QGIS: a paletted renderer with the model's colours and class names.

The style is applied when Processing loads the output into the project (a layer post-processor,
also for outputs of the graphical modeler); the engine also writes a ``.qml`` beside the GeoTIFF,
which QGIS reads as the default style whenever the file is opened later.
"""
from __future__ import annotations

import os

from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
)
from qgis.PyQt.QtGui import QColor


def paletted_renderer(layer, classes):
    items = [QgsPalettedRasterRenderer.Class(int(c["value"]), QColor(*c["color"][:3]), f"{c['value']} {c['name']}")
             for c in classes]
    return QgsPalettedRasterRenderer(layer.dataProvider(), 1, items)


def style_layer(layer, classes) -> None:
    layer.setRenderer(paletted_renderer(layer, classes))
    layer.triggerRepaint()


class ClassStylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles the class raster once Processing has added it to the project."""
    _alive = []   # Processing keeps only a C++ pointer: hold the Python objects until used

    def __init__(self, classes, name=None):
        super().__init__()
        self.classes = classes
        self.name = name

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if isinstance(layer, QgsRasterLayer):
            style_layer(layer, self.classes)
            if self.name:
                layer.setName(self.name)

    @classmethod
    def attach(cls, context, output_path: str, classes, name=None) -> None:
        if not context.willLoadLayerOnCompletion(output_path):
            return
        processor = cls(classes, name)
        cls._alive.append(processor)
        context.layerToLoadOnCompletionDetails(output_path).setPostProcessor(processor)

    @classmethod
    def replace_output(cls, context, planned_path: str, outputs, classes) -> None:
        """Folder input: load each classified image instead of the single planned output, styled."""
        layers = context.layersToLoadOnCompletion()
        details = layers.pop(planned_path, None)
        if details is None:
            return
        context.setLayersToLoadOnCompletion(layers)
        for path in outputs:
            name = os.path.splitext(os.path.basename(path))[0]
            context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(
                name, details.project, details.outputName))
            if classes:
                cls.attach(context, path, classes, name)
