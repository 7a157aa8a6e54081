"""Class tables (names and colours) from and to the files other tools write.

Formats, detected from the content (the extension is only a tie-breaker):

* **segviewer JSON**: ``{"classes": [{"index": 0, "name": "background", "color":
  "#000000"}, ...]}`` (a bare list of such objects is accepted too); colours ``"#rrggbb"``,
  ``"#rgb"`` or ``[r, g, b]``; a missing colour gets the default one.
* **CSV** (comma, semicolon or tab): ``index,name,color`` (hex) or ``index,name,r,g,b``; a
  header row is optional.
* **ITK-SNAP label description**: ``IDX -R- -G- -B- -A-- VIS MSH "LABEL"`` per line
  (alpha 0..1, visibility and mesh flags are not used by segviewer).
* **FreeSurferColorLUT** and **3D Slicer colour tables** (``.ctbl``/``.txt``):
  ``index name R G B A`` per line.

``#`` starts a comment in the text formats. Indices may be sparse (FreeSurfer: 0, 2, 3,
41...); the table is made dense over 0..max with default "class k" entries and a warning.
Repeated indices or names, bad colours and files without any class are errors.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import shlex
from pathlib import Path
from typing import Any

from segviewer.core.classes import (
    ClassTable,
    default_color,
    hex_to_rgb,
    looks_like_background,
    rgb_to_hex,
)
from segviewer.core.types import SegviewerError
from segviewer.io.atomic import atomic_path
from segviewer.io.common import check_input_file, load_json

__all__ = [
    "load_class_table",
    "read_class_table",
    "save_class_table",
    "table_format",
    "class_table_beside",
    "CLASS_TABLE_FORMATS",
]

log = logging.getLogger(__name__)

#: Human-readable list for "unsupported" messages and file dialogs.
CLASS_TABLE_FORMATS = (
    "segviewer JSON (.json), CSV (.csv), ITK-SNAP label descriptions (.txt, .label), "
    "FreeSurferColorLUT (.txt, .lut), 3D Slicer colour tables (.ctbl, .txt)"
)

_MAX_BYTES = 16 * 1024 * 1024  # a colour table is a few kB; refuse to parse a wrong file
_INT = re.compile(r"^[+-]?\d+$")
_LUT_LINE = re.compile(r"^[+-]?\d+\s+\S.*?(\s+\d+){3,4}$")
_NUM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

Entry = tuple[int, str, tuple[int, int, int]]


def load_class_table(path: str | os.PathLike[str], *, offset: int = 0) -> ClassTable:
    """Read a class table; warnings (filled gaps, missing background) go to the log.

    Parameters
    ----------
    path
        A file in one of :data:`CLASS_TABLE_FORMATS`.
    offset
        Added to every index (``--classes-offset 1`` for tables whose row 0 is the first
        structure, not the background; see :meth:`ClassTable.shifted`).

    Returns
    -------
    ClassTable
        Dense over 0..max index.

    Raises
    ------
    SegviewerError
        Missing or empty file, unknown format, bad lines, repeated indices or names.
    """
    table, warnings = read_class_table(path, offset=offset)
    for w in warnings:
        log.warning("%s", w)
    return table


def read_class_table(
    path: str | os.PathLike[str], *, offset: int = 0
) -> tuple[ClassTable, list[str]]:
    """Like :func:`load_class_table` but also returns the warnings for the user to see.

    Returns
    -------
    (ClassTable, list of str)
        The dense table and human-readable warnings (gaps filled with defaults, no class 0).
    """
    p = Path(path)
    check_input_file(p)
    if p.is_dir():
        raise SegviewerError(f"{p} is a folder; choose a class-table file ({CLASS_TABLE_FORMATS})")
    if p.stat().st_size > _MAX_BYTES:
        raise SegviewerError(
            f"{p}: {p.stat().st_size / 1024**2:.0f} MB is far too large for a class table; "
            "is it the right file?"
        )
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # FreeSurfer and old Slicer tables are ASCII; Latin-1 never fails and keeps names
        text = raw.decode("latin-1")
    if "\x00" in text:
        raise SegviewerError(
            f"{p}: this is a binary file, not a class table; choose one of {CLASS_TABLE_FORMATS}"
        )
    fmt = _detect(text, p)
    if fmt == "json":
        entries = _parse_json(text, p)
    elif fmt == "csv":
        entries = _parse_csv(text, p)
    elif fmt == "itksnap":
        entries = _parse_itksnap(text, p)
    else:
        entries = _parse_lut(text, p)
    if not entries:
        raise SegviewerError(f"{p}: no classes found in this {_FORMAT_NAMES[fmt]} file")
    table, warnings = ClassTable.from_entries(entries, source=str(p))
    if offset:
        if looks_like_background(table[0].name) and not any("no class 0" in w for w in warnings):
            warnings.append(
                f"{p}: the table already starts with a background row ({table[0].name!r}); "
                f"the offset {offset} moves it to class {offset}"
            )
        table = table.shifted(offset)
        warnings.append(f"{p}: class indices shifted by {offset} (--classes-offset {offset})")
    return table, warnings


def save_class_table(
    table: ClassTable, path: str | os.PathLike[str], *, force: bool = False
) -> Path:
    """Write ``table`` atomically; the format follows the extension.

    ``.json`` segviewer JSON, ``.csv`` CSV (``index,name,color``), ``.ctbl`` 3D Slicer,
    ``.lut`` FreeSurferColorLUT, ``.txt`` / ``.label`` ITK-SNAP label description. The
    whitespace-separated formats (Slicer, FreeSurfer) cannot hold spaces in names: they are
    written as ``_``.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    SegviewerError
        Unknown extension, existing file without ``force``, unwritable folder.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".json":
        body = _format_json(table)
    elif ext == ".csv":
        body = _format_csv(table)
    elif ext in (".txt", ".label"):
        body = _format_itksnap(table)
    elif ext == ".ctbl":
        body = _format_lut(table, "3D Slicer colour table")
    elif ext == ".lut":
        body = _format_lut(table, "FreeSurferColorLUT")
    else:
        raise SegviewerError(
            f"{p}: unknown class-table extension {ext or '(none)'!r}; use .json, .csv, .ctbl, "
            ".lut, or .txt (ITK-SNAP)"
        )
    with atomic_path(p, force=force) as tmp:
        tmp.write_text(body, encoding="utf-8", newline="\n")
    return p


