"""The class list: visibility, colour, name, voxel count and volume of each class, and
its Dice against the reference segmentation when one is loaded."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from segviewer.core.classes import rgb_to_hex
from segviewer.ui.state import Change, ViewerState

__all__ = ["ClassPanel"]

COL_VISIBLE, COL_COLOR, COL_NAME, COL_VOXELS, COL_VOLUME, COL_DICE = range(6)


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
        self._updating = False

        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["", "", "Class", "Voxels", "Volume (mm³)", "Dice"])
        dice_header = self.table.horizontalHeaderItem(COL_DICE)
        if dice_header is not None:
            dice_header.setToolTip(
                "Dice overlap with the reference segmentation: 2·TP / (predicted + reference "
                "voxels); 1 = identical. Hover a value for sensitivity, precision, FP/FN"
            )
        self.table.verticalHeader().setVisible(False)
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
        """Show whole-volume voxel counts (``(n_classes,)`` int) and volumes in mm³.

        ``None`` means "being computed" (shown as "…").
        """
        self._counts = None if counts is None else np.asarray(counts, np.int64)
        voxel_mm3 = float(np.prod(spacing)) if spacing is not None else 1.0
        self._updating = True
        for row in range(self.table.rowCount()):
            if self._counts is None or row >= len(self._counts):
                vox, vol = "…", "…"
            else:
                n = int(self._counts[row])
                vox, vol = f"{n:,}", f"{n * voxel_mm3:,.0f}"
            for col, text in ((COL_VOXELS, vox), (COL_VOLUME, vol)):
                item = self.table.item(row, col)
                if item is not None:
                    item.setText(text)
        self._updating = False
        notes = []
        if n_uncertain:
            notes.append(f"{n_uncertain:,} voxels below the minimum confidence (uncertain)")
        if n_invalid:
            notes.append(f"{n_invalid:,} voxels with NaN/inf values (invalid)")
        self.summary.setText("; ".join(notes))

    def dice_text(self, index: int) -> tuple[str, str]:
        """``(text, tooltip)`` of class ``index``'s Dice cell ("" when no reference)."""
        item = self.table.item(index, COL_DICE)
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
        self._updating = True
        for row in range(self.table.rowCount()):
            item = self.table.item(row, COL_DICE)
            if item is None:
                item = QTableWidgetItem()
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, COL_DICE, item)
            if comp is None or row >= len(comp.per_class):
                item.setText("…")
                item.setToolTip("Comparing with the reference…")
                continue
            c = comp.per_class[row]
            item.setText(_fmt(c.dice))
            name = names[row] if row < len(names) else f"class {row}"
            absent = (
                "\n(absent from both: nothing to find, nothing found)" if c.absent_in_both else ""
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
        self._updating = False

    def row_text(self, index: int) -> tuple[str, str, str]:
        """``(name, voxels, volume)`` as displayed for class ``index`` (tests, a11y)."""
        texts = []
        for c in (COL_NAME, COL_VOXELS, COL_VOLUME):
            item = self.table.item(index, c)
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
        if what in (Change.DATA, Change.LUT):
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

    def _rebuild(self) -> None:
        st = self.state
        table = st.table
        self._updating = True
        n = 0 if table is None or st.prediction is None else len(table)
        if self.table.rowCount() != n:
            self.table.setRowCount(n)
            self._counts = None if self._counts is None or len(self._counts) != n else self._counts
        for i in range(n):
            assert table is not None
            info = table[i]
            check = self.table.item(i, COL_VISIBLE)
            if check is None:
                check = QTableWidgetItem()
                self.table.setItem(i, COL_VISIBLE, check)
            check.setFlags(
                Qt.ItemFlag.ItemIsUserCheckable
                | Qt.ItemFlag.ItemIsEnabled
                | Qt.ItemFlag.ItemIsSelectable
            )
            check.setCheckState(Qt.CheckState.Checked if st.visible[i] else Qt.CheckState.Unchecked)
            check.setToolTip(
                "Background is never drawn" if i == 0 else f"Show/hide (key {i})" if i < 10 else ""
            )
            swatch = self.table.item(i, COL_COLOR)
            if swatch is None:
                swatch = QTableWidgetItem()
                self.table.setItem(i, COL_COLOR, swatch)
            swatch.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            swatch.setBackground(QColor(*info.color))
            swatch.setToolTip(f"{rgb_to_hex(info.color)} — click to change")
            for col, text in (
                (COL_NAME, f"{i}  {info.name}"),
                (COL_VOXELS, "…"),
                (COL_VOLUME, "…"),
            ):
                item = self.table.item(i, col)
                if item is None:
                    item = QTableWidgetItem(text)
                    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
                    if col != COL_NAME:
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                    self.table.setItem(i, col, item)
                elif col == COL_NAME:
                    item.setText(text)
        self._updating = False
        if self._counts is not None and st.volume is not None:
            self.set_counts(self._counts, st.volume.spacing)

    def _cell_entered(self, row: int, col: int) -> None:
        k = self.class_at(row)
        self.state.set_highlight(k if k is not None and k > 0 else None)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if obj is self.table.viewport() and event.type() == QEvent.Type.Leave:
            self.state.set_highlight(None)
        return super().eventFilter(obj, event)

    def class_at(self, row: int) -> int | None:
        """The class index shown on table row ``row`` (None for no row)."""
        item = self.table.item(row, COL_NAME)
        if item is None:
            return None
        value = item.data(Qt.ItemDataRole.UserRole)
        return row if value is None else int(value)

    def _item_changed(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() != COL_VISIBLE:
            return
        self.state.set_visible(item.row(), item.checkState() == Qt.CheckState.Checked)

    def _cell_clicked(self, row: int, col: int) -> None:
        if col == COL_COLOR:
            self.choose_color(row)

    def _context_menu(self, pos: QPoint) -> None:
        row = self.table.rowAt(pos.y())
        menu = QMenu(self)
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
        menu.exec(self.table.viewport().mapToGlobal(pos))


def _fmt(value: float) -> str:
    """A ratio with 3 decimals; "–" when it is undefined (NaN: nothing to divide by)."""
    return "–" if not math.isfinite(value) else f"{value:.3f}"
