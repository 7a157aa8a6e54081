"""``segviewer export`` with DICOM SEG output and research-format predictions (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from mr_series_data import write_mr_series

from segviewer.cli import main
from segviewer.io.images import load_image


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli_mr") / "series"
    write_mr_series(folder)
    return folder


def _labels(series: Path) -> np.ndarray:
    vol = load_image(series)
    d = np.asarray(vol.data)
    lab = np.zeros(vol.shape, np.uint8)
    lab[d > 150] = 1
    lab[d > 300] = 2
    return lab


def test_export_dicom_seg_needs_allow_identifiers(
    series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = _labels(series)
    np.save(tmp_path / "labels.npy", lab)
    (tmp_path / "classes.json").write_text(
        json.dumps(
            {
                "classes": [
                    {"index": 0, "name": "background"},
                    {"index": 1, "name": "grey matter"},
                    {"index": 2, "name": "white matter"},
                ]
            }
        )
    )
    args = [
        "export",
        str(series),
        "--prediction",
        str(tmp_path / "labels.npy"),
        "--classes",
        str(tmp_path / "classes.json"),
        "--format",
        "dicom-seg",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "patient and study identifiers" in err and "--allow-identifiers" in err
    assert not (tmp_path / "out").exists()
    assert main([*args, "--allow-identifiers"]) == 0
    ds = pydicom.dcmread(tmp_path / "out" / "segmentation.dcm")
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["grey matter", "white matter"]
    # the SEG back in as a prediction: its segment names become the class table
    assert (
        main(
            [
                "export",
                str(series),
                "--prediction",
                str(tmp_path / "out" / "segmentation.dcm"),
                "--what",
                "labels",
                "--format",
                "npy",
                "--out",
                str(tmp_path / "back"),
                "--quiet",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.load(tmp_path / "back" / "labels.npy"), lab)
    manifest = json.loads((tmp_path / "back" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["classes"]] == ["background", "grey matter", "white matter"]


def test_export_npz_member_syntax(
    nibabel_anatomical: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vol = load_image(nibabel_anatomical)
    rng = np.random.default_rng(0)
    p = rng.dirichlet([1, 1, 1], size=vol.shape).astype(np.float32)  # (X, Y, Z, 3)
    np.savez(tmp_path / "out.npz", probabilities=p, logits=np.log(p))
    base = ["export", str(nibabel_anatomical), "--what", "labels", "--format", "npy", "--quiet"]
    assert (
        main([*base, "--prediction", str(tmp_path / "out.npz"), "--out", str(tmp_path / "a")]) != 0
    )
    assert "out.npz:NAME" in capsys.readouterr().err
    pred = f"{tmp_path / 'out.npz'}:probabilities"
    assert main([*base, "--prediction", pred, "--out", str(tmp_path / "b")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b" / "labels.npy"), np.argmax(p, axis=-1))
