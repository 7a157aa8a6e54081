"""Test-set metrics against known answers, a plain reference written here, and medpy.

medpy (test-only dependency) is an independent implementation of Dice, sensitivity,
precision and the surface distances (directed average, Hausdorff, pooled 95th percentile);
``_plain_*`` below are slow loops over voxels that follow the definitions in
``segviewer/core/metrics.py`` word for word.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.metrics import (
    LOW_CONFIDENCE,
    case_metrics,
    distance_metrics,
    surface_distances,
    uncertainty,
)
from segviewer.core.types import SegviewerError
from segviewer.io.predictions import prediction_from_array

medpy_binary = pytest.importorskip("medpy.metric.binary")


# ---- a plain reference ------------------------------------------------------------------------


def _plain_surface_points(mask: np.ndarray) -> list[tuple[int, ...]]:
    """Voxels of the mask with a face neighbour outside it (or outside the array)."""
    pts = []
    for idx in itertools.product(*(range(s) for s in mask.shape)):
        if not mask[idx]:
            continue
        for ax in range(mask.ndim):
            for step in (-1, 1):
                nb = list(idx)
                nb[ax] += step
                if not 0 <= nb[ax] < mask.shape[ax] or not mask[tuple(nb)]:
                    pts.append(idx)
                    break
            else:
                continue
            break
    return pts


def _plain_directed(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> list[float]:
    pa = _plain_surface_points(a)
    pb = _plain_surface_points(b)
    out = []
    for p in pa:
        best = math.inf
        for q in pb:
            d = math.sqrt(sum(((p[i] - q[i]) * spacing[i]) ** 2 for i in range(a.ndim)))
            best = min(best, d)
        out.append(best)
    return out


def _plain_hd95_assd(
    a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]
) -> tuple[float, float]:
    if not a.any() and not b.any():
        return 0.0, 0.0
    if not a.any() or not b.any():
        return math.nan, math.nan
    dab = _plain_directed(a, b, spacing)
    dba = _plain_directed(b, a, spacing)
    hd95 = max(float(np.percentile(dab, 95)), float(np.percentile(dba, 95)))
    return hd95, (sum(dab) + sum(dba)) / (len(dab) + len(dba))


def _blob(shape: tuple[int, ...], rng: np.random.Generator, fill: float = 0.35) -> np.ndarray:
    """A lumpy random mask: smoothed noise thresholded."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.random(shape), 1.2)
    return noise > np.quantile(noise, 1 - fill)


# ---- known answers -----------------------------------------------------------------------------


def test_empty_mask_conventions() -> None:
    e = np.zeros((4, 5, 6), bool)
    one = e.copy()
    one[1, 2, 3] = True
    assert distance_metrics(e, e, (1, 1, 1)) == (0.0, 0.0)
    hd, asd = distance_metrics(one, e, (1, 1, 1))
    assert math.isnan(hd) and math.isnan(asd)
    hd, asd = distance_metrics(e, one, (1, 1, 1))
    assert math.isnan(hd) and math.isnan(asd)

    lab = np.zeros((4, 5, 6), np.uint8)
    ref = np.zeros((4, 5, 6), np.uint8)
    ref[1, 2, 3] = 2  # class 2 only in the reference, class 1 nowhere
    m = case_metrics(lab, ref, 3, (1.0, 1.0, 1.0), 0)
    c1, c2 = m.per_class[1], m.per_class[2]
    assert c1.absent_in_both and c1.dice == 1.0 and c1.iou == 1.0
    assert c1.hd95_mm == 0.0 and c1.assd_mm == 0.0
    assert c2.dice == 0.0 and c2.sensitivity == 0.0 and math.isnan(c2.precision)
    assert math.isnan(c2.hd95_mm) and math.isnan(c2.assd_mm)
    assert c2.fn == 1 and c2.fp == 0 and c2.volume_ref_ml == pytest.approx(0.001)
    assert math.isnan(m.per_class[0].hd95_mm)  # no distances for background
    # prediction only: sensitivity NaN, precision 0
    m = case_metrics(ref, lab, 3, (1.0, 1.0, 1.0), 0)
    assert m.per_class[2].precision == 0.0 and math.isnan(m.per_class[2].sensitivity)
    assert m.per_class[2].volume_diff_ml == pytest.approx(0.001)


