"""Predictions -> label maps, confidence, margin, entropy and probabilities: the hot path.

Everything here works on **channels-first** blocks ``(C, ...)`` (a slice ``(C, rows, cols)``
or a chunk ``(C, n, a1, a2)``) that are zero-copy views of the prediction as read, and loops
over classes only, never over voxels:

* The arg-max is a branch-free running maximum: ``gt = x_c > best; best = max(best, x_c);
  label = max(label, gt * c)`` (labels only grow with ``c``, so the maximum replaces a select).
  ``np.where`` / masked copies are several times slower on noisy data; ``np.argmax`` over a
  non-innermost axis is about 15x slower. Strict ``>`` gives ties to the lower class, exactly
  like ``np.argmax``.
* Soft statistics never build the ``(C, ...)`` probability array: with ``m`` the running
  maximum, ``s = sum exp(x - m)`` gives the top probability ``1 / s`` and the entropy
  ``log s - sum(exp(x - m) (x - m)) / s`` in one more pass.
* All arithmetic is float32 (float16 is 10-15x slower in numpy on x86; float64 halves the
  throughput); other input dtypes are converted one class plane at a time.
* Channels-last data with many classes (``_WIDE_MIN_CLASSES``) are reduced along the
  contiguous class axis (``np.argmax`` / row reductions): each voxel's class values are read
  once, in one pass, instead of one strided gather per class plane.
* Whole-volume work streams chunk by chunk along the raw array's outermost spatial axis, so a
  memory-mapped ``.npy`` is read nearly sequentially; the chunks run on a thread pool (numpy
  releases the GIL inside its kernels; each thread has its own cache-sized work buffers, so
  there is still no volume-sized temporary) and :class:`Progress` is yielded per chunk, in
  order, so the window can cancel it. Results do not depend on the number of threads.

Where numba is installed, whole-volume labels of float32 logits / probabilities with 2-16
classes (and no minimum confidence) go through a compiled single-pass kernel once it is ready
(:mod:`segviewer.core.kernels`, :func:`prepare_labels_kernel`); the results are identical.

Invalid values: a voxel whose class scores contain NaN, or +inf, or are all -inf (softmax
undefined) gets the reserved ``INVALID`` label (:func:`~segviewer.core.types.reserved_labels`),
never class 0, and NaN statistics. -inf in some classes is legal (probability 0, e.g.
log-probabilities). For sigmoid / multi-label logits only NaN is invalid (sigmoid(+inf) = 1).
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segviewer.core import kernels
from segviewer.core.orientation import DisplayAxes, take_slice
from segviewer.core.types import (
    MaskSettings,
    Prediction,
    PredictionKind,
    Progress,
    SegviewerError,
    label_dtype,
    reserved_labels,
)

__all__ = [
    "STATS",
    "LabelResult",
    "labels_from_block",
    "binary_mask_from_block",
    "stats_from_block",
    "probabilities_from_block",
    "slice_labels",
    "slice_stat",
    "slice_probabilities",
    "iter_labels",
    "prepare_labels_kernel",
    "iter_probabilities",
    "iter_stat",
    "chunk_plan",
    "default_workers",
]

#: Per-voxel statistics :func:`stats_from_block` computes.
STATS: tuple[str, ...] = ("confidence", "margin", "entropy", "probability")

# Below this difference to the maximum, exp() underflows to 0 in float32 (ln of the smallest
# subnormal is -103.3). Clamping differences there changes no exp() value but turns the
# 0 * -inf = NaN of a -inf logit into 0 * -110 = 0 in the entropy sum.
_EXP_FLOOR = -110.0
# log() of probabilities is clamped at the smallest normal float32 for the same reason.
_TINY = float(np.finfo(np.float32).tiny)

# Voxels per compute block when streaming: small enough that the few float32 work buffers
# stay in the CPU cache between class passes, large enough that numpy's per-call overhead is
# negligible.
_BLOCK_VOXELS = 1 << 16
# From this many classes on, channels-last data are reduced along the class axis in one
# contiguous pass per voxel (np.argmax / row reductions); below it, gathering each class
# plane once per cache-sized piece and running the SIMD loops on it is faster (np.argmax
# over a short innermost axis pays a per-voxel call overhead).
_WIDE_MIN_CLASSES = 24
# Voxels per whole-volume chunk: one thread-pool task and one progress report. Large enough
# that the per-task overhead (a future, a GIL hand-over) is noise, small enough to cancel
# within a few milliseconds and to spread a small volume over the cores.
_CHUNK_VOXELS = 1 << 18

_CHANNEL_KINDS = (
    PredictionKind.LOGITS,
    PredictionKind.PROBABILITIES,
    PredictionKind.SIGMOID,
    PredictionKind.MULTILABEL,
)


@dataclass(eq=False)
class LabelResult:
    """A whole-volume label map and what was counted while making it.

    Attributes
    ----------
    labels
        ``(a0, a1, a2)`` uint8 (uint16 beyond 253 classes) in image-axis order; reserved
        values for uncertain / invalid voxels (see ``core.types.reserved_labels``).
    counts
        ``(n_classes,)`` int64 voxel count per class (reserved values not included).
    n_invalid, n_uncertain
        Number of voxels labelled INVALID / UNCERTAIN.
    invalid_examples
        Up to 10 voxel indices ``(i0, i1, i2)`` of invalid voxels, in streaming order, for the
        error report.
    """

    labels: np.ndarray
    counts: np.ndarray
    n_invalid: int = 0
    n_uncertain: int = 0
    invalid_examples: list[tuple[int, int, int]] = field(default_factory=list)


class _Workspace:
    """Reusable scratch buffers, so streaming does not allocate per chunk."""

    def __init__(self) -> None:
        self._bufs: dict[str, np.ndarray] = {}

    def const(self, value: float, shape: tuple[int, ...]) -> np.ndarray:
        """A float32 array filled with ``value``: numpy's maximum against a scalar takes a
        slow non-SIMD path (about 4x slower than against an array)."""
        name = f"const{value!r}"
        b = self._bufs.get(name)
        if b is None or b.shape != shape:
            b = np.full(shape, value, dtype=np.float32)
            self._bufs[name] = b
        return b

    def get(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        b = self._bufs.get(name)
        dt = np.dtype(dtype)
        if b is None or b.shape != shape or b.dtype != dt:
            b = np.empty(shape, dtype=dt)
            self._bufs[name] = b
        return b


def _kind(kind: PredictionKind | str) -> PredictionKind:
    try:
        return PredictionKind(kind)
    except ValueError:
        names = ", ".join(k.value for k in PredictionKind)
        raise SegviewerError(f"unknown prediction kind {kind!r}; use one of {names}") from None


def _wide_channels_last(block: np.ndarray) -> bool:
    """Whether ``block`` is a channels-first *view* of channels-last data with many classes.

    Such a block (``block.strides[0]`` is one element: each voxel's class values lie side by
    side in memory) is read in one contiguous pass per voxel (:func:`_labels_wide_into`,
    :func:`_stats_wide_into`) instead of one strided gather per class plane, which would
    read every cache line of the block once per class.
    """
    return (
        block.ndim >= 2
        and block.shape[0] >= _WIDE_MIN_CLASSES
        and abs(block.strides[0]) == block.itemsize
    )


def _block_pieces(
    block: np.ndarray, lead: int, labels: bool = False
) -> list[tuple[tuple[slice, ...], tuple[slice, ...]]]:
    """Split a large block along its first two non-leading axes into cache-sized pieces.

    Returns ``(block_index, out_index)`` pairs; a whole volume passed to a ``*_from_block``
    function then needs only small work buffers (no volume-sized temporaries) and runs at the
    streaming speed. A piece holds about ``_BLOCK_VOXELS`` voxels, fewer for channels-last
    data with many classes (about ``_BLOCK_VOXELS`` values), so a piece stays in the cache.
    """
    spatial = block.shape[lead:]
    budget = _BLOCK_VOXELS
    if lead and _wide_channels_last(block):
        budget = max(64, (4 * _BLOCK_VOXELS) // int(block.shape[0]))
    elif labels and lead and block.ndim >= 2 and abs(block.strides[0]) > block.itemsize:
        # labels of class planes (channels-first): every operation streams over contiguous
        # planes and the few buffers are small (4 bytes per voxel and three 1-byte masks),
        # so larger pieces amortise numpy's per-call overhead (CPU time on 143 MB, 4
        # classes: 3.8x np.max at 2**18 voxels against 4.6x at 2**16). Statistics keep
        # six float32 buffers and gain nothing; channels-last blocks gather their planes,
        # which is fastest at 2**16.
        budget = 4 * _BLOCK_VOXELS
    if len(spatial) < 2 or int(np.prod(spatial)) <= 2 * budget:
        return [((slice(None),) * block.ndim, (slice(None),) * len(spatial))]
    per = int(np.prod(spatial[1:]))
    step = max(1, budget // max(1, per))
    pieces: list[tuple[tuple[slice, ...], tuple[slice, ...]]] = []
    for a in range(0, spatial[0], step):
        sl = slice(a, min(a + step, spatial[0]))
        if step == 1 and per > 2 * budget:
            # one slice is still too large (e.g. 512 x 512 x 114 classes): split its rows too
            per2 = int(np.prod(spatial[2:]))
            step2 = max(1, budget // max(1, per2))
            for b in range(0, spatial[1], step2):
                sl2 = slice(b, min(b + step2, spatial[1]))
                pieces.append(((slice(None),) * lead + (sl, sl2), (sl, sl2)))
            continue
        pieces.append(((slice(None),) * lead + (sl,), (sl,)))
    return pieces


def _plane(block: np.ndarray, c: int, ws: _Workspace) -> np.ndarray:
    """Class plane ``c`` of ``block`` as contiguous float32 (zero-copy when it already is)."""
    x = block[c]
    if x.dtype == np.float32 and x.flags.c_contiguous:
        return x
    # Other dtypes are converted; strided planes (channels-last data) are gathered into a
    # contiguous buffer once, because numpy's strided loops are 4-6x slower than its SIMD
    # loops and each plane is used by two or more operations.
    buf = ws.get("plane", x.shape, np.float32)
    np.copyto(buf, x, casting="unsafe")
    return buf


def _check_block(block: np.ndarray, kind: PredictionKind) -> None:
    if kind in _CHANNEL_KINDS and block.ndim < 2:
        raise SegviewerError(
            f"internal: a {kind.value} block must be channels-first (C, ...), got shape "
            f"{block.shape}"
        )
    if kind is PredictionKind.SIGMOID and block.shape[0] != 1:
        raise SegviewerError(
            f"a sigmoid prediction has one channel, this one has {block.shape[0]}; load it "
            "as 'multilabel' (independent channels) or 'logits' (softmax over channels)"
        )
    if kind in _CHANNEL_KINDS and block.shape[0] < 1:
        raise SegviewerError("the prediction has no channels")


def _logit32(p: float) -> np.float32:
    """Smallest float32 ``t`` with ``x >= t`` exactly when ``sigmoid(x) >= p`` (x float32)."""
    if p <= 0.0:
        return np.float32(-np.inf)
    if p >= 1.0:
        return np.float32(np.inf)
    t = math.log(p) - math.log1p(-p)
    t32 = np.float32(t)
    if float(t32) < t:
        t32 = np.nextafter(t32, np.float32(np.inf))
    return t32


def _prob32(p: float) -> np.float32:
    """Smallest float32 ``t`` with ``x >= t`` exactly when ``x >= p`` (x float32)."""
    t32 = np.float32(p)
    if float(t32) < p:
        t32 = np.nextafter(t32, np.float32(np.inf))
    return t32


def _running_max(
    block: np.ndarray, lab: np.ndarray | None, ws: _Workspace, want_second: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The maximum over classes (and optionally the second largest) as float32.

    With ``lab`` given, also the arg-max into it; statistics pass None and skip the three
    label operations per class.
    """
    shape = block.shape[1:]
    best = ws.get("best", shape, np.float32)
    second: np.ndarray | None = None
    if want_second:
        second = ws.get("second", shape, np.float32)
        second.fill(-np.inf)
        lo = ws.get("lo", shape, np.float32)
    if lab is not None:
        gt = ws.get("gt", shape, np.bool_)
        step = ws.get("step", shape, lab.dtype)
        ctype = lab.dtype.type
        # uint8 x uint8 runs the SIMD loop; bool x uint8 is about 3x slower
        gt_as = gt.view(np.uint8) if lab.dtype == np.uint8 else gt
    if block.shape[0] == 1 or block.dtype != np.float32 or not block[0].flags.c_contiguous:
        np.copyto(best, block[0], casting="unsafe")
        prev: np.ndarray = best
        if lab is not None:
            lab.fill(0)
    else:
        # class 1 compares against class 0 directly: saves copying class 0 into best
        prev = block[0]
    for c in range(1, block.shape[0]):
        x = _plane(block, c, ws)
        if lab is not None:
            np.greater(x, prev, out=gt)
        if second is not None:
            np.minimum(prev, x, out=lo)
            np.maximum(second, lo, out=second)
        np.maximum(prev, x, out=best)
        if lab is not None:
            if prev is not best:
                np.copyto(lab, gt_as, casting="unsafe")  # labels are 0 / 1 after class 1
            else:
                # labels so far are all < c, so "label = c where x won" is a maximum, not a
                # select
                np.multiply(gt_as, ctype(c), out=step)
                np.maximum(lab, step, out=lab)
        prev = best
    return best, second


