"""Schema tab: the classes (value, name, colour) that samples are drawn with; new/open/save/import."""
from __future__ import annotations

import os

from qgis.core import NULL, QgsFeatureRequest
from qgis.gui import QgsColorButton
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..deep_pixel.core.errors import DeepPixelError
from ..deep_pixel.core.schema import ClassInfo, ClassSchema, default_color

SCHEMA_FILTER = "Class schema (*.json);;Model definition (*.emd);;All files (*)"


def swatch(color, size: int = 14) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(*[int(c) for c in color[:3]]))
    return QIcon(pix)


def schema_from_layer(layer, class_field: str) -> ClassSchema:
    """A schema from the distinct class values (or names) of a sample layer.

    Names come from ``Classname`` and colours from ``RED``/``GREEN``/``BLUE`` when the layer has
    them (a layer drawn with this dock round-trips); otherwise values get "Class n" names and text
    classes are numbered 1..n in sorted order.
    """
    fields = layer.fields()
    idx = fields.lookupField(class_field) if class_field else -1
    if idx < 0:
        raise DeepPixelError(f"Layer {layer.name()!r} has no field {class_field!r}: pick its class field first.")
    numeric = fields.at(idx).isNumeric()
    name_idx = fields.lookupField("Classname")
    value_idx = fields.lookupField("Classvalue")
    rgb_idx = [fields.lookupField(n) for n in ("RED", "GREEN", "BLUE")]
    found = {}  # key (value or name) -> (value or None, name, colour or None)
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.Flag.NoGeometry)
    for f in layer.getFeatures(request):
        key = f.attribute(idx)
        if key is None or key == NULL or key in found:
            continue
        if numeric:
            value = int(key)
            name = f.attribute(name_idx) if name_idx >= 0 else None
            name = str(name) if name not in (None, NULL, "") else f"Class {value}"
        else:
            name = str(key)
            value = f.attribute(value_idx) if value_idx >= 0 else None
            value = int(value) if value not in (None, NULL) else None
        color = None
        if min(rgb_idx) >= 0:
            rgb = [f.attribute(i) for i in rgb_idx]
            if all(c not in (None, NULL) for c in rgb):
                color = tuple(int(c) for c in rgb)
        found[key] = (value, name, color)
    if not found:
        raise DeepPixelError(f"Layer {layer.name()!r} has no class values in field {class_field!r}.")
    if all(v is not None for v, _, _ in found.values()):
        items = sorted(found.values(), key=lambda t: t[0])
    else:  # text classes without values: 1..n in sorted name order, like the export does
        items = [(i + 1, n, c) for i, (_, n, c) in
                 enumerate(sorted(found.values(), key=lambda t: t[1].lower()))]
    return ClassSchema([ClassInfo(v, n, c or default_color(i)) for i, (v, n, c) in enumerate(items)])