def test_single_voxels_with_anisotropic_spacing() -> None:
    a = np.zeros((5, 5, 5), bool)
    b = np.zeros((5, 5, 5), bool)
    a[2, 2, 1] = True
    b[2, 3, 4] = True
    sp = (0.5, 0.8, 2.5)
    expected = math.hypot(0.8, 3 * 2.5)
    d_ab, d_ba = surface_distances(a, b, sp)
    assert d_ab.tolist() == pytest.approx([expected]) and d_ba.tolist() == pytest.approx([expected])
    assert distance_metrics(a, b, sp) == pytest.approx((expected, expected))
    assert distance_metrics(a, a, sp) == (0.0, 0.0)


def test_shifted_cube_known_answer() -> None:
    """A 4x4x4 cube against the same cube one voxel further along axis 2 (3 mm voxels there):
    the moved face is 3 mm away, every other surface voxel touches the other surface."""
    a = np.zeros((8, 8, 10), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 1, axis=2)
    sp = (1.0, 1.0, 3.0)
    hd95, assd = distance_metrics(a, b, sp)
    assert (hd95, assd) == pytest.approx(_plain_hd95_assd(a, b, sp))
    d_ab, d_ba = surface_distances(a, b, sp)
    assert d_ab.max() == 3.0 and d_ba.max() == 3.0
    # a 4x4x4 cube has 64 - 2x2x2 = 56 surface voxels
    assert d_ab.size == 56 and d_ba.size == 56
    m = case_metrics(a.astype(np.uint8), b.astype(np.uint8), 2, sp, 2)
    assert m.per_class[1].dice == pytest.approx(2 * 48 / 128)
    assert m.per_class[1].iou == pytest.approx(48 / 80)
    assert m.per_class[1].volume_pred_ml == pytest.approx(64 * 3 / 1000)
    assert m.per_class[1].hd95_mm == pytest.approx(hd95)


def test_one_slice_volume() -> None:
    """A (1, H, W) volume: in 3-D every voxel is on the surface (nothing above or below)."""
    rng = np.random.default_rng(3)
    a = _blob((1, 14, 15), rng)
    b = _blob((1, 14, 15), rng)
    sp3 = (5.0, 0.7, 0.9)
    assert distance_metrics(a, b, sp3) == pytest.approx(_plain_hd95_assd(a, b, sp3))
    m = case_metrics(a.astype(np.uint8), b.astype(np.uint8), 2, sp3, 0)
    assert len(m.per_slice) == 1
    # the slice's 2-D distances use the in-plane spacing only
    assert (m.per_slice[0][1].hd95_mm, m.per_slice[0][1].assd_mm) == pytest.approx(
        _plain_hd95_assd(a[0], b[0], (0.7, 0.9))
    )
    assert m.worst_slice[1] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distances_match_plain_reference_on_random_blobs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (7, 9, 8)
    a = _blob(shape, rng)
    b = _blob(shape, rng, fill=0.2)
    sp = (1.0, 0.6, 2.2)
    assert distance_metrics(a, b, sp) == pytest.approx(_plain_hd95_assd(a, b, sp))
    # 2-D too
    assert distance_metrics(a[3], b[3], sp[1:]) == pytest.approx(
        _plain_hd95_assd(a[3], b[3], sp[1:])
    )


