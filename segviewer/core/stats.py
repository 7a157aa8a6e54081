"""Counts, volumes, agreement between label maps, and reports of non-finite values.

All functions work chunk by chunk along the first axis, so they stay cheap on volumes of a
gigabyte: ``np.bincount`` works in 8-byte integers, which on a whole uint8 volume would be an
8x temporary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segviewer.core.types import SegviewerError

__all__ = [
    "class_counts",
    "class_volumes_mm3",
    "nonfinite_report",
    "dice",
    "dice_per_class",
    "confusion_matrix",
    "joint_counts",
]

# Elements per chunk of the chunked loops (a few MB of temporaries at most).
_CHUNK = 1 << 20


def _chunks(n_first: int, per_first: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK // max(1, per_first))
    return [(s, min(s + step, n_first)) for s in range(0, n_first, step)]


def _flat_chunks(a: np.ndarray) -> list[np.ndarray]:
    """Pieces of ``a`` (any shape) along its first axis, each raveled."""
    if a.ndim == 0:
        return [a.reshape(1)]
    per = int(np.prod(a.shape[1:])) if a.ndim > 1 else 1
    return [a[s:e].reshape(-1) for s, e in _chunks(a.shape[0], per)]


def _check_labels(labels: np.ndarray, what: str = "labels") -> None:
    if labels.dtype.kind not in "ui":
        raise SegviewerError(f"{what} must be an integer label map, got dtype {labels.dtype}")


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Voxels per class.

    Parameters
    ----------
    labels
        Label map of any shape and integer dtype.
    n_classes
        Number of classes; values ``>= n_classes`` (the reserved UNCERTAIN / INVALID labels,
        labels beyond the class table) and negative values are not counted.

    Returns
    -------
    numpy.ndarray
        ``(n_classes,)`` int64.
    """
    _check_labels(labels)
    if n_classes < 1:
        raise SegviewerError(f"n_classes must be at least 1, got {n_classes}")
    counts = np.zeros(n_classes, dtype=np.int64)
    for c in _flat_chunks(labels):
        if labels.dtype.kind == "i" and c.size and int(c.min()) < 0:
            c = c[c >= 0]
        counts += np.bincount(c, minlength=n_classes)[:n_classes]
    return counts


