"""DICOM SEG: export through the one export path, read back, and check with dcmqi.

The image is a real MR series (ten emri_small frames written as single-frame MR images in an
oblique plane, see tests/mr_series_data.py). dcmqi, the converter 3D Slicer and the Imaging Data
Commons use, is the independent implementation: it converts segviewer's SEG back to NIfTI
(compared voxel by voxel on the image grid through the NIfTI's affine) and writes a SEG from
a NIfTI label map that segviewer must read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from mr_series_data import write_mr_series

from segviewer.core.classes import ClassTable
from segviewer.core.types import MaskSettings, SegviewerError
from segviewer.io import dicomseg
from segviewer.io.export import ExportRequest, run_export
from segviewer.io.images import load_image
from segviewer.io.predictions import load_prediction, load_reference, prediction_from_array

SEGIMAGE2ITK = shutil.which("segimage2itkimage")
ITK2SEGIMAGE = shutil.which("itkimage2segimage")
needs_dcmqi = pytest.mark.skipif(
    SEGIMAGE2ITK is None or ITK2SEGIMAGE is None,
    reason="dcmqi (pip install dcmqi, in the test extra) is not installed",
)
IDENTIFIERS = ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID")


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mr") / "series"
    write_mr_series(folder)
    return folder


@pytest.fixture(scope="module")
def volume(series: Path):  # type: ignore[no-untyped-def]
    return load_image(series)


def _labels(vol) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Three classes from the MR intensities (+ a corner block), asymmetric on every axis."""
    d = np.asarray(vol.data, dtype=np.float64)
    lab = np.zeros(vol.shape, np.uint8)
    lab[d > 150] = 1
    lab[d > 300] = 2
    lab[2:5, :6, :9] = 3
    return lab


TABLE = ClassTable.from_entries(
    [
        (0, "background", (0, 0, 0)),
        (1, "grey matter", (30, 90, 230)),
        (2, "White_Matter", (250, 180, 20)),
        (3, "oddity", (10, 200, 10)),
    ]
)[0]


