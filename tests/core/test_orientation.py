"""Orientation: axis codes, view axes, zero-copy slices and coordinate round trips."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.orientation import (
    VIEWS,
    axis_codes,
    display_axes,
    display_shape,
    display_to_voxel,
    n_slices,
    take_slice,
    voxel_to_display,
    voxel_to_world,
)
from segviewer.core.types import STACK_AFFINE, SegviewerError

# A DICOM axial series as io reads it (LPS positions converted to RAS): axis 0 = slice
# (towards Superior), axis 1 = image row (towards Posterior), axis 2 = image column (towards
# patient Left), 0.5 x 0.5 mm pixels, 3 mm slices.
LPS_AXIAL_RAS = np.array(
    [
        [0.0, 0.0, -0.5, 120.0],
        [0.0, -0.5, 0.0, 110.0],
        [3.0, 0.0, 0.0, -40.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _affine_from_codes(
    codes: str, zooms: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    letters = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}
    a = np.eye(4)
    a[:3, :3] = 0
    for v, ch in enumerate(codes):
        w, s = letters[ch]
        a[w, v] = s * zooms[v]
    return a


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LIP", "SPL", "PIR", "ASR", "ILA", "RSP", "LAI"])
def test_axis_codes_match_nibabel_on_permuted_flipped_affines(codes: str) -> None:
    aff = _affine_from_codes(codes, (0.8, 1.2, 3.0))
    assert "".join(axis_codes(aff)) == codes
    assert "".join(axis_codes(aff)) == "".join(nib.aff2axcodes(aff))


def test_axis_codes_oblique_uses_largest_component_and_matches_nibabel() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        # random rotation (QR) of a permuted/flipped affine, kept mildly oblique (< 30 deg)
        base = _affine_from_codes("".join(rng.permutation(list("RAS"))))
        angle = rng.uniform(-0.5, 0.5, 3)
        cx, cy, cz = np.cos(angle)
        sx, sy, sz = np.sin(angle)
        rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        aff = base.copy()
        aff[:3, :3] = rx @ ry @ rz @ base[:3, :3] @ np.diag(rng.uniform(0.5, 3, 3))
        assert axis_codes(aff) == tuple(nib.aff2axcodes(aff))


def test_axis_codes_exact_tie_is_deterministic_and_a_permutation() -> None:
    aff = np.eye(4)
    aff[:3, :3] = [[1, 1, 0], [1, -1, 0], [0, 0, 1]]  # 45 degrees: columns 0/1 tie on x/y
    codes = axis_codes(aff)
    assert codes == ("R", "P", "S")
    assert axis_codes(aff) == codes


def test_axis_codes_of_stack_affine() -> None:
    assert axis_codes(STACK_AFFINE) == ("S", "P", "L")


def test_degenerate_affine_raises() -> None:
    aff = np.eye(4)
    aff[:, 1] = 0
    with pytest.raises(SegviewerError, match="zero-length"):
        axis_codes(aff)
    with pytest.raises(SegviewerError, match="finite"):
        axis_codes(np.full((4, 4), np.nan))


def test_demo_ras_axial_coronal_sagittal(demo_dir: Path) -> None:
    img = nib.load(demo_dir / "t1.nii.gz")
    data = np.asarray(img.dataobj)
    aff = img.affine
    assert data.shape == (98, 116, 94)

    ax = display_axes(aff, "axial")
    assert (ax.slice_axis, ax.row_axis, ax.col_axis) == (2, 1, 0)
    assert ax.flip_rows and ax.flip_cols  # rows = j reversed (A at top), cols = i reversed (R left)
    assert (ax.row_spacing, ax.col_spacing) == (2.0, 2.0)
    s = take_slice(data, ax, 40)
    assert s.shape == (116, 98) == display_shape(data.shape, ax)
    assert np.shares_memory(s, data)
    np.testing.assert_array_equal(s, data[::-1, ::-1, 40].T)

    neuro = display_axes(aff, "axial", radiological=False)
    np.testing.assert_array_equal(take_slice(data, neuro, 40), data[:, ::-1, 40].T)

    cor = display_axes(aff, "coronal")
    assert (cor.slice_axis, cor.row_axis, cor.col_axis) == (1, 2, 0)
    np.testing.assert_array_equal(take_slice(data, cor, 60), data[::-1, 60, ::-1].T)

    sag = display_axes(aff, "sagittal")
    assert (sag.slice_axis, sag.row_axis, sag.col_axis) == (0, 2, 1)
    np.testing.assert_array_equal(take_slice(data, sag, 49), data[49, ::-1, ::-1].T)
    assert n_slices(data.shape, sag) == 98

    # Anatomy check on real data: in the axial mid-slice the brain's anterior end (frontal
    # lobe) is in the top half, i.e. the row of the first non-zero voxel with the largest j.
    mid = take_slice(data, ax, 47).astype(float)
    rows_with_tissue = np.nonzero(mid.sum(axis=1) > 0)[0]
    top_row = rows_with_tissue[0]
    j_top = display_to_voxel(ax, 47, int(top_row), 49, shape=data.shape)[1]
    assert voxel_to_world(aff, (49, j_top, 47))[1] > 0  # anterior of the origin


def test_stack_affine_shows_image_unchanged_in_axial() -> None:
    img = np.arange(5 * 7, dtype=np.float32).reshape(1, 5, 7)
    ax = display_axes(STACK_AFFINE, "axial")
    s = take_slice(img, ax, 0)
    np.testing.assert_array_equal(s, img[0])
    assert np.shares_memory(s, img)
    assert not ax.flip_rows and not ax.flip_cols


def test_dicom_lps_axial_series() -> None:
    vol = np.random.default_rng(0).random((6, 8, 10)).astype(np.float32)  # (slice, row, col)
    assert axis_codes(LPS_AXIAL_RAS) == ("S", "P", "L")
    ax = display_axes(LPS_AXIAL_RAS, "axial")
    # A DICOM axial slice is displayed as stored: row 0 anterior, column 0 patient right.
    np.testing.assert_array_equal(take_slice(vol, ax, 3), vol[3])
    assert (ax.row_spacing, ax.col_spacing) == (0.5, 0.5)
    cor = display_axes(LPS_AXIAL_RAS, "coronal")
    # rows superior-first: the highest slice index at the top
    np.testing.assert_array_equal(take_slice(vol, cor, 2), vol[::-1, 2, :])
    assert (cor.row_spacing, cor.col_spacing) == (3.0, 0.5)
    sag = display_axes(LPS_AXIAL_RAS, "sagittal")
    np.testing.assert_array_equal(take_slice(vol, sag, 4), vol[::-1, :, 4])


def test_lip_affine_views() -> None:
    aff = _affine_from_codes("LIP", (1.0, 2.0, 3.0))
    vol = np.random.default_rng(1).random((4, 5, 6))
    ax = display_axes(aff, "axial")  # slice along axis 1 (I), rows A->P on axis 2 (P: no flip)
    assert (ax.slice_axis, ax.row_axis, ax.col_axis) == (1, 2, 0)
    assert not ax.flip_rows and not ax.flip_cols  # axis 0 grows to L: already R->L
    np.testing.assert_array_equal(take_slice(vol, ax, 2), vol[:, 2, :].T)
    assert (ax.row_spacing, ax.col_spacing) == (3.0, 1.0)
    sag = display_axes(aff, "sagittal")  # rows S->I on axis 1 (I: no flip), cols A->P axis 2
    np.testing.assert_array_equal(take_slice(vol, sag, 1), vol[1])


def test_take_slice_with_leading_class_axis() -> None:
    vol = np.random.default_rng(2).random((3, 4, 5, 6)).astype(np.float32)
    aff = _affine_from_codes("RAS")
    for view in VIEWS:
        axes = display_axes(aff, view)
        s = take_slice(vol, axes, 2, leading=1)
        assert np.shares_memory(s, vol)
        for c in range(3):
            np.testing.assert_array_equal(s[c], take_slice(vol[c], axes, 2))


def test_take_slice_rejects_out_of_range() -> None:
    vol = np.zeros((4, 5, 6))
    axes = display_axes(np.eye(4), "axial")
    with pytest.raises(SegviewerError, match="outside"):
        take_slice(vol, axes, 6)
    with pytest.raises(SegviewerError, match="outside"):
        take_slice(vol, axes, -1)
    with pytest.raises(SegviewerError, match="unknown view"):
        display_axes(np.eye(4), "oblique")


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LIP", "SPL", "ASR"])
@pytest.mark.parametrize("radiological", [True, False])
def test_display_voxel_round_trip_and_pixel_agreement(codes: str, radiological: bool) -> None:
    rng = np.random.default_rng(4)
    shape = (7, 9, 11)
    vol = rng.random(shape)
    aff = _affine_from_codes(codes)
    for view in VIEWS:
        axes = display_axes(aff, view, radiological)
        for _ in range(50):
            ijk = tuple(int(rng.integers(0, n)) for n in shape)
            index, row, col = voxel_to_display(axes, ijk, shape=shape)
            assert display_to_voxel(axes, index, row, col, shape=shape) == ijk
            # The pixel the canvas shows at (row, col) is that voxel's value.
            assert take_slice(vol, axes, index)[row, col] == vol[ijk]
    with pytest.raises(SegviewerError, match="outside"):
        voxel_to_display(display_axes(aff, "axial"), (7, 0, 0), shape=shape)


def test_voxel_to_world() -> None:
    assert voxel_to_world(LPS_AXIAL_RAS, (0, 0, 0)) == (120.0, 110.0, -40.0)
    assert voxel_to_world(LPS_AXIAL_RAS, (1, 2, 4)) == (118.0, 109.0, -37.0)


def test_axis_codes_of_real_nifti_files(
    nibabel_anatomical: Path, nibabel_example4d: Path, demo_dir: Path
) -> None:
    for path in (nibabel_anatomical, nibabel_example4d, demo_dir / "t1.nii.gz"):
        img = nib.load(path)
        assert axis_codes(img.affine) == tuple(nib.aff2axcodes(img.affine)), path
        shape = img.shape[:3]
        for view in VIEWS:
            axes = display_axes(img.affine, view)
            # the three views slice along three different axes, rows/cols are the other two
            assert {axes.slice_axis, axes.row_axis, axes.col_axis} == {0, 1, 2}
            rows, cols = display_shape(shape, axes)
            assert rows * cols * n_slices(shape, axes) == int(np.prod(shape))
