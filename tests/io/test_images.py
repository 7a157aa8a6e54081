"""Image readers: real MRI in every supported format, geometry, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
import random
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from segviewer.core.types import STACK_AFFINE, SegviewerError
from segviewer.io.common import natural_key
from segviewer.io.images import describe_image, list_dicom_series, load_image

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _data_file(name: str) -> Path:
    """A pydicom / pydicom-data test file; skip when pydicom-data is not installed."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} needs the pydicom-data package")
    return Path(str(path))


def _mr_small_pixels(mr_small: Path) -> np.ndarray:
    return np.asarray(pydicom.dcmread(mr_small).pixel_array)


# --------------------------------------------------------------------------------------
# NIfTI


def test_nifti_demo_keeps_affine_values_and_integer_dtype(demo_dir: Path) -> None:
    path = demo_dir / "t1.nii.gz"
    ref = nib.load(str(path))
    vol = load_image(path)
    assert vol.format == "nifti"
    assert vol.shape == (98, 116, 94)
    assert vol.data.dtype == np.uint8
    np.testing.assert_array_equal(vol.affine, ref.affine)
    np.testing.assert_array_equal(vol.data, np.asarray(ref.dataobj))
    assert vol.spacing == pytest.approx((2.0, 2.0, 2.0))
    assert vol.metadata["n_frames"] == 1


def test_uncompressed_nifti_is_memory_mapped_and_native(nibabel_anatomical: Path) -> None:
    ref = nib.load(str(nibabel_anatomical))
    vol = load_image(nibabel_anatomical)
    # anatomical.nii is big-endian int16: values equal, delivered in native byte order.
    assert vol.data.dtype == np.dtype("int16") and vol.data.dtype.isnative
    np.testing.assert_array_equal(vol.data, ref.get_fdata())
    np.testing.assert_array_equal(vol.affine, ref.affine)


def test_native_uncompressed_nifti_is_a_read_only_memmap(tmp_path: Path) -> None:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    aff = np.array([[0, 0, 1.5, -10], [-0.9, 0, 0, 20], [0, 1.2, 0, 5], [0, 0, 0, 1]], float)
    path = tmp_path / "map.nii"
    nib.save(nib.Nifti1Image(arr, aff), str(path))
    vol = load_image(path)
    assert isinstance(vol.data, np.memmap)
    assert not vol.data.flags.writeable
    np.testing.assert_array_equal(vol.data, arr)
    np.testing.assert_allclose(vol.affine, aff)
    # axis 0 -> posterior, axis 1 -> superior, axis 2 -> right
    assert describe_image(path)["orientation"] == "PSR"


def test_nifti_4d_frame_selection(nibabel_example4d: Path) -> None:
    ref = nib.load(str(nibabel_example4d))
    full = ref.get_fdata()
    for t in range(2):
        vol = load_image(nibabel_example4d, frame=t)
        assert vol.shape == (128, 96, 24)
        assert vol.data.dtype == np.int16
        assert vol.metadata["n_frames"] == 2 and vol.metadata["frame"] == t
        np.testing.assert_array_equal(vol.data, full[..., t])
    with pytest.raises(SegviewerError, match=r"frame 2 is out of range.*2 frames"):
        load_image(nibabel_example4d, frame=2)


def test_nifti_4d_uncompressed_frame_memmap(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 1000, (6, 7, 8, 3)).astype(np.int32)
    path = tmp_path / "four.nii"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    for t in range(3):
        vol = load_image(path, frame=t)
        assert isinstance(vol.data, np.memmap)
        np.testing.assert_array_equal(vol.data, arr[..., t])


def test_nifti_scaled_values_become_float32(tmp_path: Path) -> None:
    arr = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    img = nib.Nifti1Image(arr, np.diag([1.0, 2.0, 3.0, 1.0]))
    img.header.set_slope_inter(0.5, -3.0)
    path = tmp_path / "scaled.nii.gz"
    nib.save(img, str(path))
    vol = load_image(path)
    assert vol.data.dtype == np.float32
    np.testing.assert_allclose(vol.data, arr * 0.5 - 3.0)
    np.testing.assert_allclose(vol.data, nib.load(str(path)).get_fdata())
    assert any("scl_slope=0.5" in n for n in vol.metadata["notes"])


