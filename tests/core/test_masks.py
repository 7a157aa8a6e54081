"""Masks and soft statistics against naive float64 references, on random and real data."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.layout import detect_layout
from segviewer.core.masks import (
    LabelResult,
    binary_mask_from_block,
    chunk_plan,
    iter_labels,
    iter_probabilities,
    iter_stat,
    labels_from_block,
    probabilities_from_block,
    slice_labels,
    slice_probabilities,
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
S = PredictionKind.SIGMOID
M = PredictionKind.MULTILABEL
UNC8, INV8 = reserved_labels(np.uint8)


# --- naive float64 references ------------------------------------------------------------------


def ref_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        e = np.exp(x - x.max(axis=0))
        return e / e.sum(axis=0)  # type: ignore[no-any-return]


def ref_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def ref_stats(p: np.ndarray) -> dict[str, np.ndarray]:
    """confidence / margin / entropy of a (C, ...) probability array (0 log 0 = 0)."""
    ps = np.sort(p, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return {"confidence": ps[-1], "margin": ps[-1] - ps[-2], "entropy": -plogp.sum(axis=0)}


def ref_binary_entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p), 0.0)
        b = np.where(p < 1, (1 - p) * np.log(1 - p), 0.0)
    return -(a + b)


def demo_probabilities(demo_dir: Path) -> np.ndarray:
    """The demo's (98, 116, 94, 3) tissue probabilities as channels-first float32."""
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    p = np.asarray(img.get_fdata(dtype=np.float32))
    return np.ascontiguousarray(np.moveaxis(p, -1, 0))


def make_pred(
    raw: np.ndarray,
    image_shape: tuple[int, int, int],
    kind: PredictionKind,
    n_classes: int,
    layout: str | None = None,
    vap: bool = False,
) -> Prediction:
    lay = detect_layout(
        raw.shape, image_shape, explicit=layout, has_class_axis=kind is not PredictionKind.LABELS
    )
    return Prediction(raw, kind, lay, n_classes, values_are_probabilities=vap)


# --- arg-max -----------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 3, 7])
@pytest.mark.parametrize("shape", [(17, 23), (5, 9, 11)])
def test_running_max_equals_argmax_with_ties(c: int, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(c)
    # few distinct values: many exact ties, which must go to the lower class like np.argmax
    x = rng.integers(-2, 3, (c, *shape)).astype(np.float32)
    lab = labels_from_block(x, L, c, MaskSettings())
    assert lab.dtype == np.uint8
    np.testing.assert_array_equal(lab, np.argmax(x, axis=0))
    y = rng.standard_normal((c, *shape)).astype(np.float32) * 10
    np.testing.assert_array_equal(labels_from_block(y, P, c, MaskSettings()), np.argmax(y, 0))


def test_argmax_float64_float16_and_strided_input() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 30, 4))  # channels last, float64
    cf = np.moveaxis(x, -1, 0)  # strided view
    ref = np.argmax(x, axis=-1)
    np.testing.assert_array_equal(labels_from_block(cf, L, 4, MaskSettings()), ref)
    h = x.astype(np.float16)
    np.testing.assert_array_equal(
        labels_from_block(np.moveaxis(h, -1, 0), L, 4, MaskSettings()), np.argmax(h, -1)
    )


def test_uint16_labels_beyond_253_classes() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 6, 7)).astype(np.float32)
    lab = labels_from_block(x, L, 300, MaskSettings())
    assert lab.dtype == np.uint16
    np.testing.assert_array_equal(lab, np.argmax(x, 0))


def test_nonfinite_logits_are_invalid_but_minus_inf_in_some_classes_is_legal() -> None:
    x = np.zeros((3, 6), dtype=np.float32)
    x[:, 0] = [np.nan, 1, 2]  # NaN in the first class
    x[:, 1] = [1, np.nan, 0]  # NaN in a later class
    x[:, 2] = [0, np.inf, 1]  # +inf
    x[:, 3] = -np.inf  # all -inf
    x[:, 4] = [-np.inf, 3, -np.inf]  # log-probabilities with zeros: class 1
    x[:, 5] = [-np.inf, -np.inf, -5]  # class 2
    lab = labels_from_block(x, L, 3, MaskSettings())
    np.testing.assert_array_equal(lab, [INV8, INV8, INV8, INV8, 1, 2])
    conf = stats_from_block(x, L, "confidence")
    assert np.isnan(conf[:4]).all()
    np.testing.assert_allclose(conf[4:], [1.0, 1.0])
    ent = stats_from_block(x, L, "entropy")
    np.testing.assert_allclose(ent[4:], [0.0, 0.0], atol=1e-7)