def _mark_nonfinite(lab: np.ndarray, values: np.ndarray, bad: np.ndarray, value: int) -> int:
    """Label voxels whose ``values`` are NaN or +-inf; return how many."""
    np.isfinite(values, out=bad)
    if bad.all():  # the common case: one cheap pass, nothing to mark
        return 0
    np.logical_not(bad, out=bad)
    return _mark(lab, bad, value)


def _mark(lab: np.ndarray, where: np.ndarray, value: int) -> int:
    """Set ``lab[where] = value``; return how many (rare, so the masked store is cheap)."""
    n = int(np.count_nonzero(where))
    if n:
        lab[where] = value
    return n


def _argmax_wide(block: np.ndarray, lab: np.ndarray, ws: _Workspace) -> np.ndarray:
    """Arg-max into ``lab`` and the maximum (float32) of a wide channels-last block.

    One contiguous pass over each voxel's class values (``np.argmax`` along the innermost
    axis), then a gather of the winning value. ``np.argmax`` gives ties to the lowest class
    and returns the first NaN's index, so the gathered maximum is NaN / +inf / -inf exactly
    where the running maximum would be, and the same voxels become INVALID.
    """
    xl = np.moveaxis(block, 0, -1)
    idx = np.argmax(xl, axis=-1)
    np.copyto(lab, idx, casting="unsafe")
    best = ws.get("best", lab.shape, np.float32)
    np.copyto(best, np.take_along_axis(xl, idx[..., None], axis=-1)[..., 0], casting="unsafe")
    return best


