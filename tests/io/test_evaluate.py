"""``run_evaluation`` on a test set built from the demo MRI (real anatomy), in process and on
a local Dask cluster: outputs, numbers, failures, resume, notes."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.compare import compare
from segviewer.core.progress import run_to_end
from segviewer.core.types import Progress, SegviewerError
from segviewer.io.evaluate import (
    CASE_COLUMNS,
    SLICE_COLUMNS,
    EvaluateOptions,
    evaluate_case,
    open_evaluation,
    read_rows,
    run_evaluation,
)
from segviewer.io.testset import load_cases

# a block through the middle of the demo brain keeps each case quick
_BOX = (slice(20, 76), slice(24, 96), slice(36, 60))
# case -> (shift along axis 1, noise, logit scale): the noisy model is also unsure (its
# logits are scaled down, so its softmax is flatter)
_QUALITY = {"perfect": (0, 0.0, 1.0), "shifted": (2, 0.3, 1.0), "noisy": (1, 1.5, 0.25)}


def _build(root: Path, demo_dir: Path, *, with_b: bool = True) -> dict[str, Any]:
    """images/ predictions/ references/ (predictions_b/): three cases of known quality.

    Reference = argmax of the demo tissue probabilities; model A's logits are the log
    probabilities, shifted along axis 1 and with noise; model B is A's noise halved."""
    t1 = nib.load(demo_dir / "t1.nii.gz")
    probs = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj, dtype=np.float32)
    img = np.asarray(t1.dataobj)[_BOX]
    pr = probs[_BOX]
    affine = t1.affine
    ref = np.argmax(pr, axis=-1).astype(np.uint8)
    rng = np.random.default_rng(1)
    for sub in ("images", "predictions", "references") + (("predictions_b",) if with_b else ()):
        (root / sub).mkdir(parents=True, exist_ok=True)
    labels_a = {}
    for cid, (shift, noise, scale) in _QUALITY.items():
        nib.save(nib.Nifti1Image(img, affine), root / "images" / f"{cid}.nii.gz")
        nib.save(nib.Nifti1Image(ref, affine), root / "references" / f"{cid}.nii.gz")
        logp = np.log(np.clip(pr, 1e-4, 1.0))
        n = rng.normal(0.0, 1.0, logp.shape).astype(np.float32)
        a = (np.roll(logp, shift, axis=1) + noise * n) * scale
        np.save(root / "predictions" / f"{cid}.npy", a.astype(np.float32))
        labels_a[cid] = np.argmax(a.astype(np.float32), axis=-1).astype(np.uint8)
        if with_b:
            b = (logp + 0.5 * noise * n) * scale
            np.save(root / "predictions_b" / f"{cid}.npy", b.astype(np.float32))
    return {"ref": ref, "labels_a": labels_a, "spacing": (2.0, 2.0, 2.0)}


