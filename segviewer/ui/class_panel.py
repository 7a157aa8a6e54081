"""The class list: visibility, colour, name, voxel count and volume of each class, and
its Dice against the reference segmentation when one is loaded.

Made for many classes (an atlas of 100+ structures): names on one line, cut with "…" and
whole in their tooltip; a search box (also reached by typing in the table: type-to-find,
Enter toggles the first match); sort by index, name or volume; volumes in ml (mm³ from the
context menu). Rows are in the chosen order, so a row is mapped to its class through
:meth:`ClassPanel.class_at` / :meth:`ClassPanel.row_of`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QAction, QColor, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from segviewer.core.classes import rgb_to_hex
from segviewer.ui.state import Change, ViewerState

__all__ = ["ClassPanel"]

COL_VISIBLE, COL_COLOR, COL_NAME, COL_VOXELS, COL_VOLUME, COL_DICE = range(6)
#: Orders the class list can be sorted in (volume: largest first).
SORT_KEYS = ("index", "name", "volume")


class ClassPanel(QWidget):
    """One row per class: visibility checkbox, colour swatch, name, voxels, volume (mm³),
    and, with a reference segmentation, Dice (tooltip: Jaccard, sensitivity, precision,
    false positive / negative voxels, volumes).

    It edits the shared :class:`ViewerState` directly (visibility, colours) and follows it.
    Counts come from the whole-volume mask computed in a worker (:meth:`set_counts`); until
    then the columns show "…".
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._counts: np.ndarray | None = None
        self._voxel_mm3 = 1.0
        #: class index shown on each row, in the chosen order (every class for a table of
        #: up to ALL_ROWS entries)
        self._order: list[int] = []
        self._hidden_note = ""
        self.sort_key = "index"
        self.volume_unit = "ml"  # or "mm³"

        self.search = QLineEdit()
        self.search.setPlaceholderText("Find class…")
        self.search.setToolTip(
            "Shows the classes whose index or name contains the text; typing in the list "
            "comes here too. Enter shows/hides the first class found"
        )
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.search.returnPressed.connect(self._toggle_first_match)
        self.sort_combo = QComboBox()
        self.sort_combo.addItems([f"Sort by {k}" for k in SORT_KEYS])
        self.sort_combo.setToolTip(
            "Order of the list: class index, name, or volume (largest first)"
        )
        self.sort_combo.currentIndexChanged.connect(lambda i: self.set_sort(SORT_KEYS[i]))

        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["", "", "Class", "Voxels", "Volume (ml)", "Dice"])
        # one line per name, cut in the middle with "…" (the index and both ends of the name
        # stay: atlas names often differ at the end); the tooltip has it whole
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.installEventFilter(self)
        dice_header = self.table.horizontalHeaderItem(COL_DICE)
        if dice_header is not None:
            dice_header.setToolTip(
                "Dice overlap with the reference segmentation: 2·TP / (predicted + reference "
                "voxels); 1 = identical. Hover a value for sensitivity, precision, FP/FN"
            )
        self.table.verticalHeader().setVisible(False)
        # compact one-line rows: 114 classes take a scroll, not a page each
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 6)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(COL_VISIBLE, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(COL_COLOR, QHeaderView.ResizeMode.Fixed)
        hdr.setSectionResizeMode(COL_NAME, QHeaderView.ResizeMode.Stretch)
        hdr.setSectionResizeMode(COL_VOXELS, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(COL_VOLUME, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(COL_DICE, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnHidden(COL_DICE, True)
        self.table.setColumnWidth(COL_COLOR, 28)
        self.table.itemChanged.connect(self._item_changed)
        self.table.cellClicked.connect(self._cell_clicked)
        # hovering a row highlights its class on the canvases (the others dimmed)
        self.table.setMouseTracking(True)
        self.table.cellEntered.connect(self._cell_entered)
        self.table.viewport().installEventFilter(self)

        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        show_all = QPushButton("Show all")
        show_all.setToolTip("Show every class (A)")
        show_all.clicked.connect(lambda: self.state.set_all_visible(True))
        hide_all = QPushButton("Hide all")
        hide_all.setToolTip("Hide every class (N)")
        hide_all.clicked.connect(lambda: self.state.set_all_visible(False))
        buttons = QHBoxLayout()
        buttons.addWidget(show_all)
        buttons.addWidget(hide_all)
        self.show_all_button, self.hide_all_button = show_all, hide_all
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.sort_combo)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.summary)
        state.changed.connect(self._state_changed)
        self._rebuild()

    # -- public ----------------------------------------------------------------------------
    def set_counts(
        self,
        counts: Sequence[int] | np.ndarray | None,
        spacing: tuple[float, float, float] | None = None,
        *,
        n_uncertain: int = 0,
        n_invalid: int = 0,
    ) -> None:
        """Show whole-volume voxel counts (``(n_classes,)`` int) and volumes (ml or mm³).

        ``None`` means "being computed" (shown as "…").
        """
        self._counts = None if counts is None else np.asarray(counts, np.int64)
        self._voxel_mm3 = float(np.prod(spacing)) if spacing is not None else 1.0
        if self.sort_key == "volume":
            self._rebuild()
        else:
            self._show_volumes()
        notes = []
        if n_uncertain:
            notes.append(f"{n_uncertain:,} voxels below the minimum confidence (uncertain)")
        if n_invalid:
            notes.append(f"{n_invalid:,} voxels with NaN/inf values (invalid)")
        if self._hidden_note:
            notes.append(self._hidden_note)
        self.summary.setText("; ".join(notes))

    def _show_volumes(self) -> None:
        with signals_blocked(self.table):  # the write-back is not a user edit
            for row, k in enumerate(self._order):
                if self._counts is None or k >= len(self._counts):
                    vox, vol = "…", "…"
                else:
                    n = int(self._counts[k])
                    mm3 = n * self._voxel_mm3
                    vox = f"{n:,}"
                    vol = f"{mm3:,.0f}" if self.volume_unit == "mm³" else f"{mm3 / 1000:,.2f}"
                for col, text in ((COL_VOXELS, vox), (COL_VOLUME, vol)):
                    item = self.table.item(row, col)
                    if item is not None:
                        item.setText(text)

    def set_volume_unit(self, unit: str) -> None:
        """Volumes in ``"ml"`` (default) or ``"mm³"``."""
        if unit not in ("ml", "mm³"):
            raise ValueError(f"volume unit must be ml or mm³, got {unit!r}")
        self.volume_unit = unit
        header = self.table.horizontalHeaderItem(COL_VOLUME)
        if header is not None:
            header.setText(f"Volume ({unit})")
        self._show_volumes()

    def set_sort(self, key: str) -> None:
        """Order the rows by class ``"index"``, ``"name"`` or ``"volume"`` (largest first)."""
        if key not in SORT_KEYS:
            raise ValueError(f"sort key must be one of {', '.join(SORT_KEYS)}, got {key!r}")
        self.sort_key = key
        if self.sort_combo.currentIndex() != SORT_KEYS.index(key):
            self.sort_combo.setCurrentIndex(SORT_KEYS.index(key))
        self._rebuild()

    def row_of(self, index: int) -> int:
        """The table row showing class ``index`` (-1 when it is not in the table)."""
        try:
            return self._order.index(index)
        except ValueError:
            return -1

    def dice_text(self, index: int) -> tuple[str, str]:
        """``(text, tooltip)`` of class ``index``'s Dice cell ("" when no reference)."""
        item = self.table.item(self.row_of(index), COL_DICE)
        if item is None or self.table.isColumnHidden(COL_DICE):
            return "", ""
        return item.text(), item.toolTip()

    def _show_comparison(self) -> None:
        """Fill the Dice column from ``state.comparison`` ("…" while it is computed)."""
        st = self.state
        has_ref = st.reference is not None
        self.table.setColumnHidden(COL_DICE, not has_ref)
        if not has_ref:
            return
        comp: Any = st.comparison
        names = st.table.names if st.table is not None else ()
        with signals_blocked(self.table):  # the write-back is not a user edit
            for row, k in enumerate(self._order):
                item = self.table.item(row, COL_DICE)
                if item is None:
                    item = QTableWidgetItem()
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                    self.table.setItem(row, COL_DICE, item)
                if comp is None or k >= len(comp.per_class):
                    item.setText("…")
                    item.setToolTip("Comparing with the reference…")
                    continue
                c = comp.per_class[k]
                item.setText(_fmt(c.dice))
                name = names[k] if k < len(names) else f"class {k}"
                absent = (
                    "\n(absent from both: nothing to find, nothing found)"
                    if c.absent_in_both
                    else ""
                )
                item.setToolTip(
                    f"{name} vs reference{absent}\n"
                    f"Dice {_fmt(c.dice)}   Jaccard {_fmt(c.jaccard)}\n"
                    f"Sensitivity {_fmt(c.sensitivity)}   Precision {_fmt(c.precision)}\n"
                    f"False positives {c.fp:,} voxels   False negatives {c.fn:,} voxels\n"
                    f"Volume: predicted {c.volume_pred_mm3:,.0f} mm³, reference "
                    f"{c.volume_ref_mm3:,.0f} mm³"
                    + (
                        f" ({c.volume_diff_percent:+.1f} %)"
                        if math.isfinite(c.volume_diff_percent)
                        else ""
                    )
                )

    def row_text(self, index: int) -> tuple[str, str, str]:
        """``(name, voxels, volume)`` as displayed for class ``index`` (tests, a11y)."""
        texts = []
        row = self.row_of(index)
        for c in (COL_NAME, COL_VOXELS, COL_VOLUME):
            item = self.table.item(row, c)
            texts.append("" if item is None else item.text())
        return texts[0], texts[1], texts[2]

    def choose_color(self, index: int) -> None:
        """Ask for a new colour for class ``index`` (QColorDialog) and apply it."""
        if self.state.table is None:
            return
        r, g, b = self.state.table[index].color
        color = QColorDialog.getColor(
            QColor(r, g, b), self, f"Colour of {self.state.table[index].name}"
        )
        if color.isValid():
            self.state.set_color(index, (color.red(), color.green(), color.blue()))

    # -- internals -------------------------------------------------------------------------
    def _state_changed(self, what: Change) -> None:
        if what in (Change.DATA, Change.LUT) or (what == Change.LABEL_RESULT and self._filtered()):
            self._rebuild()
        if what in (Change.DATA, Change.LABEL_RESULT):
            self._show_counts()
        if what in (Change.DATA, Change.LUT, Change.REFERENCE):
            self._show_comparison()

    def _show_counts(self) -> None:
        """The state's whole-volume labels: counts and volumes ("…" while computed)."""
        st = self.state
        res = st.label_result
        if res is None or st.prediction is None:
            self.set_counts(None)
            return
        self.set_counts(
            res.counts,
            st.volume.spacing if st.volume is not None else None,
            n_uncertain=int(res.n_uncertain),
            n_invalid=int(res.n_invalid),
        )

    def _sorted(self, rows: list[int]) -> list[int]:
        """``rows`` (class indices) in the chosen order; background stays first."""
        table = self.state.table
        if self.sort_key == "name" and table is not None:
            return sorted(rows, key=lambda k: (k != 0, table[k].name.casefold()))
        counts = self._counts
        if self.sort_key == "volume" and counts is not None:
            n = len(counts)
            return sorted(rows, key=lambda k: (k != 0, -int(counts[k]) if k < n else 0, k))
        return list(rows)

    def _filtered(self) -> bool:
        table = self.state.table
        return table is not None and len(table) > ALL_ROWS

    def _rows_for(self, n: int) -> tuple[list[int], str]:
        """Class indices to list, and a note on those left out ("" when all are listed)."""
        if n <= ALL_ROWS:
            return list(range(n)), ""
        table = self.state.table
        assert table is not None
        res = self.state.label_result
        counts = np.asarray(res.counts) if res is not None else np.zeros(0, np.int64)
        present = np.flatnonzero(counts[:n]).tolist()
        named = [k for k in range(1, n) if table[k].name != f"class {k}"]
        rows = sorted({0, *present, *named})
        note = (
            f"listing {min(len(rows), MAX_ROWS):,} of {n:,} classes: those a voxel holds or the "
            "class table names"
        )
        return rows[:MAX_ROWS], note

    def _rebuild(self) -> None:
        st = self.state
        table = st.table
        with signals_blocked(self.table):  # the write-back is not a user edit
            n_classes = 0 if table is None or st.prediction is None else len(table)
            rows, self._hidden_note = self._rows_for(n_classes)
            if self.table.rowCount() != len(rows):
                self.table.setRowCount(len(rows))
            if self._counts is not None and len(self._counts) > n_classes:
                self._counts = None
            self._order = self._sorted(rows)
            for row, i in enumerate(self._order):
                assert table is not None
                info = table[i]
                check = self.table.item(row, COL_VISIBLE)
                if check is None:
                    check = QTableWidgetItem()
                    self.table.setItem(row, COL_VISIBLE, check)
                check.setFlags(
                    Qt.ItemFlag.ItemIsUserCheckable
                    | Qt.ItemFlag.ItemIsEnabled
                    | Qt.ItemFlag.ItemIsSelectable
                )
                check.setCheckState(
                    Qt.CheckState.Checked if st.visible[i] else Qt.CheckState.Unchecked
                )
                check.setToolTip(
                    "Background is never drawn"
                    if i == 0
                    else f"Show/hide (key {i})"
                    if i < 10
                    else ""
                )
                swatch = self.table.item(row, COL_COLOR)
                if swatch is None:
                    swatch = QTableWidgetItem()
                    self.table.setItem(row, COL_COLOR, swatch)
                swatch.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                swatch.setBackground(QColor(*info.color))
                swatch.setToolTip(f"{rgb_to_hex(info.color)} — click to change")
                for col in (COL_NAME, COL_VOXELS, COL_VOLUME):
                    item = self.table.item(row, col)
                    if item is None:
                        item = QTableWidgetItem("…")
                        item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                        if col != COL_NAME:
                            item.setTextAlignment(
                                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                            )
                        self.table.setItem(row, col, item)
                    if col == COL_NAME:
                        item.setText(f"{i}  {info.name}")
                        item.setToolTip(f"{i}: {info.name}")
                        item.setData(Qt.ItemDataRole.UserRole, i)
        self._show_volumes()
        self._filter(self.search.text())

    def _filter(self, text: str) -> None:
        """Hide the rows whose index and name do not contain ``text`` (case-insensitive)."""
        needle = text.lstrip().casefold()  # a trailing space ends a word ("region 7 ")
        for row in range(self.table.rowCount()):
            item = self.table.item(row, COL_NAME)
            shown = not needle or (item is not None and needle in item.text().casefold())
            self.table.setRowHidden(row, not shown)

    def matches(self) -> list[int]:
        """Classes whose rows the search leaves shown, in row order."""
        return [
            self._order[r] for r in range(self.table.rowCount()) if not self.table.isRowHidden(r)
        ]

    def _toggle_first_match(self) -> None:
        found = [k for k in self.matches() if k > 0]
        if found and self.search.text().strip():
            self.state.toggle_visible(found[0])
            self.table.selectRow(self.row_of(found[0]))

    def _cell_entered(self, row: int, col: int) -> None:
        k = self.class_at(row)
        self.state.set_highlight(k if k is not None and k > 0 else None)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if obj is self.table.viewport() and event.type() == QEvent.Type.Leave:
            self.state.set_highlight(None)
        kinds = (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride)
        if obj is self.table and event.type() in kinds and isinstance(event, QKeyEvent):
            # type-to-find: letters typed in the list go to the search box (Enter there
            # toggles the first match); digits stay the window's class keys
            text = event.text()
            plain = not event.modifiers() & ~Qt.KeyboardModifier.ShiftModifier
            if plain and text and text.isprintable() and not text.isdigit() and text != " ":
                event.accept()
                if event.type() == QEvent.Type.KeyPress:
                    self.search.setFocus()
                    self.search.setText(self.search.text() + text)
                return True
        return super().eventFilter(obj, event)

    def class_at(self, row: int) -> int | None:
        """The class index shown on table row ``row`` (None for no row)."""
        item = self.table.item(row, COL_NAME)
        if item is None:
            return None
        value = item.data(Qt.ItemDataRole.UserRole)
        return row if value is None else int(value)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != COL_VISIBLE:
            return
        k = self.class_at(item.row())
        if k is not None:
            self.state.set_visible(k, item.checkState() == Qt.CheckState.Checked)

    def _cell_clicked(self, row: int, col: int) -> None:
        k = self.class_at(row)
        if col == COL_COLOR and k is not None:
            self.choose_color(k)

    def _context_menu(self, pos: QPoint) -> None:
        at = self.table.rowAt(pos.y())
        k = self.class_at(at) if at >= 0 else None
        row = -1 if k is None else k
        menu = QMenu(self)
        unit = QAction("Volumes in mm³", menu)
        unit.setCheckable(True)
        unit.setChecked(self.volume_unit == "mm³")
        unit.toggled.connect(lambda on: self.set_volume_unit("mm³" if on else "ml"))
        if row >= 0 and self.state.table is not None:
            name = self.state.table[row].name
            only = QAction(f"Show only “{name}”", menu)
            only.triggered.connect(lambda: self.state.show_only(row))
            menu.addAction(only)
            color = QAction("Change colour…", menu)
            color.triggered.connect(lambda: self.choose_color(row))
            menu.addAction(color)
            menu.addSeparator()
        for text, visible in (("Show all", True), ("Hide all", False)):
            act = QAction(text, menu)
            act.triggered.connect(lambda _=False, v=visible: self.state.set_all_visible(v))
            menu.addAction(act)
        menu.addSeparator()
        menu.addAction(unit)
        menu.exec(self.table.viewport().mapToGlobal(pos))


def _fmt(value: float) -> str:
    """A ratio with 3 decimals; "–" when it is undefined (NaN: nothing to divide by)."""
    return "–" if not math.isfinite(value) else f"{value:.3f}"


#: Up to this many classes every class gets a row; beyond (a class table listing index 65533,
#: a label map with a stray value) only background, the classes some voxel holds and the
#: classes the table names are listed, at most MAX_ROWS of them: 65,534 rows of widgets
#: froze the window for minutes.
ALL_ROWS = 256
MAX_ROWS = 2000
