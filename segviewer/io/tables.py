"""Read a metrics table (``evaluate``'s ``cases.csv`` / ``slices.csv``) back as typed rows.

Each row becomes a ``dict`` column -> value: whole numbers as ``int``, other numbers as
``float`` (``nan``, ``inf`` too), ``true`` / ``false`` as ``bool``, empty cells as ``None``,
anything else as text. The window's case and slice tables sort and filter these rows with
``core.review``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from segviewer.core.types import SegviewerError

__all__ = ["read_rows", "typed"]


def typed(text: str | None) -> Any:
    """One CSV cell as a Python value (see the module docstring)."""
    if text is None:
        return None
    t = text.strip()
    if not t:
        return None
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return text


def read_rows(
    path: str | os.PathLike[str], *, required: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """All rows of a CSV file with a header line, typed.

    Parameters
    ----------
    path
        The CSV file.
    required
        Columns that must be present.

    Raises
    ------
    SegviewerError
        The file cannot be read, is not UTF-8 text, or lacks a required column (one line,
        naming the file).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SegviewerError(f"{p} does not exist; run 'segviewer evaluate' first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SegviewerError(f"cannot read {p}: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [c for c in required if c not in columns]
    if missing:
        raise SegviewerError(
            f"{p} has no {', '.join(missing)} column; is it an evaluation table written by "
            "'segviewer evaluate'?"
        )
    return [{k: typed(v) for k, v in row.items() if k is not None} for row in reader]