def test_demo_log_probabilities_argmax_and_stats(demo_dir: Path) -> None:
    p = demo_probabilities(demo_dir)
    assert p.shape == (3, 98, 116, 94)
    with np.errstate(divide="ignore"):
        logp = np.log(p)  # -inf where a tissue has probability 0: legal
    assert np.isneginf(logp).any()
    finite_somewhere = np.isfinite(logp).any(axis=0)
    lab = labels_from_block(logp, L, 3, MaskSettings())
    ref = np.argmax(logp, axis=0)
    np.testing.assert_array_equal(lab[finite_somewhere], ref[finite_somewhere])
    assert (lab[~finite_somewhere] == INV8).all()
    # the probabilities themselves give the same labels where they do not all vanish
    labp = labels_from_block(p, P, 3, MaskSettings())
    np.testing.assert_array_equal(labp, np.argmax(p, axis=0))
    # real anatomy: grey and white matter both present in sensible proportions
    counts = np.bincount(labp.ravel(), minlength=3)
    assert counts[1] > 50_000 and counts[2] > 50_000

    valid = finite_somewhere
    rs = ref_stats(p / p.sum(axis=0))
    for stat in ("confidence", "margin", "entropy"):
        got = stats_from_block(logp, L, stat)
        np.testing.assert_allclose(got[valid], rs[stat][valid], atol=2e-6)
        gotp = stats_from_block(p, P, stat)
        np.testing.assert_allclose(gotp[valid], rs[stat][valid], atol=2e-6)


# --- soft statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("c", [2, 5])
def test_logit_stats_match_float64_reference(c: int) -> None:
    rng = np.random.default_rng(10 + c)
    x = (rng.standard_normal((c, 40, 50)) * 4).astype(np.float32)
    x[0, :3, :3] = -np.inf  # legal zero-probability entries
    x[1, 5, :] = 60.0  # near-certain voxels
    p = ref_softmax(x)
    rs = ref_stats(p)
    for stat in ("confidence", "margin", "entropy"):
        np.testing.assert_allclose(stats_from_block(x, L, stat), rs[stat], atol=2e-6)
    np.testing.assert_allclose(
        stats_from_block(x, L, "entropy", normalised=True), rs["entropy"] / np.log(c), atol=2e-6
    )
    for k in range(c):
        np.testing.assert_allclose(
            stats_from_block(x, L, "probability", class_index=k), p[k], atol=2e-6
        )
    np.testing.assert_allclose(probabilities_from_block(x, L), p, atol=2e-6)


def test_probability_stats_normalise_by_the_sum() -> None:
    rng = np.random.default_rng(5)
    raw = rng.random((4, 30, 30)).astype(np.float32) * 200  # unnormalised, e.g. 0..255 scaled
    raw[2, :4] = 0.0
    p = raw.astype(np.float64) / raw.sum(axis=0)
    rs = ref_stats(p)
    for stat in ("confidence", "margin", "entropy"):
        np.testing.assert_allclose(stats_from_block(raw, P, stat), rs[stat], atol=2e-6)
    np.testing.assert_allclose(
        stats_from_block(raw, P, "probability", class_index=2), p[2], atol=2e-6
    )
    np.testing.assert_allclose(probabilities_from_block(raw, P), p, atol=2e-6)