def _class_sum_wide(
    block: np.ndarray, best: np.ndarray, logits: bool, out: np.ndarray, ws: _Workspace
) -> np.ndarray:
    """``sum_c exp(x_c - best)`` (logits) or ``sum_c x_c`` of a wide channels-last block."""
    xl = np.moveaxis(block, 0, -1)
    d = ws.get("wide_d", xl.shape, np.float32)
    if logits:
        np.subtract(xl, best[..., None], out=d, casting="unsafe")
        np.exp(d, out=d)
    else:
        np.copyto(d, xl, casting="unsafe")
    np.sum(d, axis=-1, out=out)
    return out


def _labels_into(
    block: np.ndarray,
    kind: PredictionKind,
    n_classes: int,
    settings: MaskSettings,
    vap: bool,
    lab: np.ndarray,
    ws: _Workspace,
) -> tuple[int, int]:
    """Fill ``lab`` from ``block``; return ``(n_invalid, n_uncertain)``."""
    uncertain, invalid = reserved_labels(lab.dtype)
    shape = lab.shape
    if kind is PredictionKind.LABELS:
        np.copyto(lab, block, casting="unsafe")
        return 0, 0
    _check_block(block, kind)
    mc = settings.min_confidence
    bad = ws.get("bad", shape, np.bool_)
    n_unc = 0
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if kind is PredictionKind.SIGMOID or kind is PredictionKind.MULTILABEL:
            if kind is PredictionKind.SIGMOID:
                best = ws.get("best", shape, np.float32)
                np.copyto(best, block[0], casting="unsafe")
                lab.fill(0)
            else:
                best, _ = _running_max(block, lab, ws)
                np.add(lab, lab.dtype.type(1), out=lab)  # channel k -> class k + 1
            t = _prob32(settings.threshold) if vap else _logit32(settings.threshold)
            fg = ws.get("gt", shape, np.bool_)
            np.greater_equal(best, t, out=fg)
            if kind is PredictionKind.SIGMOID:
                np.copyto(lab, fg, casting="unsafe")
            else:
                np.multiply(lab, fg, out=lab)
            if mc is not None and mc > 0.5:
                # confidence max(p, 1 - p) < mc  <=>  |p - 1/2| < mc - 1/2  <=>  |x| < logit(mc)
                dist = ws.get("dist", shape, np.float32)
                if vap:
                    np.subtract(best, np.float32(0.5), out=dist)
                    np.abs(dist, out=dist)
                    lim = np.float32(mc - 0.5)
                else:
                    np.abs(best, out=dist)
                    lim = (
                        np.float32(math.log(mc) - math.log1p(-mc)) if mc < 1 else np.float32(np.inf)
                    )
                np.less(dist, lim, out=bad)
                n_unc = _mark(lab, bad, uncertain)
            # NaN / inf compare False above, so no invalid voxel was marked uncertain
            if vap:
                return _mark_nonfinite(lab, best, bad, invalid), n_unc
            np.isnan(best, out=bad)
            return _mark(lab, bad, invalid), n_unc

        wide = _wide_channels_last(block)
        best = _argmax_wide(block, lab, ws) if wide else _running_max(block, lab, ws)[0]
        if mc is not None and mc > 0.0 and wide:
            s = _class_sum_wide(
                block, best, kind is PredictionKind.LOGITS, ws.get("sum", shape, np.float32), ws
            )
            if kind is PredictionKind.LOGITS:
                np.greater(s, np.float32(1.0 / mc), out=bad)
            else:
                np.multiply(s, np.float32(mc), out=s)
                np.less(best, s, out=bad)
            n_unc = _mark(lab, bad, uncertain)
        elif mc is not None and mc > 0.0:
            s = ws.get("sum", shape, np.float32)
            if kind is PredictionKind.LOGITS:
                # top probability 1/s < mc  <=>  s > 1/mc
                d = ws.get("d", shape, np.float32)
                s.fill(0)
                for c in range(block.shape[0]):
                    np.subtract(_plane(block, c, ws), best, out=d)
                    np.exp(d, out=d)
                    np.add(s, d, out=s)
                np.greater(s, np.float32(1.0 / mc), out=bad)
            else:
                # top probability best/s < mc  <=>  best < mc * s
                np.copyto(s, block[0], casting="unsafe")
                for c in range(1, block.shape[0]):
                    np.add(s, _plane(block, c, ws), out=s)
                np.multiply(s, np.float32(mc), out=s)
                np.less(best, s, out=bad)
            n_unc = _mark(lab, bad, uncertain)
        # NaN comparisons are False, so invalid voxels were never marked uncertain
        return _mark_nonfinite(lab, best, bad, invalid), n_unc


