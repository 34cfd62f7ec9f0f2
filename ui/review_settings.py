"""The Review tab's settings: the working folder, the suggestions and the retraining of a round."""
from __future__ import annotations

from qgis.gui import QgsCollapsibleGroupBox, QgsFileWidget
from qgis.PyQt.QtWidgets import QDoubleSpinBox, QFormLayout, QSpinBox


def _spin(low, high, value, suffix="", decimals=None):
    s = QSpinBox() if decimals is None else QDoubleSpinBox()
    if decimals is not None:
        s.setDecimals(decimals)
        s.setSingleStep(10 ** -decimals * 10)
    s.setRange(low, high)
    s.setValue(value)
    s.setSuffix(suffix)
    return s


class ReviewSettings(QgsCollapsibleGroupBox):
    """Collapsed by default. The retraining defaults (5 epochs of 20 steps at a fixed learning rate, no
    range test) keep a round to minutes on a CPU."""

    def __init__(self, parent=None):
        super().__init__("Settings", parent)
        self.setCollapsed(True)
        form = QFormLayout(self)
        self.folder = QgsFileWidget()
        self.folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.folder.setDialogTitle("Working folder for the rounds (round_01, round_02, …)")
        form.addRow("Working folder", self.folder)
        self.count = _spin(1, 1000, 10)
        self.window = _spin(0, 4096, 0, " px")
        self.window.setSpecialValueText("auto (chip size / 2)")
        form.addRow("Suggestions", self.count)
        form.addRow("Window size", self.window)
        self.epochs = _spin(1, 1000, 5)
        self.steps = _spin(1, 100000, 20)
        self.learning_rate = _spin(0.00001, 1.0, 0.001, decimals=5)
        self.epochs.setToolTip("Retrain: Train Model's MAX_EPOCHS")
        self.steps.setToolTip("Retrain: MODEL_ARGUMENTS steps_per_epoch (training batches per epoch)")
        self.learning_rate.setToolTip("Retrain: a fixed learning rate (no range test)")
        form.addRow("Retrain epochs", self.epochs)
        form.addRow("Steps per epoch", self.steps)
        form.addRow("Learning rate", self.learning_rate)
