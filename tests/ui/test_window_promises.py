"""Promises of the README about the window, each checked so that breaking it fails a test.

* "Toggling a class, changing a colour or the opacity never recomputes masks": the label job
  is counted (and the whole-volume label map must stay the same object) across toggles by
  key, by checkbox and by script, colour, opacity and drawing-mode changes; a threshold
  change is the control that shows the counter counts.
* The export dialog's slice range reaches the last slice, and Cancel really cancels.
* Heatmaps show the statistic: the displayed entropy frame equals the blend of the
  independently computed normalised entropy of the demo probabilities.
* The hover readout names the right class, the right top probabilities and the voxel's
  position in mm, all computed here from the files and the affine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from segviewer.core import orientation


@pytest.fixture
def label_jobs(demo_window: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every job the window's runner starts, by channel, from now on."""
    started: list[str] = []
    runner = demo_window.runner
    real_start = runner.start

    def start(channel: str, *args: Any, **kwargs: Any) -> Any:
        started.append(channel)
        return real_start(channel, *args, **kwargs)

    monkeypatch.setattr(runner, "start", start)
    return started


def test_toggles_colours_and_opacity_never_recompute_masks(
    demo_window: Any, qtbot: Any, label_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from segviewer.core import masks

    win = demo_window
    st = win.state
    result = st.label_result
    assert result is not None
    per_slice: list[int] = []
    real_slice_labels = masks.slice_labels
    monkeypatch.setattr(
        masks,
        "slice_labels",
        lambda *a, **k: per_slice.append(1) or real_slice_labels(*a, **k),
    )
    ready: list[Any] = []
    win.labels_ready.connect(ready.append)
    before = win.canvas.grab_array()

    qtbot.keyClick(win, Qt.Key.Key_2)  # hide white matter by key
    qtbot.keyClick(win, Qt.Key.Key_2)
    win.class_panel.table.item(1, 0).setCheckState(Qt.CheckState.Unchecked)  # by checkbox
    win.class_panel.table.item(1, 0).setCheckState(Qt.CheckState.Checked)
    st.set_visible(2, False)  # by script
    st.set_color(1, (10, 200, 30))
    st.set_opacity(0.9)
    st.set_mode("outline", 2)
    st.set_mode("fill")
    qtbot.keyClick(win, Qt.Key.Key_N)
    qtbot.keyClick(win, Qt.Key.Key_A)
    st.set_visible(2, False)
    qtbot.wait(50)
    qtbot.waitUntil(win.is_idle, timeout=10_000)

    after = win.canvas.grab_array()
    assert not np.array_equal(before, after), "the changes did reach the screen"
    assert "labels" not in label_jobs, label_jobs
    assert ready == []
    assert st.label_result is result
    assert per_slice == [], "the shown slice's labels were recomputed"

    # Control: a threshold change does start exactly one label job (the counter works).
    with qtbot.waitSignal(win.labels_ready, timeout=30_000):
        st.set_min_confidence(0.6)
    assert label_jobs.count("labels") == 1


def test_export_dialog_reaches_the_last_slice_and_cancel_cancels(
    demo_window: Any, qtbot: Any, tmp_path: Path
) -> None:
    win = demo_window
    dlg = win.show_export_dialog()
    qtbot.addWidget(dlg)
    vol = win.state.volume
    axes = orientation.display_axes(vol.affine, "axial")
    last = vol.shape[axes.slice_axis] - 1
    # The range spans every slice, first to last, and defaults to all of them.
    assert (dlg.range_from.minimum(), dlg.range_to.maximum()) == (0, last)
    assert (dlg.range_from.value(), dlg.range_to.value()) == (0, last)
    dlg.slice_range.setChecked(True)
    dlg.range_from.setValue(last - 1)
    dlg.range_to.setValue(last)
    dlg.what_checks["overlays"].setChecked(True)
    dlg.format_checks["png"].setChecked(True)
    out = tmp_path / "range"
    dlg.folder_edit.setText(str(out))
    assert dlg.build_request().slices == (last - 1, last)
    with qtbot.waitSignal(dlg.export_finished, timeout=60_000) as sig:
        dlg.start()
    manifest = json.loads(sig.args[0].manifest.read_text())
    overlays = sorted(
        f["slice_index"] for f in manifest["files"] if f["what"] in ("overlay", "overlays")
    )
    assert overlays == [last - 1, last]
    for f in manifest["files"]:  # every file the manifest lists exists, nothing else
        assert (out / f["path"]).is_file()
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert on_disk == {f["path"] for f in manifest["files"]} | {"manifest.json"}

    # Cancel during a long export (every slice, overlays at a large scale): nothing remains.
    dlg.slice_all.setChecked(True)
    cancelled = tmp_path / "cancelled"
    dlg.folder_edit.setText(str(cancelled))
    job = dlg.start()
    assert job is not None
    qtbot.waitUntil(lambda: dlg.progress.value() > 0, timeout=30_000)
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(win.is_idle, timeout=30_000)
    assert dlg.result is sig.args[0]  # no second result arrived
    assert "cancel" in dlg.message.text().lower()
    assert not (cancelled / "manifest.json").exists()
    # the export's cleanup ran when it was cancelled: no file, no hidden staging folder
    assert not cancelled.exists() or list(cancelled.iterdir()) == [], list(cancelled.rglob("*"))


def _demo_probabilities(demo_dir: Path) -> np.ndarray:
    return np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj, np.float64)


