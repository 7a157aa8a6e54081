"""The window on the real demo: slices, pixels, classes, hover, errors, three-view, drops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QWheelEvent
from PySide6.QtWidgets import QMessageBox
from ui_helpers import wait_idle

from segviewer.core import orientation
from segviewer.io.sniff import classify_path

GREY_MATTER = (0xE6, 0xA2, 0x3C)
WHITE_MATTER = (0x4A, 0xA3, 0xDF)


def count_rgb(img: np.ndarray, rgb: tuple[int, int, int]) -> int:
    """Pixels of exactly this colour in an (H, W, 3/4) uint8 image."""
    return int(np.count_nonzero(np.all(img[..., :3] == np.array(rgb, np.uint8), axis=-1)))


def test_demo_opens_with_overlay_and_whole_volume_counts(demo_window: Any) -> None:
    win = demo_window
    st = win.state
    assert st.volume.shape == (98, 116, 94)
    assert win.canvas.view == "axial"
    frame = win.canvas.frame()
    assert frame.shape == (116, 98, 4)  # axial of a RAS volume: rows = A->P (j), cols = R->L (i)
    res = win.label_result
    # Counts come from the worker's whole-volume label map and add up to the volume.
    assert int(res.counts.sum()) + res.n_uncertain + res.n_invalid == 98 * 116 * 94
    name, voxels, volume = win.class_panel.row_text(2)
    assert name.endswith("white matter")
    assert voxels == f"{int(res.counts[2]):,}"
    # 2 mm isotropic: 8 mm³ per voxel; shown in ml
    assert volume == f"{int(res.counts[2]) * 8 / 1000:,.2f}"
    win.class_panel.set_volume_unit("mm³")
    assert win.class_panel.row_text(2)[2] == f"{int(res.counts[2]) * 8:,.0f}"
    win.class_panel.set_volume_unit("ml")
    # The middle axial slice of a brain has both tissues in it.
    st.set_opacity(1.0)
    frame = win.canvas.frame()
    assert count_rgb(frame, GREY_MATTER) > 500
    assert count_rgb(frame, WHITE_MATTER) > 500
    assert "t1.nii.gz" in win.windowTitle()


def test_orientation_letters_are_radiological(demo_window: Any) -> None:
    c = demo_window.canvas
    letters = {k: lab.text() for k, lab in c._letters.items()}
    assert letters == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    demo_window.set_view("coronal")
    assert {k: lab.text() for k, lab in c._letters.items()} == {
        "top": "S",
        "bottom": "I",
        "left": "R",
        "right": "L",
    }
    demo_window.radiological_action.setChecked(False)  # neurological: patient left on the left
    assert c._letters["left"].text() == "L"


def test_keyboard_moves_through_slices(demo_window: Any, qtbot: Any) -> None:
    c = demo_window.canvas
    start = c.index
    before = c.frame().copy()
    qtbot.keyClick(c.graphics, Qt.Key.Key_Up)
    assert c.index == start + 1
    assert not np.array_equal(before, c.frame())  # a new slice was drawn
    qtbot.keyClick(c.graphics, Qt.Key.Key_PageUp)
    assert c.index == start + 11
    qtbot.keyClick(c.graphics, Qt.Key.Key_PageDown)
    qtbot.keyClick(c.graphics, Qt.Key.Key_Down)
    assert c.index == start
    qtbot.keyClick(c.graphics, Qt.Key.Key_End)
    assert c.index == 93
    qtbot.keyClick(c.graphics, Qt.Key.Key_Up)  # clipped at the last slice
    assert c.index == 93
    qtbot.keyClick(c.graphics, Qt.Key.Key_Home)
    assert c.index == 0
    assert c.slider.value() == 0
    # 0-based like voxel indices, --slice and Viewer.set_slice: index / last index
    assert c.slice_label.text() == "slice 0 / 93"
    c.slider.setValue(40)
    assert c.index == 40 and demo_window.state.cursor[2] == 40
    assert c.slice_label.text() == "slice 40 / 93"
    assert c._info.text() == "Axial  slice 40 / 93"


def _wheel(widget: Any, delta: int, modifiers: Any = Qt.KeyboardModifier.NoModifier) -> None:
    from PySide6.QtWidgets import QApplication

    pos = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(
        pos,
        widget.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, delta),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, ev)


def test_wheel_changes_slice_and_ctrl_wheel_zooms(demo_window: Any) -> None:
    c = demo_window.canvas
    start = c.index
    _wheel(c.graphics.viewport(), 120)
    assert c.index == start + 1
    _wheel(c.graphics.viewport(), -120)
    _wheel(c.graphics.viewport(), -120)
    assert c.index == start - 1
    rect0 = c.viewbox.viewRect()
    _wheel(c.graphics.viewport(), 120, Qt.KeyboardModifier.ControlModifier)
    assert c.index == start - 1  # zoom, not a slice change
    assert c.viewbox.viewRect().width() < rect0.width()


def test_hiding_a_class_removes_its_colour_from_the_screen(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    win.state.set_opacity(1.0)
    shown = win.canvas.grab_array()
    assert count_rgb(shown, WHITE_MATTER) > 1000
    qtbot.keyClick(win, Qt.Key.Key_2)  # number keys toggle classes
    assert win.state.visible[2] is False
    hidden = win.canvas.grab_array()
    assert count_rgb(hidden, WHITE_MATTER) == 0
    assert count_rgb(hidden, GREY_MATTER) > 1000  # the other class is untouched
    assert "white matter" not in win.canvas._legend.text()
    win.class_panel.table.item(2, 0).setCheckState(Qt.CheckState.Checked)  # the checkbox too
    assert win.state.visible[2] is True
    assert count_rgb(win.canvas.grab_array(), WHITE_MATTER) > 1000
    qtbot.keyClick(win, Qt.Key.Key_N)
    none = win.canvas.grab_array()
    assert count_rgb(none, WHITE_MATTER) == 0 and count_rgb(none, GREY_MATTER) == 0
    qtbot.keyClick(win, Qt.Key.Key_A)
    assert all(win.state.visible)


def test_colour_change_shows_on_the_canvas(
    demo_window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QColorDialog

    win = demo_window
    win.state.set_opacity(1.0)
    before = win.canvas.grab_array()
    n_white = count_rgb(before, WHITE_MATTER)
    monkeypatch.setattr(QColorDialog, "getColor", staticmethod(lambda *a, **k: QColor(0, 255, 0)))
    win.class_panel._cell_clicked(2, 1)  # a click on the swatch opens the colour dialog
    after = win.canvas.grab_array()
    assert count_rgb(after, WHITE_MATTER) == 0
    assert count_rgb(after, (0, 255, 0)) == n_white
    assert win.state.table[2].color == (0, 255, 0)
    assert win.class_panel.table.item(2, 1).background().color() == QColor(0, 255, 0)


def test_outline_mode_draws_only_boundaries(demo_window: Any) -> None:
    win = demo_window
    win.state.set_opacity(1.0)
    fill = win.canvas.frame().copy()
    win.mode_combo.setCurrentIndex(1)  # Outline
    assert win.state.mode == "outline"
    outline = win.canvas.frame().copy()
    n_fill, n_out = count_rgb(fill, WHITE_MATTER), count_rgb(outline, WHITE_MATTER)
    assert 0 < n_out < n_fill * 0.8
    # Outline pixels are a subset of the filled ones; the interior shows the grey image.
    out_mask = np.all(outline[..., :3] == WHITE_MATTER, axis=-1)
    fill_mask = np.all(fill[..., :3] == WHITE_MATTER, axis=-1)
    assert not np.any(out_mask & ~fill_mask)
    interior = fill_mask & ~out_mask
    grey = outline[interior][:, :3]
    assert np.all(grey[:, 0] == grey[:, 1]) and np.all(grey[:, 1] == grey[:, 2])
    # the width is in screen pixels: 20 of them span several (enlarged) slice pixels
    win.outline_spin.setValue(20)
    assert win.canvas.outline_voxels() > 1
    thick = count_rgb(win.canvas.frame(), WHITE_MATTER)
    assert thick > n_out


def test_heatmap_displays_and_colour_bar(demo_window: Any) -> None:
    win = demo_window
    labels_frame = win.canvas.frame().copy()
    win.display_combo.setCurrentIndex(2)  # Confidence
    assert win.state.display == "confidence"
    heat = win.canvas.frame()
    assert not np.array_equal(heat, labels_frame)
    assert win.canvas._colorbar.isVisible()
    assert not win.canvas._legend.isVisible()
    win.display_combo.setCurrentIndex(1)  # probability of the class in the class combo
    win.display_class_combo.setCurrentIndex(2)
    assert (win.state.display, win.state.display_class) == ("probability", 2)
    p_white = win.canvas.frame().copy()
    win.display_class_combo.setCurrentIndex(1)
    assert not np.array_equal(p_white, win.canvas.frame())
    win.display_combo.setCurrentIndex(0)
    assert np.array_equal(win.canvas.frame(), labels_frame)


def test_hover_readout_in_the_status_bar(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    c = win.canvas
    vp = c.graphics.viewport()
    centre = QPoint(vp.width() // 2, vp.height() // 2)
    qtbot.mouseMove(vp, centre)
    qtbot.waitUntil(lambda: "voxel (" in win.readout.text(), timeout=3000)
    text = win.readout.text()
    # The voxel under the mouse, computed independently from the view's geometry.
    p = c.viewbox.mapSceneToView(c.graphics.mapToScene(centre))
    row = int(p.y() // c.axes.row_spacing)
    col = int(p.x() // c.axes.col_spacing)
    ijk = orientation.display_to_voxel(c.axes, c.index, row, col, shape=win.state.volume.shape)
    assert f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})" in text
    assert f"value {float(win.state.volume.data[ijk]):.6g}" in text
    assert "class: " in text and "P: " in text and "mm (RAS)" in text


def test_worker_error_shows_the_message_and_keeps_the_image(
    demo_window: Any, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "critical", staticmethod(lambda parent, title, text: shown.append(text))
    )
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a NIfTI file at all")
    volume = demo_window.state.volume
    demo_window.open_image(bad)
    qtbot.waitUntil(lambda: bool(shown), timeout=10_000)
    assert "broken.nii.gz" in shown[0]
    assert demo_window.state.volume is volume  # what was loaded before is still shown
    assert demo_window.state.prediction is not None


def test_newer_image_wins_over_an_older_request(
    window: Any, qtbot: Any, demo_dir: Path, nibabel_anatomical: Path
) -> None:
    window.open_image(demo_dir / "t1.nii.gz")
    window.open_image(nibabel_anatomical)  # supersedes the first request
    wait_idle(qtbot, window)
    assert window.state.volume.shape == (33, 41, 25)
    assert window.image_path == str(nibabel_anatomical)


def test_three_view_click_moves_the_other_slices(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    win.set_three_view(True)
    ax, cor, sag = win.canvases
    assert [c.view for c in win.canvases] == ["axial", "coronal", "sagittal"]
    assert all(c.isVisible() for c in win.canvases)
    assert win.state.crosshair_drawn() and all(c._vline.isVisible() for c in win.canvases)
    for c in win.canvases:  # each view's image spans its slice's extent in millimetres
        rows, cols = c.frame().shape[:2]
        r = c.image_item.mapRectToView(c.image_item.boundingRect())
        assert (r.width(), r.height()) == pytest.approx((cols * 2.0, rows * 2.0))
    # Click a point of the axial view: row 30, column 20 of the displayed slice.
    x = (20 + 0.5) * ax.axes.col_spacing
    y = (30 + 0.5) * ax.axes.row_spacing
    ax.click_at(x, y)
    ijk = orientation.display_to_voxel(ax.axes, ax.index, 30, 20, shape=win.state.volume.shape)
    assert win.state.cursor == ijk
    assert cor.index == ijk[cor.axes.slice_axis]
    assert sag.index == ijk[sag.axes.slice_axis]
    qtbot.keyClick(sag.graphics, Qt.Key.Key_Up)  # scrolling one view moves the others' crosshair
    assert win.state.cursor[0] == ijk[0] + 1
    win.set_view("sagittal")
    assert not cor.isVisible() and win.canvas.view == "sagittal"


def test_window_level_by_right_drag_and_presets(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    level0, width0 = win.state.level, win.state.width
    vp = win.canvas.graphics.viewport()
    a = QPoint(vp.width() // 2, vp.height() // 2)
    qtbot.mousePress(vp, Qt.MouseButton.RightButton, pos=a)
    for dx in range(5, 60, 5):
        qtbot.mouseMove(vp, a + QPoint(dx, -dx))
    qtbot.mouseRelease(vp, Qt.MouseButton.RightButton, pos=a + QPoint(60, -60))
    assert win.state.width > width0 and win.state.level > level0
    assert win.window_combo.currentText() == "Custom"
    win.window_combo.setCurrentIndex(0)
    win.window_combo.activated.emit(0)
    assert (win.state.level, win.state.width) == (level0, width0)


def test_drop_files_open_them_by_kind(window: Any, qtbot: Any, demo_dir: Path) -> None:
    mime = QMimeData()
    mime.setUrls(
        [
            QUrl.fromLocalFile(str(demo_dir / "classes.json")),
            QUrl.fromLocalFile(str(demo_dir / "t1.nii.gz")),
        ]
    )
    ev = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(ev)
    wait_idle(qtbot, window)
    assert window.state.volume is not None and window.state.volume.shape == (98, 116, 94)
    assert window.classes_path == str(demo_dir / "classes.json")
    recent = window.settings.recent()
    assert ("image", str((demo_dir / "t1.nii.gz").resolve())) in recent


def test_classify_path(demo_dir: Path) -> None:
    assert classify_path(demo_dir / "classes.json", have_image=True) == "classes"
    assert classify_path(demo_dir / "t1.nii.gz", have_image=False) == "image"
    assert classify_path(demo_dir / "tissue_prob.nii.gz", have_image=True) == "prediction"
    assert classify_path("/x/logits.npy", have_image=True) == "prediction"
    assert (
        classify_path(demo_dir / "t1.nii.gz", have_image=True, image_shape=(98, 116, 94))
        == "prediction"
    )
    assert (
        classify_path(demo_dir / "t1.nii.gz", have_image=True, image_shape=(10, 10, 10)) == "image"
    )


def test_screenshot_files(demo_window: Any, tmp_path: Path) -> None:
    from PySide6.QtGui import QImage

    path = demo_window.save_screenshot(tmp_path / "shot.png")
    img = QImage(path)
    assert img.width() == demo_window.centralWidget().width()
    assert not img.isNull()
    demo_window.copy_screenshot()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().image().size() == img.size()


def test_show_only_one_class_and_show_all(demo_window: Any) -> None:
    win = demo_window
    win.state.set_opacity(1.0)
    win.state.show_only(1)
    frame = win.canvas.frame()
    assert count_rgb(frame, GREY_MATTER) > 500 and count_rgb(frame, WHITE_MATTER) == 0
    assert [
        win.class_panel.table.item(i, 0).checkState() == Qt.CheckState.Checked for i in range(3)
    ] == [
        False,
        True,
        False,
    ]
    win.class_panel.show_all_button.click()
    assert all(win.state.visible)


def test_minimum_confidence_marks_uncertain_voxels(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    before = win.label_result.counts.copy()
    with qtbot.waitSignal(win.labels_ready, timeout=30_000):
        win.minconf_spin.setValue(0.9)
        win.minconf_check.setChecked(True)
    res = win.label_result
    assert win.state.mask_settings.min_confidence == pytest.approx(0.9)
    assert res.n_uncertain > 0
    assert int(res.counts.sum()) + res.n_uncertain == int(before.sum())
    assert (
        f"{res.n_uncertain:,} voxels below the minimum confidence" in win.class_panel.summary.text()
    )
    assert win.class_panel.row_text(1)[1] == f"{int(res.counts[1]):,}"


def test_display_settings_and_recent_files_persist(qtbot: Any, demo_dir: Path) -> None:
    from segviewer.ui.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.open_image(demo_dir / "t1.nii.gz")
    wait_idle(qtbot, first)
    first.opacity_slider.setValue(30)
    first.legend_check.setChecked(False)
    first.close()  # saves settings
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.state.opacity == pytest.approx(0.3)
    assert not second.legend_check.isChecked()
    assert second.settings.recent()[0] == ("image", str((demo_dir / "t1.nii.gz").resolve()))
    assert Path(second.settings.last_folder()) == demo_dir
    second.close()


def test_single_dicom_slice_and_anisotropic_4d_nifti(
    window: Any, qtbot: Any, mr_small: Path, nibabel_example4d: Path
) -> None:
    window.open_image(mr_small)
    wait_idle(qtbot, window)
    assert window.state.volume.shape[0] == 1 or 1 in window.state.volume.shape
    c = window.canvas
    assert c.n_slices() >= 1 and c.frame() is not None
    for view in ("coronal", "sagittal", "axial"):  # one-voxel-thick views still draw
        window.set_view(view)
        assert c.frame() is not None and c.frame().size > 0
    window.open_image(nibabel_example4d, frame=1)
    wait_idle(qtbot, window)
    vol = window.state.volume
    assert vol.shape == (128, 96, 24)
    window.set_view("coronal")
    rows, cols = c.frame().shape[:2]
    r = c.image_item.mapRectToView(c.image_item.boundingRect())
    # Voxels are not cubes here: the picture keeps the millimetre aspect, not the voxel one.
    assert r.height() / r.width() == pytest.approx(
        rows * c.axes.row_spacing / (cols * c.axes.col_spacing)
    )
    assert c.axes.row_spacing != pytest.approx(c.axes.col_spacing)
