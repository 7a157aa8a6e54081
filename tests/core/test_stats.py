"""Counts, volumes, Dice, confusion matrices and non-finite reports."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core import stats
from segviewer.core.stats import (
    class_counts,
    class_volumes_mm3,
    confusion_matrix,
    dice,
    dice_per_class,
    nonfinite_report,
)
from segviewer.core.types import SegviewerError


@pytest.fixture(scope="module")
def demo_labels(demo_dir: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    p = np.asarray(img.dataobj)
    lab = np.argmax(p, axis=-1).astype(np.uint8)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return lab, zooms  # type: ignore[return-value]


def test_class_counts_and_volumes_on_demo(
    demo_labels: tuple[np.ndarray, tuple[float, float, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, zooms = demo_labels
    ref = np.bincount(lab.ravel(), minlength=3)
    monkeypatch.setattr(stats, "_CHUNK", 5000)  # force many chunks
    counts = class_counts(lab, 3)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, ref)
    vol = class_volumes_mm3(counts, zooms)
    assert zooms == (2.0, 2.0, 2.0)
    np.testing.assert_allclose(vol, ref * 8.0)
    # ICBM152 at 2 mm: grey and white matter each several hundred millilitres
    assert 300_000 < vol[1] < 1_200_000 and 200_000 < vol[2] < 1_000_000


def test_class_counts_skip_reserved_and_negative_values() -> None:
    lab = np.array([[0, 1, 254, 255], [1, 2, 2, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(class_counts(lab, 3), [2, 2, 2])
    signed = np.array([-1, 0, 3, 1], dtype=np.int32)
    np.testing.assert_array_equal(class_counts(signed, 2), [1, 1])
    with pytest.raises(SegviewerError, match="integer label map"):
        class_counts(np.zeros(3, dtype=np.float32), 2)
    with pytest.raises(SegviewerError, match="spacing"):
        class_volumes_mm3([1, 2], (1.0, 0.0, 1.0))


def test_nonfinite_report_counts_and_indices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "_CHUNK", 7)
    x = np.zeros((6, 4, 3), dtype=np.float32)
    x[1, 2, 0] = np.nan
    x[4, 0, 2] = np.inf
    x[5, 3, 1] = -np.inf
    count, ex = nonfinite_report(x)
    assert count == 3 and ex == [(1, 2, 0), (4, 0, 2), (5, 3, 1)]
    assert nonfinite_report(x, max_examples=1) == (3, [(1, 2, 0)])
    assert nonfinite_report(np.arange(5)) == (0, [])


def test_dice_and_confusion_matrix(
    demo_labels: tuple[np.ndarray, tuple[float, float, float]],
) -> None:
    lab, _ = demo_labels
    a = np.zeros((10, 10), dtype=bool)
    b = np.zeros((10, 10), dtype=bool)
    a[:5] = True  # 50
    b[3:8] = True  # 50, overlap 20
    assert dice(a, b) == pytest.approx(2 * 20 / 100)
    assert dice(a, a) == 1.0
    assert dice(np.zeros(4, bool), np.zeros(4, bool)) == 1.0
    with pytest.raises(SegviewerError, match="shapes"):
        dice(a, b[:5])

    # a shifted copy of the real label map: the matrix matches a naive count
    shifted = np.roll(lab, 2, axis=0)
    cm = confusion_matrix(lab, shifted, 3)
    naive = np.zeros((3, 3), dtype=np.int64)
    for i in range(3):
        for j in range(3):
            naive[i, j] = np.count_nonzero((lab == i) & (shifted == j))
    np.testing.assert_array_equal(cm, naive)
    assert cm.sum() == lab.size
    d = dice_per_class(lab, shifted, 3)
    for k in range(3):
        assert d[k] == pytest.approx(dice(lab == k, shifted == k))
    assert 0.5 < d[1] < 1.0
    # reserved labels are left out; an absent class scores 1
    x = np.array([0, 1, 255], dtype=np.uint8)
    y = np.array([0, 1, 1], dtype=np.uint8)
    np.testing.assert_array_equal(confusion_matrix(x, y, 3), [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(dice_per_class(x, y, 3), [1.0, 1.0, 1.0])
