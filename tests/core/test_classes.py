"""ClassTable: defaults, edits, fitting to a prediction, safe file names."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.classes import (
    INVALID_COLOR,
    UNCERTAIN_COLOR,
    ClassInfo,
    ClassTable,
    default_color,
)
from segviewer.core.types import SegviewerError

WINDOWS_RESERVED = (
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)


def test_default_table_names_and_colours() -> None:
    t = ClassTable.default(4)
    assert len(t) == 4
    assert t.names == ("background", "class 1", "class 2", "class 3")
    colors = t.colors
    assert colors.dtype == np.uint8 and colors.shape == (4, 3)
    assert colors[0].tolist() == [0, 0, 0]
    assert t[2].index == 2 and t[2].color == default_color(2)
    assert [c.index for c in t] == [0, 1, 2, 3]


@pytest.mark.parametrize("n", [2, 20, 21, 255, 1000])
def test_default_colours_are_distinct_and_avoid_reserved(n: int) -> None:
    colors = ClassTable.default(n).colors
    assert len(np.unique(colors, axis=0)) == n
    fg = {tuple(c) for c in colors[1:].tolist()}
    assert (0, 0, 0) not in fg
    assert tuple(UNCERTAIN_COLOR) not in fg and tuple(INVALID_COLOR) not in fg


def test_colors_is_a_fresh_array() -> None:
    t = ClassTable.default(3)
    t.colors[1] = 0
    assert t.colors[1].tolist() == list(default_color(1))


def test_with_color_and_with_name_return_new_tables() -> None:
    t = ClassTable.default(3)
    t2 = t.with_color(1, (1, 2, 3)).with_name(2, "  white matter ")
    assert t2[1].color == (1, 2, 3) and t[1].color == default_color(1)
    assert t2.names == ("background", "class 1", "white matter")
    assert t2.colors[1].tolist() == [1, 2, 3]
    with pytest.raises(SegviewerError, match="outside 0..255"):
        t.with_color(1, (0, 0, 256))
    with pytest.raises(SegviewerError, match="3 values"):
        t.with_color(1, (0, 0))
    with pytest.raises(SegviewerError, match=r"class 5 is not in the table \(classes 0..2\)"):
        t.with_name(5, "x")
    with pytest.raises(SegviewerError, match="empty name"):
        t.with_name(1, "   ")
    with pytest.raises(SegviewerError, match="control characters"):
        t.with_name(1, "a\x00b")


def test_table_must_be_dense() -> None:
    with pytest.raises(SegviewerError, match="dense"):
        ClassTable((ClassInfo(0, "bg", (0, 0, 0)), ClassInfo(2, "b", (1, 1, 1))))
    with pytest.raises(SegviewerError, match="at least one class"):
        ClassTable(())
    with pytest.raises(SegviewerError, match="at least one class"):
        ClassTable.default(0)


def test_fitted_pads_and_keeps_extras() -> None:
    t = ClassTable.default(2).with_name(1, "tumour")
    same, warn = t.fitted(2)
    assert same is t and warn == []
    padded, warn = t.fitted(5)
    assert padded.names == ("background", "tumour", "class 2", "class 3", "class 4")
    assert padded[4].color == default_color(4)
    assert len(warn) == 1 and "lists 2 classes but the prediction has 5" in warn[0]
    assert "classes 2-4 get default" in warn[0]
    bigger = ClassTable.default(4).with_name(3, "oedema")
    kept, warn = bigger.fitted(2)
    assert len(kept) == 4
    assert "classes 2-3" in warn[0] and "'oedema'" in warn[0] and "will not appear" in warn[0]


def test_fitted_avoids_name_clash_with_user_names() -> None:
    t = ClassTable.default(2).with_name(1, "class 2")
    padded, _ = t.fitted(3)
    assert padded.names == ("background", "class 2", "class 2 (unlisted)")


def test_from_entries_fills_gaps_and_reports() -> None:
    t, warn = ClassTable.from_entries(
        [
            (3, "Left-Lateral-Ventricle", (120, 18, 134)),
            (0, "Unknown", (0, 0, 0)),
            (2, "Left-Cerebral-White-Matter", (245, 245, 245)),
            (7, "x", [1, 2, 3]),
        ],
        source="lut.txt",
    )
    assert len(t) == 8
    assert t.names[2] == "Left-Cerebral-White-Matter" and t[3].color == (120, 18, 134)
    assert t.names[1] == "class 1" and t.names[5] == "class 5"
    assert len(warn) == 1 and "lut.txt: indices 1, 4-6 are not listed (4 of 8)" in warn[0]


def test_from_entries_errors() -> None:
    with pytest.raises(SegviewerError, match="index 1 appears twice"):
        ClassTable.from_entries([(0, "a", (0, 0, 0)), (1, "b", (0, 0, 0)), (1, "c", (0, 0, 0))])
    with pytest.raises(SegviewerError, match="name 'B' is used by classes 1 and 2"):
        ClassTable.from_entries([(0, "a", (0, 0, 0)), (1, "b", (0, 0, 0)), (2, "B", (0, 0, 0))])
    with pytest.raises(SegviewerError, match="empty"):
        ClassTable.from_entries([])
    with pytest.raises(SegviewerError, match="lut.txt: class index must be 0 or more, got -1"):
        ClassTable.from_entries([(-1, "a", (0, 0, 0))], source="lut.txt")
    with pytest.raises(SegviewerError, match="more than segviewer supports"):
        ClassTable.default(65535)
    t, warn = ClassTable.from_entries([(1, "tumour", (255, 0, 0))])
    assert t.names == ("background", "tumour") and "no class 0" in warn[0]


def test_safe_filename() -> None:
    names = [
        "background",
        "grey matter",
        "../../etc/passwd",
        "CON",
        "nul",
        "COM1",
        'a/b\\c:d*e?f"g<h>i|j',
        "Hippocampus (Å)",
        "海马",
        ".hidden",
        "x" * 150,
        "grey_matter",
        "Grey Matter",
    ]
    t = ClassTable(tuple(ClassInfo(i, n, (0, 0, 0)) for i, n in enumerate(names)))
    stems = [t.safe_filename(i) for i in range(len(t))]
    assert stems[0] == "00_background" and stems[1] == "01_grey_matter"
    assert stems[2] == "02_etc_passwd"
    assert stems[7] == "07_hippocampus_a"
    assert stems[8] == "08_class"
    assert stems[9] == "09_hidden"
    assert len(set(s.lower() for s in stems)) == len(stems)
    for s in stems:
        assert len(s) <= 72
        assert all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in s), s
        assert s.split(".")[0].upper() not in WINDOWS_RESERVED
        assert ".." not in s and not s.startswith((".", "-"))
    assert ClassTable.default(300).safe_filename(7) == "007_class_7"


def test_class_codes_are_checked_and_kept() -> None:
    liver = (("123037004", "SCT", "Anatomical Structure"), ("10200004", "SCT", "Liver"))
    info = ClassInfo(1, "liver", (200, 0, 0), codes=liver)
    assert info.codes == liver
    for bad in ((("1", "SCT"), ("2", "SCT", "x")), (("1", "SCT", ""), liver[1]), ("x",)):
        with pytest.raises(SegviewerError, match="codes must be"):
            ClassInfo(1, "liver", (200, 0, 0), codes=bad)  # type: ignore[arg-type]
    table = ClassTable((ClassInfo(0, "background", (0, 0, 0)), info))
    assert table.with_name(1, "Leber")[1].codes == liver
    assert table.with_color(1, (0, 0, 255))[1].codes == liver
    assert table.shifted(2)[3].codes == liver
    assert table.with_codes({1: None})[1].codes is None