def _export(vol, pred, out: Path, table=TABLE, **kw):  # type: ignore[no-untyped-def]
    req = ExportRequest(out_dir=out, **kw)
    gen = run_export(vol, pred, table, req)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _to_image_grid(nifti: Path, vol) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A NIfTI written by another tool, put on the image's voxels through the two affines
    (an exact permutation/flip with integer offsets, else the test fails)."""
    img = nib.load(nifti)
    data = np.asarray(img.dataobj)
    m = np.linalg.inv(vol.affine) @ img.affine  # NIfTI voxel -> image voxel
    lin = m[:3, :3]
    assert np.allclose(lin, np.round(lin), atol=1e-3), lin
    assert np.allclose(m[:3, 3], np.round(m[:3, 3]), atol=1e-3), m[:3, 3]
    lin = np.round(lin).astype(int)
    off = np.round(m[:3, 3]).astype(int)
    out = np.zeros(vol.shape, data.dtype)
    idx = np.indices(data.shape).reshape(3, -1)
    tgt = lin @ idx + off[:, None]
    ok = np.all((tgt >= 0) & (tgt < np.array(vol.shape)[:, None]), axis=0)
    out[tuple(tgt[:, ok])] = data.reshape(-1)[ok]
    return out


def test_binary_seg_export_structure_and_readback(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    pred = prediction_from_array(lab, volume.shape, source="pred.npy")
    res = _export(
        volume,
        pred,
        tmp_path / "out",
        what=frozenset({"binary"}),
        formats=frozenset({"dicom-seg"}),
        classes=(1, 2, 3),
        allow_identifiers=True,
    )
    seg_path = tmp_path / "out" / "segmentation.dcm"
    assert res.files == (seg_path,)
    ds = pydicom.dcmread(seg_path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    assert ds.SegmentationType == "BINARY"
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(volume_files(volume))]
    # the SEG is filed with the study: patient and study identifiers copied
    for key in IDENTIFIERS:
        assert str(ds.get(key)) == str(src[0].get(key)), key
    assert ds.FrameOfReferenceUID == src[0].FrameOfReferenceUID
    labels = [s.SegmentLabel for s in ds.SegmentSequence]
    assert labels == ["grey matter", "White_Matter", "oddity"]
    s1, s2, s3 = ds.SegmentSequence
    assert s1.SegmentedPropertyTypeCodeSequence[0].CodeValue == "389081007"  # Gray matter
    assert s1.SegmentedPropertyCategoryCodeSequence[0].CodeMeaning == "Anatomical Structure"
    assert s2.SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "White Matter"
    assert s3.SegmentedPropertyTypeCodeSequence[0].CodeValue == dicomseg.DEFAULT_TYPE[0]
    assert s3.SegmentedPropertyCategoryCodeSequence[0].CodeValue == dicomseg.DEFAULT_CATEGORY[0]
    assert s1.SegmentAlgorithmType == "AUTOMATIC"
    alg = s1.SegmentationAlgorithmIdentificationSequence[0]
    assert alg.AlgorithmName == "segviewer"
    assert "pred.npy" in str(alg.AlgorithmParameters)
    # CIELab colour round-trips to the class colour (within the CIELab quantisation)
    from highdicom.color import CIELabColor

    rgb = CIELabColor.from_dicom_value(list(s1.RecommendedDisplayCIELabValue)).to_rgb()
    assert np.allclose(rgb, (30, 90, 230), atol=2)
    # every frame references the source instance at its position
    by_uid = {d.SOPInstanceUID: d for d in src}
    for fr in ds.PerFrameFunctionalGroupsSequence:
        ref = fr.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        pos = np.asarray(fr.PlanePositionSequence[0].ImagePositionPatient, float)
        np.testing.assert_allclose(pos, np.asarray(by_uid[ref].ImagePositionPatient, float))
    # the manifest describes it without identifiers
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    text = json.dumps(manifest)
    for key in ("PatientName", "PatientID"):
        assert str(src[0].get(key)) not in text
    entry = manifest["files"][0]
    assert entry["format"] == "dicom-seg" and entry["dicom_seg"]["segmentation_type"] == "BINARY"
    assert entry["voxels"] == [int((lab == k).sum()) for k in (1, 2, 3)]
    # read back through the prediction reader: the same label map on the image grid
    back = load_prediction(seg_path, volume.shape, image_affine=volume.affine)
    np.testing.assert_array_equal(np.asarray(back.data), lab)
    assert any("DICOM SEG (BINARY, 3 segments" in n for n in back.notes)
    table = dicomseg.seg_class_table(seg_path)
    assert [c.name for c in table] == ["background", "grey matter", "White_Matter", "oddity"]


def volume_files(vol) -> list[Path]:  # type: ignore[no-untyped-def]
    return [p for p in Path(vol.source).iterdir() if p.suffix == ".dcm"]


def test_seg_needs_consent_and_a_dicom_image(volume, tmp_path: Path, demo_dir: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    pred = prediction_from_array(lab, volume.shape)
    with pytest.raises(SegviewerError, match="identifiers.*--allow-identifiers"):
        _export(volume, pred, tmp_path / "a", formats=frozenset({"dicom-seg"}), classes=(1,))
    assert not (tmp_path / "a").exists()
    assert dicomseg.seg_unavailable(volume) is None
    nifti = load_image(demo_dir / "t1.nii.gz")
    assert "read from nifti" in str(dicomseg.seg_unavailable(nifti))
    npred = prediction_from_array(np.zeros(nifti.shape, np.uint8), nifti.shape, n_classes_hint=4)
    with pytest.raises(SegviewerError, match="refers to the DICOM images.*nifti"):
        _export(
            nifti,
            npred,
            tmp_path / "b",
            formats=frozenset({"dicom-seg"}),
            classes=(1,),
            allow_identifiers=True,
        )
    assert not (tmp_path / "b").exists()


def test_other_exports_carry_no_identifiers(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    pred = prediction_from_array(lab, volume.shape)
    _export(
        volume,
        pred,
        tmp_path / "o",
        what=frozenset({"binary", "labels"}),
        formats=frozenset({"nifti", "npy"}),
        allow_identifiers=True,  # consent does not put identifiers into other formats
    )
    ds = pydicom.dcmread(volume_files(volume)[0], stop_before_pixels=True)
    needles = [str(ds.PatientName).encode(), str(ds.PatientID).encode()]
    for f in (tmp_path / "o").rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            if f.name.endswith(".gz"):
                import gzip

                blob = gzip.decompress(blob)
            for n in needles:
                assert n not in blob, (f, n)


def test_fractional_seg_from_probabilities(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, *volume.shape)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=0)
    pred = prediction_from_array(probs, volume.shape, layout="CDHW")
    _export(
        volume,
        pred,
        tmp_path / "f",
        what=frozenset({"probabilities", "binary"}),
        formats=frozenset({"dicom-seg"}),
        classes=(1, 3),
        allow_identifiers=True,
        settings=MaskSettings(),
    )
    assert (tmp_path / "f" / "segmentation.dcm").is_file()
    ds = pydicom.dcmread(tmp_path / "f" / "probabilities.dcm")
    assert ds.SegmentationType == "FRACTIONAL"
    assert ds.SegmentationFractionalType == "PROBABILITY"
    back = dicomseg.read_seg(tmp_path / "f" / "probabilities.dcm", volume.shape, volume.affine)
    assert back.fractional and back.data.shape == (2, *volume.shape)
    # 8-bit probabilities: within half a step of 1/255
    np.testing.assert_allclose(back.data[0], probs[1], atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(back.data[1], probs[3], atol=0.5 / 255 + 1e-6)
    # as a prediction: one channel per segment (multi-label)
    p = load_prediction(
        tmp_path / "f" / "probabilities.dcm", volume.shape, image_affine=volume.affine
    )
    assert p.kind.value == "multilabel" and p.n_classes == 3


def test_seg_as_reference(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    pred = prediction_from_array(lab, volume.shape)
    _export(
        volume,
        pred,
        tmp_path / "r",
        formats=frozenset({"dicom-seg"}),
        what=frozenset({"labels"}),
        allow_identifiers=True,
        classes=(1, 2, 3),
    )
    ref = load_reference(
        tmp_path / "r" / "segmentation.dcm", volume.shape, image_affine=volume.affine
    )
    np.testing.assert_array_equal(ref, lab)


def test_seg_on_another_grid_is_refused(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    path = tmp_path / "s.dcm"
    dicomseg.write_seg(volume, [lab == 1], TABLE, [1], path, allow_identifiers=True)
    shifted = volume.affine.copy()
    shifted[:3, 3] += shifted[:3, 1] * 0.5  # half a voxel along the rows
    with pytest.raises(SegviewerError, match="do not lie on the image's voxel grid"):
        dicomseg.read_seg(path, volume.shape, shifted)


def test_property_codes_lookup() -> None:
    cat, typ, src = dicomseg.property_codes("Liver")
    assert typ[0] == "10200004" and cat[2] == "Anatomical Structure" and src == "CID 7151"
    cat, typ, src = dicomseg.property_codes("oedema")
    assert typ[2] == "Edema" and cat[2] == "Morphologically Abnormal Structure"
    _, typ, _ = dicomseg.property_codes("CSF")
    assert typ[2] == "Cerebrospinal Fluid"
    assert dicomseg.property_codes("class 7")[2] == "default"


@needs_dcmqi
def test_dcmqi_reads_segviewer_seg_voxel_for_voxel(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    pred = prediction_from_array(lab, volume.shape)
    _export(
        volume,
        pred,
        tmp_path / "out",
        formats=frozenset({"dicom-seg"}),
        classes=(1, 2, 3),
        allow_identifiers=True,
    )
    out = tmp_path / "dcmqi"
    out.mkdir()
    subprocess.run(
        [
            str(SEGIMAGE2ITK),
            "--inputDICOM",
            str(tmp_path / "out" / "segmentation.dcm"),
            "--outputDirectory",
            str(out),
            "-t",
            "nifti",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    meta = json.loads((out / "meta.json").read_text())
    got = [seg[0]["SegmentLabel"] for seg in meta["segmentAttributes"]]
    assert got == ["grey matter", "White_Matter", "oddity"]
    assert meta["segmentAttributes"][0][0]["recommendedDisplayRGBValue"] == [30, 90, 230]
    for number, k in enumerate((1, 2, 3), start=1):
        mask = _to_image_grid(out / f"{number}.nii.gz", volume)
        np.testing.assert_array_equal(mask != 0, lab == k)


@needs_dcmqi
def test_segviewer_reads_a_seg_dcmqi_wrote(volume, series: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    lab[lab == 3] = 0  # two segments described below
    # a NIfTI label map in ITK's voxel order (column, row, slice) with the series' geometry
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0  # (c, r, s) -> (s, r, c)
    affine = volume.affine @ perm
    nii = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(np.transpose(lab, (2, 1, 0)).astype(np.int16), affine), nii)
    attrs = []
    for k, name, rgb in ((1, "Grey matter", [0, 0, 255]), (2, "White matter", [255, 200, 0])):
        attrs.append(
            {
                "labelID": k,
                "SegmentLabel": name,
                "SegmentAlgorithmType": "MANUAL",
                "SegmentedPropertyCategoryCodeSequence": {
                    "CodeValue": "91723000",
                    "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Anatomical Structure",
                },
                "SegmentedPropertyTypeCodeSequence": {
                    "CodeValue": "389081007" if k == 1 else "389080008",
                    "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": name,
                },
                "recommendedDisplayRGBValue": rgb,
            }
        )
    meta = {
        "ContentCreatorName": "Reader1",
        "ClinicalTrialSeriesID": "1",
        "ClinicalTrialTimePointID": "1",
        "SeriesDescription": "dcmqi test",
        "SeriesNumber": "300",
        "InstanceNumber": "1",
        "segmentAttributes": [attrs],
        "ContentLabel": "SEGMENTATION",
        "ContentDescription": "dcmqi",
        "ClinicalTrialCoordinatingCenterName": "none",
        "BodyPartExamined": "BRAIN",
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    seg_path = tmp_path / "dcmqi_seg.dcm"
    subprocess.run(
        [
            str(ITK2SEGIMAGE),
            "--inputImageList",
            str(nii),
            "--inputDICOMDirectory",
            str(series),
            "--outputDICOM",
            str(seg_path),
            "--inputMetadata",
            str(tmp_path / "meta.json"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    ds = pydicom.dcmread(seg_path, stop_before_pixels=True)
    assert ds.Manufacturer == "QIICR"  # dcmqi's maker, not segviewer
    pred = load_prediction(seg_path, volume.shape, image_affine=volume.affine)
    np.testing.assert_array_equal(np.asarray(pred.data), lab)
    table = dicomseg.seg_class_table(seg_path)
    assert [c.name for c in table] == ["background", "Grey matter", "White matter"]
    assert table[2].color == (255, 200, 0)


def test_seg_from_pydicom_test_data_opens_on_its_grid() -> None:
    """pydicom's liver.dcm: a SEG made by another tool (DCMTK-based), 3 frames of 512x512."""
    from pydicom.data import get_testdata_file

    path = Path(str(get_testdata_file("liver.dcm")))
    import highdicom as hd

    seg = hd.seg.segread(path)
    geo = seg.get_volume()
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ geo.affine
    shape = geo.spatial_shape
    pred = load_prediction(path, shape, image_affine=ras)
    expected = np.asarray(seg.get_volume(combine_segments=True, relabel=False).array)
    np.testing.assert_array_equal(np.asarray(pred.data), expected)
    assert int(np.count_nonzero(pred.data)) > 0


