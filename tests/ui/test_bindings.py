"""Widgets bound both ways to the state; the readout's own place; reproducible screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

from segviewer.ui import api
from segviewer.ui.app import main
from segviewer.ui.canvas import qimage_to_array
from segviewer.ui.state import DISPLAYS, MODES, OUTLINE_WIDTH


def test_a_scripted_change_shows_in_every_widget(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    viewer = api.Viewer(win, None)
    viewer.set_mode("outline", 4)
    assert win.mode_combo.currentIndex() == MODES.index("outline")
    assert win.outline_spin.value() == 4  # was left stale before the state wrote back
    viewer.set_opacity(0.25)
    assert win.opacity_slider.value() == 25
    viewer.set_display("probability", 2)
    assert win.display_combo.currentIndex() == DISPLAYS.index("probability")
    assert win.display_class_combo.currentIndex() == 2
    viewer.set_min_confidence(0.8)
    assert win.minconf_check.isChecked() and win.minconf_spin.value() == pytest.approx(0.8)
    viewer.set_view("coronal")
    assert win.canvas.view == "coronal" and win._view_actions["coronal"].isChecked()
    win.state.set_options(legend=False)  # e.g. a key or another dialog
    assert not win.legend_check.isChecked()
    win.state.set_radiological(False)
    assert not win.radiological_action.isChecked()


def test_a_widget_change_reaches_the_state_and_refusals_roll_back(
    demo_window: Any, qtbot: Any
) -> None:
    win = demo_window
    win.outline_spin.setValue(7)
    assert win.state.outline_width == 7
    win.mode_combo.setCurrentIndex(MODES.index("both"))
    assert win.state.mode == "both" and win.state.outline_width == 7
    # the widget's range is the declared one
    assert win.outline_spin.maximum() == OUTLINE_WIDTH.maximum
    errors: list[str] = []
    win.error_shown.connect(errors.append)
    win.show_dialogs = False
    win.display_combo.setCurrentIndex(DISPLAYS.index("errors"))  # no reference loaded
    assert errors and "reference" in errors[-1]
    assert win.state.display == "labels"
    assert win.display_combo.currentIndex() == DISPLAYS.index("labels")


def test_the_readout_stays_visible_while_notices_come_and_go(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    c = win.canvas
    c.graphics.scene().sigMouseMoved.emit(c.viewbox.mapViewToScene(QPointF(60.0, 80.0)))
    qtbot.waitUntil(lambda: "voxel (" in win.readout.text(), timeout=3000)
    text = win.readout.text()
    win.controller.report("Compared with the reference: mean Dice 0.9", seconds=30)
    win.controller.report("Slice 12: 400 error voxels for grey matter", seconds=30)
    assert "Slice 12" in win.statusBar().currentMessage()
    assert win.readout.isVisible() and win.readout.text() == text
    # its own line under the canvases, outside the status bar's message area
    assert not win.statusBar().isAncestorOf(win.readout)
    assert win.readout.mapTo(win, win.readout.rect().topLeft()).y() < win.statusBar().y()


def _settings_file(path: Path, opacity: float, geometry_small: bool) -> Path:
    """A user's saved settings: another opacity, and (optionally) a tiny saved window."""
    from PySide6.QtCore import QSettings

    qs = QSettings(str(path), QSettings.Format.IniFormat)
    qs.setValue("display/opacity", opacity)
    qs.setValue("display/legend", False)
    if geometry_small:
        from segviewer.ui.main_window import MainWindow

        w = MainWindow()
        w.resize(500, 400)
        qs.setValue("window/geometry", w.saveGeometry())
        w.deleteLater()
    qs.sync()
    return path