@pytest.mark.parametrize("vap", [False, True])
def test_sigmoid_stats_and_threshold(vap: bool) -> None:
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((1, 60, 70)) * 3).astype(np.float32)
    p = ref_sigmoid(x[0])
    block = p[None].astype(np.float32) if vap else x
    for t in (0.0, 0.3, 0.5, 0.9, 1.0):
        lab = labels_from_block(
            block, S, 2, MaskSettings(threshold=t), values_are_probabilities=vap
        )
        pb = block[0].astype(np.float64) if vap else p
        np.testing.assert_array_equal(lab, (pb >= t).astype(np.uint8))
    got = {
        s: stats_from_block(block, S, s, values_are_probabilities=vap)
        for s in ("confidence", "margin", "entropy")
    }
    np.testing.assert_allclose(got["confidence"], np.maximum(p, 1 - p), atol=2e-6)
    np.testing.assert_allclose(got["margin"], np.abs(2 * p - 1), atol=4e-6)
    np.testing.assert_allclose(got["entropy"], ref_binary_entropy(p), atol=2e-6)
    norm = stats_from_block(block, S, "entropy", normalised=True, values_are_probabilities=vap)
    np.testing.assert_allclose(norm, ref_binary_entropy(p) / np.log(2), atol=4e-6)
    for k, ref in ((0, 1 - p), (1, p)):
        got_k = stats_from_block(
            block, S, "probability", class_index=k, values_are_probabilities=vap
        )
        np.testing.assert_allclose(got_k, ref, atol=2e-6)


def test_sigmoid_logit_threshold_is_exact_at_the_boundary() -> None:
    # x exactly at float32(logit(0.7)) and its neighbours: compare against sigmoid in float64
    t = np.log(0.7 / 0.3)
    x0 = np.float32(t)
    xs = np.array([np.nextafter(x0, -np.inf), x0, np.nextafter(x0, np.inf)], dtype=np.float32)
    lab = labels_from_block(xs[None], S, 2, MaskSettings(threshold=0.7))
    np.testing.assert_array_equal(lab, (ref_sigmoid(xs) >= 0.7).astype(np.uint8))


@pytest.mark.parametrize("vap", [False, True])
def test_multilabel_labels_masks_and_stats(vap: bool) -> None:
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((3, 40, 40)) * 3).astype(np.float32)
    p = ref_sigmoid(x)
    block = p.astype(np.float32) if vap else x
    s = MaskSettings(threshold=0.6)
    lab = labels_from_block(block, M, 4, s, values_are_probabilities=vap)
    above = p >= 0.6
    ref = np.where(above.any(0), np.argmax(np.where(above, p, -1), 0) + 1, 0)
    np.testing.assert_array_equal(lab, ref)
    for k in range(1, 4):
        mk = binary_mask_from_block(block, M, k, s, values_are_probabilities=vap)
        np.testing.assert_array_equal(mk, above[k - 1])  # overlapping, not argmax
    np.testing.assert_array_equal(
        binary_mask_from_block(block, M, 0, s, values_are_probabilities=vap), ~above.any(0)
    )
    pmax = p.max(0)
    ps = np.sort(p, 0)
    kw = {"values_are_probabilities": vap}
    np.testing.assert_allclose(
        stats_from_block(block, M, "confidence", **kw), np.maximum(pmax, 1 - pmax), atol=2e-6
    )
    np.testing.assert_allclose(
        stats_from_block(block, M, "margin", **kw), ps[-1] - ps[-2], atol=2e-6
    )
    np.testing.assert_allclose(
        stats_from_block(block, M, "entropy", **kw), ref_binary_entropy(p).sum(0), atol=1e-5
    )
    np.testing.assert_allclose(
        stats_from_block(block, M, "probability", class_index=0, **kw), np.prod(1 - p, 0), atol=2e-6
    )
    np.testing.assert_allclose(
        stats_from_block(block, M, "probability", class_index=2, **kw), p[1], atol=2e-6
    )
    probs = probabilities_from_block(block, M, values_are_probabilities=vap)
    assert probs.shape == (4, 40, 40)
    np.testing.assert_allclose(probs[0], np.prod(1 - p, 0), atol=2e-6)
    np.testing.assert_allclose(probs[1:], p, atol=2e-6)


def test_min_confidence_marks_uncertain_voxels() -> None:
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4, 50, 50)) * 2).astype(np.float32)
    x[:, 0, 0] = np.nan
    p = ref_softmax(x)
    conf = p.max(0)
    s = MaskSettings(min_confidence=0.6)
    lab = labels_from_block(x, L, 4, s)
    expect = np.argmax(x, 0).astype(np.uint8)
    expect[conf < 0.6] = UNC8
    expect[0, 0] = INV8
    np.testing.assert_array_equal(lab, expect)
    # probabilities kind: the same decision from the normalised values
    pr = (p * 3.0).astype(np.float32)  # unnormalised on purpose
    labp = labels_from_block(pr, P, 4, s)
    ok = np.isfinite(conf)
    np.testing.assert_array_equal(labp[ok], expect[ok])
    # sigmoid: confidence max(p, 1 - p)
    xs = x[:1]
    ps = ref_sigmoid(xs[0])
    lab_s = labels_from_block(xs, S, 2, MaskSettings(min_confidence=0.8))
    exp_s = (ps >= 0.5).astype(np.uint8)
    exp_s[np.maximum(ps, 1 - ps) < 0.8] = UNC8
    exp_s[0, 0] = INV8
    np.testing.assert_array_equal(lab_s, exp_s)


