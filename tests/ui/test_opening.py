"""Opening files that need a choice: a DICOM folder with several series (a picker, as ITK-SNAP
and Slicer have), a 4-D image (the Volume selector), a prediction of another size (resample)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from ui_helpers import wait_idle

from segviewer.io.dicom import list_dicom_series


def _two_series(mr_small: Path, folder: Path) -> dict[str, np.ndarray]:
    """Two 3-slice series made from MR_small: 'T1 axial' (pixels + 100 s) and 'T2 axial'
    (pixels + 1000 + 100 s), files interleaved in one folder."""
    folder.mkdir()
    base = pydicom.dcmread(mr_small).pixel_array.astype(np.int16)
    expected = {}
    for uid, desc, offset in (("1.2.3.1", "T1 axial", 0), ("1.2.3.2", "T2 axial", 1000)):
        slices = []
        for s in range(3):
            ds = pydicom.dcmread(mr_small)
            arr = (base + offset + 100 * s).astype(np.int16)
            ds.PixelData = arr.tobytes()
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = f"{uid}.{s + 1}"
            ds.SeriesDescription = desc
            ds.InstanceNumber = s + 1
            ds.ImagePositionPatient = [-83.9063, -91.2, 10.0 + 2.0 * s]
            ds.save_as(folder / f"{desc[:2]}_{s}.dcm", enforce_file_format=True)
            slices.append(arr)
        expected[uid] = np.stack(slices)
    return expected


def test_picking_a_series_opens_that_one(
    window: Any, qtbot: Any, mr_small: Path, tmp_path: Path
) -> None:
    expected = _two_series(mr_small, tmp_path / "study")
    asked: list[tuple[str, list[Any]]] = []

    def pick_t2(folder: str, series: list[Any]) -> str:
        asked.append((folder, series))
        return next(s.uid for s in series if s.description == "T2 axial")

    window.choose_series = pick_t2
    window.open_image(tmp_path / "study")
    wait_idle(qtbot, window)
    # The picker saw both series with what a reviewer recognises them by.
    assert len(asked) == 1
    listed = {s.description: (s.n_files, s.shape) for s in asked[0][1]}
    assert listed == {"T1 axial": (3, (3, 64, 64)), "T2 axial": (3, (3, 64, 64))}
    vol = window.state.volume
    assert vol is not None and np.array_equal(np.asarray(vol.data), expected["1.2.3.2"])


def test_cancelling_the_choice_keeps_the_previous_image(
    demo_window: Any, qtbot: Any, mr_small: Path, tmp_path: Path
) -> None:
    _two_series(mr_small, tmp_path / "study")
    before = demo_window.state.volume
    errors: list[str] = []
    demo_window.error_shown.connect(errors.append)
    demo_window.choose_series = lambda folder, series: None
    demo_window.open_image(tmp_path / "study")
    wait_idle(qtbot, demo_window)
    assert demo_window.state.volume is before
    assert "2 DICOM series" in errors[-1] and "T1 axial" in errors[-1]


def test_series_dialog_lists_and_returns_the_selected_uid(
    qtbot: Any, mr_small: Path, tmp_path: Path
) -> None:
    from segviewer.ui.series_dialog import SeriesDialog

    _two_series(mr_small, tmp_path / "study")
    series = list_dicom_series(tmp_path / "study")
    dialog = SeriesDialog(str(tmp_path / "study"), series)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 2
    texts = {dialog.table.item(r, 1).text() for r in range(2)}
    assert texts == {"T1 axial", "T2 axial"}
    assert dialog.chosen_uid() == series[0].uid  # first row preselected
    dialog.table.selectRow(1)
    assert dialog.chosen_uid() == series[1].uid


def test_volume_spinbox_walks_the_frames_of_a_4d_image(
    window: Any, qtbot: Any, nibabel_example4d: Path
) -> None:
    import nibabel as nib

    window.open_image(nibabel_example4d)
    wait_idle(qtbot, window)
    spin = window.frame_spin
    assert spin.isVisible() and (spin.minimum(), spin.maximum(), spin.value()) == (0, 1, 0)
    data = np.asanyarray(nib.load(nibabel_example4d).dataobj)
    assert np.array_equal(np.asarray(window.state.volume.data), data[..., 0])
    spin.setValue(1)  # what typing 1 or clicking the arrow does
    wait_idle(qtbot, window)
    assert np.array_equal(np.asarray(window.state.volume.data), data[..., 1])
    assert window.state.volume.metadata["frame"] == 1


def test_volume_spinbox_hidden_for_3d_images(demo_window: Any) -> None:
    assert not demo_window.frame_spin.isVisible()


def _half_resolution_probabilities(demo_dir: Path, tmp_path: Path) -> Path:
    """The demo's tissue probabilities at half resolution (a model run on a coarser grid)."""
    import nibabel as nib

    probs = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").get_fdata(), np.float32)
    path = tmp_path / "coarse.npy"
    np.save(path, np.ascontiguousarray(probs[::2, ::2, ::2]))
    return path


def test_prediction_of_another_size_is_resampled_when_the_user_agrees(
    demo_window: Any, qtbot: Any, demo_dir: Path, tmp_path: Path
) -> None:
    coarse = _half_resolution_probabilities(demo_dir, tmp_path)
    asked: list[str] = []
    demo_window.show_dialogs = True
    demo_window.ask_resample = lambda message: asked.append(message) or True
    demo_window.open_prediction(coarse)
    wait_idle(qtbot, demo_window)
    assert len(asked) == 1 and "(49, 58, 47, 3)" in asked[0] and "(98, 116, 94)" in asked[0]
    pred = demo_window.state.prediction
    assert pred is not None and pred.spatial_shape == (98, 116, 94)
    assert any("resampled from 49x58x47" in n.lower() for n in pred.notes)
    # Resampled probabilities still agree with the full-resolution reference on most voxels.
    import nibabel as nib

    ref = np.argmax(np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj), axis=-1)
    got = np.argmax(np.asarray(pred.channels_first()), axis=0)
    assert np.mean(got == ref) > 0.85


def test_declining_the_resampling_keeps_the_prediction_and_says_why(
    demo_window: Any, qtbot: Any, demo_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "critical", staticmethod(lambda parent, title, text: shown.append(text))
    )
    coarse = _half_resolution_probabilities(demo_dir, tmp_path)
    before = demo_window.state.prediction
    demo_window.show_dialogs = True
    demo_window.ask_resample = lambda message: False
    demo_window.open_prediction(coarse)
    wait_idle(qtbot, demo_window)
    assert demo_window.state.prediction is before
    assert shown and "does not match image" in shown[-1] and "--resample" in shown[-1]