def test_nifti_2d_becomes_i_j_1(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "flat.nii"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    vol = load_image(path)
    assert vol.shape == (3, 4, 1)
    np.testing.assert_array_equal(vol.data[:, :, 0], arr)


def test_nifti_sform_preferred_over_qform(tmp_path: Path) -> None:
    arr = np.zeros((4, 4, 4), np.uint8)
    img = nib.Nifti1Image(arr, None)
    q = np.diag([3.0, 3.0, 3.0, 1.0])
    s = np.array([[-1.0, 0, 0, 10], [0, 1.0, 0, -4], [0, 0, 2.0, 7], [0, 0, 0, 1]])
    img.set_qform(q, code=1)
    img.set_sform(s, code=2)
    path = tmp_path / "forms.nii.gz"
    nib.save(img, str(path))
    vol = load_image(path)
    np.testing.assert_allclose(vol.affine, s)
    assert vol.metadata["affine_source"] == "sform"


def test_non_ascii_path(tmp_path: Path, demo_dir: Path) -> None:
    folder = tmp_path / "Töst ü 中文"
    folder.mkdir()
    path = folder / "scan.nii.gz"
    shutil.copy(demo_dir / "t1.nii.gz", path)
    vol = load_image(path)
    assert vol.shape == (98, 116, 94)
    assert vol.source == str(path)
    assert describe_image(str(path))["shape"] == [98, 116, 94]


def test_non_ascii_dicom_and_png_folders(tmp_path: Path, mr_small: Path) -> None:
    from PIL import Image

    series = tmp_path / "Séries ü 中文"
    pixels = _write_series(mr_small, series, [0.0, 1.0], names=["é1.dcm", "中2.dcm"])
    np.testing.assert_array_equal(load_image(series).data[1], pixels[1])
    pngs = tmp_path / "Bilder ö"
    pngs.mkdir()
    for k in (1, 2):
        Image.fromarray(np.full((3, 4), k, np.uint8)).save(pngs / f"schnitt{k}ä.png")
    assert load_image(pngs).data[:, 0, 0].tolist() == [1, 2]


# --------------------------------------------------------------------------------------
# Bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match=r"nope\.nii\.gz: no such file or folder"):
        load_image(tmp_path / "nope.nii.gz")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.nii"
    path.write_bytes(b"")
    with pytest.raises(SegviewerError, match=r"empty\.nii: the file is empty"):
        load_image(path)


def test_unknown_extension_lists_formats(tmp_path: Path) -> None:
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"hello world" * 20)
    with pytest.raises(
        SegviewerError, match=r"scan\.xyz: unknown image format '\.xyz'.*NIfTI.*NRRD"
    ):
        load_image(path)


def test_random_bytes_named_nii(tmp_path: Path) -> None:
    path = tmp_path / "noise.nii"
    path.write_bytes(random.Random(1).randbytes(5000))
    with pytest.raises(SegviewerError, match=r"noise\.nii"):
        load_image(path)


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_nifti(tmp_path: Path, nibabel_anatomical: Path, name: str) -> None:
    raw = nibabel_anatomical.read_bytes()
    whole = gzip.compress(raw) if name.endswith(".gz") else raw
    path = tmp_path / name
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(SegviewerError, match=re.escape(name) + ".*(truncated|corrupt)"):
        load_image(path)


@pytest.mark.parametrize("name", ["huge.nii", "huge.nii.gz"])
def test_absurd_header_size_refused_before_allocating(tmp_path: Path, name: str) -> None:
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30000, 30000, 30000))
    hdr.set_data_dtype(np.float32)
    raw = hdr.binaryblock + b"\x00" * 4 + b"\x00" * 1024  # header, extension flag, a bit of data
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    with pytest.raises(SegviewerError, match=r"huge\.nii.*claims \(30000, 30000, 30000\)"):
        load_image(path)


# --------------------------------------------------------------------------------------
# DICOM: single files and compressed transfer syntaxes


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_compressed_and_other_syntaxes_equal_uncompressed(mr_small: Path, name: str) -> None:
    ref = load_image(mr_small)
    vol = load_image(_data_file(name))
    assert vol.shape == (1, 64, 64)
    assert vol.data.dtype.isnative
    np.testing.assert_array_equal(vol.data, ref.data)
    np.testing.assert_allclose(vol.affine, ref.affine)


def test_deflated_dicom_decodes(mr_small: Path, tmp_path: Path) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(mr_small)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = tmp_path / "deflated.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    np.testing.assert_array_equal(load_image(path).data[0], _mr_small_pixels(mr_small))


def test_single_dicom_geometry_and_safe_metadata(mr_small: Path) -> None:
    ds = pydicom.dcmread(mr_small)
    vol = load_image(mr_small)
    assert vol.format == "dicom"
    np.testing.assert_array_equal(vol.data[0], ds.pixel_array)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(vol.affine[:3, 3], LPS_TO_RAS @ ipp)
    # (row, col) spacing from PixelSpacing; a single slice uses SliceThickness.
    assert vol.spacing == pytest.approx((0.8, 0.3125, 0.3125))
    # row axis goes along the column direction (0,1,0) LPS = posterior -> RAS y negative.
    np.testing.assert_allclose(vol.affine[:3, 1], [0, -0.3125, 0])
    np.testing.assert_allclose(vol.affine[:3, 2], [-0.3125, 0, 0])
    text = json.dumps(describe_image(mr_small))
    assert "CompressedSamples" not in text and "4MR1" not in text
    assert not any("patient" in k.lower() for k in vol.metadata)
    assert vol.metadata["modality"] == "MR"
    # An axial series is (slice, row, column) = (S, P, L): the same as the stack affine, so
    # it shows up in the axial view like a plain 2-D image.
    assert vol.orientation == "SPL"