@pytest.fixture(scope="module")
def test_set(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("testset")
    return root, _build(root, demo_dir)


@pytest.fixture(scope="module")
def evaluated(
    test_set: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory, demo_dir: Path
) -> tuple[Path, Any, list[Progress]]:
    """The test set evaluated in this process."""
    root, _ = test_set
    out = tmp_path_factory.mktemp("eval") / "out"
    reports: list[Progress] = []
    opts = EvaluateOptions(classes=str(demo_dir / "classes.json"))
    result = run_to_end(run_evaluation(root, out, opts, workers=0), reports.append)
    return out, result, reports


def test_outputs_and_numbers(evaluated: tuple[Path, Any, list[Progress]], test_set: Any) -> None:
    out, result, reports = evaluated
    _, truth = test_set
    assert result.n_cases == 3 and result.n_evaluated == 3 and not result.failed
    assert [p.name for p in result.files] == [
        "cases.csv",
        "slices.csv",
        "summary.json",
        "report.html",
    ]
    assert reports[-1].message.startswith("writing") and reports[-2].done == reports[-2].total
    rows = read_rows(out / "cases.csv")
    assert list(rows[0]) == list(CASE_COLUMNS)
    assert len(rows) == 3 * 2 * 3  # cases x models x classes
    by = {(r["case"], r["model"], r["class"]): r for r in rows}
    # numbers against core.compare on the label maps made independently here (np.argmax)
    for cid, lab in truth["labels_a"].items():
        cmp = compare(lab, truth["ref"], 3, 8.0)
        for k, name in enumerate(("background", "grey matter", "white matter")):
            r = by[(cid, "a", name)]
            c = cmp.per_class[k]
            assert (r["tp"], r["fp"], r["fn"]) == (c.tp, c.fp, c.fn)
            assert r["dice"] == pytest.approx(c.dice, rel=1e-6)
            assert r["volume_pred_ml"] == pytest.approx(c.volume_pred_mm3 / 1000, rel=1e-6)
            assert r["axis"] == 2  # axial slices of a RAS image run along axis 2
    perfect = by[("perfect", "a", "white matter")]
    assert perfect["dice"] == 1.0 and perfect["hd95_mm"] == 0.0 and perfect["assd_mm"] == 0.0
    assert perfect["worst_slice"] is None  # nothing wrong anywhere
    shifted = by[("shifted", "a", "white matter")]
    assert shifted["hd95_mm"] >= 2.0 and shifted["worst_slice"] is not None
    assert (
        by[("noisy", "a", "grey matter")]["mean_entropy"]
        > by[("perfect", "a", "grey matter")]["mean_entropy"]
    )
    # model B is closer to the reference; Dice of A against B is on both rows
    for cid in ("shifted", "noisy"):
        assert by[(cid, "b", "white matter")]["dice"] > by[(cid, "a", "white matter")]["dice"]
        assert (
            by[(cid, "a", "white matter")]["dice_a_b"] == by[(cid, "b", "white matter")]["dice_a_b"]
        )
    assert by[("perfect", "a", "background")]["hd95_mm"] is None  # no distances for background

    # slices.csv: every case, model, slice and class; sums give the case's counts
    srows = read_rows(out / "slices.csv")
    assert list(srows[0]) == list(SLICE_COLUMNS)
    n_sl = truth["ref"].shape[2]
    assert len(srows) == 3 * 2 * n_sl * 3
    fp_sum = sum(
        r["fp"]
        for r in srows
        if (r["case"], r["model"], r["class"]) == ("noisy", "a", "grey matter")
    )
    assert fp_sum == by[("noisy", "a", "grey matter")]["fp"]
    worst = shifted["worst_slice"]
    wrong = {
        r["slice"]: r["fp"] + r["fn"]
        for r in srows
        if (r["case"], r["model"], r["class"]) == ("shifted", "a", "white matter")
    }
    assert wrong[worst] == max(wrong.values())


def test_summary_json(evaluated: tuple[Path, Any, list[Progress]]) -> None:
    out, result, _ = evaluated
    s = json.loads((out / "summary.json").read_text())
    assert s["n_cases"] == 3 and s["n_evaluated"] == 3
    assert s["timing"] == json.loads(json.dumps(result.summary["timing"]))
    assert s["models"] == ["a", "b"] and s["classes"] == [
        "background",
        "grey matter",
        "white matter",
    ]
    rows = read_rows(out / "cases.csv")
    wm = [r["dice"] for r in rows if r["model"] == "a" and r["class"] == "white matter"]
    st = s["metrics"]["a"]["white matter"]["dice"]
    assert st["mean"] == pytest.approx(np.mean(wm), rel=1e-6)
    assert st["median"] == pytest.approx(np.median(wm), rel=1e-6)
    assert st["n"] == 3 and st["n_undefined"] == 0
    # worst overall: ascending mean foreground Dice of model A
    mean_fg = {
        c: np.mean(
            [r["dice"] for r in rows if r["case"] == c and r["model"] == "a" and r["class_index"]]
        )
        for c in ("perfect", "shifted", "noisy")
    }
    assert [w["case"] for w in s["worst_overall"]] == sorted(mean_fg, key=mean_fg.__getitem__)
    assert s["worst_overall"][-1]["case"] == "perfect"
    assert s["worst_overall"][0]["slice"] is not None and s["worst_overall"][0]["picture"]
    worst_wm = min(
        (r for r in rows if r["model"] == "a" and r["class"] == "white matter"),
        key=lambda r: r["dice"],
    )
    assert s["worst_cases"]["a"]["white matter"][0]["case"] == worst_wm["case"]
    assert "background" not in s["worst_cases"]["a"]
    assert s["timing"]["cases_evaluated"] == 3 and s["timing"]["workers"] == 0
    assert s["failed"] == []


def test_report_is_self_contained_with_plots_and_pictures(
    evaluated: tuple[Path, Any, list[Progress]],
) -> None:
    out, _, _ = evaluated
    html = (out / "report.html").read_text()
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in html
    assert html.count("<svg") >= 6  # one plot per metric with values
    assert html.count('src="data:image/png;base64,') == 3  # the worst cases' pictures
    assert "shifted" in html and "HD95 (mm)" in html
    # the pictures decode to real PNGs showing the slices
    from PIL import Image

    with Image.open(out / "cases" / "noisy.png") as pic:
        assert pic.size[0] > 4 * 56 and pic.mode == "RGB"  # four panels side by side


def test_dask_local_cluster_threads_gives_the_same_rows(
    test_set: tuple[Path, dict],
    evaluated: tuple[Path, Any, list[Progress]],
    tmp_path: Path,
    demo_dir: Path,
) -> None:
    from dask.distributed import Client, LocalCluster

    root, _ = test_set
    ref_out, _, _ = evaluated
    opts = EvaluateOptions(classes=str(demo_dir / "classes.json"))
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            dashboard_address=":0",  # any free port: 8787 may be taken
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        reports: list[Progress] = []
        result = run_to_end(
            run_evaluation(root, tmp_path / "out", opts, client=client), reports.append
        )
    assert result.workers == 2 and result.n_evaluated == 3
    assert [p.done for p in reports if p.message.endswith(" done")] == [1, 2, 3]
    assert (tmp_path / "out" / "cases.csv").read_text() == (ref_out / "cases.csv").read_text()
    assert (tmp_path / "out" / "slices.csv").read_text() == (ref_out / "slices.csv").read_text()


@pytest.mark.slow
def test_dask_worker_processes(test_set: tuple[Path, dict], tmp_path: Path, demo_dir: Path) -> None:
    """The default path: a local cluster of worker processes started and stopped here."""
    root, _ = test_set
    opts = EvaluateOptions(classes=str(demo_dir / "classes.json"), slice_distances=False)
    result = run_to_end(run_evaluation(root, tmp_path / "out", opts, workers=2))
    assert result.workers == 2 and result.n_evaluated == 3 and not result.failed
    rows = read_rows(tmp_path / "out" / "cases.csv")
    assert {r["case"] for r in rows} == {"perfect", "shifted", "noisy"}
    assert all(r["hd95_mm"] is not None for r in rows if r["class_index"] > 0)


def test_failing_case_is_reported_and_resume_retries_only_it(
    tmp_path: Path, demo_dir: Path
) -> None:
    root = tmp_path / "set"
    _build(root, demo_dir, with_b=False)
    good = np.load(root / "predictions" / "noisy.npy")
    np.save(root / "predictions" / "noisy.npy", good[:, :, :10])  # wrong shape
    out = tmp_path / "out"
    opts = EvaluateOptions(classes=str(demo_dir / "classes.json"), slice_distances=False)
    reports: list[Progress] = []
    r1 = run_to_end(run_evaluation(root, out, opts, workers=0), reports.append)
    assert [c for c, _ in r1.failed] == ["noisy"]
    assert "does not match" in r1.failed[0][1] or "shape" in r1.failed[0][1]
    assert any("noisy FAILED" in p.message for p in reports)
    assert {r["case"] for r in read_rows(out / "cases.csv")} == {"perfect", "shifted"}
    s = json.loads((out / "summary.json").read_text())
    assert s["failed"][0]["case"] == "noisy" and s["n_evaluated"] == 2
    assert "noisy" in (out / "report.html").read_text()

    with pytest.raises(SegviewerError, match="already holds an evaluation; add --resume"):
        run_to_end(run_evaluation(root, out, opts, workers=0))

    np.save(root / "predictions" / "noisy.npy", good)  # fixed
    r2 = run_to_end(run_evaluation(root, out, opts, workers=0, resume=True))
    assert (r2.n_resumed, r2.n_evaluated, r2.failed) == (2, 1, ())
    assert {r["case"] for r in read_rows(out / "cases.csv")} == {"perfect", "shifted", "noisy"}
    # a changed input is computed again; an untouched one is not
    shutil.copy(root / "predictions" / "noisy.npy", root / "predictions" / "perfect.npy")
    r3 = run_to_end(run_evaluation(root, out, opts, workers=0, resume=True))
    assert (r3.n_resumed, r3.n_evaluated) == (2, 1)
    rows = {(r["case"], r["class"]): r for r in read_rows(out / "cases.csv")}
    assert rows[("perfect", "white matter")]["dice"] == rows[("noisy", "white matter")]["dice"]


def test_without_reference_ranks_by_uncertainty_and_label_maps_have_none(
    tmp_path: Path, demo_dir: Path
) -> None:
    root = tmp_path / "set"
    truth = _build(root, demo_dir, with_b=False)
    shutil.rmtree(root / "references")
    # one case as a label map: no uncertainty for it
    np.save(root / "predictions" / "perfect.npy", truth["labels_a"]["perfect"])
    out = tmp_path / "out"
    result = run_to_end(run_evaluation(root, out, EvaluateOptions(), workers=0))
    assert not result.failed
    rows = {(r["case"], r["class_index"]): r for r in read_rows(out / "cases.csv")}
    assert rows[("noisy", 1)]["dice"] is None and rows[("noisy", 1)]["n_ref"] is None
    assert rows[("noisy", 1)]["mean_entropy"] > rows[("shifted", 1)]["mean_entropy"]
    assert rows[("perfect", 1)]["mean_entropy"] is None
    assert rows[("noisy", 1)]["worst_slice"] is not None  # the most uncertain slice
    s = json.loads((out / "summary.json").read_text())
    assert s["worst_overall"][0]["case"] == "noisy"
    assert s["worst_overall"][0]["score_name"] == "mean entropy"


def test_csv_test_set_with_ids_and_per_case_classes(tmp_path: Path, demo_dir: Path) -> None:
    root = tmp_path / "set"
    _build(root, demo_dir, with_b=False)
    (root / "cases.csv").write_text(
        "id,image,prediction,reference,classes\n"
        f"sub-01,images/shifted.nii.gz,predictions/shifted.npy,references/shifted.nii.gz,"
        f"{demo_dir / 'classes.json'}\n"
        "sub 02/x,images/noisy.nii.gz,predictions/noisy.npy,,\n"
    )
    cl = load_cases(root / "cases.csv")
    out = tmp_path / "out"
    result = run_to_end(
        run_evaluation(cl, out, EvaluateOptions(distances=False, slice_distances=False), workers=0)
    )
    assert not result.failed
    rows = read_rows(out / "cases.csv")
    assert {r["class"] for r in rows if r["case"] == "sub-01"} == {
        "background",
        "grey matter",
        "white matter",
    }
    assert {r["class"] for r in rows if r["case"] == "sub 02/x"} == {
        "background",
        "class 1",
        "class 2",
    }
    # an id that is not a file name still gets a safe file of its own
    names = sorted(p.name for p in (out / "cases").glob("*.json"))
    assert names[0] == "sub-01.json" and names[1].startswith("sub_02_x-")


def test_evaluate_case_turns_errors_into_results(tmp_path: Path, demo_dir: Path) -> None:
    root = tmp_path / "set"
    _build(root, demo_dir, with_b=False)
    (root / "references" / "noisy.nii.gz").write_bytes(b"not a nifti")
    cl = load_cases(root)
    r = evaluate_case(cl.by_id("noisy"), EvaluateOptions())
    assert not r.ok and r.record is None and "noisy.nii.gz" in str(r.error)
    assert "\n" not in str(r.error)


def test_review_notes_go_into_the_outputs(tmp_path: Path, demo_dir: Path) -> None:
    notes_mod = pytest.importorskip("segviewer.io.notes")
    root = tmp_path / "set"
    _build(root, demo_dir, with_b=False)
    notes = notes_mod.ReviewNotes.load(notes_mod.notes_path_for(root))
    notes.set("shifted", verdict="reject", comment="white matter shifted")
    notes.set("shifted", axis=2, slice=5, verdict="unsure", comment="edge")
    out = tmp_path / "out"
    opts = EvaluateOptions(distances=False, slice_distances=False)
    run_to_end(run_evaluation(root, out, opts, workers=0))
    rows = read_rows(out / "cases.csv")
    assert {r["verdict"] for r in rows if r["case"] == "shifted"} == {"reject"}
    assert {r["verdict"] for r in rows if r["case"] == "noisy"} == {None}
    srows = read_rows(out / "slices.csv")
    marked = {(r["slice"], r["verdict"]) for r in srows if r["case"] == "shifted" and r["verdict"]}
    assert marked == {(5, "unsure")}


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="unknown view"):
        EvaluateOptions(view="oblique")
    with pytest.raises(SegviewerError, match="no such file or folder"):
        run_to_end(run_evaluation(tmp_path / "missing.csv", tmp_path / "out"))
    (tmp_path / "file").write_text("x")
    images = tmp_path / "s" / "images"
    images.mkdir(parents=True)
    (images / "a.nii").write_text("x")
    (tmp_path / "s" / "predictions").mkdir()
    (tmp_path / "s" / "predictions" / "a.npy").write_text("x")
    with pytest.raises(SegviewerError, match="is a file"):
        run_to_end(run_evaluation(tmp_path / "s", tmp_path / "file"))
    assert math.isnan(float("nan"))


