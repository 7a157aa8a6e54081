"""Windowing, lookup tables, outlines and the blended overlay, checked pixel by pixel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.classes import INVALID_COLOR, UNCERTAIN_COLOR, ClassTable
from segviewer.core.overlay import (
    COLORMAPS,
    auto_window,
    build_lut,
    colormap_lut,
    compose,
    compose_heatmap,
    heatmap_rgba,
    outline,
    window_to_uint8,
)
from segviewer.core.types import SegviewerError


def test_window_to_uint8_maps_ends_midpoint_clips_and_nan() -> None:
    x = np.array([[-10.0, 0.0, 50.0, 100.0, 200.0, np.nan]], dtype=np.float32)
    g = window_to_uint8(x, level=50, width=100)
    assert g.dtype == np.uint8
    np.testing.assert_array_equal(g, [[0, 0, 128, 255, 255, 0]])
    i16 = np.arange(0, 1001, 100, dtype=np.int16).reshape(1, -1)
    ref = np.clip(np.floor(i16 / 1000 * 255 + 0.5), 0, 255)  # halves round up
    np.testing.assert_array_equal(window_to_uint8(i16, 500, 1000), ref)
    # zero width: a threshold at the level
    np.testing.assert_array_equal(
        window_to_uint8(np.array([1.0, 2.0, 3.0]), 2.0, 0.0), [0, 128, 255]
    )


def test_auto_window_on_real_mri_matches_full_percentiles(demo_dir: Path, tmp_path: Path) -> None:
    data = np.asarray(nib.load(demo_dir / "t1.nii.gz").dataobj)
    level, width = auto_window(data)
    nz = data[data != 0].astype(np.float64)
    a, b = np.percentile(nz, [0.5, 99.5])
    # the strided sample estimates the full-volume percentiles closely
    assert abs((level - width / 2) - a) <= 0.03 * (b - a)
    assert abs((level + width / 2) - b) <= 0.03 * (b - a)
    # a memory-mapped copy gives the same window
    np.save(tmp_path / "t1.npy", data)
    mm = np.load(tmp_path / "t1.npy", mmap_mode="r", allow_pickle=False)
    assert auto_window(mm) == (level, width)
    assert auto_window(np.zeros((4, 5, 6))) == (0.5, 1.0)
    with pytest.raises(SegviewerError, match="percentiles"):
        auto_window(data, 90, 10)


def test_build_lut_alpha_reserved_and_sizes() -> None:
    table = ClassTable.default(4)
    lut = build_lut(table, [True, True, False, True], opacity=0.5)
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    np.testing.assert_array_equal(lut[:4, :3], table.colors)
    np.testing.assert_array_equal(lut[:4, 3], [0, 128, 0, 128])  # background and hidden: 0
    assert (lut[4:254, 3] == 0).all()
    assert tuple(lut[254]) == (*UNCERTAIN_COLOR, 128)
    assert tuple(lut[255]) == (*INVALID_COLOR, 128)
    assert build_lut(table, None, 1.0, show_invalid=False)[255, 3] == 0
    big = build_lut(ClassTable.default(300), None, 1.0)
    assert big.shape == (65536, 4) and tuple(big[65535]) == (*INVALID_COLOR, 255)
    with pytest.raises(SegviewerError, match="opacity"):
        build_lut(table, None, 1.5)


def test_outline_of_a_square_is_its_border_only() -> None:
    lab = np.zeros((10, 12), dtype=np.uint8)
    lab[2:7, 3:9] = 2
    o = outline(lab)
    ring = np.zeros_like(lab)
    ring[2:7, 3:9] = 2
    ring[3:6, 4:8] = 0
    np.testing.assert_array_equal(o, ring)
    o2 = outline(lab, width=2)
    ring2 = np.zeros_like(lab)
    ring2[2:7, 3:9] = 2
    ring2[4:5, 5:7] = 0
    np.testing.assert_array_equal(o2, ring2)
    # a class touching the slice edge: the edge is not a boundary
    edge = np.zeros((5, 5), dtype=np.uint8)
    edge[:, :2] = 1
    np.testing.assert_array_equal(outline(edge)[:, 1], 1)
    np.testing.assert_array_equal(outline(edge)[:, 0], 0)


def _grey_and_labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (64, 80), dtype=np.uint8)
    lab = np.zeros((64, 80), dtype=np.uint8)
    lab[10:30, 10:40] = 1
    lab[35:60, 20:70] = 2
    lab[0:8, 0:8] = 3
    lab[62, 79] = 255  # invalid voxel
    return grey, lab


def test_compose_fill_hidden_class_opacity_and_reserved() -> None:
    grey, lab = _grey_and_labels()
    table = ClassTable.default(4)
    lut = build_lut(table, [True, True, False, True], opacity=0.5)
    rgba = compose(grey, lab, lut)
    assert rgba.shape == (64, 80, 4) and (rgba[..., 3] == 255).all()
    g = grey.astype(np.float64)
    # background and a hidden class leave the grey pixel unchanged
    for mask in (lab == 0, lab == 2):
        for ch in range(3):
            np.testing.assert_array_equal(rgba[..., ch][mask], grey[mask])
    # opacity 0.5 (alpha 128): the midpoint of grey and colour, rounded
    a = 128 / 255
    for k in (1, 3):
        m = lab == k
        for ch in range(3):
            ref = np.floor(g[m] * (1 - a) + table.colors[k, ch] * a + 0.5)
            np.testing.assert_allclose(rgba[..., ch][m], ref, atol=1)
    inv = rgba[62, 79, :3].astype(float)
    np.testing.assert_allclose(inv, (g[62, 79] * (1 - a) + np.array(INVALID_COLOR) * a), atol=1)
    # opacity 1: exactly the class colour
    full = compose(grey, lab, build_lut(table, None, 1.0))
    np.testing.assert_array_equal(
        full[lab == 1][:, :3], np.tile(table.colors[1], ((lab == 1).sum(), 1))
    )


def test_compose_outline_and_both_modes() -> None:
    grey, lab = _grey_and_labels()
    table = ClassTable.default(4)
    lut = build_lut(table, None, opacity=0.5)
    fill = compose(grey, lab, lut)
    ring = outline(lab) != 0
    out_only = compose(grey, lab, lut, mode="outline")
    # the outline is drawn opaque in the class colour whatever the fill opacity
    full = compose(grey, lab, build_lut(table, None, opacity=1.0))
    np.testing.assert_array_equal(out_only[ring], full[ring])
    assert not np.array_equal(out_only[ring], fill[ring])
    hidden = compose(grey, lab, build_lut(table, [True, False, True, True], 0.5), mode="outline")
    np.testing.assert_array_equal(hidden[ring & (lab == 1)][:, 0], grey[ring & (lab == 1)])
    interior = (lab == 1) & ~ring
    np.testing.assert_array_equal(out_only[interior][:, 0], grey[interior])
    both = compose(grey, lab, lut, mode="both")
    # outline opaque in the class colour, interior blended as in fill mode
    edge1 = ring & (lab == 1)
    np.testing.assert_array_equal(both[edge1][:, :3], np.tile(table.colors[1], (edge1.sum(), 1)))
    np.testing.assert_array_equal(both[interior], fill[interior])
    np.testing.assert_array_equal(both[lab == 0], fill[lab == 0])


def test_compose_uint16_labels_match_uint8_path() -> None:
    grey, lab = _grey_and_labels()
    lab8 = lab.copy()
    lab8[62, 79] = 0
    table = ClassTable.default(300)
    lut16 = build_lut(table, None, 0.7)
    lab16 = lab8.astype(np.uint16)
    lab16[5, 70] = 299
    small = ClassTable(table.classes[:4])
    expect = compose(grey, lab8, build_lut(small, None, 0.7))
    got = compose(grey, lab16, lut16)
    mask = np.ones(lab.shape, dtype=bool)
    mask[5, 70] = False
    np.testing.assert_array_equal(got[mask], expect[mask])
    a = round(0.7 * 255) / 255
    np.testing.assert_allclose(
        got[5, 70, :3], grey[5, 70] * (1 - a) + table.colors[299] * a, atol=1
    )
    out = np.empty((64, 80, 4), dtype=np.uint8)
    assert compose(grey, lab8, build_lut(small, None, 0.7), out=out) is out


def test_compose_rejects_mismatched_inputs() -> None:
    grey, lab = _grey_and_labels()
    lut = build_lut(ClassTable.default(4))
    with pytest.raises(SegviewerError, match="same 2-D shape"):
        compose(grey[:10], lab, lut)
    with pytest.raises(SegviewerError, match="overlay mode"):
        compose(grey, lab, lut, mode="glow")


def _argb_to_rgba(frame: np.ndarray) -> np.ndarray:
    """Native 0xAARRGGBB pixels (read as uint32 values) back to R, G, B, A bytes."""
    v = frame.view(np.uint32)[..., 0]
    return np.stack([v >> 16, v >> 8, v, v >> 24], axis=-1).astype(np.uint8)


@pytest.mark.parametrize("mode", ["fill", "outline", "both"])
def test_compose_argb32_is_the_same_picture_in_qts_pixel_format(mode: str) -> None:
    grey, lab = _grey_and_labels()
    lut = build_lut(ClassTable.default(4), [True, True, False, True], opacity=0.6)
    rgba = compose(grey, lab, lut, mode=mode, outline_width=2)
    argb = compose(grey, lab, lut, mode=mode, outline_width=2, argb32=True)
    np.testing.assert_array_equal(_argb_to_rgba(argb), rgba)
    values = np.linspace(0, 1, lab.size, dtype=np.float32).reshape(lab.shape)
    values[3, 4] = np.nan
    heat = compose_heatmap(grey, values, 0.0, 1.0, "magma", opacity=0.7)
    heat32 = compose_heatmap(grey, values, 0.0, 1.0, "magma", opacity=0.7, argb32=True)
    np.testing.assert_array_equal(_argb_to_rgba(heat32), heat)


def test_compose_refuses_a_label_beyond_a_short_lut() -> None:
    grey, lab = _grey_and_labels()
    short = build_lut(ClassTable.default(4))[:3]
    assert int(lab.max()) >= 3
    with pytest.raises(SegviewerError, match="beyond the 3-entry lookup table"):
        compose(grey, lab, short)
    ok = np.minimum(lab, 2)
    np.testing.assert_array_equal(compose(grey, ok, short), compose(grey, ok, short[:3]))


@pytest.mark.parametrize("name", ["inferno", "viridis", "magma", "gray"])
def test_colormaps_agree_with_pyqtgraphs_reference_tables(name: str) -> None:
    import pyqtgraph as pg

    lut = colormap_lut(name)
    assert lut.shape == (256, 4) and lut.dtype == np.uint8 and (lut[:, 3] == 255).all()
    if name == "gray":
        np.testing.assert_array_equal(lut[:, 0], np.arange(256))
        return
    ref = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=False)
    # interpolating 33 anchors stays within 2 levels of the 256-entry original
    assert np.abs(lut[:, :3].astype(int) - ref.astype(int)).max() <= 2
    assert set(COLORMAPS) >= {"inferno", "viridis", "magma", "gray"}


def test_heatmap_rgba_ends_and_nan() -> None:
    v = np.array([[0.0, 0.5, 1.0, np.nan, 2.0]], dtype=np.float32)
    rgba = heatmap_rgba(v, 0.0, 1.0, "viridis")
    lut = colormap_lut("viridis")
    np.testing.assert_array_equal(rgba[0, 0], lut[0])
    np.testing.assert_array_equal(rgba[0, 2], lut[255])
    np.testing.assert_array_equal(rgba[0, 4], lut[255])
    np.testing.assert_array_equal(rgba[0, 1], lut[128])
    assert rgba[0, 3, 3] == 0
    with pytest.raises(SegviewerError, match="colour map"):
        heatmap_rgba(v, 0, 1, "jet")
