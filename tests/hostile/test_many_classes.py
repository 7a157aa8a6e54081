"""A label map with a stray huge label: compare and export stay small (issue 13, items 3-4)."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core import compare as compare_mod
from segviewer.core.classes import ClassTable
from segviewer.core.export_plan import default_classes


def test_sparse_confusion_equals_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 40, size=(9, 8, 7)).astype(np.uint16)
    ref = rng.integers(0, 40, size=(9, 8, 7)).astype(np.uint16)
    pred[0, 0, :3] = 254  # reserved / beyond the classes: no class
    ref[1, 1, :2] = 300
    dense = compare_mod.compare(pred, ref, 50, 2.0)
    monkeypatch.setattr(compare_mod, "DENSE_MAX_CLASSES", 10)
    sparse = compare_mod.compare(pred, ref, 50, 2.0)
    occurring = (set(np.unique(pred).tolist()) | set(np.unique(ref).tolist())) - {254, 300}
    assert sparse.confusion_classes == tuple(sorted(occurring))
    idx = list(sparse.confusion_classes)
    assert np.array_equal(sparse.confusion, dense.confusion[np.ix_(idx, idx)])
    assert sparse.per_class == dense.per_class
    assert (sparse.accuracy, sparse.n_voxels, sparse.n_ignored, sparse.n_pred_unlabelled) == (
        dense.accuracy,
        dense.n_voxels,
        dense.n_ignored,
        dense.n_pred_unlabelled,
    )


def test_compare_65534_classes_is_small() -> None:
    """One voxel of 65533: a dense confusion matrix would be 65535 x 65535 int64 (32 GiB)."""
    pred = np.zeros((12, 10, 6), np.uint16)
    pred[0, 0, 0] = 65533
    ref = np.zeros_like(pred)
    c = compare_mod.compare(pred, ref, 65534)
    assert c.confusion.shape == (2, 2) and c.confusion_classes == (0, 65533)
    assert c.per_class[65533].n_pred == 1 and c.per_class[65533].n_ref == 0
    d = c.as_dict()
    assert [k["index"] for k in d["classes"]] == [0, 65533]


def test_default_classes_skip_empty_unnamed_and_report_far_label() -> None:
    table = ClassTable.default(65534).with_name(1, "liver")
    counts = np.zeros(65534, np.int64)
    counts[0], counts[2], counts[65533] = 700, 5, 1
    chosen, notes = default_classes(table, counts)
    assert chosen == (1, 2, 65533)  # named, present, present
    assert any("65533 (1 voxels)" in n and "far beyond" in n for n in notes)
    assert any("65530 classes" in n for n in notes)
