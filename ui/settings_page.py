"""Settings > Options > Deep Pixel: the external engine's Python interpreter."""
from __future__ import annotations

from qgis.core import QgsSettings
from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtWidgets import QLabel, QLineEdit, QVBoxLayout

from ..processing_provider.engine_runner import ENV_KEY, SCHEDULER_ENV, SCHEDULER_KEY, SETTING_KEY


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
        layout.addWidget(QLabel(
            "Dask scheduler (optional), e.g. tcp://host:8786: Classify Pixels then runs on that cluster "
            "(its DASK_SCHEDULER parameter, when empty, takes this). Empty = this computer. The environment "
            f"variable {SCHEDULER_ENV} overrides it."))
        self.scheduler = QLineEdit(QgsSettings().value(SCHEDULER_KEY, "", type=str), self)
        self.scheduler.setPlaceholderText("tcp://host:8786")
        layout.addWidget(self.scheduler)
        layout.addStretch(1)

    def apply(self):
        QgsSettings().setValue(SETTING_KEY, self.python.filePath().strip())
        QgsSettings().setValue(SCHEDULER_KEY, self.scheduler.text().strip())


class DeepPixelOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self, icon):
        super().__init__("Deep Pixel", icon)

    def createWidget(self, parent):  # noqa: N802
        return DeepPixelOptionsPage(parent)
