"""Acquisition plane and unknown orientation on real files (pydicom-data, nibabel's data).

* pydicom-data's MR2_UNCR.dcm: one 1024x1024 oblique sagittal slice -> sagittal view.
* MR_small.dcm re-labelled coronal / written as a 3-slice sagittal series (generated here with
  known orientation) -> coronal / sagittal.
* NIfTI volumes: isotropic -> axial; thick sagittal slices -> sagittal; the user's choice wins.
* emri_small.dcm (multi-frame, no position/orientation tags), a NIfTI without sform/qform, a
  .npy stack: orientation unknown, said once and the same way by ``info``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from segviewer.core.orientation import (
    acquisition_view,
    display_axes,
    initial_view,
    orientation_code,
    orientation_known,
)
from segviewer.core.types import SegviewerError
from segviewer.io.images import describe_image, load_image


def _in_plane(vol_shape: tuple[int, int, int], view: str, affine: np.ndarray) -> bool:
    """Whether the view shows the whole 2-D slice (its slice axis is the length-1 axis)."""
    return vol_shape[display_axes(affine, view).slice_axis] == 1


def test_sagittal_mr_slice_opens_sagittal() -> None:
    path = get_testdata_file("MR2_UNCR.dcm")
    vol = load_image(path)
    assert vol.shape == (1, 1024, 1024)
    view = initial_view(vol)
    assert view == "sagittal" and _in_plane(vol.shape, view, vol.affine)
    assert not _in_plane(vol.shape, "axial", vol.affine)  # the old one-voxel stripe
    assert initial_view(vol, chosen="axial") == "axial"  # the user's choice wins
    with pytest.raises(SegviewerError, match="unknown view"):
        initial_view(vol, chosen="oblique")


def _mr_small_as(tmp: Path, iop: list[float], positions: list[list[float]]) -> Path:
    src = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    folder = tmp / "series"
    folder.mkdir()
    for k, ipp in enumerate(positions):
        ds = src.copy()
        ds.ImageOrientationPatient = iop
        ds.ImagePositionPatient = ipp
        ds.InstanceNumber = k + 1
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(folder / f"im{k}.dcm")
    return folder


def test_coronal_slice_opens_coronal(tmp_path: Path) -> None:
    folder = _mr_small_as(tmp_path, [1, 0, 0, 0, 0, -1], [[-80.0, 10.0, 60.0]])
    vol = load_image(folder / "im0.dcm")
    assert initial_view(vol) == "coronal" and _in_plane(vol.shape, "coronal", vol.affine)
    assert orientation_known(vol) and orientation_code(vol) == vol.orientation


def test_sagittal_series_opens_sagittal(tmp_path: Path) -> None:
    # three sagittal slices 0.3 mm apart (finer than the pixels: only the stacking axis says
    # how it was acquired)
    folder = _mr_small_as(
        tmp_path, [0, 1, 0, 0, 0, -1], [[x, -40.0, 50.0] for x in (0.0, 0.3, 0.6)]
    )
    vol = load_image(folder)
    assert vol.shape[0] == 3
    assert initial_view(vol) == "sagittal"


def test_nifti_volumes_open_in_their_acquisition_plane(
    tmp_path: Path, nibabel_anatomical: Path
) -> None:
    iso = load_image(nibabel_anatomical)  # 2 mm isotropic
    assert initial_view(iso) == "axial"
    img = nib.load(nibabel_anatomical)
    thick = img.affine @ np.diag([2.5, 1.0, 1.0, 1.0])  # 5 x 2 x 2 mm: sagittal slices
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), thick), tmp_path / "sag.nii")
    vol = load_image(tmp_path / "sag.nii")
    assert initial_view(vol) == "sagittal"
    assert acquisition_view(thick, vol.shape) == "sagittal"
    cor = img.affine @ np.diag([1.0, 2.0, 1.0, 1.0])
    assert acquisition_view(cor, vol.shape) == "coronal"


def test_unknown_orientation_is_said_once(tmp_path: Path, nibabel_anatomical: Path) -> None:
    multi = get_testdata_file("emri_small.dcm")  # 10 frames, no position/orientation tags
    vol = load_image(multi)
    assert not orientation_known(vol) and orientation_code(vol) == "unknown"
    info = describe_image(multi)
    assert info["orientation"] == "unknown"
    assert any("orientation unknown" in n for n in info["notes"])
    assert not any(code in str(info) for code in ("'SPL'", "RAS", "Radiological"))

    img = nib.load(nibabel_anatomical)
    bare = nib.Nifti1Image(np.asarray(img.dataobj), img.affine)
    bare.set_sform(None, code=0)
    bare.set_qform(None, code=0)
    nib.save(bare, tmp_path / "bare.nii")
    assert describe_image(tmp_path / "bare.nii")["orientation"] == "unknown"
    assert describe_image(nibabel_anatomical)["orientation"] == "LAS"

    np.save(tmp_path / "stack.npy", np.zeros((4, 8, 8), np.float32))
    stack = load_image(tmp_path / "stack.npy")
    assert orientation_code(stack) == "unknown" and initial_view(stack) == "axial"
