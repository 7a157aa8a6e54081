"""Where is the model wrong: a predicted label map against a reference segmentation.

Both label maps are integer arrays of the same shape in image-axis order (``(a0, a1, a2)``
for a volume, ``(rows, cols)`` for a slice). Counting rules, written down once:

* **Reference voxels that cannot be scored are left out.** A reference value outside
  ``0 .. n_classes - 1`` (negative, beyond the class table, or one of the reference dtype's
  reserved UNCERTAIN / INVALID values, :func:`~segviewer.core.types.reserved_labels`) is
  counted in :attr:`Comparison.n_ignored` and nowhere else.
* **A prediction voxel without a class counts as wrong for every class.** A predicted value
  outside ``0 .. n_classes - 1`` (the reserved UNCERTAIN / INVALID labels a mask carries
  where the model was unsure or its logits were NaN) is never a true or false positive of
  any class: it is a false negative of the reference's class and lowers the accuracy. It is
  counted in :attr:`Comparison.n_pred_unlabelled`, and the confusion matrix, which only has
  rows for classes, leaves it out.

Everything is counted chunk by chunk along axis 0 (through ``core.stats``), so a volume of a
gigabyte never makes volume-sized temporaries.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from segviewer.core import stats
from segviewer.core.progress import run_to_end
from segviewer.core.types import Progress, SegviewerError

__all__ = [
    "ERROR_NONE",
    "ERROR_TP",
    "ERROR_FP",
    "ERROR_FN",
    "ERROR_AGREE",
    "ERROR_DISAGREE",
    "ClassAgreement",
    "Comparison",
    "iter_compare",
    "compare",
    "comparison_from_counts",
    "error_map",
    "iter_slice_error_counts",
    "rank_error_slices",
    "scored_mask",
]

#: :func:`error_map` values with a class: neither map has the class (or the reference voxel
#: is not scored) ...
ERROR_NONE = 0
#: ... both have it ...
ERROR_TP = 1
#: ... the prediction has it, the reference has another class ...
ERROR_FP = 2
#: ... the reference has it, the prediction has another class or none.
ERROR_FN = 3
#: :func:`error_map` values without a class: the labels agree (or the voxel is not scored) ...
ERROR_AGREE = 0
#: ... the labels differ. Same value as :data:`ERROR_FP`, so one colour table serves both.
ERROR_DISAGREE = 2

# Voxels per chunk (a few MB of bool / int64 temporaries at most).
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ClassAgreement:
    """Agreement of one class between prediction and reference.

    Counts are voxels over the scored region (reference voxels with a valid class). Ratios
    whose denominator is zero follow one rule: a class absent from both maps scores 1.0 on
    every ratio (``absent_in_both`` is True: nothing to find and nothing found); otherwise a
    ratio with nothing to divide by is NaN (``sensitivity`` when the reference lacks the
    class, ``precision`` when the prediction lacks it, ``volume_diff_percent`` when the
    reference volume is 0). JSON writes NaN as null.

    Attributes
    ----------
    index
        Class index.
    n_pred, n_ref
        Voxels of the class in the prediction / the reference.
    tp, fp, fn
        True positives (both), false positives (prediction only), false negatives (reference
        only; includes reference voxels where the prediction has no class).
    dice
        ``2 tp / (n_pred + n_ref)``.
    jaccard
        ``tp / (tp + fp + fn)`` (intersection over union).
    sensitivity
        ``tp / n_ref`` (recall, true-positive rate).
    precision
        ``tp / n_pred`` (positive predictive value).
    volume_pred_mm3, volume_ref_mm3
        ``n_pred`` / ``n_ref`` times the voxel volume, mm³.
    volume_diff_percent
        ``100 (volume_pred - volume_ref) / volume_ref``: positive when the model
        over-segments.
    absent_in_both
        True when neither map has a voxel of the class.
    """

    index: int
    n_pred: int
    n_ref: int
    tp: int
    fp: int
    fn: int
    dice: float
    jaccard: float
    sensitivity: float
    precision: float
    volume_pred_mm3: float
    volume_ref_mm3: float
    volume_diff_percent: float
    absent_in_both: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN stays NaN; ``io.common.jsonable`` turns it into null)."""
        return {
            "index": self.index,
            "n_pred": self.n_pred,
            "n_ref": self.n_ref,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "dice": self.dice,
            "jaccard": self.jaccard,
            "sensitivity": self.sensitivity,
            "precision": self.precision,
            "volume_pred_mm3": self.volume_pred_mm3,
            "volume_ref_mm3": self.volume_ref_mm3,
            "volume_diff_percent": self.volume_diff_percent,
            "absent_in_both": self.absent_in_both,
        }