def test_labels_kind_passthrough() -> None:
    lab_map = np.array([[0, 1, 2], [7, 3, 0]], dtype=np.int16)  # 7 is beyond the table
    out = labels_from_block(lab_map, PredictionKind.LABELS, 4, MaskSettings())
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, lab_map)
    np.testing.assert_array_equal(
        binary_mask_from_block(lab_map, PredictionKind.LABELS, 3, MaskSettings()), lab_map == 3
    )
    with pytest.raises(SegviewerError, match="label map has no probabilities"):
        stats_from_block(lab_map, PredictionKind.LABELS, "confidence")


def test_bad_requests_raise_clear_errors() -> None:
    x = np.zeros((3, 4, 4), dtype=np.float32)
    with pytest.raises(SegviewerError, match="unknown statistic"):
        stats_from_block(x, L, "variance")
    with pytest.raises(SegviewerError, match="needs a class index"):
        stats_from_block(x, L, "probability")
    with pytest.raises(SegviewerError, match="class 3 does not exist"):
        stats_from_block(x, L, "probability", class_index=3)
    with pytest.raises(SegviewerError, match="sigmoid prediction has one channel"):
        labels_from_block(x, S, 2, MaskSettings())
    with pytest.raises(SegviewerError, match="unknown prediction kind"):
        labels_from_block(x, "softmax", 3, MaskSettings())


# --- predictions: slices, hover, whole volume ------------------------------------------------


@pytest.fixture(scope="module")
def logits_dhwc() -> np.ndarray:
    rng = np.random.default_rng(20)
    x = (rng.standard_normal((24, 20, 18, 4)) * 3).astype(np.float32)
    x[3, 4, 5, 2] = np.nan
    x[10, 0, 17, 0] = np.inf
    return x


def test_slice_labels_and_stats_match_whole_block_in_every_view(logits_dhwc: np.ndarray) -> None:
    img_shape = (24, 20, 18)
    cf_ref = np.moveaxis(logits_dhwc, -1, 0)
    full = labels_from_block(cf_ref, L, 4, MaskSettings())
    conf = stats_from_block(cf_ref, L, "confidence")
    aff = np.diag([1.0, -1.0, 1.0, 1.0])  # RPS-like: exercises flips
    for layout, raw in (("DHWC", logits_dhwc), ("CDHW", np.ascontiguousarray(cf_ref))):
        pred = make_pred(raw, img_shape, L, 4, layout)
        for view in VIEWS:
            axes = display_axes(aff, view)
            idx = 3 if view == "sagittal" else 4
            got = slice_labels(pred, axes, idx, MaskSettings())
            np.testing.assert_array_equal(got, take_slice(full, axes, idx))
            np.testing.assert_allclose(
                slice_stat(pred, axes, idx, "confidence"), take_slice(conf, axes, idx), rtol=1e-6
            )


