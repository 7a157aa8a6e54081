"""Which axis of a prediction holds the classes, and which raw axis carries each image axis.

A model's output arrives in whatever layout the framework produced: ``NHWC`` / ``NDHWC``
(TensorFlow, channels last), ``NCHW`` / ``NCDHW`` (PyTorch, channels first), without the batch
axis (``HWC``, ``CHW``, ``DHWC``, ``CDHW``), label maps without a class axis (``DHW``,
``HW``), or a 2-D model run slice by slice and stacked along the first axis (a NIfTI
``(X, Y, Z)`` volume gives ``(Z, X, Y, C)``). :func:`detect_layout` finds the :class:`Layout`
and :meth:`Layout.apply` turns the raw array into a zero-copy view ``(C, a0, a1, a2)`` (label
maps ``(a0, a1, a2)``) in image-axis order (see :mod:`segviewer.core.types`).

Axis-matching rules
-------------------
1. **Batch.** Leading axes of size 1 may be a batch axis ``N`` and are dropped. A trailing
   axis of size 1 of a label map (``DHW1``) is dropped too.
2. **Class axis.** Any one of the remaining axes (or none for a label map): last
   (TensorFlow), first (PyTorch), or between the spatial axes (a 2-D channels-first model run
   slice by slice and stacked: ``(Z, C, X, Y)``). ``has_class_axis=True`` / ``False``
   restricts the choice; the caller knows it from the dtype (integer arrays are label maps)
   or the requested kind.
3. **Spatial axes.** The other 2 or 3 axes are matched to image axes 0, 1, 2 by size, in any
   order, so permuted outputs (``ZXYC``) are mapped back. A prediction with only 2 spatial
   axes fits an image with an axis of size 1 (a 2-D image ``(1, H, W)``, a 2-D NIfTI
   ``(i, j, 1)``): that axis is inserted with length 1.
4. **Ambiguity.** When several distinct layouts fit (square slices, a class count equal to an
   image size), the one chosen is, in order of preference:
   (a) the spatial axes in the image's order (identity), then the permutation with the fewest
   swapped pairs (so stacked 2-D slices read as ``ZXY`` rather than ``ZYX``);
   (b) the class axis last (TensorFlow's channels-last), then first, then between the
   spatial axes, then no class axis;
   (c) leading axes of size 1 read as batch (``NHWC`` rather than ``DHWC`` for
   ``(1, H, W, C)`` on a ``(1, H, W)`` image; the views are identical).
   Identity is preferred over channels-last because a channels-first output that happens to
   fit a permuted channels-last reading (``(3, 64, 64, 3)`` on a ``(64, 64, 3)`` image) is far
   more common than a permuted output whose class count equals an image size. The layout's
   ``note`` then says that the choice was ambiguous and how to state it (``--layout ZYXC``).
5. **No fit.** :class:`ShapeMismatch` naming both shapes. When some reading fits the image
   exactly under another kind or instead of an explicit layout, the message names the exact
   ``--layout`` strings (:func:`fitting_layouts`) and resampling is not offered
   (``resample_possible`` is False). Otherwise, when the spatial sizes differ from the
   image's by one common scale factor, it names the layout and suggests ``--resample``.

Example: logits saved as ``(189, 3, 197, 233)`` for a ``197 x 233 x 189`` image are read as
``ZCXY`` (slices, classes, image axes 0 and 1); ``--layout NDHWC`` on the same file is refused
with "these layouts fit its size exactly: --layout ZCXY".

Explicit layouts
----------------
One letter per raw axis: ``N`` batch (size 1, dropped), ``C`` classes, and image axes
``X``/``Y``/``Z`` (axis 0/1/2) or equivalently ``D``/``H``/``W`` (axis 0/1/2). A 2-D layout
spelled with ``H`` and ``W`` only (``HWC``, ``NCHW``) means "rows and columns of the image's
two axes longer than 1": image axes 1 and 2 of a ``(1, H, W)`` image, axes 0 and 1 of a 2-D
NIfTI ``(i, j, 1)``. ``X``/``Y``/``Z`` always name fixed image axes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError, ShapeMismatch

__all__ = [
    "Layout",
    "ShapeMismatch",
    "describe_layout",
    "detect_layout",
    "fitting_layouts",
    "parse_layout",
]

_AXIS_OF_LETTER = {"X": 0, "Y": 1, "Z": 2, "D": 0, "H": 1, "W": 2}
_MAX_NDIM = 6


def _fmt(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


@dataclass(frozen=True)
class Layout:
    """How a raw prediction array's axes map to (class, image axis 0, 1, 2).

    Parameters
    ----------
    raw_shape
        Shape of the raw array this layout was made for.
    class_axis
        Raw axis holding the classes (channels), or ``None`` for a label map.
    squeeze_axes
        Raw axes of size 1 that are dropped (batch ``N``; a trailing singleton of a label map).
    spatial_axes
        For image axes 0, 1, 2: the raw axis that carries it. An image axis the prediction
        lacks (a 2-D prediction on a ``(1, H, W)`` image) is listed in ``inserted_axes`` and
        its entry here is ``len(raw_shape) + j`` (the ``j``-th appended length-1 axis, see
        :meth:`expand`).
    name
        Letters per raw axis, e.g. ``"NDHWC"``, ``"CHW"``, ``"ZXYC"``; accepted back by
        :func:`detect_layout` as ``explicit``.
    note
        One or two sentences on how the layout was decided.
    inserted_axes
        Image axes (0, 1, 2) the raw array lacks; inserted with length 1.
    """

    raw_shape: tuple[int, ...]
    class_axis: int | None
    squeeze_axes: tuple[int, ...]
    spatial_axes: tuple[int, int, int]
    name: str
    note: str = ""
    inserted_axes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        ndim = len(self.raw_shape)
        used = list(self.squeeze_axes) + [a for a in self.spatial_axes if a < ndim]
        if self.class_axis is not None:
            used.append(self.class_axis)
        if sorted(used) != list(range(ndim)):
            raise SegviewerError(
                f"internal: layout {self.name!r} does not use each axis of {_fmt(self.raw_shape)} once"
            )
        extra = sorted(a for a in self.spatial_axes if a >= ndim)
        if extra != list(range(ndim, ndim + len(self.inserted_axes))):
            raise SegviewerError(f"internal: layout {self.name!r} has inconsistent inserted axes")
        if any(self.raw_shape[a] != 1 for a in self.squeeze_axes):
            raise SegviewerError(f"internal: layout {self.name!r} drops an axis longer than 1")

    @property
    def has_class_axis(self) -> bool:
        return self.class_axis is not None

    @property
    def n_channels(self) -> int:
        """Length of the class axis (0 for a label map)."""
        return 0 if self.class_axis is None else int(self.raw_shape[self.class_axis])

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """Size of the prediction along image axes 0, 1, 2 (1 for inserted axes)."""
        ndim = len(self.raw_shape)
        s = [int(self.raw_shape[a]) if a < ndim else 1 for a in self.spatial_axes]
        return (s[0], s[1], s[2])

    def expand(self, raw: np.ndarray) -> np.ndarray:
        """Zero-copy view of ``raw`` with the inserted length-1 axes appended at the end."""
        self._check(raw)
        if not self.inserted_axes:
            return raw
        return raw.reshape(tuple(raw.shape) + (1,) * len(self.inserted_axes))

    def expanded(self) -> Layout:
        """The same layout for :meth:`expand`'s output (no inserted axes left).

        ``Prediction.spatial_shape`` indexes ``data.shape`` with ``spatial_axes``; a
        prediction built from ``expand(raw)`` and ``expanded()`` satisfies it.
        """
        if not self.inserted_axes:
            return self
        shape = tuple(self.raw_shape) + (1,) * len(self.inserted_axes)
        return Layout(
            raw_shape=shape,
            class_axis=self.class_axis,
            squeeze_axes=self.squeeze_axes,
            spatial_axes=self.spatial_axes,
            name=self.name,
            note=self.note,
            inserted_axes=(),
        )

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Zero-copy view in image-axis order.

        Parameters
        ----------
        raw
            The array this layout describes (shape ``raw_shape``); may be a memory map.

        Returns
        -------
        numpy.ndarray
            ``(C, a0, a1, a2)`` when there is a class axis, else ``(a0, a1, a2)``; same dtype,
            a view sharing ``raw``'s memory (never a copy).
        """
        v = self.expand(raw)
        order = [] if self.class_axis is None else [self.class_axis]
        order += list(self.spatial_axes) + list(self.squeeze_axes)
        v = v.transpose(order)
        if self.squeeze_axes:
            v = v[(Ellipsis,) + (0,) * len(self.squeeze_axes)]
        return v

    def _check(self, raw: np.ndarray) -> None:
        if tuple(raw.shape) != tuple(self.raw_shape):
            raise SegviewerError(
                f"internal: layout {self.name!r} is for shape {_fmt(self.raw_shape)}, "
                f"got {_fmt(raw.shape)}"
            )