# --------------------------------------------------------------------------------------------
# detection

_FORMAT_NAMES = {
    "json": "JSON",
    "csv": "CSV",
    "itksnap": "ITK-SNAP label description",
    "lut": "colour table (index name R G B A)",
}


def _content_lines(text: str) -> list[tuple[int, str]]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((n, s))
    return out


def _detect(text: str, path: Path) -> str:
    stripped = text.lstrip()
    if not stripped:
        raise SegviewerError(f"{path}: the file is empty; it holds no classes")
    if stripped[0] in "{[":
        return "json"
    lines = _content_lines(text)
    if not lines:
        raise SegviewerError(f"{path}: the file has only comments; it holds no classes")
    first = lines[0][1]
    if '"' in first:
        try:
            tokens = shlex.split(first)
        except ValueError:
            tokens = []
        if len(tokens) == 8 and all(_NUM.match(t) for t in tokens[:7]):
            return "itksnap"
    sample = [s for _, s in lines[:5]]
    if _LUT_LINE.match(first):
        return "lut"
    if any(ch in s for s in sample for ch in ",;\t"):
        return "csv"
    raise SegviewerError(
        f"{path}: cannot tell which class-table format this is (first line {first[:60]!r}); "
        f"use one of {CLASS_TABLE_FORMATS}"
    )


# --------------------------------------------------------------------------------------------
# parsers


def _color(value: Any, where: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        try:
            return hex_to_rgb(value)
        except SegviewerError:
            raise SegviewerError(
                f"{where}: colour {value!r} is not '#rrggbb', '#rgb' or [r, g, b]"
            ) from None
    if isinstance(value, (list, tuple)) and len(value) in (3, 4):
        out = []
        for v in value[:3]:
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or int(v) != v
            ):
                raise SegviewerError(f"{where}: colour {value!r} needs integers 0..255")
            if not 0 <= v <= 255:
                raise SegviewerError(f"{where}: colour value {v} in {value!r} is outside 0..255")
            out.append(int(v))
        return (out[0], out[1], out[2])
    raise SegviewerError(f"{where}: colour {value!r} is not '#rrggbb', '#rgb' or [r, g, b]")