def test_large_j2k_equals_uncompressed() -> None:
    unc = load_image(_data_file("MR2_UNCR.dcm"))
    j2k = load_image(_data_file("MR2_J2KR.dcm"))
    assert unc.shape == (1, 1024, 1024)
    np.testing.assert_array_equal(j2k.data, unc.data)
    # RescaleSlope 3.774114 applied in float32.
    ds = pydicom.dcmread(_data_file("MR2_UNCR.dcm"))
    np.testing.assert_allclose(
        unc.data[0],
        ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept),
        rtol=1e-6,
    )
    assert unc.data.dtype == np.float32


def test_jpeg_lossless_decodes() -> None:
    path = _data_file("JPEG-LL.dcm")
    vol = load_image(path)
    assert vol.shape == (1, 1024, 256)
    np.testing.assert_array_equal(vol.data[0], pydicom.dcmread(path).pixel_array)
    assert vol.spacing[1:] == pytest.approx((2.26, 2.26))


def test_truncated_dicom(mr_small: Path, tmp_path: Path) -> None:
    raw = mr_small.read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(raw[: len(raw) - 3000])
    with pytest.raises(SegviewerError, match=r"cut\.dcm.*(truncated|decoded)"):
        load_image(path)
    with pytest.raises(SegviewerError, match=r"MR_truncated\.dcm"):
        load_image(_data_file("MR_truncated.dcm"))


# --------------------------------------------------------------------------------------
# DICOM: multi-frame


def test_enhanced_multiframe_geometry_from_functional_groups() -> None:
    path = _data_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    vol = load_image(path)
    assert vol.shape == (2, 512, 512)
    positions = [
        np.array([float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient])
        for f in ds.PerFrameFunctionalGroupsSequence
    ]
    iop = [
        float(v)
        for v in ds.SharedFunctionalGroupsSequence[0]
        .PlaneOrientationSequence[0]
        .ImageOrientationPatient
    ]
    normal = np.cross(iop[:3], iop[3:])
    first = min(range(2), key=lambda k: float(positions[k] @ normal))
    np.testing.assert_allclose(vol.affine[:3, 3], LPS_TO_RAS @ positions[first])
    np.testing.assert_allclose(vol.affine @ [1, 0, 0, 1], [*(LPS_TO_RAS @ positions[1 - first]), 1])
    assert vol.spacing == pytest.approx((10.0, 0.388672, 0.388672))
    # Frame-level rescale (intercept -1024) applied, integers kept.
    np.testing.assert_array_equal(vol.data[0], ds.pixel_array[first].astype(np.int32) - 1024)
    assert vol.data.dtype.kind == "i"


@pytest.mark.parametrize(
    "name",
    ["emri_small_jpeg_2k_lossless.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_ls_lossless.dcm"],
)
def test_multiframe_compressed_equals_uncompressed(name: str) -> None:
    ref_path = _data_file("emri_small.dcm")
    ref = load_image(ref_path)
    assert ref.shape == (10, 64, 64)
    np.testing.assert_array_equal(ref.data, pydicom.dcmread(ref_path).pixel_array)
    np.testing.assert_array_equal(load_image(_data_file(name)).data, ref.data)


# --------------------------------------------------------------------------------------
# DICOM: series in a folder


def _write_series(
    mr_small: Path,
    folder: Path,
    z_positions: list[float],
    *,
    uid: str = "1.2.3.4.5.1",
    description: str = "T1 axial",
    series_number: int = 1,
    names: list[str] | None = None,
    with_position: bool = True,
    instance_numbers: list[int] | None = None,
) -> list[np.ndarray]:
    """Write MR_small copies, slice ``s`` at z = z_positions[s] with pixels ``base + 100 s``."""
    folder.mkdir(parents=True, exist_ok=True)
    base = _mr_small_pixels(mr_small)
    pixels = []
    n = len(z_positions)
    names = names or [f"f{s:03d}.dcm" for s in range(n)]
    for s, z in enumerate(z_positions):
        ds = pydicom.dcmread(mr_small)
        arr = (base + 100 * s).astype(np.int16)
        ds.PixelData = arr.tobytes()
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = f"{uid}.{s + 1}"
        ds.SeriesDescription = description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = instance_numbers[s] if instance_numbers else s + 1
        if with_position:
            ds.ImagePositionPatient = [-83.9063, -91.2, z]
        else:
            del ds.ImagePositionPatient
        ds.save_as(folder / names[s], enforce_file_format=True)
        pixels.append(arr)
    return pixels


