"""``segviewer evaluate``: in-process (main([...])) and once as a real subprocess with Dask
worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.cli import main
from segviewer.io.evaluate import read_rows

_BOX = (slice(24, 72), slice(30, 90), slice(40, 56))


@pytest.fixture()
def test_set(tmp_path: Path, demo_dir: Path) -> Path:
    """Two cases from the demo MRI: a perfect prediction and one shifted by two voxels."""
    t1 = nib.load(demo_dir / "t1.nii.gz")
    probs = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj, dtype=np.float32)[_BOX]
    img = np.asarray(t1.dataobj)[_BOX]
    ref = np.argmax(probs, axis=-1).astype(np.uint8)
    root = tmp_path / "set"
    for sub in ("images", "predictions", "references"):
        (root / sub).mkdir(parents=True)
    for cid, shift in (("good", 0), ("shifted", 2)):
        nib.save(nib.Nifti1Image(img, t1.affine), root / "images" / f"{cid}.nii.gz")
        nib.save(nib.Nifti1Image(ref, t1.affine), root / "references" / f"{cid}.nii.gz")
        logits = np.log(np.clip(np.roll(probs, shift, axis=1), 1e-4, 1.0))
        np.save(root / "predictions" / f"{cid}.npy", logits.astype(np.float32))
    return root


def test_evaluate_in_process(
    test_set: Path, tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["evaluate", str(test_set), "--out", str(out), "--workers", "0"]
    rc = main([*argv, "--classes", str(demo_dir / "classes.json")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "2 cases evaluated" in cap.out and "in this process" in cap.out
    assert "[1/2]" in cap.err and "[2/2]" in cap.err  # one line per case without a terminal
    for name in ("cases.csv", "slices.csv", "summary.json", "report.html"):
        assert (out / name).is_file()
    rows = {(r["case"], r["class"]): r for r in read_rows(out / "cases.csv")}
    assert rows[("good", "white matter")]["dice"] == 1.0
    assert rows[("shifted", "white matter")]["dice"] < 0.9

    # a second run without --resume is refused, with it nothing is recomputed
    assert main(argv) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main([*argv, "--resume", "--classes", str(demo_dir / "classes.json")]) == 0
    assert "0 cases evaluated" in capsys.readouterr().out


def test_failed_case_gives_status_1_and_a_warning(
    test_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (test_set / "predictions" / "shifted.npy").write_bytes(b"\x93NUMPY garbage")
    rc = main(["evaluate", str(test_set), "--out", str(tmp_path / "o"), "--workers", "0"])
    cap = capsys.readouterr()
    assert rc == 1
    assert "segviewer: warning: case shifted failed:" in cap.err
    assert "1 failed" in cap.out
    assert {r["case"] for r in read_rows(tmp_path / "o" / "cases.csv")} == {"good"}


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--help"]) == 0
    assert "--scheduler" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "1",
                 "--scheduler", "tcp://x:1"]) == 2  # fmt: skip
    assert "not allowed with" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "holds images/ and predictions/" in capsys.readouterr().err


def test_subprocess_with_two_dask_worker_processes(test_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "segviewer",
            "evaluate",
            str(test_set),
            "--out",
            str(out),
            "--workers",
            "2",
            "--no-slice-distances",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 workers" in proc.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["timing"]["workers"] == 2 and s["n_evaluated"] == 2


@pytest.mark.tf
def test_model_runs_on_every_image(tmp_path: Path, demo_dir: Path) -> None:
    """--model: the bundled demo model makes the prediction of each case (CSV without a
    prediction column); its class names come from the model card."""
    pytest.importorskip("tensorflow")
    ref = np.argmax(np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj), axis=-1)
    t1 = nib.load(demo_dir / "t1.nii.gz")
    nib.save(nib.Nifti1Image(ref.astype(np.uint8), t1.affine), tmp_path / "ref.nii.gz")
    (tmp_path / "cases.csv").write_text(
        f"id,image,reference\ndemo,{demo_dir / 't1.nii.gz'},ref.nii.gz\n"
    )
    out = tmp_path / "out"
    rc = main(
        [
            "evaluate",
            str(tmp_path / "cases.csv"),
            "--out",
            str(out),
            "--workers",
            "0",
            "--model",
            str(demo_dir / "model.keras"),
            "--no-slice-distances",
        ]  # fmt: skip
    )
    assert rc == 0
    rows = {r["class"]: r for r in read_rows(out / "cases.csv")}
    # the README's figures for the demo model: Dice about 0.96 for grey and white matter
    assert rows["grey matter"]["dice"] > 0.9 and rows["white matter"]["dice"] > 0.9
    assert rows["white matter"]["mean_entropy"] is not None