@dataclass(frozen=True, eq=False)
class Comparison:
    """A prediction compared with a reference, voxel by voxel.

    Attributes
    ----------
    per_class
        One :class:`ClassAgreement` per class, index 0 (background) first.
    accuracy
        Fraction of scored voxels whose predicted class equals the reference class (NaN when
        no voxel is scored).
    n_voxels
        Scored voxels: reference voxels with a class in ``0 .. n_classes - 1``.
    confusion
        ``(n_classes, n_classes)`` int64, rows = predicted class, columns = reference class,
        over scored voxels whose prediction has a class.
    n_ignored
        Reference voxels left out (reserved / invalid / beyond the class table).
    n_pred_unlabelled
        Scored voxels whose prediction has no class (UNCERTAIN / INVALID / out of range):
        false negatives of the reference class.
    voxel_volume_mm3
        Volume of one voxel, mm³.
    """

    per_class: tuple[ClassAgreement, ...]
    accuracy: float
    n_voxels: int
    confusion: np.ndarray
    n_ignored: int
    n_pred_unlabelled: int
    voxel_volume_mm3: float
    #: The classes the rows / columns of ``confusion`` stand for when it is not the full
    #: ``(n_classes, n_classes)`` matrix: beyond :data:`DENSE_MAX_CLASSES` classes only those
    #: that occur in either map get a row and a column (65,534 classes would need 32 GiB).
    confusion_classes: tuple[int, ...] | None = None

    @property
    def n_classes(self) -> int:
        return len(self.per_class)

    def mean_dice(self, *, include_background: bool = False) -> float:
        """Mean Dice over the classes present in either map (background left out by default).

        NaN when no such class exists.
        """
        vals = [
            c.dice
            for c in self.per_class
            if not c.absent_in_both and (include_background or c.index != 0)
        ]
        return float(np.mean(vals)) if vals else math.nan

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the export manifest's ``comparison`` object, without source)."""
        return {
            "accuracy": self.accuracy,
            "n_voxels": self.n_voxels,
            "n_ignored": self.n_ignored,
            "n_pred_unlabelled": self.n_pred_unlabelled,
            "voxel_volume_mm3": self.voxel_volume_mm3,
            "mean_dice_foreground": self.mean_dice(),
            "confusion": self.confusion.tolist(),
            **(
                {"confusion_classes": list(self.confusion_classes)}
                if self.confusion_classes is not None
                else {}
            ),
            "classes": [
                c.as_dict()
                for c in self.per_class
                if self.confusion_classes is None or not c.absent_in_both
            ],
        }


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> None:
    for what, a in (("prediction", pred), ("reference", ref)):
        if a.dtype.kind not in "ui":
            raise SegviewerError(
                f"the {what} must be an integer label map to compare, got dtype {a.dtype}; "
                "compute its labels first"
            )
    if pred.shape != ref.shape:
        raise SegviewerError(
            f"cannot compare a prediction of shape {pred.shape} with a reference of shape "
            f"{ref.shape}; both must be on the same image grid"
        )


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _agreement(
    index: int, tp: int, n_pred: int, n_ref: int, voxel_volume_mm3: float
) -> ClassAgreement:
    fp = n_pred - tp
    fn = n_ref - tp
    absent = n_pred == 0 and n_ref == 0
    vp = n_pred * voxel_volume_mm3
    vr = n_ref * voxel_volume_mm3
    if absent:
        d = j = sens = prec = 1.0
        vdiff = 0.0
    else:
        d = 2.0 * tp / (n_pred + n_ref)
        j = tp / (tp + fp + fn)
        sens = _ratio(tp, n_ref)
        prec = _ratio(tp, n_pred)
        vdiff = 100.0 * (vp - vr) / vr if n_ref else math.nan
    return ClassAgreement(
        index=index,
        n_pred=n_pred,
        n_ref=n_ref,
        tp=tp,
        fp=fp,
        fn=fn,
        dice=d,
        jaccard=j,
        sensitivity=sens,
        precision=prec,
        volume_pred_mm3=vp,
        volume_ref_mm3=vr,
        volume_diff_percent=vdiff,
        absent_in_both=absent,
    )


