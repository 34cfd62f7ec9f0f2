"""Map tools that draw training samples: polygon, rectangle, circle and freehand.

Every finished shape becomes one feature of the sample layer, added inside the layer's edit buffer
(one edit command per feature), so QGIS's undo/redo and "save edits" work as for any digitising.
"""
from __future__ import annotations

import math

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRectangle,
    QgsWkbTypes,
)
from qgis.gui import QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor

CIRCLE_SEGMENTS = 48
# Freehand: a new vertex only after the cursor moved this many pixels (keeps polygons light).
FREEHAND_MIN_PIXELS = 3


def class_attributes(layer, info, class_field: str | None = None) -> dict:
    """Field index -> value for the class ``info`` (Classname, Classvalue, RED/GREEN/BLUE, mapped field)."""
    fields = layer.fields()
    attrs = {}

    def put(name, value):
        idx = fields.lookupField(name)
        if idx >= 0:
            attrs[idx] = value

    put("Classname", info.name)
    put("Classvalue", int(info.value))
    for name, c in zip(("RED", "GREEN", "BLUE"), info.color[:3]):
        put(name, int(c))
    if class_field:
        idx = fields.lookupField(class_field)
        if idx >= 0:
            attrs[idx] = int(info.value) if fields.at(idx).isNumeric() else info.name
    return attrs


def add_sample(layer, geometry, info, class_field: str | None = None, canvas_crs=None):
    """Add ``geometry`` (in ``canvas_crs``) as a sample of class ``info``; returns the feature or None."""
    if layer is None or info is None or geometry is None or geometry.isEmpty():
        return None
    geom = QgsGeometry(geometry)
    if canvas_crs is not None and canvas_crs.isValid() and canvas_crs != layer.crs():
        geom.transform(QgsCoordinateTransform(canvas_crs, layer.crs(), QgsProject.instance()))
    if not geom.isGeosValid():
        fixed = geom.makeValid()
        if not fixed.isEmpty():
            geom = fixed
    if QgsWkbTypes.isMultiType(layer.wkbType()):
        geom.convertToMultiType()
    else:
        geom.convertToSingleType()
    feature = QgsFeature(layer.fields())
    feature.setGeometry(geom)
    for idx, value in class_attributes(layer, info, class_field).items():
        feature.setAttribute(idx, value)
    if not layer.isEditable() and not layer.startEditing():
        return None
    layer.beginEditCommand(f"Deep Pixel: {info.name} sample")
    if not layer.addFeature(feature):
        layer.destroyEditCommand()
        return None
    layer.endEditCommand()
    layer.triggerRepaint()
    return feature


class SampleMapTool(QgsMapTool):
    """Base: draws a rubber band and hands finished geometries to the sample layer.

    ``target`` is a callable returning ``(layer, class_info, class_field)`` for the next feature,
    or ``None`` (with the reason reported by ``problem``) when drawing is not possible.
    """

    sampleAdded = pyqtSignal(object)  # the QgsFeature
    problem = pyqtSignal(str)

    def __init__(self, canvas, target):
        super().__init__(canvas)
        self.target = target
        self.points = []
        self.band = None
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -- rubber band ------------------------------------------------------------------------
    def _band(self):
        if self.band is None:
            self.band = QgsRubberBand(self.canvas(), QgsWkbTypes.GeometryType.PolygonGeometry)
            color = QColor(255, 255, 0, 200)
            target = self.target() if self.target else None
            if target and target[1] is not None:
                color = QColor(*target[1].color[:3], 220)
            self.band.setStrokeColor(color)
            fill = QColor(color)
            fill.setAlpha(60)
            self.band.setFillColor(fill)
            self.band.setWidth(2)
        return self.band

    def show_geometry(self, geometry):
        self._band().setToGeometry(geometry, None)

    def reset(self):
        self.points = []
        if self.band is not None:
            self.band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
            self.canvas().scene().removeItem(self.band)
            self.band = None

    def deactivate(self):
        self.reset()
        super().deactivate()

    def isEditTool(self):  # noqa: N802
        return True

    def keyPressEvent(self, event):  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.reset()
            event.accept()
        else:
            event.ignore()

    # -- finishing ----------------------------------------------------------------------------
    def finish(self, geometry):
        """Store ``geometry`` (map canvas CRS) as a sample; clears the sketch either way."""
        self.reset()
        if geometry is None or geometry.isEmpty() or geometry.area() <= 0:
            return None
        target = self.target() if self.target else None
        if not target or target[0] is None or target[1] is None:
            self.problem.emit("Pick a sample layer and a class before drawing.")
            return None
        layer, info, class_field = target
        feature = add_sample(layer, geometry, info, class_field, self.canvas().mapSettings().destinationCrs())
        if feature is None:
            self.problem.emit(f"The sample could not be added to layer {layer.name()!r} "
                              "(is it read-only?).")
            return None
        self.sampleAdded.emit(feature)
        return feature