def test_series_sorted_by_position_not_name_or_instance(mr_small: Path, tmp_path: Path) -> None:
    z = [10.0, 12.5, 15.0, 17.5, 20.0]
    # Names shuffled and InstanceNumber reversed: only the positions give the right order.
    names = ["b.dcm", "e.dcm", "a.dcm", "d.dcm", "c.dcm"]
    pixels = _write_series(
        mr_small, tmp_path / "s", z, names=names, instance_numbers=[5, 4, 3, 2, 1]
    )
    vol = load_image(tmp_path / "s")
    assert vol.shape == (5, 64, 64)
    for s in range(5):
        np.testing.assert_array_equal(vol.data[s], pixels[s])
    np.testing.assert_allclose(vol.affine @ [0, 0, 0, 1], [83.9063, 91.2, 10.0, 1])
    np.testing.assert_allclose(vol.affine @ [4, 0, 0, 1], [83.9063, 91.2, 20.0, 1])
    assert vol.spacing == pytest.approx((2.5, 0.3125, 0.3125))
    assert vol.metadata["n_files"] == 5
    assert vol.metadata["warnings"] == ()


def test_series_without_positions_uses_instance_number(mr_small: Path, tmp_path: Path) -> None:
    pixels = _write_series(
        mr_small, tmp_path / "s", [0, 1, 2], with_position=False, instance_numbers=[3, 1, 2]
    )
    vol = load_image(tmp_path / "s")
    np.testing.assert_array_equal(vol.data[0], pixels[1])
    np.testing.assert_array_equal(vol.data[1], pixels[2])
    np.testing.assert_array_equal(vol.data[2], pixels[0])
    assert any("InstanceNumber" in n for n in vol.metadata["notes"])


def test_series_non_uniform_spacing_warns(mr_small: Path, tmp_path: Path) -> None:
    _write_series(mr_small, tmp_path / "s", [0.0, 2.0, 4.0, 8.0])
    vol = load_image(tmp_path / "s")
    assert vol.shape == (4, 64, 64)
    assert any("not uniform" in w for w in vol.metadata["warnings"])
    assert vol.spacing[0] == pytest.approx(8.0 / 3)


