"""Grey-level windowing, label lookup tables, outlines and the CPU overlay blend.

The window draws one pre-blended RGBA image per slice (measured faster to draw in pyqtgraph
than a grey item plus an indexed overlay item, see docs/architecture-notes.md): :func:`compose` maps each
pixel's (label, grey level) pair through a precomputed ``(labels, 256)`` RGBA table with one
``np.take``, as ITK-SNAP does. Hiding a class or changing its colour or the opacity changes
the lookup table from :func:`build_lut` (alpha 0 for hidden classes, as FSLeyes does), which
rebuilds only the small blend table (cached by the table's bytes), never the mask.

Colour maps for the confidence / entropy heat maps are interpolated from a few anchor colours
(33 evenly spaced samples of matplotlib's perceptually uniform maps; within 2 levels
of the 256-entry originals) so core needs no
matplotlib.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from segviewer.core import kernels
from segviewer.core.classes import INVALID_COLOR, UNCERTAIN_COLOR, ClassTable
from segviewer.core.types import SegviewerError, reserved_labels

__all__ = [
    "COLORMAPS",
    "OVERLAY_MODES",
    "window_to_uint8",
    "auto_window",
    "build_lut",
    "outline",
    "compose",
    "colormap_lut",
    "heatmap_rgba",
    "compose_heatmap",
]

OVERLAY_MODES: tuple[str, ...] = ("fill", "outline", "both")

# 33 evenly spaced samples (0, 1/32, ..., 1) of each map, hex RGB (matplotlib's maps, CC0).
_ANCHORS: dict[str, tuple[str, ...]] = {
    "inferno": (
        "000004", "040312", "0b0724", "150b37", "210c4a", "2f0a5b",
        "3d0965", "4a0c6b", "57106e", "64156e", "71196e", "7d1e6d",
        "8a226a", "972766", "a32c61", "b0315b", "bc3754", "c63d4d",
        "d04545", "da4e3c", "e35933", "eb6429", "f1711f", "f67e14",
        "f98c0a", "fb9b06", "fcaa0f", "fbba1f", "f9c932", "f5d949",
        "f2e865", "f3f586", "fcffa4",
    ),
    "viridis": (
        "440154", "470d60", "48186a", "482374", "472d7b", "453781",
        "424086", "3e4989", "3b528b", "375b8d", "33638d", "2f6b8e",
        "2c728e", "297a8e", "26828e", "23898e", "21918c", "1f978b",
        "1f9f88", "21a685", "27ad81", "31b57b", "3dbc74", "4cc26c",
        "5cc863", "6ece58", "81d34d", "95d840", "aadc32", "c0df25",
        "d5e21a", "eae51a", "fde725",
    ),
    "magma": (
        "000004", "030312", "0a0822", "130d34", "1d1147", "29115a",
        "36106b", "440f76", "51127c", "5d177f", "6a1c81", "762181",
        "832681", "902a81", "9c2e7f", "aa337d", "b73779", "c23b75",
        "cf4070", "db476a", "e55064", "ee5b5e", "f4695c", "f9785d",
        "fb8761", "fd9668", "fea571", "feb47b", "fec287", "fed194",
        "fde0a1", "fceeb0", "fcfdbf",
    ),
    "gray": ("000000", "ffffff"),
}  # fmt: skip

#: Colour maps :func:`colormap_lut` knows.
COLORMAPS: tuple[str, ...] = tuple(_ANCHORS)

# Sample size of auto_window: enough for stable 0.5 / 99.5 percentiles, small enough to be
# instant; at most this many slices are read along the outermost axis of a memory map.
_SAMPLE_SLICES = 32
_SAMPLE_PER_SLICE = 1 << 16


def window_to_uint8(
    slice_: np.ndarray, level: float, width: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Map intensities to 0..255 grey levels through a window.

    Parameters
    ----------
    slice_
        Any real-valued array (typically a ``(rows, cols)`` slice).
    level, width
        Window centre and width in the image's units: ``level - width/2`` maps to 0,
        ``level + width/2`` to 255, linearly and rounded in between, clipped outside. A width
        of 0 or less is treated as the smallest positive width (a threshold at ``level``).
    out
        Optional uint8 output of the same shape.

    Returns
    -------
    numpy.ndarray
        uint8, same shape; NaN maps to 0.
    """
    if not (np.isfinite(level) and np.isfinite(width)):
        raise SegviewerError(f"the window level/width must be finite, got {level}, {width}")
    if out is None:
        out = np.empty(slice_.shape, dtype=np.uint8)
    if slice_.dtype.kind in "ui" and slice_.dtype.itemsize <= 2:
        # 8- and 16-bit images (most MRI): window every possible value once (the same float32
        # arithmetic, so identical results) and look the slice up: one pass instead of six
        lut = _window_table(slice_.dtype, float(level), float(width))
        if slice_.dtype.kind == "i":
            # a signed value v sits at v - min in the table: reinterpreting the bits as
            # unsigned and flipping the sign bit maps v to exactly that index
            idx = slice_.view(slice_.dtype.str.replace("i", "u"))
            idx = np.bitwise_xor(idx, idx.dtype.type(1 << (8 * idx.itemsize - 1)))
        else:
            idx = slice_
        np.take(lut, idx, out=out)
        return out
    return _window_float(slice_, float(level), float(width), out)


