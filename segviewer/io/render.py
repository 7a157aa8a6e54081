"""Annotated slice pictures: grey image + coloured classes + a burned-in legend.

Used by the export of overlays, the command line and the window's "save screenshot of this
slice", so all of them produce the same picture. Colours come from one place
(:func:`segviewer.core.overlay.build_lut` / :func:`~segviewer.core.overlay.compose`); this
module only adds the legend and the upscaling, with Pillow.

The legend is drawn in a panel to the right of the slice, never over it, so no anatomy and
no overlay pixel is hidden by it. Without a :class:`SliceInfo` the slice itself occupies the
top-left ``H x W`` pixels of the picture unchanged. With one (what the export and the
window's report pictures pass), the picture is ready for a report: a caption strip above
("Axial  slice 41 / 93  z = 12.0 mm"), a margin around the slice holding the orientation
letters at the four edges, and a scale bar in the bottom margin; the slice is then at
:func:`render_slice`'s returned box, still never covered.

:func:`montage` puts several such pictures in a grid with captions (a lightbox, or the three
views side by side); :func:`write_picture` saves PNG or, for papers, PDF (both by Pillow).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import SegviewerError, reserved_labels

__all__ = [
    "PICTURE_FORMATS",
    "SliceInfo",
    "annotated_slice",
    "legend_entries",
    "montage",
    "nice_length",
    "render_slice",
    "fit_width",
    "every_nth_slice",
    "slice_picture",
    "upscale",
    "with_legend",
    "worst_slices",
    "write_picture",
]

#: File formats a report picture can be saved in (Pillow writes both).
PICTURE_FORMATS = ("png", "pdf")


@dataclass(frozen=True)
class SliceInfo:
    """What a report picture says about its slice (see the module docstring).

    Attributes
    ----------
    view
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    index, n_slices
        The slice index (0-based, display order) and the number of slices.
    position
        ``(axis, mm)``: the world axis the slice is across and the slice centre along it
        (:func:`segviewer.core.orientation.slice_position`), e.g. ``("z", 12.0)``.
    letters
        Orientation letter at each edge: ``{"top", "bottom", "left", "right"}``
        (:func:`segviewer.core.orientation.edge_letters`); empty when unknown.
    col_spacing
        Millimetres per slice column (before enlargement): sizes the scale bar.
    """

    view: str
    index: int
    n_slices: int
    position: tuple[str, float]
    letters: dict[str, str] = field(default_factory=dict)
    col_spacing: float = 1.0

    def caption(self) -> str:
        axis, mm = self.position
        return (
            f"{self.view.capitalize()}  slice {self.index} / {self.n_slices - 1}  "
            f"{axis} = {mm:.1f} mm"
        )


def nice_length(max_mm: float) -> float:
    """The longest 1, 2 or 5 x 10^k millimetres not above ``max_mm`` (a scale bar's length)."""
    if not max_mm > 0:
        return 0.0
    k = 10.0 ** np.floor(np.log10(max_mm))
    for m in (5.0, 2.0, 1.0):
        if m * k <= max_mm:
            return float(m * k)
    return float(k)


def upscale(rgb: np.ndarray, scale: int, pixel_aspect: float = 1.0) -> np.ndarray:
    """Nearest-neighbour enlargement of a ``(rows, cols, ...)`` picture.

    Parameters
    ----------
    rgb
        ``(rows, cols)`` or ``(rows, cols, channels)`` array.
    scale
        Integer factor for columns (>= 1).
    pixel_aspect
        Height of a pixel relative to its width (row spacing / column spacing in mm), so
        anisotropic voxels are drawn with their true shape. Rows are enlarged by
        ``scale * pixel_aspect`` (rounded to whole output rows).

    Returns
    -------
    numpy.ndarray
        ``(round(rows * scale * pixel_aspect), cols * scale, ...)``; output pixel ``(r, c)``
        shows input pixel ``(floor(r / (scale * pixel_aspect)), c // scale)``.
    """
    if scale < 1 or not np.isfinite(pixel_aspect) or pixel_aspect <= 0:
        raise SegviewerError(
            f"internal: bad scale {scale} / pixel aspect {pixel_aspect} for an annotated slice"
        )
    rows, cols = rgb.shape[:2]
    if scale == 1 and abs(pixel_aspect - 1.0) < 1e-6:
        return rgb
    row_factor = scale * pixel_aspect
    out_rows = max(1, round(rows * row_factor))
    row_idx = np.minimum((np.arange(out_rows) / row_factor).astype(np.intp), rows - 1)
    col_idx = np.repeat(np.arange(cols, dtype=np.intp), scale)
    return rgb[row_idx][:, col_idx]


def legend_entries(
    labels: np.ndarray,
    table: Any,
    visible: Sequence[bool] | None = None,
) -> list[tuple[str, tuple[int, int, int]]]:
    """Legend rows ``(name, rgb)``: the visible classes present in ``labels``, in index order.

    Background (class 0) is never listed. The reserved "uncertain" / "invalid" values are
    listed when present (they are always shown).
    """
    from segviewer.core.classes import INVALID_COLOR, UNCERTAIN_COLOR

    n = len(table)
    lab = np.asarray(labels)
    if lab.dtype.kind not in "ui":
        raise SegviewerError(f"internal: labels must be an integer array, got {lab.dtype}")
    counts = np.bincount(lab.ravel().astype(np.intp, copy=False), minlength=n)
    entries: list[tuple[str, tuple[int, int, int]]] = []
    for k in range(1, n):
        if counts[k] and (visible is None or (k < len(visible) and visible[k])):
            c = table[k]
            entries.append((str(c.name), tuple(int(v) for v in c.color)))  # type: ignore[arg-type]
    if lab.dtype.kind == "u":
        uncertain, invalid = reserved_labels(lab.dtype)
        if uncertain < counts.size and counts[uncertain]:
            entries.append(("uncertain", tuple(int(v) for v in UNCERTAIN_COLOR)))  # type: ignore[arg-type]
        if invalid < counts.size and counts[invalid]:
            entries.append(("invalid (NaN/inf)", tuple(int(v) for v in INVALID_COLOR)))  # type: ignore[arg-type]
    return entries


def _draw_legend(
    picture: np.ndarray, entries: list[tuple[str, tuple[int, int, int]]], font_px: int
) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_px)
    pad = max(4, font_px // 2)
    swatch = font_px
    line_h = font_px + max(3, font_px // 3)
    text_w = max(int(font.getlength(name)) for name, _ in entries)
    panel_w = pad + swatch + pad + text_w + pad
    rows = picture.shape[0]
    panel_h = pad + line_h * len(entries) + pad
    height = max(rows, panel_h)
    canvas = Image.new("RGB", (picture.shape[1] + panel_w, height), (24, 24, 24))
    canvas.paste(Image.fromarray(np.ascontiguousarray(picture)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = picture.shape[1] + pad
    y = pad
    for name, rgb in entries:
        draw.rectangle(
            [x0, y, x0 + swatch - 1, y + swatch - 1], fill=rgb, outline=(230, 230, 230), width=1
        )
        draw.text(
            (x0 + swatch + pad, y + swatch / 2), name, fill=(240, 240, 240), font=font, anchor="lm"
        )
        y += line_h
    return np.asarray(canvas).copy()


def with_legend(picture: np.ndarray, entries: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """``picture`` with a legend panel of ``entries`` (:func:`legend_entries`) to its right."""
    if not entries:
        return picture
    return _draw_legend(picture, entries, int(np.clip(max(picture.shape[:2]) / 48, 12, 28)))


def annotated_slice(
    grey_u8: np.ndarray,
    labels: np.ndarray,
    lut: np.ndarray,
    table: Any,
    *,
    mode: str = "fill",
    outline_width: int = 1,
    legend: bool = True,
    visible: Sequence[bool] | None = None,
    scale: int | None = 1,
    pixel_aspect: float = 1.0,
    info: SliceInfo | None = None,
) -> np.ndarray:
    """Render one slice as an RGB picture with the classes blended in and a legend.

    Parameters
    ----------
    grey_u8
        ``(rows, cols)`` uint8 windowed grey slice, screen order (row 0 at the top).
    labels
        ``(rows, cols)`` uint8/uint16 label slice aligned with ``grey_u8``.
    lut
        ``(size, 4)`` uint8 RGBA table from :func:`segviewer.core.overlay.build_lut`
        (carries colours, opacity and hidden classes).
    table
        The :class:`~segviewer.core.classes.ClassTable` (legend names and colours).
    mode
        ``"fill"``, ``"outline"`` or ``"both"`` (see :func:`segviewer.core.overlay.compose`).
    outline_width
        Outline thickness in slice pixels.
    legend
        Add the legend panel (visible classes present in this slice) to the right.
    visible
        Per-class visibility used for the legend; ``None`` lists every class present. It
        should agree with the ``lut``.
    scale
        Integer nearest-neighbour enlargement; ``None`` picks one so the longer side is at
        least 512 pixels (at most 8x), which keeps small slices and the legend legible.
    pixel_aspect
        Row spacing / column spacing (mm) so anisotropic pixels keep their true shape.
    info
        Caption, orientation letters and scale bar (:class:`SliceInfo`); None: the slice
        and legend alone.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB. Without ``info`` the slice occupies rows ``0..H_s-1`` and
        columns ``0..W_s-1`` with ``W_s = cols * scale`` (see :func:`upscale`); with it,
        :func:`render_slice` says where. The legend, if any, is to the right.
    """
    return render_slice(
        grey_u8,
        labels,
        lut,
        table,
        mode=mode,
        outline_width=outline_width,
        legend=legend,
        visible=visible,
        scale=scale,
        pixel_aspect=pixel_aspect,
        info=info,
    )[0]


def render_slice(
    grey_u8: np.ndarray,
    labels: np.ndarray,
    lut: np.ndarray,
    table: Any,
    *,
    mode: str = "fill",
    outline_width: int = 1,
    legend: bool = True,
    visible: Sequence[bool] | None = None,
    scale: int | None = 1,
    pixel_aspect: float = 1.0,
    info: SliceInfo | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """:func:`annotated_slice`, plus where the slice lies in the picture:
    ``(top, left, height, width)`` in picture pixels."""
    from segviewer.core.overlay import compose

    grey = np.asarray(grey_u8)
    lab = np.asarray(labels)
    if grey.ndim != 2 or grey.dtype != np.uint8:
        raise SegviewerError(
            f"internal: grey slice must be 2-D uint8, got {grey.shape} {grey.dtype}"
        )
    if lab.shape != grey.shape:
        raise SegviewerError(
            f"internal: label slice {lab.shape} does not match the grey slice {grey.shape}"
        )
    if mode not in ("fill", "outline", "both"):
        raise SegviewerError(f"unknown overlay mode {mode!r}; choose fill, outline or both")
    if scale is None:
        longest = max(grey.shape[0] * pixel_aspect, grey.shape[1], 1.0)
        scale = int(min(8, max(1, int(np.ceil(512 / longest)))))
    rgba = compose(grey, lab, lut, mode=mode, outline_width=outline_width)
    rgb = np.ascontiguousarray(rgba[..., :3])
    picture = upscale(rgb, int(scale), pixel_aspect)
    box = (0, 0, picture.shape[0], picture.shape[1])
    # Readable at any size: ~13 px text for a 256-pixel slice, larger for big pictures.
    font_px = int(np.clip(max(picture.shape[:2]) / 32, 12, 28))
    if info is not None:
        picture, box = _frame(picture, info, font_px, info.col_spacing / int(scale))
    if not legend:
        return np.ascontiguousarray(picture), box
    entries = legend_entries(lab, table, visible)
    if not entries:
        return np.ascontiguousarray(picture), box
    return _draw_legend(picture, entries, font_px), box


def _frame(
    picture: np.ndarray, info: SliceInfo, font_px: int, mm_per_px: float
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Caption strip above, a margin with the edge letters around, a scale bar below."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_px)
    pad = max(4, font_px // 2)
    m = font_px + 2 * pad  # margin around the slice (letters, scale bar)
    cap_h = font_px + 2 * pad
    h, w = picture.shape[:2]
    caption = info.caption()
    width = max(w + 2 * m, int(font.getlength(caption)) + 2 * pad)
    left = (width - w) // 2
    top = cap_h + m
    canvas = Image.new("RGB", (width, top + h + m + font_px + 2 * pad), (0, 0, 0))
    canvas.paste(Image.fromarray(np.ascontiguousarray(picture)), (left, top))
    draw = ImageDraw.Draw(canvas)
    text = (240, 240, 240)
    yellow = (255, 215, 94)
    draw.text((pad, cap_h / 2), caption, fill=text, font=font, anchor="lm")
    centres = {
        "top": (left + w / 2, top - m / 2),
        "bottom": (left + w / 2, top + h + m / 2),
        "left": (left - m / 2, top + h / 2),
        "right": (left + w + m / 2, top + h / 2),
    }
    for edge, letter in info.letters.items():
        if edge in centres:
            draw.text(centres[edge], letter, fill=yellow, font=font, anchor="mm")
    # scale bar: a nice length up to a third of the slice's width, under its left part
    length_mm = nice_length(w * mm_per_px / 3.0) if mm_per_px > 0 else 0.0
    if length_mm > 0:
        bar = max(1, round(length_mm / mm_per_px))
        y = top + h + m + pad
        x0 = left
        draw.rectangle([x0, y, x0 + bar - 1, y + max(2, font_px // 4)], fill=text)
        label = f"{length_mm:g} mm"
        draw.text((x0 + bar + pad, y + font_px // 8), label, fill=text, font=font, anchor="lm")
    return np.asarray(canvas).copy(), (top, left, h, w)


def montage(
    pictures: Sequence[np.ndarray],
    captions: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    title: str = "",
) -> np.ndarray:
    """Several RGB pictures in a grid (row by row), each with its caption above.

    Parameters
    ----------
    pictures
        ``(H_i, W_i, 3)`` uint8 pictures (sizes may differ; each cell is as large as the
        largest picture, pictures centred in it).
    captions
        One line per picture (``""`` for none).
    columns
        Pictures per row; None: about square.
    title
        A line above the whole grid.
    """
    from PIL import Image, ImageDraw, ImageFont

    if not pictures:
        raise SegviewerError("a montage needs at least one picture")
    n = len(pictures)
    caps = list(captions) if captions is not None else [""] * n
    if len(caps) != n:
        raise SegviewerError(f"internal: {len(caps)} captions for {n} pictures")
    cols = columns or int(np.ceil(np.sqrt(n)))
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    cell_h = max(p.shape[0] for p in pictures)
    cell_w = max(p.shape[1] for p in pictures)
    font_px = int(np.clip(cell_w / 24, 12, 28))
    font = ImageFont.load_default(size=font_px)
    pad = max(4, font_px // 2)
    cap_h = font_px + 2 * pad if any(caps) else 0
    title_h = font_px + 2 * pad if title else 0
    W = cols * cell_w + (cols + 1) * pad
    H = title_h + rows * (cap_h + cell_h + pad) + pad
    canvas = Image.new("RGB", (W, H), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, title_h / 2), title, fill=(240, 240, 240), font=font, anchor="lm")
    for i, (pic, cap) in enumerate(zip(pictures, caps, strict=True)):
        r, c = divmod(i, cols)
        x = pad + c * (cell_w + pad)
        y = title_h + pad + r * (cap_h + cell_h + pad)
        if cap:
            draw.text((x, y + cap_h / 2), cap, fill=(240, 240, 240), font=font, anchor="lm")
        img = Image.fromarray(np.ascontiguousarray(pic[..., :3]))
        canvas.paste(
            img, (x + (cell_w - pic.shape[1]) // 2, y + cap_h + (cell_h - pic.shape[0]) // 2)
        )
    return np.asarray(canvas).copy()


def fit_width(picture: np.ndarray, width: int) -> np.ndarray:
    """The picture scaled (Lanczos, by Pillow) to ``width`` pixels, keeping its aspect."""
    from PIL import Image

    if width < 16:
        raise SegviewerError(f"a picture needs to be at least 16 pixels wide, got {width}")
    h, w = picture.shape[:2]
    if w == width:
        return picture
    height = max(1, round(h * width / w))
    img = Image.fromarray(np.ascontiguousarray(picture[..., :3]))
    return np.asarray(img.resize((width, height), Image.Resampling.LANCZOS)).copy()


def write_picture(
    picture: np.ndarray, path: str | Path, *, dpi: float = 150.0, force: bool = False
) -> Path:
    """Save an RGB picture as PNG or PDF (from the file name's suffix), written to a
    temporary file and renamed (never half-written). ``dpi`` is recorded in the file, so a
    PDF page is ``width / dpi`` inches wide."""
    from PIL import Image

    from segviewer.io.atomic import atomic_path

    target = Path(path)
    fmt = target.suffix.lower().lstrip(".")
    if fmt not in PICTURE_FORMATS:
        raise SegviewerError(
            f"{target.name}: pictures are saved as {' or '.join(PICTURE_FORMATS)}; "
            "give the file one of these suffixes"
        )
    if not 10 <= dpi <= 2400:
        raise SegviewerError(f"picture resolution must be 10..2400 dpi, got {dpi}")
    img = Image.fromarray(np.ascontiguousarray(picture[..., :3]))
    with atomic_path(target, force=force) as tmp:
        img.save(tmp, format="PDF" if fmt == "pdf" else "PNG", dpi=(dpi, dpi), resolution=dpi)
    return target


def slice_picture(
    volume: Any,
    labels: np.ndarray,
    table: Any,
    lut: np.ndarray,
    view: str,
    index: int,
    *,
    window: tuple[float, float],
    radiological: bool = True,
    mode: str = "fill",
    outline_width: int = 1,
    visible: Sequence[bool] | None = None,
    scale: int | None = None,
    legend: bool = True,
) -> np.ndarray:
    """One report picture of ``volume`` / whole-volume ``labels`` (image grid): slice
    ``index`` of ``view`` as the window shows it, with caption, orientation letters, scale
    bar and the legend of the classes on it."""
    from segviewer.core import orientation
    from segviewer.core.overlay import window_to_uint8

    axes = orientation.display_axes(volume.affine, view, radiological)
    n = int(volume.shape[axes.slice_axis])
    if not 0 <= index < n:
        raise SegviewerError(f"slice {index} is outside the {view} view's 0..{n - 1}")
    grey = window_to_uint8(
        np.asarray(orientation.take_slice(volume.data, axes, index)), window[0], window[1]
    )
    lab = np.ascontiguousarray(orientation.take_slice(labels, axes, index))
    known = orientation.orientation_known(volume)
    info = SliceInfo(
        view=view,
        index=int(index),
        n_slices=n,
        position=orientation.slice_position(volume.affine, axes, index, volume.shape),
        letters=orientation.edge_letters(volume.affine, axes) if known else {},
        col_spacing=float(axes.col_spacing),
    )
    return annotated_slice(
        np.ascontiguousarray(grey),
        lab,
        lut,
        table,
        mode=mode,
        outline_width=outline_width,
        legend=legend,
        visible=visible,
        scale=scale,
        pixel_aspect=axes.row_spacing / axes.col_spacing,
        info=info,
    )


def every_nth_slice(labels: np.ndarray, axes: Any, step: int, limit: int = 64) -> list[int]:
    """Every ``step``-th slice of a view between the first and last slice holding a class
    (the whole range when none does), at most ``limit`` of them."""
    if step < 1:
        raise SegviewerError(f"a lightbox shows every Nth slice with N >= 1, got {step}")
    n = int(labels.shape[axes.slice_axis])
    other = tuple(a for a in range(3) if a != axes.slice_axis)
    has = np.flatnonzero(np.any(labels != 0, axis=other))
    # display order: slice index = voxel index along the slice axis (never flipped)
    lo, hi = (int(has[0]), int(has[-1])) if has.size else (0, n - 1)
    return list(range(lo, hi + 1, step))[:limit]


def worst_slices(per_slice_errors: np.ndarray, k: int) -> list[int]:
    """The ``k`` slices with the most errors (ties: lower index first), in slice order,
    leaving out slices without any error."""
    counts = np.asarray(per_slice_errors)
    if k < 1:
        raise SegviewerError(f"the number of worst slices must be 1 or more, got {k}")
    order = np.argsort(-counts, kind="stable")[:k]
    return sorted(int(i) for i in order if counts[i] > 0)
