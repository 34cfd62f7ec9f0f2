"""Settings > Options > Deep Pixel: the external engine's Python interpreter."""
from __future__ import annotations

from qgis.core import QgsSettings
from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtWidgets import QLabel, QVBoxLayout

from ..processing_provider.engine_runner import ENV_KEY, SETTING_KEY


class DeepPixelOptionsPage(QgsOptionsPageWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(
            "External engine Python (optional): an interpreter that has torch, "
            "segmentation-models-pytorch, rasterio, shapely and numpy (e.g. a conda env or venv with "
            f"CUDA torch). Empty = QGIS's own Python. The environment variable {ENV_KEY} overrides it."))
        self.python = QgsFileWidget(self)
        self.python.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.python.setFilePath(QgsSettings().value(SETTING_KEY, "", type=str))
        layout.addWidget(self.python)
        layout.addStretch(1)

    def apply(self):
        QgsSettings().setValue(SETTING_KEY, self.python.filePath().strip())


class DeepPixelOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self, icon):
        super().__init__("Deep Pixel", icon)

    def createWidget(self, parent):  # noqa: N802
        return DeepPixelOptionsPage(parent)
