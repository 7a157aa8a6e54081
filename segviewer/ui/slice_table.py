"""The slice table of the open case: every slice with its metrics for one class (or all).

Rows come from ``core.review.slice_rows`` (``core.metrics`` per-slice metrics of the open
case and the model's doubt, computed in a worker).
A click on a row goes to that slice (``slice_activated``). Named filters
(``core.review.PRESET_FILTERS``: "Dice below 0.8", "In the reference, missing in the
prediction", ...) fill the filter box; any expression can be typed. Without a reference the
table starts sorted by the model's doubt (low-confidence area, then mean entropy), most
doubtful first, so a reviewer still starts with the doubtful slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QWidget

from segviewer.core import review
from segviewer.ui.case_table import RowsTable

__all__ = ["SliceTable", "ALL_CLASSES"]

#: The class-combo entry that sums the foreground classes.
ALL_CLASSES = "All foreground classes"


class SliceTable(RowsTable):
    """Slices of the open case (see the module docstring).

    Signals
    -------
    slice_activated(int)
        Go to this slice (a click, Enter or a double-click on its row).
    class_changed(object)
        The class the table shows (an int, or None for all foreground classes).
    """

    slice_activated = Signal(int)
    class_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("slices", "e.g. dice < 0.8, fn > 50, mean_entropy > 0.3", parent)
        self.setObjectName("sliceTable")
        self.preset_combo = QComboBox()
        self.preset_combo.addItem("Custom filter")
        self.preset_combo.addItems(list(review.PRESET_FILTERS))
        self.preset_combo.setToolTip("Ready-made filters")
        self.preset_combo.activated.connect(self._preset)
        self.filter_row.insertWidget(1, self.preset_combo)
        self.row_clicked.connect(self._go)
        self.row_activated.connect(self._go)
        self.class_combo.activated.connect(lambda _i: self.class_changed.emit(self.current_class()))
        self._class_indices: list[int | None] = []

    def _key_column(self) -> str:
        return "slice"

    def _go(self, row: dict[str, Any]) -> None:
        self.slice_activated.emit(int(row["slice"]))

    def _preset(self, index: int) -> None:
        if index <= 0:
            return
        text = review.PRESET_FILTERS[self.preset_combo.itemText(index)]
        if not self.set_filter(text):
            self.preset_combo.setCurrentIndex(0)

    def set_classes(self, names: Sequence[str], current: int | None = None) -> None:
        """Offer "all foreground classes" and the classes ``1..`` (names indexed by class)."""
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self._class_indices = [None] + list(range(1, len(names)))
        self.class_combo.addItem(ALL_CLASSES)
        for i in range(1, len(names)):
            self.class_combo.addItem(f"{i}: {names[i]}")
        if current in self._class_indices:
            self.class_combo.setCurrentIndex(self._class_indices.index(current))
        self.class_combo.blockSignals(False)

    def current_class(self) -> int | None:
        i = self.class_combo.currentIndex()
        return self._class_indices[i] if 0 <= i < len(self._class_indices) else None

    def set_slice_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Show the slice rows. Rows without a reference (no ``n_ref`` column) but with
        doubt columns are shown most doubtful first; with a reference, as sorted before."""
        has_reference = any("n_ref" in r for r in rows)
        has_doubt = any("mean_entropy" in r for r in rows)
        if not has_reference and has_doubt:
            rows = review.rank_by_doubt(rows)
        self.set_rows(rows)
        available = {c.lower() for c in self.model.columns}
        for i in range(1, self.preset_combo.count()):
            text = review.PRESET_FILTERS[self.preset_combo.itemText(i)]
            usable = review_columns(text) <= available
            item = self.preset_combo.model().item(i)  # type: ignore[attr-defined]
            item.setEnabled(usable)
        if not has_reference and has_doubt and self.model.sort_key is None:
            self.sort_by("low_confidence_voxels", descending=True)

    def slices(self) -> list[int]:
        """Shown slice indices in the shown order."""
        return [int(r["slice"]) for r in self.model.rows]

    def select_slice(self, index: int) -> bool:
        return self.select("slice", index)


def review_columns(text: str) -> frozenset[str]:
    """Columns a filter expression reads."""
    return review.parse_filter(text).columns
