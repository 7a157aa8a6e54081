"""The command line says what geometry did: ``info`` and ``export`` with ``--resample``,
unknown orientation, ``--classes-offset``. In-process (``main([...])``), real files."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from segviewer.cli import main


@pytest.fixture()
def atlas(tmp_path: Path, demo_dir: Path) -> Path:
    """Demo tissue labels cropped to their own box and origin (an atlas on its own grid)."""
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    labels = np.asarray(img.dataobj).argmax(axis=-1).astype(np.uint8)
    aff = img.affine.copy()
    aff[:3, 3] = (img.affine @ [10, 12, 8, 1])[:3]
    path = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels[10:87, 12:100, 8:85], aff), path)
    return path


def test_info_reports_the_resampling(
    atlas: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t1 = str(demo_dir / "t1.nii.gz")
    assert main(["info", str(atlas), "--image", t1, "--resample"]) == 0
    out = capsys.readouterr().out
    assert "resampled: Resampled from 77x88x77 (2x2x2 mm) onto the image grid 98x116x94" in out
    assert "in world space through both affines, nearest neighbour" in out
    assert "covers" in out and "% of the image" in out
    assert main(["info", str(atlas), "--image", t1, "--resample", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rec = doc[0]["prediction"]["against_image"]["resampling"]
    assert rec["geometry"] == "world" and rec["from_shape"] == [77, 88, 77]
    assert rec["image_covered"] == pytest.approx(77 * 88 * 77 / (98 * 116 * 94), abs=1e-6)


def test_export_with_resample_records_it(
    atlas: Path, demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    t1 = str(demo_dir / "t1.nii.gz")
    code = main(
        ["export", t1, "--prediction", str(atlas), "--resample", "--what", "labels",
         "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == 0
    assert "in world space" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"]["prediction"]["resampling"]["method"] == "nearest neighbour"
    labels = np.asarray(nib.load(out / "labels.nii.gz").dataobj)
    src = np.asarray(nib.load(atlas).dataobj)
    assert np.array_equal(labels[10:87, 12:100, 8:85], src)


def test_info_on_unknown_orientation_says_one_thing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", get_testdata_file("emri_small.dcm")]) == 0
    out = capsys.readouterr().out
    assert "orientation unknown" in out
    assert "orientation SPL" not in out and "orientation S" not in out


def test_classes_offset(tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "labels.csv"
    table.write_text("index,name\n0,Grey_Matter\n1,White_Matter\n", encoding="utf-8")
    assert main(["info", str(table)]) == 0
    out = capsys.readouterr().out
    assert out.index("warning: class 0 of the class table is 'Grey_Matter'") < out.index(
        "class table ("
    )
    assert main(["info", str(table), "--classes-offset", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 classes: 0 background, 1 Grey_Matter, 2 White_Matter" in out

    # a label map with background 0 and structures 1..2 next to that table
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    labels = np.asarray(img.dataobj).argmax(axis=-1).astype(np.uint8)
    nib.save(nib.Nifti1Image(labels, img.affine), tmp_path / "lab.nii.gz")
    t1 = str(demo_dir / "t1.nii.gz")
    args = ["export", t1, "--prediction", str(tmp_path / "lab.nii.gz"), "--classes", str(table),
            "--what", "labels", "--quiet"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "looks shifted by one" in capsys.readouterr().err
    assert main([*args, "--classes-offset", "1", "--out", str(tmp_path / "b")]) == 0
    assert "looks shifted" not in capsys.readouterr().err
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in manifest["classes"]] == ["background", "Grey_Matter", "White_Matter"]
