"""Readable at many classes: the legend follows the slice and stays inside its share of every
pane, hovering a class highlights it, the class panel's names stay readable (issue 12)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from ui_helpers import many_class_case, wait_idle

from segviewer.core import orientation
from segviewer.ui.canvas import LEGEND_MAX_ROWS, LEGEND_MAX_SHARE


def _rect(w: Any, canvas: Any) -> QRect:
    return QRect(w.mapTo(canvas, w.rect().topLeft()), w.size())


def _on_slice(canvas: Any, labels: np.ndarray) -> list[int]:
    """Classes on the canvas's slice from the whole-volume labels, largest first."""
    sl = orientation.take_slice(labels, canvas.axes, canvas.index)
    counts = np.bincount(sl.ravel(), minlength=256)
    counts[0] = 0
    order = np.argsort(-counts, kind="stable")
    return [int(k) for k in order if counts[k] > 0]


def _check_legends(win: Any, labels: np.ndarray) -> int:
    checked = 0
    for canvas in win.canvases:
        if not canvas.isVisible():
            continue
        legend = canvas._legend
        assert legend.isVisible(), canvas.view
        present = _on_slice(canvas, labels)
        rows = canvas.legend_rows
        assert rows == present[: len(rows)], (canvas.view, rows, present)
        assert 1 <= len(rows) <= LEGEND_MAX_ROWS or not present
        text = legend.text()
        names = win.state.table.names
        for k in rows:
            assert names[k][:8] in text and names[k][-4:].replace("(", "") in text
        left_out = len(present) - len(rows)
        assert (f"+{left_out} more" in text) == (left_out > 0), (canvas.view, left_out)
        r = _rect(legend, canvas)
        assert canvas.rect().contains(r), (canvas.view, r, canvas.rect())
        area = canvas.width() * canvas.height()
        assert r.width() * r.height() <= LEGEND_MAX_SHARE * area + 1, (canvas.view, r)
        checked += 1
    return checked


@pytest.mark.parametrize("size", [(1000, 700), (1400, 900)])
def test_legend_lists_the_classes_on_the_slice_within_its_share(
    demo_window: Any, qtbot: Any, size: tuple[int, int]
) -> None:
    win = demo_window
    win.resize(*size)
    labels = win.label_result.labels
    win.state.set_layout("three")
    qtbot.wait(20)
    assert _check_legends(win, labels) == 3
    # a slice at the edge of the head: fewer classes, and the legend follows it
    win.canvases[0].set_slice(5)
    qtbot.wait(10)
    assert _check_legends(win, labels) == 3
    win.state.set_layout("axial")
    qtbot.wait(10)
    win.canvas.set_slice(52)
    assert _check_legends(win, labels) == 1


