"""annotated_slice: the composed overlay, untouched, plus a legend panel of the classes shown."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.classes import INVALID_COLOR, ClassTable
from segviewer.core.overlay import auto_window, build_lut, compose, window_to_uint8
from segviewer.core.types import SegviewerError
from segviewer.io.classtables import load_class_table
from segviewer.io.render import annotated_slice, legend_entries, upscale


@pytest.fixture(scope="module")
def demo_slice(demo_dir: Path) -> tuple[np.ndarray, np.ndarray, ClassTable]:
    t1 = np.asanyarray(nib.load(demo_dir / "t1.nii.gz").dataobj)
    probs = np.asanyarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj)
    level, width = auto_window(t1)
    k = 47
    grey = window_to_uint8(np.ascontiguousarray(t1[:, :, k].T[::-1]), level, width)
    labels = np.ascontiguousarray(np.argmax(probs[:, :, k], axis=-1).astype(np.uint8).T[::-1])
    table = load_class_table(demo_dir / "classes.json")
    return grey, labels, table


def _colour_pixels(picture: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int(np.count_nonzero(np.all(picture == np.array(rgb, np.uint8), axis=-1)))


def test_without_legend_equals_compose(
    demo_slice: tuple[np.ndarray, np.ndarray, ClassTable],
) -> None:
    grey, labels, table = demo_slice
    lut = build_lut(table, None, 0.6, 256)
    pic = annotated_slice(grey, labels, lut, table, legend=False)
    assert pic.dtype == np.uint8 and pic.shape == (*grey.shape, 3)
    assert np.array_equal(pic, compose(grey, labels, lut)[..., :3])
    # A grey-matter pixel really is blended with grey matter's colour (#e6a23c).
    r, c = np.argwhere(labels == 1)[0]
    a = round(255 * 0.6) / 255
    expected = np.round(grey[r, c] * (1 - a) + np.array([0xE6, 0xA2, 0x3C]) * a)
    assert np.abs(pic[r, c].astype(int) - expected).max() <= 1
    # Background pixels stay grey.
    r, c = np.argwhere(labels == 0)[0]
    assert (pic[r, c] == grey[r, c]).all()


def test_legend_panel_lists_present_visible_classes(
    demo_slice: tuple[np.ndarray, np.ndarray, ClassTable],
) -> None:
    grey, labels, table = demo_slice
    lut = build_lut(table, None, 0.5, 256)
    pic = annotated_slice(grey, labels, lut, table, legend=True)
    rows, cols = grey.shape
    assert pic.shape[0] >= rows and pic.shape[1] > cols
    # The slice itself is not covered by the legend.
    assert np.array_equal(pic[:rows, :cols], compose(grey, labels, lut)[..., :3])
    panel = pic[:, cols:]
    assert _colour_pixels(panel, table[1].color) > 20  # swatch
    assert _colour_pixels(panel, table[2].color) > 20
    # Some light text pixels are drawn next to the swatches.
    assert np.count_nonzero(panel.min(axis=-1) > 200) > 30

    visible = [True, False, True]
    lut_hidden = build_lut(table, visible, 0.5, 256)
    pic2 = annotated_slice(grey, labels, lut_hidden, table, visible=visible)
    panel2 = pic2[:, cols:]
    assert _colour_pixels(panel2, table[1].color) == 0
    assert _colour_pixels(panel2, table[2].color) > 20


def test_legend_entries_only_present_and_reserved() -> None:
    table = ClassTable.default(4)
    labels = np.array([[0, 1, 1], [3, 255, 0]], np.uint8)
    names = [n for n, _ in legend_entries(labels, table)]
    assert names == [table[1].name, table[3].name, "invalid (NaN/inf)"]
    assert legend_entries(labels, table)[-1][1] == tuple(INVALID_COLOR)
    assert legend_entries(np.zeros((3, 3), np.uint8), table) == []


def test_no_legend_when_no_class_present(
    demo_slice: tuple[np.ndarray, np.ndarray, ClassTable],
) -> None:
    grey, _, table = demo_slice
    empty = np.zeros_like(grey)
    pic = annotated_slice(grey, empty, build_lut(table, None, 0.5, 256), table)
    assert pic.shape == (*grey.shape, 3)
    assert np.array_equal(pic[..., 0], grey)


def test_scale_and_pixel_aspect(mr_small: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(mr_small)
    px = ds.pixel_array.astype(np.float32)
    grey = window_to_uint8(px, float(np.percentile(px, 50)), float(np.ptp(px)))
    labels = (px > np.percentile(px, 70)).astype(np.uint8)
    table = ClassTable.default(2)
    lut = build_lut(table, None, 0.5, 256)
    base = compose(grey, labels, lut)[..., :3]
    pic = annotated_slice(grey, labels, lut, table, legend=False, scale=3)
    assert pic.shape == (192, 192, 3)
    assert np.array_equal(pic[::3, ::3], base)
    auto = annotated_slice(grey, labels, lut, table, legend=False, scale=None)
    assert auto.shape == (512, 512, 3)  # 64 px -> 8x, so the legend text is legible
    tall = annotated_slice(grey, labels, lut, table, legend=False, scale=2, pixel_aspect=1.5)
    assert tall.shape == (192, 128, 3)
    assert np.array_equal(tall[:, ::2], np.repeat(base, 3, axis=0))
    assert np.array_equal(tall[:, 1::2], np.repeat(base, 3, axis=0))
    assert np.array_equal(upscale(base, 1), base)


def test_bad_inputs(demo_slice: tuple[np.ndarray, np.ndarray, ClassTable]) -> None:
    grey, labels, table = demo_slice
    lut = build_lut(table, None, 0.5, 256)
    with pytest.raises(SegviewerError, match="does not match"):
        annotated_slice(grey, labels[:-1], lut, table)
    with pytest.raises(SegviewerError, match="overlay mode"):
        annotated_slice(grey, labels, lut, table, mode="glow")
    with pytest.raises(SegviewerError, match="2-D uint8"):
        annotated_slice(grey.astype(np.float32), labels, lut, table)
