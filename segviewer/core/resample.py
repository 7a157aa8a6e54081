"""Putting a prediction onto the image grid: in world space, slab by slab.

Rules
-----
* **World space.** When both the image and the prediction carry geometry (NIfTI sform/qform,
  NRRD space directions and origin, DICOM position and orientation), each image voxel centre
  is mapped through the image's affine to RAS+ mm and back through the inverse of the
  prediction's affine: ``M = inv(A_prediction) @ A_image`` (:func:`world_matrix`). Different
  origins, spacings, axis orders and flips are all handled by ``M``.
* **By shape.** When one of them has no geometry (``.npy``, PNG, TIFF, a header without
  sform/qform), the grids are stretched onto each other so that their outer voxel corners
  coincide (:func:`shape_matrix`), and the record says so.
* **Method.** Label maps and references: nearest neighbour (a label is never averaged).
  Logits and probabilities: linear interpolation of each class channel separately; the argmax
  (:mod:`segviewer.core.masks`) is taken afterwards on the image grid, so class *indices* are
  never interpolated. Probabilities stay probabilities (a convex combination sums to 1).
* **Field of view.** An image voxel whose centre maps within the prediction's outer voxel
  faces (``-0.5 .. n - 0.5`` along every axis) is covered; at the faces the nearest edge
  voxel is used. Uncovered voxels get the background fill (:func:`background_fill`: label 0,
  probability 1 for class 0, a very negative logit for the other classes). The share of the
  image covered and the share of the prediction falling outside the image are reported; grids
  that do not overlap at all are refused.
* **Memory.** The output is filled one slab of image axis 0 at a time; for each slab only the
  bounding box of the prediction it needs is read (one class at a time, as float32), so a
  memory-mapped prediction is never loaded whole and the working memory stays near
  ``max_bytes`` whatever the file's size. The caller provides the output array (it may be a
  memory map on a temporary file).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from typing import Any

import numpy as np

from segviewer.core.types import PredictionKind, Progress, Resampling, SegviewerError

__all__ = [
    "world_matrix",
    "shape_matrix",
    "background_fill",
    "coverage_outside",
    "iter_resample",
    "same_grid",
    "record",
]

#: A logit that softmax turns into probability ~0 next to a logit of 0 (exp(-100) ~ 4e-44).
_LOW_LOGIT = -100.0
_DEFAULT_BYTES = 32 * 1024**2


def same_grid(
    shape_a: Sequence[int], affine_a: np.ndarray, shape_b: Sequence[int], affine_b: np.ndarray
) -> bool:
    """Whether two grids are the same (equal shapes, affines within 1e-3 mm / 1e-4)."""
    return tuple(int(s) for s in shape_a) == tuple(int(s) for s in shape_b) and bool(
        np.allclose(affine_a, affine_b, atol=1e-3, rtol=1e-4)
    )


def world_matrix(from_affine: np.ndarray, to_affine: np.ndarray) -> np.ndarray:
    """4x4 matrix taking an image (``to``) voxel index to the prediction (``from``) voxel index.

    Parameters
    ----------
    from_affine
        Prediction voxel index -> RAS+ mm (its spatial axes in image-axis order).
    to_affine
        Image voxel index -> RAS+ mm.
    """
    a = np.asarray(from_affine, dtype=np.float64)
    b = np.asarray(to_affine, dtype=np.float64)
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise SegviewerError(
            "the prediction's affine is singular (a zero voxel size or two equal axes); "
            "fix its header or save it on the image's grid"
        )
    return np.linalg.inv(a) @ b


def shape_matrix(from_shape: Sequence[int], to_shape: Sequence[int]) -> np.ndarray:
    """4x4 matrix stretching a grid of ``to_shape`` onto ``from_shape``, outer corners aligned.

    Image voxel ``i`` (centre at ``i + 0.5`` voxel widths from the corner) maps to prediction
    coordinate ``(i + 0.5) * n_from / n_to - 0.5``, as ``scipy.ndimage.zoom(grid_mode=True)``.
    """
    m = np.eye(4)
    for a in range(3):
        s = float(from_shape[a]) / float(to_shape[a])
        m[a, a] = s
        m[a, 3] = 0.5 * s - 0.5
    return m


def background_fill(kind: PredictionKind, n_channels: int, probabilities: bool) -> np.ndarray:
    """Per-channel value for image voxels outside the prediction: they become background.

    Label maps: 0. Probabilities: 1 for class 0, 0 for the others. Logits: 0 for class 0 and
    -100 for the others (softmax gives class 0). Sigmoid / multi-label channels: probability
    0, or logit -100.
    """
    if kind is PredictionKind.LABELS:
        return np.zeros(1)
    if kind in (PredictionKind.SIGMOID, PredictionKind.MULTILABEL):
        return np.full(n_channels, 0.0 if probabilities else _LOW_LOGIT)
    fill = (
        np.zeros(n_channels)
        if kind is PredictionKind.PROBABILITIES
        else np.full(n_channels, _LOW_LOGIT)
    )
    fill[0] = 1.0 if kind is PredictionKind.PROBABILITIES else 0.0
    return fill


def coverage_outside(
    matrix: np.ndarray, from_shape: Sequence[int], to_shape: Sequence[int], points: int = 48
) -> float:
    """Share of the prediction's voxel centres that fall outside the image grid (a sample of
    about ``points`` per axis)."""
    inv = np.linalg.inv(np.asarray(matrix, dtype=np.float64))
    axes = [
        np.linspace(0, n - 1, min(int(n), points)) if n > 1 else np.zeros(1) for n in from_shape
    ]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), axis=0).reshape(3, -1)
    to = inv[:3, :3] @ g + inv[:3, 3:4]
    inside = np.ones(g.shape[1], dtype=bool)
    for a in range(3):
        inside &= (to[a] >= -0.5) & (to[a] <= to_shape[a] - 0.5)
    return float(1.0 - inside.mean()) if inside.size else 0.0


def _slab_inside(
    m: np.ndarray, i0: int, i1: int, to_shape: Sequence[int], src: Sequence[int]
) -> np.ndarray:
    """Boolean mask (slab of image axis 0) of the voxels whose centre maps into the source."""
    i = np.arange(i0, i1, dtype=np.float64)[:, None, None]
    j = np.arange(to_shape[1], dtype=np.float64)[None, :, None]
    k = np.arange(to_shape[2], dtype=np.float64)[None, None, :]
    inside = np.ones((i1 - i0, int(to_shape[1]), int(to_shape[2])), dtype=bool)
    for a in range(3):
        c = m[a, 0] * i + m[a, 1] * j + m[a, 2] * k + m[a, 3]
        inside &= (c >= -0.5) & (c <= src[a] - 0.5)
    return inside


def _box(
    m: np.ndarray, i0: int, i1: int, to_shape: Sequence[int], src: Sequence[int]
) -> tuple[slice, slice, slice] | None:
    """Bounding box of the source voxels a slab's interpolation touches (None: outside)."""
    corners = np.array(
        [
            [a, b, c, 1.0]
            for a in (i0, i1 - 1)
            for b in (0, to_shape[1] - 1)
            for c in (0, to_shape[2] - 1)
        ]
    ).T
    pts = (m @ corners)[:3]
    out = []
    for a in range(3):
        lo = max(0, math.floor(float(pts[a].min())) - 1)
        hi = min(int(src[a]), math.floor(float(pts[a].max())) + 3)
        if hi <= lo:
            return None
        out.append(slice(lo, hi))
    return out[0], out[1], out[2]