def test_series_with_two_volumes_at_each_position(mr_small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "s"
    pixels = _write_series(mr_small, folder, [0.0, 3.0, 0.0, 3.0], instance_numbers=[1, 2, 3, 4])
    vol0 = load_image(folder, frame=0)
    vol1 = load_image(folder, frame=1)
    assert vol0.shape == (2, 64, 64) and vol0.metadata["n_frames"] == 2
    np.testing.assert_array_equal(vol0.data[0], pixels[0])
    np.testing.assert_array_equal(vol1.data[0], pixels[2])
    np.testing.assert_array_equal(vol1.data[1], pixels[3])
    with pytest.raises(SegviewerError, match="frame 2 is out of range"):
        load_image(folder, frame=2)


def test_several_series_need_a_choice(mr_small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "study"
    a = _write_series(
        mr_small, folder / "x", [0.0, 1.0], uid="1.2.3.10", series_number=3, description="FLAIR"
    )
    b = _write_series(mr_small, folder / "y", [0.0, 2.0, 4.0], uid="1.2.3.20", series_number=7)
    with pytest.raises(
        SegviewerError, match=r"2 DICOM series.*1\.2\.3\.10 'FLAIR'.*2 files.*--series"
    ):
        load_image(folder)
    infos = list_dicom_series(folder)
    assert [(i.number, i.uid, i.n_files, i.shape) for i in infos] == [
        (1, "1.2.3.10", 2, (2, 64, 64)),
        (2, "1.2.3.20", 3, (3, 64, 64)),
    ]
    assert infos[0].description == "FLAIR" and infos[0].modality == "MR"
    np.testing.assert_array_equal(load_image(folder, series=1).data[1], a[1])
    np.testing.assert_array_equal(load_image(folder, series="2").data[2], b[2])
    np.testing.assert_array_equal(load_image(folder, series="1.2.3.20").data[0], b[0])
    with pytest.raises(SegviewerError, match=r"no series '9'"):
        load_image(folder, series=9)
    summary = describe_image(folder)
    assert len(summary["series"]) == 2 and "--series" in summary["notes"][0]
    assert describe_image(folder, series=2)["shape"] == [3, 64, 64]


def test_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(SegviewerError, match="no DICOM images found"):
        load_image(tmp_path)


# --------------------------------------------------------------------------------------
# NRRD


def _lps_header() -> dict[str, object]:
    return {
        "space": "left-posterior-superior",
        "space directions": np.array([[0.0, 1.5, 0.0], [-1.2, 0.0, 0.0], [0.0, 0.0, 2.0]]),
        "space origin": np.array([10.0, -20.0, 30.0]),
        "kinds": ["domain", "domain", "domain"],
    }


def test_nrrd_lps_to_ras(tmp_path: Path) -> None:
    import nrrd

    arr = np.random.default_rng(2).integers(0, 500, (5, 6, 7)).astype(np.int16)
    path = tmp_path / "vol.nrrd"
    nrrd.write(str(path), arr, _lps_header(), index_order="F")
    vol = load_image(path)
    assert vol.format == "nrrd" and vol.shape == (5, 6, 7)
    np.testing.assert_array_equal(vol.data, arr)
    expected = np.array(
        [[0.0, 1.2, 0.0, -10.0], [-1.5, 0.0, 0.0, 20.0], [0.0, 0.0, 2.0, 30.0], [0, 0, 0, 1]]
    )
    np.testing.assert_allclose(vol.affine, expected)
    assert vol.spacing == pytest.approx((1.5, 1.2, 2.0))


def test_nrrd_ras_space_and_detached_header(tmp_path: Path) -> None:
    import nrrd

    arr = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)
    header = {
        "space": "RAS",
        "space directions": np.diag([0.5, 0.6, 0.7]),
        "space origin": np.array([1.0, 2.0, 3.0]),
    }
    path = tmp_path / "det.nhdr"
    nrrd.write(str(path), arr, header, detached_header=True, index_order="F")
    assert any(p.suffix != ".nhdr" for p in tmp_path.iterdir())
    vol = load_image(path)
    np.testing.assert_array_equal(vol.data, arr)
    np.testing.assert_allclose(vol.affine[:3, :3], np.diag([0.5, 0.6, 0.7]))
    np.testing.assert_allclose(vol.affine[:3, 3], [1.0, 2.0, 3.0])
    assert vol.metadata["detached"] is True


def test_nrrd_list_axis_frames(tmp_path: Path) -> None:
    import nrrd

    arr = np.random.default_rng(3).random((3, 4, 5, 6)).astype(np.float32)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.array(
            [[np.nan] * 3, [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=float
        ),
        "kinds": ["list", "domain", "domain", "domain"],
    }
    path = tmp_path / "multi.nrrd"
    nrrd.write(str(path), arr, header, index_order="F")
    vol = load_image(path, frame=2)
    assert vol.metadata["n_frames"] == 3
    np.testing.assert_array_equal(vol.data, arr[2])
    with pytest.raises(SegviewerError, match="frame 3 is out of range"):
        load_image(path, frame=3)


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_truncated_nrrd(tmp_path: Path, encoding: str) -> None:
    import nrrd

    arr = np.random.default_rng(7).integers(0, 3000, (20, 20, 20)).astype(np.int16)
    path = tmp_path / "cut.nrrd"
    nrrd.write(str(path), arr, {**_lps_header(), "encoding": encoding}, index_order="F")
    raw = path.read_bytes()
    assert len(raw) > 8000  # the cut below keeps the whole header
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SegviewerError, match=r"cut\.nrrd.*truncated"):
        load_image(path)


# --------------------------------------------------------------------------------------
# PNG / JPEG / TIFF


def test_png_8_and_16_bit(tmp_path: Path) -> None:
    from PIL import Image

    g8 = np.random.default_rng(4).integers(0, 255, (30, 40)).astype(np.uint8)
    g16 = (g8.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(g8).save(tmp_path / "a.png")
    Image.fromarray(g16).save(tmp_path / "b.png")
    v8, v16 = load_image(tmp_path / "a.png"), load_image(tmp_path / "b.png")
    assert v8.shape == (1, 30, 40) and v8.data.dtype == np.uint8
    np.testing.assert_array_equal(v8.data[0], g8)
    assert v16.data.dtype == np.uint16
    np.testing.assert_array_equal(v16.data[0], g16)
    np.testing.assert_array_equal(v8.affine, STACK_AFFINE)


def test_rgb_png_becomes_luminance(tmp_path: Path) -> None:
    from PIL import Image

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[..., 1] = 100
    rgb[..., 2] = 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    vol = load_image(tmp_path / "c.png")
    assert vol.data.dtype == np.uint8
    assert int(vol.data[0, 0, 0]) == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert any("luminance" in n for n in vol.metadata["notes"])


def test_png_folder_natural_order(tmp_path: Path) -> None:
    from PIL import Image

    for k in (1, 2, 10, 11, 3):
        Image.fromarray(np.full((8, 9), k, np.uint8)).save(tmp_path / f"slice{k}.png")
    (tmp_path / "readme.txt").write_text("ignored")
    vol = load_image(tmp_path)
    assert vol.shape == (5, 8, 9) and vol.format == "png"
    assert [int(vol.data[s, 0, 0]) for s in range(5)] == [1, 2, 3, 10, 11]
    assert sorted(["slice10", "slice2", "Slice1"], key=natural_key) == [
        "Slice1",
        "slice2",
        "slice10",
    ]


def test_rgb_png_folder_notes_luminance(tmp_path: Path) -> None:
    from PIL import Image

    for k in (1, 2):
        Image.fromarray(np.full((4, 5, 3), 10 * k, np.uint8)).save(tmp_path / f"c{k}.png")
    vol = load_image(tmp_path)
    assert vol.data[:, 0, 0].tolist() == [10, 20]
    assert any("luminance" in n for n in vol.metadata["notes"])


def test_png_folder_size_mismatch(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "s1.png")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(tmp_path / "s2.png")
    with pytest.raises(SegviewerError, match=r"s2\.png is 10x8 uint8 but s1\.png is 9x8"):
        load_image(tmp_path)


def test_truncated_png(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 64)).astype(np.uint8)).save(
        tmp_path / "t.png"
    )
    raw = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(SegviewerError, match=r"t\.png.*(truncated|decoded)"):
        load_image(tmp_path / "t.png")


