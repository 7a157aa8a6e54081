"""Layout detection and zero-copy application on real demo data and the documented shapes."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.layout import (
    Layout,
    ShapeMismatch,
    describe_layout,
    detect_layout,
    fitting_layouts,
)
from segviewer.core.types import SegviewerError

IMG = (98, 116, 94)  # demo t1.nii.gz


@pytest.fixture(scope="module")
def probs(demo_dir: Path) -> np.ndarray:
    """Demo tissue probabilities, channels first (3, 98, 116, 94) float32."""
    data = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj, dtype=np.float32)
    return np.ascontiguousarray(np.moveaxis(data, -1, 0))


# (name, function building the raw array from channels-first (C, X, Y, Z))
LAYOUTS = {
    "DHWC": lambda p: np.moveaxis(p, 0, -1),
    "NDHWC": lambda p: np.moveaxis(p, 0, -1)[None],
    "CDHW": lambda p: p,
    "NCDHW": lambda p: p[None],
    "ZXYC": lambda p: p.transpose(3, 1, 2, 0),  # 2-D model over nibabel slices, stacked
    "NZXYC": lambda p: p.transpose(3, 1, 2, 0)[None],
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_detected_layout_recovers_reference_exactly(probs: np.ndarray, name: str) -> None:
    raw = np.ascontiguousarray(LAYOUTS[name](probs))
    layout = detect_layout(raw.shape, IMG, has_class_axis=True)
    assert layout.name == name
    view = layout.apply(raw)
    assert view.shape == (3, *IMG)
    assert np.array_equal(view, probs)
    assert np.shares_memory(view, raw)
    assert "ambiguous" not in layout.note
    # the name round-trips as an explicit layout
    again = detect_layout(raw.shape, IMG, explicit=layout.name)
    assert again.spatial_axes == layout.spatial_axes
    assert again.class_axis == layout.class_axis


def test_class_axis_in_the_middle_is_detected(probs: np.ndarray) -> None:
    raw = probs.transpose(3, 0, 1, 2)  # (Z, C, X, Y): 2-D model, channels first, stacked
    layout = detect_layout(raw.shape, IMG, has_class_axis=True)
    assert layout.name == "ZCXY" and layout.class_axis == 1
    assert np.array_equal(layout.apply(raw), probs)
    assert np.array_equal(detect_layout(raw.shape, IMG, explicit="zcxy").apply(raw), probs)
    assert describe_layout(layout) == (
        "image axis 2 (94), classes (3), image axis 0 (98), image axis 1 (116)"
    )


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_every_axis_order_is_recovered(
    probs: np.ndarray, order: tuple[int, ...], batch: bool
) -> None:
    # probs is (C, X, Y, Z) with four distinct sizes: each of the 24 orders, with a batch
    # axis or not, has exactly one reading, and detection finds it
    raw = probs.transpose(order)
    if batch:
        raw = raw[None]
    layout = detect_layout(raw.shape, IMG)
    assert np.array_equal(layout.apply(raw), probs)
    assert "ambiguous" not in layout.note
    assert fitting_layouts(raw.shape, IMG) == [layout.name]
    again = detect_layout(raw.shape, IMG, explicit=layout.name)
    assert again.spatial_axes == layout.spatial_axes and again.class_axis == layout.class_axis


def test_issue_shape_zcxy_and_failed_match_names_the_layout() -> None:
    # logits (Z, C, X, Y) = (189, 3, 197, 233) for a 197x233x189 image
    raw, img = (189, 3, 197, 233), (197, 233, 189)
    assert detect_layout(raw, img).name == "ZCXY"
    with pytest.raises(ShapeMismatch) as err:
        detect_layout(raw, img, explicit="NDHW"[1:] + "C")
    assert "--layout ZCXY" in str(err.value) and "--resample" not in str(err.value)
    assert err.value.fitting_layouts == ("ZCXY",)
    assert err.value.resample_possible is False
    with pytest.raises(ShapeMismatch) as err:
        detect_layout(raw, img, has_class_axis=False)  # the kind says label map
    assert err.value.fitting_layouts == ("ZCXY",) and not err.value.resample_possible


def test_scaled_mismatch_names_the_layout_and_offers_resampling() -> None:
    with pytest.raises(ShapeMismatch) as err:
        detect_layout((95, 3, 98, 116), (197, 233, 189))
    assert "--layout ZCXY" in str(err.value) and "--resample" in str(err.value)
    assert err.value.resample_possible and err.value.fitting_layouts == ()


def test_label_map_permuted_and_trailing_singleton(probs: np.ndarray) -> None:
    labels = probs.argmax(axis=0).astype(np.uint8)
    raw = labels.transpose(2, 0, 1)[..., None]  # (Z, X, Y, 1)
    layout = detect_layout(raw.shape, IMG, has_class_axis=False)
    assert layout.class_axis is None
    assert layout.squeeze_axes == (3,)
    assert np.array_equal(layout.apply(raw), labels)


def test_2d_prediction_on_2d_image_inserts_the_missing_axis() -> None:
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((64, 48, 4)).astype(np.float32)  # HWC, 2-D image (1, 64, 48)
    layout = detect_layout(raw.shape, (1, 64, 48), has_class_axis=True)
    assert layout.name == "HWC" and layout.inserted_axes == (0,)
    view = layout.apply(raw)
    assert view.shape == (4, 1, 64, 48)
    assert np.array_equal(view[:, 0], np.moveaxis(raw, -1, 0))
    assert np.shares_memory(view, raw)
    assert layout.spatial_shape == (1, 64, 48)
    # expand()/expanded() give a real axis for Prediction.spatial_shape
    exp = layout.expanded()
    data = layout.expand(raw)
    assert tuple(data.shape[a] for a in exp.spatial_axes) == (1, 64, 48)
    assert np.array_equal(exp.apply(data), view)
    # the same HWC on a 2-D NIfTI (64, 48, 1): rows/cols are image axes 0, 1
    nifti = detect_layout(raw.shape, (64, 48, 1), has_class_axis=True)
    assert nifti.inserted_axes == (2,)
    assert np.array_equal(nifti.apply(raw)[:, :, :, 0], np.moveaxis(raw, -1, 0))
    assert detect_layout(raw.shape, (64, 48, 1), explicit="HWC").spatial_axes == nifti.spatial_axes


def test_batch_of_one_on_a_2d_image_is_named_nhwc() -> None:
    raw = np.arange(64 * 48 * 2, dtype=np.float32).reshape(1, 64, 48, 2)
    layout = detect_layout(raw.shape, (1, 64, 48), has_class_axis=True)
    assert layout.name == "NHWC" and "ambiguous" not in layout.note
    assert np.array_equal(layout.apply(raw), np.moveaxis(raw, -1, 0))
    assert detect_layout(raw.shape, (1, 64, 48), explicit="NHWC").name == "NHWC"


def test_square_slices_are_ambiguous_and_say_how_to_choose() -> None:
    raw = np.arange(64 * 64 * 3, dtype=np.float32).reshape(64, 64, 3)
    layout = detect_layout(raw.shape, (1, 64, 64), has_class_axis=True)
    assert layout.name == "HWC"
    assert np.array_equal(layout.apply(raw)[:, 0], np.moveaxis(raw, -1, 0))
    assert "ambiguous" in layout.note and "--layout WHC" in layout.note
    transposed = detect_layout(raw.shape, (1, 64, 64), explicit="WHC")
    assert np.array_equal(transposed.apply(raw)[:, 0], np.moveaxis(raw, -1, 0).transpose(0, 2, 1))


def test_class_count_equal_to_an_image_size_prefers_identity_order() -> None:
    # channels-first (3, 64, 64, 3) on a (64, 64, 3) image also reads as a permuted
    # channels-last array; the identity reading wins and the note names the alternatives
    raw = np.arange(3 * 64 * 64 * 3, dtype=np.float32).reshape(3, 64, 64, 3)
    layout = detect_layout(raw.shape, (64, 64, 3), has_class_axis=True)
    assert layout.name == "CDHW"
    assert np.array_equal(layout.apply(raw), raw)
    assert "ambiguous" in layout.note and "ZXYC" in layout.note
    last = detect_layout(raw.shape, (64, 64, 3), explicit="ZXYC")
    assert np.array_equal(last.apply(raw), raw.transpose(3, 1, 2, 0))


def test_channels_last_preferred_when_both_keep_the_image_order() -> None:
    raw = np.zeros((3, 98, 116, 3), np.float32)
    layout = detect_layout(raw.shape, (3, 98, 116), has_class_axis=True)
    assert layout.name == "DHWC" and layout.class_axis == 3
    assert "ambiguous" in layout.note


def test_memmap_view_stays_a_view(tmp_path: Path, probs: np.ndarray) -> None:
    path = tmp_path / "p.npy"
    np.save(path, probs.transpose(3, 1, 2, 0)[None])
    raw = np.load(path, mmap_mode="r")
    layout = detect_layout(raw.shape, IMG)
    view = layout.apply(raw)
    assert isinstance(view.base, np.memmap) or isinstance(view, np.memmap)
    assert np.shares_memory(view, raw)
    assert not view.flags.writeable
    assert np.array_equal(view, probs)


@pytest.mark.parametrize(
    ("explicit", "message"),
    [
        ("DHW", "has 3 letters but the prediction has 4 axes"),
        ("DHWQ", "unknown letter"),
        ("XDHC", "image axis 0 is named twice"),
        ("CCHW", "C appears more than once"),
        ("NHWC", "marked N (batch) but has size 98"),
        ("HWDC", "has size 98 but image axis 1 has size 116"),
        ("DHC", "3 letters"),
    ],
)
def test_explicit_layout_errors(explicit: str, message: str) -> None:
    with pytest.raises(SegviewerError, match=re.escape(message)):
        detect_layout((98, 116, 94, 3), IMG, explicit=explicit)


def test_explicit_2d_layout_on_3d_image_is_refused() -> None:
    with pytest.raises(SegviewerError, match=r"image axis 0 \(size 98\) is not in the layout"):
        detect_layout((116, 94, 3), IMG, explicit="YZC")


def test_explicit_conflicts_with_kind() -> None:
    with pytest.raises(SegviewerError, match="label map"):
        detect_layout((98, 116, 94, 3), IMG, explicit="DHWC", has_class_axis=False)
    with pytest.raises(SegviewerError, match="add C"):
        detect_layout((98, 116, 94), IMG, explicit="DHW", has_class_axis=True)


def test_scale_factor_mismatch_suggests_resample() -> None:
    with pytest.raises(SegviewerError) as err:
        detect_layout((1, 49, 58, 47, 3), IMG, has_class_axis=True)
    msg = str(err.value)
    assert "prediction (1, 49, 58, 47, 3) does not match image (98, 116, 94)" in msg
    assert "0.50x" in msg and "--resample" in msg
    layout = detect_layout((1, 49, 58, 47, 3), IMG, has_class_axis=True, resample=True)
    assert layout.name == "NDHWC" and layout.spatial_shape == (49, 58, 47)


def test_anisotropic_rounded_scale_and_off_by_one() -> None:
    # 98x116x94 downsampled by 3 with rounding: 33x39x31
    with pytest.raises(SegviewerError, match=r"about 0\.33x the image's; use --resample"):
        detect_layout((33, 39, 31, 2), IMG, has_class_axis=True)
    with pytest.raises(SegviewerError, match="differs by a few voxels"):
        detect_layout((97, 116, 94, 2), IMG, has_class_axis=True)


def test_unrelated_sizes_do_not_suggest_resample() -> None:
    with pytest.raises(SegviewerError) as err:
        detect_layout((60, 70, 80, 3), IMG, has_class_axis=True)
    assert "does not match image (98, 116, 94)" in str(err.value)
    assert "belongs to this image" in str(err.value)


def test_too_many_axes() -> None:
    with pytest.raises(SegviewerError, match="7 axes"):
        detect_layout((1, 1, 1, 98, 116, 94, 3), IMG)


def test_layout_rejects_inconsistent_fields() -> None:
    with pytest.raises(SegviewerError, match="internal"):
        Layout((2, 3, 4), None, (), (0, 1, 1), "DHH")
    layout = detect_layout((98, 116, 94), IMG)
    with pytest.raises(SegviewerError, match="is for shape"):
        layout.apply(np.zeros((98, 116, 95)))