# --------------------------------------------------------------------------------------------
# candidates


@dataclass(frozen=True)
class _Candidate:
    class_axis: int | None
    class_rank: int  # 0 last, 1 first, 2 between the spatial axes, 3 none
    squeeze: tuple[int, ...]
    spatial: tuple[int, ...]  # raw axes in raw order
    image_axes: tuple[int, ...]  # image axis carried by each of `spatial`
    inserted: tuple[int, ...]

    @property
    def inversions(self) -> int:
        p = self.image_axes
        return sum(1 for i in range(len(p)) for j in range(i + 1, len(p)) if p[i] > p[j])


def _matchings(
    sizes: Sequence[int], image_shape: Sequence[int], resample: bool
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(image axis per raw spatial axis, inserted image axes) pairs that fit by size."""
    out: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    m = len(sizes)
    if m == 3:
        for p in itertools.permutations(range(3)):
            if resample or all(sizes[k] == image_shape[p[k]] for k in range(3)):
                out.append((tuple(p), ()))
    elif m == 2:
        for q in range(3):
            if image_shape[q] != 1:
                continue
            rest = [a for a in range(3) if a != q]
            for p in (tuple(rest), tuple(reversed(rest))):
                if resample or all(sizes[k] == image_shape[p[k]] for k in range(2)):
                    out.append((p, (q,)))
    return out


def _candidates(
    raw_shape: Sequence[int],
    image_shape: Sequence[int],
    has_class_axis: bool | None,
    resample: bool,
) -> list[_Candidate]:
    ndim = len(raw_shape)
    n_lead = 0
    while n_lead < ndim and raw_shape[n_lead] == 1:
        n_lead += 1
    out: list[_Candidate] = []
    for nb in range(0, min(n_lead, 2) + 1):
        axes = list(range(nb, ndim))
        options: list[tuple[int | None, int, list[int], tuple[int, ...]]] = []
        if has_class_axis is not False and len(axes) >= 3:
            options.append((axes[-1], 0, axes[:-1], ()))
            options.append((axes[0], 1, axes[1:], ()))
            # a class axis between the spatial axes: slice-stacked channels-first outputs
            # (Z, C, X, Y) of a 2-D model run slice by slice
            for k in axes[1:-1]:
                options.append((k, 2, [a for a in axes if a != k], ()))
        if has_class_axis is not True:
            options.append((None, 3, axes, ()))
            if len(axes) >= 3 and raw_shape[axes[-1]] == 1:
                options.append((None, 3, axes[:-1], (axes[-1],)))
        for cls, rank, spatial, trailing in options:
            if len(spatial) not in (2, 3):
                continue
            sizes = [int(raw_shape[a]) for a in spatial]
            for image_axes, inserted in _matchings(sizes, image_shape, resample):
                out.append(
                    _Candidate(
                        class_axis=cls,
                        class_rank=rank,
                        squeeze=tuple(range(nb)) + trailing,
                        spatial=tuple(spatial),
                        image_axes=image_axes,
                        inserted=inserted,
                    )
                )
    return out


def _signature(c: _Candidate, raw_shape: Sequence[int]) -> tuple[object, ...]:
    """What the candidate's view looks like: equal signatures give identical views."""
    if c.class_axis is None:
        cls: object = "none"
    else:
        cls = c.class_axis if raw_shape[c.class_axis] > 1 else "one"
    per_image: list[int | None] = [None, None, None]
    for a, i in zip(c.spatial, c.image_axes, strict=True):
        per_image[i] = a if raw_shape[a] > 1 else None
    return (cls, *per_image)


def _ratio_spread(c: _Candidate, raw_shape: Sequence[int], image_shape: Sequence[int]) -> float:
    """Spread of log(pred size / image size) over the spatial axes (0 = one scale factor)."""
    logs = [
        math.log(raw_shape[a] / image_shape[i])
        for a, i in zip(c.spatial, c.image_axes, strict=True)
        if image_shape[i] > 1 and raw_shape[a] > 0
    ]
    return (max(logs) - min(logs)) if logs else 0.0


def _name_of(c: _Candidate, raw_shape: Sequence[int], image_shape: Sequence[int]) -> str:
    letters = ["?"] * len(raw_shape)
    for a in c.squeeze:
        letters[a] = "N"
    if c.class_axis is not None:
        letters[c.class_axis] = "C"
    identity = c.inversions == 0
    big = [i for i in range(3) if image_shape[i] != 1]
    hw_ok = len(c.spatial) == 2 and len(big) == 2 and tuple(sorted(c.image_axes)) == tuple(big)
    for a, i in zip(c.spatial, c.image_axes, strict=True):
        if identity and len(c.spatial) == 3:
            letters[a] = "DHW"[i]
        elif hw_ok:
            # H/W name the 2-D image's rows/cols wherever its singleton axis is (WH = transposed)
            letters[a] = "HW"[big.index(i)]
        else:
            letters[a] = "XYZ"[i]
    return "".join(letters)


def _to_layout(
    c: _Candidate, raw_shape: Sequence[int], image_shape: Sequence[int], name: str, note: str
) -> Layout:
    ndim = len(raw_shape)
    spatial = [-1, -1, -1]
    for a, i in zip(c.spatial, c.image_axes, strict=True):
        spatial[i] = a
    for j, i in enumerate(c.inserted):
        spatial[i] = ndim + j
    return Layout(
        raw_shape=tuple(int(s) for s in raw_shape),
        class_axis=c.class_axis,
        squeeze_axes=tuple(sorted(c.squeeze)),
        spatial_axes=(spatial[0], spatial[1], spatial[2]),
        name=name,
        note=note,
        inserted_axes=c.inserted,
    )


# --------------------------------------------------------------------------------------------
# explicit


def parse_layout(
    explicit: str,
    raw_shape: Sequence[int],
    image_shape: Sequence[int],
    *,
    resample: bool = False,
) -> Layout:
    """Build the :class:`Layout` an explicit string such as ``"NDHWC"`` or ``"ZYXC"`` names.

    Parameters
    ----------
    explicit
        One letter per raw axis (case-insensitive): ``N`` batch of size 1, ``C`` classes,
        ``X``/``Y``/``Z`` or ``D``/``H``/``W`` for image axes 0/1/2 (see the module docstring
        for ``H``/``W``-only 2-D layouts).
    raw_shape, image_shape
        Shapes of the prediction and of the image (3 axes).
    resample
        If True, spatial sizes need not equal the image's (the caller resamples).

    Raises
    ------
    SegviewerError
        Wrong length, unknown or repeated letters, a batch axis longer than 1, an image axis
        longer than 1 that the layout does not name, or sizes that disagree with the image.
    """
    raw_shape = tuple(int(s) for s in raw_shape)
    image_shape = tuple(int(s) for s in image_shape)
    text = explicit.strip().upper()
    where = f"layout {explicit!r} for prediction {_fmt(raw_shape)} on image {_fmt(image_shape)}"
    if len(text) != len(raw_shape):
        raise SegviewerError(
            f"{where}: it has {len(text)} letters but the prediction has {len(raw_shape)} axes; "
            "give one letter per axis (N, C, and X/Y/Z or D/H/W)"
        )
    bad = sorted({ch for ch in text if ch not in "NC" and ch not in _AXIS_OF_LETTER})
    if bad:
        raise SegviewerError(
            f"{where}: unknown letter(s) {', '.join(bad)}; use N (batch), C (classes), "
            "X/Y/Z or D/H/W (image axes 0/1/2)"
        )
    if text.count("C") > 1:
        raise SegviewerError(f"{where}: C appears more than once; there is one class axis")
    for k, ch in enumerate(text):
        if ch == "N" and raw_shape[k] != 1:
            raise SegviewerError(
                f"{where}: axis {k} is marked N (batch) but has size {raw_shape[k]}; "
                "segviewer reads one image per prediction (batch of 1)"
            )
    spatial_pos = [k for k, ch in enumerate(text) if ch in _AXIS_OF_LETTER]
    letters = [text[k] for k in spatial_pos]
    if len(letters) not in (2, 3):
        raise SegviewerError(
            f"{where}: it names {len(letters)} image axes; a layout needs 2 or 3 (e.g. HWC, NDHWC)"
        )
    big = [i for i in range(3) if image_shape[i] != 1]
    if set(letters) == {"H", "W"} and len(big) == 2:
        # rows/cols of a 2-D image, wherever its singleton axis is
        image_axes = [big[0] if ch == "H" else big[1] for ch in letters]
    else:
        image_axes = [_AXIS_OF_LETTER[ch] for ch in letters]
    for i in range(3):
        named = [letters[k] for k in range(len(letters)) if image_axes[k] == i]
        if len(named) > 1:
            raise SegviewerError(
                f"{where}: image axis {i} is named twice ({' and '.join(named)}); "
                "X=D is axis 0, Y=H axis 1, Z=W axis 2"
            )
    inserted = tuple(i for i in range(3) if i not in image_axes)
    for i in inserted:
        if image_shape[i] != 1:
            raise SegviewerError(
                f"{where}: image axis {i} (size {image_shape[i]}) is not in the layout; "
                "a 2-D layout fits only an image with an axis of size 1"
            )
    if not resample:
        for k, i in zip(spatial_pos, image_axes, strict=True):
            if raw_shape[k] != image_shape[i]:
                raise SegviewerError(
                    f"{where}: axis {k} ({text[k]}) has size {raw_shape[k]} but image axis {i} "
                    f"has size {image_shape[i]}; check the layout, or use --resample"
                )
    cls = text.index("C") if "C" in text else None
    cand = _Candidate(
        class_axis=cls,
        class_rank=0,
        squeeze=tuple(k for k, ch in enumerate(text) if ch == "N"),
        spatial=tuple(spatial_pos),
        image_axes=tuple(image_axes),
        inserted=inserted,
    )
    return _to_layout(cand, raw_shape, image_shape, text, f"layout {text} given explicitly")


# --------------------------------------------------------------------------------------------
# detection


def detect_layout(
    raw_shape: Sequence[int],
    image_shape: Sequence[int],
    *,
    explicit: str | None = None,
    has_class_axis: bool | None = None,
    resample: bool = False,
) -> Layout:
    """Find how a prediction's axes map to the image's, following the module's rules.

    Parameters
    ----------
    raw_shape
        Shape of the prediction as stored (2 to 6 axes).
    image_shape
        Shape of the image, 3 axes (``Volume.shape``).
    explicit
        A layout string (``"NDHWC"``, ``"CHW"``, ``"ZYXC"``...) that overrides detection;
        validated against both shapes.
    has_class_axis
        True for channel outputs (logits, probabilities, sigmoid), False for label maps, None
        when unknown (class axis preferred when both readings fit).
    resample
        If True, the spatial sizes need not equal the image's (the caller resamples onto the
        image grid); the axes are matched so that the size ratios are as uniform as possible.

    Returns
    -------
    Layout
        With ``note`` saying how it was decided, and whether the shapes were ambiguous.

    Raises
    ------
    SegviewerError
        When nothing fits; the message names both shapes and suggests ``--resample`` when the
        sizes differ by one scale factor, or ``--layout`` otherwise.
    """
    raw = tuple(int(s) for s in raw_shape)
    img = tuple(int(s) for s in image_shape)
    if len(img) != 3:
        raise SegviewerError(f"internal: image shape must have 3 axes, got {_fmt(img)}")
    if explicit is not None and explicit.strip():
        try:
            layout = parse_layout(explicit, raw, img, resample=resample)
        except SegviewerError as exc:
            fits = fitting_layouts(raw, img)
            if not fits:
                raise
            msg = str(exc).replace("; check the layout, or use --resample", "")
            raise ShapeMismatch(f"{msg}; {_fit_advice(fits)}", False, tuple(fits)) from None
        if has_class_axis is False and layout.class_axis is not None:
            raise SegviewerError(
                f"layout {explicit!r} names a class axis (C) but the prediction is a label map; "
                "drop C from the layout or choose another kind"
            )
        if has_class_axis is True and layout.class_axis is None:
            raise SegviewerError(
                f"layout {explicit!r} has no class axis (C) but the prediction has channels; "
                "add C to the layout, or use kind 'labels' for a label map"
            )
        return layout
    if not 2 <= len(raw) <= _MAX_NDIM:
        raise SegviewerError(
            f"prediction {_fmt(raw)} has {len(raw)} axes; segviewer reads 2-D or 3-D predictions "
            "with an optional batch axis of 1 and a class axis (at most 6 axes)"
        )
    cands = _candidates(raw, img, has_class_axis, resample)
    if resample and cands:
        spread = {id(c): _ratio_spread(c, raw, img) for c in cands}
        best_spread = min(spread.values())
        cands = [c for c in cands if spread[id(c)] <= best_spread + 1e-9]
    if not cands:
        fits = fitting_layouts(raw, img)
        if fits:
            what = "label map" if has_class_axis is False else "prediction with channels"
            raise ShapeMismatch(
                f"prediction {_fmt(raw)} does not fit image {_fmt(img)} as a {what}; "
                f"{_fit_advice(fits)}",
                False,
                tuple(fits),
            )
        raise ShapeMismatch(
            _no_fit_message(raw, img, has_class_axis),
            bool(_candidates(raw, img, has_class_axis, resample=True)),
        )
    # equal views are equally right; among them prefer reading leading 1s as a batch (NHWC)
    cands.sort(key=_preference)
    chosen = cands[0]
    distinct: dict[tuple[object, ...], _Candidate] = {}
    for c in cands:
        distinct.setdefault(_signature(c, raw), c)
    name = _name_of(chosen, raw, img)
    how = _describe(chosen, raw, img, name)
    if len(distinct) > 1:
        others = [
            _name_of(c, raw, img) for sig, c in distinct.items() if sig != _signature(chosen, raw)
        ]
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        note = (
            f"{how} The shapes are ambiguous: {shown} also fit; segviewer prefers the image's "
            "axis order, then channels last. If this is wrong, state the layout explicitly, "
            f"e.g. --layout {others[0]}."
        )
    else:
        note = how
    return _to_layout(chosen, raw, img, name, note)


def _preference(c: _Candidate) -> tuple[int, int, int]:
    """Rule 4: fewest swapped axis pairs, class axis last / first / between / none, batch."""
    return (c.inversions, c.class_rank, -sum(1 for a in c.squeeze if a == 0))


def fitting_layouts(
    raw_shape: Sequence[int], image_shape: Sequence[int], has_class_axis: bool | None = None
) -> list[str]:
    """Every distinct ``--layout`` string whose spatial sizes equal the image's, best first.

    Parameters
    ----------
    raw_shape, image_shape
        Shapes of the prediction as stored and of the image (3 axes).
    has_class_axis
        Restrict to readings with (True) or without (False) a class axis; None for both.

    Returns
    -------
    list of str
        Layout names in the order of preference of rule 4 (the first is what
        :func:`detect_layout` picks); layouts giving identical views are listed once. Empty
        when no axis order fits (then only resampling can help).
    """
    raw = tuple(int(s) for s in raw_shape)
    img = tuple(int(s) for s in image_shape)
    if len(img) != 3 or not 2 <= len(raw) <= _MAX_NDIM:
        return []
    cands = sorted(_candidates(raw, img, has_class_axis, False), key=_preference)
    seen: set[tuple[object, ...]] = set()
    out: list[str] = []
    for c in cands:
        sig = _signature(c, raw)
        if sig not in seen:
            seen.add(sig)
            out.append(_name_of(c, raw, img))
    return out


def _fit_advice(fits: Sequence[str]) -> str:
    shown = ", ".join(f"--layout {f}" for f in fits[:4])
    more = f" (and {len(fits) - 4} more)" if len(fits) > 4 else ""
    return f"these layouts fit its size exactly: {shown}{more}; no resampling is needed"


def describe_layout(layout: Layout) -> str:
    """The layout in words for the window: ``"slices, classes, image axis 0, image axis 1"``."""
    ndim = len(layout.raw_shape)
    words = ["?"] * ndim
    for a in layout.squeeze_axes:
        words[a] = "batch (1)"
    if layout.class_axis is not None:
        words[layout.class_axis] = f"classes ({layout.raw_shape[layout.class_axis]})"
    for i, a in enumerate(layout.spatial_axes):
        if a < ndim:
            words[a] = f"image axis {i} ({layout.raw_shape[a]})"
    return ", ".join(words)


def _describe(c: _Candidate, raw: Sequence[int], img: Sequence[int], name: str) -> str:
    parts = [f"Layout {name} detected for prediction {_fmt(raw)} on image {_fmt(img)}:"]
    if c.class_axis is None:
        parts.append("no class axis (label map),")
    else:
        where = {0: "last", 1: "first"}.get(c.class_rank, f"at raw axis {c.class_axis}")
        n = raw[c.class_axis]
        parts.append(f"class axis {where} ({n} channel{'s' if n != 1 else ''}),")
    if c.inversions:
        parts.append(f"spatial axes permuted to image axes {list(c.image_axes)} by size")
    else:
        parts.append("spatial axes in the image's order")
    if c.inserted:
        parts[-1] += f", image axis {c.inserted[0]} of size 1 inserted"
    return " ".join(parts) + "."


def _no_fit_message(raw: tuple[int, ...], img: tuple[int, ...], has_class_axis: bool | None) -> str:
    base = f"prediction {_fmt(raw)} does not match image {_fmt(img)}"
    scaled = _candidates(raw, img, has_class_axis, resample=True)
    if scaled:
        best = min(scaled, key=lambda c: (_ratio_spread(c, raw, img), c.inversions, c.class_rank))
        sizes = tuple(raw[a] for a in best.spatial)
        as_layout = f"read as --layout {_name_of(best, raw, img)}, "
        pairs = [(raw[a], img[i]) for a, i in zip(best.spatial, best.image_axes, strict=True)]
        pairs = [(p, q) for p, q in pairs if q > 1] or pairs
        factor = sum(p for p, _ in pairs) / sum(q for _, q in pairs)
        if all(abs(p - q) <= 2 for p, q in pairs):
            return (
                f"{base}: its spatial size {_fmt(sizes)} differs by a few voxels; was the image "
                "or the prediction cropped or padded? Use --resample only if both cover the "
                "same field of view"
            )
        # one scale factor for all axes, allowing each size to be rounded to whole voxels
        if all(abs(p - q * factor) <= 1 + 0.01 * p for p, q in pairs):
            return (
                f"{base}: {as_layout}its spatial size {_fmt(sizes)} is about {factor:.2f}x the "
                "image's; use --resample to resample the prediction onto the image grid"
            )
        return (
            f"{base}: no axis order makes its spatial size {_fmt(sizes)} equal the image's; "
            "check that the prediction belongs to this image, or state its layout with --layout "
            "(e.g. NDHWC) and use --resample if it covers the same field of view"
        )
    kind = "label map" if has_class_axis is False else "prediction"
    return (
        f"{base}: a {kind} needs 2 or 3 spatial axes (plus an optional class axis first or last "
        "and a batch axis of 1); check the file, or state its layout with --layout (e.g. NDHWC)"
    )