def test_jpeg_grey(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(tmp_path / "g.jpg", quality=100)
    vol = load_image(tmp_path / "g.jpg")
    assert vol.format == "jpeg" and vol.shape == (1, 16, 16)
    assert abs(int(vol.data[0, 8, 8]) - 128) <= 1


def test_multipage_tiff_with_cm_resolution(tmp_path: Path) -> None:
    import tifffile

    stack = np.random.default_rng(6).integers(0, 4000, (4, 10, 12)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    # 20 pixels per cm along x, 25 along y -> 0.5 mm columns, 0.4 mm rows.
    tifffile.imwrite(
        path, stack, photometric="minisblack", resolution=(20.0, 25.0), resolutionunit="CENTIMETER"
    )
    vol = load_image(path)
    assert vol.shape == (4, 10, 12) and vol.format == "tiff"
    np.testing.assert_array_equal(vol.data, stack)
    assert vol.spacing[1:] == pytest.approx((0.4, 0.5))


def test_tiff_dpi_is_not_trusted(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "dpi.tiff"
    tifffile.imwrite(
        path, np.zeros((5, 6), np.uint8), resolution=(72.0, 72.0), resolutionunit="INCH"
    )
    vol = load_image(path)
    assert vol.shape == (1, 5, 6)
    assert vol.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert any("dots per inch" in n for n in vol.metadata["notes"])


# --------------------------------------------------------------------------------------
# NumPy


def test_npy_memory_mapped_and_shapes(tmp_path: Path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "v.npy", arr)
    vol = load_image(tmp_path / "v.npy")
    assert isinstance(vol.data, np.memmap) and vol.shape == (2, 3, 4)
    np.testing.assert_array_equal(vol.data, arr)
    np.save(tmp_path / "flat.npy", arr[0])
    assert load_image(tmp_path / "flat.npy").shape == (1, 3, 4)
    np.save(tmp_path / "batch.npy", arr[np.newaxis])
    np.testing.assert_array_equal(load_image(tmp_path / "batch.npy").data, arr)
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 3, 4), np.float32))
    with pytest.raises(SegviewerError, match=r"four\.npy: 4-D array \(2, 2, 3, 4\)"):
        load_image(tmp_path / "four.npy")


def test_npy_object_array_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(SegviewerError, match=r"obj\.npy.*refuses pickled data.*numpy\.save"):
        load_image(tmp_path / "obj.npy")


def test_truncated_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.zeros((10, 10, 10), np.float32))
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[:2000])
    with pytest.raises(SegviewerError, match=r"t\.npy.*truncated"):
        load_image(tmp_path / "t.npy")


def test_npz_picks_image_or_single_array(tmp_path: Path) -> None:
    img = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    np.savez(tmp_path / "one.npz", vol=img)
    np.testing.assert_array_equal(load_image(tmp_path / "one.npz").data, img)
    np.savez_compressed(tmp_path / "two.npz", mask=np.zeros((2, 3, 4), np.uint8), image=img)
    vol = load_image(tmp_path / "two.npz")
    np.testing.assert_array_equal(vol.data, img)
    assert vol.metadata["array_name"] == "image"
    np.savez(tmp_path / "obj.npz", image=np.array([None, 1], dtype=object))
    with pytest.raises(SegviewerError, match="refuses pickled data"):
        load_image(tmp_path / "obj.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 50)
    with pytest.raises(SegviewerError, match=r"bad\.npz"):
        load_image(tmp_path / "bad.npz")


def test_frame_on_a_3d_file_is_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4), np.float32))
    with pytest.raises(SegviewerError, match="single volume; leave the frame at 0"):
        load_image(tmp_path / "v.npy", frame=1)


