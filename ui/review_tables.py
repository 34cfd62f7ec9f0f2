"""The Review tab's two tables: the suggested windows and the history of rounds."""
from __future__ import annotations

import os

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QFont
from qgis.PyQt.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

SUGGESTION_COLUMNS = ("Rank", "Uncertainty", "Classes")
HISTORY_COLUMNS = ("Round", "Samples", "Labelled px", "mIoU", "Model folder")
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
TRAIN_NOTE = "mIoU on the training chips: too few chips to hold some out for validation"


def same_path(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def inside(path: str, folder: str) -> bool:
    try:
        return same_path(os.path.commonpath([os.path.abspath(path), os.path.abspath(folder)]), folder)
    except ValueError:                 # another drive
        return False


def make_table(columns, stretch: int) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)            # one line per row, elided (a wrapped path shows only its start)
    header = table.horizontalHeader()
    for c in range(len(columns)):
        header.setSectionResizeMode(c, QHeaderView.ResizeMode.Stretch if c == stretch
                                    else QHeaderView.ResizeMode.ResizeToContents)
    return table


def _set_row(table, row: int, cells, right=(), tips=(), bold=False):
    for col, text in enumerate(cells):
        item = QTableWidgetItem(text)
        if col in right:
            item.setTextAlignment(int(RIGHT))
        if col < len(tips) and tips[col]:
            item.setToolTip(tips[col])
        if bold:
            font = QFont()
            font.setBold(True)
            item.setFont(font)
        table.setItem(row, col, item)


def fill_suggestions(table, suggestions) -> None:
    """Rows of (rank, mean uncertainty, class mix, geometry)."""
    table.setRowCount(len(suggestions))
    for row, (rank, unc, mix, _geometry) in enumerate(suggestions):
        _set_row(table, row, (str(rank), f"{unc:.3f}", mix), right=(0, 1), tips=("", "", mix))


def fill_history(table, rounds, current, work: str) -> None:
    """One row per round; the current round in bold; model folders relative to the working folder."""
    table.setRowCount(len(rounds))
    for row, r in enumerate(rounds):
        on_training = r.metrics_on == "training"
        miou = "–" if r.miou is None else f"{r.miou:.3f}" + (" (train)" if on_training else "")
        folder = r.model_folder
        cells = (str(r.number), "–" if r.samples is None else str(r.samples),
                 "–" if r.pixels is None else f"{r.pixels:,.0f}", miou,
                 os.path.relpath(folder, work) if inside(folder, work) else folder)
        tips = ("", "" if r.trained_here else "trained elsewhere", "", TRAIN_NOTE if on_training else "", folder)
        _set_row(table, row, cells, right=(0, 1, 2, 3), tips=tips, bold=r is current)
