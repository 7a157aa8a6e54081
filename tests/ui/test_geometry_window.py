"""The window and geometry: acquisition plane, unknown orientation, Open prediction's layout
and kind choice, world-space resampling, a class table that does not start at background.

Real files: pydicom-data's MR2_UNCR.dcm (a sagittal 1024x1024 slice), emri_small.dcm (no
position/orientation tags), nibabel's anatomical.nii, the bundled demo; predictions and tables
generated from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file
from ui_helpers import wait_idle

from segviewer.ui.view_toolbar import CONVENTION_TEXT, UNKNOWN_TEXT


def test_a_sagittal_slice_opens_sagittal_and_in_plane(window: Any, qtbot: Any) -> None:
    window.open_image(get_testdata_file("MR2_UNCR.dcm"))
    wait_idle(qtbot, window)
    assert window.state.layout == "sagittal"
    canvas = window.canvas
    assert canvas.view == "sagittal" and canvas.n_slices() == 1
    letters = [lab.text() for lab in canvas._letters.values()]
    assert all(letters)  # a known orientation keeps its letters


def test_volumes_open_in_their_plane_unless_the_user_chose(
    window: Any, qtbot: Any, tmp_path: Path, nibabel_anatomical: Path
) -> None:
    img = nib.load(nibabel_anatomical)
    thick = img.affine @ np.diag([2.5, 1.0, 1.0, 1.0])  # 5 mm sagittal slices
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), thick), tmp_path / "sag.nii")
    window.open_image(tmp_path / "sag.nii")
    wait_idle(qtbot, window)
    assert window.state.layout == "sagittal"
    window.open_image(nibabel_anatomical)  # isotropic: axial (the window's pick changes)
    wait_idle(qtbot, window)
    assert window.state.layout == "axial"
    window.set_view("coronal")  # the user's choice is kept for volumes
    window.open_image(tmp_path / "sag.nii")
    wait_idle(qtbot, window)
    assert window.state.layout == "coronal"
    window.open_image(get_testdata_file("MR2_UNCR.dcm"))  # a single slice: always in-plane
    wait_idle(qtbot, window)
    assert window.state.layout == "sagittal"


def test_unknown_orientation_has_no_letters_and_no_convention(window: Any, qtbot: Any) -> None:
    window.open_image(get_testdata_file("emri_small.dcm"))
    wait_idle(qtbot, window)
    assert [lab.text() for lab in window.canvas._letters.values()] == [""] * 4
    assert window.toolbar.convention_label.text() == UNKNOWN_TEXT
    assert not window.radiological_action.isEnabled()
    from segviewer.ui.info_dialogs import image_info_text

    assert "Orientation (axis codes): unknown" in image_info_text(window.state)
    window.open_image(get_testdata_file("MR_small.dcm"))
    wait_idle(qtbot, window)
    assert window.toolbar.convention_label.text() == CONVENTION_TEXT[True]
    assert all(lab.text() for lab in window.canvas._letters.values())


@pytest.fixture()
def zcxy(tmp_path: Path, demo_dir: Path) -> Path:
    probs = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj, dtype=np.float32)
    path = tmp_path / "zcxy.npy"
    np.save(path, np.ascontiguousarray(probs.transpose(2, 3, 0, 1)))
    return path


def test_open_prediction_shows_the_detected_reading_in_words(
    window: Any, qtbot: Any, demo_dir: Path, zcxy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QDialog

    from segviewer.ui.prediction_dialog import PredictionDialog

    window.open_image(demo_dir / "t1.nii.gz")
    wait_idle(qtbot, window)
    seen: dict[str, Any] = {}

    def accept(dialog: PredictionDialog) -> int:
        seen["layout"] = dialog.layout_box.currentText()
        seen["kind"] = dialog.kind_box.currentText()
        seen["resample"] = dialog.resample.isVisibleTo(dialog)
        seen["open"] = dialog.open_button.isEnabled()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(PredictionDialog, "exec", accept)
    window.show_dialogs = True
    window.controller.open_prediction_asking(zcxy)
    wait_idle(qtbot, window)
    assert seen["layout"] == (
        "ZCXY (detected): image axis 2 (94), classes (3), image axis 0 (98), image axis 1 (116)"
    )
    assert seen["kind"].startswith("detected: probabilities")
    assert seen["resample"] is False and seen["open"] is True  # a permutation fits: no offer
    pred = window.state.prediction
    assert pred is not None and pred.layout.name == "ZCXY" and pred.resampling is None


def test_open_prediction_on_another_grid_resamples_in_world_space(
    window: Any, qtbot: Any, demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PySide6.QtWidgets import QDialog

    from segviewer.ui.prediction_dialog import PredictionDialog

    src = nib.load(demo_dir / "tissue_prob.nii.gz")
    labels = np.asarray(src.dataobj).argmax(axis=-1).astype(np.uint8)
    aff = src.affine.copy()
    aff[:3, 3] = (src.affine @ [10, 12, 8, 1])[:3]  # an atlas on its own box
    nib.save(nib.Nifti1Image(labels[10:87, 12:100, 8:85], aff), tmp_path / "atlas.nii.gz")
    window.open_image(demo_dir / "t1.nii.gz")
    wait_idle(qtbot, window)
    offered: list[bool] = []

    def accept(dialog: PredictionDialog) -> int:
        offered.append(dialog.resample.isVisibleTo(dialog) and dialog.resample.isChecked())
        assert "world space" in dialog.resample.text()
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(PredictionDialog, "exec", accept)
    window.show_dialogs = True
    messages: list[str] = []
    window.controller.notified.connect(lambda notice: messages.append(str(notice.text)))
    window.controller.open_prediction_asking(tmp_path / "atlas.nii.gz")
    wait_idle(qtbot, window)
    assert offered == [True]
    pred = window.state.prediction
    assert pred is not None and pred.resampling is not None
    assert pred.resampling.geometry == "world"
    got = np.asarray(pred.channels_first())
    assert np.array_equal(got[10:87, 12:100, 8:85], labels[10:87, 12:100, 8:85])
    assert not got[:10].any()  # outside the atlas's box: background, not stretched labels
    assert any("in world space through both affines" in m for m in messages)
    from segviewer.ui.info_dialogs import prediction_details_text

    assert "Resampling: Resampled from 77x88x77" in prediction_details_text(window.state)


def test_class_table_offset_in_the_window(
    window: Any, qtbot: Any, demo_dir: Path, tmp_path: Path
) -> None:
    table = tmp_path / "labels.csv"
    table.write_text("index,name\n0,Grey_Matter\n1,White_Matter\n", encoding="utf-8")
    src = nib.load(demo_dir / "tissue_prob.nii.gz")
    labels = np.asarray(src.dataobj).argmax(axis=-1).astype(np.uint8)
    nib.save(nib.Nifti1Image(labels, src.affine), tmp_path / "lab.nii.gz")
    messages: list[str] = []
    window.controller.notified.connect(lambda notice: messages.append(str(notice.text)))
    window.open_image(demo_dir / "t1.nii.gz")
    wait_idle(qtbot, window)
    window.open_prediction(tmp_path / "lab.nii.gz")
    wait_idle(qtbot, window)
    window.controller.open_class_table(table)
    wait_idle(qtbot, window)
    assert window.state.table.names[0] == "Grey_Matter"  # as written: shifted
    assert any("looks shifted by one" in m for m in messages)
    window.classes_offset_action.setChecked(True)  # Classes > Table starts at the first ...
    wait_idle(qtbot, window)
    assert window.state.table.names == ("background", "Grey_Matter", "White_Matter")
    window.classes_offset_action.setChecked(False)
    wait_idle(qtbot, window)
    assert window.state.table.names[0] == "Grey_Matter"


def test_scripting_api_resamples_in_world_space(qtbot: Any, demo_dir: Path, tmp_path: Path) -> None:
    from segviewer.ui import api

    src = nib.load(demo_dir / "tissue_prob.nii.gz")
    labels = np.asarray(src.dataobj).argmax(axis=-1).astype(np.uint8)
    aff = src.affine @ np.diag([2.0, 2.0, 2.0, 1.0])  # the same field at 4 mm
    nib.save(nib.Nifti1Image(labels[::2, ::2, ::2], aff), tmp_path / "coarse.nii.gz")
    v = api.view(demo_dir / "t1.nii.gz", tmp_path / "coarse.nii.gz", resample=True, show=False)
    qtbot.addWidget(v.window)
    pred = v.state.prediction
    assert pred is not None and pred.resampling is not None
    assert pred.resampling.geometry == "world" and pred.resampling.from_spacing == (4.0, 4.0, 4.0)
    assert np.mean(np.asarray(pred.channels_first()) == labels) > 0.85


def test_open_prediction_lists_the_layouts_of_the_chosen_kind(
    window: Any, qtbot: Any, demo_dir: Path, zcxy: Path
) -> None:
    """Choosing 'label map' leaves only layouts without a class axis (none for this 4-D
    file: Open is disabled); back to probabilities, the class-axis layouts and the chosen
    one return."""
    from segviewer.io.predictions import prediction_choices
    from segviewer.ui.prediction_dialog import PredictionDialog

    window.open_image(demo_dir / "t1.nii.gz")
    wait_idle(qtbot, window)
    shape = window.state.volume.shape
    choices = prediction_choices(zcxy, shape)
    dialog = PredictionDialog(str(zcxy), choices, shape, window)
    qtbot.addWidget(dialog)
    names = [dialog.layout_box.itemData(i) for i in range(dialog.layout_box.count())]
    assert names[0] == "ZCXY" and all("C" in n for n in names)
    dialog.layout_box.setCurrentIndex(len(names) - 1)
    last = names[-1]
    dialog.kind_box.setCurrentIndex(dialog.kind_box.findData("labels"))
    assert dialog.layout_box.count() == 1 and not dialog.layout_box.isEnabled()
    assert "no class axis" in dialog.layout_box.currentText()
    assert not dialog.open_button.isEnabled()
    dialog.kind_box.setCurrentIndex(dialog.kind_box.findData("logits"))
    assert dialog.layout_box.isEnabled() and dialog.open_button.isEnabled()
    assert [dialog.layout_box.itemData(i) for i in range(dialog.layout_box.count())] == names
    assert dialog.layout_box.currentData() == last  # the user's choice survived
    assert dialog.chosen()[:2] == (last if last != "ZCXY" else None, "logits")
    dialog.kind_box.setCurrentIndex(0)  # detected: everything that fits, ZCXY first
    assert dialog.layout_box.currentData() in names
    assert dialog.chosen()[1] is None
