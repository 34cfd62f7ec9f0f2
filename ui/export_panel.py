"""Export tab: runs ``deeppixel:exporttrainingdata`` on the dock's raster and samples as a QGIS task."""
from __future__ import annotations

import contextlib
import os
import tempfile

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsMapLayerProxyModel,
    QgsProject,
)
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..deep_pixel.export.run import IMAGE_FORMATS, ExportOptions

ALGORITHM_ID = "deeppixel:exporttrainingdata"
ROTATIONS = (0, 90, 180)


def layer_parameter(layer):
    """A file path for file-backed layers (safe to read from the task's thread), else the layer id."""
    if layer is None:
        return None
    if layer.providerType() in ("ogr", "gdal"):
        return layer.source()
    return layer.id()


class TaskFeedback(QgsProcessingFeedback):
    """Feedback whose progress text reaches the dock (QGIS 3.22 has no signal for it)."""

    progressText = pyqtSignal(str)

    def setProgressText(self, text):  # noqa: N802
        super().setProgressText(text)
        self.progressText.emit(text)  # queued to the GUI thread: the task calls this from its thread


class ExportPanel(QWidget):
    finished = pyqtSignal(bool, dict)  # successful, results
    message = pyqtSignal(str, bool)

    def __init__(self, parent=None, raster_source=None, samples_source=None, schema_source=None):
        super().__init__(parent)
        self.raster_source = raster_source or (lambda: None)
        # Callable returning (layer, class field, samples panel save function or None).
        self.samples_source = samples_source or (lambda: (None, "", None))
        self.schema_source = schema_source or (lambda: None)
        self.task = None
        self.context = None
        self.feedback = None
        self.results = None
        self.log = ""
        self._schema_copy = None     # the dock's unsaved schema as a temporary file for the algorithm
        d = ExportOptions()

        self.inputs_label = QLabel()
        self.inputs_label.setWordWrap(True)

        params = QGroupBox("Parameters")
        form = QFormLayout(params)
        self.output = QgsFileWidget()
        self.output.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output.setDialogTitle("Output folder for the chips (new or empty)")
        form.addRow("Output folder", self.output)
        self.image_format = QComboBox()
        self.image_format.addItems(list(IMAGE_FORMATS))
        self.image_format.setCurrentText(d.image_format)
        form.addRow("Image format", self.image_format)

        def spin(value):
            s = QSpinBox()
            s.setRange(1, 100000)
            s.setValue(int(value))
            s.setSuffix(" px")
            return s

        self.tile_x, self.tile_y = spin(d.tile_size_x), spin(d.tile_size_y)
        self.stride_x, self.stride_y = spin(d.stride_x), spin(d.stride_y)
        for label, a, b in (("Tile size", self.tile_x, self.tile_y), ("Stride", self.stride_x, self.stride_y)):
            row = QHBoxLayout()
            row.addWidget(a)
            row.addWidget(QLabel("×"))
            row.addWidget(b)
            form.addRow(label, row)
        self.stride_x.setToolTip("Equal to the tile size means no overlap")
        self.rotation = QComboBox()
        for angle in ROTATIONS:
            self.rotation.addItem({0: "None", 90: "90° (adds 90, 180, 270)", 180: "180°"}[angle], angle)
        self.rotation.setCurrentIndex(max(0, self.rotation.findData(int(d.rotation_angle))))
        form.addRow("Rotation", self.rotation)
        self.min_fraction = QDoubleSpinBox()
        self.min_fraction.setRange(0.0, 1.0)
        self.min_fraction.setSingleStep(0.05)
        self.min_fraction.setDecimals(2)
        self.min_fraction.setValue(d.min_labelled_fraction)
        form.addRow("Min. labelled fraction", self.min_fraction)
        self.buffer = QDoubleSpinBox()
        self.buffer.setRange(0.0, 1e6)
        self.buffer.setDecimals(2)
        self.buffer.setValue(d.buffer_radius)
        self.buffer.setToolTip("Radius around point samples, in the raster's CRS units")
        form.addRow("Point buffer radius", self.buffer)
        self.mask = QgsMapLayerComboBox()
        self.mask.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.mask.setAllowEmptyLayer(True)
        self.mask.setLayer(None)
        self.mask.setToolTip("Optional: chips only inside these polygons")
        form.addRow("Mask polygons", self.mask)
        self.nofeature = QCheckBox("Also export tiles without samples")
        self.nofeature.setChecked(d.output_nofeature_tiles)
        form.addRow(self.nofeature)

        self.run_button = QPushButton("Export training data")
        self.run_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.inputs_label)
        layout.addWidget(params)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.update_inputs()

    # -- inputs -----------------------------------------------------------------------------------
    def update_inputs(self):
        raster = self.raster_source()
        layer, field, _save = self.samples_source()
        self.inputs_label.setText(
            f"<b>Raster:</b> {raster.name() if raster else '<i>pick one at the top</i>'}<br>"
            f"<b>Samples:</b> {layer.name() if layer else '<i>pick one on the Samples tab</i>'}"
            f"{f' (class field {field})' if layer and field else ''}")

    def parameters(self) -> dict:
        """The algorithm's parameters from the dock; raises ValueError naming what is missing."""
        raster = self.raster_source()
        layer, field, _save = self.samples_source()
        if raster is None:
            raise ValueError("Pick the raster to export at the top of the dock.")
        if layer is None:
            raise ValueError("Pick or create a sample layer on the Samples tab.")
        folder = self.output.filePath().strip()
        if not folder:
            raise ValueError("Choose an output folder for the chips.")
        params = {
            "INPUT_RASTER": layer_parameter(raster),
            "INPUT_SAMPLES": layer_parameter(layer),
            "IMAGE_FORMAT": self.image_format.currentText(),
            "TILE_SIZE_X": self.tile_x.value(), "TILE_SIZE_Y": self.tile_y.value(),
            "STRIDE_X": self.stride_x.value(), "STRIDE_Y": self.stride_y.value(),
            "ROTATION_ANGLE": float(self.rotation.currentData()),
            "OUTPUT_NOFEATURE_TILES": self.nofeature.isChecked(),
            "MIN_LABELLED_FRACTION": self.min_fraction.value(),
            "OUTPUT_FOLDER": folder,
        }
        if field:
            params["CLASS_FIELD"] = field
        if self.buffer.value() > 0:
            params["BUFFER_RADIUS"] = self.buffer.value()
        if self.mask.currentLayer() is not None:
            params["MASK_POLYGONS"] = layer_parameter(self.mask.currentLayer())
        schema_path = self._schema_file()
        if schema_path:
            params["CLASS_SCHEMA"] = schema_path
        return params

    def _schema_file(self):
        """The dock's schema as a file for the algorithm (the saved file, else a temporary copy)."""
        source = self.schema_source()
        if source is None:
            return None
        schema, path, modified = source
        if schema is None or not len(schema):
            return None
        if path and not modified:
            return path
        if self._schema_copy is None:      # one copy per panel, rewritten each time, removed when a run ends
            fd, self._schema_copy = tempfile.mkstemp(prefix="deep_pixel_schema_", suffix=".json")
            os.close(fd)
            copy = self._schema_copy
            self.destroyed.connect(lambda *_: _remove(copy))
        schema.save(self._schema_copy)
        return self._schema_copy

    def _remove_schema_copy(self):
        if self._schema_copy is not None:
            _remove(self._schema_copy)
            self._schema_copy = None

    # -- running ----------------------------------------------------------------------------------
    def running(self) -> bool:
        return self.task is not None

    def start(self) -> bool:
        if self.running():
            return False
        started = False
        try:
            started = self._start()
        finally:
            if not started:
                self._remove_schema_copy()
        return started

    def _start(self) -> bool:
        self.update_inputs()
        try:
            params = self.parameters()
        except ValueError as e:
            self._status(str(e), error=True)
            return False
        layer, _field, save = self.samples_source()
        # The algorithm reads the layer's file: unsaved drawn samples would be missed.
        if layer is not None and layer.isModified() and save is not None and not save():
            self._status("The drawn samples could not be saved, so they cannot be exported.", error=True)
            return False
        alg = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM_ID)
        if alg is None:
            self._status(f"Algorithm {ALGORITHM_ID} is not available: is the Deep Pixel provider loaded?",
                         error=True)
            return False
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = TaskFeedback()
        self.results = None
        self.log = ""
        task = QgsProcessingAlgRunnerTask(alg, params, self.context, self.feedback)
        task.setDescription("Deep Pixel: Export Training Data")
        task.executed.connect(self._executed)
        task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        self.feedback.progressText.connect(self.status.setText)
        self.task = task
        self._alg = alg
        self.progress.setValue(0)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._status(f"Exporting to {params['OUTPUT_FOLDER']}…")
        QgsApplication.taskManager().addTask(task)
        return True

    def cancel(self):
        if self.task is not None:
            self._status("Cancelling…")
            self.feedback.cancel()
            self.task.cancel()

    def _executed(self, successful: bool, results: dict):
        self._remove_schema_copy()
        self.log = self.feedback.textLog() if self.feedback is not None else ""
        cancelled = self.feedback is not None and self.feedback.isCanceled()
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if successful:
            self.results = dict(results)
            self.progress.setValue(100)
            self._status(f"Exported {int(results.get('NUM_CHIPS', 0))} chips to "
                         f"{results.get('OUTPUT_FOLDER')}.")
        elif cancelled:
            self._status("Export cancelled.", error=True)
        else:
            lines = [line for line in self.log.splitlines() if line.strip()]
            reason = lines[-1] if lines else "see the log messages panel"
            self._status(f"Export failed: {reason}", error=True)
        self.finished.emit(bool(successful), dict(results or {}))

    def _status(self, text: str, error: bool = False):
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(text)
        self.message.emit(text, error)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)
