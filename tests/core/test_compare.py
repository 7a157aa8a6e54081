"""Prediction against reference: per-class agreement, confusion, error maps."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core import compare as cmp
from segviewer.core.compare import (
    ERROR_DISAGREE,
    ERROR_FN,
    ERROR_FP,
    ERROR_NONE,
    ERROR_TP,
    compare,
    error_map,
    iter_compare,
)
from segviewer.core.types import Progress, SegviewerError


@pytest.fixture(scope="module")
def demo_pair(demo_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reference = argmax of the demo probabilities; prediction = the same shifted by one voxel
    along axis 1, with a block of UNCERTAIN and a block of INVALID labels."""
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    p = np.asarray(img.dataobj)  # type: ignore[attr-defined]
    ref = np.argmax(p, axis=-1).astype(np.uint8)
    pred = np.roll(ref, 1, axis=1)
    pred[40:42, 50:60, 40:50] = 254
    pred[60, 60:70, 30:40] = 255
    return pred, ref


def _independent(pred: np.ndarray, ref: np.ndarray, k: int) -> tuple[int, int, int, int, int]:
    a = pred == k
    b = ref == k
    return (
        int(a.sum()),
        int(b.sum()),
        int((a & b).sum()),
        int((a & ~b).sum()),
        int((~a & b).sum()),
    )


