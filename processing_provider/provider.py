"""The ``deeppixel`` Processing provider and its algorithm list."""
from __future__ import annotations

import importlib
import os

from qgis.core import Qgis, QgsMessageLog, QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

# module name in this package -> algorithm class name. A module that fails to import is an error
# (logged, then raised): a broken algorithm must never disappear from the toolbox silently.
ALGORITHMS = (
    ("export_training_data", "ExportTrainingDataAlgorithm"),
    ("train_model", "TrainModelAlgorithm"),
    ("classify_pixels", "ClassifyPixelsAlgorithm"),
    ("compute_accuracy", "ComputeAccuracyAlgorithm"),
    ("suggest_samples", "SuggestSamplesAlgorithm"),
)


class DeepPixelProvider(QgsProcessingProvider):
    def id(self):
        return "deeppixel"

    def name(self):
        return "Deep Pixel"

    def longName(self):  # noqa: N802
        return "Deep Pixel: deep-learning pixel classification"

    def icon(self):
        return QIcon(os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.svg"))

    def loadAlgorithms(self):  # noqa: N802
        for module_name, class_name in ALGORITHMS:
            try:
                module = importlib.import_module(f".{module_name}", __package__)
            except Exception as e:
                QgsMessageLog.logMessage(f"The algorithm module {module_name} cannot be loaded: {e}", "Deep Pixel",
                                         Qgis.MessageLevel.Critical)
                raise
            self.addAlgorithm(getattr(module, class_name)())
