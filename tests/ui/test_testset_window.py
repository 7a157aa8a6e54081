"""The window with a test set: open it, sort the case table by header clicks, move with
Ctrl+N / Ctrl+P (keeping view, zoom, class visibility, display), open at the worst slice,
slice table clicks, review notes from the note bar, and the two-prediction view's pixels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from test_testset_session import make_test_set
from ui_helpers import wait_idle

from segviewer.core import orientation, review
from segviewer.ui.canvas import qimage_to_array


def _click_header(qtbot: Any, table: Any, column: str) -> None:
    header = table.view.horizontalHeader()
    col = table.model.columns.index(column)
    table.view.scrollTo(table.model.index(0, col))
    x = header.sectionViewportPosition(col) + header.sectionSize(col) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


def _row_point(table: Any, row: int) -> QPoint:
    return table.view.visualRect(table.model.index(row, 0)).center()


@pytest.fixture
def ts_window(window: Any, qtbot: Any, tmp_path: Path, demo_dir: Path) -> Any:
    """The window with a 3-case test set of the demo MRI opened (first case measured)."""
    if not hasattr(window, "testset"):
        pytest.skip("the window has no test-set feature yet (installed with the ui redesign)")
    feature = window.testset
    window.resize(1800, 1000)  # two docks beside the canvas: keep it wide enough to read
    src = make_test_set(tmp_path, demo_dir)
    with qtbot.waitSignal(feature.session.measured, timeout=60_000):
        assert feature.open_test_set(src)
    qtbot.waitUntil(lambda: feature.session.last_pair is not None, timeout=60_000)
    wait_idle(qtbot, window)
    return window


def _wait_case(qtbot: Any, win: Any, case_id: str) -> None:
    s = win.testset.session
    qtbot.waitUntil(lambda: s.last is not None and s.last.case_id == case_id, timeout=60_000)
    wait_idle(qtbot, win)


def test_case_table_sort_and_ctrl_n_to_the_worst_slice(qtbot: Any, ts_window: Any) -> None:
    win = ts_window
    f = win.testset
    table = f.panel.case_table
    assert f.dock.isVisible()
    assert table.case_ids() == ["case0", "case1", "case2"]
    # settings the reviewer chose must survive the next case: view, zoom, classes, display
    win.set_view("coronal")
    wait_idle(qtbot, win)
    win.state.set_visible(1, False)
    win.state.set_opacity(0.8)
    win.state.set_display("errors", 2)
    # no legend: its text (error counts of the slice) sizes the canvas's grid around the
    # image, which would change the scale whatever the zoom
    win.state.set_options(legend=False)
    wait_idle(qtbot, win)
    box = win.canvas.viewbox
    box.scaleBy((0.5, 0.5))

    def zoom() -> tuple[float, float, float]:
        # mm per screen pixel and the centre: what the reviewer sees, even when a dock's
        # new content changes the canvas's size (its range then follows the aspect lock)
        (x0, x1), (y0, y1) = box.viewRange()
        return (x1 - x0) / box.width(), (x0 + x1) / 2, (y0 + y1) / 2

    zoomed = zoom()
    axis = f.driver.slice_axis()
    # measure all three by walking with Ctrl+N, then sort by Dice of white matter
    for cid in ("case1", "case2"):
        qtbot.keyClick(win, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
        _wait_case(qtbot, win, cid)
        assert win.state.visible[1] is False and win.state.opacity == pytest.approx(0.8)
        assert win.state.layout == "coronal" and f.driver.slice_axis() == axis
        assert win.state.display == "errors"
        assert np.allclose(zoom(), zoomed, rtol=0.02)
    table.class_combo.setCurrentText("class 2")
    table.class_combo.activated.emit(table.class_combo.currentIndex())
    _click_header(qtbot, table, "dice")
    order = table.case_ids()
    dices = [r["dice"] for r in table.model.rows]
    assert dices == sorted(dices) or dices == sorted(dices, reverse=True)
    if dices != sorted(dices):
        _click_header(qtbot, table, "dice")
        order = table.case_ids()
    assert order == ["case2", "case1", "case0"]  # the most damaged reference first
    # Ctrl+N / Ctrl+P follow the table's order now: case2 (open) -> case1 -> back to case2
    assert f.session.current == "case2"
    qtbot.keyClick(win, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    _wait_case(qtbot, win, "case1")
    # the case opened at its worst slice for the table's class
    worst = f.session.worst_slice("case1", "class 2")
    assert worst is not None
    qtbot.waitUntil(lambda: win.state.cursor[f.driver.slice_axis()] == worst, timeout=10_000)
    qtbot.keyClick(win, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    _wait_case(qtbot, win, "case2")
    # double-click a case in the table
    with qtbot.waitSignal(table.case_activated):
        qtbot.mouseClick(table.view.viewport(), Qt.MouseButton.LeftButton, pos=_row_point(table, 2))
        qtbot.mouseDClick(
            table.view.viewport(), Qt.MouseButton.LeftButton, pos=_row_point(table, 2)
        )
    _wait_case(qtbot, win, "case0")


def test_slice_table_click_goes_there_and_notes(qtbot: Any, ts_window: Any, tmp_path: Path) -> None:
    win = ts_window
    f = win.testset
    st = f.panel.slice_table
    f.driver.open_case("case2")  # its reference lost white matter on 12 slices
    _wait_case(qtbot, win, "case2")
    qtbot.waitUntil(lambda: st.model.rowCount() > 0, timeout=10_000)
    st.class_combo.setCurrentIndex(2)  # class 2 (white matter)
    st.class_combo.activated.emit(2)
    preset = list(review.PRESET_FILTERS).index("Dice below 0.8") + 1
    st.preset_combo.setCurrentIndex(preset)
    st.preset_combo.activated.emit(preset)
    _click_header(qtbot, st, "dice")
    assert st.slices(), "case2 has slices with white-matter Dice below 0.8"
    target = st.slices()[0]
    with qtbot.waitSignal(st.slice_activated):
        qtbot.mouseClick(st.view.viewport(), Qt.MouseButton.LeftButton, pos=_row_point(st, 0))
    assert win.state.cursor[f.driver.slice_axis()] == target
    # a slice verdict from the note bar: saved beside the CSV, shown in both tables
    notes = f.panel.notes
    notes.set_scope("slice")
    qtbot.mouseClick(notes.buttons["unsure"], Qt.MouseButton.LeftButton)
    notes.set_scope("case")
    qtbot.keyClicks(notes.comment, "check the thalamus")
    qtbot.mouseClick(notes.buttons["reject"], Qt.MouseButton.LeftButton)
    sidecar = tmp_path / "cases.notes.csv"
    text = sidecar.read_text()
    assert "unsure" in text and "reject" in text and "check the thalamus" in text
    row = next(r for r in f.panel.case_table.model.rows if r["case"] == f.session.current)
    assert row["verdict"] == "reject" and row["slice_notes"] == 1
    st.set_filter("")
    srow = next(r for r in st.model.rows if r["slice"] == target)
    assert srow["verdict"] == "unsure"
    # an export of this case records its notes in the manifest
    import json

    from segviewer.io.export import ExportRequest

    with qtbot.waitSignal(win.controller.notified, timeout=60_000):
        win.controller.run_export(ExportRequest(out_dir=tmp_path / "export"))
    wait_idle(qtbot, win)
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    got = {(n["slice"], n["verdict"], n["comment"]) for n in manifest["review_notes"]}
    assert got == {(None, "reject", "check the thalamus"), (target, "unsure", "")}
    assert all(n["case"] == "case2" for n in manifest["review_notes"])


def test_two_predictions_side_by_side_pixels(qtbot: Any, ts_window: Any) -> None:
    win = ts_window
    f = win.testset
    v = f.compare_view
    assert f.compare_dock.isVisible()
    st = win.state
    axis = f.driver.slice_axis()
    assert v.slice == st.cursor[axis]
    # one set of class toggles: hiding class 2 in the state changes both panes (on a slice
    # where both predictions have it)
    a_lab, b_lab = st.label_result.labels, f.session.last_pair.labels_b
    other = tuple(k for k in range(3) if k != axis)
    both = np.flatnonzero((a_lab == 2).any(axis=other) & (b_lab == 2).any(axis=other))
    f.driver.go_to_slice(int(both[len(both) // 2]))
    assert v.slice == st.cursor[axis]
    before = [v.pane_image(i).copy() for i in (0, 1)]
    st.set_visible(2, False)
    assert all(not np.array_equal(before[i], v.pane_image(i)) for i in (0, 1))
    st.set_visible(2, True)
    # the wheel in the compare view moves the window's slice
    v.step_slice(1)
    assert st.cursor[axis] == v.slice
    # disagreement overlay: the pixels of "only A agrees" / "only B agrees" on screen
    qtbot.mouseClick(v.dis_check, Qt.MouseButton.LeftButton)
    codes = v.disagreement_slice()
    case = f.session.case(f.session.current)
    import nibabel as nib

    b = np.asarray(nib.load(case.prediction_b).dataobj)  # type: ignore[attr-defined]
    ref = st.reference
    a = st.label_result.labels
    axes = v._axes
    sl = v.slice
    a2, b2, r2 = (orientation.take_slice(x, axes, sl) for x in (a, b, ref))
    assert np.array_equal(codes == review.DIS_ONLY_A, (a2 != b2) & (a2 == r2))
    assert np.array_equal(codes == review.DIS_ONLY_B, (a2 != b2) & (b2 == r2))
    shot = qimage_to_array(v.graphics.grab().toImage())[..., :3].astype(int)
    ratio = shot.shape[1] / v.graphics.width()
    for code in (review.DIS_ONLY_A, review.DIS_ONLY_B):
        hits = np.argwhere(codes == code)
        if len(hits) == 0:
            continue
        r, c = hits[len(hits) // 2]
        for pane in (0, 1):
            scene = v.boxes[pane].mapViewToScene(
                QPointF((c + 0.5) * axes.col_spacing, (r + 0.5) * axes.row_spacing)
            )
            p = v.graphics.mapFromScene(scene)
            px = shot[int(p.y() * ratio), int(p.x() * ratio)]
            assert np.abs(px - v.pane_image(pane)[r, c, :3]).max() <= 3
            colour = np.array(review.DISAGREEMENT_COLORS[code])
            assert np.abs(px - colour).max() < 90  # the overlay colour dominates
    # metrics of each against the reference and of one against the other
    rows = v.metrics.model.rows
    assert {"dice", "dice_b", "dice_diff", "dice_a_b"} <= set(rows[0])


def _keep_windows(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from segviewer.ui import main_window

    windows: list[Any] = []
    init = main_window.MainWindow.__init__

    def keep(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        windows.append(self)

    monkeypatch.setattr(main_window.MainWindow, "__init__", keep)
    return windows


def test_command_line_opens_a_test_set_with_its_evaluation(
    qtbot: Any, tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``segviewer --evaluation DIR`` (the test set named by DIR's summary.json) opens the
    first case at the evaluation's worst slice, with the evaluation's metrics in the table."""
    from segviewer.core.progress import run_to_end
    from segviewer.io.evaluate import run_evaluation
    from segviewer.io.testset import load_cases
    from segviewer.ui.app import main

    src = make_test_set(tmp_path, demo_dir, n_cases=2)
    ev = tmp_path / "eval"
    run_to_end(run_evaluation(load_cases(src), ev, workers=0))
    windows = _keep_windows(monkeypatch)
    out = tmp_path / "shot.png"
    code = main(["--evaluation", str(ev), "--screenshot", str(out)])
    win = windows[0]
    if not hasattr(win, "testset"):
        pytest.skip("the window has no test-set feature yet (installed with the ui redesign)")
    assert code == 0 and out.exists()
    f = win.testset
    assert f.session.evaluation == ev and f.session.current == "case0"
    rows = f.panel.case_table.model.rows
    assert [r["case"] for r in rows] == ["case0", "case1"] and "dice_diff" in rows[0]
    axis, worst = f.session.worst_position("case0")
    assert win.state.cursor[axis] == worst


