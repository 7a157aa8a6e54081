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


def _info(**kw: object) -> object:
    from segviewer.io.render import SliceInfo

    base = dict(
        view="axial",
        index=47,
        n_slices=94,
        position=("z", 12.0),
        letters={"top": "A", "bottom": "P", "left": "R", "right": "L"},
        col_spacing=2.0,
    )
    base.update(kw)
    return SliceInfo(**base)  # type: ignore[arg-type]


def test_report_picture_has_caption_letters_and_scale_bar(
    demo_slice: tuple[np.ndarray, np.ndarray, ClassTable],
) -> None:
    from segviewer.io.render import nice_length, render_slice

    grey, labels, table = demo_slice
    lut = build_lut(table, None, 0.5, 256)
    pic, (top, left, h, w) = render_slice(
        grey, labels, lut, table, legend=False, scale=4, info=_info()
    )
    # the slice is there, untouched, at the box
    assert (h, w) == (grey.shape[0] * 4, grey.shape[1] * 4)
    plain = annotated_slice(grey, labels, lut, table, legend=False, scale=4)
    assert np.array_equal(pic[top : top + h, left : left + w], plain)
    assert top > 0 and left > 0 and pic.shape[0] > top + h and pic.shape[1] > left + w
    # orientation letters: each edge's margin carries its letter (drawn text differs from
    # no letter, and "R" differs from "L")
    bare, _ = render_slice(grey, labels, lut, table, legend=False, scale=4, info=_info(letters={}))
    swapped, _ = render_slice(
        grey,
        labels,
        lut,
        table,
        legend=False,
        scale=4,
        info=_info(letters={"top": "A", "bottom": "P", "left": "L", "right": "R"}),
    )
    margins = {
        "top": pic[top - left : top, left : left + w],
        "bottom": pic[top + h : top + h + left // 2, left : left + w],
        "left": pic[top : top + h, :left],
        "right": pic[top : top + h, left + w :],
    }
    bare_m = {
        "top": bare[top - left : top, left : left + w],
        "bottom": bare[top + h : top + h + left // 2, left : left + w],
        "left": bare[top : top + h, :left],
        "right": bare[top : top + h, left + w :],
    }
    for edge in margins:
        assert np.count_nonzero(margins[edge] != bare_m[edge]) > 20, edge
        assert bare_m[edge].max() == 0, edge  # nothing else in the letter margins
    assert not np.array_equal(swapped[top : top + h, :left], margins["left"])
    # caption: another slice index / position changes the caption strip only
    other, _ = render_slice(
        grey, labels, lut, table, legend=False, scale=4, info=_info(index=48, position=("z", 14.0))
    )
    assert not np.array_equal(other[: top - left], pic[: top - left])
    assert np.array_equal(other[top:], pic[top:])
    # scale bar: a bright bar under the slice, as long as the nice length at 0.5 mm / pixel
    mm_per_px = 2.0 / 4
    length = nice_length(w * mm_per_px / 3)
    assert length == 50.0  # 98 columns of 2 mm = 196 mm; a third is 65 mm -> 50 mm
    below = pic[top + h :, left:]
    bright = np.all(below == 240, axis=-1)
    longest = 0
    for r in bright:
        edges = np.flatnonzero(np.diff(np.r_[0, r.astype(np.int8), 0]))
        if edges.size:
            longest = max(longest, int(np.max(edges[1::2] - edges[::2])))
    assert longest == round(length / mm_per_px), longest


def test_nice_length() -> None:
    from segviewer.io.render import nice_length

    assert [nice_length(v) for v in (65.3, 49.0, 20.0, 7.0, 0.3)] == [50.0, 20.0, 20.0, 5.0, 0.2]
    assert nice_length(0.0) == 0.0


def test_montage_and_pdf(
    tmp_path: Path, demo_slice: tuple[np.ndarray, np.ndarray, ClassTable]
) -> None:
    from PIL import Image

    from segviewer.io.render import fit_width, montage, write_picture

    grey, labels, table = demo_slice
    lut = build_lut(table, None, 0.5, 256)
    pics = [annotated_slice(grey, labels, lut, table, legend=False, scale=k) for k in (1, 2, 1)]
    m = montage(pics, ["a", "b", "c"], columns=2, title="lightbox")
    # two columns of cells as large as the largest picture, captions above each
    assert m.shape[1] >= 2 * pics[1].shape[1] and m.shape[0] >= 2 * pics[1].shape[0]
    small = fit_width(m, 400)
    assert small.shape[1] == 400
    pdf = write_picture(small, tmp_path / "m.pdf", dpi=300)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    png = write_picture(small, tmp_path / "m.png", dpi=300)
    with Image.open(png) as im:
        assert im.size == (400, small.shape[0])
        assert round(im.info["dpi"][0]) == 300
    with pytest.raises(SegviewerError, match="already exists"):
        write_picture(small, png)
    with pytest.raises(SegviewerError, match="png or pdf"):
        write_picture(small, tmp_path / "m.gif")
