"""The shared raw readers (io/arrays.py) on real MRI: values read, memory maps kept, and every
damaged file turned into a SegviewerError naming the file before anything large is allocated."""

from __future__ import annotations

import io
import math
import pickle
import random
import zipfile
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image

from segviewer.core.types import SegviewerError
from segviewer.io.arrays import (
    native,
    nifti_data_file,
    nifti_scaling,
    npz_member,
    nrrd_dtype,
    open_nifti,
    open_npy,
    open_pil,
    open_tiff,
    pil_array,
    pil_dtype,
    read_npy_header,
    read_npz,
    read_nrrd,
    read_nrrd_header,
    tiff_series_array,
)
from segviewer.io.common import jsonable


@pytest.fixture(scope="module")
def t1(nibabel_anatomical: Path) -> np.ndarray:
    """nibabel's anatomical.nii voxels (33, 41, 25) int16, native order."""
    return np.asarray(nib.load(nibabel_anatomical).dataobj).astype(np.int16)


@pytest.fixture(scope="module")
def mr_pixels(mr_small: Path) -> np.ndarray:
    """MR_small.dcm pixels (64, 64) int16."""
    return np.asarray(pydicom.dcmread(mr_small).pixel_array)


def _last(path: Path, names: tuple[str, ...]) -> str:
    return names[-1]


# --------------------------------------------------------------------------------------
# .npy / .npz


def test_open_npy_memory_maps_real_volume(tmp_path: Path, t1: np.ndarray) -> None:
    np.save(tmp_path / "t1.npy", t1)
    arr, header = open_npy(tmp_path / "t1.npy")
    assert isinstance(arr, np.memmap) and not arr.flags.writeable
    assert header.shape == (33, 41, 25) and header.dtype == np.int16
    assert header.data_offset + header.nbytes == (tmp_path / "t1.npy").stat().st_size
    np.testing.assert_array_equal(arr, t1)
    assert read_npy_header(tmp_path / "t1.npy") == header


def test_npy_big_endian_stays_mapped_until_native(tmp_path: Path, t1: np.ndarray) -> None:
    np.save(tmp_path / "be.npy", t1.astype(">i2"))
    arr, header = open_npy(tmp_path / "be.npy")
    assert isinstance(arr, np.memmap) and header.dtype == np.dtype(">i2")
    swapped = native(arr)
    assert swapped.dtype == np.dtype("=i2") and not isinstance(swapped, np.memmap)
    np.testing.assert_array_equal(swapped, t1)
    assert native(t1) is t1  # already native: no copy


def test_npy_refusals_name_the_file(tmp_path: Path, t1: np.ndarray) -> None:
    np.save(tmp_path / "cut.npy", t1)
    raw = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SegviewerError, match=r"cut\.npy: the \.npy header claims \(33, 41, 25\)"):
        open_npy(tmp_path / "cut.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SegviewerError, match=r"obj\.npy: .*refuses pickled data"):
        open_npy(tmp_path / "obj.npy")
    (tmp_path / "p.npy").write_bytes(pickle.dumps(t1))
    with pytest.raises(SegviewerError, match=r"p\.npy: not a NumPy \.npy array.*numpy\.save"):
        open_npy(tmp_path / "p.npy")


def test_npz_pick_only_consulted_for_several_arrays(tmp_path: Path, t1: np.ndarray) -> None:
    np.savez(tmp_path / "one.npz", scan=t1)
    arr, member = read_npz(tmp_path / "one.npz", _last)
    assert member.key == "scan" and member.names == ("scan",)
    np.testing.assert_array_equal(arr, t1)
    np.savez_compressed(tmp_path / "two.npz", a=t1[:2], b=t1)
    member = npz_member(tmp_path / "two.npz", _last)
    assert (member.names, member.key, member.header.shape) == (("a", "b"), "b", (33, 41, 25))
    arr, _ = read_npz(tmp_path / "two.npz", _last)
    np.testing.assert_array_equal(arr, t1)


def test_npz_absurd_member_refused_before_reading(tmp_path: Path) -> None:
    # a member whose header claims 40 GB but holds 16 bytes: refused from the header alone
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000)}
    )
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("x.npy", header.getvalue() + b"\x00" * 16)
    with pytest.raises(SegviewerError, match=r"huge\.npz \[x\].*claims \(100000, 100000\)"):
        read_npz(tmp_path / "huge.npz", _last)


