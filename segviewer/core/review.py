"""Test-set review logic behind the case table, the slice table and the two-prediction view.

Pure numpy / standard library, no Qt: the window's tables are thin views over what is here.

* **Rows** are plain ``dict``\\ s from column name to value (a number, a string, or ``None``
  for a missing value). NaN and ``None`` are both "missing": they sort last whichever way a
  column is sorted and never match a comparison.
* **Filters** are short expressions a reviewer types: ``dice < 0.8``, ``Dice below 0.8 and
  fn > 100``, ``class = tumour or not (verdict = accept)``. :func:`parse_filter` parses them
  with a small recursive-descent parser (never ``eval``) and checks every column name up
  front, so a typo is a one-line message listing the columns instead of an empty table.
* **Slice table** rows (:func:`slice_rows`) are ``core.metrics`` per-slice metrics of the
  open case (the one place metrics are defined); without a reference they carry the model's
  own doubt (mean entropy, low-confidence share) and :func:`rank_by_doubt` orders them.
  :func:`worst_slice` applies ``core.metrics``' worst-slice rule to ``slices.csv`` rows.
* **Two predictions** of one image: :func:`disagreement_map` codes each voxel by who agrees
  with whom, :func:`compare_pair` gives each prediction against the reference and one
  against the other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from segviewer.core import compare as _compare
from segviewer.core.metrics import METRIC_COLUMNS, CaseMetrics, UncertaintySums
from segviewer.core.types import Progress, SegviewerError

__all__ = [
    "DIS_AGREE",
    "DIS_ONLY_A",
    "DIS_ONLY_B",
    "DIS_NEITHER",
    "DIS_DIFFER",
    "COMPARED_METRICS",
    "PRESET_FILTERS",
    "SLICE_COLUMNS",
    "Filter",
    "PairComparison",
    "as_number",
    "is_missing",
    "parse_filter",
    "sort_rows",
    "filter_rows",
    "columns_of",
    "pivot_cases",
    "worst_slice",
    "slice_rows",
    "rank_by_doubt",
    "DISAGREEMENT_COLORS",
    "DISAGREEMENT_NAMES",
    "disagreement_lut",
    "disagreement_map",
    "disagreement_counts",
    "compare_pair",
]

Row = dict[str, Any]


def is_missing(value: Any) -> bool:
    """``None``, an empty string or a NaN float."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, (float, np.floating)):
        return math.isnan(float(value))
    return False


def as_number(value: Any) -> float | None:
    """A value as a float (numbers, booleans, numeric text), or None when missing / text."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        return None if math.isnan(v) else v
    if isinstance(value, str):
        try:
            v = float(value)
        except ValueError:
            return None
        return None if math.isnan(v) else v
    return None


# --------------------------------------------------------------------------- sorting


def sort_rows(rows: Sequence[Row], column: str, *, descending: bool = False) -> list[Row]:
    """Rows sorted by one column; missing values last in both directions.

    Numbers sort numerically, other values as case-insensitive text, numbers before text.
    The sort is stable, so sorting by a second column keeps the first as a tie-break.
    """

    def key(r: Row) -> tuple[int, float, str]:
        v = r.get(column)
        num = as_number(v)
        if num is not None:
            return (0, -num if descending else num, "")
        return (1, 0.0, str(v).lower())

    present = [r for r in rows if not is_missing(r.get(column))]
    missing = [r for r in rows if is_missing(r.get(column))]
    numeric = sorted((r for r in present if as_number(r.get(column)) is not None), key=key)
    text = sorted(
        (r for r in present if as_number(r.get(column)) is None),
        key=key,
        reverse=descending,
    )
    return numeric + text + missing


def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Column names of a list of rows, in first-seen order."""
    seen: dict[str, None] = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


# --------------------------------------------------------------------------- filters

#: Filters offered by name in the window (label -> expression over :data:`SLICE_COLUMNS`).
PRESET_FILTERS: dict[str, str] = {
    "Dice below 0.8": "dice < 0.8",
    "In the reference, missing in the prediction": "n_ref > 0 and n_pred = 0",
    "In the prediction, not in the reference": "n_pred > 0 and n_ref = 0",
    "Any error": "fp + fn > 0",
}