# --------------------------------------------------------------------------------------
# describe_image


def test_describe_image_nifti(nibabel_example4d: Path) -> None:
    info = describe_image(nibabel_example4d, frame=1)
    ref = nib.load(str(nibabel_example4d))
    data = ref.get_fdata()[..., 1]
    assert info["format"] == "nifti"
    assert info["shape"] == [128, 96, 24]
    assert info["dtype"] == "int16"
    assert info["n_frames"] == 2 and info["frame"] == 1
    assert info["value_range"] == [float(data.min()), float(data.max())]
    assert info["orientation"] == "".join(nib.aff2axcodes(ref.affine))
    assert info["spacing_mm"] == pytest.approx(
        [float(z) for z in ref.header.get_zooms()[:3]], abs=1e-5
    )
    json.dumps(info)  # JSON-serialisable for `segviewer info --json`


# --------------------------------------------------------------------------------------
# More real data and less common layouts


def test_real_ct_series_from_pydicom_sorted_and_rescaled() -> None:
    folder = (
        Path(str(get_testdata_file("MR_small.dcm"))).parent / "dicomdirtests" / "98892001" / "CT5N"
    )
    if not folder.is_dir():
        pytest.skip("pydicom's dicomdirtests folder is not installed")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    dss = [pydicom.dcmread(p) for p in files]
    normal = np.cross(
        [float(v) for v in dss[0].ImageOrientationPatient[:3]],
        [float(v) for v in dss[0].ImageOrientationPatient[3:]],
    )
    dss.sort(key=lambda d: float(np.array([float(v) for v in d.ImagePositionPatient]) @ normal))
    vol = load_image(folder)
    assert vol.shape == (len(files), 16, 16)
    # CT intercept -1024 keeps a 16-bit integer type.
    assert vol.data.dtype == np.int16
    for s, ds in enumerate(dss):
        expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(vol.data[s], expected)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        np.testing.assert_allclose(vol.affine @ [s, 0, 0, 1], [*(LPS_TO_RAS @ ipp), 1], atol=1e-4)
    info = describe_image(folder)
    assert info["series"][0]["n_files"] == len(files)
    assert info["value_range"] == [float(vol.data.min()), float(vol.data.max())]


def test_rgb_dicom_becomes_luminance() -> None:
    path = _data_file("SC_rgb.dcm")
    rgb = pydicom.dcmread(path).pixel_array.astype(np.float64)
    vol = load_image(path)
    assert vol.shape == (1, 100, 100) and vol.data.dtype == np.uint8
    expected = np.rint(rgb @ [0.299, 0.587, 0.114])
    np.testing.assert_allclose(vol.data[0], expected, atol=1)
    assert any("luminance" in n for n in vol.metadata["notes"])


def test_nifti_without_sform_or_qform_says_so(tmp_path: Path) -> None:
    img = nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), None)
    img.header.set_zooms((1.5, 2.0, 2.5))
    img.header["sform_code"] = 0
    img.header["qform_code"] = 0
    path = tmp_path / "bare.nii"
    nib.save(img, str(path))
    vol = load_image(path)
    assert vol.metadata["affine_source"] == "voxel sizes only"
    assert vol.spacing == pytest.approx((1.5, 2.0, 2.5))
    assert any("no sform or qform" in n for n in vol.metadata["notes"])


def test_nifti_5d_singleton_vector_axis(tmp_path: Path) -> None:
    arr = np.arange(3 * 4 * 5 * 2, dtype=np.int16).reshape(3, 4, 5, 2, 1)
    path = tmp_path / "five.nii.gz"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    np.testing.assert_array_equal(load_image(path, frame=1).data, arr[..., 1, 0])
    vec = tmp_path / "vector.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5, 1, 3), np.float32), np.eye(4)), str(vec))
    with pytest.raises(SegviewerError, match=r"vector\.nii\.gz: 5-D NIfTI"):
        load_image(vec)


def test_nrrd_2d_becomes_i_j_1(tmp_path: Path) -> None:
    import nrrd

    arr = np.arange(20, dtype=np.uint8).reshape(4, 5)
    path = tmp_path / "flat.nrrd"
    nrrd.write(str(path), arr, {"spacings": [0.7, 0.8]}, index_order="F")
    vol = load_image(path)
    assert vol.shape == (4, 5, 1)
    np.testing.assert_array_equal(vol.data[:, :, 0], arr)
    assert vol.spacing[:2] == pytest.approx((0.7, 0.8))


