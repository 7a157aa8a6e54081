"""Test-set review logic: filters, sorting, case pivot, worst slice, per-slice metrics and
doubt, two-prediction disagreement."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from segviewer.core import metrics, review
from segviewer.core.compare import compare
from segviewer.core.layout import Layout, parse_layout
from segviewer.core.progress import run_to_end
from segviewer.core.review import (
    DIS_AGREE,
    DIS_DIFFER,
    DIS_NEITHER,
    DIS_ONLY_A,
    DIS_ONLY_B,
    disagreement_map,
    filter_rows,
    parse_filter,
    pivot_cases,
    slice_rows,
    sort_rows,
    worst_slice,
)
from segviewer.core.types import Prediction, PredictionKind, SegviewerError

NAN = math.nan


# ----------------------------------------------------------------------------- filters

ROWS: list[dict[str, Any]] = [
    {"case": "a", "dice": 0.91, "fn": 3, "fp": 1, "verdict": "accept"},
    {"case": "b", "dice": 0.42, "fn": 250, "fp": 0, "verdict": ""},
    {"case": "c", "dice": NAN, "fn": 0, "fp": 0, "verdict": "reject"},
    {"case": "d", "dice": 0.79, "fn": 40, "fp": 80, "verdict": None},
    {"case": "e", "dice": "0.5", "fn": "7", "fp": "2", "verdict": "Unsure"},  # from a CSV
]


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r["case"]) for r in rows]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dice < 0.8", ["b", "d", "e"]),
        ("Dice below 0.8", ["b", "d", "e"]),
        ("DICE >= 0.79", ["a", "d"]),
        ("dice < 0.8 and fn > 10", ["b", "d"]),
        ("dice > 0.9 or fn = 0", ["a", "c"]),
        ("not (dice < 0.8)", ["a", "c"]),  # NaN fails every comparison, so 'not' keeps it
        ("fp + fn > 100", ["b", "d"]),
        ("fn - fp > 0", ["a", "b", "e"]),
        ("verdict = accept", ["a"]),
        ("verdict = UNSURE", ["e"]),
        ("verdict is not accept", ["b", "c", "d", "e"]),
        ("verdict = none", ["b", "d"]),
        ("verdict = 'reject' or (dice above 0.9)", ["a", "c"]),
        ("case = b", ["b"]),
        ("", ["a", "b", "c", "d", "e"]),
        ("dice < 1e-1", []),
    ],
)
def test_filter_expressions(text: str, expected: list[str]) -> None:
    flt = parse_filter(text, review.columns_of(ROWS))
    assert _ids([r for r in ROWS if flt(r)]) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dcie < 0.8", "no column 'dcie' to filter on; the columns are: case, dice, fn, fp"),
        ("dice << 0.8", "expected a number or a word after '<'"),
        ("dice 0.8", "expected a comparison"),
        ("dice <", "ends too early"),
        ("(dice < 0.8", "')' is missing"),
        ("dice < 0.8 fn > 3", "join conditions with 'and' / 'or'"),
        ("__import__('os') < 1", "no column '__import__'"),
        ("dice < 0.8; import os", "cannot read the filter"),
    ],
)
def test_bad_filters_are_one_line_messages(text: str, message: str) -> None:
    with pytest.raises(SegviewerError, match=None) as exc:
        parse_filter(text, review.columns_of(ROWS))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_filter_rows_parses_against_the_rows_columns() -> None:
    assert _ids(filter_rows(ROWS, "fn >= 40")) == ["b", "d"]
    with pytest.raises(SegviewerError, match="no column 'hd95'"):
        filter_rows(ROWS, "hd95 > 5")


def test_presets_parse_on_slice_rows(demo_labels: tuple) -> None:
    _, pred, ref = demo_labels
    pred = pred.copy()
    pred[:, :, 30][pred[:, :, 30] == 2] = 0  # slice 30: white matter missed entirely
    case = metrics.case_metrics(pred, ref, 3, (2.0, 2.0, 2.0), 2, slice_distances=False)
    rows = slice_rows(case, 2)
    cols = review.columns_of(rows)
    got = {
        name: [r["slice"] for r in rows if parse_filter(text, cols)(r)]
        for name, text in review.PRESET_FILTERS.items()
    }
    has_p = (pred == 2).any(axis=(0, 1))
    has_r = (ref == 2).any(axis=(0, 1))
    missed = [int(i) for i in np.flatnonzero(has_r & ~has_p)]
    assert 30 in missed
    assert got["In the reference, missing in the prediction"] == missed
    assert got["In the prediction, not in the reference"] == [
        int(i) for i in np.flatnonzero(has_p & ~has_r)
    ]
    low = got["Dice below 0.8"]
    assert 30 in low and all(rows[s]["dice"] < 0.8 for s in low)
    # slices without white matter in either map (Dice 1 by convention) never pass it
    assert all(not rows[s]["absent_in_both"] for s in low)
    assert set(got["Any error"]) >= set(low)


# ----------------------------------------------------------------------------- sorting


def test_sort_numbers_text_and_missing_last_both_ways() -> None:
    up = sort_rows(ROWS, "dice")
    down = sort_rows(ROWS, "dice", descending=True)
    assert _ids(up) == ["b", "e", "d", "a", "c"]
    assert _ids(down) == ["a", "d", "e", "b", "c"]
    # text columns: case-insensitive, missing ('' and None) last
    assert _ids(sort_rows(ROWS, "verdict")) == ["a", "c", "e", "b", "d"]
    assert _ids(sort_rows(ROWS, "verdict", descending=True)) == ["e", "c", "a", "b", "d"]


# ----------------------------------------------------------------------------- case table


def test_pivot_two_models_gives_difference_columns() -> None:
    records = [
        {
            "case": "s1",
            "class": "tumour",
            "model": "a",
            "dice": 0.9,
            "hd95_mm": 2.0,
            "volume_ref_ml": 7,
        },
        {
            "case": "s1",
            "class": "tumour",
            "model": "b",
            "dice": 0.7,
            "hd95_mm": 5.0,
            "volume_ref_ml": 7,
        },
        {"case": "s1", "class": "oedema", "model": "a", "dice": 0.5, "hd95_mm": 9.0},
        {"case": "s2", "class": "tumour", "model": "a", "dice": 0.6, "hd95_mm": NAN},
        {"case": "s2", "class": "tumour", "model": "b", "dice": 0.8, "hd95_mm": 4.0},
    ]
    rows = pivot_cases(records, "Tumour")
    assert [r["case"] for r in rows] == ["s1", "s2"]
    s1, s2 = rows
    # each compared metric is followed by B's value and the difference; the reference's
    # volume describes the case, so it is A's only
    assert list(s1) == [
        "case",
        "dice",
        "dice_b",
        "dice_diff",
        "hd95_mm",
        "hd95_mm_b",
        "hd95_mm_diff",
        "volume_ref_ml",
    ]
    assert s1["dice"] == 0.9 and s1["dice_b"] == 0.7
    assert s1["dice_diff"] == pytest.approx(-0.2)
    assert s2["dice_diff"] == pytest.approx(0.2)
    assert s2["hd95_mm_diff"] is None  # A's distance is missing
    # "where did the new model get worse" is one sort away
    assert _ids_case(sort_rows(rows, "dice_diff")) == ["s1", "s2"]
    no_b = [dict(r, mean_entropy=0.2 if r["model"] == "a" else None) for r in records]
    assert "mean_entropy_b" not in pivot_cases(no_b, "tumour")[0]
    assert pivot_cases(no_b, "tumour")[0]["mean_entropy"] == 0.2
    one = pivot_cases(records, "oedema")
    assert one == [{"case": "s1", "dice": 0.5, "hd95_mm": 9.0}]


def _ids_case(rows: list[dict[str, object]]) -> list[str]:
    return [str(r["case"]) for r in rows]


def test_worst_slice_on_records_follows_core_metrics(demo_labels: tuple) -> None:
    _, pred, ref = demo_labels
    case = metrics.case_metrics(pred, ref, 3, (2.0, 2.0, 2.0), 2, slice_distances=False)
    names = ["background", "grey", "white"]
    # slices.csv-like records, as text (the way a CSV reads back)
    recs = [
        {"case": "x", **{k: str(v) for k, v in r.items()}}
        for k in (1, 2)
        for r in slice_rows(case, k, class_names=names)
    ]
    assert worst_slice(recs, case="x", class_name="grey") == case.worst_slice[1]
    assert worst_slice(recs, case="x", class_name="WHITE") == case.worst_slice[2]
    assert worst_slice(recs, case="y") is None
    # hand-made: most wrong voxels win, then the lower Dice; error-free slices skipped
    hand = [
        {"case": "q", "slice": 0, "dice": 0.0, "fp": 0, "fn": 3, "absent_in_both": False},
        {"case": "q", "slice": 1, "dice": 0.0, "fp": 40, "fn": 160, "absent_in_both": False},
        {"case": "q", "slice": 2, "dice": 1.0, "fp": 0, "fn": 0, "absent_in_both": True},
        {"case": "q", "slice": 3, "dice": 0.6, "fp": 100, "fn": 200, "absent_in_both": False},
        {"case": "q", "slice": 4, "dice": 0.4, "fp": 150, "fn": 150, "absent_in_both": False},
    ]
    assert worst_slice(hand, case="q") == 4  # 300 wrong voxels, and the lower Dice of the two
    assert worst_slice(hand[:3], case="q") == 1
    doubt = [
        {"case": "q", "slice": 0, "mean_entropy": 0.1, "n_pred": 10},
        {"case": "q", "slice": 1, "mean_entropy": 0.4, "n_pred": 10},
        {"case": "q", "slice": 2, "mean_entropy": 0.9, "n_pred": 0},
    ]
    assert worst_slice(doubt, case="q") == 1


@pytest.fixture(scope="module")
def demo_labels(demo_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Demo tissue probabilities; reference = their argmax, prediction = reference shifted
    by two voxels along axis 2 with some voxels UNCERTAIN."""
    p = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj)  # type: ignore[attr-defined]
    ref = np.argmax(p, axis=-1).astype(np.uint8)
    pred = np.roll(ref, 2, axis=2)
    pred[30:35, 40:60, 40:50] = 254
    return p, pred, ref


