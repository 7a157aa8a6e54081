"""Preprocessing for models: intensity normalisation, padding, resizing (numpy / scipy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segviewer.core.types import SegviewerError

__all__ = ["normalize", "pad_amounts", "pad_spatial", "crop_spatial", "resize_spatial"]


def normalize(
    data: np.ndarray,
    method: str,
    *,
    percentile_low: float = 0.5,
    percentile_high: float = 99.5,
    nonzero: bool = False,
) -> np.ndarray:
    """Normalise intensities with statistics of the whole array given.

    Parameters
    ----------
    data
        Any-dimensional numeric array (a volume, or one slice for per-slice normalisation).
    method
        ``none`` (cast only), ``zscore`` ((x - mean) / std), ``minmax`` ((x - min) / (max - min),
        into [0, 1]), ``max`` (x / max |x|), ``percentile`` (clip to the ``percentile_low`` /
        ``percentile_high`` percentiles, then scale that range to [0, 1]).
    nonzero
        Compute the statistics over non-zero voxels only (for skull-stripped images whose zero
        background would otherwise dominate); every voxel is still transformed.

    Returns
    -------
    np.ndarray
        float32, same shape, a new array. Statistics are accumulated in float64. A constant
        image (zero spread) is only shifted, never divided by zero. Non-finite input voxels
        are left out of the statistics and set to 0 in the result.
    """
    x = np.asarray(data, dtype=np.float32)
    bad: np.ndarray | None = None
    if np.issubdtype(np.asarray(data).dtype, np.floating) and not np.isfinite(x).all():
        # NaN / inf voxels (masked-out regions of float images) must neither poison the
        # statistics nor reach the model: statistics over finite voxels, then set to 0.
        bad = ~np.isfinite(x)
        x = np.where(bad, np.float32(0), x)
    out = _normalize_finite(x, method, percentile_low, percentile_high, nonzero, bad)
    if bad is not None:
        out[bad] = 0.0
    return out


def _normalize_finite(
    x: np.ndarray,
    method: str,
    percentile_low: float,
    percentile_high: float,
    nonzero: bool,
    bad: np.ndarray | None,
) -> np.ndarray:
    if method == "none":
        return x.copy()
    keep = (x != 0) if nonzero else None
    if bad is not None:
        keep = ~bad if keep is None else keep & ~bad
    sample = x[keep] if keep is not None else x
    if sample.size == 0:
        sample = x.reshape(-1)
    if sample.size == 0:
        return x.copy()
    if method == "zscore":
        mean = float(np.mean(sample, dtype=np.float64))
        std = float(np.std(sample, dtype=np.float64))
        return _affine(x, mean, std)
    if method == "minmax":
        lo, hi = float(sample.min()), float(sample.max())
        return _affine(x, lo, hi - lo)
    if method == "max":
        return _affine(x, 0.0, float(np.abs(sample).max()))
    if method == "percentile":
        lo, hi = (float(v) for v in np.percentile(sample, [percentile_low, percentile_high]))
        return _affine(np.clip(x, lo, hi), lo, hi - lo)
    raise SegviewerError(
        f"unknown normalisation {method!r}; use none, zscore, minmax, max or percentile"
    )


def _affine(x: np.ndarray, shift: float, scale: float) -> np.ndarray:
    out = np.subtract(x, np.float32(shift), dtype=np.float32)
    if scale > 0 and np.isfinite(scale):
        out *= np.float32(1.0 / scale)
    return out


def pad_amounts(shape: Sequence[int], target: Sequence[int]) -> list[tuple[int, int]]:
    """Centred ``(before, after)`` padding taking each size in ``shape`` to ``target``."""
    out = []
    for n, t in zip(shape, target, strict=True):
        total = int(t) - int(n)
        if total < 0:
            raise SegviewerError(f"internal: cannot pad size {n} down to {t}")
        out.append((total // 2, total - total // 2))
    return out


def pad_spatial(
    batch: np.ndarray, pads: Sequence[tuple[int, int]], mode: str, value: float = 0.0
) -> np.ndarray:
    """Pad the spatial axes of a ``(N, *spatial)`` batch (the batch axis is not padded).

    ``mode`` is ``edge``, ``reflect`` or ``constant`` (with ``value``). Returns ``batch`` itself
    when nothing is padded.
    """
    if not any(b or a for b, a in pads):
        return batch
    full = [(0, 0), *pads]
    if mode == "constant":
        return np.pad(batch, full, mode="constant", constant_values=value)
    if mode == "reflect" and any(
        max(b, a) >= n for (b, a), n in zip(pads, batch.shape[1:], strict=True)
    ):
        # numpy's reflect needs the pad to be shorter than the axis; fall back to symmetric
        # repetition, which is the same idea and works for any size.
        return np.pad(batch, full, mode="symmetric")
    return np.pad(batch, full, mode=mode)  # type: ignore[call-overload]


def crop_spatial(batch: np.ndarray, pads: Sequence[tuple[int, int]]) -> np.ndarray:
    """Undo :func:`pad_spatial` on a ``(N, *spatial, C)`` output (a view, no copy)."""
    idx: list[slice] = [slice(None)]
    for (b, a), n in zip(pads, batch.shape[1 : 1 + len(pads)], strict=True):
        idx.append(slice(b, n - a))
    return batch[tuple(idx)]


def resize_spatial(batch: np.ndarray, size: Sequence[int], first_axis: int = 1) -> np.ndarray:
    """Linear resampling of ``len(size)`` axes starting at ``first_axis`` to exactly ``size``.

    Uses ``scipy.ndimage.zoom`` (order 1, corner-aligned ``grid_mode=False``) so resizing to a
    model's input size and back is symmetric; float32 in, float32 out.
    """
    from scipy import ndimage

    shape = batch.shape
    factors = [1.0] * batch.ndim
    for i, t in enumerate(size):
        factors[first_axis + i] = int(t) / int(shape[first_axis + i])
    if all(f == 1.0 for f in factors):
        return batch
    out = ndimage.zoom(batch.astype(np.float32, copy=False), factors, order=1, mode="nearest")
    want = list(shape)
    for i, t in enumerate(size):
        want[first_axis + i] = int(t)
    if list(out.shape) != want:
        raise SegviewerError(f"internal: resizing {shape} gave {out.shape}, wanted {tuple(want)}")
    return out