def test_command_line_refuses_a_test_set_with_a_prediction(
    qtbot: Any, tmp_path: Path, demo_dir: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segviewer.ui.app import main

    windows = _keep_windows(monkeypatch)
    src = make_test_set(tmp_path, demo_dir, n_cases=1)
    code = main([str(src), "--prediction", "p.npy", "--screenshot", str(tmp_path / "x.png")])
    if windows and not hasattr(windows[0], "testset"):
        pytest.skip("the window has no test-set feature yet (installed with the ui redesign)")
    assert code == 2
    assert "a test set brings its own predictions" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--evaluation", str(empty), "--screenshot", str(tmp_path / "y.png")]) == 2
    assert "has no summary.json" in capsys.readouterr().err


def test_case_without_reference_ranks_slices_by_doubt(
    qtbot: Any, window: Any, tmp_path: Path, demo_dir: Path
) -> None:
    """A case without a reference after one with: the old reference is closed, and the slice
    table starts with the slices where the model is least sure."""
    if not hasattr(window, "testset"):
        pytest.skip("the window has no test-set feature yet (installed with the ui redesign)")
    src = make_test_set(tmp_path, demo_dir, n_cases=2)
    text = src.read_text().splitlines()
    header = text[0].split(",")
    cells = text[2].split(",")
    cells[header.index("reference")] = ""  # case1 has no reference
    src.write_text("\n".join([text[0], text[1], ",".join(cells)]) + "\n")
    f = window.testset
    with qtbot.waitSignal(f.session.measured, timeout=60_000):
        f.open_test_set(src)
    wait_idle(qtbot, window)
    assert window.state.reference is not None
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    _wait_case(qtbot, window, "case1")
    assert window.state.reference is None
    assert not f.session.last.metrics.has_reference
    st = f.panel.slice_table
    st.class_combo.setCurrentIndex(0)  # all classes: the doubt of every voxel of the slice
    st.class_combo.activated.emit(0)
    assert st.model.sort_key == ("low_confidence_voxels", True)
    low = [r["low_confidence_voxels"] for r in st.model.rows]
    assert low[0] == max(low) > 0 and low == sorted(low, reverse=True)
    # the presets that need a reference are disabled
    preset = list(review.PRESET_FILTERS).index("Dice below 0.8") + 1
    assert not st.preset_combo.model().item(preset).isEnabled()


def test_open_second_prediction_of_the_shown_image(
    qtbot: Any, demo_window: Any, tmp_path: Path
) -> None:
    """File > Open second prediction (no test set): the demo's tissue probabilities against a
    label map of them with white matter missing on ten slices."""
    import nibabel as nib

    win = demo_window
    f = win.testset
    labels = win.state.label_result.labels
    b = labels.copy()
    b[:, :, 40:50][b[:, :, 40:50] == 2] = 0
    path = tmp_path / "model_v2.nii.gz"
    nib.save(nib.Nifti1Image(b, win.state.volume.affine), path)
    assert not f.compare_dock.isVisible()
    assert f.open_prediction_b(path)
    qtbot.waitUntil(lambda: f.compare.result is not None, timeout=60_000)
    wait_idle(qtbot, win)
    assert f.compare_dock.isVisible()
    v = f.compare_view
    axis = f.driver.slice_axis()
    f.driver.go_to_slice(45)
    assert v.slice == 45 == win.state.cursor[axis]
    v.set_disagreement(True, None)
    codes = v.disagreement_slice()
    axes = v._axes
    a2, b2 = (orientation.take_slice(x, axes, 45) for x in (labels, b))
    # no reference: every difference is "differ", and it is exactly the missed white matter
    assert np.array_equal(codes == review.DIS_DIFFER, a2 != b2)
    assert np.array_equal(a2 != b2, (a2 == 2) & (b2 == 0)) and (a2 != b2).any()
    r, c = np.argwhere(codes == review.DIS_DIFFER)[0]
    assert (
        np.abs(
            v.pane_image(1)[r, c, :3].astype(int)
            - np.array(review.DISAGREEMENT_COLORS[review.DIS_DIFFER])
        ).max()
        < 60
    )
    rows = v.metrics.model.rows
    white = next(r for r in rows if r["class"] == "white matter")
    from segviewer.core.compare import compare

    assert white["dice_a_b"] == pytest.approx(compare(labels, b, 3).per_class[2].dice)