def test_slice_rows_from_case_metrics(demo_labels: tuple) -> None:
    _, pred, ref = demo_labels
    case = metrics.case_metrics(pred, ref, 3, (2.0, 2.0, 2.0), 2, slice_distances=False)
    rows = slice_rows(case, 1, class_names=["bg", "grey", "white"])
    assert len(rows) == pred.shape[2]
    assert rows[40]["class"] == "grey"
    c = compare(pred[:, :, 40], ref[:, :, 40], 3).per_class[1]
    assert (rows[40]["n_pred"], rows[40]["n_ref"], rows[40]["fp"], rows[40]["fn"]) == (
        c.n_pred,
        c.n_ref,
        c.fp,
        c.fn,
    )
    assert rows[40]["dice"] == pytest.approx(c.dice)
    assert "mean_entropy" not in rows[40]  # no class scores given
    both = slice_rows(case, None)
    assert len(both) == pred.shape[2] and both[40]["class"] == "all"
    fg_p, fg_r = (pred[:, :, 40] >= 1) & (pred[:, :, 40] <= 2), (ref[:, :, 40] >= 1)
    assert both[40]["n_pred"] == int(fg_p.sum()) and both[40]["n_ref"] == int(fg_r.sum())
    assert "dice" not in both[40]
    with pytest.raises(SegviewerError, match="class 3 does not exist"):
        slice_rows(case, 3)


