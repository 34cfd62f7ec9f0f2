"""Samples tab: the sample layer (new GeoPackage or an existing polygon layer), drawing tools and a
per-class table of polygons, area and pixels with select / zoom to / delete."""
from __future__ import annotations

import os

from qgis.core import (
    NULL,
    QgsCoordinateTransform,
    QgsDistanceArea,
    QgsFeatureRequest,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsUnitTypes,
    QgsVectorLayer,
)
from qgis.gui import QgsFieldComboBox, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..deep_pixel.core.schema import ClassSchema
from .layer_style import apply_schema_style, create_sample_layer, default_class_field
from .map_tools import TOOLS
from .schema_panel import swatch

COLUMNS = ("Class", "Value", "Polygons", "Area", "Pixels")


def format_area(m2: float) -> str:
    if m2 < 1e4:
        return f"{m2:,.0f} m²"
    if m2 < 1e6:
        return f"{m2 / 1e4:,.2f} ha"
    return f"{m2 / 1e6:,.2f} km²"


def class_statistics(layer, class_field: str, schema: ClassSchema, raster=None) -> list:
    """Per class: dict(value, name, color, key, count, area_m2, pixels, ids), schema order first.

    Pixels are the polygons' area in the raster's CRS divided by its pixel area (overlaps count
    twice); None without a raster. Values found in the layer but not in the schema get rows too.
    """
    rows = {}
    for info in schema:
        rows[info.value] = dict(value=info.value, name=info.name, color=info.color, key=info.value,
                                count=0, area_m2=0.0, pixels=0.0 if raster else None, ids=[])
    if layer is None or not class_field or layer.fields().lookupField(class_field) < 0:
        return list(rows.values())
    idx = layer.fields().lookupField(class_field)
    numeric = layer.fields().at(idx).isNumeric()
    context = QgsProject.instance().transformContext()
    da = QgsDistanceArea()
    da.setSourceCrs(layer.crs(), context)
    if layer.crs().isGeographic():
        da.setEllipsoid(layer.crs().ellipsoidAcronym() or "EPSG:7030")
    to_raster = None
    pixel_area = None
    if raster is not None and raster.isValid():
        pixel_area = abs(raster.rasterUnitsPerPixelX() * raster.rasterUnitsPerPixelY()) or None
        if raster.crs().isValid() and layer.crs().isValid() and raster.crs() != layer.crs():
            to_raster = QgsCoordinateTransform(layer.crs(), raster.crs(), context)
    for f in layer.getFeatures(QgsFeatureRequest()):
        key = f.attribute(idx)
        if key is None or key == NULL:
            continue
        if numeric:
            key = int(key)
            info = schema.by_value(key)
        else:
            key = str(key)
            info = schema.by_name(key)
        row_key = info.value if info else ("?", key)
        if row_key not in rows:
            rows[row_key] = dict(value=key if numeric else None, name=f"{key} (not in schema)",
                                 color=(160, 160, 160), key=key, count=0, area_m2=0.0,
                                 pixels=0.0 if raster else None, ids=[])
        row = rows[row_key]
        row["count"] += 1
        row["ids"].append(f.id())
        geom = f.geometry()
        if geom is None or geom.isEmpty():
            continue
        row["area_m2"] += da.convertAreaMeasurement(da.measureArea(geom), QgsUnitTypes.AreaUnit.AreaSquareMeters)
        if pixel_area:
            g = type(geom)(geom)
            if to_raster is not None:
                g.transform(to_raster)
            row["pixels"] += g.area() / pixel_area
    for row in rows.values():
        if row["pixels"] is not None:
            row["pixels"] = int(round(row["pixels"]))
    return list(rows.values())


