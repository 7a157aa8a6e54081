"""NIfTI / PNG / NumPy writers: values, geometry and header fields survive a round trip."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from segviewer.core.types import SegviewerError
from segviewer.io.writers import write_nifti, write_npy, write_png


def _read_png(path: Path) -> tuple[np.ndarray, str]:
    with Image.open(path) as im:
        return np.asarray(im).copy(), im.mode


def test_nifti_keeps_affine_units_and_values(tmp_path: Path, demo_dir: Path) -> None:
    src = nib.load(demo_dir / "t1.nii.gz")
    data = np.asanyarray(src.dataobj)
    mask = data > np.percentile(data, 60)
    out = write_nifti(mask, src.affine, tmp_path / "brain.nii.gz", description="brain mask")
    img = nib.load(out)
    assert img.shape == src.shape
    assert np.allclose(img.affine, src.affine)
    sform, scode = img.header.get_sform(coded=True)
    qform, qcode = img.header.get_qform(coded=True)
    assert int(scode) == 1 and int(qcode) == 1
    assert np.allclose(sform, src.affine) and np.allclose(qform, src.affine, atol=1e-5)
    assert img.header.get_xyzt_units()[0] == "mm"
    assert img.get_data_dtype() == np.uint8
    got = np.asanyarray(img.dataobj)
    assert got.dtype == np.uint8
    assert np.array_equal(got, mask.astype(np.uint8))
    assert img.header["descrip"].tobytes().rstrip(b"\0") == b"brain mask"


def test_nifti_oblique_anisotropic_affine_and_4d_float(
    tmp_path: Path, nibabel_anatomical: Path
) -> None:
    src = nib.load(nibabel_anatomical)
    theta = np.deg2rad(12.0)
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.9, 1.1, 3.0])
    aff[:3, 3] = [-20.5, 31.0, 7.25]
    probs = np.random.default_rng(0).random((*src.shape, 3), dtype=np.float32)
    out = write_nifti(probs, aff, tmp_path / "p.nii")
    img = nib.load(out)
    assert img.shape == (*src.shape, 3)
    assert np.allclose(img.affine, aff)
    assert np.allclose(img.header.get_qform(), aff, atol=1e-4)
    assert np.array_equal(np.asanyarray(img.dataobj), probs)


def test_nifti_uint16_labels_and_refusals(tmp_path: Path) -> None:
    labels = np.zeros((4, 5, 6), np.uint16)
    labels[1, 2, 3] = 300
    out = write_nifti(labels, np.eye(4), tmp_path / "l.nii.gz")
    img = nib.load(out)
    assert img.get_data_dtype() == np.uint16
    assert np.array_equal(np.asanyarray(img.dataobj), labels)
    assert float(img.header["cal_max"]) == 300.0
    with pytest.raises(SegviewerError, match="already exists; use --force"):
        write_nifti(labels, np.eye(4), out)
    with pytest.raises(SegviewerError, match=r"\.nii or \.nii\.gz"):
        write_nifti(labels, np.eye(4), tmp_path / "l.png")
    with pytest.raises(SegviewerError, match="finite 4x4"):
        write_nifti(labels, np.full((4, 4), np.nan), tmp_path / "bad.nii")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.nii.gz"]


def test_png_grey_u8_u16_bool_rgb_rgba(tmp_path: Path, demo_dir: Path) -> None:
    t1 = np.asanyarray(nib.load(demo_dir / "t1.nii.gz").dataobj)
    sl = np.ascontiguousarray(t1[:, :, 47])
    got, mode = _read_png(write_png(sl, tmp_path / "u8.png"))
    assert mode == "L" and np.array_equal(got, sl)

    u16 = (sl.astype(np.uint16) * 257).byteswap().view(np.dtype(">u2"))  # non-native order
    got, mode = _read_png(write_png(u16, tmp_path / "u16.png"))
    assert (
        mode.startswith("I;16")
        and got.astype(np.uint16).tolist() == (sl.astype(np.uint16) * 257).tolist()
    )

    got, _ = _read_png(write_png(sl > 100, tmp_path / "b.png"))
    assert set(np.unique(got).tolist()) == {0, 255}
    assert np.array_equal(got == 255, sl > 100)

    rgb = np.stack([sl, 255 - sl, sl // 2], axis=-1)
    got, mode = _read_png(write_png(rgb, tmp_path / "rgb.png"))
    assert mode == "RGB" and np.array_equal(got, rgb)
    rgba = np.concatenate([rgb, np.full((*sl.shape, 1), 128, np.uint8)], axis=-1)
    got, mode = _read_png(write_png(rgba, tmp_path / "rgba.png"))
    assert mode == "RGBA" and np.array_equal(got, rgba)


def test_png_refusals(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="cannot write an array"):
        write_png(np.zeros((3, 3), np.float32), tmp_path / "f.png")
    with pytest.raises(SegviewerError, match=r"must end in \.png"):
        write_png(np.zeros((3, 3), np.uint8), tmp_path / "f.jpg")
    assert list(tmp_path.iterdir()) == []


def test_npy_round_trip_without_pickle(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).standard_normal((3, 4, 5, 2)).astype(np.float32)
    out = write_npy(arr, tmp_path / "a.npy")
    back = np.load(out, allow_pickle=False)
    assert back.dtype == np.float32 and np.array_equal(back, arr)
    with pytest.raises(SegviewerError, match="object array"):
        write_npy(np.array([{"a": 1}], dtype=object), tmp_path / "o.npy")
    with pytest.raises(SegviewerError, match="already exists"):
        write_npy(arr, out)
    write_npy(arr * 2, out, force=True)
    assert np.array_equal(np.load(out, allow_pickle=False), arr * 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_nifti_of_dicom_mask_lands_on_the_dicom_geometry(tmp_path: Path, mr_small: Path) -> None:
    """A mask of a DICOM image, written with the image's RAS affine, sits where DICOM says."""
    import pydicom
    from nibabel.affines import apply_affine

    from segviewer.io.images import load_image

    ds = pydicom.dcmread(mr_small)
    vol = load_image(mr_small)
    mask = np.asarray(vol.data) > np.percentile(vol.data, 75)
    out = write_nifti(mask, vol.affine, tmp_path / "mr_mask.nii.gz")
    img = nib.load(out)
    assert np.array_equal(np.asanyarray(img.dataobj), mask.astype(np.uint8))
    ipp = np.array(ds.ImagePositionPatient, float)
    row_cos = np.array(ds.ImageOrientationPatient[:3], float)  # direction of increasing column
    col_cos = np.array(ds.ImageOrientationPatient[3:], float)  # direction of increasing row
    dr, dc = (float(v) for v in ds.PixelSpacing)
    for r, c in [(0, 0), (10, 50), (63, 63)]:
        lps = ipp + r * dr * col_cos + c * dc * row_cos
        ras = lps * np.array([-1.0, -1.0, 1.0])
        assert np.allclose(apply_affine(img.affine, [0, r, c]), ras, atol=1e-4)
    assert nib.aff2axcodes(img.affine) == tuple(vol.orientation)