_OPS: dict[str, str] = {
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "=": "=",
    "==": "=",
    "!=": "!=",
    "<>": "!=",
    "below": "<",
    "under": "<",
    "above": ">",
    "over": ">",
    "is": "=",
}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])
      | (?P<str>"[^"]*"|'[^']*')
      | (?P<op><=|>=|==|!=|<>|<|>|=)
      | (?P<arith>[-+])
      | (?P<paren>[()])
      | (?P<word>[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)


class Filter:
    """A parsed filter expression: call it on a row to get True / False.

    Attributes
    ----------
    text
        The expression as typed.
    columns
        Column names it reads (lower case).
    """

    def __init__(self, text: str, fn: Callable[[Any], bool], columns: set[str]):
        self.text = text
        self._fn = fn
        self.columns = frozenset(columns)

    def __call__(self, row: Mapping[str, Any]) -> bool:
        return bool(self._fn(_Caseless(row)))

    def __repr__(self) -> str:
        return f"Filter({self.text!r})"


_ABSENT = object()


class _Caseless:
    """A row read by lower-case column name (direct lookup first: most names already are)."""

    __slots__ = ("_row",)

    def __init__(self, row: Mapping[str, Any]) -> None:
        self._row = row

    def get(self, name: str, default: Any = None) -> Any:
        v = self._row.get(name, _ABSENT)
        if v is not _ABSENT:
            return v
        for k, val in self._row.items():
            if str(k).lower() == name:
                return val
        return default


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].strip()
            raise SegviewerError(
                f"cannot read the filter at {bad[:20]!r}; write e.g. 'dice < 0.8 and fn > 10'"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    """expr := and ('or' and)* ; and := not ('and' not)* ; not := 'not' not | atom ;
    atom := '(' expr ')' | sum OP value ; sum := WORD (('+'|'-') WORD)*."""

    def __init__(self, text: str, columns: Sequence[str] | None) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.columns = {c.lower() for c in columns} if columns is not None else None
        self.used: set[str] = set()

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise SegviewerError(
                f"the filter {self.text!r} ends too early; write e.g. 'dice < 0.8'"
            )
        self.i += 1
        return tok

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "word" and tok[1].lower() == word

    def parse(self) -> Filter:
        if not self.toks:
            return Filter(self.text, lambda r: True, set())
        fn = self.expr()
        if (extra := self.peek()) is not None:
            raise SegviewerError(
                f"unexpected {extra[1]!r} in the filter {self.text!r}; "
                "join conditions with 'and' / 'or'"
            )
        return Filter(self.text, fn, self.used)

    def expr(self) -> Callable[[Any], bool]:
        parts = [self.conj()]
        while self.is_word("or"):
            self.take()
            parts.append(self.conj())
        if len(parts) == 1:
            return parts[0]
        return lambda r: any(p(r) for p in parts)

    def conj(self) -> Callable[[Any], bool]:
        parts = [self.neg()]
        while self.is_word("and"):
            self.take()
            parts.append(self.neg())
        if len(parts) == 1:
            return parts[0]
        return lambda r: all(p(r) for p in parts)

    def neg(self) -> Callable[[Any], bool]:
        if self.is_word("not"):
            self.take()
            inner = self.neg()
            return lambda r: not inner(r)
        return self.atom()

    def atom(self) -> Callable[[Any], bool]:
        tok = self.peek()
        if tok == ("paren", "("):
            self.take()
            inner = self.expr()
            if self.peek() != ("paren", ")"):
                raise SegviewerError(f"a ')' is missing in the filter {self.text!r}")
            self.take()
            return inner
        return self.comparison()

    def column(self) -> str:
        kind, val = self.take()
        if kind != "word" or val.lower() in ("and", "or", "not"):
            raise SegviewerError(
                f"expected a column name before {val!r} in the filter {self.text!r}; "
                "write e.g. 'dice < 0.8'"
            )
        name = val.lower()
        if self.columns is not None and name not in self.columns:
            known = ", ".join(sorted(self.columns))
            raise SegviewerError(f"no column {val!r} to filter on; the columns are: {known}")
        self.used.add(name)
        return name

    def comparison(self) -> Callable[[Any], bool]:
        terms: list[tuple[float, str]] = [(1.0, self.column())]
        while (tok := self.peek()) is not None and tok[0] == "arith":
            sign = -1.0 if self.take()[1] == "-" else 1.0
            terms.append((sign, self.column()))
        kind, op_text = self.take()
        op = _OPS.get(op_text.lower()) if kind in ("op", "word") else None
        if op is None:
            raise SegviewerError(
                f"expected a comparison (<, <=, >, >=, =, !=, below, above) after the column "
                f"in the filter {self.text!r}, got {op_text!r}"
            )
        if op == "=" and self.is_word("not"):  # 'verdict is not accept'
            self.take()
            op = "!="
        vkind, vtext = self.take()
        value: float | str
        if vkind == "num":
            value = float(vtext)
        elif vkind == "str":
            value = vtext[1:-1]
        elif vkind == "word":
            value = vtext
        else:
            raise SegviewerError(
                f"expected a number or a word after {op_text!r} in the filter {self.text!r}"
            )
        return _make_test(terms, op, value)


def _make_test(
    terms: list[tuple[float, str]], op: str, value: float | str
) -> Callable[[Any], bool]:
    def left(r: _Caseless) -> Any:
        if len(terms) == 1:
            return r.get(terms[0][1])
        total = 0.0
        for sign, name in terms:
            v = as_number(r.get(name))
            if v is None:
                return None
            total += sign * v
        return total

    if isinstance(value, float):
        num = value

        def test_num(r: _Caseless) -> bool:
            v = as_number(left(r))
            if v is None:
                return False
            return _apply(op, v, num)

        return test_num

    text = value.lower()
    num_text = as_number(value)

    def test_text(r: _Caseless) -> bool:
        v = left(r)
        if is_missing(v):
            # 'verdict = none' / 'verdict is empty' finds rows without a value
            return (text in ("none", "empty", "missing")) == (op == "=")
        num_v = as_number(v)
        if num_text is not None and num_v is not None:
            return _apply(op, num_v, num_text)
        s = str(v).lower()
        if op in ("=", "!="):
            return (s == text) == (op == "=")
        return _apply(op, s, text)

    return test_text


def _apply(op: str, a: Any, b: Any) -> bool:
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    if op == ">=":
        return bool(a >= b)
    if op == "=":
        return bool(a == b)
    return bool(a != b)


def parse_filter(text: str, columns: Sequence[str] | None = None) -> Filter:
    """Parse a filter expression (no ``eval``; see the module docstring).

    Grammar: conditions ``COLUMN OP VALUE`` joined by ``and`` / ``or``, negated by ``not``,
    grouped by parentheses. ``OP`` is one of ``< <= > >= = == != below under above over is``
    (``is not``); the left side may add or subtract columns (``fp + fn > 100``). ``VALUE`` is
    a number, a bare word or a quoted string; words compare case-insensitively, ``= none``
    matches a missing value. Column names are case-insensitive. An empty text keeps every
    row.

    Parameters
    ----------
    text
        The expression.
    columns
        Known column names; a name outside them is an error naming the known ones.

    Raises
    ------
    SegviewerError
        One line saying what is wrong and how to write it.
    """
    return _Parser(text, columns).parse()


def filter_rows(rows: Iterable[Row], flt: Filter | str | None) -> list[Row]:
    """The rows a filter keeps (a string is parsed against the rows' columns)."""
    rows = list(rows)
    if flt is None:
        return rows
    if isinstance(flt, str):
        flt = parse_filter(flt, columns_of(rows) or None)
    return [r for r in rows if flt(r)]


# --------------------------------------------------------------------------- case table


#: Metrics :func:`pivot_cases` carries for the second model and subtracts (B - A).
COMPARED_METRICS: tuple[str, ...] = (
    "dice",
    "iou",
    "sensitivity",
    "precision",
    "volume_pred_ml",
    "volume_diff_ml",
    "fp",
    "fn",
    "hd95_mm",
    "assd_mm",
    "mean_entropy",
    "low_confidence_share",
)


def pivot_cases(
    records: Iterable[Mapping[str, Any]],
    class_name: str | None,
    *,
    metrics: Sequence[str] | None = None,
    compared: Sequence[str] = COMPARED_METRICS,
    case_key: str = "case",
    class_key: str = "class",
    model_key: str = "model",
    models: tuple[str, str] = ("a", "b"),
) -> list[Row]:
    """One case-table row per case for one class, from one-row-per-case-and-class records.

    Parameters
    ----------
    records
        Rows such as ``cases.csv``'s: a case id, a class name and metric columns; with two
        predictions per case, a ``model`` column saying which (``models``).
    class_name
        Keep this class's records (compared case-insensitively with the class column, so a
        class index written as text works too). ``None``: the records have no class column
        or all are kept (the last one per case wins).
    metrics
        Metric columns to carry; default all columns except the keys.
    compared
        The metrics of the second model that are carried: as ``<metric>_b`` and
        ``<metric>_diff`` = B - A (when both are numbers), so sorting by ``dice_diff`` puts
        the cases where B got worse first. Others (the reference's volume, the worst slice)
        describe the case, not the model, and are A's only.
    models
        The two model names (the ``model`` column's values; rows without one are A's).

    Returns
    -------
    list of dict
        ``{"case": id, metric: value, ...}`` in first-seen case order; each compared metric
        is followed by its ``_b`` and ``_diff`` columns.
    """
    keys = {case_key, class_key, model_key}
    out: dict[str, Row] = {}
    b_name = models[1].lower()
    want = None if class_name is None else str(class_name).lower()
    has_b = False
    for rec in records:
        if want is not None and str(rec.get(class_key, "")).lower() != want:
            continue
        case = str(rec.get(case_key, ""))
        row = out.setdefault(case, {case_key: case})
        is_b = str(rec.get(model_key, "") or "").lower() == b_name
        has_b |= is_b
        for k, v in rec.items():
            if k in keys or (metrics is not None and k not in metrics):
                continue
            if is_b:
                if k in compared:
                    row[f"{k}_b"] = v
            else:
                row[k] = v
    if not has_b:
        return list(out.values())
    result = []
    for row in out.values():
        ordered: Row = {}
        for k, v in row.items():
            if k.endswith("_b") and k[:-2] in row:
                continue  # placed after its A column below
            ordered[k] = v
            if k in compared and k != case_key:
                b_val = row.get(f"{k}_b")
                a, b = as_number(v), as_number(b_val)
                ordered[f"{k}_b"] = b_val
                ordered[f"{k}_diff"] = (b - a) if a is not None and b is not None else None
        for k, v in row.items():  # B metrics of a case without A's row
            ordered.setdefault(k, v)
        result.append(ordered)
    # a metric B never has (a label map has no entropy) gets no B / difference columns
    for k in compared:
        if all(is_missing(r.get(f"{k}_b")) for r in result):
            for r in result:
                r.pop(f"{k}_b", None)
                r.pop(f"{k}_diff", None)
    return result


def worst_slice(
    slice_records: Iterable[Mapping[str, Any]],
    *,
    case: str | None = None,
    class_name: str | None = None,
    case_key: str = "case",
    class_key: str = "class",
    slice_key: str = "slice",
) -> int | None:
    """The slice to open a case at, from ``slices.csv``-like records (one row per case,
    slice and class).

    The rule of ``core.metrics.CaseMetrics.worst_slice``, applied to rows: with a reference
    (a ``dice`` value), the most false positives + false negatives, ties broken by the lower
    Dice, among slices with at least one wrong voxel; without one, the highest
    ``mean_entropy`` among slices where the class is predicted (``n_pred`` > 0).
    ``class_name`` None considers every class. None when no row qualifies.
    """
    want = None if class_name is None else str(class_name).lower()
    best: tuple[float, float] | None = None
    found: int | None = None
    for rec in slice_records:
        if case is not None and str(rec.get(case_key, "")) != str(case):
            continue
        if want is not None and str(rec.get(class_key, "")).lower() != want:
            continue
        s = as_number(rec.get(slice_key))
        if s is None:
            continue
        d = as_number(rec.get("dice"))
        if d is not None:
            wrong = (as_number(rec.get("fp")) or 0.0) + (as_number(rec.get("fn")) or 0.0)
            if _truthy(rec.get("absent_in_both")) or wrong == 0:
                continue
            key = (-wrong, d)
        else:
            ent = as_number(rec.get("mean_entropy"))
            n_pred = as_number(rec.get("n_pred"))
            if ent is None or n_pred == 0:
                continue
            key = (-ent, -(n_pred or 0.0))
        if best is None or key < best:
            best, found = key, int(s)
    return found


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) if value is not None else False


