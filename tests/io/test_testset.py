"""Reading test sets: CSV, folder pair/triple, glob of case folders, and their error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from segviewer.core.types import SegviewerError
from segviewer.io.testset import case_key, load_cases


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_csv_paths_are_relative_to_the_csv_and_optional_columns_may_be_empty(
    tmp_path: Path,
) -> None:
    root = tmp_path / "set"
    _touch(root / "img" / "a.nii.gz")
    _touch(root / "img" / "b.nii.gz")
    _touch(root / "pred" / "a.npy")
    _touch(root / "pred" / "b.npy")
    _touch(root / "ref" / "a.nii.gz")
    _touch(root / "predb" / "a.npy")
    absolute = _touch(tmp_path / "elsewhere" / "classes.json", b"[]")
    (root / "cases.csv").write_text(
        "# two cases, the second without a reference\n"
        "image,prediction,reference,prediction_b,classes,site\n"
        f"img/a.nii.gz,pred/a.npy,ref/a.nii.gz,predb/a.npy,{absolute},A\n"
        "\n"
        "img/b.nii.gz,pred/b.npy,,,,B\n",
        encoding="utf-8",
    )
    cl = load_cases(root / "cases.csv")
    assert cl.kind == "csv" and cl.root == root and len(cl) == 2
    a, b = cl.cases
    assert a.id == "a" and b.id == "b"  # from the image names, ".nii.gz" removed
    assert a.image == root / "img" / "a.nii.gz"
    assert a.prediction == root / "pred" / "a.npy"
    assert a.reference == root / "ref" / "a.nii.gz"
    assert a.prediction_b == root / "predb" / "a.npy"
    assert a.classes == absolute
    assert a.extra == {"site": "A"}
    assert b.reference is None and b.prediction_b is None and b.classes is None
    assert cl.has_reference and cl.has_prediction_b
    assert cl.by_id("b") is b
    assert set(a.paths()) == {"image", "prediction", "reference", "classes", "prediction_b"}


def test_csv_errors_name_the_line_and_what_to_do(tmp_path: Path) -> None:
    _touch(tmp_path / "a.nii")
    _touch(tmp_path / "p.npy")
    csv = tmp_path / "cases.csv"

    csv.write_text("image,prediction\na.nii,missing.npy\n")
    with pytest.raises(
        SegviewerError, match=r"line 2: the prediction 'missing.npy' does not exist"
    ):
        load_cases(csv)

    csv.write_text("image,prediction\na.nii,p.npy\na.nii,p.npy\n")
    with pytest.raises(SegviewerError, match=r"line 3: the case id 'a' is already used on line 2"):
        load_cases(csv)

    csv.write_text("img,prediction\na.nii,p.npy\n")
    with pytest.raises(SegviewerError, match="no 'image' column"):
        load_cases(csv)

    csv.write_text("image\na.nii\n")
    with pytest.raises(SegviewerError, match="no 'prediction' column"):
        load_cases(csv)
    # ... unless a model makes the predictions
    assert load_cases(csv, need_prediction=False).cases[0].prediction is None

    csv.write_text("image,prediction\na.nii,\n")
    with pytest.raises(SegviewerError, match="line 2: the 'prediction' cell is empty"):
        load_cases(csv)

    csv.write_text("image,prediction\n")
    with pytest.raises(SegviewerError, match="has no cases"):
        load_cases(csv)

    csv.write_text("image,prediction\na.nii,p.npy,extra\n")
    with pytest.raises(SegviewerError, match="3 values but the header names 2 columns"):
        load_cases(csv)

    # ids given explicitly may repeat image names
    csv.write_text("id,image,prediction\none,a.nii,p.npy\ntwo,a.nii,p.npy\n")
    assert [c.id for c in load_cases(csv).cases] == ["one", "two"]


def test_folder_triple_matched_by_name_in_natural_order(tmp_path: Path) -> None:
    for k in ("case10", "case2"):
        _touch(tmp_path / "images" / f"{k}_0000.nii.gz")  # nnU-Net channel suffix
        _touch(tmp_path / "predictions" / f"{k}.npy")
        _touch(tmp_path / "references" / f"{k}.nii.gz")
    _touch(tmp_path / "images" / ".DS_Store")
    cl = load_cases(tmp_path)
    assert cl.kind == "folder"
    assert [c.id for c in cl.cases] == ["case2", "case10"]
    c = cl.cases[0]
    assert c.image.name == "case2_0000.nii.gz"
    assert c.prediction == tmp_path / "predictions" / "case2.npy"
    assert c.reference == tmp_path / "references" / "case2.nii.gz"


def test_folder_errors(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "a.nii")
    _touch(tmp_path / "images" / "b.nii")
    with pytest.raises(SegviewerError, match="holds images/ and predictions/"):
        load_cases(tmp_path)
    _touch(tmp_path / "predictions" / "a.npy")
    with pytest.raises(SegviewerError, match=r"predictions: no file for the image\(s\) b.nii"):
        load_cases(tmp_path)
    _touch(tmp_path / "predictions" / "b.npy")
    _touch(tmp_path / "predictions" / "c.npy")
    with pytest.raises(SegviewerError, match="c.npy match no image"):
        load_cases(tmp_path)
    (tmp_path / "predictions" / "c.npy").unlink()
    _touch(tmp_path / "predictions" / "b.nii.gz")
    with pytest.raises(SegviewerError, match="b.nii.gz and b.npy have the same case name"):
        load_cases(tmp_path)


def test_glob_of_case_folders(tmp_path: Path) -> None:
    for k in ("s1", "s2"):
        _touch(tmp_path / k / "image.nii.gz")
        _touch(tmp_path / k / "prediction.npy")
        _touch(tmp_path / k / "prediction_b.npy")
    _touch(tmp_path / "s2" / "reference.nii.gz")
    cl = load_cases(str(tmp_path / "*") + "/")
    assert cl.kind == "glob" and cl.root == tmp_path
    assert [c.id for c in cl.cases] == ["s1", "s2"]
    assert cl.cases[0].prediction_b == tmp_path / "s1" / "prediction_b.npy"
    assert cl.cases[0].prediction == tmp_path / "s1" / "prediction.npy"
    assert cl.cases[0].reference is None and cl.cases[1].reference is not None

    with pytest.raises(SegviewerError, match="matches files, not case folders"):
        load_cases(str(tmp_path / "*" / "image.nii.gz"))
    with pytest.raises(SegviewerError, match="matches nothing"):
        load_cases(str(tmp_path / "nothing*"))
    _touch(tmp_path / "s3" / "image.nii")
    with pytest.raises(SegviewerError, match="s3: no file whose name starts with 'prediction'"):
        load_cases(str(tmp_path / "s*"))


def test_unknown_sources(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="no such file or folder"):
        load_cases(tmp_path / "nope.csv")
    with pytest.raises(SegviewerError, match="is none of them"):
        load_cases(_touch(tmp_path / "a.nii"))


def test_case_key(tmp_path: Path) -> None:
    assert case_key(Path("x/case.nii.gz")) == "case"
    assert case_key(Path("x/case.v2.npy")) == "case.v2"
    (tmp_path / "dicom.series").mkdir()
    assert case_key(tmp_path / "dicom.series") == "dicom.series"