@pytest.mark.parametrize("size", [(1000, 700), (1600, 1000)])
def test_legend_at_114_classes_in_all_three_panes(
    many_window: Any, qtbot: Any, size: tuple[int, int]
) -> None:
    win = many_window
    win.resize(*size)
    labels = win.label_result.labels
    for layout in ("three", "axial", "coronal"):
        win.state.set_layout(layout)
        qtbot.wait(20)
        for canvas in win.canvases:
            if canvas.isVisible():
                canvas.set_slice(canvas.n_slices() // 2)
        qtbot.wait(10)
        assert _check_legends(win, labels) >= 1
        shown = [c for c in win.canvases if c.isVisible()]
        # the middle axial slice holds more classes than fit: "+N more" is there (a coronal
        # slice crosses one band of regions: few classes)
        assert layout == "coronal" or any(
            len(_on_slice(c, labels)) > len(c.legend_rows) for c in shown
        )
        assert all(c.legend_rows for c in shown)


def test_hovering_a_class_row_highlights_it_on_the_canvas(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    canvas = win.canvas
    canvas.set_slice(52)
    st = win.state
    before = canvas._compose_slice().copy()
    labels = orientation.take_slice(win.label_result.labels, canvas.axes, canvas.index)
    grey = canvas._grey.astype(int)
    panel = win.class_panel
    panel.table.cellEntered.emit(1, 2)  # the mouse enters row 1 (grey matter)
    assert st.highlight == 1
    after = canvas._compose_slice()
    other = labels == 2
    hl = labels == 1
    # white matter pulled towards the anatomy, grey matter drawn more strongly
    d_before = np.abs(before[other, :3].astype(int) - grey[other, None]).mean()
    d_after = np.abs(after[other, :3].astype(int) - grey[other, None]).mean()
    assert d_after < 0.5 * d_before, (d_before, d_after)
    g_before = np.abs(before[hl, :3].astype(int) - grey[hl, None]).mean()
    g_after = np.abs(after[hl, :3].astype(int) - grey[hl, None]).mean()
    assert g_after > g_before
    # leaving the table ends the highlight
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    QApplication.sendEvent(panel.table.viewport(), QEvent(QEvent.Type.Leave))
    assert st.highlight is None
    assert np.array_equal(canvas._compose_slice(), before)


def test_class_panel_at_114_classes_names_readable_search_sort_type_to_find(
    many_window: Any, qtbot: Any
) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QFontMetrics

    from segviewer.ui.class_panel import COL_NAME

    win = many_window
    win.resize(1400, 900)
    qtbot.wait(20)
    panel = win.class_panel
    table = panel.table
    names = win.state.table.names
    assert table.rowCount() == 114 and not table.wordWrap()
    width = table.columnWidth(COL_NAME) - 8  # the cell's text margins
    fm = QFontMetrics(table.font())
    one_line = fm.height() * 1.5
    for row in range(table.rowCount()):
        k = panel.class_at(row)
        item = table.item(row, COL_NAME)
        assert item.toolTip() == f"{k}: {names[k]}"
        assert table.textElideMode() == Qt.TextElideMode.ElideMiddle
        shown = fm.elidedText(item.text(), Qt.TextElideMode.ElideMiddle, width)
        # never the index alone: the index, the name's first 4 characters and its end show
        assert shown.startswith(f"{k}  {names[k][:4]}"), (k, shown, width)
        assert shown.endswith(names[k][-4:]), (k, shown, width)
        assert table.rowHeight(row) <= one_line
    # search: "region 7" finds classes 7 and 70..79 (names say "region k")
    panel.search.setText("region 7 ")
    assert panel.matches() == [7]
    panel.search.setText("white matter")
    found = panel.matches()
    assert found and all("white matter" in names[k] for k in found)
    assert len(found) == sum("white matter" in n for n in names)
    panel.search.clear()
    assert len(panel.matches()) == 114
    # sort by volume (largest first, background kept on top) and by name
    counts = win.label_result.counts
    panel.set_sort("volume")
    order = [panel.class_at(r) for r in range(114)]
    assert order[0] == 0
    vols = [int(counts[k]) for k in order[1:]]
    assert vols == sorted(vols, reverse=True)
    assert panel.row_text(order[1])[1] == f"{int(counts[order[1]]):,}"
    panel.sort_combo.setCurrentIndex(1)  # by name
    assert panel.sort_key == "name"
    order = [panel.class_at(r) for r in range(1, 114)]
    assert [names[k].casefold() for k in order] == sorted(n.casefold() for n in names[1:])
    # the checkbox of a sorted row toggles its own class
    row = panel.row_of(50)
    table.item(row, 0).setCheckState(Qt.CheckState.Unchecked)
    assert win.state.visible[50] is False and win.state.visible[row] is True or row == 50
    win.state.set_visible(50, True)
    panel.set_sort("index")
    # type-to-find: letters typed in the list go to the search box; Enter toggles the match
    table.setFocus()
    for ch in "region 42 ":
        qtbot.keyClick(table if not panel.search.hasFocus() else panel.search, ch)
    assert panel.search.text() == "region 42 "
    assert panel.matches() == [42]
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)
    assert win.state.visible[42] is False


def test_heatmaps_inside_the_prediction_scaled_for_the_class_count(
    demo_window: Any, qtbot: Any
) -> None:
    import math

    from segviewer.core.layout import detect_layout
    from segviewer.core.types import Prediction, PredictionKind, Volume

    win = demo_window
    st = win.state
    # a 114-class probability map on the demo at half resolution (8-bit like the demo's):
    # each voxel 200/255 on its class, 55/255 on the next one; background certain
    many, table = many_class_case(win.label_result.labels)
    labels = np.asarray(many.data)[::2, ::2, ::2]
    vol = st.volume
    affine = vol.affine.copy()
    affine[:3, :3] *= 2
    win.set_image(Volume(np.ascontiguousarray(vol.data[::2, ::2, ::2]), affine))
    prob = np.zeros((*labels.shape, 114), np.uint8)
    ii = np.indices(labels.shape)
    fg = labels > 0
    prob[(*ii[:, fg], labels[fg])] = 200
    prob[(*ii[:, fg], labels[fg] % 113 + 1)] = 55
    prob[(*ii[:, ~fg], np.zeros(int((~fg).sum()), int))] = 255
    layout = detect_layout(prob.shape, labels.shape)
    pred = Prediction(prob, PredictionKind.PROBABILITIES, layout, 114, source="<114 probs>")
    with qtbot.waitSignal(win.labels_ready, timeout=30_000):
        win.set_prediction(pred, table=table)
    wait_idle(qtbot, win)
    assert st.n_classes() == 114
    c = win.canvas
    c.set_slice(24)
    labels = orientation.take_slice(win.label_result.labels, c.axes, c.index)
    st.set_opacity(1.0)
    st.set_display("confidence")
    frame = np.asarray(c._compose_slice())
    grey = c._grey
    bg = labels == 0
    assert bg.any() and (~bg).any()
    # background shows the anatomy alone; the prediction is coloured
    assert np.array_equal(frame[bg, 0], grey[bg]) and np.array_equal(frame[bg, 2], grey[bg])
    assert np.abs(frame[~bg, :3].astype(int) - grey[~bg, None]).mean() > 20
    # the colour bar states the range: confidence runs from 1/C to 1
    assert c.stat_range() == (1 / 114, 1.0)
    assert c._colorbar._labels == ("1", f"{1 / 114:.2g}")
    assert "in prediction" in c._colorbar._title
    # switched off: the background is coloured too
    win.overlay_controls.heat_fg_check.setChecked(False)
    assert st.heat_foreground_only is False
    frame2 = np.asarray(c._compose_slice())
    assert np.abs(frame2[bg, :3].astype(int) - grey[bg, None]).mean() > 20
    win.overlay_controls.heat_fg_check.setChecked(True)
    # entropy / ln C up to a four-way tie: a two-way tie is a third of the scale, not 15 %
    st.set_display("entropy")
    lo, hi = c.stat_range()
    assert lo == 0.0 and hi == pytest.approx(math.log(4) / math.log(114))
    assert c._colorbar._labels[0] == f"≥{hi:.2g}" and c._colorbar._title.startswith(
        "entropy/ln 114"
    )


def test_report_pictures_from_the_window(demo_window: Any, qtbot: Any, tmp_path: Any) -> None:
    from PIL import Image

    from segviewer.io.render import every_nth_slice

    win = demo_window
    win.show_dialogs = False
    win.state.set_cursor((49, 58, 47))
    dlg = win.show_picture_dialog()
    # one slice, rescaled to 800 px wide at 300 dpi
    dlg.path_edit.setText(str(tmp_path / "slice.png"))
    dlg.width_spin.setValue(800)
    path = dlg.save()
    assert path is not None
    with Image.open(path) as im:
        assert im.size[0] == 800 and round(im.info["dpi"][0]) == 300
    # natural size: the same picture as io.render draws for the slice at the cursor
    dlg.width_spin.setValue(0)
    direct = win.controller.report_picture("slice", view="axial")
    assert direct.shape[1] > 512  # enlarged slice + margins + legend
    # three views at the crosshair, as PDF
    dlg.kind_combo.setCurrentIndex(1)
    assert not dlg.view_combo.isEnabled()
    dlg.path_edit.setText(str(tmp_path / "three.pdf"))
    assert dlg.save() is not None
    assert (tmp_path / "three.pdf").read_bytes()[:5] == b"%PDF-"
    three = win.controller.report_picture("three")
    assert three.shape[1] > 3 * 300  # three annotated views side by side
    # lightbox: every 10th slice holding a class
    dlg.kind_combo.setCurrentIndex(2)
    dlg.every_spin.setValue(10)
    dlg.path_edit.setText(str(tmp_path / "lightbox.png"))
    assert dlg.save() is not None
    axes = win.canvas.axes
    slices = every_nth_slice(win.label_result.labels, axes, 10)
    assert 5 <= len(slices) <= 12 and slices == sorted(slices)
    # the K worst slices need a reference: refused with a message, nothing written
    dlg.kind_combo.setCurrentIndex(3)
    dlg.path_edit.setText(str(tmp_path / "worst.png"))
    assert dlg.save() is None and not (tmp_path / "worst.png").exists()
    assert "reference" in win.statusBar().currentMessage()
    ref = np.roll(win.label_result.labels, 2, axis=1)
    win.set_reference(ref, source="<shifted>")
    wait_idle(qtbot, win)
    dlg.worst_spin.setValue(4)
    assert dlg.save() is not None
    assert (tmp_path / "worst.png").stat().st_size > 1000


def test_outline_width_is_in_screen_pixels(demo_window: Any, qtbot: Any) -> None:
    import math

    from segviewer.core import overlay

    win = demo_window
    win.resize(1200, 800)
    qtbot.wait(20)
    c = win.canvas
    st = win.state
    st.set_mode("outline", 10)
    mm_per_px = float(c.viewbox.viewPixelSize()[0])
    voxel_px = c.axes.col_spacing / mm_per_px  # screen pixels per slice pixel
    assert voxel_px > 2  # the demo slice is shown enlarged
    want = math.ceil(10 / voxel_px - 1e-6)
    assert c.outline_voxels() == want and want >= 2

    def drawn(width: int) -> np.ndarray:
        labels = c._labels_slice()
        return overlay.compose(
            c._grey, labels, c._current_lut(), mode="outline", outline_width=width
        )

    assert np.array_equal(c.frame(), drawn(want))
    # zoomed in 4x: a slice pixel is wider on screen, the outline takes fewer of them
    c.viewbox.scaleBy((0.25, 0.25))
    qtbot.wait(20)
    narrower = c.outline_voxels()
    assert narrower < want
    assert np.array_equal(c.frame(), drawn(narrower))
    # the outline is opaque in the class colour whatever the opacity
    st.set_opacity(0.2)
    frame = c.frame()
    edge = overlay.outline(c._labels_slice(), narrower) == 2
    assert np.all(frame[edge][:, :3] == np.array(st.table[2].color, np.uint8))


def test_hovering_a_legend_row_highlights_its_class(many_window: Any, qtbot: Any) -> None:
    from PySide6.QtCore import QEvent, QPointF
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    win = many_window
    win.resize(1400, 900)
    win.state.set_layout("axial")
    c = win.canvas
    c.set_slice(47)
    qtbot.wait(20)
    rows = list(c.legend_rows)
    assert len(rows) >= 3
    legend = c._legend
    line = (legend.height() - 8) / (len(rows) + 1)  # + the "+N more" line
    for i in (0, 2):
        y = 4 + line * (i + 0.5)
        ev = QMouseEvent(
            QEvent.Type.MouseMove,
            QPointF(20, y),
            QPointF(legend.mapToGlobal(QPointF(20, y).toPoint())),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(legend, ev)
        assert win.state.highlight == rows[i], (i, win.state.highlight, rows)
    QApplication.sendEvent(legend, QEvent(QEvent.Type.Leave))
    assert win.state.highlight is None
