"""The plugin object QGIS loads: registers the Processing provider, the toolbar and the dock."""
from __future__ import annotations

import os

from qgis.core import QgsApplication

PLUGIN_DIR = os.path.dirname(__file__)

# (action text, algorithm id) for the toolbar buttons that open algorithm dialogs.
ALGORITHM_ACTIONS = (
    ("Export Training Data", "deeppixel:exporttrainingdata"),
    ("Train Model", "deeppixel:trainmodel"),
    ("Classify Pixels", "deeppixel:classifypixels"),
    ("Compute Accuracy", "deeppixel:computeaccuracy"),
)


class DeepPixelPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider = None
        self.toolbar = None
        self.actions = []
        self.dock = None
        self.options_factory = None

    # qgis_process calls only this; the desktop calls initGui, which calls it too.
    def initProcessing(self):  # noqa: N802
        if self.provider is None:
            from .processing_provider.provider import DeepPixelProvider
            provider = DeepPixelProvider()
            # A duplicate id is refused and the registry deletes the refused provider.
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider

    def initGui(self):  # noqa: N802
        self.initProcessing()
        if self.iface is None:
            return
        from qgis.PyQt.QtGui import QIcon
        from qgis.PyQt.QtWidgets import QAction
        icon = QIcon(os.path.join(PLUGIN_DIR, "icon.svg"))
        self.toolbar = self.iface.addToolBar("Deep Pixel")
        self.toolbar.setObjectName("DeepPixelToolbar")
        dock_action = QAction(icon, "Deep Pixel labeling dock", self.iface.mainWindow())
        dock_action.setObjectName("DeepPixelDockAction")
        dock_action.triggered.connect(self.show_dock)
        self._add_action(dock_action)
        diag = QAction("Deep Pixel diagnostics", self.iface.mainWindow())
        diag.setObjectName("DeepPixelDiagnostics")
        diag.triggered.connect(self.show_diagnostics)
        for text, alg_id in ALGORITHM_ACTIONS:
            action = QAction(text, self.iface.mainWindow())
            action.setObjectName("DeepPixel" + text.replace(" ", ""))
            action.triggered.connect(lambda _checked=False, a=alg_id: self.open_algorithm(a))
            self._add_action(action)
        self._add_action(diag)
        from .ui.settings_page import DeepPixelOptionsFactory
        self.options_factory = DeepPixelOptionsFactory(icon)
        self.iface.registerOptionsWidgetFactory(self.options_factory)

    def show_diagnostics(self):
        from .ui.diagnostics_dialog import DiagnosticsDialog
        DiagnosticsDialog(self.iface.mainWindow()).exec()

    def _add_action(self, action):
        self.toolbar.addAction(action)
        self.iface.addPluginToRasterMenu("&Deep Pixel", action)
        self.actions.append(action)

    def open_algorithm(self, alg_id: str):
        import processing
        if QgsApplication.processingRegistry().algorithmById(alg_id) is None:
            self.iface.messageBar().pushWarning("Deep Pixel", f"Algorithm {alg_id} is not available.")
            return
        processing.execAlgorithmDialog(alg_id, {})

    def show_dock(self):
        try:
            from .ui.dock import DeepPixelDock
        except ImportError as e:
            self.iface.messageBar().pushWarning("Deep Pixel", f"The labeling dock cannot load: {e}")
            return
        if self.dock is None:
            from qgis.PyQt.QtCore import Qt
            self.dock = DeepPixelDock(self.iface)
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.show()
        self.dock.raise_()

    def unload(self):
        for action in self.actions:
            if self.iface is not None:
                self.iface.removePluginRasterMenu("&Deep Pixel", action)
            action.deleteLater()
        self.actions = []
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.dock is not None:
            self.dock.cleanup()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.options_factory is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