@pytest.mark.parametrize("name", ["MR_small.dcm", "eCT_Supplemental.dcm"])
def test_single_slice_and_enhanced_multiframe_sources(name: str, tmp_path: Path) -> None:
    """One 2-D MR slice (no spacing between slices) and an enhanced multi-frame CT (plane
    positions per frame in functional groups): the SEG references them and reads back."""
    from pydicom.data import get_testdata_file

    vol = load_image(Path(str(get_testdata_file(name))))
    lab = (np.asarray(vol.data) > np.median(np.asarray(vol.data))).astype(np.uint8)
    path = tmp_path / "s.dcm"
    info = dicomseg.write_seg(
        vol, [lab == 1], ClassTable.default(2), [1], path, allow_identifiers=True
    )
    assert info["frames"] == vol.shape[0]
    ds = pydicom.dcmread(path)
    src = pydicom.dcmread(str(get_testdata_file(name)), stop_before_pixels=True)
    for fr in ds.PerFrameFunctionalGroupsSequence:
        ref = fr.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == src.SOPInstanceUID
    np.testing.assert_array_equal(dicomseg.read_seg(path, vol.shape, vol.affine).data, lab)


def test_source_without_patient_geometry_is_refused(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    vol = load_image(Path(str(get_testdata_file("emri_small.dcm"))))  # no frame of reference
    with pytest.raises(SegviewerError, match="cannot build a DICOM SEG.*Frame of Reference"):
        dicomseg.write_seg(
            vol,
            [np.ones(vol.shape, bool)],
            ClassTable.default(2),
            [1],
            tmp_path / "s.dcm",
            allow_identifiers=True,
        )
    assert not (tmp_path / "s.dcm").exists()


def test_algorithm_identification_names_the_model(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab = _labels(volume)
    digest = "0123456789abcdef" * 4
    provenance = {"model": {"path": "/models/brain_unet.keras", "sha256": digest}, "device": "CPU"}
    path = tmp_path / "m.dcm"
    dicomseg.write_seg(
        volume, [lab == 1], TABLE, [1], path, allow_identifiers=True, provenance=provenance
    )
    alg = pydicom.dcmread(path).SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert alg.AlgorithmName == "segviewer (brain_unet.keras)"
    assert alg.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    params = str(alg.AlgorithmParameters)
    assert "brain_unet.keras" in params and digest in params and "CPU" in params
    from segviewer import __version__

    assert alg.AlgorithmVersion == __version__


def test_seg_of_another_frame_of_reference_is_refused(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A SEG placed by geometry must share the image's frame of reference: same matrix,
    same positions, but another session's coordinates would land on other anatomy."""
    assert volume.metadata.get("frame_of_reference_uid")
    lab = _labels(volume)
    path = tmp_path / "s.dcm"
    dicomseg.write_seg(volume, [lab == 1, lab == 2], TABLE, [1, 2], path, allow_identifiers=True)
    ok = load_prediction(
        path, volume.shape, image_affine=volume.affine, image_metadata=volume.metadata
    )
    np.testing.assert_array_equal(np.asarray(ok.data), np.where(lab == 3, 0, lab))
    assert any("the image's too" in n for n in ok.notes)

    ds = pydicom.dcmread(path)
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid()
    other = tmp_path / "other_frame.dcm"
    ds.save_as(other)
    with pytest.raises(SegviewerError, match="another frame of reference") as err:
        load_prediction(
            other, volume.shape, image_affine=volume.affine, image_metadata=volume.metadata
        )
    assert volume.metadata["series_uid"] in str(err.value)  # names the series to open
    with pytest.raises(SegviewerError, match="another frame of reference"):
        load_reference(
            other, volume.shape, image_affine=volume.affine, image_metadata=volume.metadata
        )
    # an image that does not name its frame (a NIfTI of the series): placed by geometry
    placed = load_prediction(other, volume.shape, image_affine=volume.affine)
    np.testing.assert_array_equal(np.asarray(placed.data), np.asarray(ok.data))

    # the same frame, another series (a T1 segmentation on the T2): placed, with a note
    t2 = dict(volume.metadata, series_uid="1.2.826.0.1.3680043.8.498.1")
    moved = load_prediction(path, volume.shape, image_affine=volume.affine, image_metadata=t2)
    np.testing.assert_array_equal(np.asarray(moved.data), np.asarray(ok.data))
    assert any("made on another series" in n for n in moved.notes)


def test_cli_refuses_a_seg_of_another_frame(volume, series: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sys

    lab = _labels(volume)
    path = tmp_path / "s.dcm"
    dicomseg.write_seg(volume, [lab == 1], TABLE, [1], path, allow_identifiers=True)
    ds = pydicom.dcmread(path)
    ds.FrameOfReferenceUID = pydicom.uid.generate_uid()
    ds.save_as(path)
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "segviewer", "export", str(series), "--prediction", str(path),
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "another frame of reference" in run.stderr
    assert not out.exists() or not any(out.iterdir())


def test_segment_codes_travel_with_the_class_table(volume, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A SEG whose segments carry codes the names alone would not give (a label no lookup
    knows, coded as liver) opens with them in its class table, and a SEG exported with that
    table keeps them; a renamed or recoloured class keeps them too."""
    lab = _labels(volume)
    liver = (("123037004", "SCT", "Anatomical Structure"), ("10200004", "SCT", "Liver"))
    mass = (("49755003", "SCT", "Morphologically Altered Structure"), ("4147007", "SCT", "Mass"))
    first = tmp_path / "first.dcm"
    dicomseg.write_seg(
        volume, [lab == 1, lab == 2], TABLE, [1, 2], first, allow_identifiers=True,
        codes={1: liver, 2: mass},
    )  # fmt: skip
    table = dicomseg.seg_class_table(first)
    assert table[1].codes == liver and table[2].codes == mass and table[0].codes is None
    assert table.with_name(1, "liver, model A")[1].codes == liver
    assert table.with_color(2, (1, 2, 3))[2].codes == mass

    pred = load_prediction(first, volume.shape, image_affine=volume.affine)
    _export(
        volume, pred, tmp_path / "again", table=table.with_name(1, "liver, model A"),
        formats=frozenset({"dicom-seg"}), what=frozenset({"labels"}), allow_identifiers=True,
        classes=(1, 2),
    )  # fmt: skip
    ds = pydicom.dcmread(tmp_path / "again" / "segmentation.dcm")
    got = [
        (
            tuple(str(v) for v in (c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning))
            for c in (s.SegmentedPropertyCategoryCodeSequence[0],
                      s.SegmentedPropertyTypeCodeSequence[0])
        )
        for s in ds.SegmentSequence
    ]  # fmt: skip
    assert [tuple(g) for g in got] == [liver, mass]
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["liver, model A", "White_Matter"]
    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    segs = manifest["files"][0]["dicom_seg"]["segments"]
    assert [s["codes_from"] for s in segs] == ["class table", "class table"]
    # without codes in the table, the name is looked up as before
    plain = dicomseg.seg_class_table(first).with_codes({1: None, 2: None})
    _export(
        volume, pred, tmp_path / "plain", table=plain, formats=frozenset({"dicom-seg"}),
        what=frozenset({"labels"}), allow_identifiers=True, classes=(1, 2),
    )  # fmt: skip
    ds = pydicom.dcmread(tmp_path / "plain" / "segmentation.dcm")
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in ds.SegmentSequence]
    assert types == ["Gray Matter", "White Matter"]  # the names "grey matter", "White_Matter"
