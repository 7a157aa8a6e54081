"""The fast paths of core.masks against independent references: channels-last data with many
classes (one contiguous pass per voxel), the thread pool, memory maps, every view."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from segviewer.core import masks
from segviewer.core.layout import detect_layout
from segviewer.core.masks import (
    iter_labels,
    iter_stat,
    labels_from_block,
    slice_labels,
    slice_stat,
    stats_from_block,
)
from segviewer.core.orientation import VIEWS, display_axes, take_slice
from segviewer.core.progress import run_to_end
from segviewer.core.types import (
    MaskSettings,
    Prediction,
    PredictionKind,
    Progress,
    SegviewerError,
    reserved_labels,
)

L = PredictionKind.LOGITS
P = PredictionKind.PROBABILITIES
UNC8, INV8 = reserved_labels(np.uint8)


def ref_labels(cl: np.ndarray) -> np.ndarray:
    """Independent reference on channels-last scores: np.argmax (ties to the lower class),
    INVALID where a class value is NaN or +inf or all are -inf (core.masks docstring)."""
    lab = np.argmax(cl, axis=-1).astype(np.uint8)
    with np.errstate(invalid="ignore"):
        bad = np.isnan(cl).any(-1) | np.isposinf(cl).any(-1) | np.isneginf(cl).all(-1)
    lab[bad] = INV8
    return lab


def ref_stats(cl: np.ndarray) -> dict[str, np.ndarray]:
    """float64 softmax statistics of channels-last logits (0 log 0 = 0), NaN where invalid."""
    x = cl.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        e = np.exp(x - x.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        ps = np.sort(p, axis=-1)
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return {
        "confidence": ps[..., -1],
        "margin": ps[..., -1] - ps[..., -2],
        "entropy": -plogp.sum(-1) / np.log(cl.shape[-1]),
        "p3": p[..., 3],
    }


def wide_logits(shape: tuple[int, ...], c: int, seed: int) -> np.ndarray:
    """Channels-last float32 logits with exact ties and every kind of invalid voxel."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((*shape, c)) * 3).astype(np.float32)
    flat = x.reshape(-1, c)
    flat[0, 5 % c] = flat[0].max() + 1  # clear winner
    flat[1, [7 % c, 20 % c]] = flat[1].max() + 1  # exact tie at the top: the lower class wins
    flat[2, 9 % c] = np.nan
    flat[3, 0] = np.inf
    flat[4, :] = -np.inf
    flat[5, :-1] = -np.inf  # log-probabilities with zeros: the last class, legal
    flat[6, 2] = np.nan
    flat[6, 3] = np.inf
    return x


@pytest.mark.parametrize("c", [24, 114])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_wide_channels_last_labels_equal_argmax(c: int, dtype: type) -> None:
    x: np.ndarray = wide_logits((9, 13), c, c).astype(dtype)
    block = np.moveaxis(x, -1, 0)
    assert masks._wide_channels_last(block)
    lab = labels_from_block(block, L, c, MaskSettings())
    np.testing.assert_array_equal(lab, ref_labels(x))
    assert lab.reshape(-1)[1] == 7 and lab.reshape(-1)[5] == c - 1
    assert (lab.reshape(-1)[[2, 3, 4, 6]] == INV8).all()
    # the same values channels-first take the running-maximum path: identical labels
    cf = np.ascontiguousarray(block)
    assert not masks._wide_channels_last(cf)
    np.testing.assert_array_equal(labels_from_block(cf, L, c, MaskSettings()), lab)


def test_wide_min_confidence_matches_float64_reference() -> None:
    x = wide_logits((20, 30), 40, 3)
    x[...] *= 0.3  # flatter distributions: many voxels below the minimum confidence
    st = ref_stats(x)
    for kind, values in ((L, x), (P, None)):
        if values is None:
            with np.errstate(invalid="ignore", over="ignore"):
                e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
                values = (e / e.sum(-1, keepdims=True)).astype(np.float32)
        lab = labels_from_block(np.moveaxis(values, -1, 0), kind, 40, MaskSettings(0.5, 0.3))
        ref = ref_labels(x)
        conf = st["confidence"]
        with np.errstate(invalid="ignore"):
            unc = (conf < 0.3) & (ref != INV8)
            near = np.abs(conf - 0.3) < 1e-5
        ref[unc] = UNC8
        assert unc.sum() > 50
        np.testing.assert_array_equal(lab[~near], ref[~near])


