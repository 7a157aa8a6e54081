"""`segviewer --demo --screenshot`, the Python API `view(...)`, and the export dialog."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from segviewer.core.types import SegviewerError
from segviewer.ui import api
from segviewer.ui.app import build_parser, main


def _rgb(img: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.count_nonzero(np.all(img[..., :3] == np.array(rgb, np.uint8), axis=-1)))


@pytest.mark.tf  # asserts that the bundled model ran
def test_demo_screenshot_from_the_command_line(
    qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segviewer.ui import main_window

    windows: list[Any] = []
    init = main_window.MainWindow.__init__

    def keep(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        windows.append(self)

    monkeypatch.setattr(main_window.MainWindow, "__init__", keep)
    out = tmp_path / "demo.png"
    assert main(["--demo", "--view", "coronal", "--slice", "60", "--screenshot", str(out)]) == 0
    # With TensorFlow the bundled model ran, and the tissue probabilities became its
    # reference: Dice per class in the class panel, equal to core.compare's.
    win = windows[0]
    assert "model" in win.state.provenance
    assert str(win.state.reference_source).endswith("tissue_prob.nii.gz")
    from segviewer.core.compare import compare

    expected = compare(win.label_result.labels, win.state.reference, 3, 8.0)
    assert win.class_panel.dice_text(1)[0] == f"{expected.per_class[1].dice:.3f}"
    assert expected.per_class[1].dice > 0.9
    img = QImage(str(out))
    assert not img.isNull() and img.width() >= 800
    from segviewer.ui.canvas import qimage_to_array

    arr = qimage_to_array(img)
    # The blended demo overlay colours are on screen (opacity 0.5 over grey: orange-ish and
    # blue-ish pixels, red clearly above blue for grey matter and the reverse for white).
    r, g, b = (arr[..., k].astype(int) for k in range(3))
    assert np.count_nonzero((r - b > 60) & (g > 40)) > 500
    assert np.count_nonzero(b - r > 60) > 500


def test_screenshot_reports_a_bad_file_and_exits_2(qtbot: Any, tmp_path: Path, capsys: Any) -> None:
    bad = tmp_path / "nothing.nii.gz"
    bad.write_bytes(b"garbage")
    assert main([str(bad), "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segviewer: error: ") and "nothing.nii.gz" in err


def test_parser_knows_the_documented_options() -> None:
    a = build_parser().parse_args(
        ["img.nii", "--prediction", "p.npy", "--classes", "c.json", "--layout", "NHWC",
         "--kind", "logits", "--series", "3", "--frame", "2", "--view", "sagittal", "--slice", "7"]
    )  # fmt: skip
    assert (a.image, a.prediction, a.classes, a.layout, a.kind) == (
        "img.nii",
        "p.npy",
        "c.json",
        "NHWC",
        "logits",
    )
    assert (a.series, a.frame, a.view, a.slice) == ("3", 2, "sagittal", 7)


def test_view_arrays_and_drive_the_viewer(qtbot: Any, tmp_path: Path) -> None:
    # A synthetic 2-class problem, channels-last logits: a bright square is class 1.
    image = np.zeros((4, 64, 80), np.float32)
    image[:, 20:40, 30:60] = 100.0
    logits = np.zeros((4, 64, 80, 2), np.float32)
    logits[..., 1] = np.where(image > 50, 4.0, -4.0)
    v = api.view(image, logits, layout="DHWC", show=True)
    qtbot.addWidget(v.window)
    v.wait_idle()
    assert v.window.state.prediction.n_classes == 2
    assert v.window.label_result.counts.tolist() == [4 * 64 * 80 - 4 * 20 * 30, 4 * 20 * 30]
    v.set_opacity(1.0)
    v.set_class_color(1, "#00ff00")
    frame = v.window.canvas.frame()
    assert frame.shape[:2] == (64, 80)  # stack geometry: rows and columns unchanged
    assert _rgb(frame, (0, 255, 0)) == 20 * 30
    assert np.all(frame[25, 35, :3] == (0, 255, 0))
    v.set_mode("outline")
    assert 0 < _rgb(v.window.canvas.frame(), (0, 255, 0)) < 20 * 30
    v.toggle_class(1)
    assert _rgb(v.window.canvas.frame(), (0, 255, 0)) == 0
    v.set_class_visible(1, True)
    v.set_display("confidence")
    assert v.window.state.display == "confidence"
    v.set_display("labels")
    v.set_slice(2)
    assert v.slice == 2
    shot = v.screenshot(tmp_path / "api.png")
    assert shot.ndim == 3 and shot.shape[2] == 4 and (tmp_path / "api.png").exists()
    # a report picture of the slice: enlarged, framed (caption, scale bar), saved as PDF
    pic = v.picture("slice", tmp_path / "slice.pdf", view=v.window.canvas.view)
    assert pic.ndim == 3 and pic.shape[0] > 2 * 64 and pic.shape[1] > 2 * 80
    assert (tmp_path / "slice.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(SegviewerError, match="class 5 does not exist"):
        v.set_class_visible(5, False)
    with pytest.raises(SegviewerError, match="view must be one of"):
        v.set_view("oblique")
    v.close()


def test_view_files_and_export(qtbot: Any, demo_dir: Path, tmp_path: Path) -> None:
    v = api.view(
        demo_dir / "t1.nii.gz",
        demo_dir / "tissue_prob.nii.gz",
        demo_dir / "classes.json",
        show=False,
    )
    qtbot.addWidget(v.window)
    assert v.window.state.table[2].name == "white matter"
    result = v.export(tmp_path / "out", what={"labels", "binary"}, formats={"nifti"})
    assert result.manifest.exists()
    assert all(Path(f).exists() for f in result.files)
    label_files = [Path(f) for f in result.files if "label" in Path(f).name]
    assert label_files
    img = nibabel.load(label_files[0])
    np.testing.assert_array_equal(np.asarray(img.dataobj), v.window.label_result.labels)
    np.testing.assert_allclose(img.affine, v.window.state.volume.affine)
    v.close()


def test_view_reports_a_missing_file(qtbot: Any, tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="missing.nii"):
        api.view(tmp_path / "missing.nii", show=False)


def test_export_dialog_writes_the_chosen_files(
    demo_window: Any, qtbot: Any, tmp_path: Path
) -> None:
    win = demo_window
    win.state.set_visible(1, False)  # the dialog pre-ticks the visible classes
    dlg = win.show_export_dialog()
    qtbot.addWidget(dlg)
    ticked = [dlg.class_list.item(i).checkState() == Qt.CheckState.Checked for i in range(3)]
    assert ticked == [False, False, True]
    dlg.what_checks["overlays"].setChecked(True)
    dlg.format_checks["png"].setChecked(True)
    dlg.slice_range.setChecked(True)
    dlg.range_from.setValue(40)
    dlg.range_to.setValue(42)
    dlg.folder_edit.setText(str(tmp_path / "export"))
    req = dlg.build_request()
    assert req.slices == (40, 41, 42) and req.classes == (2,) and req.view == "axial"
    assert req.what == frozenset({"binary", "labels", "overlays"})
    with qtbot.waitSignal(dlg.export_finished, timeout=60_000) as sig:
        dlg.start()
    result = sig.args[0]
    manifest = json.loads(result.manifest.read_text())
    files = manifest["files"]
    # binary masks of the one ticked class only, the label map, overlays of slices 40..42
    assert {f["class_index"] for f in files if f["what"] == "binary"} == {2}
    assert sorted(f["slice_index"] for f in files if f["what"] in ("overlay", "overlays")) == [
        40,
        41,
        42,
    ]
    assert any(f["what"] == "labels" for f in files)
    out = Path(result.out_dir)
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert on_disk == {f["path"] for f in files} | {"manifest.json"}
    assert "Wrote" in dlg.message.text()
    # Bad input is explained in the dialog, nothing starts.
    dlg.folder_edit.setText("")
    assert dlg.start() is None
    assert "output folder" in dlg.message.text()


def test_cancel_button_stops_a_long_job(demo_window: Any, qtbot: Any) -> None:
    import threading

    from segviewer.core.types import Progress

    win = demo_window
    release = threading.Event()

    def long_job() -> Any:
        for i in range(10_000):
            release.wait(0.005)
            yield Progress(i, 10_000, "working")
        return "done"

    results: list[str] = []
    win.runner.start("long", long_job, label="Long job", on_result=results.append)
    qtbot.waitUntil(
        lambda: win.cancel_button.isVisible() and win.progress_bar.value() > 0, timeout=5000
    )
    assert "Long job" in win.job_label.text()
    qtbot.mouseClick(win.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(win.is_idle, timeout=5000)
    assert results == []
    assert not win.cancel_button.isVisible()
    assert win.state.prediction is not None  # data untouched