def _int(token: str, where: str, what: str) -> int:
    token = token.strip()
    if not _INT.match(token):
        raise SegviewerError(f"{where}: {what} {token[:40]!r} is not a whole number")
    if len(token.lstrip("+-")) > _MAX_DIGITS:
        # int() of thousands of digits is slow or refused (sys.int_info's digit limit)
        raise SegviewerError(
            f"{where}: {what} {token[:20]}... has {len(token)} digits, far more than any class "
            "index or colour value; the file is corrupt"
        )
    return int(token)


#: Longest number a class table may hold (class indices stop at 65533).
_MAX_DIGITS = 18
#: Deepest JSON nesting a class table needs is 3 ({"classes": [{"color": [...]}]}).
_MAX_JSON_DEPTH = 32


def _parse_json(text: str, path: Path) -> list[Entry]:
    doc = load_json(text, str(path), max_depth=_MAX_JSON_DEPTH, finite=True)
    items = doc.get("classes") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise SegviewerError(
            f'{path}: expected {{"classes": [{{"index": 0, "name": "background", '
            f'"color": "#000000"}}, ...]}}'
        )
    entries: list[Entry] = []
    for k, item in enumerate(items):
        where = f"{path}: classes[{k}]"
        if not isinstance(item, dict):
            raise SegviewerError(f'{where} is not an object with "index" and "name"')
        index = item.get("index", item.get("value", item.get("label")))
        if isinstance(index, bool) or not isinstance(index, int):
            raise SegviewerError(f'{where}: "index" must be a whole number, got {index!r}')
        name = item.get("name")
        if not isinstance(name, str):
            raise SegviewerError(f'{where}: "name" must be text, got {name!r}')
        color = item.get("color", item.get("colour"))
        rgb = default_color(max(index, 0)) if color is None else _color(color, where)
        entries.append((index, name, rgb))
    return entries


def _parse_csv(text: str, path: Path) -> list[Entry]:
    sample = "\n".join(s for _, s in _content_lines(text)[:5])
    delim = max(",;\t", key=sample.count)
    rows = [
        (n, row)
        for n, row in (
            (n, next(csv.reader(io.StringIO(s), delimiter=delim))) for n, s in _content_lines(text)
        )
        if any(cell.strip() for cell in row)
    ]
    entries: list[Entry] = []
    for k, (n, row) in enumerate(rows):
        cells = [c.strip() for c in row]
        where = f"{path}, line {n}"
        if k == 0 and not _INT.match(cells[0]):
            continue  # header row
        if len(cells) == 3:
            rgb = _color(cells[2], where)
        elif len(cells) in (5, 6):
            rgb = _color([_int(c, where, "colour value") for c in cells[2:5]], where)
        elif len(cells) == 2:
            rgb = default_color(max(_int(cells[0], where, "index"), 0))
        else:
            raise SegviewerError(
                f"{where}: expected index,name,color or index,name,r,g,b; got {len(cells)} fields"
            )
        entries.append((_int(cells[0], where, "index"), cells[1], rgb))
    return entries


def _parse_itksnap(text: str, path: Path) -> list[Entry]:
    entries: list[Entry] = []
    for n, line in _content_lines(text):
        where = f"{path}, line {n}"
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise SegviewerError(f"{where}: {exc} (unbalanced quotes)") from exc
        if len(tokens) != 8:
            raise SegviewerError(
                f'{where}: expected IDX R G B A VIS MSH "LABEL" (8 fields), got {len(tokens)}'
            )
        index = _int(tokens[0], where, "index")
        rgb = _color([_int(t, where, "colour value") for t in tokens[1:4]], where)
        entries.append((index, tokens[7], rgb))
    return entries


