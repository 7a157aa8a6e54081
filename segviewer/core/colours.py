"""Perceptual colour arithmetic for class palettes: sRGB <-> CIELAB, colour-blind simulation,
and the pick of error colours that no class colour can be mistaken for.

Pure numpy. Distances are CIE76 ΔE (Euclidean distance in CIELAB, D65 white): about 2.3 is
a just-noticeable difference, 10 or more reads as "another colour" at a glance, and overlays
on grey anatomy need more than that because the blend with the image pulls colours together.

The default class palette itself is a constant (``segviewer.core.palette``), generated once
by ``scripts/make_palette.py`` with the functions here, so that start-up computes nothing and
class ``k`` keeps its colour whatever the number of classes (the palette is a sequence: the
colours of ``n`` classes are the first ``n`` of it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "DEUTERANOPIA",
    "PROTANOPIA",
    "RESERVED",
    "delta_e",
    "error_colors",
    "min_distance",
    "rgb_to_lab",
    "simulate",
]

#: Machado, Oliveira and Fernandes (2009) simulation matrices, severity 1, applied to linear
#: RGB: what a deuteranope (no green cones) and a protanope (no red cones) see.
DEUTERANOPIA = np.array(
    [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ]
)
PROTANOPIA = np.array(
    [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.099216],
        [-0.003882, -0.048116, 1.051998],
    ]
)

#: Colours with a fixed meaning that class and error colours keep away from: black (class 0),
#: white (voxels below the minimum confidence), magenta (NaN / infinite predictions).
RESERVED: tuple[tuple[int, int, int], ...] = ((0, 0, 0), (255, 255, 255), (255, 0, 255))

_SRGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _from_linear(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return c * 255.0


def rgb_to_lab(rgb: Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB 0..255 to ``(..., 3)`` CIELAB (L 0..100), D65 white, float64."""
    xyz = _to_linear(np.asarray(rgb)) @ _SRGB_TO_XYZ.T / _WHITE_D65
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def simulate(rgb: Sequence[Sequence[int]] | np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB 0..255 as a colour-blind reader sees them (float, 0..255)."""
    return _from_linear(_to_linear(np.asarray(rgb)) @ matrix.T)


def delta_e(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> float:
    """CIE76 ΔE between two sRGB colours."""
    la, lb = rgb_to_lab(np.asarray(a)[None]), rgb_to_lab(np.asarray(b)[None])
    return float(np.linalg.norm(la - lb))


def min_distance(
    colors: Sequence[Sequence[int]] | np.ndarray, matrix: np.ndarray | None = None
) -> float:
    """Smallest ΔE between any two of ``colors`` (``inf`` for fewer than two); with ``matrix``
    (``DEUTERANOPIA`` / ``PROTANOPIA``), as that reader sees them."""
    rgb = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    if len(rgb) < 2:
        return float("inf")
    if matrix is not None:
        rgb = simulate(rgb, matrix)
    lab = rgb_to_lab(rgb)
    d = np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=-1)
    d[np.diag_indices(len(d))] = np.inf
    return float(d.min())


def _candidates(step: int = 15) -> np.ndarray:
    """An sRGB grid (``(n, 3)`` uint8) of colours an overlay can use: not near black (the
    background and dark anatomy), not near white or pure grey (the anatomy itself)."""
    v = np.arange(0, 256, step)
    grid = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 3)
    lab = rgb_to_lab(grid)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    keep = (lab[:, 0] > 30) & (lab[:, 0] < 92) & (chroma > 25)
    return grid[keep].astype(np.uint8)


def error_colors(
    class_colors: Sequence[Sequence[int]] | np.ndarray,
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Colours for false positives and false negatives that no class colour is close to.

    Picked from a fixed grid of overlay-friendly colours: the false-positive colour is the
    one farthest (ΔE) from every class colour; the false-negative colour the one farthest
    from every class colour and from the false-positive colour. Deterministic, so the same
    table always gets the same pair; at 4 classes they are typically over 40 ΔE from any
    class colour, at 114 still clearly apart from the nearest.

    Returns
    -------
    (fp_rgb, fn_rgb)
    """
    cand = _candidates()
    lab = rgb_to_lab(cand)
    avoid = [*np.asarray(class_colors, dtype=np.float64).reshape(-1, 3).tolist(), *RESERVED]
    used = rgb_to_lab(np.asarray(avoid, dtype=np.float64))
    if len(used):
        d = np.min(np.linalg.norm(lab[:, None, :] - used[None, :, :], axis=-1), axis=1)
    else:
        d = np.full(len(cand), np.inf)
    fp = int(np.argmax(d))
    d2 = np.minimum(d, np.linalg.norm(lab - lab[fp], axis=-1))
    fn = int(np.argmax(d2))
    to_rgb = lambda i: (int(cand[i, 0]), int(cand[i, 1]), int(cand[i, 2]))  # noqa: E731
    return to_rgb(fp), to_rgb(fn)
