"""The Deep Pixel labeling dock: a raster, then Schema / Samples / Export / Review tabs."""
from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsDockWidget, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget

from .export_panel import ExportPanel
from .review_panel import ReviewPanel
from .samples_panel import SamplesPanel
from .schema_panel import SchemaPanel


class DeepPixelDock(QgsDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__("Deep Pixel", parent or (iface.mainWindow() if iface is not None else None))
        self.setObjectName("DeepPixelDock")
        self.iface = iface
        body = QWidget()
        self.raster_combo = QgsMapLayerComboBox()
        self.raster_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.raster_combo.setAllowEmptyLayer(True)
        self.raster_combo.setToolTip("The image the samples label: pixel counts and the export use it")
        self.diagnostics_button = QPushButton("Diagnostics")
        self.diagnostics_button.setToolTip("What the engine runs on: versions, CUDA, missing packages")
        self.diagnostics_button.clicked.connect(self.show_diagnostics)
        top = QHBoxLayout()
        top.addWidget(QLabel("Raster"))
        top.addWidget(self.raster_combo, 1)
        top.addWidget(self.diagnostics_button)

        self.tabs = QTabWidget()
        self.schema_panel = SchemaPanel(layer_source=self._layer_and_field)
        self.samples_panel = SamplesPanel(iface, raster_source=self.raster)
        self.export_panel = ExportPanel(raster_source=self.raster, samples_source=self._samples_for_export,
                                        schema_source=self._schema_for_export)
        self.review_panel = ReviewPanel(iface, raster_source=self.raster, samples_source=self._samples_for_export,
                                        schema_source=self._schema_for_export,
                                        show_samples=lambda: self.tabs.setCurrentWidget(self.samples_panel))
        self.tabs.addTab(self.schema_panel, "Schema")
        self.tabs.addTab(self.samples_panel, "Samples")
        self.tabs.addTab(self.export_panel, "Export")
        self.tabs.addTab(self.review_panel, "Review")

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()

        layout = QVBoxLayout(body)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.message)
        self.setWidget(body)

        self.schema_panel.schemaChanged.connect(self.samples_panel.set_schema)
        self.schema_panel.currentClassChanged.connect(self.samples_panel.set_current_class)
        self.samples_panel.layerChanged.connect(lambda _layer: self.export_panel.update_inputs())
        self.samples_panel.layerChanged.connect(lambda _layer: self.review_panel.update_inputs())
        self.samples_panel.field_combo.fieldChanged.connect(lambda _f: self.export_panel.update_inputs())
        self.raster_combo.layerChanged.connect(self._raster_changed)
        self.samples_panel.message.connect(self.show_message)
        self.export_panel.message.connect(lambda text, error: self.show_message(text, error) if error else None)
        self.review_panel.message.connect(lambda text, error: self.show_message(text if error else "", error))
        self.tabs.currentChanged.connect(lambda _i: self.show_message(""))
        self.samples_panel.set_schema(self.schema_panel.schema)
        self._raster_changed(self.raster_combo.currentLayer())
        self._say_what_is_missing()

    def _say_what_is_missing(self):
        from ..deep_pixel.core.diagnostics import missing, missing_message
        from ..processing_provider.engine_runner import engine_python
        absent = [] if engine_python() else missing()   # an external engine brings its own packages
        if absent:
            self.show_message(missing_message(absent), error=True)

    def show_diagnostics(self):
        from .diagnostics_dialog import DiagnosticsDialog
        DiagnosticsDialog(self).exec()

    # -- shared state -------------------------------------------------------------------------------
    def raster(self):
        return self.raster_combo.currentLayer()

    def set_raster(self, layer):
        self.raster_combo.setLayer(layer)

    def _raster_changed(self, _layer):
        self.samples_panel.refresh_table()
        self.export_panel.update_inputs()
        self.review_panel.update_inputs()

    def _layer_and_field(self):
        return self.samples_panel.layer(), self.samples_panel.class_field()

    def _samples_for_export(self):
        return self.samples_panel.layer(), self.samples_panel.class_field(), self.samples_panel.save_edits

    def _schema_for_export(self):
        s = self.schema_panel
        return s.schema, s.path, s.modified

    def show_message(self, text: str, error: bool = False):
        self.message.setStyleSheet("color: #b00020;" if error else "")
        self.message.setText(text)
        self.message.setVisible(bool(text))

    def cleanup(self):
        """Before the plugin unloads: no map tool of ours may stay on the canvas."""
        self.samples_panel.remove_tools()
        if self.export_panel.running():
            self.export_panel.cancel()
        if self.review_panel.running():
            self.review_panel.cancel()

    def closeEvent(self, event):  # noqa: N802
        self.samples_panel.deactivate_tools()
        super().closeEvent(event)
