"""TestSetSession: a test set of real MRI (the demo T1) with two predictions and a reference,
measured in background jobs, notes saved beside the CSV and reopened, evaluation tables."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from segviewer.core import metrics
from segviewer.core.types import MaskSettings, SegviewerError, Volume
from segviewer.io.predictions import load_prediction, load_reference
from segviewer.io.testset import load_cases


def make_test_set(folder: Path, demo_dir: Path, n_cases: int = 3) -> Path:
    """A CSV test set: every case is the demo T1; prediction = the demo tissue
    probabilities, reference = their arg-max with case-specific damage (white matter
    relabelled grey on slices 40 .. 41 + 6 i), prediction_b = the
    reference with another damage (so B beats A on some cases and not on others)."""
    t1 = nib.load(demo_dir / "t1.nii.gz")
    probs = nib.load(demo_dir / "tissue_prob.nii.gz")
    ref0 = np.argmax(np.asarray(probs.dataobj), axis=-1).astype(np.uint8)  # type: ignore[attr-defined]
    rows = []
    for i in range(n_cases):
        cid = f"case{i}"
        ref = ref0.copy()
        # the reference loses white matter in a growing slab: A's Dice drops case by case
        slab = slice(40, 42 + 6 * i)
        ref[:, :, slab][ref[:, :, slab] == 2] = 1
        b = ref.copy()
        b[:, :, 20 + 10 * i : 30 + 10 * i] = 0  # B misses ten slices of everything
        nib.save(nib.Nifti1Image(ref, t1.affine), folder / f"{cid}_ref.nii.gz")  # type: ignore[attr-defined]
        nib.save(nib.Nifti1Image(b, t1.affine), folder / f"{cid}_b.nii.gz")  # type: ignore[attr-defined]
        rows.append(
            {
                "id": cid,
                "image": str(demo_dir / "t1.nii.gz"),
                "prediction": str(demo_dir / "tissue_prob.nii.gz"),
                "reference": f"{cid}_ref.nii.gz",
                "prediction_b": f"{cid}_b.nii.gz",
            }
        )
    path = folder / "cases.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _open_case(session: Any, qtbot: Any, case_id: str) -> dict[str, Any]:
    """What the host does: read the case's files, label them, hand them to the session."""
    from segviewer.core.masks import iter_labels
    from segviewer.core.progress import run_to_end

    case = session.set_current(case_id)
    img = nib.load(case.image)
    vol = Volume(np.asarray(img.dataobj, np.float32), img.affine, source=str(case.image))  # type: ignore[attr-defined]
    pred = load_prediction(case.prediction, vol.shape)
    labels = run_to_end(iter_labels(pred, MaskSettings())).labels
    ref = load_reference(case.reference, vol.shape, n_classes_hint=3)
    with qtbot.waitSignal(session.measured, timeout=60_000):
        session.measure(labels, ref, 3, vol.spacing, 2, pred, ["background", "grey", "white"])
    return {"volume": vol, "labels": labels, "ref": ref, "pred": pred}


@pytest.fixture
def session(qtbot: Any, tmp_path: Path, demo_dir: Path) -> Any:
    from segviewer.ui.testset_session import TestSetSession
    from segviewer.ui.workers import JobRunner

    runner = JobRunner()
    s = TestSetSession(runner)
    s.open(load_cases(make_test_set(tmp_path, demo_dir)))
    yield s
    runner.wait_all(10_000)


def test_measuring_fills_the_case_table_and_slice_rows(qtbot: Any, session: Any) -> None:
    s = session
    assert [r["case"] for r in s.case_rows()] == ["case0", "case1", "case2"]
    assert "dice" not in s.case_rows()[0]  # nothing measured yet
    got = _open_case(s, qtbot, "case2")
    m = s.last
    assert m.case_id == "case2" and m.metrics.has_reference and m.metrics.has_uncertainty
    assert s.class_names() == ["grey", "white"]
    s.set_class("white")
    rows = {r["case"]: r for r in s.case_rows()}
    expected = metrics.case_metrics(got["labels"], got["ref"], 3, got["volume"].spacing, 2)
    assert rows["case2"]["dice"] == pytest.approx(expected.per_class[2].dice)
    assert rows["case2"]["hd95_mm"] == pytest.approx(expected.per_class[2].hd95_mm)
    assert "dice" not in rows["case0"]
    # the worst slice is the measurement's, and the slice rows carry it
    worst = s.worst_slice("case2", "white")
    assert worst == expected.worst_slice[2]
    srows = s.slice_rows(2)
    assert len(srows) == got["volume"].shape[2]
    from segviewer.core.review import worst_slice

    assert worst_slice(srows) == worst  # the rows' rule and core.metrics' agree
    assert srows[worst]["dice"] == 0.0  # this slab lost its white matter in the reference