def _parse_lut(text: str, path: Path) -> list[Entry]:
    entries: list[Entry] = []
    for n, line in _content_lines(text):
        where = f"{path}, line {n}"
        tokens = line.split()
        if len(tokens) < 5:
            raise SegviewerError(f"{where}: expected 'index name R G B A', got {line[:60]!r}")
        # the alpha column is optional; names have no spaces in these formats but be lenient
        n_color = 4 if len(tokens) >= 6 and all(_INT.match(t) for t in tokens[-4:]) else 3
        index = _int(tokens[0], where, "index")
        name = " ".join(tokens[1:-n_color])
        rgb = _color([_int(t, where, "colour value") for t in tokens[-n_color:][:3]], where)
        entries.append((index, name, rgb))
    return entries


# --------------------------------------------------------------------------------------------
# writers


_hex = rgb_to_hex


def _format_json(table: ClassTable) -> str:
    doc = {"classes": [{"index": c.index, "name": c.name, "color": _hex(c.color)} for c in table]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _format_csv(table: ClassTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "name", "color"])
    for c in table:
        w.writerow([c.index, c.name, _hex(c.color)])
    return buf.getvalue()


def _format_itksnap(table: ClassTable) -> str:
    lines = [
        "# ITK-SNAP Label Description File (written by segviewer)",
        "# Columns: IDX -R- -G- -B- -A-- VIS MSH LABEL",
    ]
    for c in table:
        alpha, vis = (0, 0) if c.index == 0 else (1, 1)
        name = c.name.replace('"', "'")
        r, g, b = c.color
        lines.append(f'{c.index:5d} {r:5d} {g:4d} {b:4d} {alpha:8d} {vis:2d} {vis:2d}    "{name}"')
    return "\n".join(lines) + "\n"


def _format_lut(table: ClassTable, title: str) -> str:
    lines = [f"# {title} (written by segviewer)", f"# {len(table)} values", "# index name R G B A"]
    for c in table:
        name = re.sub(r"\s+", "_", c.name)
        r, g, b = c.color
        lines.append(f"{c.index} {name} {r} {g} {b} {0 if c.index == 0 else 255}")
    return "\n".join(lines) + "\n"


def table_format(path: str | os.PathLike[str]) -> str:
    """Which format :func:`read_class_table` reads ``path`` as (decided from the content):
    ``"json"``, ``"csv"``, ``"itksnap"`` or ``"lut"`` (FreeSurfer / 3D Slicer)."""
    p = Path(path)
    return _detect(p.read_text(encoding="utf-8-sig", errors="replace"), p)


# --------------------------------------------------------------------------------------------
# names stored with a prediction by the tool that wrote it


def class_table_beside(
    prediction: str | os.PathLike[str],
) -> tuple[ClassTable, str, list[str]] | None:
    """The class names a prediction file carries, or that its writing tool stores beside it.

    Conventions, first match wins:

    * **DICOM SEG**: segment labels and recommended display colours.
    * **3D Slicer** ``.seg.nrrd``: ``SegmentN_Name`` / ``SegmentN_LabelValue`` /
      ``SegmentN_Color`` header fields.
    * **BIDS** discrete segmentation: ``*_dseg.nii[.gz]`` with ``*_dseg.tsv`` (columns
      ``index``, ``name``, optional ``color``).
    * **nnU-Net**: ``dataset.json`` in the same folder (nnU-Net copies it into its
      prediction folder): ``"labels"`` as ``{"name": index}`` (v2) or ``{"index": "name"}``
      (v1); region labels (lists) are skipped.
    * **MONAI bundle** ``metadata.json`` beside it:
      ``network_data_format.outputs.pred.channel_def`` (``{"0": "background", ...}``).

    NIfTI has no registered header extension for label names (only CIFTI carries label tables),
    so none is read from a NIfTI header.

    Returns
    -------
    (ClassTable, source, warnings) or None
        ``source`` names the file and convention used.
    """
    from segviewer.io.predictions import split_member

    p, _member = split_member(prediction)
    if not p.is_file():
        return None
    name = p.name.lower()
    entries: list[Entry] | None = None
    source = ""
    if name.endswith(".dcm") or "." not in name:
        from segviewer.io.dicomseg import is_dicom_seg, seg_class_table

        if is_dicom_seg(p):
            return seg_class_table(p), f"{p.name} (DICOM SEG segments)", []
    if name.endswith(".seg.nrrd"):
        entries, source = _slicer_segments(p), f"{p.name} (3D Slicer segment fields)"
    if entries is None and re.search(r"_dseg\.nii(\.gz)?$", name):
        tsv = p.with_name(re.sub(r"\.nii(\.gz)?$", ".tsv", p.name, flags=re.IGNORECASE))
        if tsv.is_file():
            entries, source = _bids_tsv(tsv), f"{tsv.name} (BIDS dseg.tsv)"
    if entries is None and (p.parent / "dataset.json").is_file():
        entries = _nnunet_labels(p.parent / "dataset.json")
        source = "dataset.json (nnU-Net labels)"
    if entries is None and (p.parent / "metadata.json").is_file():
        entries = _monai_channels(p.parent / "metadata.json")
        source = "metadata.json (MONAI bundle channel_def)"
    if not entries:
        return None
    table, warnings = ClassTable.from_entries(entries, source=source)
    return table, source, warnings