def test_slice_probabilities_every_kind(logits_dhwc: np.ndarray) -> None:
    img_shape = (24, 20, 18)
    pred = make_pred(logits_dhwc, img_shape, L, 4, "DHWC")
    np.testing.assert_allclose(
        slice_probabilities(pred, (1, 2, 3)), ref_softmax(logits_dhwc[1, 2, 3]), atol=1e-7
    )
    assert np.isnan(slice_probabilities(pred, (3, 4, 5))).all()
    assert np.isnan(slice_probabilities(pred, (10, 0, 17))).all()
    pp = make_pred(np.abs(logits_dhwc[..., :3]) + 1, img_shape, P, 3, "DHWC")
    v = np.abs(logits_dhwc[1, 2, 3, :3]).astype(np.float64) + 1
    np.testing.assert_allclose(slice_probabilities(pp, (1, 2, 3)), v / v.sum(), atol=1e-7)
    sg = make_pred(logits_dhwc[..., :1], img_shape, S, 2, "DHWC")
    q = ref_sigmoid(logits_dhwc[1, 2, 3, 0])
    np.testing.assert_allclose(slice_probabilities(sg, (1, 2, 3)), [1 - q, q], atol=1e-7)
    ml = make_pred(logits_dhwc[..., :3], img_shape, M, 4, "DHWC")
    q3 = ref_sigmoid(logits_dhwc[1, 2, 3, :3])
    np.testing.assert_allclose(
        slice_probabilities(ml, (1, 2, 3)), [np.prod(1 - q3), *q3], atol=1e-7
    )
    lm = make_pred(
        np.argmax(np.nan_to_num(logits_dhwc), -1).astype(np.uint8),
        img_shape,
        PredictionKind.LABELS,
        4,
        "DHW",
    )
    oh = slice_probabilities(lm, (1, 2, 3))
    assert oh.sum() == 1.0 and oh[np.argmax(logits_dhwc[1, 2, 3])] == 1.0
    with pytest.raises(SegviewerError, match="outside"):
        slice_probabilities(pred, (24, 0, 0))


def test_iter_labels_streams_a_memory_mapped_npy(tmp_path: Path, logits_dhwc: np.ndarray) -> None:
    path = tmp_path / "logits.npy"
    np.save(path, logits_dhwc[None])  # NDHWC as TensorFlow writes it
    raw = np.load(path, mmap_mode="r", allow_pickle=False)
    pred = make_pred(raw, (24, 20, 18), L, 4)
    axis, ranges = chunk_plan(pred, block_voxels=1000)
    # 20 x 18 = 360 voxels per slice -> 2 slices per 1000-voxel chunk
    assert axis == 0 and len(ranges) == 12 and ranges[1] == (2, 4)
    gen = iter_labels(pred, MaskSettings())
    progress: list[Progress] = []
    res = run_to_end(gen, progress.append)
    assert len(progress) >= 1 and progress[-1].done == progress[-1].total
    assert all(isinstance(p, Progress) for p in progress)
    ref = np.argmax(logits_dhwc, -1)
    bad = np.zeros(ref.shape, dtype=bool)
    bad[3, 4, 5] = bad[10, 0, 17] = True
    np.testing.assert_array_equal(res.labels[~bad], ref[~bad])
    assert res.n_invalid == 2 and res.n_uncertain == 0
    assert res.invalid_examples == [(3, 4, 5), (10, 0, 17)]
    np.testing.assert_array_equal(res.counts, np.bincount(ref[~bad], minlength=4))
    assert res.counts.dtype == np.int64


def test_iter_labels_chunks_along_the_outermost_raw_axis(logits_dhwc: np.ndarray) -> None:
    # a (Z, X, Y, C) stack of 2-D slices for an (X, Y, Z) image: image axis 2 is outermost
    raw = np.ascontiguousarray(np.transpose(logits_dhwc, (2, 0, 1, 3)))
    pred = make_pred(raw, (24, 20, 18), L, 4, "ZXYC")
    axis, ranges = chunk_plan(pred, block_voxels=480)
    assert axis == 2 and ranges[0] == (0, 1) and ranges[-1] == (17, 18)
    progress: list[Progress] = []
    res = run_to_end(iter_labels(pred, MaskSettings(min_confidence=0.5)), progress.append)
    expect = labels_from_block(
        np.moveaxis(logits_dhwc, -1, 0), L, 4, MaskSettings(min_confidence=0.5)
    )
    np.testing.assert_array_equal(res.labels, expect)
    assert res.n_uncertain == int(np.count_nonzero(expect == UNC8)) > 0
    assert res.n_invalid == 2
    np.testing.assert_array_equal(res.counts, np.bincount(expect.ravel(), minlength=256)[:4])


def test_iter_stat_and_probabilities_match_blocks(logits_dhwc: np.ndarray) -> None:
    pred = make_pred(logits_dhwc, (24, 20, 18), L, 4, "DHWC")
    cf = np.moveaxis(logits_dhwc, -1, 0)
    for stat, k in (("entropy", None), ("margin", None), ("probability", 2)):
        vol = run_to_end(iter_stat(pred, stat, k))
        np.testing.assert_array_equal(vol, stats_from_block(cf, L, stat, class_index=k))
    probs = run_to_end(iter_probabilities(pred))
    assert probs.shape == (4, 24, 20, 18) and probs.dtype == np.float32
    ok = np.isfinite(probs).all(0)
    assert not ok[3, 4, 5] and not ok[10, 0, 17] and ok.sum() == ok.size - 2
    np.testing.assert_allclose(probs[:, ok], ref_softmax(cf)[:, ok], atol=2e-6)