def test_second_prediction_gives_both_models_and_difference(qtbot: Any, session: Any) -> None:
    s = session
    got = _open_case(s, qtbot, "case1")
    with qtbot.waitSignal(s.pair_ready, timeout=60_000) as sig:
        assert s.load_prediction_b(
            got["volume"].shape,
            got["volume"].affine,
            MaskSettings(),
            got["labels"],
            got["ref"],
            3,
            got["volume"].spacing,
            2,
        )
    result = sig.args[0]
    b = result.labels_b
    case = s.case("case1")
    expected_b = np.asarray(nib.load(case.prediction_b).dataobj)  # type: ignore[attr-defined]
    assert np.array_equal(b, expected_b)
    s.set_class("grey")
    row = next(r for r in s.case_rows() if r["case"] == "case1")
    from segviewer.core.compare import compare

    da = compare(got["labels"], got["ref"], 3).per_class[1].dice
    db = compare(b, got["ref"], 3).per_class[1].dice
    assert row["dice"] == pytest.approx(da)
    assert row["dice_b"] == pytest.approx(db)
    assert row["dice_diff"] == pytest.approx(db - da)
    assert result.pair.rows()[1]["dice_a_b"] == pytest.approx(
        compare(got["labels"], b, 3).per_class[1].dice
    )


def test_notes_saved_beside_the_csv_and_reopened(qtbot: Any, session: Any, tmp_path: Path) -> None:
    from segviewer.ui.testset_session import TestSetSession

    s = session
    with qtbot.waitSignal(s.rows_changed):
        s.set_note("case1", verdict="reject", comment="white matter under-segmented")
    s.set_note("case1", axis=2, slice_index=44, verdict="unsure")
    sidecar = tmp_path / "cases.notes.csv"
    assert sidecar.exists()
    row = next(r for r in s.case_rows() if r["case"] == "case1")
    assert (row["verdict"], row["slice_notes"]) == ("reject", 1)
    again = TestSetSession(s.runner)
    again.open(s.cases)
    row = next(r for r in again.case_rows() if r["case"] == "case1")
    assert row["comment"] == "white matter under-segmented"
    with pytest.raises(SegviewerError, match="no case 'nope'"):
        s.set_note("nope", verdict="accept")


def test_evaluation_tables_drive_rows_and_worst_slice(
    qtbot: Any, session: Any, tmp_path: Path
) -> None:
    ev = tmp_path / "eval"
    ev.mkdir()
    (ev / "cases.csv").write_text(
        "case,class,model,dice,hd95_mm,axis,worst_slice\n"
        "case0,grey,a,0.91,2.0,1,50\ncase0,grey,b,0.85,3.5,1,\n"
        "case1,grey,a,0.62,,1,12\ncase1,grey,b,0.80,4.0,1,\n"
        "case2,grey,a,0.75,6.0,1,\n"
        "case0,white,a,0.95,1.0,1,33\n"
    )
    (ev / "slices.csv").write_text(
        "case,class,slice,dice,fp,fn,absent_in_both\n"
        "case2,grey,10,0.9,1,2,false\ncase2,grey,11,0.4,5,9,false\ncase2,grey,12,1.0,0,0,true\n"
    )
    s = session
    s.open(s.cases, evaluation=ev)
    assert s.class_names() == ["grey", "white"]
    rows = {r["case"]: r for r in s.case_rows()}
    assert rows["case1"]["dice_diff"] == pytest.approx(0.18)
    assert rows["case2"].get("dice_b") is None
    assert s.worst_slice("case0") == 50
    assert s.worst_position("case0") == (1, 50)  # along the evaluation's --view axis
    assert s.worst_slice("case0", "white") == 33
    assert s.worst_slice("case2") == 11  # from slices.csv
    bad = tmp_path / "notafolder"
    with pytest.raises(SegviewerError, match="not a folder"):
        s.open(s.cases, evaluation=bad)
    assert s.evaluation == ev  # a failed open changes nothing