def test_imagej_tiff_spacing_in_microns(tmp_path: Path) -> None:
    import tifffile

    stack = np.zeros((3, 6, 7), np.uint16)
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path,
        stack,
        imagej=True,
        resolution=(1 / 250.0, 1 / 200.0),  # pixels per micron: 250 um columns, 200 um rows
        metadata={"unit": "um", "spacing": 1500.0},
    )
    vol = load_image(path)
    assert vol.shape == (3, 6, 7)
    assert vol.spacing == pytest.approx((1.5, 0.2, 0.25))


def test_rgb_nifti_refused(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 5), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = tmp_path / "rgb.nii"
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(path))
    with pytest.raises(SegviewerError, match=r"rgb\.nii: NIfTI data type .*convert it to a scalar"):
        load_image(path)


def test_dicomdir_file_points_to_folder() -> None:
    path = Path(str(get_testdata_file("MR_small.dcm"))).parent / "dicomdirtests" / "DICOMDIR"
    if not path.is_file():
        pytest.skip("pydicom's dicomdirtests folder is not installed")
    with pytest.raises(SegviewerError, match="DICOMDIR is an index.*open the folder"):
        load_image(path)


def test_describe_memory_mapped_value_range(tmp_path: Path) -> None:
    arr = np.random.default_rng(8).normal(size=(9, 10, 11)).astype(np.float32)
    arr[2, 3, 4] = np.nan  # non-finite values are left out of the range
    path = tmp_path / "f.nii"
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    info = describe_image(path)
    assert info["memory_mapped"] is True
    assert info["value_range"] == [float(np.nanmin(arr)), float(np.nanmax(arr))]
    assert info["dtype"] == "float32"


def test_library_warnings_go_to_metadata_not_console() -> None:
    # pytest turns warnings into errors here: reading must not let pydicom's escape.
    vol = load_image(_data_file("bad_sequence.dcm"))
    assert vol.shape == (1, 512, 512)
    assert any("Invalid value for VR UI" in w for w in vol.metadata["warnings"])


def test_degenerate_orientation_is_refused(mr_small: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(mr_small)
    ds.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]
    ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    with pytest.raises(SegviewerError, match=r"bad\.dcm: ImageOrientationPatient .* corrupt"):
        load_image(tmp_path / "bad.dcm")


def test_dicom_without_preamble_in_folder_and_stray_files(mr_small: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    _write_series(mr_small, tmp_path / "src", [0.0, 4.0])
    folder.mkdir()
    for k, src in enumerate(sorted((tmp_path / "src").iterdir())):
        # Drop the 128-byte preamble and "DICM": a bare dataset as some exporters write it.
        (folder / f"IMG{k}").write_bytes(src.read_bytes()[132:])
    (folder / "junk.bin").write_bytes(random.Random(3).randbytes(4000))
    (folder / "notes.txt").write_text("scanner export log")
    vol = load_image(folder)
    assert vol.shape == (2, 64, 64)
    assert vol.spacing[0] == pytest.approx(4.0)


def test_concurrent_loads_leave_warning_state_intact(mr_small: Path) -> None:
    import threading
    import warnings

    bad = _data_file("bad_sequence.dcm")
    hook, filters = warnings.showwarning, list(warnings.filters)
    results: list[tuple[int, int, int]] = []
    failures: list[BaseException] = []

    def work(path: Path) -> None:
        try:
            for _ in range(5):
                results.append(load_image(path).shape)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in (bad, mr_small, bad, mr_small)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert sorted(set(results)) == [(1, 64, 64), (1, 512, 512)] and len(results) == 20
    assert warnings.showwarning is hook
    assert list(warnings.filters) == filters


def test_nifti_pair_hdr_img(tmp_path: Path) -> None:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    aff = np.diag([0.5, 0.6, 0.7, 1.0])
    aff[:3, 3] = [1, 2, 3]
    nib.save(nib.Nifti1Pair(arr, aff), str(tmp_path / "pair.img"))
    assert (tmp_path / "pair.hdr").is_file()
    for name in ("pair.hdr", "pair.img"):
        vol = load_image(tmp_path / name)
        assert isinstance(vol.data, np.memmap)
        np.testing.assert_array_equal(vol.data, arr)
        np.testing.assert_allclose(vol.affine, aff)
    (tmp_path / "pair.img").unlink()
    with pytest.raises(SegviewerError, match=r"pair\.hdr"):
        load_image(tmp_path / "pair.hdr")


def test_analyze_is_refused_with_advice(tmp_path: Path) -> None:
    nib.save(nib.AnalyzeImage(np.zeros((3, 4, 5), np.int16), np.eye(4)), str(tmp_path / "old.img"))
    with pytest.raises(
        SegviewerError, match=r"old\.hdr: this is Analyze 7\.5 format.*convert it to NIfTI"
    ):
        load_image(tmp_path / "old.hdr")