def test_npz_damaged_archives(tmp_path: Path, t1: np.ndarray) -> None:
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(SegviewerError, match=r"bad\.npz: not a valid \.npz \(zip\) archive"):
        read_npz(tmp_path / "bad.npz", _last)
    with zipfile.ZipFile(tmp_path / "empty.npz", "w") as zf:
        zf.writestr("readme.txt", "no arrays")
    with pytest.raises(SegviewerError, match=r"empty\.npz: the \.npz archive holds no arrays"):
        read_npz(tmp_path / "empty.npz", _last)
    # flip bytes inside the deflated data: the CRC/inflate check fails while reading
    np.savez_compressed(tmp_path / "crc.npz", t1=t1)
    raw = bytearray((tmp_path / "crc.npz").read_bytes())
    for k in range(200, 260):
        raw[k] ^= 0xFF
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    with pytest.raises(SegviewerError, match=r"crc\.npz"):
        read_npz(tmp_path / "crc.npz", _last)


# --------------------------------------------------------------------------------------
# NIfTI


def test_open_nifti_real_files(nibabel_anatomical: Path, demo_dir: Path, t1: np.ndarray) -> None:
    img = open_nifti(nibabel_anatomical, mmap="r")
    assert img.shape == (33, 41, 25)
    assert nifti_scaling(img) == (1.0, 0.0)
    voxels = nifti_data_file(img, nibabel_anatomical)
    assert (voxels.path, voxels.compressed, voxels.offset) == (nibabel_anatomical, False, 352)
    mapped = np.asanyarray(img.dataobj)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, t1)
    probs = open_nifti(demo_dir / "tissue_prob.nii.gz")
    slope, inter = nifti_scaling(probs)
    assert math.isclose(slope, 1 / 255, rel_tol=1e-6) and inter == 0.0
    assert nifti_data_file(probs, demo_dir / "tissue_prob.nii.gz").compressed