@pytest.mark.parametrize("stat", ["confidence", "margin", "entropy", "probability"])
def test_wide_statistics_match_float64_reference(stat: str) -> None:
    x = wide_logits((11, 17), 30, 5)
    block = np.moveaxis(x, -1, 0)
    k = 3 if stat == "probability" else None
    got = stats_from_block(block, L, stat, class_index=k, normalised=True)
    want = ref_stats(x)["p3" if stat == "probability" else stat]
    bad = ref_labels(x) == INV8
    assert np.isnan(got[bad]).all()
    np.testing.assert_allclose(got[~bad], want[~bad], atol=3e-6)
    # channels-first copy (running maximum, per-class planes): same values to rounding
    cf = stats_from_block(np.ascontiguousarray(block), L, stat, class_index=k, normalised=True)
    np.testing.assert_allclose(got[~bad], cf[~bad], atol=2e-6)


def test_wide_probability_statistics() -> None:
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.full(30, 0.3), size=(7, 9)).astype(np.float32)
    p[0, 0, :] = 0
    p[0, 0, 4] = 1  # a certain voxel: entropy 0 (0 log 0 = 0)
    block = np.moveaxis(p, -1, 0)
    pd = p.astype(np.float64)
    ps = np.sort(pd, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(pd > 0, pd * np.log(pd), 0.0).sum(-1)
    np.testing.assert_allclose(stats_from_block(block, P, "confidence"), ps[..., -1], atol=2e-6)
    np.testing.assert_allclose(
        stats_from_block(block, P, "margin"), ps[..., -1] - ps[..., -2], atol=2e-6
    )
    np.testing.assert_allclose(stats_from_block(block, P, "entropy"), ent, atol=1e-5)
    np.testing.assert_allclose(
        stats_from_block(block, P, "probability", class_index=4), pd[..., 4], atol=2e-6
    )


def test_large_wide_slices_are_split_into_cache_sized_pieces() -> None:
    block = np.moveaxis(np.zeros((512, 512, 114), np.float32), -1, 0)
    pieces = masks._block_pieces(block[:, None], 1)
    # one 512 x 512 slice of 114 classes (120 MB) is split by rows: a piece stays in cache
    assert len(pieces) > 100
    biggest = max(int(np.prod(block[:, None][sel].shape)) for sel, _ in pieces)
    assert biggest * 4 <= 2 * 1024 * 1024


def make_pred(raw: np.ndarray, shape: tuple[int, int, int], layout: str, c: int) -> Prediction:
    return Prediction(raw, L, detect_layout(raw.shape, shape, explicit=layout), c)


@pytest.mark.parametrize("layout", ["DHWC", "CDHW", "NDHWC"])
@pytest.mark.parametrize("c", [4, 40])
def test_threaded_whole_volume_labels_equal_argmax(
    tmp_path: Path, layout: str, c: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(masks, "_CHUNK_VOXELS", 600)  # many chunks on a small volume
    shape = (14, 15, 16)
    cl = wide_logits(shape, c, 11)
    raw = {"DHWC": cl, "CDHW": np.ascontiguousarray(np.moveaxis(cl, -1, 0)), "NDHWC": cl[None]}[
        layout
    ]
    path = tmp_path / "pred.npy"
    np.save(path, raw)
    mm = np.load(path, mmap_mode="r", allow_pickle=False)  # memory-mapped, read-only
    pred = make_pred(mm, shape, layout, c)
    ref = ref_labels(cl)
    results = []
    for workers in (1, 2, 3):
        progress: list[Progress] = []
        res = run_to_end(iter_labels(pred, MaskSettings(), workers=workers), progress.append)
        assert [p.done for p in progress] == list(range(1, len(progress) + 1))
        assert len(progress) == len(masks.chunk_plan(pred)[1]) > 5
        np.testing.assert_array_equal(res.labels, ref)
        results.append(res)
    valid = ref[ref != INV8]
    for res in results:
        np.testing.assert_array_equal(res.counts, np.bincount(valid, minlength=c)[:c])
        assert res.n_invalid == 4
        assert res.invalid_examples == results[0].invalid_examples
    assert results[0].invalid_examples[0] == (0, 0, 2)


def test_threaded_statistics_equal_single_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masks, "_CHUNK_VOXELS", 500)
    cl = wide_logits((10, 12, 14), 30, 12)
    pred = make_pred(cl, (10, 12, 14), "DHWC", 30)
    for stat, k in (("entropy", None), ("probability", 3), ("margin", None)):
        one = run_to_end(iter_stat(pred, stat, k, normalised=True, workers=1))
        two = run_to_end(iter_stat(pred, stat, k, normalised=True, workers=2))
        np.testing.assert_array_equal(one, two)
        block = np.moveaxis(cl, -1, 0)
        np.testing.assert_array_equal(
            one, stats_from_block(block, L, stat, class_index=k, normalised=True)
        )


def test_slices_of_wide_data_match_the_whole_volume_in_every_view() -> None:
    shape = (6, 7, 8)
    cl = wide_logits(shape, 30, 13)
    pred = make_pred(cl, shape, "DHWC", 30)
    whole = ref_labels(cl)
    ent = stats_from_block(np.moveaxis(cl, -1, 0), L, "entropy", normalised=True)
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])  # a flipped axis: screen order differs from raw
    for view in VIEWS:
        axes = display_axes(affine, view)
        for i in range(shape[axes.slice_axis]):
            lab = slice_labels(pred, axes, i, MaskSettings())
            assert lab.flags.c_contiguous
            np.testing.assert_array_equal(lab, take_slice(whole, axes, i))
            np.testing.assert_array_equal(
                slice_stat(pred, axes, i, "entropy", normalised=True), take_slice(ent, axes, i)
            )
    with pytest.raises(SegviewerError, match="outside"):
        slice_labels(pred, display_axes(affine, "axial"), 99, MaskSettings())