# --------------------------------------------------------------------------- slice table

#: Columns of :func:`slice_rows` (``core.metrics.ClassMetrics`` fields plus slice and
#: class); those without a value in a case (no reference, no class scores) are left out.
SLICE_COLUMNS: tuple[str, ...] = ("slice", "class", *METRIC_COLUMNS)
_REFERENCE_COLUMNS = {
    "n_ref",
    "tp",
    "fp",
    "fn",
    "dice",
    "iou",
    "sensitivity",
    "precision",
    "volume_ref_ml",
    "volume_diff_ml",
    "hd95_mm",
    "assd_mm",
}
_DOUBT_COLUMNS = {"mean_entropy", "low_confidence_share"}


def slice_rows(
    case: CaseMetrics,
    class_index: int | None,
    *,
    uncertainty: UncertaintySums | None = None,
    class_names: Sequence[str] | None = None,
) -> list[Row]:
    """Slice-table rows of one measured case (``core.metrics.iter_case_metrics``).

    Parameters
    ----------
    case
        The case's metrics (per slice along ``case.slice_axis``).
    class_index
        One class: its ``core.metrics.ClassMetrics`` on every slice. ``None`` ("all
        classes"): one row per slice with the foreground classes' voxel counts summed
        (``n_pred``, ``n_ref``, ``fp``, ``fn``; a voxel of one class predicted as another is
        a false positive of one and a false negative of the other, so both count) and the
        doubt of every voxel of the slice; no overlap ratios (they are per class).
    uncertainty
        ``core.metrics.iter_uncertainty``'s sums along ``case.slice_axis``: the whole-slice
        doubt of the "all classes" rows.
    class_names
        Names for the ``class`` column (default the index as text).

    Returns
    -------
    list of dict
        :data:`SLICE_COLUMNS` plus ``low_confidence_voxels`` (the low-confidence area in
        voxels), without the reference columns when the case has no reference and without
        the doubt columns when there are no class scores. ``absent_in_both`` (with a
        reference) is kept so "Dice below 0.8" skips slices where the class is in neither
        map (their Dice is 1 by convention).
    """
    n = case.n_classes
    if class_index is not None and not 0 <= class_index < n:
        raise SegviewerError(f"class {class_index} does not exist (classes are 0..{n - 1})")
    if uncertainty is not None and uncertainty.count.shape[0] != len(case.per_slice):
        raise SegviewerError("internal: the uncertainty sums belong to another slicing")
    if class_index is None:
        return _all_class_rows(case, uncertainty)
    drop = set()
    if not case.has_reference:
        drop |= _REFERENCE_COLUMNS
    if not case.has_uncertainty:
        drop |= _DOUBT_COLUMNS
    name = (
        class_names[class_index]
        if class_names and class_index < len(class_names)
        else str(class_index)
    )
    rows: list[Row] = []
    for i, per_class in enumerate(case.per_slice):
        d = per_class[class_index].as_dict()
        row: Row = {"slice": i, "class": name}
        for col in SLICE_COLUMNS[2:]:
            if col not in drop:
                row[col] = d[col]
        if case.has_uncertainty:
            share = as_number(d["low_confidence_share"])
            row["low_confidence_voxels"] = (
                None if share is None else int(round(share * d["n_pred"]))
            )
        if case.has_reference:
            row["absent_in_both"] = d["absent_in_both"]
        rows.append(row)
    return rows


