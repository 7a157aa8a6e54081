"""One slice view: the grey image with the prediction overlay, in a pyqtgraph ViewBox.

Rendering decision (the one place it is made): each slice is blended on the CPU into **one
RGBA uint8 image** (``core.overlay.compose`` through a precomputed (class, grey) table, or a
heatmap blend) and drawn by a single ``ImageItem``. docs/architecture-notes.md records it at 1.2-2 ms
per switch against 2.8-6.9 ms for a grey item plus an indexed overlay item, and it sidesteps
pyqtgraph's levels trap entirely (an RGBA uint8 image is drawn as is, no levels). Hiding a
class, a colour or an opacity change rebuilds the lookup table and re-blends the cached label
slice (well under a millisecond); masks are never recomputed for them. Labels, heatmap values
and grey levels come from ``state.slices`` / ``state.greys`` (``core.slicesource``): slices
of the whole-volume maps once the controller has made them, so a switch costs a lookup and a
blend whatever the number of classes.

Display conventions: rows go down the screen (``invertY``), the image rectangle is sized in
millimetres (so anisotropic voxels keep their true aspect) and views are radiological
(patient right on screen left), which the letters on the canvas edges state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QLinearGradient,
    QPainter,
    QPaintEvent,
)
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from segviewer.core import colours, compare, orientation, overlay
from segviewer.core.types import label_dtype
from segviewer.ui.canvas_texts import LegendRow, LegendWidget, TextLabel
from segviewer.ui.state import Change, ViewerState

__all__ = ["ColorBar", "SliceCanvas", "qimage_to_array"]

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

#: Colour maps of the heatmap displays (names understood by core.overlay.colormap_lut).
HEATMAP_CMAP = {"probability": "inferno", "confidence": "viridis", "entropy": "magma"}
#: "Errors vs reference": false positives and false negatives are drawn in the two colours
#: ``core.colours.error_colors`` picks away from every visible class colour of the table (and
#: from black, white and the reserved magenta), so an error never reads as a class; agreeing
#: voxels (true positives) are drawn as the class's outline only, never as a fill that could
#: be mistaken for an error colour. Errors are drawn at least this opaque whatever the
#: overlay opacity (they must stand out).
ERROR_MIN_ALPHA = 0.75
#: The class legend lists the classes on the shown slice, largest first, and never takes more
#: than LEGEND_MAX_SHARE of the canvas's area nor more than LEGEND_MAX_ROWS class rows; the
#: classes left out are counted in a "+N more" line. Names longer than LEGEND_NAME_CHARS are
#: cut in the middle with "…" (the class panel's tooltips show them whole).
LEGEND_MAX_SHARE = 0.25
LEGEND_MAX_ROWS = 12
LEGEND_NAME_CHARS = 26
#: While a class is highlighted (hovered in the class panel), the other classes are drawn at
#: this fraction of their opacity and the highlighted one at least HIGHLIGHT_MIN_ALPHA opaque.
HIGHLIGHT_DIM = 0.2
HIGHLIGHT_MIN_ALPHA = 0.8


def qimage_to_array(image: QImage) -> np.ndarray:
    """Copy a QImage into an ``(height, width, 4)`` uint8 RGBA array."""
    img = image.convertToFormat(QImage.Format.Format_RGBA8888)
    h, w = img.height(), img.width()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=img.sizeInBytes())
    return buf.reshape(h, img.bytesPerLine())[:, : w * 4].reshape(h, w, 4).copy()


class _FrameItem(pg.ImageItem):
    """The ImageItem of a canvas: its ``(rows, cols, 4)`` uint8 frames hold native
    ``0xAARRGGBB`` pixels (``core.overlay.compose(..., argb32=True)``), handed to Qt as
    ``QImage.Format_RGB32`` without a copy: Qt draws that format without converting it, in
    about half the time of the RGBA bytes pyqtgraph hands it otherwise (0.29 vs 0.61 ms for
    a 512 x 512 frame on a 709 px view)."""

    image: np.ndarray | None  # pyqtgraph's attribute: the frame shown

    def render(self) -> None:
        img = self.image
        if (
            img is None
            or img.ndim != 3
            or img.shape[2] != 4
            or img.dtype != np.uint8
            or not img.flags.c_contiguous
        ):
            super().render()
            return
        self.qimage = pg.functions.ndarray_to_qimage(img, QImage.Format.Format_RGB32)
        # what ImageItem.render sets once its QImage is made
        self._renderRequired = False
        self._unrenderable = False

    def show_frame(self, frame: np.ndarray) -> None:
        """Show ``frame``: a frame of the size shown already (a slice switch) only replaces
        the picture; anything else goes through ``setImage`` (bounds, view, levels)."""
        old = self.image
        if old is None or old.shape != frame.shape or not frame.flags.c_contiguous:
            self.setImage(frame, autoLevels=False)
            return
        self.image = frame
        self.render()
        self.update()

    def paint(self, painter: QPainter, *args: Any) -> None:
        """ImageItem's paint without its profiler, composition mode and border (unused)."""
        if self.image is None:
            return
        if self._renderRequired:
            self.render()
            if self._unrenderable:
                return
        rows, cols = self.image.shape[:2]
        painter.drawImage(QRectF(0, 0, cols, rows), self.qimage)