class PolygonTool(SampleMapTool):
    """Left click adds a vertex, right click or Enter closes the polygon, Backspace removes a vertex."""

    def canvasMoveEvent(self, event):  # noqa: N802
        if self.points:
            self.show_geometry(self._polygon(self.points + [event.mapPoint()]))

    def canvasReleaseEvent(self, event):  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.points.append(QgsPointXY(event.mapPoint()))
            self.show_geometry(self._polygon(self.points))
        elif event.button() == Qt.MouseButton.RightButton:
            self.close_polygon()

    def keyPressEvent(self, event):  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.close_polygon()
            event.accept()
        elif event.key() in (Qt.Key.Key_Backspace, Qt.Key.Key_Delete) and self.points:
            self.points.pop()
            self.show_geometry(self._polygon(self.points))
            event.accept()
        else:
            super().keyPressEvent(event)

    def close_polygon(self):
        points = list(self.points)
        if len(points) < 3:
            self.reset()
            return None
        return self.finish(self._polygon(points))

    @staticmethod
    def _polygon(points):
        if len(points) < 3:
            return QgsGeometry.fromPolylineXY([QgsPointXY(p) for p in points])
        return QgsGeometry.fromPolygonXY([[QgsPointXY(p) for p in points]])


class _DragTool(SampleMapTool):
    """Press, drag, release: the shape is made from the press and release points."""

    def canvasPressEvent(self, event):  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.points = [QgsPointXY(event.mapPoint())]

    def canvasMoveEvent(self, event):  # noqa: N802
        if self.points:
            self.show_geometry(self.shape(self.points[0], QgsPointXY(event.mapPoint())))

    def canvasReleaseEvent(self, event):  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self.points:
            self.finish(self.shape(self.points[0], QgsPointXY(event.mapPoint())))

    def shape(self, start, end):
        raise NotImplementedError


class RectangleTool(_DragTool):
    def shape(self, start, end):
        return QgsGeometry.fromRect(QgsRectangle(start, end))


class CircleTool(_DragTool):
    """Press at the centre, release on the rim."""

    def shape(self, start, end):
        radius = math.hypot(end.x() - start.x(), end.y() - start.y())
        ring = [QgsPointXY(start.x() + radius * math.cos(2 * math.pi * i / CIRCLE_SEGMENTS),
                           start.y() + radius * math.sin(2 * math.pi * i / CIRCLE_SEGMENTS))
                for i in range(CIRCLE_SEGMENTS)]
        return QgsGeometry.fromPolygonXY([ring])


class FreehandTool(SampleMapTool):
    """Press and drag to trace the outline; release closes it."""

    def canvasPressEvent(self, event):  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.points = [QgsPointXY(event.mapPoint())]
            self._last_pixel = event.pos()

    def canvasMoveEvent(self, event):  # noqa: N802
        if not self.points:
            return
        d = event.pos() - self._last_pixel
        if abs(d.x()) + abs(d.y()) >= FREEHAND_MIN_PIXELS:
            self._last_pixel = event.pos()
            self.points.append(QgsPointXY(event.mapPoint()))
            self.show_geometry(PolygonTool._polygon(self.points))

    def canvasReleaseEvent(self, event):  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton or not self.points:
            return
        self.points.append(QgsPointXY(event.mapPoint()))
        points = list(self.points)
        if len(points) < 3:
            self.reset()
            return
        self.finish(QgsGeometry.fromPolygonXY([points]))


TOOLS = (("polygon", "Polygon", PolygonTool), ("rectangle", "Rectangle", RectangleTool),
         ("circle", "Circle", CircleTool), ("freehand", "Freehand", FreehandTool))