def test_joins_an_existing_scheduler_by_address(
    test_set: tuple[Path, dict], tmp_path: Path, demo_dir: Path
) -> None:
    from dask.distributed import LocalCluster

    root, _ = test_set
    opts = EvaluateOptions(distances=False, slice_distances=False)
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        reports: list[Progress] = []
        result = run_to_end(
            run_evaluation(root, tmp_path / "out", opts, scheduler=cluster.scheduler_address),
            reports.append,
        )
        assert result.workers == 2 and result.n_evaluated == 3 and not result.failed
        assert any("connecting to the Dask scheduler" in p.message for p in reports)
        # the cluster is someone else's: still running after the evaluation
        assert len(cluster.scheduler_info["workers"]) == 2


def test_open_evaluation_reads_one_case_at_a_time(
    evaluated: tuple[Path, Any, list[Progress]], tmp_path: Path
) -> None:
    out, _, _ = evaluated
    ev = open_evaluation(out)
    assert ev.summary["n_cases"] == 3
    assert len(ev.case_rows()) == 18
    rows = ev.slice_rows("shifted")
    all_rows = [r for r in read_rows(out / "slices.csv") if r["case"] == "shifted"]
    assert len(rows) == len(all_rows)
    for a, b in zip(rows, all_rows, strict=True):
        assert a["slice"] == b["slice"] and a["class"] == b["class"] and a["fp"] == b["fp"]
        assert a["dice"] == pytest.approx(b["dice"], rel=1e-6)
    pic = ev.picture("shifted")
    assert pic is not None and pic.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SegviewerError, match="no results for case 'nope'"):
        ev.slice_rows("nope")
    with pytest.raises(SegviewerError, match="not an evaluation folder"):
        open_evaluation(tmp_path)