class SamplesPanel(QWidget):
    layerChanged = pyqtSignal(object)  # QgsVectorLayer or None
    message = pyqtSignal(str, bool)  # text, is error

    def __init__(self, iface, parent=None, raster_source=None):
        super().__init__(parent)
        self.iface = iface
        self.schema = ClassSchema()
        self.raster_source = raster_source or (lambda: None)
        self.tools = {}
        self.stats = []
        self._layer = None
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(150)
        self._refresh_timer.timeout.connect(self.refresh_table)

        # -- layer ------------------------------------------------------------------------------
        layer_box = QGroupBox("Sample layer")
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.layer_combo.setAllowEmptyLayer(True)
        self.layer_combo.setLayer(None)
        self.new_button = QPushButton("New…")
        self.new_button.setToolTip("Create a GeoPackage sample layer (Classname, Classvalue, RED, GREEN, BLUE) "
                                   "in the raster's CRS")
        self.new_button.clicked.connect(self.new_layer_dialog)
        row = QHBoxLayout()
        row.addWidget(self.layer_combo, 1)
        row.addWidget(self.new_button)
        self.field_combo = QgsFieldComboBox()
        self.field_combo.setToolTip("Integer class values, or text class names mapped through the schema")
        form = QFormLayout(layer_box)
        form.addRow("Layer", row)
        form.addRow("Class field", self.field_combo)

        # -- drawing ----------------------------------------------------------------------------
        draw_box = QGroupBox("Draw")
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class given to the next samples you draw")
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(False)
        tools_row = QHBoxLayout()
        self.tool_buttons = {}
        for key, text, _cls in TOOLS:
            b = QToolButton()
            b.setText(text)
            b.setCheckable(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setToolTip({"polygon": "Click vertices; right click or Enter closes the polygon",
                          "rectangle": "Press and drag a rectangle",
                          "circle": "Press at the centre and drag to the rim",
                          "freehand": "Press and trace the outline; release closes it"}[key])
            b.clicked.connect(lambda checked, k=key: self.activate_tool(k) if checked else self.deactivate_tools())
            self.tool_buttons[key] = b
            tools_row.addWidget(b)
        tools_row.addStretch(1)
        self.undo_button = QToolButton()
        self.undo_button.setText("Undo")
        self.undo_button.setToolTip("Undo the last edit of the sample layer")
        self.undo_button.clicked.connect(self.undo)
        self.save_button = QToolButton()
        self.save_button.setText("Save edits")
        self.save_button.clicked.connect(self.save_edits)
        tools_row.addWidget(self.undo_button)
        tools_row.addWidget(self.save_button)
        draw_form = QFormLayout(draw_box)
        draw_form.addRow("Class", self.class_combo)
        draw_form.addRow(tools_row)

        # -- table ------------------------------------------------------------------------------
        table_box = QGroupBox("Samples per class")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.total_label = QLabel()
        actions = QHBoxLayout()
        for text, slot, tip in (("Select", self.select_samples, "Select the samples of the chosen classes"),
                                ("Zoom to", self.zoom_to_samples, "Zoom the map to the samples of the chosen classes"),
                                ("Delete", self.delete_dialog, "Delete the samples of the chosen classes")):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            actions.addWidget(b)
        actions.addStretch(1)
        table_layout = QVBoxLayout(table_box)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.total_label)
        table_layout.addLayout(actions)

        layout = QVBoxLayout(self)
        layout.addWidget(layer_box)
        layout.addWidget(draw_box)
        layout.addWidget(table_box, 1)

        self.layer_combo.layerChanged.connect(self._on_layer_changed)
        self.field_combo.fieldChanged.connect(self._on_field_changed)

    # -- state --------------------------------------------------------------------------------
    def layer(self):
        return self._layer

    def class_field(self) -> str:
        return self.field_combo.currentField()

    def current_class(self):
        value = self.class_combo.currentData(Qt.ItemDataRole.UserRole)
        return self.schema.by_value(value) if value is not None else None

    def set_current_class(self, info):
        if info is None:
            return
        i = self.class_combo.findData(info.value, Qt.ItemDataRole.UserRole)
        if i >= 0:
            self.class_combo.setCurrentIndex(i)

    def set_layer(self, layer, class_field: str | None = None):
        self.layer_combo.setLayer(layer)
        if layer is not None and class_field:
            self.field_combo.setField(class_field)

    def set_schema(self, schema: ClassSchema):
        keep = self.current_class()
        self.schema = schema
        self.class_combo.clear()
        for info in schema:
            self.class_combo.addItem(swatch(info.color), f"{info.value}  {info.name}", info.value)
        if keep is not None:
            self.set_current_class(schema.by_value(keep.value))
        self.restyle()
        self.refresh_table()

    def restyle(self) -> bool:
        if self._layer is None or not len(self.schema):
            return False
        return apply_schema_style(self._layer, self.schema, self.class_field())

    def _on_layer_changed(self, layer):
        if self._layer is not None:
            for signal in (self._layer.layerModified, self._layer.afterCommitChanges, self._layer.afterRollBack,
                           self._layer.dataChanged):
                try:
                    signal.disconnect(self._schedule_refresh)
                except (TypeError, RuntimeError):
                    pass
        self._layer = layer if isinstance(layer, QgsVectorLayer) else None
        self.field_combo.setLayer(self._layer)
        if self._layer is not None:
            self.field_combo.setField(default_class_field(self._layer))
            for signal in (self._layer.layerModified, self._layer.afterCommitChanges, self._layer.afterRollBack,
                           self._layer.dataChanged):
                signal.connect(self._schedule_refresh)
        self.restyle()
        self.refresh_table()
        self.layerChanged.emit(self._layer)

    def _on_field_changed(self, _name):
        self.restyle()
        self.refresh_table()

    def _schedule_refresh(self, *_):
        self._refresh_timer.start()

    # -- new layer ------------------------------------------------------------------------------
    def new_layer(self, path: str, crs=None):
        """Create, add and pick a new GeoPackage sample layer; CRS from the raster, else the map."""
        if crs is None:
            raster = self.raster_source()
            crs = raster.crs() if raster is not None else self.iface.mapCanvas().mapSettings().destinationCrs()
        layer = create_sample_layer(path, crs)
        self.set_layer(layer, "Classvalue")
        self.message.emit(f"Created sample layer {path} ({crs.authid() or crs.description()}).", False)
        return layer

    def new_layer_dialog(self):
        raster = self.raster_source()
        folder = os.path.dirname(raster.source().split("|")[0]) if raster is not None else os.path.expanduser("~")
        path, _ = QFileDialog.getSaveFileName(self, "New sample layer", os.path.join(folder, "samples.gpkg"),
                                              "GeoPackage (*.gpkg)")
        if not path:
            return
        if not path.lower().endswith(".gpkg"):
            path += ".gpkg"
        try:
            self.new_layer(path)
        except OSError as e:
            self.message.emit(str(e), True)

    # -- drawing --------------------------------------------------------------------------------
    def _target(self):
        return self._layer, self.current_class(), self.class_field()

    def tool(self, key: str):
        if key not in self.tools:
            cls = next(c for k, _t, c in TOOLS if k == key)
            tool = cls(self.iface.mapCanvas(), self._target)
            tool.problem.connect(lambda text: self.message.emit(text, True))
            tool.sampleAdded.connect(self._schedule_refresh)
            tool.deactivated.connect(lambda k=key: self.tool_buttons[k].setChecked(False))
            self.tools[key] = tool
        return self.tools[key]

    def activate_tool(self, key: str):
        if self._layer is None or self.current_class() is None:
            self.tool_buttons[key].setChecked(False)
            self.message.emit("Pick a sample layer and a class before drawing.", True)
            return None
        if not self._layer.isEditable():
            self._layer.startEditing()
        for k, b in self.tool_buttons.items():
            b.setChecked(k == key)
        tool = self.tool(key)
        self.iface.mapCanvas().setMapTool(tool)
        self.tool_buttons[key].setChecked(True)
        return tool

    def deactivate_tools(self):
        canvas = self.iface.mapCanvas()
        if canvas.mapTool() in self.tools.values():
            canvas.unsetMapTool(canvas.mapTool())
        for b in self.tool_buttons.values():
            b.setChecked(False)

    def remove_tools(self):
        """Take the map tools off the canvas and delete them (the dock is going away)."""
        self.deactivate_tools()
        for tool in self.tools.values():
            tool.reset()
            tool.deleteLater()
        self.tools = {}

    def undo(self):
        if self._layer is not None and self._layer.isEditable():
            self._layer.undoStack().undo()
            self._layer.triggerRepaint()

    def save_edits(self) -> bool:
        """Write the edit buffer to the layer's file and keep editing on (drawing goes on)."""
        if self._layer is None or not self._layer.isEditable():
            return True
        if not self._layer.isModified():
            return True
        ok = self._layer.commitChanges(False)
        if not ok:
            self.message.emit("Saving the samples failed: " + "; ".join(self._layer.commitErrors()), True)
        return ok

    # -- table ----------------------------------------------------------------------------------
    def refresh_table(self):
        raster = self.raster_source()
        self.stats = class_statistics(self._layer, self.class_field(), self.schema, raster)
        self.table.setRowCount(len(self.stats))
        for r, row in enumerate(self.stats):
            name = QTableWidgetItem(swatch(row["color"]), row["name"])
            name.setData(Qt.ItemDataRole.UserRole, r)
            cells = [name, QTableWidgetItem("" if row["value"] is None else str(row["value"])),
                     QTableWidgetItem(str(row["count"])), QTableWidgetItem(format_area(row["area_m2"])),
                     QTableWidgetItem("–" if row["pixels"] is None else f"{row['pixels']:,}")]
            for c, item in enumerate(cells):
                if c:
                    item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                self.table.setItem(r, c, item)
        count = sum(row["count"] for row in self.stats)
        pixels = sum(row["pixels"] or 0 for row in self.stats)
        text = f"{count} sample{'s' if count != 1 else ''}, {format_area(sum(r['area_m2'] for r in self.stats))}"
        if raster is not None:
            text += f", about {pixels:,} pixels of {raster.name()}"
        elif self._layer is not None:
            text += " (pick a raster for pixel counts)"
        self.total_label.setText(text if self._layer is not None else "No sample layer.")

    def counts(self) -> dict:
        """Class value (or name for classes not in the schema) -> number of polygons."""
        return {row["value"] if row["value"] is not None else row["key"]: row["count"] for row in self.stats}

    def chosen_ids(self, values=None) -> list:
        """Feature ids of the classes given by value, else of the table's selected rows."""
        if values is not None:
            rows = [row for row in self.stats if row["value"] in values or row["key"] in values]
        else:
            picked = sorted({i.row() for i in self.table.selectedIndexes()})
            rows = [self.stats[i] for i in picked if i < len(self.stats)]
        return [fid for row in rows for fid in row["ids"]]

    def select_samples(self, values=None):
        if self._layer is None:
            return []
        ids = self.chosen_ids(values if isinstance(values, (list, tuple, set)) else None)
        self._layer.selectByIds(ids)
        return ids

    def zoom_to_samples(self, values=None):
        ids = self.select_samples(values)
        if ids:
            canvas = self.iface.mapCanvas()
            canvas.zoomToFeatureIds(self._layer, ids)
            canvas.refresh()
        return ids

    def delete_samples(self, values=None) -> int:
        """Delete the chosen samples inside the edit buffer (undoable); returns how many."""
        if self._layer is None:
            return 0
        ids = self.chosen_ids(values)
        if not ids:
            return 0
        if not self._layer.isEditable():
            self._layer.startEditing()
        self._layer.beginEditCommand(f"Deep Pixel: delete {len(ids)} samples")
        ok = self._layer.deleteFeatures(ids)
        self._layer.endEditCommand()
        self._layer.triggerRepaint()
        self.refresh_table()
        return len(ids) if ok else 0

    def delete_dialog(self):
        ids = self.chosen_ids()
        if not ids:
            self.message.emit("Select one or more classes in the table first.", True)
            return
        answer = QMessageBox.question(self, "Delete samples", f"Delete {len(ids)} sample polygons? "
                                      "(Undo brings them back until the edits are saved.)")
        if answer == QMessageBox.StandardButton.Yes:
            self.delete_samples()
