"""Review tab: the few-label loop. Classify the map view with the current model (class and uncertainty
layers), suggest where to label next, draw samples there (Samples tab), retrain (Export Training Data +
Train Model fine-tuning the current model), and see each round in a history table.

Every step is a Processing algorithm run as a QGIS background task (review_steps.AlgorithmStep); a
round becomes current only once its model is written, and a failed or cancelled round's folder is
removed, so the previous model stays current and usable."""
from __future__ import annotations

import os
import shutil

from qgis.core import QgsCoordinateTransform, QgsCsException, QgsProject, QgsVectorLayer
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .export_panel import layer_parameter
from .review_layers import add_raster, add_suggestions, remove_layers
from .review_rounds import (
    Round,
    clip_view,
    default_work_folder,
    export_parameters,
    latest_round_model,
    model_info,
    new_subfolder,
    next_round_number,
    round_folder,
    round_of_model,
    train_parameters,
)
from .review_settings import ReviewSettings
from .review_steps import AlgorithmStep
from .review_tables import (
    HISTORY_COLUMNS,
    SUGGESTION_COLUMNS,
    fill_history,
    fill_suggestions,
    make_table,
    same_path,
)
from .samples_panel import class_statistics


class ReviewPanel(QWidget):
    finished = pyqtSignal(str, bool)   # action ("classify", "suggest", "retrain"), successful
    message = pyqtSignal(str, bool)

    def __init__(self, iface, raster_source=None, samples_source=None, schema_source=None, show_samples=None,
                 parent=None):
        super().__init__(parent)
        self.iface = iface
        self.raster_source = raster_source or (lambda: None)
        self.samples_source = samples_source or (lambda: (None, "", None))   # (layer, class field, save)
        self.schema_source = schema_source or (lambda: None)                 # (schema, path, modified)
        self.show_samples = show_samples
        self.rounds: list[Round] = []
        self.current: Round | None = None
        self.view = None           # the current model's last classification: dict(round, input, classes, ...)
        self.suggestions = []      # (rank, mean uncertainty, class mix, geometry) in self.suggestion_crs
        self.suggestion_crs = None
        self.layer_ids = {}        # "classes" / "uncertainty" / "suggestions" -> project layer id
        self._action = None
        self._stage = ""
        self._on_ok = None
        self._cleanup = []         # folders of this action to remove when it fails or is cancelled
        self._trained = None       # the round a retrain has made current (before its classification)
        self.step = AlgorithmStep(self)

        self.inputs_label = QLabel()
        self.inputs_label.setWordWrap(True)
        self.model = QgsFileWidget()
        self.model.setFilter("Deep Pixel models (*.emd *.dlpk)")
        self.model.setDialogTitle("The model to start from (.emd or .dlpk written by Train Model)")
        self.whole = QCheckBox("Whole raster (not only the map view)")
        form = QFormLayout()
        form.addRow("Model", self.model)
        form.addRow(self.whole)

        self.classify_button = QPushButton("Classify view")
        self.classify_button.setToolTip("Classify the visible part of the raster: class and uncertainty layers")
        self.suggest_button = QPushButton("Suggest")
        self.suggest_button.setToolTip("Windows where the model is most unsure, away from the samples")
        self.retrain_button = QPushButton("Retrain")
        self.retrain_button.setToolTip("Fine-tune the current model on all samples (a new round)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        for b, slot in ((self.classify_button, self.classify_view), (self.suggest_button, self.suggest),
                        (self.retrain_button, self.retrain), (self.cancel_button, self.cancel)):
            b.clicked.connect(lambda _checked=False, s=slot: s())
            buttons.addWidget(b)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.status = QLabel()
        self.status.setWordWrap(True)

        suggest_box = QGroupBox("Suggestions (click one to go there)")
        self.suggestion_table = make_table(SUGGESTION_COLUMNS, 2)
        self.suggestion_table.cellClicked.connect(lambda row, _col: self.zoom_to_suggestion(row))
        self.suggestion_table.cellActivated.connect(lambda row, _col: self.zoom_to_suggestion(row))
        self.draw_button = QPushButton("Draw samples…")
        self.draw_button.setToolTip("The Samples tab: pick a class and a drawing tool")
        self.draw_button.clicked.connect(lambda: self.show_samples() if self.show_samples else None)
        suggest_layout = QVBoxLayout(suggest_box)
        suggest_layout.addWidget(self.suggestion_table, 1)
        suggest_layout.addWidget(self.draw_button, 0, Qt.AlignmentFlag.AlignLeft)

        history_box = QGroupBox("Rounds (double-click one to use its model)")
        self.history_table = make_table(HISTORY_COLUMNS, 4)
        self.history_table.setTextElideMode(Qt.TextElideMode.ElideLeft)     # a folder's end tells it apart
        self.history_table.cellDoubleClicked.connect(lambda row, _col: self.use_round(row))
        QVBoxLayout(history_box).addWidget(self.history_table)

        settings = ReviewSettings()
        self.folder, self.count, self.window = settings.folder, settings.count, settings.window
        self.epochs, self.steps, self.learning_rate = settings.epochs, settings.steps, settings.learning_rate
        self.folder.fileChanged.connect(lambda _path: self.update_inputs())

        layout = QVBoxLayout(self)
        layout.addWidget(self.inputs_label)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(suggest_box, 2)
        layout.addWidget(history_box, 1)
        layout.addWidget(settings)

        self.step.progress.connect(lambda v: self.progress.setValue(int(round(v))))
        self.step.text.connect(lambda text: self.status.setText(f"{self._stage}: {text}"))
        self.step.finished.connect(self._step_finished)
        self._raster_id = None
        self.update_inputs()

    # -- inputs -----------------------------------------------------------------------------------
    def work_folder(self) -> str:
        return self.folder.filePath().strip() or default_work_folder(QgsProject.instance().homePath())

    def update_inputs(self):
        raster = self.raster_source()
        layer = self.samples_source()[0]
        self.inputs_label.setText(
            f"<b>Raster:</b> {raster.name() if raster else '<i>pick one at the top</i>'}<br>"
            f"<b>Samples:</b> {layer.name() if layer else '<i>pick one on the Samples tab</i>'}")
        raster_id = raster.id() if raster is not None else None
        if raster_id != self._raster_id:
            self._raster_id, self.view = raster_id, None     # a classification belongs to its raster
        self.folder.lineEdit().setPlaceholderText(self.work_folder())
        if not self.model.filePath().strip() and not self.running():
            latest = latest_round_model(self.work_folder())   # the last model a round trained there
            if latest:
                self.model.setFilePath(latest)

    def _raster(self):
        raster = self.raster_source()
        if raster is None:
            raise ValueError("Pick the raster at the top of the dock.")
        if raster.providerType() != "gdal":
            raise ValueError(f"{raster.name()} is not a GDAL raster: save it as a GeoTIFF first.")
        return raster, raster.source().split("|")[0]

    def _ensure_round(self) -> Round:
        """The round of the chosen model (a new history row for a model not seen yet), its folder made."""
        model = self.model.filePath().strip()
        if not model:
            raise ValueError("Choose the model (.emd or .dlpk written by Train Model).")
        if not os.path.isfile(model):
            raise ValueError(f"The model {model} does not exist.")
        if not model_info(model):
            raise ValueError(f"{model} is not a model definition written by Train Model (no classes in it).")
        if self.current is None or not same_path(self.current.model, model):
            known = next((r for r in self.rounds if same_path(r.model, model)), None)
            if known is None:
                work = self.work_folder()
                number = round_of_model(work, model) or next_round_number(
                    work, max([r.number + 1 for r in self.rounds] + [1]))
                info = model_info(model)
                known = Round(number, model, round_folder(work, number), miou=info.get("miou"),
                              metrics_on=info.get("metrics_on", ""))
                self.rounds.append(known)
            self._set_current(known)
        os.makedirs(self.current.folder, exist_ok=True)
        return self.current

    def _set_current(self, rnd: Round):
        self.current, self.view = rnd, None
        if not same_path(self.model.filePath().strip() or ".", rnd.model):
            self.model.setFilePath(rnd.model)
        self._refresh_history()

    def use_round(self, row: int):
        if 0 <= row < len(self.rounds) and not self.running():
            self._set_current(self.rounds[row])
            self._status(f"Round {self.current.number}'s model is current: Classify view shows it.")

    # -- running ----------------------------------------------------------------------------------
    def running(self) -> bool:
        return self._action is not None

    def _begin(self, action: str) -> bool:
        if self.running():
            self._status("Wait for the running step, or cancel it.", error=True)
            return False
        self._action, self._cleanup, self._trained = action, [], None
        for w in (self.classify_button, self.suggest_button, self.retrain_button, self.model, self.folder):
            w.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        return True

    def _end(self, ok: bool, text: str) -> bool:
        if not ok:
            for folder in self._cleanup:
                shutil.rmtree(folder, ignore_errors=True)
            if self._trained is not None:
                text = (f"Round {self._trained.number} is trained and current, but its map layers were not "
                        f"replaced: {text}")
        action, self._action, self._cleanup = self._action, None, []
        for w in (self.classify_button, self.suggest_button, self.retrain_button, self.model, self.folder):
            w.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if ok:
            self.progress.setValue(100)
        self._status(text, error=not ok)
        self.finished.emit(action or "", ok)
        return ok

    def _run(self, alg_id: str, params: dict, stage: str, span, on_ok) -> bool:
        self._stage, self._on_ok = stage, on_ok
        why = self.step.start(alg_id, params, f"Deep Pixel: {stage}", span)
        if why:
            return self._end(False, why)
        self._status(stage + "…")
        return True

    def _step_finished(self, ok: bool, results: dict, error: str, cancelled: bool):
        if not ok:
            self._end(False, f"{self._stage}: cancelled." if cancelled else f"{self._stage} failed: {error}")
            return
        try:
            self._on_ok(results)
        except (ValueError, OSError) as e:
            self._end(False, f"{self._stage}: {e}")
        except Exception as e:       # a bug: still give the buttons back, and say what broke
            self._end(False, f"{self._stage}: unexpected error ({type(e).__name__}: {e}).")
            raise

    def cancel(self):
        if self.step.running():
            self._status("Cancelling…")
            self.step.cancel()

    def _status(self, text: str, error: bool = False):
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(text)
        self.message.emit(text, error)

    # -- classify ---------------------------------------------------------------------------------
    def classify_view(self) -> bool:
        return self._begin("classify") and self._classify((0.0, 100.0), None)

    def _classify(self, span, then) -> bool:
        try:
            rnd = self._ensure_round()
            raster, path = self._raster()
            folder = new_subfolder(rnd.folder, "view")
            self._cleanup.append(folder)
            source, window = self._view_input(raster, path, folder)
        except QgsCsException as e:
            return self._end(False, f"The map view cannot be transformed to the raster's CRS: {e}")
        except (ValueError, OSError) as e:
            return self._end(False, str(e))
        classes, unc = os.path.join(folder, "classes.tif"), os.path.join(folder, "uncertainty.tif")

        def classified(_results):
            self._cleanup.remove(folder)
            self.view = dict(round=rnd, input=source, classes=classes, uncertainty=unc, folder=folder,
                             window=window, raster=raster.id())
            self._clear_suggestions()
            remove_layers([self.layer_ids.pop(k, None) for k in ("classes", "uncertainty")])
            below = add_raster(classes, f"Round {rnd.number} classes", raster)       # above the raster
            self.layer_ids["classes"] = below.id()
            self.layer_ids["uncertainty"] = add_raster(unc, f"Round {rnd.number} uncertainty", below).id()
            if then is not None:
                then()
            else:
                self._end(True, f"Round {rnd.number}: classified {window[2]} x {window[3]} px"
                          f"{'' if source != path else ' (the whole raster)'}. Suggest shows where to label next.")

        params = {"INPUT_RASTER": source, "MODEL_DEFINITION": rnd.model, "OUTPUT_RASTER": classes,
                  "OUTPUT_UNCERTAINTY": unc}
        return self._run("deeppixel:classifypixels", params, f"Round {rnd.number}: classifying", span, classified)

    def _view_input(self, raster, path: str, folder: str):
        """(raster file to classify, pixel window): the map view cut out as a VRT, or the whole raster."""
        if self.whole.isChecked():
            return path, (0, 0, raster.width(), raster.height())
        canvas = self.iface.mapCanvas()
        to_raster = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), raster.crs(),
                                           QgsProject.instance())
        r = to_raster.transformBoundingBox(canvas.extent())
        return clip_view(path, (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum()),
                         os.path.join(folder, "view.vrt"))

    # -- suggest ----------------------------------------------------------------------------------
    def suggest(self) -> bool:
        if not self._begin("suggest"):
            return False
        try:
            rnd = self._ensure_round()
        except (ValueError, OSError) as e:
            return self._end(False, str(e))
        if self.view is not None and self.view["round"] is rnd:
            return self._suggest((0.0, 100.0))
        return self._classify((0.0, 80.0), lambda: self._suggest((80.0, 100.0)))   # nothing classified yet

    def _suggest(self, span) -> bool:
        view, rnd = self.view, self.view["round"]
        layer, _field, save = self.samples_source()
        if layer is not None and layer.isModified() and save is not None and not save():
            return self._end(False, "The drawn samples could not be saved, so suggestions could not avoid them.")
        n = 1
        while os.path.exists(os.path.join(view["folder"], f"suggestions_{n:02d}.gpkg")):
            n += 1
        params = {"INPUT_RASTER": view["input"], "INPUT_UNCERTAINTY": view["uncertainty"],
                  "NUMBER_OF_SUGGESTIONS": self.count.value(), "WINDOW_SIZE": self.window.value(),
                  "SEED": rnd.number, "OUTPUT": os.path.join(view["folder"], f"suggestions_{n:02d}.gpkg")}
        if layer is not None:
            params["INPUT_SAMPLES"] = layer_parameter(layer)

        def suggested(results):
            self._show_suggestions(rnd, results["OUTPUT"])
            self._end(True, f"{len(self.suggestions)} windows to label, most uncertain first: click one to go "
                      "there, draw samples in it (Samples tab), then Retrain.")

        return self._run("deeppixel:suggestsamples", params, f"Round {rnd.number}: suggesting", span, suggested)

    def _clear_suggestions(self):
        remove_layers([self.layer_ids.pop("suggestions", None)])
        self.suggestions = []
        self.suggestion_table.setRowCount(0)

    def _show_suggestions(self, rnd: Round, source: str):
        self._clear_suggestions()
        layer = QgsVectorLayer(source, "suggestions", "ogr")
        features = sorted(layer.getFeatures(), key=lambda f: f["rank"])
        self.suggestion_crs = layer.crs()
        self.suggestions = [(int(f["rank"]), float(f["mean_uncertainty"]), str(f["class_mix"] or ""),
                             f.geometry()) for f in features]
        del layer
        self.layer_ids["suggestions"] = add_suggestions(source, f"Round {rnd.number} suggestions").id()
        fill_suggestions(self.suggestion_table, self.suggestions)

    def zoom_to_suggestion(self, row: int) -> bool:
        """Zoom the map to suggestion ``row`` with some surroundings and flash it."""
        if not 0 <= row < len(self.suggestions):
            return False
        rank, _unc, mix, geometry = self.suggestions[row]
        canvas = self.iface.mapCanvas()
        crs = canvas.mapSettings().destinationCrs()
        box = QgsCoordinateTransform(self.suggestion_crs, crs, QgsProject.instance()).transformBoundingBox(
            geometry.boundingBox())
        canvas.zoomToFeatureExtent(box.buffered(box.width()))
        canvas.refresh()
        canvas.flashGeometries([geometry], self.suggestion_crs)
        self.suggestion_table.selectRow(row)
        self._status(f"Suggestion {rank} ({mix}): draw samples in it with the Samples tab's tools.")
        return True

    # -- retrain ----------------------------------------------------------------------------------
    def retrain(self) -> bool:
        if not self._begin("retrain"):
            return False
        try:
            rnd = self._ensure_round()
            raster, path = self._raster()
            layer, field, save = self.samples_source()
            if layer is None:
                raise ValueError("Pick or create a sample layer on the Samples tab.")
            if layer.isModified() and save is not None and not save():
                raise ValueError("The drawn samples could not be saved, so they cannot be trained on.")
            work = self.work_folder()
            number = next_round_number(work, max(r.number for r in self.rounds) + 1)
            folder = round_folder(work, number)
            os.makedirs(folder)                        # new: an earlier round is never written into
        except (ValueError, OSError) as e:
            return self._end(False, str(e))
        self._cleanup.append(folder)
        schema = (self.schema_source() or (None,))[0]
        stats = class_statistics(layer, field, schema, raster) if schema is not None else []
        samples = sum(row["count"] for row in stats) if stats else layer.featureCount()
        pixels = sum(row["pixels"] or 0 for row in stats) if stats else None
        if schema is not None and len(schema):
            schema.save(os.path.join(folder, "schema.json"))
        schema_file = (os.path.join(folder, "schema.json") if schema is not None and len(schema)
                       else rnd.model if rnd.model.lower().endswith(".emd") else None)   # the model's classes
        params = export_parameters(path, layer_parameter(layer), field, model_info(rnd.model).get("chip"),
                                   os.path.join(folder, "chips"), schema_file)

        def exported(results):
            if not int(results.get("NUM_CHIPS") or 0):
                raise ValueError("no chips were exported: are the samples on the raster?")
            train = train_parameters(results["OUTPUT_FOLDER"], rnd.model, self.epochs.value(),
                                     self.learning_rate.value(), self.steps.value(), os.path.join(folder, "model"))
            self._run("deeppixel:trainmodel", train, f"Round {number}: training", (10.0, 90.0), trained)

        def trained(results):
            info = model_info(results["MODEL_DEFINITION"])
            miou = results.get("MIOU")
            new = Round(number, results["MODEL_DEFINITION"], folder, samples, pixels,
                        float(miou) if isinstance(miou, (int, float)) else info.get("miou"),
                        info.get("metrics_on", ""), trained_here=True)
            self._cleanup.remove(folder)               # complete: kept whatever happens next
            self.rounds.append(new)
            self._trained = new
            self._set_current(new)
            on = " on the training chips" if new.metrics_on == "training" else ""
            score = "" if new.miou is None else f", mIoU {new.miou:.3f}{on}"
            self._classify((90.0, 100.0), lambda: self._end(True, f"Round {number} trained on {samples} samples"
                                                             f"{score}; its layers replace the previous round's."))

        return self._run("deeppixel:exporttrainingdata", params, f"Round {number}: exporting chips", (0.0, 10.0),
                         exported)

    # -- history ----------------------------------------------------------------------------------
    def _refresh_history(self):
        fill_history(self.history_table, self.rounds, self.current, self.work_folder())
