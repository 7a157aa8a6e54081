"""Test-set metrics of one case: per class, for the whole volume and for every slice.

Overlap counts and the ratios built on them (Dice, IoU, sensitivity, precision, volumes)
come from :mod:`segviewer.core.compare` (one place for counting rules: reference voxels
without a class are not scored, a prediction voxel without a class is wrong for every
class). This module adds what a test set needs on top:

* **surface distances** in mm using the voxel spacing: the 95th-percentile Hausdorff distance
  (HD95) and the average symmetric surface distance (ASSD);
* **uncertainty** from logits or probabilities: the mean normalised entropy and the share of
  low-confidence voxels in each predicted class;
* the same numbers **per slice** (2-D: in-plane spacing), and each class's worst slice.

Definitions (as MetricsReloaded, Maier-Hein et al. 2024, "Metrics reloaded")
--------------------------------------------------------------------------------
* The **surface** of a mask is its voxels with at least one face neighbour outside it
  (``mask & ~binary_erosion(mask)``, 6-connectivity in 3-D, 4 in 2-D; voxels on the array's
  border are surface).
* ``d(A→B)`` are the distances in mm from each surface voxel of A to the nearest surface
  voxel of B (exact Euclidean distances between voxel centres scaled by the spacing; found
  with a k-d tree, which gives the same values as a distance transform).
* **HD95** ``= max(P95(d(P→R)), P95(d(R→P)))``: the larger of the two directed 95th
  percentiles (numpy's linear percentile).
* **ASSD** ``= (Σ d(P→R) + Σ d(R→P)) / (|∂P| + |∂R|)``: the mean over both surfaces.

  (medpy's ``hd95`` takes one percentile of the pooled distances and its ``assd`` the mean of
  the two directed means; on symmetric errors they agree, on lopsided ones they differ a
  little. The tests compare the directed distances with medpy's.)

Empty masks (a class absent from the reference, the prediction, or a slice)
---------------------------------------------------------------------------
* **Both empty**: Dice = IoU = sensitivity = precision = 1, HD95 = ASSD = 0 (nothing to
  find and nothing found; :class:`~segviewer.core.compare.ClassAgreement` ``absent_in_both``).
* **Only one empty**: Dice = IoU = 0; sensitivity (reference empty) or precision
  (prediction empty) NaN, the other 0; **HD95 = ASSD = NaN** (no surface to measure to).
  NaN means "undefined", not "good": means and medians leave it out, and ``evaluate``
  reports how many values were undefined next to every mean. Dice 0 already ranks such a
  case among the worst.
* Surface distances are computed for the foreground classes only; background (class 0) gets
  NaN (its surface is the union of all others').
* Without a reference, only the prediction's volumes and uncertainty are defined; every
  reference metric is NaN and the counts are ``None``.

Uncertainty
-----------
``mean_entropy`` is the mean over the voxels predicted as the class of the Shannon entropy
divided by its maximum (``log C``; multi-label: ``C log 2``), so it is in [0, 1] whatever the
number of classes. ``low_confidence_share`` is the fraction of those voxels whose top class
probability is below ``low_confidence`` (0.8 by default). Voxels with NaN scores (labelled
INVALID) are left out. A label-map prediction has no uncertainty: NaN.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segviewer.core import stats
from segviewer.core.compare import ClassAgreement, comparison_from_counts, scored_mask
from segviewer.core.masks import chunk_plan, stats_from_block
from segviewer.core.progress import run_to_end
from segviewer.core.types import Prediction, PredictionKind, Progress, SegviewerError

__all__ = [
    "LOW_CONFIDENCE",
    "METRICS",
    "ClassMetrics",
    "CaseMetrics",
    "UncertaintySums",
    "surface_distances",
    "distance_metrics",
    "iter_uncertainty",
    "uncertainty",
    "iter_case_metrics",
    "case_metrics",
]

#: Default top-probability threshold below which a voxel counts as low-confidence.
LOW_CONFIDENCE = 0.8

#: The per-class metrics of a case or a slice, in the order every table writes them
#: (``io.evaluate``'s CSV files, the window's case and slice tables).
METRIC_COLUMNS: tuple[str, ...] = (
    "n_pred",
    "n_ref",
    "tp",
    "fp",
    "fn",
    "dice",
    "iou",
    "sensitivity",
    "precision",
    "volume_pred_ml",
    "volume_ref_ml",
    "volume_diff_ml",
    "hd95_mm",
    "assd_mm",
    "mean_entropy",
    "low_confidence_share",
)

#: The per-class metrics, in output column order, with whether higher is better (None: no
#: direction, e.g. a volume difference).
METRICS: dict[str, bool | None] = {
    "dice": True,
    "iou": True,
    "sensitivity": True,
    "precision": True,
    "volume_pred_ml": None,
    "volume_ref_ml": None,
    "volume_diff_ml": None,
    "fp": False,
    "fn": False,
    "hd95_mm": False,
    "assd_mm": False,
    "mean_entropy": False,
    "low_confidence_share": False,
}


@dataclass(frozen=True)
class ClassMetrics:
    """The metrics of one class over a region (a whole case, or one slice).

    Attributes
    ----------
    class_index
        Class index (0 = background).
    n_pred, n_ref
        Voxels of the class in the prediction / the reference (``n_ref`` None without one).
    tp, fp, fn
        True-positive, false-positive and false-negative voxels (None without a reference).
    dice, iou, sensitivity, precision
        Overlap ratios (see the module docstring for empty masks); NaN without a reference.
    volume_pred_ml, volume_ref_ml, volume_diff_ml
        Volumes in millilitres and ``pred - ref`` (positive: over-segmented).
    hd95_mm, assd_mm
        Surface distances in mm (NaN where undefined, see the module docstring).
    mean_entropy, low_confidence_share
        Uncertainty of the voxels predicted as the class (NaN without logits or without
        such voxels).
    absent_in_both
        Neither map has the class here.
    """

    class_index: int
    n_pred: int
    n_ref: int | None
    tp: int | None
    fp: int | None
    fn: int | None
    dice: float
    iou: float
    sensitivity: float
    precision: float
    volume_pred_ml: float
    volume_ref_ml: float
    volume_diff_ml: float
    hd95_mm: float
    assd_mm: float
    mean_entropy: float
    low_confidence_share: float
    absent_in_both: bool

    def as_dict(self) -> dict[str, Any]:
        """Plain dict in output column order (NaN stays NaN)."""
        return {
            "class_index": self.class_index,
            "n_pred": self.n_pred,
            "n_ref": self.n_ref,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "dice": self.dice,
            "iou": self.iou,
            "sensitivity": self.sensitivity,
            "precision": self.precision,
            "volume_pred_ml": self.volume_pred_ml,
            "volume_ref_ml": self.volume_ref_ml,
            "volume_diff_ml": self.volume_diff_ml,
            "hd95_mm": self.hd95_mm,
            "assd_mm": self.assd_mm,
            "mean_entropy": self.mean_entropy,
            "low_confidence_share": self.low_confidence_share,
            "absent_in_both": self.absent_in_both,
        }


@dataclass(frozen=True, eq=False)
class UncertaintySums:
    """Per-slice, per-class sums from which mean entropy and low-confidence shares follow.

    Arrays are ``(n_slices, n_classes + 1)``: column ``k`` counts voxels predicted as class
    ``k``, the last column every voxel (whatever its label). Only voxels with a finite
    entropy are counted.

    Attributes
    ----------
    count
        int64 voxels.
    entropy
        float64 sum of normalised entropies.
    low
        int64 voxels whose top probability is below ``threshold``.
    threshold
        The low-confidence threshold used.
    slice_axis
        Image axis the slices run along.
    """

    count: np.ndarray
    entropy: np.ndarray
    low: np.ndarray
    threshold: float
    slice_axis: int

    def mean_entropy(self, rows: slice | int = slice(None)) -> np.ndarray:
        """Mean normalised entropy per column over the given slices (NaN where no voxel)."""
        c = np.atleast_2d(self.count[rows]).sum(axis=0)
        e = np.atleast_2d(self.entropy[rows]).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, e / np.maximum(c, 1), np.nan)

    def low_share(self, rows: slice | int = slice(None)) -> np.ndarray:
        """Low-confidence share per column over the given slices (NaN where no voxel)."""
        c = np.atleast_2d(self.count[rows]).sum(axis=0)
        lo = np.atleast_2d(self.low[rows]).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, lo / np.maximum(c, 1), np.nan)


@dataclass(frozen=True, eq=False)
class CaseMetrics:
    """Everything measured on one case.

    Attributes
    ----------
    per_class
        Whole-volume :class:`ClassMetrics`, class 0 first.
    per_slice
        ``per_slice[i][k]``: class ``k`` on slice ``i`` (along ``slice_axis``).
    slice_axis
        Image axis (0, 1, 2) the slices run along.
    spacing
        Voxel size in mm along image axes 0, 1, 2.
    worst_slice
        Per class, the slice to look at first: with a reference the one with the most
        false positives + false negatives of the class (ties: the lower Dice); without one
        the highest mean entropy among the slices where it is predicted. None when no slice
        has an error (or, without a reference, no slice has the class).
    accuracy
        Voxel accuracy over scored voxels (NaN without a reference).
    has_reference, has_uncertainty
        Which metrics are defined.
    """

    per_class: tuple[ClassMetrics, ...]
    per_slice: tuple[tuple[ClassMetrics, ...], ...]
    slice_axis: int
    spacing: tuple[float, float, float]
    worst_slice: tuple[int | None, ...]
    accuracy: float
    has_reference: bool
    has_uncertainty: bool

    @property
    def n_classes(self) -> int:
        return len(self.per_class)

    def mean_dice(self) -> float:
        """Mean Dice over foreground classes present in either map (NaN: none, or no
        reference)."""
        vals = [c.dice for c in self.per_class[1:] if not c.absent_in_both]
        return float(np.mean(vals)) if vals and self.has_reference else math.nan


# --------------------------------------------------------------------------------------------
# surface distances


def _surface(mask: np.ndarray) -> np.ndarray:
    # scipy is imported here, not at the top: the window imports this module at start-up
    # (test-set review), and scipy.ndimage + scipy.spatial cost 0.3-0.4 s of it
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    inner = ndimage.binary_erosion(mask, structure=structure, iterations=1, border_value=0)
    return mask & ~inner


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim or not all(math.isfinite(s) and s > 0 for s in sp):
        raise SegviewerError(
            f"the voxel spacing must be {ndim} positive sizes in mm, got {tuple(spacing)}"
        )
    return sp


def surface_distances(
    a: np.ndarray, b: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances between two non-empty masks.

    Parameters
    ----------
    a, b
        Boolean masks of the same shape (2-D or 3-D), both with at least one voxel.
    spacing
        Voxel size in mm along each axis of the masks.

    Returns
    -------
    (d_ab, d_ba)
        float64 distances in mm from every surface voxel of ``a`` to the nearest surface
        voxel of ``b``, and the other way round (in C order of the surface voxels).
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise SegviewerError(f"cannot measure distances between masks {a.shape} and {b.shape}")
    sp = _check_spacing(spacing, a.ndim)
    union = a | b
    if not (a.any() and b.any()):
        raise SegviewerError("internal: surface distances need two non-empty masks")
    # Crop to the union's bounding box plus one voxel: every surface voxel and every nearest
    # neighbour lies inside it, and the margin keeps the erosion's result unchanged (the
    # array's own border, where the box touches it, stays a border).
    box = []
    for ax in range(a.ndim):
        other = tuple(i for i in range(a.ndim) if i != ax)
        idx = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(0, int(idx[0]) - 1), min(a.shape[ax], int(idx[-1]) + 2)))
    ac = a[tuple(box)]
    bc = b[tuple(box)]
    # surface voxel centres in mm; nearest neighbours by k-d tree: exact Euclidean distances
    # like a distance transform, but proportional to the surfaces, not to the box's volume
    from scipy.spatial import cKDTree

    pa = np.argwhere(_surface(ac)) * np.asarray(sp)
    pb = np.argwhere(_surface(bc)) * np.asarray(sp)
    d_ab = cKDTree(pb).query(pa, k=1)[0]
    d_ba = cKDTree(pa).query(pb, k=1)[0]
    return np.asarray(d_ab, dtype=np.float64), np.asarray(d_ba, dtype=np.float64)


def distance_metrics(
    pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]
) -> tuple[float, float]:
    """``(hd95_mm, assd_mm)`` of two masks with the empty-mask conventions of this module.

    Both empty: ``(0.0, 0.0)``; one empty: ``(nan, nan)``; otherwise HD95 is the larger of
    the two directed 95th percentiles and ASSD the mean over both surfaces' distances.
    """
    pa = bool(np.any(pred))
    ra = bool(np.any(ref))
    if not pa and not ra:
        _check_spacing(spacing, np.ndim(pred))
        return 0.0, 0.0
    if not (pa and ra):
        _check_spacing(spacing, np.ndim(pred))
        return math.nan, math.nan
    d_pr, d_rp = surface_distances(pred, ref, spacing)
    hd95 = max(float(np.percentile(d_pr, 95)), float(np.percentile(d_rp, 95)))
    assd = float((d_pr.sum() + d_rp.sum()) / (d_pr.size + d_rp.size))
    return hd95, assd


# --------------------------------------------------------------------------------------------
# uncertainty, streamed over the prediction


def _sel(axis: int, start: int, stop: int, lead: int) -> tuple[slice, ...]:
    idx = [slice(None)] * (lead + 3)
    idx[lead + axis] = slice(start, stop)
    return tuple(idx)


def iter_uncertainty(
    pred: Prediction,
    labels: np.ndarray,
    slice_axis: int,
    low_confidence: float = LOW_CONFIDENCE,
) -> Generator[Progress, None, UncertaintySums]:
    """Sum the entropy and count low-confidence voxels per slice and predicted class.

    Streams the prediction chunk by chunk like :func:`segviewer.core.masks.iter_labels`
    (memory: a few chunk-sized float32 buffers, never a volume of probabilities), so a
    multi-GB memory-mapped logits file is read once, sequentially.

    Parameters
    ----------
    pred
        Logits, probabilities, sigmoid or multi-label prediction (not a label map).
    labels
        Its label map ``(a0, a1, a2)`` (:func:`~segviewer.core.masks.iter_labels`).
    slice_axis
        Image axis the per-slice sums run along.
    low_confidence
        Top-probability threshold of a low-confidence voxel, in (0, 1].

    Returns
    -------
    UncertaintySums
    """
    if pred.kind is PredictionKind.LABELS:
        raise SegviewerError(
            "a label map has no probabilities, so it has no entropy or confidence; give the "
            "model's logits or probabilities"
        )
    if not 0.0 < low_confidence <= 1.0:
        raise SegviewerError(
            f"the low-confidence threshold must be in (0, 1], got {low_confidence}"
        )
    if slice_axis not in (0, 1, 2):
        raise SegviewerError(f"internal: slice axis must be 0, 1 or 2, got {slice_axis}")
    shape = tuple(int(s) for s in labels.shape)
    if shape != tuple(pred.spatial_shape):
        raise SegviewerError(
            f"internal: label map {shape} does not match the prediction {pred.spatial_shape}"
        )
    n = int(pred.n_classes)
    m = n + 1
    n_sl = shape[slice_axis]
    count: np.ndarray = np.zeros(n_sl * m, dtype=np.int64)
    ent_sum: np.ndarray = np.zeros(n_sl * m, dtype=np.float64)
    low: np.ndarray = np.zeros(n_sl * m, dtype=np.int64)
    cf = pred.channels_first()
    axis, ranges = chunk_plan(pred)
    thr = np.float32(low_confidence)
    vap = pred.values_are_probabilities
    for done, (a, b) in enumerate(ranges, start=1):
        block = cf[_sel(axis, a, b, 1)]
        lab = np.asarray(labels[_sel(axis, a, b, 0)])
        ent = stats_from_block(
            block, pred.kind, "entropy", values_are_probabilities=vap, normalised=True
        )
        conf = stats_from_block(block, pred.kind, "confidence", values_are_probabilities=vap)
        ok = np.isfinite(ent)
        # slice index of every voxel of the chunk, then one code per (slice, label)
        sl_shape = [1, 1, 1]
        sl_shape[slice_axis] = lab.shape[slice_axis]
        offset = a if slice_axis == axis else 0
        sl = np.arange(offset, offset + lab.shape[slice_axis], dtype=np.intp).reshape(sl_shape)
        code = np.minimum(lab, n, dtype=np.intp)
        code += sl * m
        c_ok = code[ok]
        e_ok = ent[ok].astype(np.float64)
        lo_ok = conf[ok] < thr
        count += np.bincount(c_ok, minlength=n_sl * m)
        ent_sum += np.bincount(c_ok, weights=e_ok, minlength=n_sl * m)
        low += np.bincount(c_ok[lo_ok], minlength=n_sl * m)
        yield Progress(done, len(ranges), f"measuring uncertainty ({b}/{shape[axis]} slices)")
    count = count.reshape(n_sl, m)
    ent_sum = ent_sum.reshape(n_sl, m)
    low = low.reshape(n_sl, m)
    # the last column: every voxel, whatever its label (column n held the reserved labels)
    count[:, n] = count.sum(axis=1)
    ent_sum[:, n] = ent_sum.sum(axis=1)
    low[:, n] = low.sum(axis=1)
    return UncertaintySums(count, ent_sum, low, float(low_confidence), int(slice_axis))


def uncertainty(
    pred: Prediction, labels: np.ndarray, slice_axis: int, low_confidence: float = LOW_CONFIDENCE
) -> UncertaintySums:
    """:func:`iter_uncertainty` run to the end."""
    return run_to_end(iter_uncertainty(pred, labels, slice_axis, low_confidence))


# --------------------------------------------------------------------------------------------
# one case


def _from_agreement(
    c: ClassAgreement, hd95: float, assd: float, ent: float, low: float
) -> ClassMetrics:
    vp = c.volume_pred_mm3 / 1000.0
    vr = c.volume_ref_mm3 / 1000.0
    return ClassMetrics(
        class_index=c.index,
        n_pred=c.n_pred,
        n_ref=c.n_ref,
        tp=c.tp,
        fp=c.fp,
        fn=c.fn,
        dice=c.dice,
        iou=c.jaccard,
        sensitivity=c.sensitivity,
        precision=c.precision,
        volume_pred_ml=vp,
        volume_ref_ml=vr,
        volume_diff_ml=vp - vr,
        hd95_mm=hd95,
        assd_mm=assd,
        mean_entropy=ent,
        low_confidence_share=low,
        absent_in_both=c.absent_in_both,
    )


def _pred_only(k: int, n_pred: int, vox_mm3: float, ent: float, low: float) -> ClassMetrics:
    nan = math.nan
    return ClassMetrics(
        class_index=k,
        n_pred=n_pred,
        n_ref=None,
        tp=None,
        fp=None,
        fn=None,
        dice=nan,
        iou=nan,
        sensitivity=nan,
        precision=nan,
        volume_pred_ml=n_pred * vox_mm3 / 1000.0,
        volume_ref_ml=nan,
        volume_diff_ml=nan,
        hd95_mm=nan,
        assd_mm=nan,
        mean_entropy=ent,
        low_confidence_share=low,
        absent_in_both=n_pred == 0,
    )


def _class_masks(
    lab: np.ndarray, ref: np.ndarray, ok: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    p = lab == k
    p &= ok  # a predicted voxel where the reference is not scored is no false positive
    return p, ref == k


def iter_case_metrics(
    labels: np.ndarray,
    reference: np.ndarray | None,
    n_classes: int,
    spacing: Sequence[float],
    slice_axis: int,
    *,
    uncertainty: UncertaintySums | None = None,
    distances: bool = True,
    slice_distances: bool = True,
) -> Generator[Progress, None, CaseMetrics]:
    """Measure one case: per class for the volume and for every slice.

    Parameters
    ----------
    labels
        Predicted label map ``(a0, a1, a2)``, integer (reserved UNCERTAIN / INVALID values
        count as wrong for every class).
    reference
        Reference label map of the same shape, or None.
    n_classes
        Number of classes, background included.
    spacing
        Voxel size in mm along image axes 0, 1, 2 (``Volume.spacing``).
    slice_axis
        Image axis the per-slice metrics run along (the view's slice axis).
    uncertainty
        :func:`iter_uncertainty`'s sums along the same ``slice_axis``, or None.
    distances, slice_distances
        Compute HD95 / ASSD for the volume / for every slice (the slowest part; NaN when
        off).

    Yields
    ------
    Progress

    Returns
    -------
    CaseMetrics
    """
    if labels.ndim != 3:
        raise SegviewerError(f"internal: a label map must be 3-D, got {labels.shape}")
    if reference is not None and reference.shape != labels.shape:
        raise SegviewerError(
            f"the reference's shape {reference.shape} does not match the prediction's "
            f"{labels.shape}; both must be on the image's grid"
        )
    if uncertainty is not None and (
        uncertainty.slice_axis != slice_axis
        or uncertainty.count.shape != (labels.shape[slice_axis], n_classes + 1)
    ):
        raise SegviewerError("internal: the uncertainty sums belong to another slicing")
    sp = _check_spacing(spacing, 3)
    n = int(n_classes)
    vox_mm3 = float(np.prod(sp))
    lab_s = np.moveaxis(labels, slice_axis, 0)
    ref_s = None if reference is None else np.moveaxis(reference, slice_axis, 0)
    in_plane = tuple(s for i, s in enumerate(sp) if i != slice_axis)
    n_sl = int(lab_s.shape[0])
    fg = range(1, n)
    steps = n_sl + (len(fg) if distances and reference is not None else 0)
    done = 0

    def ent_low(rows: slice | int) -> tuple[np.ndarray, np.ndarray]:
        if uncertainty is None:
            return np.full(n + 1, np.nan), np.full(n + 1, np.nan)
        return uncertainty.mean_entropy(rows), uncertainty.low_share(rows)

    per_slice: list[tuple[ClassMetrics, ...]] = []
    total = np.zeros((n + 1, n + 1) if ref_s is not None else n, dtype=np.int64)
    for i in range(n_sl):
        ent, low = ent_low(i)
        lab_i = np.asarray(lab_s[i])
        if ref_s is None:
            cnt = stats.class_counts(lab_i, n)
            total += cnt
            row = tuple(
                _pred_only(k, int(cnt[k]), vox_mm3, float(ent[k]), float(low[k])) for k in range(n)
            )
        else:
            ref_i = np.asarray(ref_s[i])
            jc = stats.joint_counts(lab_i, ref_i, n)
            total += jc
            cmp_i = comparison_from_counts(jc, vox_mm3)
            ok_i = scored_mask(ref_i, n) if slice_distances else None
            cells = []
            for c in cmp_i.per_class:
                k = c.index
                hd = asd = math.nan
                if slice_distances and k >= 1:
                    if c.absent_in_both:
                        hd = asd = 0.0
                    elif c.n_pred and c.n_ref:
                        assert ok_i is not None
                        pk, rk = _class_masks(lab_i, ref_i, ok_i, k)
                        hd, asd = distance_metrics(pk, rk, in_plane)
                cells.append(_from_agreement(c, hd, asd, float(ent[k]), float(low[k])))
            row = tuple(cells)
        per_slice.append(row)
        done += 1
        if done % 16 == 0 or i == n_sl - 1:
            yield Progress(done, steps, f"measuring slices ({i + 1}/{n_sl})")

    ent, low = ent_low(slice(None))
    accuracy = math.nan
    if ref_s is None:
        per_class = tuple(
            _pred_only(k, int(total[k]), vox_mm3, float(ent[k]), float(low[k])) for k in range(n)
        )
    else:
        assert reference is not None
        cmp = comparison_from_counts(total, vox_mm3)
        accuracy = cmp.accuracy
        ok = scored_mask(reference, n) if distances else None
        cells = []
        for c in cmp.per_class:
            k = c.index
            hd = asd = math.nan
            if distances and k >= 1:
                if c.absent_in_both:
                    hd = asd = 0.0
                elif c.n_pred and c.n_ref:
                    assert ok is not None
                    pk, rk = _class_masks(labels, reference, ok, k)
                    hd, asd = distance_metrics(pk, rk, sp)
                done += 1
                yield Progress(done, steps, f"surface distances of class {k}")
            cells.append(_from_agreement(c, hd, asd, float(ent[k]), float(low[k])))
        per_class = tuple(cells)

    worst = tuple(_worst_slice(per_slice, k, ref_s is not None) for k in range(n))
    return CaseMetrics(
        per_class=per_class,
        per_slice=tuple(per_slice),
        slice_axis=int(slice_axis),
        spacing=(sp[0], sp[1], sp[2]),
        worst_slice=worst,
        accuracy=accuracy,
        has_reference=ref_s is not None,
        has_uncertainty=uncertainty is not None,
    )


def _worst_slice(
    per_slice: Sequence[Sequence[ClassMetrics]], k: int, with_reference: bool
) -> int | None:
    best: tuple[float, float] | None = None
    found: int | None = None
    for i, row in enumerate(per_slice):
        c = row[k]
        if with_reference:
            if c.absent_in_both or not (c.fp or c.fn):
                continue
            # most wrong voxels first (a 3-voxel miss at Dice 0 matters less than a
            # 200-voxel miss at Dice 0.6), then the lower Dice
            key = (-float((c.fp or 0) + (c.fn or 0)), c.dice)
        else:
            if c.n_pred == 0 or not math.isfinite(c.mean_entropy):
                continue
            key = (-c.mean_entropy, -float(c.n_pred))
        if best is None or key < best:
            best, found = key, i
    return found


def case_metrics(
    labels: np.ndarray,
    reference: np.ndarray | None,
    n_classes: int,
    spacing: Sequence[float],
    slice_axis: int,
    **kwargs: Any,
) -> CaseMetrics:
    """:func:`iter_case_metrics` run to the end (no progress)."""
    return run_to_end(
        iter_case_metrics(labels, reference, n_classes, spacing, slice_axis, **kwargs)
    )