def test_nifti_damage_is_reported(tmp_path: Path, nibabel_anatomical: Path) -> None:
    (tmp_path / "noise.nii").write_bytes(random.Random(3).randbytes(4000))
    with pytest.raises(SegviewerError, match=r"noise\.nii: not a valid NIfTI file"):
        open_nifti(tmp_path / "noise.nii")
    (tmp_path / "tiny.nii").write_bytes(nibabel_anatomical.read_bytes()[:100])
    with pytest.raises(SegviewerError, match=r"tiny\.nii: not a valid NIfTI file"):
        open_nifti(tmp_path / "tiny.nii")
    raw = nibabel_anatomical.read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[: len(raw) // 2])
    img = open_nifti(tmp_path / "cut.nii", mmap="r")  # the header alone is intact
    with pytest.raises(
        SegviewerError, match=r"cut\.nii: the header claims \(33, 41, 25\).*truncated"
    ):
        nifti_data_file(img, tmp_path / "cut.nii")


def test_nifti_pair_and_analyze(tmp_path: Path, t1: np.ndarray) -> None:
    pair = nib.Nifti1Pair(t1, np.diag([2.0, 2.0, 2.0, 1.0]))
    nib.save(pair, tmp_path / "pair.hdr")
    img = open_nifti(tmp_path / "pair.hdr")
    assert nifti_data_file(img, tmp_path / "pair.hdr").path == tmp_path / "pair.img"
    (tmp_path / "pair.img").unlink()
    with pytest.raises(SegviewerError, match=r"pair\.hdr: the voxel file pair\.img .* missing"):
        nifti_data_file(open_nifti(tmp_path / "pair.hdr"), tmp_path / "pair.hdr")
    nib.save(nib.AnalyzeImage(t1, np.eye(4)), tmp_path / "old.hdr")
    with pytest.raises(SegviewerError, match=r"old\.hdr: this is Analyze 7\.5 format"):
        open_nifti(tmp_path / "old.hdr")


# --------------------------------------------------------------------------------------
# NRRD


def test_nrrd_header_then_data(tmp_path: Path, t1: np.ndarray) -> None:
    nrrd.write(str(tmp_path / "t1.nrrd"), t1, {"encoding": "gzip"}, index_order="F")
    header, sizes, dtype = read_nrrd_header(tmp_path / "t1.nrrd")
    assert sizes == (33, 41, 25) and dtype == np.int16 and header["encoding"] == "gzip"
    data, _ = read_nrrd(tmp_path / "t1.nrrd", sizes, dtype)
    np.testing.assert_array_equal(data, t1)


def test_nrrd_types_and_damage(tmp_path: Path, t1: np.ndarray) -> None:
    path = tmp_path / "x.nrrd"
    assert nrrd_dtype({"type": "Unsigned Short Int "}, path) == np.uint16
    assert nrrd_dtype({"type": "double"}, path) == np.float64
    with pytest.raises(SegviewerError, match=r"x\.nrrd: NRRD element type 'block' is not a number"):
        nrrd_dtype({"type": "block"}, path)
    (tmp_path / "no.nrrd").write_bytes(b"hello, not nrrd\n")
    with pytest.raises(SegviewerError, match=r"no\.nrrd: not a valid NRRD header"):
        read_nrrd_header(tmp_path / "no.nrrd")
    nrrd.write(str(tmp_path / "raw.nrrd"), t1, {"encoding": "raw"}, index_order="F")
    raw = (tmp_path / "raw.nrrd").read_bytes()
    (tmp_path / "cut.nrrd").write_bytes(raw[: len(raw) - 5000])
    # caught from the header and the file size, before any data is read
    with pytest.raises(SegviewerError, match=r"cut\.nrrd: the header claims .* truncated"):
        read_nrrd_header(tmp_path / "cut.nrrd")
    huge = raw.replace(b"sizes: 33 41 25", b"sizes: 33000 41000 25000")
    (tmp_path / "huge.nrrd").write_bytes(huge)
    with pytest.raises(SegviewerError, match=r"huge\.nrrd: the header claims \(33000, 41000"):
        read_nrrd_header(tmp_path / "huge.nrrd")


# --------------------------------------------------------------------------------------
# Pillow


def test_pil_reads_16_bit_and_1_bit(tmp_path: Path, mr_pixels: np.ndarray) -> None:
    as_u16 = mr_pixels.astype(np.uint16)
    Image.fromarray(as_u16).save(tmp_path / "mr.png")
    with open_pil(tmp_path / "mr.png") as im:
        assert pil_dtype(im.mode) == np.uint16
        arr = pil_array(im)
    assert arr.dtype == np.dtype("=u2")
    np.testing.assert_array_equal(arr, as_u16)
    mask = mr_pixels > np.median(mr_pixels)
    Image.fromarray(mask).save(tmp_path / "mask.png")  # mode "1"
    with open_pil(tmp_path / "mask.png") as im:
        assert im.mode == "1"
        bits = pil_array(im)
    assert bits.dtype == np.uint8
    np.testing.assert_array_equal(bits, mask.astype(np.uint8))


def test_pil_damage(tmp_path: Path, mr_pixels: np.ndarray) -> None:
    (tmp_path / "x.png").write_bytes(random.Random(5).randbytes(300))
    with (
        pytest.raises(SegviewerError, match=r"x\.png: not a readable image.*really PNG"),
        open_pil(tmp_path / "x.png"),
    ):
        pass
    Image.fromarray(mr_pixels.astype(np.uint16)).save(tmp_path / "t.png")
    raw = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(raw[: len(raw) // 2])
    with (
        pytest.raises(SegviewerError, match=r"t\.png: the image could not be decoded.*truncated"),
        open_pil(tmp_path / "t.png") as im,
    ):
        pil_array(im)


# --------------------------------------------------------------------------------------
# TIFF


def test_tiff_big_endian_stack(tmp_path: Path, t1: np.ndarray) -> None:
    stack = np.ascontiguousarray(t1.transpose(2, 0, 1))  # (25, 33, 41) pages
    tifffile.imwrite(tmp_path / "s.tif", stack.astype(">i2"), byteorder=">")
    with open_tiff(tmp_path / "s.tif") as tif:
        arr = tiff_series_array(tif, tmp_path / "s.tif")
        assert len(tif.pages) == 25
    assert arr.shape == (25, 33, 41)
    np.testing.assert_array_equal(native(arr), stack)


def test_tiff_damage(tmp_path: Path, t1: np.ndarray) -> None:
    (tmp_path / "x.tif").write_bytes(b"not a tiff at all" * 10)
    with (
        pytest.raises(SegviewerError, match=r"x\.tif: the TIFF could not be read"),
        open_tiff(tmp_path / "x.tif"),
    ):
        pass
    tifffile.imwrite(tmp_path / "c.tif", t1.transpose(2, 0, 1))
    raw = (tmp_path / "c.tif").read_bytes()
    (tmp_path / "c.tif").write_bytes(raw[: len(raw) // 3])
    with (
        pytest.raises(SegviewerError, match=r"c\.tif: .*(truncated|corrupt)"),
        open_tiff(tmp_path / "c.tif") as tif,
    ):
        tiff_series_array(tif, tmp_path / "c.tif")


# --------------------------------------------------------------------------------------
# jsonable (common)


def test_jsonable_is_strict_json(tmp_path: Path) -> None:
    import json

    value = {
        1: (np.float32(np.nan), np.int64(7), float("inf")),
        "p": tmp_path,
        "a": np.arange(3, dtype=np.uint8),
    }
    out = jsonable(value)
    assert out == {"1": [None, 7, None], "p": str(tmp_path), "a": [0, 1, 2]}
    json.dumps(out, allow_nan=False)