def test_doubt_rows_without_reference_rank_uniform_slices_first(demo_labels: tuple) -> None:
    probs, _, _ = demo_labels
    p = probs.astype(np.float32).copy()
    p[:, :, 60:62, :] = [0.34, 0.33, 0.33]  # the model cannot decide on two slices
    pred = Prediction(p, PredictionKind.PROBABILITIES, _channels_last(p.shape), n_classes=3)
    labels = np.argmax(p, axis=-1).astype(np.uint8)
    unc = metrics.uncertainty(pred, labels, 2)
    case = metrics.case_metrics(labels, None, 3, (2.0, 2.0, 2.0), 2, uncertainty=unc)
    rows = slice_rows(case, None, uncertainty=unc)
    assert "dice" not in rows[0] and "mean_entropy" in rows[0]
    top = review.rank_by_doubt(rows)[:2]
    assert sorted(r["slice"] for r in top) == [60, 61]
    assert top[0]["mean_entropy"] == pytest.approx(1.0, abs=1e-3)
    assert top[0]["low_confidence_share"] == 1.0
    assert top[0]["low_confidence_voxels"] == p.shape[0] * p.shape[1]
    # independent: plain numpy entropy of the whole slice
    q = p / p.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -(np.where(q > 0, q * np.log(q), 0.0)).sum(axis=-1) / np.log(3)
    assert rows[45]["mean_entropy"] == pytest.approx(float(ent[:, :, 45].mean()), rel=1e-4)
    # one class: that class's doubt, and its low-confidence area in voxels
    grey = slice_rows(case, 1)
    share = grey[45]["low_confidence_share"]
    assert grey[45]["low_confidence_voxels"] == round(share * grey[45]["n_pred"])