_WINDOW_TABLES: OrderedDict[tuple[str, float, float], np.ndarray] = OrderedDict()
_WINDOW_LOCK = threading.Lock()


def _window_table(dtype: np.dtype, level: float, width: float) -> np.ndarray:
    """Grey level of every value of an 8/16-bit integer dtype, in order from its minimum."""
    key = (dtype.str, level, width)
    with _WINDOW_LOCK:
        hit = _WINDOW_TABLES.get(key)
        if hit is not None:
            _WINDOW_TABLES.move_to_end(key)
            return hit
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    lut = _window_float(values, level, width, np.empty(values.shape, np.uint8))
    lut.setflags(write=False)
    with _WINDOW_LOCK:
        _WINDOW_TABLES[key] = lut
        if len(_WINDOW_TABLES) > 8:
            _WINDOW_TABLES.popitem(last=False)
    return lut


def _window_float(slice_: np.ndarray, level: float, width: float, out: np.ndarray) -> np.ndarray:
    w = max(float(width), 1e-12)
    lo = float(level) - w / 2.0
    tmp = np.empty(slice_.shape, dtype=np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        np.subtract(slice_, lo, out=tmp, casting="unsafe")
        # scale, then +0.5 so the truncating cast rounds to nearest
        np.multiply(tmp, np.float32(255.0 / w), out=tmp)
        np.add(tmp, np.float32(0.5), out=tmp)
        np.fmax(tmp, np.float32(0.0), out=tmp)  # fmax also turns NaN into 0
        np.fmin(tmp, np.float32(255.0), out=tmp)
    np.copyto(out, tmp, casting="unsafe")
    return out


def _sample(volume_data: np.ndarray) -> np.ndarray:
    """A strided sample of a 3-D array that touches few pages of a memory map."""
    if volume_data.ndim != 3:
        raise SegviewerError(f"internal: auto_window expects a 3-D volume, got {volume_data.shape}")
    # outermost axis in memory: sample whole slices along it
    strides = [
        abs(s) if n > 1 else -1 for s, n in zip(volume_data.strides, volume_data.shape, strict=True)
    ]
    axis = int(np.argmax(strides))
    n = volume_data.shape[axis]
    picks = np.unique(np.linspace(0, n - 1, min(n, _SAMPLE_SLICES)).round().astype(np.intp))
    inner = [volume_data.shape[a] for a in range(3) if a != axis]
    step = max(1, int(np.ceil(np.sqrt(inner[0] * inner[1] / _SAMPLE_PER_SLICE))))
    parts = []
    for i in picks:
        sl = volume_data[(slice(None),) * axis + (int(i),)]
        parts.append(np.asarray(sl[::step, ::step], dtype=np.float64).ravel())
    return np.concatenate(parts)


def auto_window(volume_data: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> tuple[float, float]:
    """A display window from robust percentiles of the non-zero voxels.

    Parameters
    ----------
    volume_data
        3-D image ``(a0, a1, a2)``, any real dtype, possibly a memory map (only about 32
        slices along its outermost axis are read, each subsampled to about 65 000 voxels).
    lo, hi
        Percentiles (0-100) of the non-zero, finite sampled voxels that become the window's
        ends (zero is excluded because MRI background would dominate).

    Returns
    -------
    (level, width)
        Window centre and width in the image's units; width > 0 (1.0 when the sample is
        constant or all zero).
    """
    if not 0 <= lo < hi <= 100:
        raise SegviewerError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {lo}, {hi}")
    s = _sample(volume_data)
    s = s[np.isfinite(s) & (s != 0)]
    if s.size == 0:
        return 0.5, 1.0
    a, b = np.percentile(s, [lo, hi])
    a, b = float(a), float(b)
    if not b > a:
        return a, 1.0
    return (a + b) / 2.0, b - a


def build_lut(
    table: ClassTable,
    visible: Sequence[bool] | None = None,
    opacity: float = 0.5,
    size: int | None = None,
    *,
    show_uncertain: bool = True,
    show_invalid: bool = True,
) -> np.ndarray:
    """RGBA lookup table for a label map.

    Parameters
    ----------
    table
        Class names and colours (class 0 is the background).
    visible
        One flag per class (``len(table)``); None shows all. Hidden classes get alpha 0.
    opacity
        Overlay opacity 0..1 for visible classes (alpha ``round(255 * opacity)``).
    size
        Number of entries: 256 for uint8 label maps (up to 254 classes), 65536 for uint16;
        None picks from ``len(table)``. Table entries beyond ``size - 3`` are left out (no
        label of that size holds them).
    show_uncertain, show_invalid
        Whether the reserved UNCERTAIN (``size - 2``) and INVALID (``size - 1``) entries are
        drawn (in ``UNCERTAIN_COLOR`` / ``INVALID_COLOR`` at the same opacity).

    Returns
    -------
    numpy.ndarray
        ``(size, 4)`` uint8 RGBA. Entry 0 (background) and entries between the last class and
        the reserved ones have alpha 0.
    """
    n = len(table)
    if size is None:
        size = 256 if n <= 254 else 65536
    if size not in (256, 65536):
        raise SegviewerError(f"internal: lookup table size must be 256 or 65536, got {size}")
    if not 0.0 <= opacity <= 1.0:
        raise SegviewerError(f"opacity must be between 0 and 1, got {opacity}")
    vis = np.ones(n, dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    if vis.shape != (n,):
        raise SegviewerError(f"internal: {vis.size} visibility flags for a table of {n} classes")
    # A label map of this size holds classes 0 .. size - 3 only (the last two values are
    # reserved): a table with more entries (a class table listing index 65533 next to a
    # 3-class prediction) has nothing to draw beyond them.
    shown = min(n, size - 2)
    alpha = int(round(255 * opacity))
    lut = np.zeros((size, 4), dtype=np.uint8)
    lut[:shown, :3] = table.colors[:shown]
    lut[:shown, 3] = np.where(vis[:shown], alpha, 0)
    lut[0, 3] = 0  # background is never drawn
    uncertain, invalid = reserved_labels(np.uint8 if size == 256 else np.uint16)
    lut[uncertain] = (*UNCERTAIN_COLOR, alpha if show_uncertain else 0)
    lut[invalid] = (*INVALID_COLOR, alpha if show_invalid else 0)
    return lut


def _boundary(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels with a 4-neighbour of another label, grown inwards by ``width - 1`` pixels."""
    if labels.ndim != 2:
        raise SegviewerError(f"internal: outline expects a 2-D slice, got shape {labels.shape}")
    if width < 1:
        raise SegviewerError(f"outline width must be at least 1 pixel, got {width}")
    b = np.zeros(labels.shape, dtype=bool)
    dr = labels[1:, :] != labels[:-1, :]
    b[1:, :] |= dr
    b[:-1, :] |= dr
    dc = labels[:, 1:] != labels[:, :-1]
    b[:, 1:] |= dc
    b[:, :-1] |= dc
    for _ in range(width - 1):
        g = b.copy()
        g[1:, :] |= b[:-1, :]
        g[:-1, :] |= b[1:, :]
        g[:, 1:] |= b[:, :-1]
        g[:, :-1] |= b[:, 1:]
        b = g
    return b


def outline(labels: np.ndarray, width: int = 1) -> np.ndarray:
    """Label outlines: interior pixels set to 0, boundary pixels keep their label.

    Parameters
    ----------
    labels
        ``(rows, cols)`` label slice, any integer dtype.
    width
        Outline thickness in pixels (the boundary dilated ``width - 1`` times, 4-connected).

    Returns
    -------
    numpy.ndarray
        Same shape and dtype. A pixel is on the boundary when a 4-neighbour inside the slice
        has a different label (so both sides of a border between two classes are drawn; the
        slice edge is not a boundary).
    """
    b = _boundary(labels, width)
    return np.multiply(labels, b, dtype=labels.dtype)


# blend tables, most recently used last; keyed by the lookup table's bytes
_BLEND_CACHE: OrderedDict[bytes, np.ndarray] = OrderedDict()
_BLEND_CACHE_MAX = 16
# compose runs in the GUI thread and in export workers at the same time
_BLEND_LOCK = threading.Lock()


def _as_argb32(rgba: np.ndarray) -> np.ndarray:
    """A uint32 table of RGBA bytes as native-endian ``0xAARRGGBB`` values (read-only)."""
    b = rgba.view(np.uint8).reshape(-1, 4).astype(np.uint32)
    out = (b[:, 3] << 24) | (b[:, 0] << 16) | (b[:, 1] << 8) | b[:, 2]
    out.setflags(write=False)
    return out


def _blend_table(lut: np.ndarray, argb32: bool = False) -> np.ndarray:
    """``(len(lut) * 256,)`` uint32 view of RGBA ``grey * (1 - a) + colour * a`` per (label,
    grey); with ``argb32`` the same colours as native ``0xAARRGGBB`` values."""
    key = lut.tobytes() + (b"argb32" if argb32 else b"")
    with _BLEND_LOCK:
        hit = _BLEND_CACHE.get(key)
        if hit is not None:
            _BLEND_CACHE.move_to_end(key)
            return hit
    # rows with alpha 0 (background, hidden and unused labels: most of a 256-entry table) are
    # the plain grey ramp; only the drawn classes need arithmetic, so a toggle stays cheap
    t = np.empty((lut.shape[0], 256, 4), dtype=np.uint8)
    t[:, :, :3] = np.arange(256, dtype=np.uint8)[None, :, None]
    t[:, :, 3] = 255
    drawn = np.nonzero(lut[:, 3])[0]
    if drawn.size:
        a = lut[drawn, 3].astype(np.float32)[:, None, None] / np.float32(255.0)
        grey = np.arange(256, dtype=np.float32)[None, :, None]
        rgb = grey * (np.float32(1.0) - a) + lut[drawn, None, :3].astype(np.float32) * a
        t[drawn, :, :3] = (rgb + np.float32(0.5)).astype(np.uint8)
    flat = t.reshape(-1, 4).view(np.uint32).reshape(-1)
    if argb32:
        flat = _as_argb32(flat)
    flat.setflags(write=False)  # shared between callers
    with _BLEND_LOCK:
        _BLEND_CACHE[key] = flat
        if len(_BLEND_CACHE) > _BLEND_CACHE_MAX:
            _BLEND_CACHE.popitem(last=False)
    return flat


def _opaque(lut: np.ndarray) -> np.ndarray:
    o = lut.copy()
    o[:, 3] = np.where(lut[:, 3] > 0, 255, 0)
    return o


def compose(
    grey_u8: np.ndarray,
    labels: np.ndarray,
    lut: np.ndarray,
    *,
    mode: str = "fill",
    outline_width: int = 1,
    out: np.ndarray | None = None,
    argb32: bool = False,
) -> np.ndarray:
    """Blend a label overlay onto a grey slice into one opaque RGBA image.

    Parameters
    ----------
    grey_u8
        ``(rows, cols)`` uint8 windowed grey slice (:func:`window_to_uint8`).
    labels
        ``(rows, cols)`` uint8 or uint16 labels.
    lut
        ``(256, 4)`` (uint8 labels) or ``(65536, 4)`` uint8 RGBA from :func:`build_lut`.
    mode
        ``"fill"``: every labelled pixel blended at its lookup alpha; ``"outline"``: only
        outline pixels (:func:`outline`), drawn opaque in the class colour whatever the
        opacity (a 1-pixel line at half opacity is too faint to review boundaries by; hidden
        classes stay hidden); ``"both"``: fill at the lookup alpha and the outline drawn
        opaque in the class colour.
    outline_width
        Outline thickness in pixels.
    out
        Optional C-contiguous ``(rows, cols, 4)`` uint8 output.
    argb32
        Write each pixel as one native-endian ``0xAARRGGBB`` 32-bit value (B, G, R, A bytes
        on little-endian machines): Qt's ``QImage.Format_RGB32``, which it draws without a
        conversion (about twice as fast as RGBA bytes), instead of R, G, B, A bytes.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols, 4)`` uint8 RGBA, alpha 255: ``round(grey * (1 - a) + colour * a)`` per
        channel with ``a = alpha / 255`` (or those values as ``0xAARRGGBB``, see ``argb32``).
    """
    if mode not in OVERLAY_MODES:
        raise SegviewerError(
            f"unknown overlay mode {mode!r}; use one of {', '.join(OVERLAY_MODES)}"
        )
    if grey_u8.dtype != np.uint8 or grey_u8.shape != labels.shape or grey_u8.ndim != 2:
        raise SegviewerError(
            f"internal: compose needs a uint8 grey slice and labels of the same 2-D shape, got "
            f"{grey_u8.dtype} {grey_u8.shape} and {labels.dtype} {labels.shape}"
        )
    if lut.ndim != 2 or lut.shape[1] != 4 or lut.dtype != np.uint8:
        raise SegviewerError(f"internal: lut must be (size, 4) uint8, got {lut.dtype} {lut.shape}")
    shape = labels.shape
    if out is None:
        out = np.empty((*shape, 4), dtype=np.uint8)
    elif out.shape != (*shape, 4) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise SegviewerError(f"internal: out must be C-contiguous uint8 {(*shape, 4)}")
    lab: np.ndarray = labels
    sub = lut
    if labels.dtype == np.uint16 or lut.shape[0] > 256:
        # a 65536 x 256 blend table would be 64 MB: blend only the labels in this slice
        present, inverse = np.unique(labels, return_inverse=True)
        if present.size and int(present[-1]) >= lut.shape[0]:
            raise SegviewerError(
                f"label {int(present[-1])} is beyond the {lut.shape[0]}-entry lookup table"
            )
        sub = lut[present]
        lab = inverse.reshape(shape)
    elif labels.dtype != np.uint8:
        raise SegviewerError(f"internal: labels must be uint8 or uint16, got {labels.dtype}")
    elif lut.shape[0] < 256 and labels.size and int(labels.max()) >= lut.shape[0]:
        raise SegviewerError(
            f"label {int(labels.max())} is beyond the {lut.shape[0]}-entry lookup table"
        )
    if mode == "outline":
        lab = outline(lab, outline_width)
        sub = _opaque(sub)
    idx: np.ndarray
    if mode == "both":
        rows = sub.shape[0]
        table = _blend_table(np.concatenate([sub, _opaque(sub)]), argb32)
        b = _boundary(lab, outline_width)
        idx = lab.astype(np.uint32)
        # outline pixels use the opaque half of the table (rows .. 2 rows - 1)
        idx += b.astype(np.uint32) * np.uint32(rows)
        idx <<= np.uint32(8)
        idx |= grey_u8
    else:
        table = _blend_table(sub, argb32)
        pixels = out.reshape(-1, 4).view(np.uint32).reshape(shape)
        # one compiled pass once core.kernels has it ready (the window readies it in the
        # background); numpy's index array and gather otherwise (same result)
        if lab.dtype == np.uint8 and kernels.lookup_into(table, lab, grey_u8, pixels):
            return out
        idx = lab.astype(np.uint32 if sub.shape[0] > 256 else np.uint16)
        idx <<= 8
        idx |= grey_u8
    # every index is inside the table (checked above), so "wrap" never wraps; numpy's
    # default "raise" mode costs about half as much again as the gather itself
    np.take(table, idx, out=out.reshape(-1, 4).view(np.uint32).reshape(shape), mode="wrap")
    return out


def colormap_lut(name: str) -> np.ndarray:
    """256-entry RGBA colour map, linearly interpolated between anchor colours.

    Parameters
    ----------
    name
        One of :data:`COLORMAPS`: ``"inferno"``, ``"viridis"``, ``"magma"``, ``"gray"``.

    Returns
    -------
    numpy.ndarray
        ``(256, 4)`` uint8, alpha 255; entry 0 is the low end.
    """
    anchors = _ANCHORS.get(name)
    if anchors is None:
        raise SegviewerError(f"unknown colour map {name!r}; use one of {', '.join(COLORMAPS)}")
    rgb = np.array([[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in anchors], dtype=np.float64)
    xp = np.linspace(0.0, 1.0, len(anchors))
    x = np.linspace(0.0, 1.0, 256)
    lut = np.empty((256, 4), dtype=np.uint8)
    for ch in range(3):
        lut[:, ch] = np.round(np.interp(x, xp, rgb[:, ch])).astype(np.uint8)
    lut[:, 3] = 255
    return lut


def heatmap_rgba(
    values: np.ndarray,
    vmin: float,
    vmax: float,
    cmap: str = "inferno",
    *,
    alpha: int = 255,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Colour a float slice (confidence, entropy, a class probability) with a colour map.

    Parameters
    ----------
    values
        ``(rows, cols)`` real values.
    vmin, vmax
        Values mapped to the colour map's ends (clipped outside).
    cmap
        Colour map name (:data:`COLORMAPS`).
    alpha
        Alpha of finite pixels; NaN pixels (invalid voxels) get alpha 0.
    out
        Optional C-contiguous ``(rows, cols, 4)`` uint8 output.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols, 4)`` uint8 RGBA.
    """
    if not vmax > vmin:
        raise SegviewerError(f"the colour range needs vmax > vmin, got {vmin}..{vmax}")
    lut = colormap_lut(cmap)
    lut[:, 3] = np.uint8(alpha)
    idx = window_to_uint8(values, (vmin + vmax) / 2.0, vmax - vmin)
    shape = values.shape
    if out is None:
        out = np.empty((*shape, 4), dtype=np.uint8)
    np.take(
        lut.view(np.uint32).reshape(-1), idx, out=out.reshape(-1, 4).view(np.uint32).reshape(shape)
    )
    nan = np.isnan(values)
    if nan.any():
        out[nan, 3] = 0
    return out


_HEAT_TABLES: OrderedDict[tuple[str, float, bool], np.ndarray] = OrderedDict()


def _heat_table(cmap: str, opacity: float, argb32: bool = False) -> np.ndarray:
    """``(257 * 256,)`` uint32 RGBA of (value level, grey): row 256 is a NaN (plain grey);
    with ``argb32`` as native ``0xAARRGGBB`` values."""
    key = (cmap, opacity, argb32)
    with _BLEND_LOCK:
        hit = _HEAT_TABLES.get(key)
        if hit is not None:
            _HEAT_TABLES.move_to_end(key)
            return hit
    colours = colormap_lut(cmap)[:, :3].astype(np.float32)
    a = np.float32(opacity)
    grey = np.arange(256, dtype=np.float32)
    t = np.empty((257, 256, 4), dtype=np.uint8)
    # the float formula of the blend, once per (level, grey) pair instead of once per pixel
    rgb = grey[None, :, None] * (np.float32(1.0) - a) + colours[:, None, :] * a + np.float32(0.5)
    t[:256, :, :3] = rgb.astype(np.uint8)
    t[256, :, :3] = np.arange(256, dtype=np.uint8)[:, None]
    t[:, :, 3] = 255
    flat = t.reshape(-1, 4).view(np.uint32).reshape(-1)
    if argb32:
        flat = _as_argb32(flat)
    flat.setflags(write=False)
    with _BLEND_LOCK:
        _HEAT_TABLES[key] = flat
        if len(_HEAT_TABLES) > _BLEND_CACHE_MAX:
            _HEAT_TABLES.popitem(last=False)
    return flat


def compose_heatmap(
    grey_u8: np.ndarray,
    values: np.ndarray,
    vmin: float,
    vmax: float,
    cmap: str = "inferno",
    *,
    opacity: float = 1.0,
    out: np.ndarray | None = None,
    argb32: bool = False,
) -> np.ndarray:
    """Blend a colour-mapped statistic onto a grey slice into one opaque RGBA image.

    Parameters
    ----------
    grey_u8
        ``(rows, cols)`` uint8 windowed grey slice (:func:`window_to_uint8`).
    values
        ``(rows, cols)`` real values (confidence, entropy, a class probability); NaN where
        invalid.
    vmin, vmax
        Values mapped to the colour map's ends (clipped outside), quantised to 256 levels as
        in :func:`heatmap_rgba`.
    cmap
        Colour map name (:data:`COLORMAPS`).
    opacity
        Weight of the colour against the grey level, 0..1.
    out
        Optional C-contiguous ``(rows, cols, 4)`` uint8 output.
    argb32
        Native ``0xAARRGGBB`` pixels instead of RGBA bytes (see :func:`compose`).

    Returns
    -------
    numpy.ndarray
        ``(rows, cols, 4)`` uint8 RGBA, alpha 255: ``round(grey * (1 - a) + colour * a)`` per
        channel with ``a = opacity``; NaN pixels show the grey level alone. One table lookup
        per pixel (the table is cached per colour map and opacity).
    """
    if not vmax > vmin:
        raise SegviewerError(f"the colour range needs vmax > vmin, got {vmin}..{vmax}")
    if not 0.0 <= opacity <= 1.0:
        raise SegviewerError(f"opacity must be between 0 and 1, got {opacity}")
    if grey_u8.dtype != np.uint8 or grey_u8.shape != values.shape or grey_u8.ndim != 2:
        raise SegviewerError(
            f"internal: compose_heatmap needs a uint8 grey slice and values of the same 2-D "
            f"shape, got {grey_u8.dtype} {grey_u8.shape} and {values.dtype} {values.shape}"
        )
    shape = values.shape
    if out is None:
        out = np.empty((*shape, 4), dtype=np.uint8)
    elif out.shape != (*shape, 4) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise SegviewerError(f"internal: out must be C-contiguous uint8 {(*shape, 4)}")
    table = _heat_table(cmap, float(opacity), argb32)
    level = window_to_uint8(values, (vmin + vmax) / 2.0, vmax - vmin)
    idx = level.astype(np.uint32)
    nan = np.isnan(values)
    if nan.any():
        idx[nan] = 256
    idx <<= np.uint32(8)
    idx |= grey_u8
    # levels 0..256 by construction: inside the table ("wrap" is numpy's fast mode, see compose)
    np.take(table, idx, out=out.reshape(-1, 4).view(np.uint32).reshape(shape), mode="wrap")
    return out