def _all_class_rows(case: CaseMetrics, uncertainty: UncertaintySums | None) -> list[Row]:
    rows: list[Row] = []
    fg = range(1, case.n_classes) if case.n_classes > 1 else range(1)
    ent = low = None
    if uncertainty is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            cnt = uncertainty.count[:, -1]
            ent = np.where(cnt > 0, uncertainty.entropy[:, -1] / np.maximum(cnt, 1), np.nan)
            low = uncertainty.low[:, -1]
            share = np.where(cnt > 0, low / np.maximum(cnt, 1), np.nan)
    for i, per_class in enumerate(case.per_slice):
        cells = [per_class[k] for k in fg]
        row: Row = {"slice": i, "class": "all", "n_pred": sum(c.n_pred for c in cells)}
        if case.has_reference:
            row["n_ref"] = sum(c.n_ref or 0 for c in cells)
            row["fp"] = sum(c.fp or 0 for c in cells)
            row["fn"] = sum(c.fn or 0 for c in cells)
        if ent is not None and low is not None:
            row["mean_entropy"] = float(ent[i])
            row["low_confidence_share"] = float(share[i])
            row["low_confidence_voxels"] = int(low[i])
        rows.append(row)
    return rows


def rank_by_doubt(rows: Sequence[Row]) -> list[Row]:
    """Slice rows, most doubtful first: the largest low-confidence area (voxels), ties by
    the higher mean entropy (rows without a value last). Area first, so a slice with three
    unsure voxels does not outrank one with three hundred."""
    by_entropy = sort_rows(rows, "mean_entropy", descending=True)
    return sort_rows(by_entropy, "low_confidence_voxels", descending=True)