# ---- medpy, on real anatomy --------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_maps(demo_dir: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Reference = argmax of the demo tissue probabilities (real brain shapes, 2 mm);
    prediction = the same shifted and eroded, so distances are non-trivial."""
    from scipy import ndimage

    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    p = np.asarray(img.dataobj)  # type: ignore[attr-defined]
    ref = np.argmax(p, axis=-1).astype(np.uint8)
    pred = np.roll(ref, 2, axis=1)
    wm = ndimage.binary_erosion(pred == 2, iterations=1)
    pred[(pred == 2) & ~wm] = 1
    sp = tuple(float(s) for s in img.header.get_zooms()[:3])
    # a block through the middle of the brain keeps medpy's full-array transforms quick
    box = (slice(25, 75), slice(30, 90), slice(30, 72))
    return pred[box], ref[box], sp  # type: ignore[return-value]


def test_directed_distances_and_overlap_match_medpy(
    demo_maps: tuple[np.ndarray, np.ndarray, tuple[float, float, float]],
) -> None:
    pred, ref, sp = demo_maps
    sp_aniso = (sp[0], sp[1] * 1.5, sp[2] * 0.5)  # and a made-up anisotropic grid
    for spacing in (sp, sp_aniso):
        m = case_metrics(pred, ref, 3, spacing, 2, slice_distances=False)
        for k in (1, 2):
            a, b = pred == k, ref == k
            d_ab, d_ba = surface_distances(a, b, spacing)
            assert d_ab.mean() == pytest.approx(medpy_binary.asd(a, b, spacing), rel=1e-9)
            assert d_ba.mean() == pytest.approx(medpy_binary.asd(b, a, spacing), rel=1e-9)
            assert max(d_ab.max(), d_ba.max()) == pytest.approx(medpy_binary.hd(a, b, spacing))
            pooled95 = np.percentile(np.concatenate([d_ab, d_ba]), 95)
            assert pooled95 == pytest.approx(medpy_binary.hd95(a, b, spacing))
            c = m.per_class[k]
            assert c.hd95_mm == pytest.approx(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))
            assert c.assd_mm == pytest.approx((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size))
            assert c.dice == pytest.approx(medpy_binary.dc(a, b))
            assert c.sensitivity == pytest.approx(medpy_binary.sensitivity(a, b))
            assert c.precision == pytest.approx(medpy_binary.precision(a, b))
            assert c.iou == pytest.approx(medpy_binary.jc(a, b))
            assert c.hd95_mm > 0


def test_per_slice_metrics_match_medpy_and_sum_to_the_case(
    demo_maps: tuple[np.ndarray, np.ndarray, tuple[float, float, float]],
) -> None:
    pred, ref, sp = demo_maps
    axis = 1
    m = case_metrics(pred, ref, 3, sp, axis, distances=False)
    assert len(m.per_slice) == pred.shape[axis]
    in_plane = (sp[0], sp[2])
    checked = 0
    for i in range(5, pred.shape[axis], 9):
        a_sl = np.take(pred, i, axis=axis) == 2
        b_sl = np.take(ref, i, axis=axis) == 2
        c = m.per_slice[i][2]
        assert c.tp == int((a_sl & b_sl).sum()) and c.fp == int((a_sl & ~b_sl).sum())
        if a_sl.any() and b_sl.any():
            d_ab, d_ba = surface_distances(a_sl, b_sl, in_plane)
            assert d_ab.mean() == pytest.approx(medpy_binary.asd(a_sl, b_sl, in_plane))
            if checked < 2:  # the plain loops are slow
                assert (c.hd95_mm, c.assd_mm) == pytest.approx(
                    _plain_hd95_assd(a_sl, b_sl, in_plane)
                )
            checked += 1
    assert checked >= 5
    for k in range(3):
        assert sum(row[k].tp or 0 for row in m.per_slice) == m.per_class[k].tp
        assert sum(row[k].n_pred for row in m.per_slice) == m.per_class[k].n_pred
        assert math.isnan(m.per_class[k].hd95_mm)  # distances=False
    # the worst slice of white matter has the most wrong voxels (then the lowest Dice)
    w = m.worst_slice[2]
    assert w is not None
    wrong = [(r[2].fp or 0) + (r[2].fn or 0) for r in m.per_slice]
    assert wrong[w] == max(wrong) > 0
    assert m.per_slice[w][2].dice == min(
        r[2].dice for r, n in zip(m.per_slice, wrong, strict=True) if n == wrong[w]
    )


def test_reserved_labels_and_unscored_reference() -> None:
    lab = np.zeros((2, 4, 4), np.uint8)
    ref = np.zeros((2, 4, 4), np.uint8)
    lab[0, 1, 1] = 1
    ref[0, 1, 1] = 1
    lab[0, 2, 2] = 254  # uncertain prediction: a false negative of the reference class
    ref[0, 2, 2] = 1
    lab[1, 0, 0] = 1  # predicted where the reference is not scored: not a false positive
    ref[1, 0, 0] = 255
    m = case_metrics(lab, ref, 2, (1.0, 1.0, 1.0), 0)
    c = m.per_class[1]
    assert (c.tp, c.fp, c.fn) == (1, 0, 1)
    # surfaces {(0,1,1)} and {(0,1,1), (0,2,2)}: directed P95s are 0 and 0.95 * sqrt(2)
    assert c.hd95_mm == pytest.approx(0.95 * math.sqrt(2))
    assert m.per_slice[1][1].absent_in_both and m.per_slice[1][1].hd95_mm == 0.0


def test_bad_inputs() -> None:
    with pytest.raises(SegviewerError, match="spacing must be 3 positive"):
        case_metrics(np.zeros((2, 2, 2), np.uint8), None, 2, (1.0, 0.0, 1.0), 0)
    with pytest.raises(SegviewerError, match="does not match"):
        case_metrics(np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.uint8), 2, (1, 1, 1), 0)


# ---- uncertainty -------------------------------------------------------------------------------


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_uncertainty_matches_numpy_per_slice_and_class(layout: str) -> None:
    rng = np.random.default_rng(7)
    shape = (6, 7, 5)
    logits = (rng.normal(size=(3, *shape)) * 2).astype(np.float32)
    logits[:, 0, 0, 0] = np.nan  # an invalid voxel is left out
    raw = np.moveaxis(logits, 0, -1).copy() if layout == "channels_last" else logits
    pred = prediction_from_array(
        raw, shape, layout="DHWC" if layout == "channels_last" else "CDHW", kind="logits"
    )
    from segviewer.core.masks import iter_labels
    from segviewer.core.progress import run_to_end
    from segviewer.core.types import MaskSettings

    labels = run_to_end(iter_labels(pred, MaskSettings())).labels
    p = _softmax(logits.astype(np.float64), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log(p)).sum(axis=0) / math.log(3)
    conf = p.max(axis=0)
    for axis in (0, 2):
        u = uncertainty(pred, labels, axis)
        assert u.threshold == LOW_CONFIDENCE
        for i in range(shape[axis]):
            lab_i = np.take(labels, i, axis=axis)
            h_i = np.take(h, i, axis=axis)
            c_i = np.take(conf, i, axis=axis)
            for k in range(3):
                sel = (lab_i == k) & np.isfinite(h_i)
                me = u.mean_entropy(i)[k]
                if sel.any():
                    assert me == pytest.approx(h_i[sel].mean(), rel=1e-5)
                    assert u.low_share(i)[k] == pytest.approx((c_i[sel] < 0.8).mean())
                else:
                    assert math.isnan(me)
            allv = np.isfinite(h_i)
            assert u.mean_entropy(i)[3] == pytest.approx(h_i[allv].mean(), rel=1e-5)
        assert int(u.count.sum(axis=0)[3]) == labels.size - 1
        # and into the case metrics: whole-volume means per predicted class
        m = case_metrics(labels, None, 3, (1.0, 1.0, 1.0), axis, uncertainty=u)
        for k in range(3):
            sel = (labels == k) & np.isfinite(h)
            assert m.per_class[k].mean_entropy == pytest.approx(h[sel].mean(), rel=1e-5)
            assert m.per_class[k].n_pred == int((labels == k).sum())
            assert math.isnan(m.per_class[k].dice) and m.per_class[k].n_ref is None
        # without a reference the worst slice is the most uncertain one
        w = m.worst_slice[1]
        assert w is not None
        assert m.per_slice[w][1].mean_entropy == max(
            r[1].mean_entropy for r in m.per_slice if r[1].n_pred
        )


def test_label_maps_have_no_uncertainty() -> None:
    pred = prediction_from_array(np.zeros((2, 3, 4), np.uint8), (2, 3, 4))
    with pytest.raises(SegviewerError, match="label map has no probabilities"):
        uncertainty(pred, np.zeros((2, 3, 4), np.uint8), 0)