def test_entropy_heatmap_pixels_are_the_entropy(demo_window: Any, demo_dir: Path) -> None:
    from segviewer.core import overlay
    from segviewer.ui.canvas import HEATMAP_CMAP

    win = demo_window
    st = win.state
    st.set_opacity(0.8)
    st.set_display("entropy")
    c = win.canvas
    c.set_slice(40)
    frame = c.frame()  # the RGBA image drawn
    # Independently: normalised entropy of the demo probabilities on that slice.
    p = _demo_probabilities(demo_dir)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=-1) / np.log(p.shape[-1])
    h_slice = orientation.take_slice(h, c.axes, c.index)
    # drawn inside the predicted foreground only (the default): background shows the grey
    labels = orientation.take_slice(win.label_result.labels, c.axes, c.index)
    h_slice = np.where(labels == 0, np.nan, h_slice)
    grey = orientation.take_slice(st.volume.data, c.axes, c.index)
    grey8 = overlay.window_to_uint8(grey, st.level, st.width)
    heat = overlay.heatmap_rgba(h_slice.astype(np.float32), 0.0, 1.0, HEATMAP_CMAP["entropy"])
    a = heat[..., 3:4] / 255.0 * 0.8
    expected = grey8[..., None] * (1 - a) + heat[..., :3] * a
    assert frame.shape[:2] == h_slice.shape
    # within rounding (the colour table has 256 steps: a step is 1/255 of the scale)
    diff = np.abs(frame[..., :3].astype(np.float64) - expected)
    assert np.percentile(diff, 99.9) <= 3.0, float(diff.max())
    # and it is the entropy, not another statistic: confidence looks different
    conf = p.max(axis=-1)
    conf_heat = overlay.heatmap_rgba(
        np.where(labels == 0, np.nan, orientation.take_slice(conf, c.axes, c.index)).astype(
            np.float32
        ),
        0.0,
        1.0,
        HEATMAP_CMAP["entropy"],
    )
    b = conf_heat[..., 3:4] / 255.0 * 0.8
    wrong = grey8[..., None] * (1 - b) + conf_heat[..., :3] * b
    assert np.abs(frame[..., :3] - wrong).mean() > 5 * np.abs(frame[..., :3] - expected).mean()


def test_hover_readout_values(demo_window: Any, qtbot: Any, demo_dir: Path) -> None:
    win = demo_window
    c = win.canvas
    vp = c.graphics.viewport()
    p = _demo_probabilities(demo_dir)
    names = [info.name for info in win.state.table.classes]
    checked = 0
    for fx, fy in ((0.5, 0.5), (0.42, 0.38), (0.6, 0.62)):
        pos = QPoint(int(vp.width() * fx), int(vp.height() * fy))
        qtbot.mouseMove(vp, pos)
        # In suite order, offscreen Qt sometimes routes QTest's move nowhere (an earlier test's
        # window had the mouse); pyqtgraph's scene signal is what a real move ends in.
        c.graphics.scene().sigMouseMoved.emit(QPointF(c.graphics.mapToScene(pos)))
        scene = c.viewbox.mapSceneToView(c.graphics.mapToScene(pos))
        row = int(scene.y() // c.axes.row_spacing)
        col = int(scene.x() // c.axes.col_spacing)
        ijk = orientation.display_to_voxel(c.axes, c.index, row, col, shape=win.state.volume.shape)
        want = f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})"
        qtbot.waitUntil(lambda want=want: want in win.readout.text(), timeout=15_000)
        text = win.readout.text()
        probs = p[ijk] / p[ijk].sum()  # the window renormalises 8-bit probabilities to sum 1
        if probs.max() < 0.5:  # a near tie: the class is still argmax, but skip the risk
            continue
        xyz = nib.load(demo_dir / "t1.nii.gz").affine @ np.array([*ijk, 1.0])
        assert f"{xyz[0]:.1f}, {xyz[1]:.1f}, {xyz[2]:.1f} mm" in text
        assert f"class: {names[int(np.argmax(probs))]}" in text
        order = np.argsort(-probs, kind="stable")[:3]
        shown = text.split("P: ")[1].split(", ")
        assert [s.rsplit(" ", 1)[0] for s in shown] == [names[k] for k in order], text
        # two decimals of the stored 8-bit probabilities (the window reads them as float32)
        np.testing.assert_allclose(
            [float(s.rsplit(" ", 1)[1]) for s in shown], probs[order], atol=0.0051
        )
        checked += 1
    assert checked >= 2
