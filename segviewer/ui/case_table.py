"""The case table of a test set: one row per case, sortable and filterable by any column.

Passive widgets: they show rows (``dict`` column -> value, built by ``core.review``) and say
what the user did (``case_activated``, ``class_changed``, ``filter_changed``); the test-set
session decides what the rows are and what opening a case does.

:class:`RowsModel` (also used by the slice table) sorts with ``core.review.sort_rows``, so a
missing value (no reference, an empty mask's Hausdorff distance) always sorts last, whichever
way the column is sorted; Qt's own sort would put NaN first one way round. Filters are
``core.review`` expressions (``dice < 0.8 and verdict = none``); a bad one is shown in red
under the box and the table keeps its previous filter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from segviewer.core import review
from segviewer.core.types import SegviewerError

__all__ = ["RowsModel", "RowsTable", "CaseTable", "format_value", "VERDICT_COLORS"]

_Index = QModelIndex | QPersistentModelIndex

#: Background of the verdict cell.
VERDICT_COLORS = {"accept": "#2e7d32", "reject": "#c62828", "unsure": "#b8860b"}
#: Column headers shown for known column names (others show as written).
HEADERS = {
    "case": "Case",
    "class": "Class",
    "slice": "Slice",
    "dice": "Dice",
    "iou": "IoU",
    "sensitivity": "Sensitivity",
    "precision": "Precision",
    "n_pred": "Pred. voxels",
    "n_ref": "Ref. voxels",
    "tp": "TP",
    "fp": "FP",
    "fn": "FN",
    "volume_pred_ml": "Pred. ml",
    "volume_ref_ml": "Ref. ml",
    "volume_diff_ml": "Δ ml",
    "hd95_mm": "HD95 mm",
    "assd_mm": "ASSD mm",
    "mean_entropy": "Mean entropy",
    "low_confidence_share": "Low-conf. share",
    "low_confidence_voxels": "Low-conf. voxels",
    "absent_in_both": "In neither",
    "worst_slice": "Worst slice",
    "verdict": "Verdict",
    "comment": "Comment",
    "slice_notes": "Slice notes",
}


def format_value(value: Any) -> str:
    """How a cell shows a value: integers as is, floats with 3 significant decimals,
    missing as an en dash."""
    if review.is_missing(value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if value == int(value) and abs(value) < 1e9:
            return str(int(value))
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value).replace("\n", " ")


def header_for(column: str) -> str:
    if column in HEADERS:
        return HEADERS[column]
    for suffix, tag in (("_diff", " B−A"), ("_b", " (B)")):
        if column.endswith(suffix) and column[: -len(suffix)] in HEADERS:
            return HEADERS[column[: -len(suffix)]] + tag
    return column


class RowsModel(QAbstractTableModel):
    """A list of row dicts as a Qt table model, sorted and filtered with ``core.review``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._all: list[dict[str, Any]] = []
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] = []
        self._filter: review.Filter | None = None
        self._sort: tuple[str, bool] | None = None  # column, descending

    # -- content -----------------------------------------------------------------------
    def set_rows(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None
    ) -> None:
        """Replace the rows (columns default to every key, first-seen order). The sort is
        kept; a filter naming a column that no longer exists is dropped."""
        self.beginResetModel()
        self._all = list(rows)
        self._columns = list(columns) if columns is not None else review.columns_of(rows)
        if self._filter is not None and not self._filter.columns <= {
            c.lower() for c in self._columns
        }:
            self._filter = None
        if self._sort is not None and self._sort[0] not in self._columns:
            self._sort = None
        self._apply()
        self.endResetModel()

    def set_filter(self, text: str) -> None:
        """Filter by an expression (empty: all rows).

        Raises
        ------
        SegviewerError
            The expression does not parse or names an unknown column (the filter in use is
            kept).
        """
        flt = review.parse_filter(text, self._columns) if text.strip() else None
        self.beginResetModel()
        self._filter = flt
        self._apply()
        self.endResetModel()

    def _apply(self) -> None:
        rows = review.filter_rows(self._all, self._filter)
        if self._sort is not None:
            rows = review.sort_rows(rows, self._sort[0], descending=self._sort[1])
        self._rows = rows

    # -- queries -----------------------------------------------------------------------
    @property
    def sort_key(self) -> tuple[str, bool] | None:
        """``(column, descending)`` of the sort in use, or None."""
        return self._sort

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The shown rows, in the shown order."""
        return list(self._rows)

    @property
    def n_all(self) -> int:
        return len(self._all)

    def row(self, index: int) -> dict[str, Any]:
        return self._rows[index]

    def find(self, column: str, value: Any) -> int | None:
        """Shown row index whose ``column`` equals ``value`` (as text), or None."""
        for i, r in enumerate(self._rows):
            if str(r.get(column)) == str(value):
                return i
        return None

    # -- Qt model ----------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        col = self._columns[index.column()]
        value = self._rows[index.row()].get(col)
        if role == Qt.ItemDataRole.DisplayRole:
            return format_value(value)
        if role == Qt.ItemDataRole.ToolTipRole and isinstance(value, str) and value:
            return value
        if role == Qt.ItemDataRole.TextAlignmentRole and review.as_number(value) is not None:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.BackgroundRole and col.startswith("verdict"):
            color = VERDICT_COLORS.get(str(value or "").lower())
            return QColor(color) if color else None
        if role == Qt.ItemDataRole.ForegroundRole and col.startswith("verdict") and value:
            return QColor("white")
        if role == Qt.ItemDataRole.ForegroundRole and col.endswith("_diff"):
            num = review.as_number(value)
            if num is not None and num != 0:
                # B - A: a drop (negative) in red, a gain in green; for distances and error
                # counts lower is better, so the colours swap
                worse = num < 0
                base = col[: -len("_diff")]
                if base in _LOWER_IS_BETTER:
                    worse = not worse
                return QColor("#c62828") if worse else QColor("#2e7d32")
        return None

    def headerData(  # noqa: N802
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return header_for(self._columns[section]) if section < len(self._columns) else None
        return str(section + 1)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self._columns):
            return
        self.layoutAboutToBeChanged.emit()
        self._sort = (self._columns[column], order == Qt.SortOrder.DescendingOrder)
        self._apply()
        self.layoutChanged.emit()

    def sort_by(self, column: str, *, descending: bool = False) -> None:
        """Sort by a column name (what a click on its header does)."""
        if column not in self._columns:
            raise SegviewerError(
                f"no column {column!r} to sort by; the columns are: {', '.join(self._columns)}"
            )
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.sort(self._columns.index(column), order)


#: Metrics where a lower value is better (their B - A difference is coloured the other way).
_LOWER_IS_BETTER = {
    "hd95_mm",
    "assd_mm",
    "fp",
    "fn",
    "mean_entropy",
    "low_confidence_share",
    "low_confidence_voxels",
}


class RowsTable(QWidget):
    """A filter box over a sortable table of rows; the base of the case and slice tables.

    Signals
    -------
    row_activated(dict)
        A row was double-clicked or Enter was pressed on it.
    row_clicked(dict)
        A row was clicked (or became current with the keyboard).
    filter_changed(str)
        A filter was applied (after it parsed).
    """

    row_activated = Signal(object)
    row_clicked = Signal(object)
    filter_changed = Signal(str)

    def __init__(self, noun: str, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._noun = noun
        self.model = RowsModel(self)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("The class whose metrics the table shows")
        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText(placeholder)
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.setToolTip(
            "Keep rows matching an expression: column, comparison, value, joined by and / or, "
            "e.g. 'dice < 0.8 and fn > 100', 'Dice below 0.8', 'verdict = none'"
        )
        self.filter_edit.returnPressed.connect(self._filter_from_edit)
        self.filter_edit.textChanged.connect(self._filter_cleared)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c62828")
        self.message.hide()
        self.count = QLabel()
        self.view = QTableView()
        self.view.setModel(self.model)
        self.view.setSortingEnabled(True)
        self.view.horizontalHeader().setSortIndicatorShown(True)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # fit columns to the first rows only: measuring every cell of a 2000-case table
        # took over a second per refresh
        self.view.horizontalHeader().setResizeContentsPrecision(40)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.setAlternatingRowColors(True)
        self.view.doubleClicked.connect(self._activated)
        self.view.clicked.connect(self._clicked)
        enter = QShortcut(QKeySequence(Qt.Key.Key_Return), self.view)
        enter.setContext(Qt.ShortcutContext.WidgetShortcut)
        enter.activated.connect(lambda: self._activated(self.view.currentIndex()))
        self.model.modelReset.connect(self._update_count)

        self.class_label = QLabel("Class:")
        top = QHBoxLayout()
        top.addWidget(self.class_label)
        top.addWidget(self.class_combo, 1)
        self.top = top
        filt = QHBoxLayout()
        filt.addWidget(QLabel("Filter:"))
        filt.addWidget(self.filter_edit, 1)
        self.filter_row = filt
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addLayout(top)
        lay.addLayout(filt)
        lay.addWidget(self.message)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.count)
        self._update_count()

    # -- filter ------------------------------------------------------------------------
    def set_filter(self, text: str) -> bool:
        """Apply a filter expression as if typed; False (and the reason shown) if it is bad."""
        if self.filter_edit.text() != text:
            self.filter_edit.blockSignals(True)
            self.filter_edit.setText(text)
            self.filter_edit.blockSignals(False)
        try:
            self.model.set_filter(text)
        except SegviewerError as exc:
            self.message.setText(str(exc))
            self.message.show()
            return False
        self.message.hide()
        self.filter_changed.emit(text)
        return True

    @property
    def filter_error(self) -> str:
        """The message of the last bad filter ("" when the filter in use parsed)."""
        return self.message.text() if not self.message.isHidden() else ""

    def _filter_from_edit(self) -> None:
        self.set_filter(self.filter_edit.text())

    def _filter_cleared(self, text: str) -> None:
        if not text.strip():
            self.set_filter("")

    def _update_count(self) -> None:
        shown, total = self.model.rowCount(), self.model.n_all
        self.count.setText(
            f"{total} {self._noun}" if shown == total else f"{shown} of {total} {self._noun}"
        )

    def sort_by(self, column: str, *, descending: bool = False) -> None:
        """Sort by a column as a header click does (the header shows the sort)."""
        if column not in self.model.columns:
            self.model.sort_by(column)  # raises the one-line message
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.view.sortByColumn(self.model.columns.index(column), order)

    # -- rows --------------------------------------------------------------------------
    def set_rows(
        self, rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None
    ) -> None:
        """Show these rows; the current row stays selected when it is still there."""
        key = self._key_column()
        current = self.current_row()
        self.model.set_rows(rows, columns)
        self.view.resizeColumnsToContents()
        if current is not None and key in current:
            self.select(key, current[key])

    def _key_column(self) -> str:
        return "case"

    def current_row(self) -> dict[str, Any] | None:
        idx = self.view.currentIndex()
        if not idx.isValid() or idx.row() >= self.model.rowCount():
            return None
        return self.model.row(idx.row())

    def select(self, column: str, value: Any) -> bool:
        """Make the row whose ``column`` is ``value`` current (scrolled to); False if it is
        not shown."""
        i = self.model.find(column, value)
        if i is None:
            self.view.clearSelection()
            return False
        idx = self.model.index(i, 0)
        self.view.setCurrentIndex(idx)
        self.view.scrollTo(idx)
        return True

    def _activated(self, index: QModelIndex) -> None:
        if index.isValid():
            self.row_activated.emit(self.model.row(index.row()))

    def _clicked(self, index: QModelIndex) -> None:
        if index.isValid():
            self.row_clicked.emit(self.model.row(index.row()))


class CaseTable(RowsTable):
    """The cases of a test set (see the module docstring).

    Signals
    -------
    case_activated(str)
        Open this case (double-click, Enter).
    class_changed(str)
        The class the table shows was changed by the user.
    """

    case_activated = Signal(str)
    class_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("cases", "e.g. dice < 0.8 and verdict = none", parent)
        self.setObjectName("caseTable")
        self.row_activated.connect(lambda row: self.case_activated.emit(str(row["case"])))
        self.class_combo.activated.connect(
            lambda _i: self.class_changed.emit(self.class_combo.currentText())
        )

    def set_classes(self, names: Sequence[str], current: str | None = None) -> None:
        """The classes offered (without emitting ``class_changed``)."""
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(list(names))
        if current is not None and current in names:
            self.class_combo.setCurrentText(current)
        self.class_combo.blockSignals(False)
        self.class_combo.setEnabled(len(names) > 0)

    def current_class(self) -> str | None:
        return self.class_combo.currentText() or None

    def case_ids(self) -> list[str]:
        """The shown cases in the shown order (sorted and filtered)."""
        return [str(r["case"]) for r in self.model.rows]

    def current_case(self) -> str | None:
        row = self.current_row()
        return None if row is None else str(row["case"])

    def select_case(self, case_id: str) -> bool:
        return self.select("case", case_id)

    def neighbour(self, case_id: str | None, step: int) -> str | None:
        """The case ``step`` rows after ``case_id`` in the shown order (Ctrl+N / Ctrl+P);
        the first (or last) shown case when ``case_id`` is not shown; None past either end."""
        ids = self.case_ids()
        if not ids:
            return None
        if case_id not in ids:
            return ids[0] if step > 0 else ids[-1]
        j = ids.index(case_id) + step
        return ids[j] if 0 <= j < len(ids) else None
