"""The window's DICOM SEG parts: the export dialog's SEG option and identifiers choice, a SEG
opened as a prediction (placed on the series, named by its segments), and the model dialog's
device and input layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from mr_series_data import write_mr_series
from ui_helpers import wait_idle

from segviewer.core.classes import ClassTable
from segviewer.io import dicomseg


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ui_mr") / "series"
    write_mr_series(folder)
    return folder


def _open_series_with_labels(window: Any, qtbot: Any, series: Path, tmp_path: Path) -> np.ndarray:
    window.open_image(series)
    wait_idle(qtbot, window)
    vol = window.state.volume
    d = np.asarray(vol.data)
    lab = np.zeros(vol.shape, np.uint8)
    lab[d > 150] = 1
    lab[d > 300] = 2
    np.save(tmp_path / "labels.npy", lab)
    table = ClassTable.from_entries(
        [
            (0, "background", (0, 0, 0)),
            (1, "grey matter", (0, 90, 255)),
            (2, "white matter", (255, 200, 0)),
        ]
    )[0]
    window.set_class_table(table)
    with qtbot.waitSignal(window.labels_ready, timeout=30_000):
        window.controller.open_prediction(tmp_path / "labels.npy")
    wait_idle(qtbot, window)
    return lab


def test_export_dialog_writes_a_seg_only_with_consent(
    window: Any, qtbot: Any, series: Path, tmp_path: Path
) -> None:
    lab = _open_series_with_labels(window, qtbot, series, tmp_path)
    dlg = window.show_export_dialog()
    qtbot.addWidget(dlg)
    seg = dlg.format_checks["dicom-seg"]
    assert seg.isEnabled()
    assert not dlg.identifiers_check.isVisible()  # offered with DICOM SEG only
    seg.setChecked(True)
    dlg.format_checks["nifti"].setChecked(False)
    assert dlg.identifiers_check.isVisible() and "patient" in dlg.identifiers_note.text()
    dlg.folder_edit.setText(str(tmp_path / "out"))
    assert dlg.start() is None  # not ticked: explained, nothing written
    assert "identifiers" in dlg.message.text()
    assert not (tmp_path / "out").exists()
    dlg.identifiers_check.setChecked(True)
    with qtbot.waitSignal(dlg.export_finished, timeout=60_000) as sig:
        dlg.start()
    result = sig.args[0]
    ds = pydicom.dcmread(Path(result.out_dir) / "segmentation.dcm")
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["grey matter", "white matter"]
    manifest = json.loads(result.manifest.read_text())
    assert manifest["settings"]["allow_identifiers"] is True
    back = dicomseg.read_seg(
        Path(result.out_dir) / "segmentation.dcm",
        window.state.volume.shape,
        window.state.volume.affine,
    )
    np.testing.assert_array_equal(back.data, lab)


def test_export_dialog_offers_no_seg_for_nifti(demo_window: Any, qtbot: Any) -> None:
    dlg = demo_window.show_export_dialog()
    qtbot.addWidget(dlg)
    seg = dlg.format_checks["dicom-seg"]
    assert not seg.isEnabled() and "nifti" in seg.toolTip()


def test_a_seg_opens_as_prediction_with_its_segment_names(
    window: Any, qtbot: Any, series: Path, tmp_path: Path
) -> None:
    window.open_image(series)
    wait_idle(qtbot, window)
    vol = window.state.volume
    lab = (np.asarray(vol.data) > 200).astype(np.uint8)
    table = ClassTable.from_entries([(0, "background", (0, 0, 0)), (1, "lesion", (255, 0, 0))])[0]
    path = tmp_path / "other.dcm"
    dicomseg.write_seg(vol, [lab == 1], table, [1], path, allow_identifiers=True)
    with qtbot.waitSignal(window.labels_ready, timeout=30_000):
        window.controller.open_prediction(path)
    wait_idle(qtbot, window)
    st = window.state
    assert [c.name for c in st.table] == ["background", "lesion"]
    assert st.table[1].color == (255, 0, 0)
    np.testing.assert_array_equal(np.asarray(st.prediction.data), lab)


@pytest.mark.tf
def test_model_dialog_shows_device_and_layout(window: Any, qtbot: Any, tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((1, 16, 16)), keras.layers.Permute((2, 3, 1))])
    path = tmp_path / "cf.keras"
    model.save(path)
    dlg = window.model_dialog(False)
    with qtbot.waitSignal(dlg.model_opened, timeout=120_000):
        window.open_model(path)
    from segviewer.inference import device_description

    assert dlg.facts["device"].text() == device_description()
    assert dlg.facts["layout"].text() == "channels-first (N, C, H, W)"