def _small_text(p: Path) -> str:
    if p.stat().st_size > _MAX_BYTES:
        raise SegviewerError(f"{p}: too large for a label description")
    return p.read_text(encoding="utf-8-sig", errors="replace")


def _slicer_segments(p: Path) -> list[Entry] | None:
    import nrrd

    try:
        header = nrrd.read_header(str(p))
    except (nrrd.NRRDError, OSError, ValueError) as exc:
        raise SegviewerError(f"{p}: cannot read the NRRD header ({exc})") from None
    out: list[Entry] = []
    k = 0
    while f"Segment{k}_Name" in header:
        label = int(str(header.get(f"Segment{k}_LabelValue", k + 1)).strip() or k + 1)
        rgb = (128, 128, 128)
        try:
            vals = [float(v) for v in str(header.get(f"Segment{k}_Color", "")).split()]
            if len(vals) == 3:
                rgb = (round(vals[0] * 255), round(vals[1] * 255), round(vals[2] * 255))
        except ValueError:
            pass
        out.append((label, str(header[f"Segment{k}_Name"]), rgb))
        k += 1
    if out and all(e[0] != 0 for e in out):
        out.insert(0, (0, "background", (0, 0, 0)))
    return out or None


def _bids_tsv(tsv: Path) -> list[Entry] | None:
    rows = list(csv.DictReader(io.StringIO(_small_text(tsv)), delimiter="\t"))
    out: list[Entry] = []
    for i, row in enumerate(rows, start=2):
        try:
            index = int(str(row.get("index", "")).strip())
        except ValueError:
            raise SegviewerError(f"{tsv}, line {i}: 'index' is not a whole number") from None
        label = str(row.get("name") or row.get("abbreviation") or f"class {index}").strip()
        color = row.get("color")
        from segviewer.core.classes import default_color

        rgb = _color(color, f"{tsv}, line {i}") if color else default_color(index)
        out.append((index, label, rgb))
    return out or None


def _nnunet_labels(path: Path) -> list[Entry] | None:
    from segviewer.core.classes import default_color

    try:
        doc = json.loads(_small_text(path))
    except json.JSONDecodeError:
        return None
    labels = doc.get("labels") if isinstance(doc, dict) else None
    if not isinstance(labels, dict):
        return None
    out: list[Entry] = []
    for key, value in labels.items():
        if isinstance(value, int) and not isinstance(value, bool):  # v2: name -> index
            out.append((value, str(key), default_color(value)))
        elif isinstance(value, str) and _INT.match(str(key)):  # v1: "index" -> name
            out.append((int(key), value, default_color(int(key))))
        # region-based labels (lists of indices) name no single label value
    return out or None


def _monai_channels(path: Path) -> list[Entry] | None:
    from segviewer.core.classes import default_color

    try:
        doc = json.loads(_small_text(path))
        defs = doc["network_data_format"]["outputs"]["pred"]["channel_def"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(defs, dict):
        return None
    out: list[Entry] = []
    for key, value in defs.items():
        if _INT.match(str(key)):
            out.append((int(key), str(value), default_color(int(key))))
    return out or None