# --------------------------------------------------------------------------- two predictions

#: :func:`disagreement_map` codes: both predictions agree (or the voxel is not scored) ...
DIS_AGREE = 0
#: ... they differ and only A agrees with the reference ...
DIS_ONLY_A = 1
#: ... only B agrees with the reference ...
DIS_ONLY_B = 2
#: ... they differ and neither agrees with the reference ...
DIS_NEITHER = 3
#: ... they differ and there is no reference to say who is right.
DIS_DIFFER = 4


def disagreement_map(
    a: np.ndarray,
    b: np.ndarray,
    reference: np.ndarray | None = None,
    class_index: int | None = None,
    *,
    n_classes: int | None = None,
) -> np.ndarray:
    """Where two label maps disagree, coded by which one agrees with the reference.

    Parameters
    ----------
    a, b
        Label maps of the same shape (a slice or a volume), integer dtypes.
    reference
        Optional reference of the same shape. Where it is not scored (a value outside the
        classes, as in ``core.compare``) a disagreement is :data:`DIS_DIFFER`.
    class_index
        ``None``: compare whole labels. A class ``k``: compare membership of ``k`` only
        (A and B disagree where exactly one of them has ``k``; one "agrees with the
        reference" when its membership equals the reference's).
    n_classes
        Number of classes, for scoring the reference (see ``core.compare.error_map``).

    Returns
    -------
    numpy.ndarray
        uint8 codes :data:`DIS_AGREE`, :data:`DIS_ONLY_A`, :data:`DIS_ONLY_B`,
        :data:`DIS_NEITHER`, :data:`DIS_DIFFER`.
    """
    for what, x in (("first prediction", a), ("second prediction", b), ("reference", reference)):
        if x is not None and np.asarray(x).dtype.kind not in "ui":
            raise SegviewerError(f"the {what} must be an integer label map, got {x.dtype}")
    if a.shape != b.shape or (reference is not None and reference.shape != a.shape):
        shapes = [a.shape, b.shape] + ([] if reference is None else [reference.shape])
        raise SegviewerError(
            f"cannot compare label maps of shapes {', '.join(map(str, shapes))}; all must be "
            "on the same image grid"
        )
    a = np.asarray(a)
    b = np.asarray(b)
    if class_index is None:
        ma, mb = a, b
    else:
        ma, mb = a == class_index, b == class_index
    differ = ma != mb
    out = np.zeros(a.shape, np.uint8)
    if reference is None:
        out[differ] = DIS_DIFFER
        return out
    r = np.asarray(reference)
    mr = r if class_index is None else (r == class_index)
    a_ok = ma == mr
    b_ok = mb == mr
    # DIS_ONLY_A = 1, DIS_ONLY_B = 2, DIS_NEITHER = 3: 1*a_ok + 2*b_ok is 0 neither, 1 only A,
    # 2 only B (both right cannot happen where they differ); map 0 -> 3.
    code = a_ok.astype(np.uint8) + 2 * b_ok.astype(np.uint8)
    code[code == 0] = DIS_NEITHER
    code[~differ] = DIS_AGREE
    scored = _compare.scored_mask(r, n_classes)
    code[differ & ~scored] = DIS_DIFFER
    return code