def test_closing_the_generator_stops_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            ran.append(i)

    gen = masks._run_chunks(1000, work, 2)
    assert next(gen) == 0
    gen.close()  # a cancelled job: queued chunks are dropped, running ones finished
    n = len(ran)
    assert n <= 6
    time.sleep(0.05)
    assert len(ran) == n  # nothing runs for it any more
    # the pool is shared: two jobs at once interleave on the same threads, each in order
    a = masks._run_chunks(20, lambda i: None, 2)
    b = masks._run_chunks(20, lambda i: None, 2)
    assert [(x, y) for x, y in zip(a, b, strict=True)] == [(i, i) for i in range(20)]
    assert len([t for t in threading.enumerate() if t.name.startswith("segviewer-volume2")]) <= 2

    def boom(i: int) -> None:
        if i == 3:
            raise SegviewerError("chunk 3 failed")

    with pytest.raises(SegviewerError, match="chunk 3"):
        list(masks._run_chunks(10, boom, 2))
    with pytest.raises(SegviewerError, match="workers"):
        list(masks._run_chunks(10, work, 0))


def test_wide_path_beyond_253_classes_gives_uint16_labels() -> None:
    rng = np.random.default_rng(14)
    x = rng.standard_normal((6, 7, 300)).astype(np.float32)
    x[0, 0, 299] = 50.0  # the last class wins: label 299 needs uint16
    x[1, 1, 5] = np.nan
    lab = labels_from_block(np.moveaxis(x, -1, 0), L, 300, MaskSettings())
    assert lab.dtype == np.uint16
    want = np.argmax(x, -1).astype(np.uint16)
    want[1, 1] = reserved_labels(np.uint16)[1]
    np.testing.assert_array_equal(lab, want)
    assert lab[0, 0] == 299


def test_whole_volume_probabilities_of_wide_channels_last_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(masks, "_BLOCK_VOXELS", 64)  # several pieces per chunk
    cl = wide_logits((5, 12, 13), 30, 15)
    pred = make_pred(cl, (5, 12, 13), "DHWC", 30)
    got = run_to_end(masks.iter_probabilities(pred))
    x = cl.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(x - x.max(-1, keepdims=True))
        want = np.moveaxis(e / e.sum(-1, keepdims=True), -1, 0)
    ok = ref_labels(cl) != INV8
    assert (~ok).sum() == 4 and np.isnan(got[:, ~ok]).all()  # invalid voxels: NaN
    np.testing.assert_allclose(got[:, ok], want[:, ok], atol=2e-6)
