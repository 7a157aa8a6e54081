"""No patient, study, equipment or institution value of a DICOM file reaches any export.

The README promises that "no patient-identifying DICOM field is written anywhere". The check
is by value, not by key: every attribute of the Patient, General Study, Patient Study,
General Equipment modules (and every date, time and free-text field) of a real DICOM file
(pydicom's MR_small.dcm) is set to a unique marker string; then every file that an export
writes (NIfTI headers and extensions included, decompressed), the manifest and the
``info --json`` output are searched for each marker.

Manufacturer and ManufacturerModelName are the exception the basic de-identification profile
(DICOM PS3.15 Annex E) also makes: they name a scanner type, not a person or a site, and
segviewer keeps them as acquisition metadata; they are still checked not to be our markers'
neighbours (no other field rides along with them).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from segviewer.cli import main

# keyword -> marker value. Person names, IDs, text, dates, times, UIDs: every kind of VR.
_MARKERS: dict[str, str] = {
    # Patient module
    "PatientName": "Zorblat^Quintessa",
    "PatientID": "PIDX93847",
    "IssuerOfPatientID": "ISSUERX7731",
    "PatientBirthDate": "19310217",
    "PatientBirthTime": "071122",
    "PatientSex": "O",
    "OtherPatientIDs": "OPIDX55120",
    "PatientComments": "COMMENTXWARD7",
    "EthnicGroup": "ETHNX1",
    # Patient Study module
    "PatientAge": "087Y",
    "PatientSize": "1.9173",
    "PatientWeight": "91.337",
    "PatientAddress": "ADDRX12 Quux Lane",
    "PatientTelephoneNumbers": "555-0199-771",
    "AdditionalPatientHistory": "HISTORYXFALL",
    # General Study module
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.991122334455",
    "StudyDate": "19990521",
    "StudyTime": "134407",
    "ReferringPhysicianName": "Referrerx^Hortensia",
    "StudyID": "STUDYX4412",
    "AccessionNumber": "ACCX883311",
    "StudyDescription": "STUDYDESCX brain tumour follow-up",
    "PhysiciansOfRecord": "Recordx^Bartholomew",
    "NameOfPhysiciansReadingStudy": "Readerx^Ottoline",
    "RequestingPhysician": "Requestx^Ignatius",
    # General Series (identifying parts), acquisition dates and times
    "SeriesDate": "19990522",
    "SeriesTime": "134911",
    "AcquisitionDate": "19990523",
    "AcquisitionTime": "135013",
    "ContentDate": "19990524",
    "ContentTime": "135115",
    "InstanceCreationDate": "19990525",
    "PerformingPhysicianName": "Performx^Wilhelmina",
    "OperatorsName": "Operatorx^Gundula",
    "ProtocolName": "PROTOCOLX site 4 research",
    # General Equipment and institution
    "InstitutionName": "INSTX Saint Elsewhere Hospital",
    "InstitutionAddress": "INSTADDRX 1 Hospital Road",
    "InstitutionalDepartmentName": "DEPTX Neuroradiology",
    "StationName": "STATIONX77",
    "DeviceSerialNumber": "SERIALX445566",
    "SoftwareVersions": "SOFTX_VB17A",
}


@pytest.fixture(scope="module")
def tagged_dicom(tmp_path_factory: pytest.TempPathFactory, mr_small: Path) -> Path:
    ds = pydicom.dcmread(mr_small)
    for keyword, value in _MARKERS.items():
        setattr(ds, keyword, value)
    folder = tmp_path_factory.mktemp("phi")
    path = folder / "case.dcm"
    ds.save_as(path)
    back = pydicom.dcmread(path)
    for keyword, value in _MARKERS.items():  # the markers really are in the file
        assert str(getattr(back, keyword)) == value
    return path


def _search_values(ds: Dataset) -> list[str]:
    """The strings to look for: each marker, plus the parts of person names and dates."""
    values = set(_MARKERS.values())
    for value in list(values):
        values.update(part for part in value.replace("^", " ").split() if len(part) >= 6)
    values.discard("research")  # a common word in our own manifest text
    # Values shorter than 6 characters (PatientSex "O", PatientAge "087Y", EthnicGroup) occur
    # by chance in binary data; they are set in the file but not searched for.
    values = {v for v in values if len(v) >= 6}
    # dates also as ISO (1999-05-21): a writer may reformat them
    for keyword in ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate"):
        d = _MARKERS[keyword]
        values.add(f"{d[:4]}-{d[4:6]}-{d[6:]}")
    return sorted(values)


def _all_bytes(folder: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for f in sorted(folder.rglob("*")):
        if not f.is_file():
            continue
        data = f.read_bytes()
        if f.name.endswith(".gz"):
            data = gzip.decompress(data)
        out[str(f.relative_to(folder))] = data
    return out


def test_no_identifying_value_reaches_any_export(tmp_path: Path, tagged_dicom: Path) -> None:
    ds = pydicom.dcmread(tagged_dicom)
    rows, cols = int(ds.Rows), int(ds.Columns)
    pixels = ds.pixel_array.astype(np.float32)
    # a 3-class prediction made from the image itself, and a reference that differs from it
    logits = np.stack([-pixels, pixels - pixels.mean(), np.zeros_like(pixels)], axis=-1)
    pred = tmp_path / "pred.npy"
    np.save(pred, logits.astype(np.float32))
    ref = tmp_path / "ref.npy"
    np.save(ref, np.roll(np.argmax(logits, axis=-1), 3, axis=0).astype(np.uint8))
    assert logits.shape[:2] == (rows, cols)
    out = tmp_path / "out"
    rc = main(
        [
            "export",
            str(tagged_dicom),
            "--prediction",
            str(pred),
            "--reference",
            str(ref),
            "--what",
            "binary,labels,probabilities,overlays,errors",
            "--format",
            "nifti,png,npy",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    files = _all_bytes(out)
    # every kind of output was written, so the search below covers each writer
    names = "\n".join(files)
    for part in ("manifest.json", ".nii", ".png", ".npy"):
        assert part in names, names
    info_out = tmp_path / "info.json"
    with open(info_out, "w") as fh:
        import contextlib

        with contextlib.redirect_stdout(fh):
            assert main(["info", "--json", str(tagged_dicom)]) == 0
    files["<info --json>"] = info_out.read_bytes()
    json.loads(files["<info --json>"])  # it is the JSON a script would read
    leaks = [
        f"{value!r} in {name}"
        for name, data in files.items()
        for value in _search_values(ds)
        if value.encode() in data or value.encode("utf-16-le") in data
    ]
    assert not leaks, leaks


def test_the_marker_search_would_find_a_leak(tmp_path: Path, tagged_dicom: Path) -> None:
    # The search itself works: a manifest-like file holding one value is caught, also gzipped.
    (tmp_path / "m.json").write_text(json.dumps({"institution": _MARKERS["InstitutionName"]}))
    (tmp_path / "x.nii.gz").write_bytes(gzip.compress(b"\0" * 348 + b"19990521"))
    files = _all_bytes(tmp_path)
    ds = pydicom.dcmread(tagged_dicom)
    found = {name for name, data in files.items() for v in _search_values(ds) if v.encode() in data}
    assert found == {"m.json", "x.nii.gz"}