#: Colours of the disagreement overlay, code -> RGB: only A right cyan, only B right
#: yellow (a pair that stays apart for red-green colour blindness, and apart from the
#: default class colours, blue and orange, which the view dims under the overlay), neither
#: right magenta, no reference to judge white.
DISAGREEMENT_COLORS: dict[int, tuple[int, int, int]] = {
    DIS_ONLY_A: (0, 220, 255),
    DIS_ONLY_B: (255, 230, 0),
    DIS_NEITHER: (255, 0, 200),
    DIS_DIFFER: (255, 255, 255),
}
#: What each code means, for a legend.
DISAGREEMENT_NAMES: dict[int, str] = {
    DIS_ONLY_A: "only A agrees with the reference",
    DIS_ONLY_B: "only B agrees with the reference",
    DIS_NEITHER: "neither agrees with the reference",
    DIS_DIFFER: "A and B differ",
}


def disagreement_lut(opacity: float = 0.8) -> np.ndarray:
    """``(256, 4)`` uint8 RGBA table for :func:`disagreement_map` codes, usable with
    ``core.overlay.compose``: agreeing voxels transparent, the others at ``opacity``."""
    if not 0.0 <= opacity <= 1.0:
        raise SegviewerError(f"opacity must be between 0 and 1, got {opacity}")
    lut = np.zeros((256, 4), np.uint8)
    alpha = int(round(255 * opacity))
    for code, rgb in DISAGREEMENT_COLORS.items():
        lut[code] = (*rgb, alpha)
    return lut