class _SliceViewBox(pg.ViewBox):
    """ViewBox with the viewer's mouse: wheel = slice, ctrl+wheel = zoom, right-drag = W/L."""

    def __init__(self, canvas: SliceCanvas) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._canvas = canvas
        self._wl_start: tuple[float, float] | None = None

    def wheelEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802 (Qt name)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if delta:
            self._canvas.step_slice(1 if delta > 0 else -1)
        ev.accept()

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802
        if ev.button() != Qt.MouseButton.RightButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        state = self._canvas.state
        if ev.isStart():
            self._wl_start = (state.level, state.width)
        if self._wl_start is None:
            return
        # Drag right widens the window, drag up raises the level (ITK-SNAP / Slicer habit);
        # one screen pixel is a fixed fraction of the starting width so it feels the same
        # for uint8 and 12-bit data.
        d = ev.screenPos() - ev.buttonDownScreenPos()
        level0, width0 = self._wl_start
        scale = max(width0, 1e-6) / 256.0
        state.set_window(level0 - d.y() * scale, max(width0 + d.x() * scale, scale))
        if ev.isFinish():
            self._wl_start = None

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self._canvas.click_at(p.x(), p.y())
        elif ev.double():
            self.autoRange(padding=0.0)


class _GraphicsView(pg.GraphicsView):
    """Forwards slice keys to the canvas (the view takes the focus when clicked)."""

    def __init__(self, canvas: SliceCanvas) -> None:
        super().__init__()
        self._canvas = canvas
        # drawBackground below fills only around the frame: no cached background pixmap
        # blitted over the whole view (under the frame) on every paint
        self.setCacheMode(pg.QtWidgets.QGraphicsView.CacheModeFlag.CacheNone)
        # the frame's whole pixels on the view, and what they were worked out for
        self._inner = QRect()
        self._inner_key: tuple[Any, ...] | None = None

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802
        if not self._canvas.handle_key(ev):
            super().keyPressEvent(ev)

    def drawBackground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        """The background brush around the frame only: the frame is opaque and covers the
        rest (pixels it covers only in part, at its edges, are filled too)."""
        item = self._canvas.image_item
        outer = rect.toAlignedRect()
        brush = self.backgroundBrush()
        inner = QRect()
        if item.image is not None and item.isVisible():
            # worked out again only when the zoom, pan or frame size changed
            key = (item.sceneTransform(), item.image.shape)
            if key != self._inner_key:
                f = item.sceneBoundingRect()
                left, top = math.ceil(f.left()), math.ceil(f.top())
                right, bottom = math.floor(f.right()), math.floor(f.bottom())
                self._inner = QRect(left, top, right - left, bottom - top)
                self._inner_key = key
            inner = self._inner.intersected(outer)
        if not inner.isValid() or inner.isEmpty():
            painter.fillRect(outer, brush)
            return
        x0, y0, x1, y1 = outer.left(), outer.top(), outer.right() + 1, outer.bottom() + 1
        a0, b0, a1, b1 = inner.left(), inner.top(), inner.right() + 1, inner.bottom() + 1
        for x, y, w, h in (
            (x0, y0, x1 - x0, b0 - y0),  # above the frame
            (x0, b1, x1 - x0, y1 - b1),  # below
            (x0, b0, a0 - x0, b1 - b0),  # left of it
            (a1, b0, x1 - a1, b1 - b0),  # right of it
        ):
            if w > 0 and h > 0:
                painter.fillRect(QRect(x, y, w, h), brush)