def test_demo_shifted_matches_independent_count(
    demo_pair: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    pred, ref = demo_pair
    monkeypatch.setattr(cmp, "_CHUNK", 98 * 116 * 3)  # a few slices per chunk: many chunks
    gen = iter_compare(pred, ref, 3, 8.0)
    reports: list[Progress] = []
    while True:
        try:
            reports.append(next(gen))
        except StopIteration as stop:
            res = stop.value
            break
    assert len(reports) == math.ceil(98 / 3)
    assert reports[-1].done == reports[-1].total
    assert res.n_voxels == ref.size and res.n_ignored == 0
    assert res.n_pred_unlabelled == 2 * 10 * 10 + 10 * 10
    for k in range(3):
        n_pred, n_ref, tp, fp, fn = _independent(pred, ref, k)
        c = res.per_class[k]
        assert (c.n_pred, c.n_ref, c.tp, c.fp, c.fn) == (n_pred, n_ref, tp, fp, fn)
        assert c.dice == pytest.approx(2 * tp / (n_pred + n_ref))
        assert c.jaccard == pytest.approx(tp / (tp + fp + fn))
        assert c.sensitivity == pytest.approx(tp / n_ref)
        assert c.precision == pytest.approx(tp / n_pred)
        assert c.volume_pred_mm3 == n_pred * 8.0 and c.volume_ref_mm3 == n_ref * 8.0
        assert c.volume_diff_percent == pytest.approx(100 * (n_pred - n_ref) / n_ref)
        assert not c.absent_in_both
    # a one-voxel shift of a 2 mm tissue map: good but far from perfect overlap
    assert 0.5 < res.per_class[1].dice < 0.95 and 0.5 < res.per_class[2].dice < 0.95
    assert res.accuracy == pytest.approx(float((pred == ref).mean()))
    expected_cm = np.zeros((3, 3), dtype=np.int64)
    valid = pred < 3
    np.add.at(expected_cm, (pred[valid].astype(int), ref[valid].astype(int)), 1)
    np.testing.assert_array_equal(res.confusion, expected_cm)
    assert res.confusion.dtype == np.int64
    assert res.mean_dice() == pytest.approx((res.per_class[1].dice + res.per_class[2].dice) / 2)


def test_identical_maps_are_perfect(demo_pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, ref = demo_pair
    res = compare(ref, ref.copy(), 4)
    assert res.accuracy == 1.0
    for c in res.per_class[:3]:
        assert c.dice == c.jaccard == c.sensitivity == c.precision == 1.0
        assert c.fp == c.fn == 0 and c.volume_diff_percent == 0.0
    assert res.per_class[3].absent_in_both and res.per_class[3].dice == 1.0


def test_hand_made_counts() -> None:
    # class 1: pred at 4 voxels, ref at 3, overlap 2 -> tp 2, fp 2, fn 1
    pred = np.array([[1, 1, 1, 1, 0, 0]], dtype=np.uint8)
    ref = np.array([[1, 1, 0, 0, 1, 0]], dtype=np.uint8)
    res = compare(pred, ref, 3, voxel_volume_mm3=2.0)
    c1 = res.per_class[1]
    assert (c1.tp, c1.fp, c1.fn, c1.n_pred, c1.n_ref) == (2, 2, 1, 4, 3)
    assert c1.dice == pytest.approx(4 / 7)
    assert c1.jaccard == pytest.approx(2 / 5)
    assert c1.sensitivity == pytest.approx(2 / 3) and c1.precision == pytest.approx(0.5)
    assert c1.volume_pred_mm3 == 8.0 and c1.volume_ref_mm3 == 6.0
    assert c1.volume_diff_percent == pytest.approx(100 / 3)
    c0 = res.per_class[0]
    assert (c0.tp, c0.fp, c0.fn) == (1, 1, 2)
    assert res.per_class[2].absent_in_both
    assert res.accuracy == pytest.approx(3 / 6)
    np.testing.assert_array_equal(res.confusion, [[1, 1, 0], [2, 2, 0], [0, 0, 0]])


def test_empty_sides_give_nan_not_warnings() -> None:
    pred = np.array([2, 2, 0, 0], dtype=np.uint8)
    ref = np.array([1, 1, 0, 0], dtype=np.uint8)
    res = compare(pred, ref, 3)
    c1, c2 = res.per_class[1], res.per_class[2]
    # class 1 only in the reference: missed entirely
    assert c1.dice == 0.0 and c1.sensitivity == 0.0 and math.isnan(c1.precision)
    # class 2 only in the prediction: reference volume 0, nothing to find
    assert c2.dice == 0.0 and c2.precision == 0.0 and math.isnan(c2.sensitivity)
    assert math.isnan(c2.volume_diff_percent)
    assert not c1.absent_in_both and not c2.absent_in_both


def test_reserved_prediction_is_wrong_for_every_class_and_reserved_reference_ignored() -> None:
    pred = np.array([255, 254, 1, 1, 0], dtype=np.uint8)
    ref = np.array([1, 0, 1, 254, 7], dtype=np.uint8)
    res = compare(pred, ref, 2)
    assert res.n_ignored == 2  # 254 (reserved) and 7 (beyond the class table)
    assert res.n_voxels == 3 and res.n_pred_unlabelled == 2
    c0, c1 = res.per_class
    assert (c1.tp, c1.fp, c1.fn) == (1, 0, 1)
    assert (c0.tp, c0.fp, c0.fn) == (0, 0, 1)
    assert res.accuracy == pytest.approx(1 / 3)
    assert int(res.confusion.sum()) == 1


def test_signed_and_uint16_inputs() -> None:
    pred = np.array([-1, 0, 1, 300], dtype=np.int32)  # -1: no class, wrong for every class
    ref = np.array([0, -5, 1, 300], dtype=np.int64)  # -5: not scored
    res = compare(pred, ref, 301)
    assert res.n_ignored == 1 and res.n_voxels == 3 and res.n_pred_unlabelled == 1
    assert res.per_class[300].tp == 1 and res.per_class[0].fn == 1
    res16 = compare(pred[2:].astype(np.uint16), ref[2:].astype(np.uint16), 301)
    assert res16.accuracy == 1.0 and res16.per_class[300].dice == 1.0
    np.testing.assert_array_equal(error_map(pred, ref), [2, 0, 0, 0])


def test_bad_inputs_raise_clear_errors() -> None:
    a = np.zeros((4, 5), dtype=np.uint8)
    with pytest.raises(SegviewerError, match=r"\(4, 5\).*\(5, 4\)"):
        compare(a, np.zeros((5, 4), dtype=np.uint8), 2)
    with pytest.raises(SegviewerError, match="integer label map"):
        compare(a, np.zeros((4, 5), dtype=np.float32), 2)
    with pytest.raises(SegviewerError, match="voxel volume"):
        compare(a, a, 2, 0.0)
    with pytest.raises(SegviewerError, match="class 5"):
        error_map(a, a, 5, n_classes=3)


def test_error_map_codes_on_hand_made_slice() -> None:
    pred = np.array([[0, 1, 1, 255], [2, 2, 0, 1]], dtype=np.uint8)
    ref = np.array([[0, 1, 2, 1], [2, 254, 1, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(error_map(pred, ref), [[0, 0, 2, 2], [0, 0, 2, 0]])
    e1 = error_map(pred, ref, 1, n_classes=3)
    assert e1.dtype == np.uint8
    np.testing.assert_array_equal(
        e1,
        [[ERROR_NONE, ERROR_TP, ERROR_FP, ERROR_FN], [ERROR_NONE, ERROR_NONE, ERROR_FN, ERROR_TP]],
    )
    # a reference label beyond the class table is unscored only when n_classes says so
    ref2 = np.array([[5, 5]], dtype=np.uint8)
    pred2 = np.array([[1, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(error_map(pred2, ref2), [[2, 2]])
    np.testing.assert_array_equal(error_map(pred2, ref2, n_classes=3), [[0, 0]])


def test_error_map_volume_matches_numpy(
    demo_pair: tuple[np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    pred, ref = demo_pair
    monkeypatch.setattr(cmp, "_CHUNK", 50_000)
    whole = error_map(pred, ref, n_classes=3)
    np.testing.assert_array_equal(whole, np.where(pred != ref, ERROR_DISAGREE, 0))
    out = np.full(pred.shape, 9, dtype=np.uint8)
    e2 = error_map(pred, ref, 2, n_classes=3, out=out)
    assert e2 is out
    a, b = pred == 2, ref == 2
    expected = np.select([a & b, a & ~b, ~a & b], [ERROR_TP, ERROR_FP, ERROR_FN], ERROR_NONE)
    np.testing.assert_array_equal(e2, expected)
    res = compare(pred, ref, 3)
    assert int((e2 == ERROR_TP).sum()) == res.per_class[2].tp
    assert int((e2 == ERROR_FP).sum()) == res.per_class[2].fp
    assert int((e2 == ERROR_FN).sum()) == res.per_class[2].fn


def test_joint_counts_has_a_no_class_row_and_column() -> None:
    from segviewer.core.stats import confusion_matrix, joint_counts

    a = np.array([0, 1, 254, 255, 1, 2], dtype=np.uint8)
    b = np.array([0, 1, 1, 255, 7, 2], dtype=np.uint8)
    jc = joint_counts(a, b, 3)
    expected = np.zeros((4, 4), dtype=np.int64)
    for x, y in zip(a, b, strict=True):
        expected[min(int(x), 3), min(int(y), 3)] += 1
    np.testing.assert_array_equal(jc, expected)
    np.testing.assert_array_equal(confusion_matrix(a, b, 3), expected[:3, :3])
    signed = joint_counts(np.array([-2, 0, 5], np.int16), np.array([1, -1, 0], np.int64), 2)
    # pairs (-2, 1), (0, -1), (5, 0): no-class row 2 / column 2
    np.testing.assert_array_equal(signed, [[0, 0, 1], [0, 0, 0], [1, 1, 0]])
