"""SliceSource: per-slice labels before the whole-volume map exists, lookups after, and the
hand-over of background results (stale ones refused)."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from segviewer.core.layout import detect_layout
from segviewer.core.masks import stats_from_block
from segviewer.core.orientation import VIEWS, display_axes, take_slice
from segviewer.core.overlay import window_to_uint8
from segviewer.core.progress import run_to_end
from segviewer.core.slicesource import GreySource, SliceSource
from segviewer.core.types import (
    MaskSettings,
    Prediction,
    PredictionKind,
    Progress,
    SegviewerError,
)

AFFINE = np.diag([-1.0, 1.0, 2.0, 1.0])  # a flipped axis and anisotropic voxels


def make_source(tmp_path: Path, c: int = 30) -> tuple[SliceSource, np.ndarray]:
    rng = np.random.default_rng(c)
    cl = (rng.standard_normal((7, 8, 9, c)) * 2).astype(np.float32)
    cl[1, 2, 3, 2] = np.nan
    np.save(tmp_path / "p.npy", cl[None])
    mm = np.load(tmp_path / "p.npy", mmap_mode="r", allow_pickle=False)
    lay = detect_layout(mm.shape, (7, 8, 9), explicit="NDHWC")
    return SliceSource(Prediction(mm, PredictionKind.LOGITS, lay, c)), cl


def reference(cl: np.ndarray, min_conf: float | None = None) -> np.ndarray:
    lab = np.argmax(cl, -1).astype(np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(cl.astype(np.float64) - cl.max(-1, keepdims=True))
        conf = (e / e.sum(-1, keepdims=True)).max(-1)
    if min_conf is not None:
        lab[conf < min_conf] = 254
    lab[np.isnan(cl).any(-1)] = 255
    return lab


@pytest.mark.parametrize("c", [4, 30])
def test_slices_before_and_after_the_whole_volume_labels(tmp_path: Path, c: int) -> None:
    src, cl = make_source(tmp_path, c)
    ref = reference(cl)
    assert not src.has_labels
    for view in VIEWS:
        axes = display_axes(AFFINE, view)
        for i in range(ref.shape[axes.slice_axis]):
            np.testing.assert_array_equal(src.labels(axes, i), take_slice(ref, axes, i))
    settings = src.settings
    assert inspect.isgeneratorfunction(SliceSource.labels_job)  # a worker can run it
    assert inspect.isgeneratorfunction(SliceSource.stat_job)
    assert inspect.isgeneratorfunction(GreySource.window_job)
    res = run_to_end(src.labels_job(workers=2))
    assert src.set_labels(res, settings)
    assert src.has_labels
    for view in VIEWS:
        axes = display_axes(AFFINE, view)
        for i in range(ref.shape[axes.slice_axis]):
            sl = src.labels(axes, i)
            np.testing.assert_array_equal(sl, take_slice(ref, axes, i))
            assert np.shares_memory(sl, res.labels)  # a lookup, nothing computed


def test_class_counts_per_slice_counted_alone_then_looked_up(tmp_path: Path) -> None:
    src, cl = make_source(tmp_path)
    ref = reference(cl, 0.2)  # with reserved (uncertain) values, which are not counted
    src.set_settings(MaskSettings(min_confidence=0.2))
    n = src.prediction.n_classes

    def expected(axes: object, i: int) -> np.ndarray:
        sl = take_slice(ref, axes, i)  # type: ignore[arg-type]
        return np.bincount(sl[sl < n].ravel(), minlength=n)

    axes = display_axes(AFFINE, "coronal")
    # before the whole-volume labels: the slice is counted alone
    np.testing.assert_array_equal(src.class_counts(axes, 4), expected(axes, 4))
    assert not src.wants_slice_counts and not src.has_slice_counts
    with pytest.raises(SegviewerError, match="whole-volume"):
        run_to_end(src.slice_counts_job())
    labels = run_to_end(src.labels_job()).labels
    assert src.set_labels(labels, src.settings)
    assert src.wants_slice_counts
    counts = run_to_end(src.slice_counts_job())
    assert src.set_slice_counts(labels, counts)
    assert src.has_slice_counts and not src.wants_slice_counts
    for view in VIEWS:
        axes = display_axes(AFFINE, view)
        for i in range(ref.shape[axes.slice_axis]):
            got = src.class_counts(axes, i)
            assert got.dtype == np.int64 and got.shape == (n,)
            np.testing.assert_array_equal(got, expected(axes, i))
    # counts of other labels are refused; new settings drop them
    assert not src.set_slice_counts(labels.copy(), counts)
    src.set_settings(MaskSettings())
    assert not src.has_slice_counts


def test_stale_labels_are_refused_and_new_settings_drop_the_map(tmp_path: Path) -> None:
    src, cl = make_source(tmp_path)
    old = src.settings
    job = src.labels_job(old, workers=1)
    assert src.set_settings(MaskSettings(min_confidence=0.2))
    assert not src.set_settings(MaskSettings(min_confidence=0.2))
    assert not src.set_labels(run_to_end(job), old)  # made with the old settings
    assert not src.has_labels
    axes = display_axes(AFFINE, "axial")
    want = reference(cl, 0.2)
    assert (want == 254).any()
    np.testing.assert_array_equal(src.labels(axes, 3), take_slice(want, axes, 3))
    assert src.set_labels(run_to_end(src.labels_job()), src.settings)
    np.testing.assert_array_equal(src.volume_labels, want)
    src.set_settings(MaskSettings())
    assert not src.has_labels
    np.testing.assert_array_equal(src.labels(axes, 3), take_slice(reference(cl), axes, 3))
    with pytest.raises(SegviewerError, match="labels must be"):
        src.set_labels(np.zeros((7, 8, 9), np.uint16))


def test_statistics_per_slice_then_from_the_volume_map(tmp_path: Path) -> None:
    src, cl = make_source(tmp_path)
    cf = np.moveaxis(cl, -1, 0)
    ent = stats_from_block(cf, "logits", "entropy", normalised=True)
    p2 = stats_from_block(cf, "logits", "probability", class_index=2)
    axes = display_axes(AFFINE, "coronal")
    np.testing.assert_array_equal(src.stat(axes, 4, "entropy"), take_slice(ent, axes, 4))
    assert not src.has_stat("entropy")
    src.set_stat("entropy", None, True, run_to_end(src.stat_job("entropy", workers=2)))
    assert src.has_stat("entropy")
    got = src.stat(axes, 4, "entropy")
    np.testing.assert_array_equal(got, take_slice(ent, axes, 4))
    job = src.stat_job("probability", 2, normalised=False)
    src.set_stat("probability", 2, False, run_to_end(job))
    np.testing.assert_array_equal(
        src.stat(axes, 5, "probability", 2, normalised=False), take_slice(p2, axes, 5)
    )
    # at most max_stat_volumes maps are kept (3): the oldest goes
    for k in (3, 4, 5):
        src.set_stat("probability", k, False, np.zeros((7, 8, 9), np.float32))
    assert not src.has_stat("entropy") and src.has_stat("probability", 5, False)
    with pytest.raises(SegviewerError, match="unknown statistic"):
        src.stat(axes, 0, "sharpness")
    with pytest.raises(SegviewerError, match="statistic map must be"):
        src.set_stat("entropy", None, True, np.zeros((7, 8, 9)))


def test_label_maps_have_no_statistics(tmp_path: Path) -> None:
    lm = np.zeros((3, 4, 5), np.uint8)
    lay = detect_layout(lm.shape, (3, 4, 5), explicit="DHW", has_class_axis=False)
    src = SliceSource(Prediction(lm, PredictionKind.LABELS, lay, 2))
    axes = display_axes(AFFINE, "axial")
    np.testing.assert_array_equal(src.labels(axes, 1), take_slice(lm, axes, 1))
    with pytest.raises(SegviewerError, match="no probabilities"):
        src.stat(axes, 1, "entropy")


def test_grey_slices_before_and_after_the_windowed_volume() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(-200, 3000, (9, 10, 11)).astype(np.int16)
    grey = GreySource(img)
    assert grey.wants_volume and not GreySource(img, max_voxels=100).wants_volume
    axes = display_axes(AFFINE, "sagittal")
    want = window_to_uint8(take_slice(img, axes, 4), 500.0, 1000.0)
    np.testing.assert_array_equal(grey.grey(axes, 4, 500.0, 1000.0), want)
    progress: list[Progress] = []
    vol = run_to_end(grey.window_job(500.0, 1000.0, chunk_voxels=220), progress.append)
    assert len(progress) == 5 and progress[-1].done == 9  # two slices a chunk
    grey.set_windowed(500.0, 1000.0, vol)
    assert grey.has_window(500.0, 1000.0) and not grey.has_window(500.0, 999.0)
    for view in VIEWS:
        ax = display_axes(AFFINE, view)
        for i in range(img.shape[ax.slice_axis]):
            got = grey.grey(ax, i, 500.0, 1000.0)
            assert np.shares_memory(got, vol)  # a lookup
            np.testing.assert_array_equal(got, window_to_uint8(take_slice(img, ax, i), 500, 1000))
    # another window (a drag in progress): the slice alone, right away
    other = grey.grey(axes, 4, 100.0, 50.0)
    assert not np.shares_memory(other, vol)
    np.testing.assert_array_equal(other, window_to_uint8(take_slice(img, axes, 4), 100.0, 50.0))
    with pytest.raises(SegviewerError, match="windowed image"):
        grey.set_windowed(1.0, 2.0, np.zeros((9, 10, 11), np.int16))