class ClassDialog(QDialog):
    """Add or edit one class; the schema's own checks decide, and their message is shown inline."""

    def __init__(self, schema: ClassSchema, info: ClassInfo | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Edit class" if info else "Add class")
        self.schema = schema
        self.original = info
        self.value = QSpinBox()
        # Wide range on purpose: out-of-range values get the schema's explanation, not a silent clamp.
        self.value.setRange(-9999, 99999)
        self.value.setValue(info.value if info else schema.next_value())
        self.name = QLineEdit(info.name if info else f"Class {self.value.value()}")
        self.color = QgsColorButton()
        self.color.setAllowOpacity(False)
        self.color.setColor(QColor(*(info.color if info else default_color(len(schema)))[:3]))
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()
        form = QFormLayout()
        form.addRow("Value", self.value)
        form.addRow("Name", self.name)
        form.addRow("Colour", self.color)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.result_schema = None

    def class_info(self) -> ClassInfo:
        c = self.color.color()
        return ClassInfo(int(self.value.value()), self.name.text().strip(), (c.red(), c.green(), c.blue()))

    def check(self) -> str | None:
        """The new schema, or the validation message (also shown in the dialog)."""
        base = self.schema.without_value(self.original.value) if self.original else self.schema
        classes = list(base.classes) + [self.class_info()]
        classes.sort(key=lambda c: c.value if isinstance(c.value, int) else 0)
        try:
            self.result_schema = ClassSchema(classes, self.schema.max_value)
        except DeepPixelError as e:
            self.result_schema = None
            self.error.setText(str(e))
            self.error.show()
            return str(e)
        self.error.hide()
        return None

    def accept(self):
        if self.check() is None:
            super().accept()


class SchemaPanel(QWidget):
    schemaChanged = pyqtSignal(object)  # ClassSchema
    currentClassChanged = pyqtSignal(object)  # ClassInfo or None

    def __init__(self, parent=None, layer_source=None):
        super().__init__(parent)
        self.schema = ClassSchema()
        self.path = None
        self.modified = False
        # Callable returning (layer, class field) for "import from the sample layer".
        self.layer_source = layer_source
        self.last_error = None

        def button(text, slot, tip):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.clicked.connect(slot)
            return b

        self.file_label = QLabel()
        self.file_label.setWordWrap(True)
        files = QHBoxLayout()
        files.addWidget(button("New", self.new_schema, "Start an empty schema"))
        files.addWidget(button("Open…", self.open_dialog, "Open a schema JSON or the classes of a model (.emd)"))
        files.addWidget(button("Save", self.save_dialog, "Save the schema as JSON"))
        self.import_button = QToolButton()
        self.import_button.setText("Import")
        self.import_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.import_button)
        menu.addAction("Classes of a model definition (.emd)…", self.import_emd_dialog)
        menu.addAction("Distinct values of the sample layer", self.import_from_layer)
        self.import_button.setMenu(menu)
        files.addWidget(self.import_button)
        files.addStretch(1)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Value", "Name"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(True)
        self.tree.currentItemChanged.connect(lambda *_: self.currentClassChanged.emit(self.current_class()))
        self.tree.itemDoubleClicked.connect(lambda *_: self.edit_dialog())

        edits = QHBoxLayout()
        edits.addWidget(button("Add…", self.add_dialog, "Add a class"))
        edits.addWidget(button("Edit…", self.edit_dialog, "Change the selected class"))
        edits.addWidget(button("Remove", self.remove_current, "Remove the selected class"))
        edits.addStretch(1)

        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.hide()

        layout = QVBoxLayout(self)
        layout.addLayout(files)
        layout.addWidget(self.file_label)
        layout.addWidget(self.tree, 1)
        layout.addLayout(edits)
        layout.addWidget(self.message)
        self._refresh()

    # -- model --------------------------------------------------------------------------------
    def set_schema(self, schema: ClassSchema, path: str | None = None, modified: bool = True):
        current = self.current_class()
        self.schema = schema
        self.path = path if path is not None else self.path
        self.modified = modified
        self._refresh(current.value if current else None)
        self.schemaChanged.emit(self.schema)

    def current_class(self) -> ClassInfo | None:
        item = self.tree.currentItem()
        return self.schema.by_value(item.data(0, Qt.ItemDataRole.UserRole)) if item else None

    def select_value(self, value: int):
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == value:
                self.tree.setCurrentItem(item)

    def _refresh(self, keep_value=None):
        self.tree.blockSignals(True)
        self.tree.clear()
        for info in self.schema:
            item = QTreeWidgetItem([str(info.value), info.name])
            item.setData(0, Qt.ItemDataRole.UserRole, info.value)
            item.setIcon(1, swatch(info.color))
            item.setTextAlignment(0, int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
            self.tree.addTopLevelItem(item)
        self.tree.blockSignals(False)
        if keep_value is not None and self.schema.by_value(keep_value):
            self.select_value(keep_value)
        elif len(self.schema):
            self.tree.setCurrentItem(self.tree.topLevelItem(0))
        self.currentClassChanged.emit(self.current_class())
        name = os.path.basename(self.path) if self.path else "unsaved schema"
        self.file_label.setText(f"<b>{name}</b>{' (modified)' if self.modified else ''} — "
                                f"{len(self.schema)} class{'es' if len(self.schema) != 1 else ''}")

    def show_message(self, text: str, error: bool = False):
        self.last_error = text if error else None
        self.message.setStyleSheet("color: #b00020;" if error else "color: palette(text);")
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # -- editing (also the API the tests use) ----------------------------------------------------
    def add_class(self, info: ClassInfo) -> str | None:
        """Add a class; returns the validation message (and shows it) when it is refused."""
        return self._try(lambda: self.schema.with_class(info), select=info.value)

    def replace_class(self, old_value: int, info: ClassInfo) -> str | None:
        def build():
            classes = [info if c.value == old_value else c for c in self.schema]
            return ClassSchema(classes, self.schema.max_value)
        return self._try(build, select=info.value)

    def remove_class(self, value: int) -> str | None:
        return self._try(lambda: self.schema.without_value(value))

    def _try(self, build, select=None) -> str | None:
        try:
            schema = build()
        except DeepPixelError as e:
            self.show_message(str(e), error=True)
            return str(e)
        self.show_message("")
        self.set_schema(schema)
        if select is not None:
            self.select_value(select)
        return None

    def add_dialog(self):
        dialog = ClassDialog(self.schema, parent=self)
        if dialog.exec():
            self.add_class(dialog.class_info())

    def edit_dialog(self):
        info = self.current_class()
        if info is None:
            return
        dialog = ClassDialog(self.schema, info, parent=self)
        if dialog.exec():
            self.replace_class(info.value, dialog.class_info())

    def remove_current(self):
        info = self.current_class()
        if info is not None:
            self.remove_class(info.value)

    # -- files --------------------------------------------------------------------------------
    def new_schema(self):
        self.path = None
        self.set_schema(ClassSchema(), modified=False)
        self.path = None
        self._refresh()

    def open_schema(self, path: str) -> str | None:
        try:
            schema = ClassSchema.load(path)
        except DeepPixelError as e:
            self.show_message(str(e), error=True)
            return str(e)
        is_emd = path.lower().endswith(".emd")
        # Classes imported from a model are a new, unsaved schema: saving must not touch the .emd.
        self.path = None if is_emd else path
        self.set_schema(schema, modified=is_emd)
        self.show_message(f"Read {len(schema)} classes from {os.path.basename(path)}.")
        return None

    def save_schema(self, path: str) -> str | None:
        try:
            self.schema.save(path)
        except (OSError, DeepPixelError) as e:
            self.show_message(f"Cannot save the schema to {path}: {e}", error=True)
            return str(e)
        self.path = path
        self.modified = False
        self._refresh(self.current_class().value if self.current_class() else None)
        self.show_message(f"Saved {os.path.basename(path)}.")
        return None

    def open_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open class schema", self._folder(), SCHEMA_FILTER)
        if path:
            self.open_schema(path)

    def import_emd_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Import classes of a model", self._folder(),
                                              "Model definition (*.emd);;All files (*)")
        if path:
            self.open_schema(path)

    def save_dialog(self):
        path = self.path
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save class schema", self._folder(), "Class schema (*.json)")
            if not path:
                return
            if not path.lower().endswith(".json"):
                path += ".json"
        self.save_schema(path)

    def _folder(self) -> str:
        return os.path.dirname(self.path) if self.path else os.path.expanduser("~")

    def import_from_layer(self, layer=None, class_field=None) -> str | None:
        if layer is None and self.layer_source is not None:
            layer, class_field = self.layer_source()
        if layer is None:
            msg = "Pick a sample layer and its class field on the Samples tab first."
            self.show_message(msg, error=True)
            return msg
        try:
            schema = schema_from_layer(layer, class_field)
        except DeepPixelError as e:
            self.show_message(str(e), error=True)
            return str(e)
        if len(self.schema) and self.isVisible():
            answer = QMessageBox.question(self, "Import classes",
                                          f"Replace the {len(self.schema)} classes of the schema with the "
                                          f"{len(schema)} classes found in {layer.name()!r}?")
            if answer != QMessageBox.StandardButton.Yes:
                return None
        self.set_schema(schema)
        self.show_message(f"Imported {len(schema)} classes from {layer.name()!r} ({class_field}).")
        return None