def test_coronal_slices_run_along_the_coronal_axis(
    test_set: tuple[Path, dict], tmp_path: Path
) -> None:
    from segviewer.core.orientation import display_axes

    root, truth = test_set
    out = tmp_path / "out"
    opts = EvaluateOptions(view="coronal", distances=False, slice_distances=False)
    run_to_end(run_evaluation(root, out, opts, workers=0))
    affine = nib.load(root / "images" / "perfect.nii.gz").affine
    axis = display_axes(affine, "coronal").slice_axis
    assert axis == 1  # a RAS image: coronal slices run along axis 1
    srows = [
        r
        for r in read_rows(out / "slices.csv")
        if (r["case"], r["model"], r["class_index"]) == ("shifted", "a", 2)
    ]
    assert {r["axis"] for r in srows} == {axis}
    assert [r["slice"] for r in srows] == list(range(truth["ref"].shape[axis]))
    lab = truth["labels_a"]["shifted"]
    for r in srows[::7]:
        p = np.take(lab, r["slice"], axis=axis) == 2
        q = np.take(truth["ref"], r["slice"], axis=axis) == 2
        assert (r["tp"], r["fp"], r["fn"]) == (
            int((p & q).sum()),
            int((p & ~q).sum()),
            int((~p & q).sum()),
        )