def test_screenshot_does_not_depend_on_saved_settings(
    qtbot: Any, tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [
        str(demo_dir / "t1.nii.gz"),
        "--prediction",
        str(demo_dir / "tissue_prob.nii.gz"),
        "--classes",
        str(demo_dir / "classes.json"),
    ]
    pictures = []
    for n, (opacity, small) in enumerate(((1.0, True), (0.1, False))):
        ini = _settings_file(tmp_path / f"user{n}.ini", opacity, small)
        before = ini.read_bytes()
        monkeypatch.setenv("SEGVIEWER_SETTINGS", str(ini))
        out = tmp_path / f"shot{n}.png"
        assert main([*args, "--screenshot", str(out)]) == 0
        assert ini.read_bytes() == before  # nothing written back
        pictures.append(qimage_to_array(QImage(str(out))))
    assert pictures[0].shape == pictures[1].shape
    assert np.array_equal(pictures[0], pictures[1])


def test_display_and_window_size_from_the_command_line(
    qtbot: Any, tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segviewer.ui import main_window

    windows: list[Any] = []
    init = main_window.MainWindow.__init__

    def keep(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        windows.append(self)

    monkeypatch.setattr(main_window.MainWindow, "__init__", keep)
    out = tmp_path / "shot.png"
    code = main(
        [
            str(demo_dir / "t1.nii.gz"),
            "--prediction",
            str(demo_dir / "tissue_prob.nii.gz"),
            "--window-size",
            "900x700",
            "--opacity",
            "0.8",
            "--mode",
            "outline",
            "--outline-width",
            "3",
            "--display",
            "probability",
            "--display-class",
            "2",
            "--min-confidence",
            "0.7",
            "--no-legend",
            "--neurological",
            "--window",
            "300,600",
            "--screenshot",
            str(out),
        ]
    )
    assert code == 0
    st = windows[0].state
    assert (st.opacity, st.mode, st.outline_width) == (0.8, "outline", 3)
    assert (st.display, st.display_class) == ("probability", 2)
    assert st.mask_settings.min_confidence == pytest.approx(0.7)
    assert not st.show_legend and not st.radiological
    assert (st.level, st.width) == (300.0, 600.0) and st.window_preset == "Custom"
    img = QImage(str(out))
    assert (img.width(), img.height()) == (900, 700)


def test_an_out_of_range_display_flag_is_one_error_line(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["x.nii.gz", "--outline-width", "99"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "segviewer: error:" in err and "outline width" in err and "1 to 20" in err


def test_keys_toggle_classes_through_the_state(demo_window: Any, qtbot: Any) -> None:
    win = demo_window
    qtbot.keyClick(win.canvas.graphics, Qt.Key.Key_2)
    assert win.state.visible[2] is False
    item = win.class_panel.table.item(2, 0)
    assert item.checkState() == Qt.CheckState.Unchecked  # the class panel followed


def _rect(w: Any, canvas: Any) -> Any:
    from PySide6.QtCore import QRect

    top_left = w.mapTo(canvas, w.rect().topLeft())
    return QRect(top_left, w.size())


@pytest.mark.parametrize("size", [(1000, 700), (1280, 860), (1600, 900)])
def test_nothing_on_the_canvas_overlaps_anything_else(
    demo_window: Any, qtbot: Any, demo_dir: Path, size: tuple[int, int]
) -> None:
    """Letters, slice text, W/L, legend and colour bar never overlap each other or the image,
    in narrow three-view panes as in the single view, for every display."""
    from segviewer.io.predictions import load_reference

    win = demo_window
    win.set_reference(load_reference(demo_dir / "tissue_prob.nii.gz", (98, 116, 94)), source="ref")
    qtbot.waitUntil(lambda: win.state.comparison is not None, timeout=30_000)
    win.resize(*size)
    checked = 0
    for layout in ("three", "axial"):
        win.state.set_layout(layout)
        for display in ("labels", "entropy", "errors"):
            win.state.set_display(display)
            qtbot.wait(10)
            for canvas in win.canvases:
                if not canvas.isVisible():
                    continue
                shown = [w for w in canvas.overlay_widgets() if w.isVisible()]
                assert canvas._info in shown and canvas._wl_label in shown
                rects = [(w, _rect(w, canvas)) for w in shown]
                image = _rect(canvas.graphics, canvas)
                for i, (w, r) in enumerate(rects):
                    assert not r.intersects(image), (layout, display, w)
                    for w2, r2 in rects[i + 1 :]:
                        assert not r.intersects(r2), (layout, display, w, w2)
                    checked += 1
    assert checked > 40