def labels_from_block(
    block: np.ndarray,
    kind: PredictionKind | str,
    n_classes: int,
    settings: MaskSettings,
    *,
    values_are_probabilities: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Label map of one block of a prediction.

    Parameters
    ----------
    block
        Channels-first ``(C, ...)`` class scores for ``logits`` / ``probabilities`` /
        ``sigmoid`` (C = 1) / ``multilabel``; the label map itself (any integer dtype, shape
        ``(...)``) for ``labels``. Any float or integer dtype; float32 is fastest.
    kind
        :class:`~segviewer.core.types.PredictionKind`.
    n_classes
        Number of classes including background (sigmoid: 2; multi-label: channels + 1). Sets
        the label dtype (:func:`~segviewer.core.types.label_dtype`).
    settings
        Threshold (sigmoid / multi-label, a probability) and minimum confidence.
    values_are_probabilities
        Sigmoid / multi-label: channel values are probabilities (True) or logits (False).
    out
        Optional output array ``block.shape[1:]`` (``block.shape`` for labels) of the label
        dtype.

    Returns
    -------
    numpy.ndarray
        Labels ``(...)``: ``logits`` / ``probabilities``: arg-max over C (ties to the lower
        class); ``sigmoid``: 1 where p >= threshold; ``multilabel``: 1 + the most probable
        channel among those with p >= threshold, else 0; ``labels``: the values unchanged.
        Voxels whose top probability (sigmoid / multi-label: ``max(p, 1 - p)`` of the top
        channel) is below ``settings.min_confidence`` get UNCERTAIN; invalid voxels INVALID.
    """
    k = _kind(kind)
    dt = label_dtype(n_classes)
    shape = block.shape if k is PredictionKind.LABELS else block.shape[1:]
    if out is None:
        out = np.empty(shape, dtype=dt)
    elif out.shape != shape or out.dtype != dt:
        raise SegviewerError(f"internal: out must be {dt} {shape}, got {out.dtype} {out.shape}")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        _labels_block(block, k, n_classes, settings, values_are_probabilities, out, _Workspace())
    return out


def binary_mask_from_block(
    block: np.ndarray,
    kind: PredictionKind | str,
    class_index: int,
    settings: MaskSettings,
    *,
    values_are_probabilities: bool = False,
    labels: np.ndarray | None = None,
) -> np.ndarray:
    """Boolean mask of one class.

    For ``multilabel`` predictions the classes overlap, so class ``k`` is channel ``k - 1``
    thresholded on its own (a voxel can be in several masks); class 0 ("none") is where no
    channel reaches the threshold. For every other kind it is ``labels == class_index`` of
    :func:`labels_from_block` (pass ``labels`` if already computed).

    Parameters
    ----------
    block
        As for :func:`labels_from_block`.
    kind, settings, values_are_probabilities
        As for :func:`labels_from_block`.
    class_index
        Class (0 = background / none).
    labels
        Optional precomputed label map of ``block`` (non-multilabel kinds).

    Returns
    -------
    numpy.ndarray
        bool, ``block.shape[1:]`` (``block.shape`` for labels).
    """
    k = _kind(kind)
    if k is PredictionKind.LABELS:
        return np.equal(block, class_index)
    if k is PredictionKind.MULTILABEL:
        _check_block(block, k)
        n = block.shape[0]
        if not 0 <= class_index <= n:
            raise SegviewerError(
                f"class {class_index} does not exist: this multi-label prediction has "
                f"classes 0..{n}"
            )
        t = (
            _prob32(settings.threshold)
            if values_are_probabilities
            else _logit32(settings.threshold)
        )
        ws = _Workspace()
        with np.errstate(invalid="ignore"):
            if class_index > 0:
                return np.greater_equal(_plane(block, class_index - 1, ws), t)
            any_fg = np.zeros(block.shape[1:], dtype=bool)
            for c in range(n):
                any_fg |= _plane(block, c, ws) >= t
            return ~any_fg
    n_classes = _n_classes_of(block, k)
    if not 0 <= class_index < n_classes:
        raise SegviewerError(
            f"class {class_index} does not exist: this prediction has classes 0..{n_classes - 1}"
        )
    if labels is None:
        labels = labels_from_block(
            block, k, n_classes, settings, values_are_probabilities=values_are_probabilities
        )
    return np.equal(labels, class_index)


def _n_classes_of(block: np.ndarray, kind: PredictionKind) -> int:
    if kind is PredictionKind.SIGMOID:
        return 2
    if kind is PredictionKind.MULTILABEL:
        return int(block.shape[0]) + 1
    return int(block.shape[0])


def _sigmoid_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-x)); exp overflow (x < -88) gives inf -> 0, which is right
    np.negative(x, out=out)
    np.exp(out, out=out)
    np.add(out, np.float32(1.0), out=out)
    np.reciprocal(out, out=out)
    return out


def _binary_entropy_into(
    p: np.ndarray, out: np.ndarray, q: np.ndarray, log_q: np.ndarray, tiny: np.ndarray
) -> None:
    """``out = -(p log p + (1 - p) log(1 - p))`` with 0 log 0 = 0 (logs clamped at tiny)."""
    np.maximum(p, tiny, out=log_q)
    np.log(log_q, out=log_q)
    np.multiply(log_q, p, out=out)
    np.subtract(np.float32(1.0), p, out=q)
    np.maximum(q, tiny, out=log_q)
    np.log(log_q, out=log_q)
    np.multiply(log_q, q, out=log_q)
    np.add(out, log_q, out=out)
    np.negative(out, out=out)


def _stats_wide_into(
    block: np.ndarray,
    kind: PredictionKind,
    stat: str,
    class_index: int | None,
    normalised: bool,
    out: np.ndarray,
    ws: _Workspace,
) -> None:
    """:func:`_stats_into` for a wide channels-last block (logits / probabilities).

    Works on the ``(..., C)`` view with reductions along the innermost, contiguous class axis,
    so each voxel's class values are read once (no per-class strided gather). The formulas
    are those of :func:`_stats_into`; NaN / +inf / all -inf voxels give NaN the same way
    (``np.max`` propagates NaN, ``inf - inf`` is NaN).
    """
    xl = np.moveaxis(block, 0, -1)
    shape = out.shape
    n_ch = int(block.shape[0])
    if xl.dtype == np.float32:
        src = xl
    else:
        src = ws.get("wide_x", xl.shape, np.float32)
        np.copyto(src, xl, casting="unsafe")
    m1 = ws.get("best", shape, np.float32)
    np.max(src, axis=-1, out=m1)
    s = ws.get("sum", shape, np.float32)
    d = ws.get("wide_d", xl.shape, np.float32)
    f1 = np.float32(1.0)
    logits = kind is PredictionKind.LOGITS
    if logits:
        np.subtract(src, m1[..., None], out=d)
    if stat == "margin":
        # second largest value: the (first) top class's value replaced by -inf
        top = np.argmax(src, axis=-1)[..., None]
        w = ws.get("wide_w", xl.shape, np.float32)
        np.copyto(w, d if logits else src)
        np.put_along_axis(w, top, -np.inf, axis=-1)
        m2 = ws.get("second", shape, np.float32)
        np.max(w, axis=-1, out=m2)
        if logits:
            # p1 - p2 = (1 - exp(m2 - m1)) / s with m2 - m1 already in m2
            np.exp(d, out=d)
            np.sum(d, axis=-1, out=s)
            np.exp(m2, out=m2)
            np.subtract(f1, m2, out=m2)
        else:
            np.sum(src, axis=-1, out=s)
            np.subtract(m1, m2, out=m2)
        np.divide(m2, s, out=out)
        return
    if stat == "entropy":
        t = ws.get("t", shape, np.float32)
        if logits:
            np.maximum(d, ws.const(_EXP_FLOOR, xl.shape), out=d)
            e = ws.get("wide_w", xl.shape, np.float32)
            np.exp(d, out=e)
            np.sum(e, axis=-1, out=s)
            np.multiply(e, d, out=e)
            np.sum(e, axis=-1, out=t)
        else:
            np.sum(src, axis=-1, out=s)
            np.maximum(src, ws.const(_TINY, xl.shape), out=d)
            np.log(d, out=d)
            np.multiply(d, src, out=d)
            np.sum(d, axis=-1, out=t)
        np.divide(t, s, out=t)
        np.log(s, out=out)
        np.subtract(out, t, out=out)
        np.maximum(out, ws.const(0.0, shape), out=out)  # rounding can dip below 0
        if normalised:
            np.multiply(out, np.float32(1.0 / math.log(n_ch)), out=out)
        return
    if logits:
        np.exp(d, out=d)
        np.sum(d, axis=-1, out=s)
    else:
        np.sum(src, axis=-1, out=s)
    if stat == "confidence":
        if logits:
            np.reciprocal(s, out=out)
        else:
            np.divide(m1, s, out=out)
        return
    assert class_index is not None
    np.divide(d[..., class_index] if logits else src[..., class_index], s, out=out)


def _stats_into(
    block: np.ndarray,
    kind: PredictionKind,
    stat: str,
    class_index: int | None,
    vap: bool,
    normalised: bool,
    out: np.ndarray,
    ws: _Workspace,
) -> None:
    shape = out.shape
    n_ch = int(block.shape[0])
    f1 = np.float32(1.0)
    if (
        kind is PredictionKind.LOGITS or kind is PredictionKind.PROBABILITIES
    ) and _wide_channels_last(block):
        _stats_wide_into(block, kind, stat, class_index, normalised, out, ws)
        return
    if kind is PredictionKind.LOGITS or kind is PredictionKind.PROBABILITIES:
        m1, m2 = _running_max(block, None, ws, want_second=stat == "margin")
        if m2 is not None and n_ch == 1 and kind is PredictionKind.PROBABILITIES:
            m2.fill(0)  # one class: the "second" probability is 0, not -inf
        s = ws.get("sum", shape, np.float32)
        d = ws.get("d", shape, np.float32)
        t = ws.get("t", shape, np.float32) if stat == "entropy" else None
        if t is not None:
            t.fill(0)
        s.fill(0)
        for c in range(n_ch):
            x = _plane(block, c, ws)
            if kind is PredictionKind.LOGITS:
                np.subtract(x, m1, out=d)
                if t is not None:
                    np.maximum(d, ws.const(_EXP_FLOOR, shape), out=d)
                    e = ws.get("e", shape, np.float32)
                    np.exp(d, out=e)
                    np.add(s, e, out=s)
                    np.multiply(e, d, out=e)
                    np.add(t, e, out=t)
                else:
                    np.exp(d, out=d)
                    np.add(s, d, out=s)
            else:
                np.add(s, x, out=s)
                if t is not None:
                    np.maximum(x, ws.const(_TINY, shape), out=d)
                    np.log(d, out=d)
                    np.multiply(d, x, out=d)
                    np.add(t, d, out=t)
        if stat == "confidence":
            if kind is PredictionKind.LOGITS:
                np.reciprocal(s, out=out)
            else:
                np.divide(m1, s, out=out)
        elif stat == "margin":
            assert m2 is not None
            if kind is PredictionKind.LOGITS:
                # p1 - p2 = (1 - exp(m2 - m1)) / s
                np.subtract(m2, m1, out=d)
                np.exp(d, out=d)
                np.subtract(f1, d, out=d)
            else:
                np.subtract(m1, m2, out=d)
            np.divide(d, s, out=out)
        elif stat == "entropy":
            assert t is not None
            # H = log s - sum(e (x - m)) / s  (logits),  log s - sum(p log p) / s  (probabilities)
            np.divide(t, s, out=d)
            np.log(s, out=out)
            np.subtract(out, d, out=out)
            np.maximum(out, ws.const(0.0, shape), out=out)  # rounding can dip below 0
            if normalised:
                np.multiply(out, np.float32(1.0 / math.log(n_ch)) if n_ch > 1 else 0, out=out)
        else:
            assert class_index is not None
            x = _plane(block, class_index, ws)
            if kind is PredictionKind.LOGITS:
                np.subtract(x, m1, out=d)
                np.exp(d, out=d)
                np.divide(d, s, out=out)
            else:
                np.divide(x, s, out=out)
        return

    # sigmoid / multi-label: independent channels
    p = ws.get("p", shape, np.float32)
    tmp = ws.get("tmp", shape, np.float32)

    def prob_of(c: int, dest: np.ndarray) -> np.ndarray:
        x = _plane(block, c, ws)
        if vap:
            np.copyto(dest, x)
            return dest
        return _sigmoid_into(x, dest)

    if stat == "probability":
        assert class_index is not None
        if kind is PredictionKind.SIGMOID:
            prob_of(0, out)
            if class_index == 0:
                np.subtract(f1, out, out=out)
        elif class_index > 0:
            prob_of(class_index - 1, out)
        else:
            # "none": no channel present, channels independent
            out.fill(1.0)
            for c in range(n_ch):
                prob_of(c, p)
                np.subtract(f1, p, out=p)
                np.multiply(out, p, out=out)
        return
    if stat == "entropy":
        # sum of the channels' binary entropies (nats); normalised by C log 2
        out.fill(0)
        h = ws.get("h", shape, np.float32)
        for c in range(n_ch):
            prob_of(c, p)
            _binary_entropy_into(
                p, h, tmp, ws.get("log_q", shape, np.float32), ws.const(_TINY, shape)
            )
            np.add(out, h, out=out)
        if normalised:
            np.multiply(out, np.float32(1.0 / (n_ch * math.log(2.0))), out=out)
        return
    # confidence / margin from the top channel (and the second one for multi-label margins)
    m1, m2 = _running_max(block, None, ws, want_second=stat == "margin" and n_ch > 1)
    if vap:
        np.copyto(p, m1)
    else:
        _sigmoid_into(m1, p)
    if stat == "confidence":
        np.subtract(f1, p, out=tmp)
        np.maximum(p, tmp, out=out)
    elif m2 is None:
        # two complementary outcomes: |p - (1 - p)|
        np.multiply(p, np.float32(2.0), out=out)
        np.subtract(out, f1, out=out)
        np.abs(out, out=out)
    else:
        if vap:
            np.copyto(tmp, m2)
        else:
            _sigmoid_into(m2, tmp)
        np.subtract(p, tmp, out=out)


def _check_stat(stat: str, class_index: int | None, kind: PredictionKind, n_classes: int) -> None:
    if kind is PredictionKind.LABELS:
        raise SegviewerError(
            "a label map has no probabilities, so confidence, margin, entropy and class "
            "probabilities are not available; load the model's logits or probabilities instead"
        )
    if stat not in STATS:
        raise SegviewerError(f"unknown statistic {stat!r}; choose one of {', '.join(STATS)}")
    if stat == "probability":
        if class_index is None:
            raise SegviewerError("the 'probability' statistic needs a class index")
        if not 0 <= class_index < n_classes:
            raise SegviewerError(
                f"class {class_index} does not exist: this prediction has classes "
                f"0..{n_classes - 1}"
            )


def stats_from_block(
    block: np.ndarray,
    kind: PredictionKind | str,
    stat: str,
    *,
    class_index: int | None = None,
    values_are_probabilities: bool = False,
    normalised: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """A per-voxel statistic of one channels-first block.

    Parameters
    ----------
    block
        ``(C, ...)`` class scores (see :func:`labels_from_block`); not a label map.
    kind
        ``logits`` (softmax over C), ``probabilities`` (normalised by their sum),
        ``sigmoid`` (C = 1) or ``multilabel`` (independent sigmoid channels).
    stat
        ``"confidence"``: top class probability. ``"margin"``: top minus second probability
        (sigmoid: ``|2p - 1|``; multi-label: top minus second channel probability).
        ``"entropy"``: Shannon entropy in nats of the class distribution (multi-label: sum of
        the channels' binary entropies). ``"probability"``: probability of ``class_index``
        (sigmoid: 0 = background ``1 - p``, 1 = foreground ``p``; multi-label: class k is
        channel k - 1, class 0 = ``prod(1 - p_c)``).
    class_index
        Class for ``"probability"``.
    values_are_probabilities
        Sigmoid / multi-label: channel values are probabilities rather than logits.
    normalised
        Entropy divided by its maximum (``log C``; multi-label ``C log 2``), in [0, 1].
    out
        Optional float32 output ``block.shape[1:]``.

    Returns
    -------
    numpy.ndarray
        float32 ``block.shape[1:]``; NaN at invalid voxels.
    """
    k = _kind(kind)
    _check_stat(stat, class_index, k, _n_classes_of(block, k) if block.ndim >= 2 else 0)
    _check_block(block, k)
    if out is None:
        out = np.empty(block.shape[1:], dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ws = _Workspace()
        for sel, osel in _block_pieces(block, 1):
            _stats_into(
                block[sel],
                k,
                stat,
                class_index,
                values_are_probabilities,
                normalised,
                out[osel],
                ws,
            )
    return out


def _probabilities_into(
    block: np.ndarray, kind: PredictionKind, vap: bool, out: np.ndarray, ws: _Workspace
) -> None:
    """``out`` (n_classes, ...) float32 class probabilities of a channels-first block."""
    n_ch = int(block.shape[0])
    shape = block.shape[1:]
    if kind is PredictionKind.LOGITS or kind is PredictionKind.PROBABILITIES:
        s = ws.get("sum", shape, np.float32)
        s.fill(0)
        if kind is PredictionKind.LOGITS:
            m1, _ = _running_max(block, None, ws)
            for c in range(n_ch):
                np.subtract(_plane(block, c, ws), m1, out=out[c])
                np.exp(out[c], out=out[c])
                np.add(s, out[c], out=s)
        else:
            for c in range(n_ch):
                np.copyto(out[c], block[c], casting="unsafe")
                np.add(s, out[c], out=s)
        np.reciprocal(s, out=s)
        for c in range(n_ch):
            np.multiply(out[c], s, out=out[c])
        return
    if kind is PredictionKind.SIGMOID:
        x = _plane(block, 0, ws)
        if vap:
            np.copyto(out[1], x)
        else:
            _sigmoid_into(x, out[1])
        np.subtract(np.float32(1.0), out[1], out=out[0])
        return
    out[0].fill(1.0)
    for c in range(n_ch):
        x = _plane(block, c, ws)
        if vap:
            np.copyto(out[c + 1], x)
        else:
            _sigmoid_into(x, out[c + 1])
        np.subtract(np.float32(1.0), out[c + 1], out=ws.get("q", shape, np.float32))
        np.multiply(out[0], ws.get("q", shape, np.float32), out=out[0])


def probabilities_from_block(
    block: np.ndarray,
    kind: PredictionKind | str,
    *,
    values_are_probabilities: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Class probabilities of one channels-first block.

    Parameters
    ----------
    block
        ``(C, ...)`` class scores; not a label map.
    kind, values_are_probabilities
        As for :func:`stats_from_block`.
    out
        Optional float32 output ``(n_classes, ...)``.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_classes, ...)``: softmax for logits, normalised for probabilities,
        ``(1 - p, p)`` for sigmoid, ``(prod(1 - p_c), p_1, ..., p_C)`` for multi-label.
    """
    k = _kind(kind)
    if k is PredictionKind.LABELS:
        _check_stat("probability", 0, k, 0)
    _check_block(block, k)
    shape = (_n_classes_of(block, k), *block.shape[1:])
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        ws = _Workspace()
        for sel, _osel in _block_pieces(block, 1):
            _probabilities_into(block[sel], k, values_are_probabilities, out[sel], ws)
    return out


# --- slices ----------------------------------------------------------------------------------


def _shape3(pred: Prediction) -> tuple[int, int, int]:
    # from the image-axis view, so layouts with inserted length-1 axes work too
    s = pred.channels_first().shape[-3:]
    return int(s[0]), int(s[1]), int(s[2])


def _slice_block(pred: Prediction, axes: DisplayAxes, index: int) -> np.ndarray:
    """One slice of the prediction in image-axis order (no transpose, no flip).

    Computing on this view keeps the raw memory order (contiguous class planes stay
    contiguous); :func:`_orient` then puts the small 2-D result in screen order.
    """
    cf = pred.channels_first()
    lead = 0 if pred.kind is PredictionKind.LABELS else 1
    n = cf.shape[lead + axes.slice_axis]
    if not 0 <= index < n:
        raise SegviewerError(
            f"slice {index} is outside the {axes.view} view's range 0..{n - 1}; "
            f"pick a slice between 0 and {n - 1}"
        )
    idx: list[int | slice] = [slice(None)] * (lead + 3)
    idx[lead + axes.slice_axis] = int(index)
    return cf[tuple(idx)]


def _orient(image_order: np.ndarray, axes: DisplayAxes) -> np.ndarray:
    """A 2-D slice in image-axis order -> C-contiguous screen order (rows, cols)."""
    view = take_slice(np.expand_dims(image_order, axes.slice_axis), axes, 0)
    return np.ascontiguousarray(view)


def slice_labels(
    pred: Prediction, axes: DisplayAxes, index: int, settings: MaskSettings
) -> np.ndarray:
    """Label map of one displayed slice.

    Parameters
    ----------
    pred
        The prediction (any layout, possibly memory-mapped: only the slice is read, each
        voxel's class values once).
    axes
        View from :func:`~segviewer.core.orientation.display_axes`.
    index
        Slice index along ``axes.slice_axis``.
    settings
        Threshold / minimum confidence.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` C-contiguous labels in screen order, dtype
        ``label_dtype(pred.n_classes)``.
    """
    block = _slice_block(pred, axes, index)
    lab = labels_from_block(
        block,
        pred.kind,
        pred.n_classes,
        settings,
        values_are_probabilities=pred.values_are_probabilities,
    )
    return _orient(lab, axes)


def slice_stat(
    pred: Prediction,
    axes: DisplayAxes,
    index: int,
    stat: str,
    class_index: int | None = None,
    *,
    normalised: bool = False,
) -> np.ndarray:
    """A statistic (see :func:`stats_from_block`) of one displayed slice.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` C-contiguous float32 in screen order.
    """
    _check_stat(stat, class_index, pred.kind, pred.n_classes)
    block = _slice_block(pred, axes, index)
    values = stats_from_block(
        block,
        pred.kind,
        stat,
        class_index=class_index,
        values_are_probabilities=pred.values_are_probabilities,
        normalised=normalised,
    )
    return _orient(values, axes)


def slice_probabilities(pred: Prediction, ijk: Sequence[int]) -> np.ndarray:
    """Class probabilities at one voxel (the hover readout).

    Parameters
    ----------
    pred
        The prediction.
    ijk
        Voxel index along image axes 0, 1, 2.

    Returns
    -------
    numpy.ndarray
        ``(n_classes,)`` float32 (computed in float64): softmax of logits, normalised
        probabilities, ``(1 - p, p)`` for sigmoid, ``(prod(1 - p_c), p_1..p_C)`` for
        multi-label, one-hot for a label map (zeros if the label is outside the classes).
        All NaN at an invalid voxel.
    """
    shape = _shape3(pred)
    if len(ijk) != 3 or not all(0 <= int(ijk[a]) < shape[a] for a in range(3)):
        raise SegviewerError(f"voxel {tuple(ijk)} is outside the prediction of shape {shape}")
    i, j, k = (int(v) for v in ijk)
    cf = pred.channels_first()
    n = pred.n_classes
    if pred.kind is PredictionKind.LABELS:
        onehot = np.zeros(n, dtype=np.float32)
        lab = int(cf[i, j, k])
        if 0 <= lab < n:
            onehot[lab] = 1.0
        return onehot
    x = np.asarray(cf[:, i, j, k], dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if pred.kind is PredictionKind.LOGITS:
            m = np.max(x)
            if not np.isfinite(m) or np.isnan(x).any():
                return np.full(x.shape, np.nan, dtype=np.float32)
            e = np.exp(x - m)
            return (e / e.sum()).astype(np.float32)
        if pred.kind is PredictionKind.PROBABILITIES:
            return (x / x.sum()).astype(np.float32)
        p = x if pred.values_are_probabilities else 1.0 / (1.0 + np.exp(-x))
        if pred.kind is PredictionKind.SIGMOID:
            return np.array([1.0 - p[0], p[0]], dtype=np.float32)
        return np.concatenate([[np.prod(1.0 - p)], p]).astype(np.float32)


# --- whole volume, streamed ------------------------------------------------------------------


def chunk_plan(
    pred: Prediction, block_voxels: int | None = None
) -> tuple[int, list[tuple[int, int]]]:
    """How the whole-volume functions walk through a prediction.

    Returns
    -------
    (axis, ranges)
        The image axis whose raw axis is outermost in memory (largest stride; axes of size 1
        are skipped), and ``[(start, stop), ...]`` ranges along it covering the volume, each
        about ``block_voxels`` voxels (default ``_CHUNK_VOXELS``; at least one slice). Each range is one task of the
        thread pool and one progress report; inside it the work runs in cache-sized pieces.
    """
    cf = pred.channels_first()
    lead = cf.ndim - 3
    shape = tuple(int(n) for n in cf.shape[lead:])
    # strides of the image-axis view: the raw axis behind each image axis, inserted axes too
    strides = [abs(int(st)) for st in cf.strides[lead:]]
    order = sorted(range(3), key=lambda a: (shape[a] <= 1, -strides[a], a))
    axis = order[0]
    per_slice = max(1, int(np.prod(shape)) // max(1, shape[axis]))
    step = max(1, (_CHUNK_VOXELS if block_voxels is None else block_voxels) // per_slice)
    ranges = [(s, min(s + step, shape[axis])) for s in range(0, shape[axis], step)]
    return axis, ranges


# Up to this many classes, counting with one compare per class beats np.bincount (which
# converts the labels to 8-byte integers first: about 6x slower for 4 classes).
_COMPARE_COUNT_MAX = 24


def _count_into(counts: np.ndarray, lab: np.ndarray, ws: _Workspace, reserved: int | None) -> None:
    """Add per-class voxel counts of ``lab`` to ``counts``.

    ``reserved`` is the number of UNCERTAIN / INVALID voxels when every other voxel holds a
    class (channel kinds): class 0 is then the remainder and needs no pass of its own. None
    for label maps, which may hold values beyond the class table.
    """
    n = counts.shape[0]
    if n <= _COMPARE_COUNT_MAX:
        eq = ws.get("eq", lab.shape, np.bool_)
        first = 1 if reserved is not None else 0
        others = 0
        for k in range(first, n):
            np.equal(lab, k, out=eq)
            c = int(np.count_nonzero(eq))
            counts[k] += c
            others += c
        if reserved is not None:
            counts[0] += lab.size - others - reserved
    else:
        counts += np.bincount(lab.ravel(), minlength=n)[:n]


def _sel(axis: int, start: int, stop: int, lead: int) -> tuple[slice, ...]:
    idx = [slice(None)] * (lead + 3)
    idx[lead + axis] = slice(start, stop)
    return tuple(idx)


def default_workers() -> int:
    """Threads the whole-volume functions use by default: the processors this process may
    run on (numpy releases the GIL inside its kernels, so chunks run truly in parallel)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# One thread pool per size, shared by every whole-volume job of the process: labels,
# statistics and a comparison running at once share the processors instead of each starting
# its own threads (oversubscribed cores make the GIL hand-over, and the window, slower).
_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(n_workers: int) -> ThreadPoolExecutor:
    with _POOLS_LOCK:
        pool = _POOLS.get(n_workers)
        if pool is None:
            pool = _POOLS[n_workers] = ThreadPoolExecutor(
                max_workers=n_workers, thread_name_prefix=f"segviewer-volume{n_workers}"
            )
        return pool


def _run_chunks(
    n_chunks: int, work: Callable[[int], None], workers: int | None
) -> Generator[int, None, None]:
    """Run ``work(i)`` for chunks ``0..n_chunks-1`` on a shared thread pool, yielding each
    ``i`` in order once it is done.

    At most ``2 * workers`` chunks of this job are queued, so closing the generator (a
    cancelled job) stops the work within a chunk or two; its queued chunks are cancelled and
    its running ones waited for before the generator exits, so no thread writes into the
    outputs afterwards. An exception in a chunk is raised here. ``workers`` 1 (or one chunk)
    runs everything in this thread.
    """
    n_workers = default_workers() if workers is None else int(workers)
    if n_workers < 1:
        raise SegviewerError(f"workers must be at least 1, got {workers}")
    if n_workers == 1 or n_chunks <= 1:
        for i in range(n_chunks):
            work(i)
            yield i
        return
    pool = _pool(n_workers)
    pending: deque[tuple[int, Future[None]]] = deque()
    nxt = 0
    try:
        while nxt < n_chunks and len(pending) < 2 * n_workers:
            pending.append((nxt, pool.submit(work, nxt)))
            nxt += 1
        while pending:
            i, fut = pending.popleft()
            fut.result()
            if nxt < n_chunks:
                pending.append((nxt, pool.submit(work, nxt)))
                nxt += 1
            yield i
    finally:
        for _, fut in pending:
            fut.cancel()
        futures_wait([fut for _, fut in pending])


def _thread_workspace(local: threading.local) -> _Workspace:
    ws: _Workspace | None = getattr(local, "ws", None)
    if ws is None:
        ws = local.ws = _Workspace()
    return ws


def _labels_block(
    block: np.ndarray,
    kind: PredictionKind,
    n_classes: int,
    settings: MaskSettings,
    vap: bool,
    lab: np.ndarray,
    ws: _Workspace,
    counts: np.ndarray | None = None,
) -> tuple[int, int, bool]:
    """:func:`_labels_into` over the cache-sized pieces of ``block``, or the compiled
    single-pass kernel (:mod:`segviewer.core.kernels`) over the whole block where it applies.

    ``counts`` (int64 per class), when given, gets the voxels of each class added if the
    kernel counted them; the third value returned says whether it did.
    """
    mc = settings.min_confidence
    if (
        (kind is PredictionKind.LOGITS or kind is PredictionKind.PROBABILITIES)
        and (mc is None or mc <= 0.0)
        and lab.ndim >= 1
    ):
        invalid = reserved_labels(lab.dtype)[1]
        n_bad = kernels.argmax_into(block, lab, invalid, counts)
        if n_bad is not None:
            return n_bad, 0, counts is not None
    lead = 0 if kind is PredictionKind.LABELS else 1
    n_inv = n_unc = 0
    for sel, osel in _block_pieces(block, lead, labels=True):
        ni, nu = _labels_into(block[sel], kind, n_classes, settings, vap, lab[osel], ws)
        n_inv += ni
        n_unc += nu
    return n_inv, n_unc, False


def iter_labels(
    pred: Prediction, settings: MaskSettings, *, workers: int | None = None
) -> Generator[Progress, None, LabelResult]:
    """Label map of the whole volume, streamed chunk by chunk on a thread pool.

    Parameters
    ----------
    pred
        The prediction (possibly memory-mapped; read nearly sequentially along its outermost
        spatial axis, a few chunks at a time).
    settings
        Threshold / minimum confidence.
    workers
        Threads (default :func:`default_workers`); 1 computes in the calling thread. The
        result does not depend on it.

    Yields
    ------
    Progress
        After each chunk (in order), so a worker can cancel between chunks.

    Returns
    -------
    LabelResult
        ``labels (a0, a1, a2)`` in image-axis order, per-class counts, invalid / uncertain
        counts and up to 10 invalid voxel examples.
    """
    kind = pred.kind
    n = pred.n_classes
    dt = label_dtype(n)
    invalid = reserved_labels(dt)[1]
    shape = _shape3(pred)
    labels = np.empty(shape, dtype=dt)
    cf = pred.channels_first()
    lead = 0 if kind is PredictionKind.LABELS else 1
    axis, ranges = chunk_plan(pred)
    vap = pred.values_are_probabilities
    local = threading.local()
    found: list[tuple[int, int, np.ndarray, list[tuple[int, int, int]]]] = [
        (0, 0, np.zeros(0, np.int64), [])
    ] * len(ranges)

    def work(i: int) -> None:
        a, b = ranges[i]
        ws = _thread_workspace(local)
        block = cf[_sel(axis, a, b, lead)]
        dest = labels[_sel(axis, a, b, 0)]
        lab = dest if dest.flags.c_contiguous else ws.get("out", dest.shape, dt)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            counts = np.zeros(n, dtype=np.int64)
            ni, nu, counted = _labels_block(block, kind, n, settings, vap, lab, ws, counts)
        examples: list[tuple[int, int, int]] = []
        if ni:
            for v in np.argwhere(lab == invalid)[:10]:
                ijk = [int(t) for t in v]
                ijk[axis] += a
                examples.append((ijk[0], ijk[1], ijk[2]))
        if not counted:
            _count_into(counts, lab, ws, None if kind is PredictionKind.LABELS else ni + nu)
        if lab is not dest:
            np.copyto(dest, lab)
        found[i] = (ni, nu, counts, examples)

    for i in _run_chunks(len(ranges), work, workers):
        b = ranges[i][1]
        yield Progress(i + 1, len(ranges), f"computing labels ({b}/{shape[axis]} slices)")
    counts = np.zeros(n, dtype=np.int64)
    n_inv = n_unc = 0
    examples: list[tuple[int, int, int]] = []
    for ni, nu, c, ex in found:
        n_inv += ni
        n_unc += nu
        counts += c
        examples.extend(ex[: 10 - len(examples)])
    return LabelResult(labels, counts, n_inv, n_unc, examples)


def prepare_labels_kernel(pred: Prediction) -> bool:
    """Make the compiled labels kernel for ``pred`` ready (:func:`core.kernels.warm_up`),
    so that later label maps of it (and of predictions like it) take one pass.

    Costs 0.3-1.5 s of one core the first time in a process (importing numba, loading or
    compiling the kernel), so it is worth it where labels are made again and again: the
    window calls it in the background after the first label map. Returns whether the kernel
    is ready; False (numpy is used) for kinds, dtypes, layouts or class counts it does not
    cover, or without numba.
    """
    if pred.kind not in (PredictionKind.LOGITS, PredictionKind.PROBABILITIES):
        return False
    axis, ranges = chunk_plan(pred)
    if not ranges:
        return False
    return kernels.warm_up(pred.channels_first()[_sel(axis, 0, 1, 1)])


def iter_probabilities(pred: Prediction) -> Generator[Progress, None, np.ndarray]:
    """Class probabilities of the whole volume (for export), streamed chunk by chunk.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_classes, a0, a1, a2)``; see :func:`probabilities_from_block`.
    """
    if pred.kind is PredictionKind.LABELS:
        _check_stat("probability", 0, pred.kind, pred.n_classes)
    cf = pred.channels_first()
    shape = _shape3(pred)
    n_out = _n_classes_of(cf, pred.kind)
    out = np.empty((n_out, *shape), dtype=np.float32)
    axis, ranges = chunk_plan(pred)
    ws = _Workspace()
    for done, (a, b) in enumerate(ranges, start=1):
        block = cf[_sel(axis, a, b, 1)]
        dest = out[_sel(axis, a, b, 1)]
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            # cache-sized pieces: a chunk of 114 channels-last classes is 120 MB, and each
            # class plane is gathered from it
            for sel, _osel in _block_pieces(block, 1):
                _probabilities_into(
                    block[sel], pred.kind, pred.values_are_probabilities, dest[sel], ws
                )
        yield Progress(done, len(ranges), f"computing probabilities ({b}/{shape[axis]} slices)")
    return out


def iter_stat(
    pred: Prediction,
    stat: str,
    class_index: int | None = None,
    *,
    normalised: bool = False,
    workers: int | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """A statistic (see :func:`stats_from_block`) of the whole volume, streamed on a thread
    pool like :func:`iter_labels` (``workers`` likewise).

    Returns
    -------
    numpy.ndarray
        float32 ``(a0, a1, a2)``, NaN at invalid voxels.
    """
    _check_stat(stat, class_index, pred.kind, pred.n_classes)
    cf = pred.channels_first()
    _check_block(cf, pred.kind)
    shape = _shape3(pred)
    out = np.empty(shape, dtype=np.float32)
    axis, ranges = chunk_plan(pred)
    local = threading.local()

    def work(i: int) -> None:
        a, b = ranges[i]
        ws = _thread_workspace(local)
        block = cf[_sel(axis, a, b, 1)]
        dest = out[_sel(axis, a, b, 0)]
        res = dest if dest.flags.c_contiguous else ws.get("res", dest.shape, np.float32)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for sel, osel in _block_pieces(block, 1):
                _stats_into(
                    block[sel],
                    pred.kind,
                    stat,
                    class_index,
                    pred.values_are_probabilities,
                    normalised,
                    res[osel],
                    ws,
                )
        if res is not dest:
            np.copyto(dest, res)

    for i in _run_chunks(len(ranges), work, workers):
        b = ranges[i][1]
        yield Progress(i + 1, len(ranges), f"computing {stat} ({b}/{shape[axis]} slices)")
    return out
