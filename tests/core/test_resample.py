"""core.resample: the composed affine, slab-by-slab streaming, coverage, background fill.

Checked against scipy.ndimage.affine_transform run on the whole volume with the composed
matrix (an independent, unstreamed resampling) on the bundled demo's tissue probabilities.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from segviewer.core.progress import run_to_end
from segviewer.core.resample import (
    background_fill,
    coverage_outside,
    iter_resample,
    shape_matrix,
    world_matrix,
)
from segviewer.core.types import PredictionKind, SegviewerError


@pytest.fixture(scope="module")
def tissue(demo_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Demo tissue probabilities channels first (3, 98, 116, 94) float32, and their affine."""
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    data = np.asarray(img.dataobj, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(data, -1, 0)), img.affine


def _whole(src: np.ndarray, m: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
    """Independent reference: one affine_transform over the whole volume, faces masked."""
    out = ndimage.affine_transform(
        src, m[:3, :3], m[:3, 3], output_shape=shape, order=order, mode="nearest"
    )
    g = np.indices(shape).reshape(3, -1).astype(np.float64)
    c = m[:3, :3] @ g + m[:3, 3:]
    inside = np.all((c >= -0.5) & (c <= np.array(src.shape)[:, None] - 0.5), axis=0)
    out[~inside.reshape(shape)] = 0
    return out


def test_world_matrix_composes_image_to_prediction(tissue: tuple[np.ndarray, np.ndarray]) -> None:
    _probs, aff = tissue
    other = aff @ np.diag([1.5, 0.5, 2.0, 1.0])
    other[:3, 3] += [10.0, -4.0, 6.0]
    m = world_matrix(other, aff)
    ijk = np.array([3.0, 40.0, 17.0, 1.0])
    # the same world point, reached from either grid
    np.testing.assert_allclose(other @ (m @ ijk), aff @ ijk)


def test_shape_matrix_aligns_outer_corners() -> None:
    m = shape_matrix((50, 10, 4), (100, 10, 8))
    # image voxel 0 spans [-0.5, 0.5): its centre is a quarter voxel into prediction voxel 0
    np.testing.assert_allclose((m @ [0, 0, 0, 1])[:3], [-0.25, 0.0, -0.25])
    np.testing.assert_allclose((m @ [99, 9, 7, 1])[:3], [49.25, 9.0, 3.25])


@pytest.mark.parametrize("rows_budget", [1, 7, 1000])
def test_streamed_labels_equal_whole_volume_nearest(
    tissue: tuple[np.ndarray, np.ndarray], rows_budget: int
) -> None:
    probs, aff = tissue
    labels = probs.argmax(axis=0).astype(np.uint8)
    # image grid: 1.3 mm, flipped first axis, shifted origin, larger than the prediction
    img_aff = np.diag([-1.37, 1.37, 1.37, 1.0])
    img_aff[:3, 3] = aff[:3, 3] + [100.37, -8.13, 5.29]  # no exact half-voxel ties
    shape = (160, 170, 120)
    m = world_matrix(aff, img_aff)
    out = np.empty(shape, np.uint8)
    per_row = shape[1] * shape[2] * 30
    coverage, covered = run_to_end(
        iter_resample(labels, m, out, labels=True, max_bytes=rows_budget * per_row)
    )
    expected = _whole(labels, m, shape, order=0)
    assert np.array_equal(out, expected)
    assert 0.3 < coverage < 1.0 and covered == round(coverage * out.size)
    assert set(np.unique(out)) <= set(np.unique(labels))  # nearest never makes new labels


def test_streamed_linear_per_class_equals_whole_volume(
    tissue: tuple[np.ndarray, np.ndarray],
) -> None:
    probs, aff = tissue
    img_aff = aff @ np.diag([0.7, 0.7, 0.7, 1.0])
    img_aff[:3, 3] += [3.3, 1.1, -2.0]
    shape = (120, 150, 110)
    m = world_matrix(aff, img_aff)
    out = np.empty((3, *shape), np.float32)
    fill = background_fill(PredictionKind.PROBABILITIES, 3, True)
    run_to_end(iter_resample(probs, m, out, labels=False, fill=fill, max_bytes=4 * 1024**2))
    for c in range(3):
        expected = _whole(probs[c], m, shape, order=1)
        if c == 0:  # outside the field of view: probability 1 for background
            g = np.indices(shape).reshape(3, -1).astype(np.float64)
            co = m[:3, :3] @ g + m[:3, 3:]
            ins = np.all((co >= -0.5) & (co <= np.array(probs.shape[1:])[:, None] - 0.5), axis=0)
            expected[~ins.reshape(shape)] = 1.0
        np.testing.assert_allclose(out[c], expected, atol=1e-5)
    # linear interpolation of probabilities keeps them summing to one
    src_err = float(np.abs(probs.sum(axis=0) - 1.0).max())
    assert float(np.abs(out.sum(axis=0) - 1.0).max()) <= src_err + 1e-5


def test_memory_stays_bounded_for_a_memory_mapped_prediction(tmp_path: Path) -> None:
    # a 64 MB float32 prediction on disk, resampled with a 2 MB slab budget: the working
    # memory stays a few MB (the output is allocated before measuring)
    path = tmp_path / "logits.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(4, 160, 160, 160))
    rng = np.random.default_rng(0)
    for z in range(0, 160, 40):
        big[:, z : z + 40] = rng.standard_normal((4, 40, 160, 160), dtype=np.float32)
    big.flush()
    del big
    src = np.load(path, mmap_mode="r")
    out = np.empty((4, 100, 100, 100), np.float32)
    m = shape_matrix(src.shape[1:], out.shape[1:])
    tracemalloc.start()
    run_to_end(iter_resample(src, m, out, labels=False, max_bytes=2 * 1024**2))
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 1024**2, f"peak {peak / 1024**2:.1f} MB for a 64 MB source"
    whole = ndimage.affine_transform(
        np.asarray(src[2]),
        m[:3, :3],
        m[:3, 3],
        output_shape=(100, 100, 100),
        order=1,
        mode="nearest",
    )
    np.testing.assert_allclose(out[2], whole, atol=1e-5)


def test_no_overlap_is_refused_and_partial_cover_reported() -> None:
    src = np.ones((10, 10, 10), np.uint8)
    far = np.eye(4)
    far[:3, 3] = 500.0
    out = np.empty((10, 10, 10), np.uint8)
    with pytest.raises(SegviewerError, match="does not overlap the image"):
        run_to_end(iter_resample(src, world_matrix(far, np.eye(4)), out, labels=True))
    half = np.eye(4)
    half[0, 3] = 5.0  # prediction starts 5 mm further along axis 0
    m = world_matrix(half, np.eye(4))
    coverage, _ = run_to_end(iter_resample(src, m, out, labels=True))
    assert coverage == pytest.approx(0.5)
    assert out[:5].max() == 0 and out[5:].min() == 1
    assert coverage_outside(m, src.shape, out.shape) == pytest.approx(0.5)


def test_background_fill_argmaxes_to_background() -> None:
    for kind, probs in [(PredictionKind.LOGITS, False), (PredictionKind.PROBABILITIES, True)]:
        fill = background_fill(kind, 4, probs)
        assert int(np.argmax(fill)) == 0
    assert background_fill(PredictionKind.SIGMOID, 1, True).tolist() == [0.0]
    assert background_fill(PredictionKind.SIGMOID, 1, False)[0] < -50