class ColorBar(QWidget):
    """A vertical colour-bar legend for the heatmap displays: gradient plus end values."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._lut = np.zeros((256, 4), np.uint8)
        self._labels = ("1", "0")
        self._title = ""
        self.setFixedWidth(84)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(84, 220)

    def set_map(self, lut: np.ndarray, vmin: str, vmax: str, title: str) -> None:
        self._lut = np.asarray(lut, np.uint8)
        self._labels = (vmax, vmin)
        self._title = title
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        h = self.height()
        top, bottom = 22, h - 20
        grad = QLinearGradient(0, bottom, 0, top)
        for k in range(0, 256, 15):
            r, g, b = (int(v) for v in self._lut[k, :3])
            grad.setColorAt(k / 255.0, QColor(r, g, b))
        r, g, b = (int(v) for v in self._lut[255, :3])
        grad.setColorAt(1.0, QColor(r, g, b))
        p.fillRect(QRectF(6, top, 16, bottom - top), grad)
        p.setPen(QColor(230, 230, 230))
        p.drawRect(QRectF(6, top, 16, bottom - top))
        p.drawText(QPointF(26, top + 8), self._labels[0])
        p.drawText(QPointF(26, bottom), self._labels[1])
        p.drawText(QPointF(2, 14), self._title)
        p.end()


class SliceCanvas(QWidget):
    """A 2-D view of the volume along one anatomical plane, with overlay, slider and labels.

    The slice shown is the cursor's coordinate along this view's slice axis, so several
    canvases on one :class:`ViewerState` form a linked three-view (clicking in one moves the
    others' slices).

    Signals
    -------
    slice_changed(int)
        The slice index (display order) changed.
    hovered(object)
        The voxel ``(i0, i1, i2)`` under the mouse, or None when it leaves the image.
    rendered()
        A new frame was pushed to the ImageItem (tests and benchmarks wait on it).
    """

    slice_changed = Signal(int)
    hovered = Signal(object)
    rendered = Signal()

    def __init__(self, state: ViewerState, view: str = "axial", parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self._view = view
        self.axes: orientation.DisplayAxes | None = None
        self.index = 0
        self._shape2d = (0, 0)
        self._lut: np.ndarray | None = None
        self._lut_key: tuple[int, int] | None = None
        self._grey: np.ndarray | None = None  # windowed uint8 slice
        self._grey_key: tuple[Any, ...] | None = None
        self._last_hover: tuple[int, int, int] | None = None
        # what the legend and colour bar show, so a slice switch does not rebuild them: the
        # legend's fit (rows, name length, reserved size) for the table, visibility and size
        self._legend_key: tuple[Any, ...] | None = None
        self._legend_fit: tuple[int, int, QSize] = (0, 0, QSize(0, 0))
        self._error_reserve: tuple[tuple[Any, ...], QSize] | None = None
        self.legend_rows: list[int] = []  # the classes the legend lists, in its order
        self._hidden = np.zeros(0, bool)  # classes hidden in the table (counted out)
        self._class_rows: dict[int, LegendRow] = {}  # legend row of each class listed so far
        self._class_rows_key: tuple[int, int, int] | None = None
        self._wl_text_key: tuple[float, float] | None = None
        self._hidden_key: tuple[int, int] | None = None
        self._legend_w = 0  # the legend's reserved width (decides beside / under the image)
        self._colorbar_key: tuple[str, ...] | None = None
        self._error_rgb_key: tuple[int, int] | None = None
        self._error_rgb: tuple[tuple[int, int, int], tuple[int, int, int]] = (
            (255, 64, 32),
            (32, 144, 255),
        )
        self._active = True  # hidden canvases (single-view layout) skip rendering
        self._dirty = False
        self._rect_size: tuple[int, int] = (0, 0)
        self.legend_here = True  # each pane lists the classes of its own slice

        self.graphics = _GraphicsView(self)
        self.graphics.setBackground(QColor(0, 0, 0))
        self.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # the view paints every pixel itself (its background brush, then the frame): Qt
        # need not fill the viewport first (a 0.25 ms fill of ~0.6 Mpx on every switch)
        vp = self.graphics.viewport()
        vp.setAutoFillBackground(False)
        vp.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.viewbox = _SliceViewBox(self)
        self.graphics.setCentralItem(self.viewbox)
        self.image_item = _FrameItem(axisOrder="row-major")
        self.viewbox.addItem(self.image_item)
        pen = pg.mkPen(QColor(255, 220, 0, 160), width=1, style=Qt.PenStyle.DashLine)
        self._vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self._hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self._vline, self._hline):
            line.setZValue(10)
            self.viewbox.addItem(line, ignoreBounds=True)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self._outline_drawn = 0  # outline width (slice pixels) of the frame shown
        self._outline_w = 0  # that of the frame being composed
        self._cross = (0.0, 0.0)  # where the crosshair lines cross (view mm)
        self.viewbox.sigRangeChanged.connect(self._zoomed)

        # The texts around the image sit in their own rows and columns of a grid around the
        # view (not floating on it), so at any pane size none covers another or the image:
        #   info: view and slice
        #               top letter
        #   left letter   image   right letter   | legend / colour bar (wide panes)
        #              bottom letter
        #   W/L
        #   legend (narrow panes)
        style = "color: #ffd75e; font-weight: bold; font-size: 15px;"
        self._letters = {k: QLabel() for k in ("top", "bottom", "left", "right")}
        for lab in self._letters.values():
            lab.setStyleSheet(style)
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
        info_style = "color: #e8e8e8; font-size: 12px;"
        # the slice text changes on every switch: drawn from cached layouts, never
        # re-laying the pane out (canvas_texts); the W/L text changes with the window only
        black = QColor(0, 0, 0)  # the frame's background (canvas_frame below)
        self._info = TextLabel(color=QColor(0xE8, 0xE8, 0xE8), pixel_size=12, background=black)
        self._wl_label = QLabel()
        self._wl_label.setStyleSheet(info_style)
        for text_widget in (self._info, self._wl_label):
            # a long text is cut in a very narrow pane rather than widening it
            text_widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._legend = LegendWidget(surround=black)
        # hovering a legend row highlights its class (as hovering it in the class panel)
        self._legend.setMouseTracking(True)
        self._legend.pointed.connect(self._legend_pointed)
        self._colorbar = ColorBar()
        self._colorbar.setMinimumHeight(80)
        self._colorbar.setMaximumHeight(260)
        frame = QWidget()
        frame.setObjectName("canvas_frame")
        frame.setStyleSheet("#canvas_frame { background: black; }")
        grid = QGridLayout(frame)
        grid.setContentsMargins(4, 2, 4, 2)
        grid.setSpacing(2)
        grid.addWidget(self._info, 0, 0, 1, 4)
        grid.addWidget(self._letters["top"], 1, 1)
        grid.addWidget(self._letters["left"], 2, 0)
        grid.addWidget(self.graphics, 2, 1)
        grid.addWidget(self._letters["right"], 2, 2)
        grid.addWidget(self._letters["bottom"], 3, 1)
        grid.addWidget(self._wl_label, 4, 0, 1, 3)
        self._side = QVBoxLayout()
        self._side.setContentsMargins(0, 0, 0, 0)
        self._side.addWidget(self._colorbar, 0, Qt.AlignmentFlag.AlignTop)
        self._side.addStretch(1)
        grid.addLayout(self._side, 1, 3, 4, 1)
        grid.setColumnStretch(1, 1)
        grid.setRowStretch(2, 1)
        self._grid = grid
        self._legend_beside = True
        self._place_legend()
        self.frame_widget = frame

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.slider.valueChanged.connect(self.set_slice)
        self.slice_label = TextLabel("–")
        self.slice_label.setMinimumWidth(90)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(4, 0, 4, 0)
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.slice_label)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(frame, 1)
        lay.addLayout(bottom)
        self.setMinimumSize(200, 200)

        state.changed.connect(self._state_changed)
        self._state_changed(Change.DATA)

    # -- public ----------------------------------------------------------------------------
    @property
    def view(self) -> str:
        """``"axial"``, ``"coronal"`` or ``"sagittal"``."""
        return self._view

    def set_view(self, view: str) -> None:
        """Show another plane (keeps the cursor, so the same point stays in view)."""
        if view not in orientation.VIEWS:
            from segviewer.core.types import SegviewerError

            raise SegviewerError(
                f"view must be one of {', '.join(orientation.VIEWS)}, got {view!r}"
            )
        if view != self._view:
            self._view = view
            self._dirty = True
            if self._active:
                self._dirty = False
                self._state_changed(Change.DATA)

    def set_active(self, active: bool) -> None:
        """Inactive canvases ignore state changes until re-activated (then redraw fully)."""
        self._active = bool(active)
        if self._active and self._dirty:
            self._dirty = False
            self._state_changed(Change.DATA)

    def n_slices(self) -> int:
        if self.axes is None or self.state.volume is None:
            return 0
        return int(self.state.volume.shape[self.axes.slice_axis])

    def set_slice(self, index: int) -> None:
        """Show slice ``index`` (display order, clipped to the volume)."""
        n = self.n_slices()
        if n == 0 or self.axes is None or self.state.volume is None:
            return
        index = min(max(int(index), 0), n - 1)
        if index == self.index:
            return
        _, row, col = orientation.voxel_to_display(
            self.axes, self.state.cursor, shape=self.state.volume.shape
        )
        ijk = orientation.display_to_voxel(
            self.axes, index, row, col, shape=self.state.volume.shape
        )
        self.state.set_cursor(tuple(int(v) for v in ijk))  # type: ignore[arg-type]

    def step_slice(self, step: int) -> None:
        self.set_slice(self.index + step)

    def handle_key(self, ev: QKeyEvent) -> bool:
        """Arrow keys ±1, PageUp/PageDown ±10, Home/End first/last; returns if handled."""
        key = ev.key()
        n = self.n_slices()
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_PageUp: 10,
            Qt.Key.Key_PageDown: -10,
        }
        if key in steps:
            self.step_slice(steps[key])  # type: ignore[index]
        elif key == Qt.Key.Key_Home:
            self.set_slice(0)
        elif key == Qt.Key.Key_End:
            self.set_slice(n - 1)
        else:
            return False
        return True

    def keyPressEvent(self, ev: QKeyEvent) -> None:  # noqa: N802
        if not self.handle_key(ev):
            super().keyPressEvent(ev)

    def click_at(self, x_mm: float, y_mm: float) -> None:
        """Move the linked cursor to the voxel under view coordinates ``(x, y)`` mm."""
        ijk = self._voxel_at(x_mm, y_mm)
        if ijk is not None:
            self.state.set_cursor(ijk)

    def reset_zoom(self) -> None:
        self.viewbox.autoRange(padding=0.0)

    def label_at(self, ijk: tuple[int, int, int]) -> int | None:
        """Label shown at voxel ``ijk`` if it lies on the current slice (hover readout)."""
        st = self.state
        if self.axes is None or st.volume is None or st.prediction is None:
            return None
        index, row, col = orientation.voxel_to_display(self.axes, ijk, shape=st.volume.shape)
        if index != self.index:
            return None
        return int(self._labels_slice()[row, col])

    def outline_voxels(self) -> int:
        """Outline width in slice pixels for ``state.outline_width`` *screen* pixels at the
        current zoom: the fewest slice pixels at least that wide on screen (never below 1:
        zoomed in, one slice pixel is already wider). Falls back to the state's width when
        the view has no size yet."""
        w = int(self.state.outline_width)
        if self.axes is None:
            return w
        try:
            mm_per_px = float(self.viewbox.viewPixelSize()[0])
        except Exception:  # noqa: BLE001 - a view not laid out yet has no pixel size
            return w
        if not (math.isfinite(mm_per_px) and 0 < mm_per_px < 1e4):
            return w
        return max(1, math.ceil(w * mm_per_px / self.axes.col_spacing - 1e-6))

    def _zoomed(self) -> None:
        """Re-draw when the zoom changes the outline's width in slice pixels."""
        st = self.state
        outlined = st.mode in ("outline", "both") or st.display == "errors"
        width = self.outline_voxels()
        if outlined and width != self._outline_drawn and self._active and st.volume is not None:
            self._render()

    def frame(self) -> np.ndarray | None:
        """The RGBA uint8 ``(rows, cols, 4)`` image currently drawn (None before data)."""
        img = self.image_item.image
        if img is None:
            return None
        # drawn as native 0xAARRGGBB pixels (_FrameItem): back to R, G, B, A bytes
        argb = np.asarray(img).view(np.uint32)[..., 0]
        out = np.empty(argb.shape + (4,), np.uint8)
        out[..., 0] = argb >> 16
        out[..., 1] = argb >> 8
        out[..., 2] = argb
        out[..., 3] = argb >> 24
        return out

    def grab_array(self) -> np.ndarray:
        """The view as the user sees it, ``(height, width, 4)`` uint8 RGBA (screen pixels)."""
        return qimage_to_array(self.graphics.grab().toImage())

    # -- state -> display ------------------------------------------------------------------
    def _state_changed(self, what: Change) -> None:
        st = self.state
        if st.volume is None:
            self.image_item.clear()
            self.axes = None
            return
        if not self._active:
            self._dirty = True
            return
        if what in (Change.DATA, Change.ORIENTATION):
            old_frame = (self.axes, self._shape2d)
            self.axes = orientation.display_axes(
                st.volume.affine, self._view, radiological=st.radiological
            )
            self._grey_key = None
            self._lut_key = None
            rows = st.volume.shape[self.axes.row_axis]
            cols = st.volume.shape[self.axes.col_axis]
            self._shape2d = (rows, cols)
            with signals_blocked(self.slider):
                self.slider.setRange(0, self.n_slices() - 1)
            self._update_letters()
            self.index = -1  # force the render below
            self._rect_size = (0, 0)  # and the millimetre rectangle (spacing may differ)
            self._render()
            # the same image grid as before (the next case of a test set, another prediction
            # of the image): keep the zoom and pan; a new grid or orientation is shown whole
            if what is Change.ORIENTATION or old_frame != (self.axes, self._shape2d):
                self.viewbox.autoRange(padding=0.0)
            return
        if what in (
            Change.LABELS,
            Change.DISPLAY,
            Change.LUT,
            Change.WINDOW,
            Change.CURSOR,
            Change.REFERENCE,
        ):
            self._render()
        if what in (Change.OPTIONS, Change.LAYOUT):
            self._update_overlays()

    def _render(self) -> None:
        st = self.state
        if st.volume is None or self.axes is None:
            return
        index, row, col = orientation.voxel_to_display(self.axes, st.cursor, shape=st.volume.shape)
        index_changed = index != self.index
        self.index = int(index)
        if index_changed:
            was = self.slider.blockSignals(True)  # the slider follows, it does not move us
            self.slider.setValue(self.index)
            self.slider.blockSignals(was)
        rgba = self._compose_slice(argb32=True)
        self._outline_drawn = self._outline_w
        self.image_item.show_frame(rgba)
        if self._rect_size != rgba.shape[:2]:
            # setRect scales by the *current* image's size, so it must follow setImage
            # whenever the slice shape may have changed (new volume, view, orientation).
            rows, cols = rgba.shape[:2]
            self.image_item.setRect(
                QRectF(0, 0, cols * self.axes.col_spacing, rows * self.axes.row_spacing)
            )
            self._rect_size = (rows, cols)
        cs, rs = self.axes.col_spacing, self.axes.row_spacing
        self._cross = ((col + 0.5) * cs, (row + 0.5) * rs)
        self._update_overlays()
        if index_changed:
            self.slice_changed.emit(self.index)
        self.rendered.emit()

    def _compose_slice(self, argb32: bool = False) -> np.ndarray:
        """Grey slice windowed to uint8, blended with the labels or heatmap: RGBA uint8
        (``argb32``: native ``0xAARRGGBB`` pixels, what the view draws)."""
        st = self.state
        assert st.volume is not None and self.axes is not None
        self._outline_w = width = self.outline_voxels()
        gkey = (self.index, st.level, st.width)
        if self._grey is None or gkey != self._grey_key:
            if st.greys is not None:
                self._grey = st.greys.grey(self.axes, self.index, st.level, st.width)
            else:
                sl = orientation.take_slice(st.volume.data, self.axes, self.index)
                self._grey = overlay.window_to_uint8(sl, st.level, st.width)
            self._grey_key = gkey
        grey = self._grey
        pred = st.prediction
        if pred is None or st.table is None:
            out = np.empty(grey.shape + (4,), np.uint8)
            out[..., :3] = grey[..., None]
            out[..., 3] = 255
            return out
        if st.display == "errors" and st.reference is not None:
            codes = self._error_slice()
            # agreement is drawn as its outline only: interior true positives are cleared
            tp = (codes == compare.ERROR_TP).view(np.uint8)
            edge = overlay.outline(tp, width)
            codes = np.where((tp == 1) & (edge == 0), np.uint8(0), codes).astype(codes.dtype)
            return overlay.compose(grey, codes, self._error_lut(), mode="fill", argb32=argb32)
        if st.display in ("labels", "errors"):
            labels = self._labels_slice()
            return overlay.compose(
                grey,
                labels,
                self._current_lut(),
                mode=st.mode,
                outline_width=width,
                argb32=argb32,
            )
        # Heatmap over the anatomy, blended at the overlay opacity so the anatomy stays
        # readable underneath (a heatmap alone hides where in the brain one is); one table
        # lookup per pixel, invalid (NaN) voxels show the anatomy alone. Confidence and
        # entropy are drawn inside the predicted foreground only (by default): confident
        # background would otherwise tint the whole head.
        values = self._stat_slice()
        if st.display in ("confidence", "entropy") and st.heat_foreground_only:
            values = np.where(self._labels_slice() == 0, np.float32(np.nan), values)
        vmin, vmax = self.stat_range()
        return overlay.compose_heatmap(
            grey, values, vmin, vmax, HEATMAP_CMAP[st.display], opacity=st.opacity, argb32=argb32
        )

    def _labels_slice(self) -> np.ndarray:
        """This slice's labels: a lookup into the whole-volume labels once they are in,
        else computed for this slice alone (``core.slicesource.SliceSource``)."""
        st = self.state
        assert st.slices is not None and self.axes is not None
        return st.slices.labels(self.axes, self.index)

    def _error_slice(self) -> np.ndarray:
        """``core.compare.error_map`` codes of this slice: labels against the reference."""
        st = self.state
        assert st.reference is not None and self.axes is not None
        ref = orientation.take_slice(st.reference, self.axes, self.index)
        return compare.error_map(
            self._labels_slice(), ref, st.error_class, n_classes=st.n_classes()
        )

    def error_rgb(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """``(fp_rgb, fn_rgb)``: the errors view's colours, away from every visible class
        colour of the table (``core.colours.error_colors``); recomputed when colours change."""
        st = self.state
        if st.table is None:
            return self._error_rgb
        key = (id(st.table), st.lut_version)
        if key != self._error_rgb_key:
            shown = [c.color for c in st.table.classes if c.index > 0 and st.visible[c.index]]
            self._error_rgb = colours.error_colors(shown or [c.color for c in st.table.classes])
            self._error_rgb_key = key
        return self._error_rgb

    def _error_lut(self) -> np.ndarray:
        """``(256, 4)`` RGBA for error codes: TP the class colour (opaque, drawn on the
        agreement's outline only), FP and FN in :meth:`error_rgb`."""
        st = self.state
        fp_rgb, fn_rgb = self.error_rgb()
        lut = np.zeros((256, 4), np.uint8)
        strong = round(255 * max(st.opacity, ERROR_MIN_ALPHA))
        lut[compare.ERROR_FP] = (*fp_rgb, strong)
        k = st.error_class
        if k is not None and st.table is not None:
            lut[compare.ERROR_TP] = (*st.table[k].color, 255)
            lut[compare.ERROR_FN] = (*fn_rgb, strong)
        return lut

    def error_count_here(self) -> int | None:
        """Errors of the selected class (or all disagreements) on the shown slice, from the
        worker's per-slice counts; None before a comparison exists."""
        counts = self.slice_error_counts()
        return None if counts is None or self.index >= len(counts) else int(counts[self.index])

    def slice_error_counts(self) -> np.ndarray | None:
        """Errors per slice of this view for ``state.error_class`` (``(n_slices,)`` int64,
        index = slice index), or None before a comparison exists."""
        st = self.state
        if st.error_counts is None or self.axes is None:
            return None
        per_axis = st.error_counts[self.axes.slice_axis]
        row = per_axis.shape[0] - 1 if st.error_class is None else st.error_class
        if row >= per_axis.shape[0]:
            return None
        return np.asarray(per_axis[row])

    def _stat_slice(self) -> np.ndarray:
        """This slice's heatmap values (normalised): a lookup into the whole-volume map once
        the controller has computed it, else computed for this slice alone."""
        st = self.state
        assert st.slices is not None and self.axes is not None
        cls = st.display_class if st.display == "probability" else None
        return st.slices.stat(self.axes, self.index, st.display, cls, True)

    def stat_range(self) -> tuple[float, float]:
        """The heatmap's colour range, scaled for the class count C: probability 0..1;
        confidence (the top probability) 1/C..1, its possible range; entropy / ln C from 0
        to that of a four-way tie, ln 4 / ln C (capped at 1), so that at 114 classes a
        two-way tie (0.15) is not drawn near black."""
        st = self.state
        n = max(st.n_classes(), 2)
        if st.display == "confidence":
            return 1.0 / n, 1.0
        if st.display == "entropy":
            return 0.0, min(1.0, math.log(4) / math.log(n))
        return 0.0, 1.0

    def _current_lut(self) -> np.ndarray:
        st = self.state
        assert st.table is not None and st.prediction is not None
        size = 256 if label_dtype(st.prediction.n_classes) == np.uint8 else 65536
        key = (st.lut_version, size)
        if self._lut is None or key != self._lut_key:
            lut = overlay.build_lut(st.table, st.visible, st.opacity, size)
            k = st.highlight
            if k is not None and 0 < k < len(st.table) and st.visible[k]:
                n = len(st.table)
                lut[1:n, 3] = np.round(lut[1:n, 3] * HIGHLIGHT_DIM).astype(np.uint8)
                lut[k, 3] = round(255 * max(st.opacity, HIGHLIGHT_MIN_ALPHA))
            self._lut = lut
            self._lut_key = key
        return self._lut

    # -- overlays (letters, info, legend, colour bar) --------------------------------------
    def _update_letters(self) -> None:
        vol, axes = self.state.volume, self.axes
        if vol is None or axes is None:
            return
        if not orientation.orientation_known(vol):
            # no patient directions in the file: no letters (the toolbar says so)
            for lab in self._letters.values():
                lab.setText("")
            return
        letters = orientation.edge_letters(vol.affine, axes)
        for k, lab in self._letters.items():
            lab.setText(letters[k])

    def _update_overlays(self) -> None:
        st = self.state
        n = self.n_slices()
        # 0-based like voxel indices, --slice and Viewer.set_slice: "index / last index"
        self.slice_label.setText(f"slice {self.index} / {n - 1}" if n else "–")
        self._info.setText(f"{self._view.capitalize()}  slice {self.index} / {n - 1}")
        if self._wl_text_key != (st.width, st.level):  # a slice switch leaves it alone
            self._wl_label.setText(f"W {st.width:.4g}  L {st.level:.4g}")
            self._wl_text_key = (st.width, st.level)
        drawn = st.crosshair_drawn()
        if drawn:  # a hidden crosshair is not moved (pyqtgraph's setPos is not free)
            self._vline.setPos(self._cross[0])
            self._hline.setPos(self._cross[1])
        self._vline.setVisible(drawn)
        self._hline.setVisible(drawn)
        has_pred = st.prediction is not None and st.table is not None
        errors = has_pred and st.display == "errors" and st.reference is not None
        heat = has_pred and st.display not in ("labels", "errors")
        if heat:
            where = " (in prediction)" if st.heat_foreground_only else ""
            titles = {
                "probability": f"P({st.table[st.display_class].name})" if st.table else "P",
                "confidence": "confidence" + where,
                "entropy": f"entropy/ln {st.n_classes()}" + where,
            }
            vmin, vmax = self.stat_range()
            top = f"≥{vmax:.2g}" if st.display == "entropy" and vmax < 1.0 else f"{vmax:.2g}"
            bar = (st.display, f"{vmin:.2g}", top, titles[st.display])
            if bar != self._colorbar_key:  # a slice switch leaves the colour bar alone
                self._colorbar.set_map(
                    overlay.colormap_lut(HEATMAP_CMAP[st.display]), bar[1], bar[2], bar[3]
                )
                self._colorbar_key = bar
        self._colorbar.setVisible(heat)
        show_legend = has_pred and st.show_legend and not heat and self.legend_here
        if show_legend and errors and st.table is not None:
            rows = self._error_legend()
            # room for the longest count seen (grows, never shrinks, while the errors shown
            # are the same), so paging through slices does not move the image
            ekey = (id(st.table), st.lut_version, st.error_class, self.width(), self.height())
            need = self._legend.measure(rows)
            if self._error_reserve is not None and self._error_reserve[0] == ekey:
                need = need.expandedTo(self._error_reserve[1])
            self._error_reserve = (ekey, need)
            self._legend.set_rows(rows, need)
            self._legend_w = need.width()
        elif show_legend and st.table is not None:
            present = self.classes_on_slice()
            key = (id(st.table), st.lut_version, self.width(), self.height())
            if key != self._legend_key:  # fitted again when the table, colours or size change
                self._legend_fit = self._fit_legend()
                self._legend_key = key
            n_rows, chars, reserve = self._legend_fit
            self.legend_rows = present[:n_rows]
            self._legend.set_rows(self._legend_lines(present, n_rows, chars), reserve)
            self._legend_w = reserve.width()
        self._legend.setVisible(show_legend)
        self._place_legend()

    def classes_on_slice(self) -> list[int]:
        """Visible classes (not background) on the shown slice, largest area first."""
        st = self.state
        if st.slices is None or st.table is None or self.axes is None or self.index < 0:
            return []
        n = len(st.table)
        # a row of the per-slice counts once the controller has made them, else counted here
        counts = np.zeros(n, np.int64)
        got = st.slices.class_counts(self.axes, self.index)[:n]
        counts[: got.size] = got
        counts[0] = 0
        if self._hidden_key != (id(st.table), st.lut_version):
            self._hidden = ~np.asarray(st.visible, bool)[:n]
            self._hidden_key = (id(st.table), st.lut_version)
        counts[: self._hidden.size][self._hidden] = 0
        present = np.flatnonzero(counts)
        return present[np.argsort(-counts[present], kind="stable")].tolist()

    def _class_row(self, k: int, chars: int) -> LegendRow:
        st = self.state
        assert st.table is not None
        info = st.table[k]
        name = info.name
        if len(name) > chars:  # cut in the middle: both ends of a name tell classes apart
            tail = max((chars - 1) // 3, 1)
            name = name[: max(chars - 1 - tail, 1)] + "…" + name[-tail:]
        return LegendRow(name, info.color, bold=st.highlight == k)

    def _legend_lines(self, present: list[int], rows: int, chars: int) -> list[LegendRow]:
        st = self.state
        key = (id(st.table), st.lut_version, chars)
        if key != self._class_rows_key:  # the rows of the classes, made once per table look
            self._class_rows.clear()
            self._class_rows_key = key
        made = self._class_rows
        lines = [
            made.get(k) or made.setdefault(k, self._class_row(k, chars)) for k in present[:rows]
        ]
        if len(present) > rows:
            lines.append(LegendRow(f"+{len(present) - rows} more"))
        if not present:
            lines.append(LegendRow("(no class here)"))
        return lines

    def _fit_legend(self) -> tuple[int, int, QSize]:
        """``(rows, name length, size)``: as many class rows (and as long names) as fit the
        legend's share of the canvas (at most LEGEND_MAX_SHARE of the area, 60 % of the
        height, 90 % of the width) when every visible class is on the slice, and the size
        that holds any slice's legend then, so a slice switch never re-lays the pane out."""
        st = self.state
        assert st.table is not None
        w, h = max(self.width(), 1), max(self.height(), 1)
        budget = LEGEND_MAX_SHARE * w * h
        visible = [k for k in range(1, len(st.table)) if st.visible[k]]
        rows = min(len(visible), LEGEND_MAX_ROWS)
        chars = LEGEND_NAME_CHARS
        empty = LegendRow("(no class here)")
        while True:
            lines = [self._class_row(k, chars) for k in visible]
            width = max((self._legend.row_width(r) for r in [*lines, empty]), default=0.0)
            if len(visible) > rows:
                width = max(width, self._legend.row_width(LegendRow(f"+{len(visible)} more")))
            n_lines = max(rows + (1 if len(visible) > rows else 0), 1)
            pad = 2 * LegendWidget.PAD
            size = QSize(math.ceil(width) + pad, n_lines * self._legend.line_height + pad)
            fits = size.width() * size.height() <= budget and size.height() <= 0.6 * h
            if size.width() > 0.9 * w and chars > 8:
                chars -= 2
                continue
            if fits or rows == 0:
                return rows, chars, size
            rows -= 1

    def _error_legend(self) -> list[LegendRow]:
        """What the "errors vs reference" colours mean, and the errors on this slice."""
        st = self.state
        assert st.table is not None
        fp_rgb, fn_rgb = self.error_rgb()
        k = st.error_class
        if k is None:
            rows = [
                LegendRow("Errors vs reference: all classes", bold=True),
                LegendRow("prediction ≠ reference", fp_rgb),
            ]
        else:
            name = st.table[k].name
            rows = [
                LegendRow(f"Errors vs reference: {name}", bold=True),
                LegendRow(f"outline: {name} in both (agree)", st.table[k].color, hollow=True),
                LegendRow("false positive (predicted only)", fp_rgb),
                LegendRow("false negative (reference only)", fn_rgb),
            ]
        n = self.error_count_here()
        if n is not None:
            rows.append(LegendRow(f"{n:,} error voxels on this slice (E / Shift+E: worst slices)"))
        return rows

    def overlay_widgets(self) -> list[QWidget]:
        """The texts and colour bar drawn around the image (visible or not)."""
        return [
            *self._letters.values(),
            self._info,
            self._wl_label,
            self._legend,
            self._colorbar,
        ]

    def _place_legend(self) -> None:
        """Beside the image in a wide pane; under it, across the pane, in a narrow one (the
        legend is never drawn over the image or another text)."""
        beside = self.width() >= 3 * max(self._legend_w, 120)
        if beside == self._legend_beside and self._legend.parent() is not None:
            return
        self._legend_beside = beside
        self._grid.removeWidget(self._legend)
        self._side.removeWidget(self._legend)
        if beside:
            self._side.insertWidget(0, self._legend, 0, Qt.AlignmentFlag.AlignTop)
        else:
            self._grid.addWidget(self._legend, 5, 0, 1, 4, Qt.AlignmentFlag.AlignLeft)

    def legend_row_at(self, y: float) -> int | None:
        """The class of the legend row at height ``y`` (legend coordinates), or None."""
        st = self.state
        if not self.legend_rows or st.display != "labels":
            return None
        row = self._legend.row_at(y)
        return self.legend_rows[row] if row is not None and row < len(self.legend_rows) else None

    def _legend_pointed(self, y: float | None) -> None:
        """The mouse moved over the legend (``y``, legend coordinates) or left it (None)."""
        k = None if y is None else self.legend_row_at(y)
        if k != self.state.highlight:
            self.state.set_highlight(k)

    def resizeEvent(self, ev: Any) -> None:  # noqa: N802
        super().resizeEvent(ev)
        if self._active and self.axes is not None:
            self._update_overlays()  # the legend's share follows the pane's size
        else:
            self._place_legend()

    def showEvent(self, ev: Any) -> None:  # noqa: N802
        super().showEvent(ev)
        self._place_legend()
        self.reset_zoom()

    # -- mouse -----------------------------------------------------------------------------
    def _voxel_at(self, x_mm: float, y_mm: float) -> tuple[int, int, int] | None:
        if self.axes is None or self.state.volume is None:
            return None
        col = math.floor(x_mm / self.axes.col_spacing)
        row = math.floor(y_mm / self.axes.row_spacing)
        rows, cols = self._shape2d
        if not (0 <= row < rows and 0 <= col < cols):
            return None
        ijk = orientation.display_to_voxel(
            self.axes, self.index, row, col, shape=self.state.volume.shape
        )
        return (int(ijk[0]), int(ijk[1]), int(ijk[2]))

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        p = self.viewbox.mapSceneToView(scene_pos)
        ijk = self._voxel_at(p.x(), p.y())
        if ijk != self._last_hover:
            self._last_hover = ijk
            self.hovered.emit(ijk)