def _ranges(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    if len(shape) == 0:
        return [(0, 1)]
    per = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    step = max(1, _CHUNK // max(1, per))
    return [(s, min(s + step, shape[0])) for s in range(0, shape[0], step)]


def iter_compare(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    n_classes: int,
    voxel_volume_mm3: float = 1.0,
) -> Generator[Progress, None, Comparison]:
    """Compare a predicted label map with a reference, chunk by chunk along axis 0.

    Parameters
    ----------
    pred_labels
        Predicted label map, any shape, integer dtype (``LabelResult.labels``: uint8 /
        uint16, image-axis order); may be a memory map. Values outside
        ``0 .. n_classes - 1`` (reserved UNCERTAIN / INVALID) count as wrong for every class.
    ref_labels
        Reference label map of the same shape, integer dtype. Values outside
        ``0 .. n_classes - 1`` are not scored (:attr:`Comparison.n_ignored`).
    n_classes
        Number of classes, background included.
    voxel_volume_mm3
        Volume of one voxel in mm³ (product of ``Volume.spacing``); 1.0 gives volumes in
        voxels.

    Yields
    ------
    Progress
        After each chunk of axis 0 (a few slices).

    Returns
    -------
    Comparison
    """
    _check_pair(pred_labels, ref_labels)
    if n_classes < 1:
        raise SegviewerError(f"n_classes must be at least 1, got {n_classes}")
    if not (math.isfinite(voxel_volume_mm3) and voxel_volume_mm3 > 0):
        raise SegviewerError(
            f"the voxel volume must be a positive number of mm³, got {voxel_volume_mm3}"
        )
    n = n_classes
    p = pred_labels.reshape(1) if pred_labels.ndim == 0 else pred_labels
    r = ref_labels.reshape(1) if ref_labels.ndim == 0 else ref_labels
    if n > DENSE_MAX_CLASSES:
        return (yield from _iter_compare_sparse(p, r, n, float(voxel_volume_mm3)))
    jc = np.zeros((n + 1, n + 1), dtype=np.int64)
    ranges = _ranges(p.shape)
    for done, (s, e) in enumerate(ranges, start=1):
        # one pass: row / column n of the joint counts is "no class" (reserved, out of range)
        jc += stats.joint_counts(p[s:e], r[s:e], n)
        yield Progress(done, len(ranges), f"comparing with the reference ({e}/{p.shape[0]})")
    return comparison_from_counts(jc, voxel_volume_mm3)


def comparison_from_counts(joint: np.ndarray, voxel_volume_mm3: float = 1.0) -> Comparison:
    """The :class:`Comparison` of a prediction and a reference from their joint counts.

    Parameters
    ----------
    joint
        ``(n + 1, n + 1)`` int64 from :func:`segviewer.core.stats.joint_counts` (rows =
        predicted label, columns = reference label, index ``n`` = no class), summed over
        any region (a volume, one slice, several chunks).
    voxel_volume_mm3
        Volume of one voxel in mm³.
    """
    jc = np.asarray(joint, dtype=np.int64)
    if jc.ndim != 2 or jc.shape[0] != jc.shape[1] or jc.shape[0] < 2:
        raise SegviewerError(f"internal: joint counts must be (n+1, n+1), got {jc.shape}")
    n = jc.shape[0] - 1
    cm = np.ascontiguousarray(jc[:n, :n])
    ref_counts = jc[:, :n].sum(axis=0)  # scored voxels, whatever the prediction
    n_scored = int(ref_counts.sum())
    total = int(jc.sum())
    n_pred = cm.sum(axis=1)
    tp = np.diag(cm)
    per_class = tuple(
        _agreement(k, int(tp[k]), int(n_pred[k]), int(ref_counts[k]), float(voxel_volume_mm3))
        for k in range(n)
    )
    return Comparison(
        per_class=per_class,
        accuracy=_ratio(int(tp.sum()), n_scored),
        n_voxels=n_scored,
        confusion=cm,
        n_ignored=total - n_scored,
        n_pred_unlabelled=int(jc[n, :n].sum()),
        voxel_volume_mm3=float(voxel_volume_mm3),
    )


#: Beyond this many classes the confusion matrix has rows and columns only for the classes
#: that occur (:attr:`Comparison.confusion_classes`).
DENSE_MAX_CLASSES = 1024


def _iter_compare_sparse(
    p: np.ndarray, r: np.ndarray, n: int, voxel_volume_mm3: float
) -> Generator[Progress, None, Comparison]:
    """:func:`iter_compare` for very many classes: count only the classes that occur.

    Two passes over the chunks: which classes occur (in ``0 .. n-1``) in either map, then
    the joint counts of those, remapped to ``0 .. m-1`` (``m``: "no class").
    """
    ranges = _ranges(p.shape)
    steps = 2 * len(ranges)
    seen: set[int] = set()
    for done, (s, e) in enumerate(ranges, start=1):
        for block in (p[s:e], r[s:e]):
            u = np.unique(np.asarray(block))
            seen.update(int(v) for v in u[(u >= 0) & (u < n)])
        yield Progress(done, steps, "comparing with the reference (classes present)")
    cls = np.array(sorted(seen), dtype=np.int64)
    m = int(cls.size)

    def compact(block: np.ndarray) -> np.ndarray:
        v = np.asarray(block, dtype=np.int64).ravel()
        i = np.searchsorted(cls, v)
        hit = (i < m) & (cls[np.minimum(i, max(m - 1, 0))] == v) if m else np.zeros(v.shape, bool)
        return np.where(hit, i, m)

    jc = np.zeros((m + 1) * (m + 1), dtype=np.int64)
    for done, (s, e) in enumerate(ranges, start=len(ranges) + 1):
        code = compact(p[s:e]) * (m + 1) + compact(r[s:e])
        jc += np.bincount(code, minlength=(m + 1) * (m + 1))
        yield Progress(done, steps, f"comparing with the reference ({e}/{p.shape[0]})")
    jcm = jc.reshape(m + 1, m + 1)
    cm = np.ascontiguousarray(jcm[:m, :m])
    ref_counts = jcm[:, :m].sum(axis=0)
    n_scored = int(ref_counts.sum())
    n_pred = cm.sum(axis=1)
    tp = np.diag(cm)
    where = {int(k): j for j, k in enumerate(cls)}
    per_class = tuple(
        _agreement(k, int(tp[j]), int(n_pred[j]), int(ref_counts[j]), voxel_volume_mm3)
        if (j := where.get(k)) is not None
        else _agreement(k, 0, 0, 0, voxel_volume_mm3)
        for k in range(n)
    )
    return Comparison(
        per_class=per_class,
        accuracy=_ratio(int(tp.sum()), n_scored),
        n_voxels=n_scored,
        confusion=cm,
        n_ignored=int(jc.sum()) - n_scored,
        n_pred_unlabelled=int(jcm[m, :m].sum()),
        voxel_volume_mm3=voxel_volume_mm3,
        confusion_classes=tuple(int(k) for k in cls),
    )


def compare(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    n_classes: int,
    voxel_volume_mm3: float = 1.0,
) -> Comparison:
    """:func:`iter_compare` run to the end (no progress)."""
    return run_to_end(iter_compare(pred_labels, ref_labels, n_classes, voxel_volume_mm3))


def scored_mask(ref: np.ndarray, n_classes: int | None) -> np.ndarray:
    """Bool mask of reference voxels that are scored (a class in ``0 .. n_classes - 1``;
    without ``n_classes``, every value but negatives and the dtype's two reserved ones)."""
    # without a class count, only the dtype's two reserved values are known to be invalid
    limit = n_classes if n_classes is not None else int(np.iinfo(ref.dtype).max) - 1
    ok = ref < limit
    if ref.dtype.kind == "i":
        ok &= ref >= 0
    return ok


# the former private name, still used by other modules
_scored = scored_mask


def error_map(
    pred: np.ndarray,
    ref: np.ndarray,
    class_index: int | None = None,
    *,
    n_classes: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Where prediction and reference disagree, as a small uint8 code per voxel.

    Parameters
    ----------
    pred, ref
        Predicted and reference label maps of the same shape (a slice ``(rows, cols)`` or a
        block / volume in image-axis order), integer dtypes.
    class_index
        ``None``: :data:`ERROR_AGREE` (0) where the labels are equal, :data:`ERROR_DISAGREE`
        (2) where they differ. A class ``k``: :data:`ERROR_NONE` (0) neither has ``k``,
        :data:`ERROR_TP` (1) both, :data:`ERROR_FP` (2) prediction ``k`` and reference
        another class, :data:`ERROR_FN` (3) reference ``k`` and prediction another class or
        no class (a reserved UNCERTAIN / INVALID prediction never equals a class, so it is a
        disagreement for every class, as in :func:`iter_compare`).
    n_classes
        If given, reference values outside ``0 .. n_classes - 1`` are not scored; otherwise
        only negative values and the reference dtype's two reserved values are not scored.
        Unscored voxels are 0.
    out
        Optional uint8 array of the same shape to write into.

    Returns
    -------
    numpy.ndarray
        uint8, same shape as the inputs.
    """
    _check_pair(pred, ref)
    if class_index is not None and (
        class_index < 0 or (n_classes is not None and class_index >= n_classes)
    ):
        raise SegviewerError(
            f"class {class_index} does not exist"
            + (f" (classes are 0..{n_classes - 1})" if n_classes is not None else "")
        )
    if out is None:
        out = np.empty(pred.shape, dtype=np.uint8)
    elif out.shape != pred.shape or out.dtype != np.uint8:
        raise SegviewerError(
            f"internal: error map output must be uint8 {pred.shape}, got {out.dtype} {out.shape}"
        )
    if pred.ndim == 0:
        return error_map(pred.reshape(1), ref.reshape(1), class_index, n_classes=n_classes).reshape(
            ()
        )
    for s, e in _ranges(pred.shape):
        pc = np.asarray(pred[s:e])
        rc = np.asarray(ref[s:e])
        dest = out[s:e]
        ok = scored_mask(rc, n_classes)
        if class_index is None:
            # bool * 2 written straight into uint8: no int temporaries
            np.multiply(pc != rc, ok, out=dest, dtype=np.uint8, casting="unsafe")
            dest *= ERROR_DISAGREE
        else:
            pk = pc == class_index
            rk = rc == class_index
            pk &= ok
            rk &= ok
            np.multiply(pk, 2, out=dest, dtype=np.uint8, casting="unsafe")
            dest += rk
            # 2 pk + rk is 0 none, 1 ref only, 2 pred only, 3 both: swap 1 and 3 (xor 2 on
            # odd codes) to get ERROR_FN / ERROR_TP, branch-free in uint8
            swap = dest & 1
            dest ^= swap * 2
    return out


def iter_slice_error_counts(
    labels: np.ndarray, reference: np.ndarray, n_classes: int
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-slice error counts along each image axis (what E / Shift+E walks through).

    Parameters
    ----------
    labels, reference
        ``(a0, a1, a2)`` integer label maps on the image grid (reference labels outside
        ``0..n_classes-1`` are not scored).
    n_classes
        Classes of the prediction.

    Returns
    -------
    tuple of three ndarray
        ``counts_k`` is ``(n_classes + 1, a_k)`` int64: row ``c`` = false positives + false
        negatives of class ``c`` in each slice across axis ``k`` (the voxels
        :func:`error_map` colours for ``c``), last row = scored voxels where the labels
        differ. One pass over the disagreeing voxels only; yields :class:`Progress`.
    """
    n = n_classes
    shape = labels.shape
    counts = [np.zeros((n + 1) * size, np.int64) for size in shape]
    step = max(1, (1 << 20) // max(1, shape[1] * shape[2]))
    starts = range(0, shape[0], step)
    for done, s in enumerate(starts, start=1):
        e = min(s + step, shape[0])
        p = np.asarray(labels[s:e])
        r = np.asarray(reference[s:e])
        scored = r < n
        if r.dtype.kind == "i":
            scored &= r >= 0
        wrong = (p != r) & scored
        idx = np.nonzero(wrong)
        pk = p[wrong].astype(np.int64)
        rk = r[wrong].astype(np.int64)
        has_class = pk < n  # an uncertain / invalid prediction is no class's false positive
        for axis, size in enumerate(shape):
            pos = idx[axis] + (s if axis == 0 else 0)
            c = counts[axis]
            c += np.bincount(rk * size + pos, minlength=c.size)
            c += np.bincount((pk * size + pos)[has_class], minlength=c.size)
            c += np.bincount(n * size + pos, minlength=c.size)
        yield Progress(done, len(starts), f"counting errors per slice ({e}/{shape[0]})")
    a, b, c3 = (c.reshape(n + 1, size) for c, size in zip(counts, shape, strict=True))
    return a, b, c3


def rank_error_slices(counts: np.ndarray) -> list[int]:
    """Slice indices with at least one error, most errors first (ties: lower index first).

    ``counts`` is one row of :func:`iter_slice_error_counts`' result (errors per slice)."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    return [int(i) for i in order if counts[i] > 0]