def test_iter_labels_label_map_and_sigmoid(tmp_path: Path) -> None:
    rng = np.random.default_rng(30)
    lm = rng.integers(0, 3, (12, 10, 8)).astype(np.uint8)
    res = run_to_end(
        iter_labels(make_pred(lm, (12, 10, 8), PredictionKind.LABELS, 3, "DHW"), MaskSettings())
    )
    np.testing.assert_array_equal(res.labels, lm)
    np.testing.assert_array_equal(res.counts, np.bincount(lm.ravel(), minlength=3))
    x = rng.standard_normal((1, 12, 10, 8)).astype(np.float32)
    sg = make_pred(x, (12, 10, 8), S, 2, "CDHW")
    res = run_to_end(iter_labels(sg, MaskSettings(threshold=0.5)))
    np.testing.assert_array_equal(res.labels, (x[0] >= 0).astype(np.uint8))


def test_large_blocks_are_processed_in_pieces_with_identical_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segviewer.core import masks

    rng = np.random.default_rng(40)
    x = (rng.standard_normal((3, 9, 8, 7)) * 3).astype(np.float32)
    x[1, 4, 2, 2] = np.nan
    s = MaskSettings(min_confidence=0.55)
    whole_lab = labels_from_block(x, L, 3, s)
    whole_ent = stats_from_block(x, L, "entropy")
    whole_p = probabilities_from_block(x, L)
    monkeypatch.setattr(masks, "_BLOCK_VOXELS", 50)  # 56 voxels per slice: one slice a piece
    assert len(masks._block_pieces(x, 1)) == 9
    assert len(masks._block_pieces(x, 1, labels=True)) == 3  # labels: 200-voxel pieces
    np.testing.assert_array_equal(labels_from_block(x, L, 3, s), whole_lab)
    np.testing.assert_array_equal(stats_from_block(x, L, "entropy"), whole_ent)
    np.testing.assert_array_equal(probabilities_from_block(x, L), whole_p)
    assert whole_lab[4, 2, 2] == INV8 and (whole_lab == UNC8).any()


def test_streaming_keeps_memory_small_and_reports_progress_often() -> None:
    import tracemalloc

    rng = np.random.default_rng(50)
    raw = rng.standard_normal((4, 128, 128, 128), dtype=np.float32)  # 33.5 MB, CDHW
    pred = make_pred(raw, (128, 128, 128), L, 4, "CDHW")
    _, ranges = chunk_plan(pred)
    assert len(ranges) >= 8  # several progress reports, so a cancel is honoured quickly

    def peaks(workers: int) -> tuple[int, int, list[Progress], np.ndarray]:
        tracemalloc.start()
        try:
            progress: list[Progress] = []
            gen = iter_labels(pred, MaskSettings(min_confidence=0.4), workers=workers)
            res = run_to_end(gen, progress.append)
            _, peak_labels = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            conf = run_to_end(iter_stat(pred, "entropy", workers=workers))
            _, peak_stat = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert [p.done for p in progress] == list(range(1, len(ranges) + 1))
        return peak_labels - res.labels.nbytes, peak_stat - conf.nbytes, progress, res.labels

    # beyond the output (2 MB labels / 8.4 MB float32): chunk-sized work buffers per thread
    # (a 2**18-voxel chunk: 1 MB per float32 buffer), never a copy of the 33.5 MB input or
    # a volume-sized float32 temporary (8.4 MB)
    extra_labels, extra_stat, _, _ = peaks(1)
    assert extra_labels < 6_000_000 and extra_stat < 6_000_000
    extra_labels, extra_stat, progress, labels = peaks(2)
    assert extra_labels < 2 * 6_000_000 and extra_stat < 2 * 6_000_000
    res = LabelResult(labels, np.zeros(4, np.int64))
    np.testing.assert_array_equal(
        res.labels, labels_from_block(raw, L, 4, MaskSettings(min_confidence=0.4))
    )
