"""Reference segmentation in the window: Dice column, errors display, E / Shift+E, export,
the per-slice error counts of the worker, and the command line / Python API entry points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from ui_helpers import wait_idle

from segviewer.core import orientation
from segviewer.core.compare import compare, error_map
from segviewer.core.progress import run_to_end
from segviewer.ui.state import DISPLAYS

GREY = 1  # demo class 1: grey matter
ERROR_SLICE = 30  # axial slice where the test reference drops every grey-matter voxel
VIEW_SLICE = 47  # axial slice holding the single false-positive and false-negative voxels


def _voxel_on_slice(labels: np.ndarray, value: int, z: int, *, away_from: np.ndarray) -> tuple:
    """A voxel of ``labels == value`` on axial slice ``z`` (axis 2), surrounded by the same
    label (so the pixel checked on screen is not an edge) and far from ``away_from``."""
    sl = labels[:, :, z]
    inner = sl == value
    inner[1:-1, 1:-1] &= (
        (sl[:-2, 1:-1] == value)
        & (sl[2:, 1:-1] == value)
        & (sl[1:-1, :-2] == value)
        & (sl[1:-1, 2:] == value)
    )
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    ii, jj = np.nonzero(inner)
    far = np.hypot(ii - away_from[0], jj - away_from[1]) > 10
    k = int(np.flatnonzero(far)[len(np.flatnonzero(far)) // 2])
    return int(ii[k]), int(jj[k]), z


def _reference_with_known_errors(labels: np.ndarray) -> tuple[np.ndarray, tuple, tuple]:
    """The prediction's own labels with: one false positive and one false negative of grey
    matter on VIEW_SLICE, and every grey-matter voxel of ERROR_SLICE set to background."""
    ref = labels.copy()
    fp = _voxel_on_slice(labels, GREY, VIEW_SLICE, away_from=np.array([-100, -100]))
    fn = _voxel_on_slice(labels, 2, VIEW_SLICE, away_from=np.array(fp[:2]))
    ref[fp] = 2  # predicted grey, reference white: a false positive of grey matter
    ref[fn] = GREY  # predicted white, reference grey: a false negative of grey matter
    sl = ref[:, :, ERROR_SLICE]
    sl[labels[:, :, ERROR_SLICE] == GREY] = 0
    return ref, fp, fn


def _screen_rgb(canvas: Any, ijk: tuple) -> np.ndarray:
    """RGB of the grabbed canvas at the centre of voxel ``ijk`` (which must be on screen)."""
    st = canvas.state
    index, row, col = orientation.voxel_to_display(canvas.axes, ijk, shape=st.volume.shape)
    assert index == canvas.index
    x = (col + 0.5) * canvas.axes.col_spacing
    y = (row + 0.5) * canvas.axes.row_spacing
    scene = canvas.viewbox.mapViewToScene(QPointF(x, y))
    p = canvas.graphics.mapFromScene(scene)
    img = canvas.grab_array()
    return img[p.y(), p.x(), :3].astype(int)


@pytest.fixture
def ref_window(demo_window: Any, qtbot: Any) -> tuple[Any, np.ndarray, tuple, tuple]:
    win = demo_window
    win.show_dialogs = False
    labels = win.label_result.labels
    ref, fp, fn = _reference_with_known_errors(labels)
    win.set_reference(ref, source="<test reference>")
    wait_idle(qtbot, win)
    assert win.state.comparison is not None
    return win, ref, fp, fn


def test_dice_column_equals_core_compare(ref_window: Any) -> None:
    win, ref, _, _ = ref_window
    expected = compare(win.label_result.labels, ref, 3, 8.0)
    panel = win.class_panel
    for k in range(3):
        text, tip = panel.dice_text(k)
        assert text == f"{expected.per_class[k].dice:.3f}"
        c = expected.per_class[k]
        assert f"False positives {c.fp:,} voxels" in tip
        assert f"False negatives {c.fn:,} voxels" in tip
        assert f"Sensitivity {c.sensitivity:.3f}" in tip
    labels = win.label_result.labels
    # the one false-positive voxel plus the grey matter removed from ERROR_SLICE
    assert expected.per_class[GREY].fp == 1 + np.count_nonzero(labels[:, :, ERROR_SLICE] == GREY)
    assert expected.per_class[GREY].fn == 1
    assert "mean Dice" in win.statusBar().currentMessage()
    # Closing the reference hides the column again.
    win.close_reference()
    assert panel.dice_text(GREY) == ("", "")
    assert panel.table.isColumnHidden(5)


def _blend_expected(canvas: Any, ijk: tuple, rgb: tuple, opacity: float) -> np.ndarray:
    """What the canvas should show at ``ijk``: ``rgb`` blended at ``opacity`` over the grey."""
    index, row, col = orientation.voxel_to_display(
        canvas.axes, ijk, shape=canvas.state.volume.shape
    )
    g = float(canvas._grey[row, col])
    return np.rint(g * (1 - opacity) + np.asarray(rgb, float) * opacity).astype(int)


def test_errors_display_colours_differ_from_every_class_colour(ref_window: Any, qtbot: Any) -> None:
    from segviewer.core.colours import delta_e
    from segviewer.ui.canvas import ERROR_MIN_ALPHA

    win, _, fp, fn = ref_window
    canvas = win.canvas
    canvas.set_slice(VIEW_SLICE)
    win.display_combo.setCurrentIndex(DISPLAYS.index("errors"))
    assert win.state.display == "errors"
    # The class combobox offers every class plus "All classes"; choose grey matter.
    assert win.display_class_combo.count() == 4
    win.display_class_combo.setCurrentIndex(GREY)
    assert win.state.error_class == GREY
    qtbot.wait(20)
    fp_rgb, fn_rgb = canvas.error_rgb()
    class_rgb = [c.color for c in win.state.table.classes]
    # the two error colours are far (CIE76 ΔE) from every class colour and from each other
    for err in (fp_rgb, fn_rgb):
        assert min(delta_e(err, c) for c in class_rgb) > 20, (err, class_rgb)
    assert delta_e(fp_rgb, fn_rgb) > 20
    a = max(win.state.opacity, ERROR_MIN_ALPHA)
    seen_fp = _screen_rgb(canvas, fp)
    seen_fn = _screen_rgb(canvas, fn)
    assert np.abs(seen_fp - _blend_expected(canvas, fp, fp_rgb, a)).max() <= 3, seen_fp
    assert np.abs(seen_fn - _blend_expected(canvas, fn, fn_rgb, a)).max() <= 3, seen_fn
    # on screen too, an error pixel is closer to its error colour's blend than to any class
    # colour blended the same way
    for ijk, seen, own in ((fp, seen_fp, fp_rgb), (fn, seen_fn, fn_rgb)):
        d_own = delta_e(seen, _blend_expected(canvas, ijk, own, a))
        d_cls = min(delta_e(seen, _blend_expected(canvas, ijk, c, a)) for c in class_rgb[1:])
        assert d_own + 10 < d_cls, (d_own, d_cls)
    legend = canvas._legend.text()
    assert "false positive" in legend and "false negative" in legend
    assert "rgb({},{},{})".format(*fp_rgb) in legend and "rgb({},{},{})".format(*fn_rgb) in legend
    assert "2 error voxels on this slice" in legend
    # agreement is drawn as the class outline only: inside a large grey-matter area (no
    # error near) the screen shows the anatomy alone
    labels = win.label_result.labels
    z = VIEW_SLICE
    sl = labels[:, :, z] == GREY
    inner = sl.copy()
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (2, 0), (-2, 0), (0, 2), (0, -2)):
        inner &= np.roll(np.roll(sl, dx, 0), dy, 1)
    ii, jj = np.nonzero(inner)
    far = np.hypot(ii - fp[0], jj - fp[1]) + 0 > 5
    far &= np.hypot(ii - fn[0], jj - fn[1]) > 5
    k = int(np.flatnonzero(far)[0])
    tp = (int(ii[k]), int(jj[k]), z)
    assert np.abs(_screen_rgb(canvas, tp) - _blend_expected(canvas, tp, (0, 0, 0), 0.0)).max() <= 2
    # "All classes": both voxels disagree, drawn in the disagreement colour.
    win.display_class_combo.setCurrentIndex(3)
    assert win.state.error_class is None
    qtbot.wait(20)
    for ijk in (fp, fn):
        seen = _screen_rgb(canvas, ijk)
        assert np.abs(seen - _blend_expected(canvas, ijk, fp_rgb, a)).max() <= 3, seen
    # Back to the labels display: the false-negative voxel shows its class colour again.
    win.display_combo.setCurrentIndex(DISPLAYS.index("labels"))
    seen = _screen_rgb(canvas, fn)
    assert np.abs(seen - _blend_expected(canvas, fn, fn_rgb, a)).max() > 10


def test_next_error_key_jumps_to_the_worst_slices(ref_window: Any, qtbot: Any) -> None:
    win, ref, _, _ = ref_window
    canvas = win.canvas
    win.display_combo.setCurrentIndex(DISPLAYS.index("errors"))
    win.display_class_combo.setCurrentIndex(GREY)
    canvas.set_slice(60)
    canvas.graphics.setFocus()
    errors = error_map(win.label_result.labels, ref, GREY, n_classes=3)
    per_slice = np.count_nonzero(errors >= 2, axis=(0, 1))
    assert int(np.argmax(per_slice)) == ERROR_SLICE
    qtbot.keyClick(canvas.graphics, Qt.Key.Key_E)
    assert canvas.index == ERROR_SLICE
    assert f"Slice {ERROR_SLICE}" in win.statusBar().currentMessage()
    qtbot.keyClick(canvas.graphics, Qt.Key.Key_E)  # next in the ranking: 2 errors
    assert canvas.index == VIEW_SLICE
    qtbot.keyClick(canvas.graphics, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    assert canvas.index == ERROR_SLICE
    qtbot.keyClick(canvas.graphics, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    assert canvas.index == ERROR_SLICE  # already the worst: stays, and says so
    assert "No slice with more errors" in win.statusBar().currentMessage()
    # After scrolling to a slice with errors, E starts again at the worst one.
    canvas.set_slice(VIEW_SLICE)
    qtbot.keyClick(canvas.graphics, Qt.Key.Key_E)
    assert canvas.index == ERROR_SLICE


def test_worker_error_counts_match_error_map_per_axis(demo_dir: Path) -> None:
    from segviewer.io.predictions import load_reference
    from segviewer.ui.jobs import compare_job

    labels = load_reference(demo_dir / "tissue_prob.nii.gz", (98, 116, 94))
    ref = np.roll(labels, 2, axis=1)  # a shifted reference: errors on every tissue border
    ref[0, 0, :5] = 255  # unscored reference voxels count nowhere
    pred = labels.copy()
    pred[10, 20, 30] = 254  # an uncertain prediction: a false negative of its reference class
    result = run_to_end(compare_job(pred, ref, 3, 8.0))
    comparison, counts = result.comparison, result.error_counts
    assert comparison.per_class[1].dice == compare(pred, ref, 3, 8.0).per_class[1].dice
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        assert counts[axis].shape == (4, labels.shape[axis])
        for k in range(3):
            wrong = error_map(pred, ref, k, n_classes=3) >= 2
            assert np.array_equal(counts[axis][k], np.count_nonzero(wrong, axis=others))
        anyk = error_map(pred, ref, None, n_classes=3) == 2
        assert np.array_equal(counts[axis][3], np.count_nonzero(anyk, axis=others))


def test_hover_readout_names_the_reference_class(ref_window: Any) -> None:
    win, ref, fp, _ = ref_window
    win.canvas.set_slice(VIEW_SLICE)
    text = win.readout_text(fp, win.canvas)
    assert "class: grey matter" in text
    assert "reference: white matter (disagrees)" in text
    inside = (fp[0], fp[1], ERROR_SLICE + 20)  # an untouched slice: labels == reference
    win.canvas.set_slice(inside[2])
    assert "(agrees)" in win.readout_text(inside, win.canvas)


def test_export_with_reference_writes_comparison_and_error_map(
    ref_window: Any, qtbot: Any, tmp_path: Path
) -> None:
    import nibabel

    win, ref, _, _ = ref_window
    dlg = win.show_export_dialog()
    assert "errors" in dlg.what_checks
    for key, cb in dlg.what_checks.items():
        cb.setChecked(key in ("labels", "errors"))
    for key, cb in dlg.format_checks.items():
        cb.setChecked(key == "nifti")
    dlg.folder_edit.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(dlg.export_finished, timeout=60_000):
        dlg.start()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    comp = manifest["comparison"]
    expected = compare(win.label_result.labels, ref, 3, 8.0)
    assert comp["classes"][GREY]["fp"] == expected.per_class[GREY].fp
    assert comp["classes"][GREY]["dice"] == pytest.approx(expected.per_class[GREY].dice)
    err_files = [f for f in manifest["files"] if f["what"] == "errors"]
    assert len(err_files) == 1
    err_img: Any = nibabel.load(tmp_path / "out" / err_files[0]["path"])
    errors = np.asarray(err_img.dataobj)
    assert int(np.count_nonzero(errors == 2)) == int(
        np.count_nonzero(win.label_result.labels != ref)
    )
    dlg.close()


def test_reference_of_another_shape_is_refused_and_the_old_one_kept(
    ref_window: Any, qtbot: Any, tmp_path: Path
) -> None:
    win, ref, _, _ = ref_window
    bad = tmp_path / "other_reference.npy"
    np.save(bad, np.zeros((10, 10, 10), np.uint8))
    errors: list[str] = []
    win.error_shown.connect(errors.append)
    win.open_reference(bad)
    wait_idle(qtbot, win)
    assert errors and "reference" in errors[-1] and "(98, 116, 94)" in errors[-1]
    assert win.state.reference is ref
    assert win.class_panel.dice_text(GREY)[0] != ""


def test_errors_display_needs_a_reference(demo_window: Any) -> None:
    win = demo_window
    win.show_dialogs = False
    errors: list[str] = []
    win.error_shown.connect(errors.append)
    win.display_combo.setCurrentIndex(DISPLAYS.index("errors"))
    assert win.state.display == "labels"
    assert win.display_combo.currentIndex() == 0
    assert "reference segmentation" in errors[-1]


def test_reference_from_a_file_and_a_dropped_file(
    demo_window: Any, qtbot: Any, demo_dir: Path, tmp_path: Path
) -> None:
    from segviewer.io.sniff import classify_path

    win = demo_window
    path = tmp_path / "case1_ground_truth.npy"
    labels = np.asarray(win.label_result.labels)
    np.save(path, labels)
    assert classify_path(path, True, labels.shape, have_prediction=True) == "reference"
    assert classify_path(path, True, labels.shape, have_prediction=False) == "prediction"
    win.open_dropped([str(path)])
    wait_idle(qtbot, win)
    assert win.state.reference_source == str(path)
    assert np.array_equal(win.state.reference, labels)
    assert win.class_panel.dice_text(GREY)[0] == "1.000"  # the prediction against itself


def test_viewer_set_reference_and_command_line(qtbot: Any, demo_dir: Path, tmp_path: Path) -> None:
    from segviewer.ui.api import view
    from segviewer.ui.app import build_parser

    v = view(
        demo_dir / "t1.nii.gz",
        demo_dir / "tissue_prob.nii.gz",
        demo_dir / "classes.json",
        reference=demo_dir / "tissue_prob.nii.gz",
    )
    try:
        assert v.window.class_panel.dice_text(1)[0] == "1.000"
        labels = np.asarray(v.window.label_result.labels)
        shifted = np.roll(labels, 1, axis=0)
        comp = v.set_reference(shifted)
        assert comp.per_class[1].dice == compare(labels, shifted, 3, 8.0).per_class[1].dice
        with pytest.raises(Exception, match="reference"):
            v.set_reference(np.zeros((5, 5, 5), np.uint8))
        assert v.window.state.reference is not None  # the previous one stays
        # A probabilities file as reference: its argmax, i.e. the prediction's own labels.
        comp = v.set_reference(demo_dir / "tissue_prob.nii.gz")
        assert comp.per_class[1].dice == 1.0
        assert v.set_reference(None) is None
        assert v.window.state.reference is None
    finally:
        v.close()
    args = build_parser().parse_args(["t1.nii.gz", "-p", "p.npy", "--reference", "gt.nii.gz"])
    assert args.reference == "gt.nii.gz"


def test_mirrored_nifti_reference_is_reported(demo_window: Any, qtbot: Any, tmp_path: Path) -> None:
    import nibabel

    win = demo_window
    vol = win.state.volume
    mirrored = vol.affine.copy()
    mirrored[:, 0] *= -1  # voxel axis 0 runs right-to-left: compared voxel for voxel, wrong
    path = tmp_path / "reference.nii.gz"
    nibabel.save(nibabel.Nifti1Image(np.asarray(win.label_result.labels), mirrored), path)
    win.open_reference(path)
    wait_idle(qtbot, win)
    assert win.state.reference is not None
    msg = win.statusBar().currentMessage()
    assert "LAS" in msg and "RAS" in msg
    assert any("LAS" in line for line in win.image_info_text().splitlines())


def test_a_newer_reference_wins_over_a_stale_load_and_comparison(
    demo_window: Any, qtbot: Any, demo_dir: Path
) -> None:
    win = demo_window
    labels = np.asarray(win.label_result.labels)
    newer = np.roll(labels, 3, axis=1)
    win.open_reference(demo_dir / "tissue_prob.nii.gz")  # still loading when replaced ...
    win.set_reference(np.roll(labels, 1, axis=0), source="first")
    win.set_reference(newer, source="second")  # ... and this one's comparison supersedes
    wait_idle(qtbot, win)
    assert win.state.reference is newer and win.state.reference_source == "second"
    expected = compare(labels, newer, 3, 8.0)
    assert win.state.comparison.per_class[2].dice == expected.per_class[2].dice
    assert win.class_panel.dice_text(2)[0] == f"{expected.per_class[2].dice:.3f}"


def test_new_mask_settings_recompare(ref_window: Any, qtbot: Any) -> None:
    win, ref, _, _ = ref_window
    before = win.state.comparison
    win.minconf_spin.setValue(0.9)
    win.minconf_check.setChecked(True)  # uncertain voxels: false negatives of their class
    wait_idle(qtbot, win)
    labels = win.label_result.labels
    assert win.label_result.n_uncertain > 0
    expected = compare(labels, ref, 3, 8.0)
    assert win.state.comparison is not before
    assert win.state.comparison.n_pred_unlabelled == expected.n_pred_unlabelled > 0
    assert win.class_panel.dice_text(GREY)[0] == f"{expected.per_class[GREY].dice:.3f}"