def _channels_last(shape: tuple[int, ...]) -> Layout:
    return parse_layout("xyzc", shape, shape[:3])


# ----------------------------------------------------------------------------- two predictions


def test_disagreement_codes_by_hand() -> None:
    ref = np.array([[0, 1, 1, 2, 2, 255]], np.uint8)
    a = np.array([[0, 1, 0, 2, 1, 1]], np.uint8)
    b = np.array([[0, 1, 1, 0, 0, 2]], np.uint8)
    codes = disagreement_map(a, b, ref, n_classes=3)
    assert codes.tolist() == [
        [DIS_AGREE, DIS_AGREE, DIS_ONLY_B, DIS_ONLY_A, DIS_NEITHER, DIS_DIFFER]
    ]
    # without a reference every difference is DIS_DIFFER
    assert disagreement_map(a, b).tolist() == [[0, 0, 4, 4, 4, 4]]
    # per class: only membership of class 1 matters
    c1 = disagreement_map(a, b, ref, 1, n_classes=3)
    # voxel 2: a has no 1, b has 1, ref 1 -> only B; voxel 4: a has 1, b not, ref 2 -> only B
    # voxel 3: neither has 1 -> agree; voxel 5: a has 1, b not, ref unscored -> differ
    assert c1.tolist() == [[0, 0, DIS_ONLY_B, 0, DIS_ONLY_B, DIS_DIFFER]]


def test_disagreement_on_real_volume_counts(demo_labels: tuple) -> None:
    _, pred_a, ref = demo_labels
    pred_b = np.roll(ref, -1, axis=0)
    codes = disagreement_map(pred_a, pred_b, ref, n_classes=3)
    differ = pred_a != pred_b
    assert np.array_equal(codes != DIS_AGREE, differ)
    assert np.array_equal(codes == DIS_ONLY_A, differ & (pred_a == ref))
    assert np.array_equal(codes == DIS_ONLY_B, differ & (pred_b == ref))
    counts = review.disagreement_counts(codes)
    assert counts["agree"] == int((~differ).sum())
    assert counts["only_a"] + counts["only_b"] + counts["neither"] == int(differ.sum())
    assert counts["differ"] == 0


def test_disagreement_refuses_mismatched_grids() -> None:
    a = np.zeros((2, 3), np.uint8)
    with pytest.raises(SegviewerError, match="same image grid"):
        disagreement_map(a, np.zeros((3, 2), np.uint8))
    with pytest.raises(SegviewerError, match="integer label map"):
        disagreement_map(a, a.astype(np.float32))


def test_compare_pair_rows(demo_labels: tuple) -> None:
    _, pred_a, ref = demo_labels
    pred_b = ref.copy()
    pred_b[:, :, :10] = 0
    pair = run_to_end(review.compare_pair(pred_a, pred_b, ref, 3))
    rows = pair.rows()
    ca = compare(pred_a, ref, 3).per_class[1]
    cb = compare(pred_b, ref, 3).per_class[1]
    cab = compare(pred_a, pred_b, 3).per_class[1]
    assert rows[1]["dice"] == pytest.approx(ca.dice)
    assert rows[1]["dice_b"] == pytest.approx(cb.dice)
    assert rows[1]["dice_diff"] == pytest.approx(cb.dice - ca.dice)
    assert rows[1]["dice_a_b"] == pytest.approx(cab.dice)
    no_ref = run_to_end(review.compare_pair(pred_a, pred_b, None, 3)).rows()
    assert "dice" not in no_ref[1] and no_ref[1]["dice_a_b"] == pytest.approx(cab.dice)


def test_disagreement_lut_composes_the_codes() -> None:
    from segviewer.core.overlay import compose

    codes = np.array([[DIS_AGREE, DIS_ONLY_A, DIS_ONLY_B, DIS_NEITHER, DIS_DIFFER]], np.uint8)
    grey = np.full(codes.shape, 100, np.uint8)
    rgba = compose(grey, codes, review.disagreement_lut(1.0))
    assert rgba[0, 0].tolist() == [100, 100, 100, 255]
    for i, code in enumerate((DIS_ONLY_A, DIS_ONLY_B, DIS_NEITHER, DIS_DIFFER), start=1):
        assert tuple(rgba[0, i, :3]) == review.DISAGREEMENT_COLORS[code]
    with pytest.raises(SegviewerError, match="opacity"):
        review.disagreement_lut(2.0)
