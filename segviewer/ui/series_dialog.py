"""Pick one DICOM series when a folder holds several (as ITK-SNAP's and Slicer's DICOM
browsers do): a table of the series with what a reviewer recognises them by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["SeriesDialog", "series_rows"]

COLUMNS = (
    "#",
    "Description",
    "Modality",
    "Series no.",
    "Files",
    "Shape (slices x rows x cols)",
    "Volumes",
)


def series_rows(series: Sequence[Any]) -> list[tuple[str, ...]]:
    """Table text for each :class:`segviewer.io.dicom.SeriesInfo`, in :data:`COLUMNS` order."""
    rows: list[tuple[str, ...]] = []
    for s in series:
        rows.append(
            (
                str(s.number),
                s.description or "(no description)",
                s.modality or "?",
                "" if s.series_number is None else str(s.series_number),
                str(s.n_files),
                " x ".join(str(int(n)) for n in s.shape),
                str(getattr(s, "n_frames", 1)),
            )
        )
    return rows


class SeriesDialog(QDialog):
    """Modal list of the series in ``folder``; :meth:`chosen_uid` after ``exec()``.

    The first series is preselected; double-click or OK opens it.
    """

    def __init__(self, folder: str, series: Sequence[Any], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Choose a DICOM series")
        self._series = list(series)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(f"{folder} holds {len(self._series)} image series. Which one should open?")
        )
        self.table = QTableWidget(len(self._series), len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        for r, row in enumerate(series_rows(self._series)):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                item.setToolTip(f"SeriesInstanceUID {self._series[r].uid}")
                if c in (0, 3, 4, 6):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(r, c, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        if self._series:
            self.table.selectRow(0)
        self.table.doubleClicked.connect(lambda _index: self.accept())
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(760, 160 + 28 * min(len(self._series), 10))

    def chosen_uid(self) -> str | None:
        """SeriesInstanceUID of the selected row (``None`` when nothing is selected)."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return str(self._series[rows[0].row()].uid)