def test_real_evaluation_output_opens(qtbot: Any, session: Any, tmp_path: Path) -> None:
    """``evaluate``'s own cases.csv / slices.csv (run in this process) drive the rows, the
    worst slices and the verdicts, and a note written in the window reaches the next run."""
    from segviewer.core.progress import run_to_end
    from segviewer.io.evaluate import run_evaluation

    s = session
    s.set_note("case2", verdict="reject")
    out = tmp_path / "eval"
    run_to_end(run_evaluation(s.cases, out, workers=0))
    s.open(s.cases, evaluation=out)
    names = s.class_names()
    assert len(names) == 2 and "background" not in [n.lower() for n in names]
    s.set_class(names[1])  # white matter
    rows = {r["case"]: r for r in s.case_rows()}
    # case i lost white matter in 2 + 6 i slices of its reference: A's Dice falls case by case
    assert rows["case0"]["dice"] > rows["case1"]["dice"] > rows["case2"]["dice"]
    assert "dice_b" in rows["case0"] and "dice_diff" in rows["case0"]
    assert rows["case2"]["verdict"] == "reject"
    # the worst slice of case2 for white matter is inside its damaged slab (slices 40..53)
    worst = s.worst_slice("case2")
    assert worst is not None and 40 <= worst < 54
    cases_csv = (out / "cases.csv").read_text()
    assert "reject" in cases_csv


def test_own_evaluation_never_reads_the_whole_slices_csv(
    qtbot: Any, session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """segviewer's evaluation keeps each case's slice rows in a small file: opening the test
    set reads cases.csv only, and a case's worst slice without a worst_slice column comes
    from that case's record."""
    import segviewer.io.evaluate as evaluate
    from segviewer.core.progress import run_to_end

    s = session
    out = tmp_path / "eval"
    run_to_end(evaluate.run_evaluation(s.cases, out, workers=0))
    read: list[str] = []
    real = evaluate.read_rows

    def spy(path: Any) -> Any:
        read.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(evaluate, "read_rows", spy)
    s.open(s.cases, evaluation=out)
    assert read == ["cases.csv"]
    names = s.class_names()
    s.set_class(names[1])
    for r in s._eval_cases:  # as another tool's cases.csv without the column
        r["worst_slice"] = None
    worst = s.worst_slice("case2")
    assert worst is not None and 40 <= worst < 54  # case2's damaged slab, from its record
    assert read == ["cases.csv"]
    assert s.worst_slice("nope") is None


def test_command_line_helpers(tmp_path: Path, demo_dir: Path) -> None:
    from segviewer.ui.testset_session import evaluated_test_set, is_test_set

    csv_path = make_test_set(tmp_path, demo_dir, n_cases=1)
    assert is_test_set(csv_path)
    assert is_test_set(str(tmp_path / "study" / "*"))
    assert not is_test_set(demo_dir / "t1.nii.gz")
    (tmp_path / "set" / "images").mkdir(parents=True)
    assert not is_test_set(tmp_path / "set")
    (tmp_path / "set" / "predictions").mkdir()
    assert is_test_set(tmp_path / "set")
    ev = tmp_path / "ev"
    ev.mkdir()
    with pytest.raises(SegviewerError, match="has no summary.json"):
        evaluated_test_set(ev)
    (ev / "summary.json").write_text('{"test_set": {"source": "/data/cases.csv"}}')
    assert evaluated_test_set(ev) == "/data/cases.csv"
    (ev / "summary.json").write_text("{}")
    with pytest.raises(SegviewerError, match="does not name its test set"):
        evaluated_test_set(ev)