def disagreement_counts(codes: np.ndarray) -> dict[str, int]:
    """Voxel counts per :func:`disagreement_map` code, by name."""
    n = np.bincount(codes.ravel(), minlength=5)
    return {
        "agree": int(n[DIS_AGREE]),
        "only_a": int(n[DIS_ONLY_A]),
        "only_b": int(n[DIS_ONLY_B]),
        "neither": int(n[DIS_NEITHER]),
        "differ": int(n[DIS_DIFFER]),
    }


@dataclass(frozen=True, eq=False)
class PairComparison:
    """Two predictions of one image: each against the reference, and A against B.

    Attributes
    ----------
    a_vs_reference, b_vs_reference
        ``core.compare.Comparison`` of each prediction with the reference (None without one).
    a_vs_b
        A compared with B taken as the "reference" (Dice and IoU are symmetric; sensitivity
        of A vs B is the share of B's voxels A also has).
    """

    a_vs_reference: _compare.Comparison | None
    b_vs_reference: _compare.Comparison | None
    a_vs_b: _compare.Comparison

    def rows(self) -> list[Row]:
        """One row per class: Dice / IoU of A and B vs the reference, their difference
        (B - A), and Dice / IoU of A vs B."""
        out: list[Row] = []
        for k, ab in enumerate(self.a_vs_b.per_class):
            row: Row = {"class": k, "dice_a_b": ab.dice, "iou_a_b": ab.jaccard}
            if self.a_vs_reference is not None and self.b_vs_reference is not None:
                ca = self.a_vs_reference.per_class[k]
                cb = self.b_vs_reference.per_class[k]
                row.update(
                    dice=ca.dice,
                    dice_b=cb.dice,
                    dice_diff=cb.dice - ca.dice,
                    iou=ca.jaccard,
                    iou_b=cb.jaccard,
                    iou_diff=cb.jaccard - ca.jaccard,
                )
            out.append(row)
        return out


def compare_pair(
    a: np.ndarray,
    b: np.ndarray,
    reference: np.ndarray | None,
    n_classes: int,
    voxel_volume_mm3: float = 1.0,
) -> Generator[Progress, None, PairComparison]:
    """Compare two predictions with the reference and with each other (streamed).

    A voxel that B leaves without a class (UNCERTAIN / INVALID) is "not scored" in A vs B,
    like an unscored reference voxel in ``core.compare``.
    """
    ar = br = None
    if reference is not None:
        ar = yield from _compare.iter_compare(a, reference, n_classes, voxel_volume_mm3)
        br = yield from _compare.iter_compare(b, reference, n_classes, voxel_volume_mm3)
    ab = yield from _compare.iter_compare(a, b, n_classes, voxel_volume_mm3)
    return PairComparison(ar, br, ab)
