"""Annotated slice pictures: grey image + coloured classes + a burned-in legend.

Used by the export of overlays, the command line and the window's "save screenshot of this
slice", so all of them produce the same picture. Colours come from one place
(:func:`segviewer.core.overlay.build_lut` / :func:`~segviewer.core.overlay.compose`); this
module only adds the legend and the upscaling, with Pillow.

The legend is drawn in a panel to the right of the slice, never over it, so no anatomy and
no overlay pixel is hidden by it; the slice itself occupies the left ``W`` columns of the
picture unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from segviewer.core.types import SegviewerError, reserved_labels

__all__ = ["annotated_slice", "legend_entries", "upscale"]


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

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB. The slice occupies rows ``0..H_s-1`` and columns
        ``0..W_s-1`` with ``W_s = cols * scale`` (see :func:`upscale`); the legend, if any, is
        to the right of it.
    """
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
    if not legend:
        return np.ascontiguousarray(picture)
    entries = legend_entries(lab, table, visible)
    if not entries:
        return np.ascontiguousarray(picture)
    # Readable at any size: ~13 px text for a 256-pixel slice, larger for big pictures.
    font_px = int(np.clip(max(picture.shape[:2]) / 32, 12, 28))
    return _draw_legend(picture, entries, font_px)
