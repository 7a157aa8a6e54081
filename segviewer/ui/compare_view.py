"""Two predictions of one image side by side: linked slice, zoom and crosshair.

:class:`CompareView` is a passive view. It is given the image, the two label maps (whole
volume, image-axis order, e.g. two ``LabelResult.labels``), optionally the reference, and
the display settings (class table, the one set of class visibility flags, opacity,
window/level, view axes); it draws slice ``i`` of A on the left and of B on the right.

* Both panes live in one ``pg.GraphicsLayoutWidget`` with X/Y-linked view boxes: a zoom or
  pan in one is the same in the other. The wheel steps the slice of both
  (``slice_changed``); a click puts the crosshair at the same voxel in both (``clicked``).
* The **disagreement overlay** (``set_disagreement``) draws, over both panes, where A and B
  differ (for one class or for whole labels), coloured by ``core.review.disagreement_map``:
  which one agrees with the reference, or plain "differ" without a reference.
* Below, a table gives each prediction's Dice / IoU against the reference, their difference
  (B - A) and A against B (``core.review.PairComparison.rows``, computed in a worker by the
  caller and handed over with :meth:`set_pair_comparison`).

Rendering follows ``ui.canvas``: one RGBA uint8 image per pane from ``core.overlay.compose``
(:meth:`pane_image` returns it for tests and screenshots).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from segviewer.core import orientation, overlay, review
from segviewer.core.classes import ClassTable
from segviewer.core.orientation import DisplayAxes
from segviewer.core.types import SegviewerError, Volume
from segviewer.ui.case_table import RowsTable

__all__ = ["CompareView", "DIMMED_OPACITY", "DISAGREEMENT_OPACITY"]

#: Class-overlay opacity while the disagreement overlay is shown (at most), and the
#: disagreement colours' own opacity.
DIMMED_OPACITY = 0.2
DISAGREEMENT_OPACITY = 0.85


class _PaneBox(pg.ViewBox):
    """View box of one pane: wheel = slice (ctrl+wheel zooms), left click = crosshair."""

    def __init__(self, owner: CompareView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 (Qt name)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            self._owner.step_slice(1 if delta > 0 else -1)
        ev.accept()

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self._owner.click_at(p.x(), p.y())
        elif ev.double():
            self.autoRange(padding=0.0)


class CompareView(QWidget):
    """Two label maps of one image, side by side (see the module docstring).

    Signals
    -------
    slice_changed(int)
        The shown slice changed (wheel, keys, :meth:`set_slice`).
    clicked(object)
        ``(i0, i1, i2)`` voxel under a click, in image-axis order.
    """

    slice_changed = Signal(int)
    clicked = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self._volume: Volume | None = None
        self._labels: list[np.ndarray | None] = [None, None]
        self._reference: np.ndarray | None = None
        self._names = ["A", "B"]
        self._table: ClassTable | None = None
        self._visible: list[bool] | None = None
        self._opacity = 0.5
        self._window = (0.5, 1.0)
        self._axes: DisplayAxes | None = None
        self._slice = 0
        self._cursor: tuple[int, int, int] | None = None
        self._disagreement = False
        self._dis_class: int | None = None
        self._images: list[np.ndarray | None] = [None, None]

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.boxes: list[_PaneBox] = []
        self.items: list[pg.ImageItem] = []
        self.lines: list[tuple[pg.InfiniteLine, pg.InfiniteLine]] = []
        pen = pg.mkPen((255, 255, 0, 160), width=1)
        for col in range(2):
            box = _PaneBox(self)
            self.graphics.addItem(box, row=0, col=col)
            item = pg.ImageItem(axisOrder="row-major")
            box.addItem(item)
            v = pg.InfiniteLine(angle=90, movable=False, pen=pen)
            h = pg.InfiniteLine(angle=0, movable=False, pen=pen)
            for line in (v, h):
                line.setVisible(False)
                box.addItem(line, ignoreBounds=True)
            self.boxes.append(box)
            self.items.append(item)
            self.lines.append((v, h))
        self.boxes[1].setXLink(self.boxes[0])
        self.boxes[1].setYLink(self.boxes[0])

        self.titles = [QLabel("A"), QLabel("B")]
        for t in self.titles:
            t.setAlignment(Qt.AlignmentFlag.AlignCenter)
            t.setStyleSheet("font-weight: bold")
        self.slice_label = QLabel()
        self.dis_check = QCheckBox("Disagreement")
        self.dis_check.setToolTip(
            "Mark where the two predictions differ, coloured by which one agrees with the reference"
        )
        self.dis_check.toggled.connect(lambda on: self.set_disagreement(on, self._dis_class))
        self.dis_class_combo = QComboBox()
        self.dis_class_combo.setToolTip("Compare whole labels, or one class only")
        self.dis_class_combo.activated.connect(self._dis_class_chosen)
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.hide()
        self.metrics = RowsTable("classes", "e.g. dice_diff < 0")
        self.metrics.class_combo.hide()
        self.metrics.class_label.hide()
        self.metrics.setMaximumHeight(190)

        heads = QHBoxLayout()
        for t in self.titles:
            heads.addWidget(t, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(heads)
        lay.addWidget(self.graphics, 1)
        row = QHBoxLayout()
        row.addWidget(self.slice_label)
        row.addWidget(self.dis_check)
        row.addWidget(self.dis_class_combo)
        row.addStretch(1)
        row.addWidget(self.legend)
        lay.addLayout(row)
        lay.addWidget(self.metrics)

    # -- data ----------------------------------------------------------------------------
    def set_data(
        self,
        volume: Volume,
        labels_a: np.ndarray,
        labels_b: np.ndarray,
        reference: np.ndarray | None = None,
        *,
        names: Sequence[str] = ("A", "B"),
    ) -> None:
        """The image and the two label maps (and reference) on its grid."""
        shape = tuple(volume.shape)
        for what, arr in (("first prediction", labels_a), ("second prediction", labels_b)):
            if tuple(arr.shape) != shape:
                raise SegviewerError(
                    f"the {what}'s labels {tuple(arr.shape)} are not on the image grid {shape}"
                )
        if reference is not None and tuple(reference.shape) != shape:
            raise SegviewerError(
                f"the reference {tuple(reference.shape)} is not on the image grid {shape}"
            )
        self._volume = volume
        self._labels = [labels_a, labels_b]
        self._reference = reference
        self._names = [str(names[0]), str(names[1])]
        if self._axes is None:
            self._axes = orientation.display_axes(volume.affine, "axial")
        self._slice = min(self._slice, self.n_slices() - 1) if self._slice else self.n_slices() // 2
        self.metrics.set_rows([])
        self._update_titles()
        self._render(reset_range=True)

    def set_appearance(
        self,
        table: ClassTable,
        visible: Sequence[bool] | None = None,
        opacity: float = 0.5,
        window: tuple[float, float] | None = None,
    ) -> None:
        """Class colours, the shared visibility flags, overlay opacity and window/level."""
        if self._table is None or len(self._table) != len(table):
            self._table = table
            self._fill_class_combo()
        self._table = table
        self._visible = None if visible is None else list(visible)
        self._opacity = float(opacity)
        if window is not None:
            self._window = (float(window[0]), float(window[1]))
        self._render()

    def set_axes(self, axes: DisplayAxes) -> None:
        """Which view (from ``core.orientation.display_axes``)."""
        changed = axes != self._axes
        self._axes = axes
        if self._volume is not None:
            self._slice = min(self._slice, self.n_slices() - 1)
        self._render(reset_range=changed)

    def set_disagreement(self, on: bool, class_index: int | None = None) -> None:
        """Draw where A and B differ (for ``class_index``, or whole labels when None)."""
        self._disagreement = bool(on)
        self._dis_class = class_index
        self.dis_check.blockSignals(True)
        self.dis_check.setChecked(bool(on))
        self.dis_check.blockSignals(False)
        i = 0 if class_index is None else class_index
        if i < self.dis_class_combo.count():
            self.dis_class_combo.setCurrentIndex(i)
        self._render()

    def _dis_class_chosen(self, index: int) -> None:
        self.set_disagreement(self._disagreement, None if index <= 0 else index)

    def _fill_class_combo(self) -> None:
        combo = self.dis_class_combo
        combo.clear()
        combo.addItem("All labels")
        if self._table is not None:
            for k in range(1, len(self._table)):
                combo.addItem(f"{k}: {self._table.names[k]}")
        combo.setCurrentIndex(
            0 if self._dis_class is None else min(self._dis_class, combo.count() - 1)
        )

    def set_pair_comparison(self, pair: review.PairComparison | None) -> None:
        """Metrics of each prediction vs the reference and of A vs B (from a worker)."""
        if pair is None:
            self.metrics.set_rows([])
            return
        rows = pair.rows()
        if self._table is not None:
            for r in rows:
                k = int(r["class"])
                r["class"] = self._table.names[k] if k < len(self._table) else str(k)
        self.metrics.set_rows(rows[1:] if len(rows) > 1 else rows)
        self._update_titles(pair)

    # -- navigation ----------------------------------------------------------------------
    def n_slices(self) -> int:
        if self._volume is None or self._axes is None:
            return 0
        return orientation.n_slices(self._volume.shape, self._axes)

    @property
    def slice(self) -> int:
        return self._slice

    def set_slice(self, index: int) -> None:
        n = self.n_slices()
        if n == 0:
            return
        index = int(np.clip(index, 0, n - 1))
        if index != self._slice:
            self._slice = index
            self._render()
            self.slice_changed.emit(index)

    def step_slice(self, step: int) -> None:
        self.set_slice(self._slice + step)

    def set_cursor(self, ijk: tuple[int, int, int] | None) -> None:
        """Crosshair at a voxel (image-axis order) in both panes; None hides it."""
        self._cursor = None if ijk is None else (int(ijk[0]), int(ijk[1]), int(ijk[2]))
        self._place_crosshair()

    def click_at(self, x_mm: float, y_mm: float) -> None:
        """A click at scene position (mm) in either pane: crosshair there, ``clicked``."""
        if self._volume is None or self._axes is None:
            return
        ax = self._axes
        rows, cols = orientation.display_shape(self._volume.shape, ax)
        r = int(np.floor(y_mm / ax.row_spacing))
        c = int(np.floor(x_mm / ax.col_spacing))
        if not (0 <= r < rows and 0 <= c < cols):
            return
        ijk = orientation.display_to_voxel(ax, self._slice, r, c, shape=self._volume.shape)
        self.set_cursor(ijk)
        self.clicked.emit(ijk)

    def keyPressEvent(self, ev: Any) -> None:  # noqa: N802
        key = ev.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            self.step_slice(1 if key == Qt.Key.Key_Up else 10)
        elif key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
            self.step_slice(-1 if key == Qt.Key.Key_Down else -10)
        else:
            super().keyPressEvent(ev)

    # -- rendering -----------------------------------------------------------------------
    def pane_image(self, pane: int) -> np.ndarray | None:
        """The ``(rows, cols, 4)`` RGBA image pane 0 (A) or 1 (B) shows."""
        return self._images[pane]

    def disagreement_slice(self) -> np.ndarray | None:
        """``core.review.disagreement_map`` codes of the shown slice (screen order)."""
        la, lb = self._labels
        if self._volume is None or self._axes is None or la is None or lb is None:
            return None
        a, b = (orientation.take_slice(x, self._axes, self._slice) for x in (la, lb))
        ref = (
            None
            if self._reference is None
            else orientation.take_slice(self._reference, self._axes, self._slice)
        )
        n = None if self._table is None else len(self._table)
        return review.disagreement_map(
            np.ascontiguousarray(a),
            np.ascontiguousarray(b),
            None if ref is None else np.ascontiguousarray(ref),
            self._dis_class,
            n_classes=n,
        )

    def _render(self, *, reset_range: bool = False) -> None:
        if self._volume is None or self._axes is None or self._labels[0] is None:
            return
        ax = self._axes
        grey_src = orientation.take_slice(self._volume.data, ax, self._slice)
        grey = overlay.window_to_uint8(np.ascontiguousarray(grey_src), *self._window)
        lut = None
        codes = self.disagreement_slice() if self._disagreement else None
        if self._table is not None:
            # under the disagreement overlay the classes are dimmed, so its colours stand out
            opacity = min(self._opacity, DIMMED_OPACITY) if codes is not None else self._opacity
            lut = overlay.build_lut(self._table, self._visible, opacity)
        dis_lut = review.disagreement_lut(DISAGREEMENT_OPACITY) if codes is not None else None
        rows, cols = grey.shape
        rect = QRectF(0.0, 0.0, cols * ax.col_spacing, rows * ax.row_spacing)
        for pane in range(2):
            labels = self._labels[pane]
            assert labels is not None
            lab = np.ascontiguousarray(orientation.take_slice(labels, ax, self._slice))
            if lut is not None and lab.dtype in (np.uint8, np.uint16):
                rgba = overlay.compose(grey, lab, lut)
            else:
                rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
            if codes is not None and dis_lut is not None:
                _paint_codes(rgba, codes, dis_lut)
            self._images[pane] = rgba
            self.items[pane].setImage(rgba, autoLevels=False)
            self.items[pane].setRect(rect)
        self._rect = rect
        if reset_range:
            self.reset_zoom()
        self.slice_label.setText(f"{ax.view} slice {self._slice} / {self.n_slices() - 1}")
        self._place_crosshair()
        self._update_legend(codes)

    def reset_zoom(self) -> None:
        """Fit the slice in the panes (both: their ranges are linked)."""
        rect = getattr(self, "_rect", None)
        if rect is not None:
            self.boxes[0].setRange(rect, padding=0.0)

    def _place_crosshair(self) -> None:
        ok = self._cursor is not None and self._volume is not None and self._axes is not None
        if ok:
            assert self._cursor is not None and self._volume is not None and self._axes is not None
            ax = self._axes
            _, r, c = orientation.voxel_to_display(ax, self._cursor, shape=self._volume.shape)
            x = (c + 0.5) * ax.col_spacing
            y = (r + 0.5) * ax.row_spacing
        for v, h in self.lines:
            v.setVisible(ok)
            h.setVisible(ok)
            if ok:
                v.setPos(x)
                h.setPos(y)

    def crosshair_positions(self) -> list[tuple[float, float] | None]:
        """``(x_mm, y_mm)`` of the crosshair in each pane (None where hidden)."""
        return [(v.value(), h.value()) if v.isVisible() else None for v, h in self.lines]

    def _update_titles(self, pair: review.PairComparison | None = None) -> None:
        for pane, t in enumerate(self.titles):
            text = self._names[pane]
            comp = None if pair is None else (pair.a_vs_reference, pair.b_vs_reference)[pane]
            if comp is not None:
                text += f" — mean Dice {comp.mean_dice():.3f}"
            t.setText(text)

    def _update_legend(self, codes: np.ndarray | None) -> None:
        if codes is None:
            self.legend.hide()
            return
        shown = (
            (review.DIS_ONLY_A, review.DIS_ONLY_B, review.DIS_NEITHER)
            if self._reference is not None
            else (review.DIS_DIFFER,)
        )
        parts = []
        for code in shown:
            name = review.DISAGREEMENT_NAMES[code]
            name = name.replace("only A", f"only {self._names[0]}").replace(
                "only B", f"only {self._names[1]}"
            )
            rgb = "#{:02x}{:02x}{:02x}".format(*review.DISAGREEMENT_COLORS[code])
            parts.append(f'<span style="color:{rgb}">■</span> {name}')
        self.legend.setText("&nbsp;&nbsp;".join(parts))
        self.legend.show()


def _paint_codes(rgba: np.ndarray, codes: np.ndarray, lut: np.ndarray) -> None:
    """Blend the disagreement colours over an RGBA slice where the code is not 0."""
    where = codes != 0
    if not where.any():
        return
    col = lut[codes[where]]
    a = col[:, 3:4].astype(np.float32) / 255.0
    base = rgba[where][:, :3].astype(np.float32)
    rgba[where, :3] = np.rint(base * (1.0 - a) + col[:, :3] * a).astype(np.uint8)
