"""What the fast slice switch keeps (issue 10, target 1): the texts around the view, the
legend and the picture follow the slice and the class toggles on screen, scrolling never
moves the image, and the view around the frame is the background at any zoom."""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from segviewer.core import orientation, overlay
from segviewer.ui.canvas import qimage_to_array

GREY_MATTER = (0xE6, 0xA2, 0x3C)
WHITE_MATTER = (0x4A, 0xA3, 0xDF)


def _pixels(widget: Any) -> np.ndarray:
    """What the widget shows, (h, w, 4) RGBA."""
    return qimage_to_array(widget.grab().toImage())


def _has_rgb(img: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool(np.all(img[..., :3] == np.array(rgb, np.uint8), axis=-1).any())


def _screen(win: Any, widget: Any) -> np.ndarray:
    """The pixels of ``widget`` in the window's backing store (what a screen shows: pixels
    not painted again keep what was there before)."""
    QApplication.processEvents()
    store = qimage_to_array(win.backingStore().paintDevice())
    top_left = widget.mapTo(win, widget.rect().topLeft())
    dpr = win.devicePixelRatioF()
    x, y = round(top_left.x() * dpr), round(top_left.y() * dpr)
    return store[y : y + round(widget.height() * dpr), x : x + round(widget.width() * dpr)]


def test_slice_texts_follow_the_keys_on_screen(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    c = win.canvas
    c.set_slice(40)
    n = c.n_slices()
    before_info, before_label = _pixels(c._info), _pixels(c.slice_label)
    c.graphics.setFocus()
    qtbot.keyClick(c.graphics, Qt.Key.Key_Up)
    assert c.index == 41
    assert c._info.text() == f"Axial  slice 41 / {n - 1}"
    assert c.slice_label.text() == f"slice 41 / {n - 1}"
    after_info, after_label = _pixels(c._info), _pixels(c.slice_label)
    # the texts are drawn (light pixels on their background) and changed on screen
    assert (after_info[..., :3].max(axis=-1) > 150).sum() > 20
    assert not np.array_equal(before_info, after_info)
    assert not np.array_equal(before_label, after_label)
    qtbot.keyClick(c.graphics, Qt.Key.Key_Down)
    assert c.index == 40
    np.testing.assert_array_equal(_pixels(c._info), before_info)
    np.testing.assert_array_equal(_pixels(c.slice_label), before_label)


def test_legend_follows_the_slice_and_class_toggles_on_screen(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    c = win.canvas
    st = win.state
    assert st.slices.has_slice_counts  # counted in the background: the legend is a lookup
    c.set_slice(52)
    legend = _pixels(c._legend)
    assert c.legend_rows == [2, 1] or c.legend_rows == [1, 2]
    assert _has_rgb(legend, GREY_MATTER) and _has_rgb(legend, WHITE_MATTER)  # the swatches
    assert "white matter" in c._legend.text()
    qtbot.keyClick(win, Qt.Key.Key_2)  # hide white matter
    assert st.visible[2] is False
    hidden = _pixels(c._legend)
    assert c.legend_rows == [1]
    assert _has_rgb(hidden, GREY_MATTER) and not _has_rgb(hidden, WHITE_MATTER)
    assert "white matter" not in c._legend.text()
    qtbot.keyClick(win, Qt.Key.Key_2)
    assert st.visible[2] is True
    np.testing.assert_array_equal(_pixels(c._legend), legend)
    # a slice outside the head: no class, and the legend says so
    c.set_slice(0)
    assert c.legend_rows == [] and "no class here" in c._legend.text()
    assert not _has_rgb(_pixels(c._legend), GREY_MATTER)


def test_frame_on_screen_has_the_class_colours(demo_window: Any) -> None:
    """The view draws Qt's native pixel format; what it shows is the RGBA picture."""
    win = demo_window
    win.state.set_opacity(1.0)
    c = win.canvas
    c.set_slice(52)
    frame = c.frame()
    assert frame is not None
    labels = orientation.take_slice(win.label_result.labels, c.axes, c.index)
    lut = overlay.build_lut(win.state.table, win.state.visible, 1.0)
    np.testing.assert_array_equal(frame, overlay.compose(c._grey, labels, lut))
    shown = c.grab_array()
    for rgb in (GREY_MATTER, WHITE_MATTER):
        assert np.all(frame[..., :3] == np.array(rgb, np.uint8), axis=-1).sum() > 500
        assert np.all(shown[..., :3] == np.array(rgb, np.uint8), axis=-1).sum() > 500


def test_scrolling_at_114_classes_never_moves_the_image(many_window: Any, qtbot: Any) -> None:
    win = many_window
    win.resize(1400, 900)
    win.state.set_layout("axial")
    c = win.canvas
    c.set_slice(20)
    qtbot.wait(20)
    view, legend = c.graphics.geometry(), c._legend.geometry()
    shown_rows = set()
    for i in range(20, c.n_slices() - 20, 3):
        c.set_slice(i)
        QApplication.processEvents()  # a re-layout, if one were asked for, happens here
        assert c.graphics.geometry() == view, i
        assert c._legend.geometry() == legend, i
        shown_rows.add(tuple(c.legend_rows))
        # the legend's box stays inside the room it reserved
        box = c._legend.measure(c._legend.rows())
        assert box.width() <= legend.width() and box.height() <= legend.height()
    assert len(shown_rows) > 3  # the legend did follow the slices


def test_view_around_the_frame_is_the_background_at_any_zoom(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    win.state.set_opacity(1.0)
    c = win.canvas
    c.set_slice(45)
    c.viewbox.scaleBy((0.3, 0.3))  # zoomed in: the frame fills the view
    qtbot.wait(10)
    vp = c.graphics.viewport()
    assert (_screen(win, vp)[..., :3].max(axis=-1) > 0).mean() > 0.5
    c.viewbox.scaleBy((10, 10))  # zoomed out: most of the view is around the frame
    qtbot.wait(10)
    screen = _screen(win, vp)
    f = c.image_item.sceneBoundingRect()
    dpr = win.devicePixelRatioF()  # the screen's pixels per view pixel
    outside = np.ones(screen.shape[:2], bool)
    top, bottom = int(f.top() * dpr), int(np.ceil(f.bottom() * dpr))
    outside[top:bottom, int(f.left() * dpr) : int(np.ceil(f.right() * dpr))] = 0
    assert outside.mean() > 0.5
    # no pixel of the zoomed-in picture is left around the frame
    assert screen[outside][:, :3].max() == 0
    inside = screen[~outside][:, :3]
    assert np.all(inside == np.array(GREY_MATTER, np.uint8), axis=-1).any()