def iter_resample(
    src: np.ndarray,
    matrix: np.ndarray,
    out: np.ndarray,
    *,
    labels: bool,
    fill: Sequence[float] | np.ndarray = (0.0,),
    max_bytes: int = _DEFAULT_BYTES,
) -> Generator[Progress, None, tuple[float, int]]:
    """Resample ``src`` into ``out`` slab by slab; yields progress, returns the coverage.

    Parameters
    ----------
    src
        Channels-first ``(C, a0, a1, a2)`` float prediction or an ``(a0, a1, a2)`` label map,
        its spatial axes in image-axis order (``Layout.apply``); may be a read-only memory map.
    matrix
        4x4 image voxel -> prediction voxel (:func:`world_matrix` or :func:`shape_matrix`).
    out
        ``(C, b0, b1, b2)`` float32 (or the label map's dtype, ``(b0, b1, b2)``) to fill; the
        image grid. May be a memory map.
    labels
        True: nearest neighbour (label maps). False: linear, one channel at a time.
    fill
        Value per channel for image voxels outside the prediction (:func:`background_fill`).
    max_bytes
        Working memory per slab (coordinates, masks and the source box of one channel).

    Returns
    -------
    (coverage, covered)
        Share of the image's voxels inside the prediction, and their number.

    Raises
    ------
    SegviewerError
        When no image voxel falls inside the prediction (the grids do not overlap).
    """
    from scipy import ndimage

    m = np.asarray(matrix, dtype=np.float64)
    lead = 0 if labels else 1
    if src.ndim != 3 + lead or out.ndim != 3 + lead:
        raise SegviewerError(
            f"internal: resampling needs {3 + lead}-D source and output, got "
            f"{src.shape} and {out.shape}"
        )
    n_ch = 1 if labels else int(src.shape[0])
    if not labels and out.shape[0] != n_ch:
        raise SegviewerError(f"internal: {n_ch} channels resampled into {out.shape[0]}")
    fills = np.broadcast_to(np.asarray(fill, dtype=np.float64), (n_ch,))
    to_shape = tuple(int(s) for s in out.shape[lead:])
    src_shape = tuple(int(s) for s in src.shape[lead:])
    total = math.prod(to_shape)
    # per image voxel of a slab: 3 coordinate temporaries (float64), mask, output (float32)
    per_row = to_shape[1] * to_shape[2] * (8 * 3 + 2 + 4)
    rows = max(1, min(to_shape[0], max_bytes // max(1, per_row)))
    n_slabs = math.ceil(to_shape[0] / rows)
    covered = 0
    order = 0 if labels else 1
    for s in range(n_slabs):
        i0, i1 = s * rows, min(to_shape[0], (s + 1) * rows)
        yield Progress(s, n_slabs, f"Resampling slab {s + 1} of {n_slabs}")
        inside = _slab_inside(m, i0, i1, to_shape, src_shape)
        n_in = int(np.count_nonzero(inside))
        covered += n_in
        box = _box(m, i0, i1, to_shape, src_shape) if n_in else None
        for c in range(n_ch):
            target = out[i0:i1] if labels else out[c, i0:i1]
            if box is None:
                target[...] = fills[c]
                continue
            block = np.asarray(src[box] if labels else src[(c, *box)])
            if not labels:
                block = block.astype(np.float32, copy=False)
            lo = np.array([box[0].start, box[1].start, box[2].start], dtype=np.float64)
            offset = m[:3, :3] @ np.array([i0, 0.0, 0.0]) + m[:3, 3] - lo
            vals = ndimage.affine_transform(
                block,
                m[:3, :3],
                offset=offset,
                output_shape=(i1 - i0, to_shape[1], to_shape[2]),
                output=block.dtype,
                order=order,
                mode="nearest",
                prefilter=False,
            )
            vals[~inside] = fills[c]
            target[...] = vals
    yield Progress(n_slabs, n_slabs, "Resampled")
    if covered == 0:
        raise SegviewerError(
            "the prediction's grid does not overlap the image at all (no image voxel lies in "
            "its field of view); check that it belongs to this image and that both headers "
            "carry the right geometry"
        )
    return covered / total, covered


def record(
    *,
    from_shape: Sequence[int],
    to_shape: Sequence[int],
    from_affine: np.ndarray | None,
    to_affine: np.ndarray | None,
    labels: bool,
    coverage: float,
    outside: float,
    geometry: str,
    reason: str = "",
) -> Resampling:
    """The :class:`~segviewer.core.types.Resampling` record of one resampling."""

    def spacing(a: np.ndarray | None) -> tuple[float, float, float]:
        if a is None:
            return (1.0, 1.0, 1.0)
        n = np.linalg.norm(np.asarray(a, dtype=np.float64)[:3, :3], axis=0)
        return (float(n[0]), float(n[1]), float(n[2]))

    fs: Any = tuple(int(s) for s in from_shape)
    ts: Any = tuple(int(s) for s in to_shape)
    return Resampling(
        from_shape=fs,
        to_shape=ts,
        from_spacing=spacing(from_affine),
        to_spacing=spacing(to_affine),
        from_affine=None if from_affine is None else np.asarray(from_affine, dtype=np.float64),
        to_affine=None if to_affine is None else np.asarray(to_affine, dtype=np.float64),
        method="nearest neighbour" if labels else "linear per class",
        geometry=geometry,
        coverage=float(coverage),
        outside=float(outside),
        reason=reason,
    )
