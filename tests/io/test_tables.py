"""io.tables: evaluation CSVs read back as typed rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from segviewer.core.types import SegviewerError
from segviewer.io.tables import read_rows, typed


def test_cells_are_typed() -> None:
    assert typed("12") == 12 and isinstance(typed("12"), int)
    assert typed("0.25") == 0.25
    assert math.isnan(typed("nan")) and typed("inf") == math.inf
    assert typed("") is None and typed("  ") is None and typed(None) is None
    assert typed("True") is True and typed("false") is False
    assert typed("case01") == "case01"


def test_read_rows_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "cases.csv"
    p.write_text("case,class,dice,hd95_mm\ns1,grey,0.9,\ns2,grey,nan,3.5\n", encoding="utf-8")
    rows = read_rows(p, required=("case", "dice"))
    assert rows[0] == {"case": "s1", "class": "grey", "dice": 0.9, "hd95_mm": None}
    assert math.isnan(rows[1]["dice"]) and rows[1]["hd95_mm"] == 3.5
    with pytest.raises(SegviewerError, match="has no slice column"):
        read_rows(p, required=("slice",))
    with pytest.raises(SegviewerError, match="does not exist; run 'segviewer evaluate' first"):
        read_rows(tmp_path / "none.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(SegviewerError, match="cannot read"):
        read_rows(tmp_path / "bin.csv")
