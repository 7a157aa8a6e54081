"""Normalisation, padding and resizing on real MRI (nibabel's anatomical.nii)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.types import SegviewerError
from segviewer.inference.preprocess import (
    crop_spatial,
    normalize,
    pad_amounts,
    pad_spatial,
    resize_spatial,
)


@pytest.fixture(scope="module")
def t1(nibabel_anatomical: Path) -> np.ndarray:
    return np.asarray(nib.load(nibabel_anatomical).dataobj)


def test_zscore_gives_zero_mean_unit_std(t1: np.ndarray) -> None:
    z = normalize(t1, "zscore")
    assert z.dtype == np.float32 and z.shape == t1.shape
    assert abs(float(z.mean(dtype=np.float64))) < 1e-5
    assert float(z.std(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)


def test_nonzero_statistics_ignore_a_zero_background(t1: np.ndarray) -> None:
    # anatomical.nii has no zero voxel, so give it a zero background (a skull-stripped look):
    # a 6-voxel frame of zeros around the volume.
    x = t1.astype(np.float32).copy()
    x[:6], x[-6:], x[:, :6], x[:, -6:] = 0, 0, 0, 0
    brain = x != 0
    assert (~brain).sum() > 0.3 * x.size and brain.sum() > 0.2 * x.size
    v = x[brain].astype(np.float64)
    zn = normalize(x, "zscore", nonzero=True)
    np.testing.assert_allclose(zn[brain], (v - v.mean()) / v.std(), rtol=1e-5, atol=1e-5)
    # every voxel is still transformed: the background becomes -mean/std of the brain
    np.testing.assert_allclose(zn[~brain], -v.mean() / v.std(), rtol=1e-5)
    # and the plain z-score (statistics over everything) differs from it
    z = normalize(x, "zscore")
    assert abs(float(z[brain].mean(dtype=np.float64))) > 0.3
    mm = normalize(x, "minmax", nonzero=True)
    np.testing.assert_allclose(mm[brain], (v - v.min()) / (v.max() - v.min()), atol=1e-6)
    np.testing.assert_allclose(mm[~brain], -v.min() / (v.max() - v.min()), rtol=1e-5)
    pc = normalize(x, "percentile", percentile_low=2.0, percentile_high=98.0, nonzero=True)
    lo, hi = np.percentile(v, [2.0, 98.0])
    np.testing.assert_allclose(
        pc[brain], (np.clip(v, lo, hi) - lo) / (hi - lo), rtol=1e-5, atol=1e-6
    )


def test_minmax_max_percentile_values(t1: np.ndarray) -> None:
    x = t1.astype(np.float64)
    mm = normalize(t1, "minmax")
    np.testing.assert_allclose(mm, (x - x.min()) / (x.max() - x.min()), rtol=1e-6, atol=1e-6)
    mx = normalize(t1, "max")
    np.testing.assert_allclose(mx, x / np.abs(x).max(), rtol=1e-6, atol=1e-7)
    pc = normalize(t1, "percentile", percentile_low=2.0, percentile_high=98.0)
    lo, hi = np.percentile(x, [2.0, 98.0])
    np.testing.assert_allclose(pc, (np.clip(x, lo, hi) - lo) / (hi - lo), rtol=1e-5, atol=1e-6)
    assert pc.min() == 0.0 and pc.max() == pytest.approx(1.0)
    assert normalize(t1, "none").dtype == np.float32


def test_constant_image_is_not_divided_by_zero() -> None:
    z = normalize(np.full((4, 5, 6), 7, np.uint8), "zscore")
    assert np.all(z == 0) and np.isfinite(z).all()


def test_nonfinite_voxels_are_left_out_and_zeroed(t1: np.ndarray) -> None:
    x = t1.astype(np.float32)
    x[0, 0, :5] = np.nan
    x[1, 1, 1] = np.inf
    finite = np.isfinite(x)
    v = x[finite].astype(np.float64)
    for method, ref in [
        ("zscore", (v - v.mean()) / v.std()),
        ("minmax", (v - v.min()) / (v.max() - v.min())),
    ]:
        z = normalize(x, method)
        assert np.isfinite(z).all() and np.all(z[~finite] == 0)
        np.testing.assert_allclose(z[finite], ref, rtol=1e-5, atol=1e-6)
    assert np.isnan(x[0, 0, 0])  # the caller's array is untouched


def test_unknown_method() -> None:
    with pytest.raises(SegviewerError, match="unknown normalisation 'robust'"):
        normalize(np.ones((2, 2)), "robust")


def test_pad_then_crop_restores_the_slices(t1: np.ndarray) -> None:
    items = np.moveaxis(t1, 2, 0).astype(np.float32)  # (25, 33, 41)
    pads = pad_amounts(items.shape[1:], (36, 44))
    assert pads == [(1, 2), (1, 2)]
    for mode in ("edge", "reflect", "constant"):
        padded = pad_spatial(items, pads, mode, -3.0)
        assert padded.shape == (25, 36, 44)
        np.testing.assert_array_equal(crop_spatial(padded[..., None], pads)[..., 0], items)
    assert np.all(pad_spatial(items, pads, "constant", -3.0)[:, 0] == -3.0)
    np.testing.assert_array_equal(pad_spatial(items, pads, "edge")[:, 0, 1:-2], items[:, 0])
    # reflect with a pad longer than the axis falls back to symmetric instead of failing
    assert pad_spatial(items[:, :2, :2], [(3, 3), (3, 3)], "reflect").shape == (25, 8, 8)


def test_resize_exact_shape_and_linear_values(t1: np.ndarray) -> None:
    items = np.moveaxis(t1, 2, 0).astype(np.float32)
    small = resize_spatial(items, (32, 32))
    assert small.shape == (25, 32, 32) and small.dtype == np.float32
    # Corner-aligned linear resampling keeps the corners and the value range.
    np.testing.assert_allclose(small[:, 0, 0], items[:, 0, 0])
    np.testing.assert_allclose(small[:, -1, -1], items[:, -1, -1])
    assert small.min() >= items.min() and small.max() <= items.max()
    back = resize_spatial(small[..., None], (33, 41))
    assert back.shape == (25, 33, 41, 1)