def class_volumes_mm3(counts: np.ndarray | Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Physical volume per class.

    Parameters
    ----------
    counts
        ``(n,)`` voxel counts (:func:`class_counts`).
    spacing
        Voxel size in mm along the three image axes (``Volume.spacing``).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 mm³ (divide by 1000 for millilitres).
    """
    sp = np.asarray(spacing, dtype=np.float64)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise SegviewerError(
            f"voxel spacing must be three positive sizes in mm, got {tuple(spacing)}"
        )
    return np.asarray(counts, dtype=np.float64) * float(np.prod(sp))


def nonfinite_report(
    block: np.ndarray, max_examples: int = 10
) -> tuple[int, list[tuple[int, ...]]]:
    """Count NaN / ±inf values and give a few of their indices.

    Parameters
    ----------
    block
        Any array (e.g. raw logits as read, any layout); integer arrays have none.
    max_examples
        How many indices to return at most.

    Returns
    -------
    (count, examples)
        Number of non-finite elements and the first ``max_examples`` of their indices in
        ``block``'s own axis order (C order).
    """
    if block.dtype.kind not in "fc":
        return 0, []
    count = 0
    examples: list[tuple[int, ...]] = []
    if block.ndim == 0:
        bad = not np.isfinite(block)
        return int(bad), [()] if bad and max_examples > 0 else []
    per = int(np.prod(block.shape[1:])) if block.ndim > 1 else 1
    for s, e in _chunks(block.shape[0], per):
        bad = ~np.isfinite(block[s:e])
        n = int(np.count_nonzero(bad))
        if n:
            count += n
            if len(examples) < max_examples:
                for idx in np.argwhere(bad)[: max_examples - len(examples)]:
                    t = [int(v) for v in idx]
                    t[0] += s
                    examples.append(tuple(t))
    return count, examples


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap ``2 |A ∩ B| / (|A| + |B|)`` of two binary masks.

    Parameters
    ----------
    a, b
        Boolean (or 0/1) masks of the same shape.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both masks are empty (they agree perfectly).
    """
    if a.shape != b.shape:
        raise SegviewerError(f"cannot compare masks of shapes {a.shape} and {b.shape}")
    inter = na = nb = 0
    for ca, cb in zip(_flat_chunks(a), _flat_chunks(b), strict=True):
        ma = ca.astype(bool, copy=False)
        mb = cb.astype(bool, copy=False)
        inter += int(np.count_nonzero(ma & mb))
        na += int(np.count_nonzero(ma))
        nb += int(np.count_nonzero(mb))
    if na + nb == 0:
        return 1.0
    return 2.0 * inter / (na + nb)


def _outside_to_n(chunk: np.ndarray, n: int) -> np.ndarray:
    """Chunk as intp with every value outside ``0..n-1`` replaced by ``n`` (branch-free for
    unsigned labels: a minimum, no boolean indexing)."""
    if chunk.dtype.kind == "u":
        return np.minimum(chunk, n, dtype=np.intp)
    out = chunk.astype(np.intp)
    np.putmask(out, (out < 0) | (out > n), n)
    return out


def joint_counts(labels_a: np.ndarray, labels_b: np.ndarray, n: int) -> np.ndarray:
    """Voxel counts of (label in A, label in B) pairs, with one extra row and column for
    "no class".

    Parameters
    ----------
    labels_a, labels_b
        Integer label maps of the same shape.
    n
        Number of classes.

    Returns
    -------
    numpy.ndarray
        ``(n + 1, n + 1)`` int64, rows = label in A, columns = label in B; row / column ``n``
        counts the voxels whose label is outside ``0..n-1`` (reserved UNCERTAIN / INVALID,
        negative, beyond the table). ``[:n, :n]`` is :func:`confusion_matrix`.
    """
    _check_labels(labels_a, "the first label map")
    _check_labels(labels_b, "the second label map")
    if labels_a.shape != labels_b.shape:
        raise SegviewerError(
            f"cannot compare label maps of shapes {labels_a.shape} and {labels_b.shape}; "
            "both must be on the same image grid"
        )
    if n < 1:
        raise SegviewerError(f"n must be at least 1, got {n}")
    m = n + 1
    jc = np.zeros(m * m, dtype=np.int64)
    for ca, cb in zip(_flat_chunks(labels_a), _flat_chunks(labels_b), strict=True):
        code = _outside_to_n(ca, n)
        code *= m
        code += _outside_to_n(cb, n)
        jc += np.bincount(code, minlength=m * m)
    return jc.reshape(m, m)


def confusion_matrix(labels_a: np.ndarray, labels_b: np.ndarray, n: int) -> np.ndarray:
    """Voxel counts of (class in A, class in B) pairs.

    Parameters
    ----------
    labels_a, labels_b
        Integer label maps of the same shape (e.g. two models, or a model and a reference).
    n
        Number of classes; voxels where either label is outside ``0..n-1`` (reserved
        UNCERTAIN / INVALID labels) are left out.

    Returns
    -------
    numpy.ndarray
        ``(n, n)`` int64, rows = class in A, columns = class in B.
    """
    return np.ascontiguousarray(joint_counts(labels_a, labels_b, n)[:n, :n])


def dice_per_class(labels_a: np.ndarray, labels_b: np.ndarray, n: int) -> np.ndarray:
    """Dice overlap of each class between two label maps (from :func:`confusion_matrix`).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64; 1.0 for a class absent from both maps.
    """
    cm = confusion_matrix(labels_a, labels_b, n)
    inter = np.diag(cm).astype(np.float64)
    tot = cm.sum(axis=1) + cm.sum(axis=0)
    out = np.ones(n, dtype=np.float64)
    nz = tot > 0
    out[nz] = 2.0 * inter[nz] / tot[nz]
    return out
