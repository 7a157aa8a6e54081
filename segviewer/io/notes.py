"""Review notes: a verdict and a comment per case and per slice, in a CSV sidecar.

A reviewer going through a test set marks cases and slices ``accept`` / ``reject`` /
``unsure`` and writes a comment. The notes live in one CSV file next to the test set
(:func:`notes_path_for`): ``cases.csv`` -> ``cases.notes.csv``, a test-set folder ->
``<folder>/segviewer-notes.csv``. One row per note::

    case,axis,slice,verdict,comment,updated
    sub-01,,,reject,"left hippocampus missed",2026-12-01T20:41:07Z
    sub-01,2,87,unsure,"partial volume?",2026-12-01T20:42:30Z

``axis`` and ``slice`` are empty for a note on the whole case; ``axis`` is the image axis
(0, 1, 2) the slice index runs along, so a note stays put whatever view shows it. Slices
are 0-based like everywhere in segviewer. ``updated`` is UTC. The file is rewritten whole,
atomically (``io.atomic``), after every change, so a crash never leaves half a file; a note
with neither verdict nor comment is dropped.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from segviewer.core.types import SegviewerError
from segviewer.io.atomic import atomic_path

__all__ = ["VERDICTS", "NOTE_COLUMNS", "Note", "ReviewNotes", "notes_path_for"]

#: Allowed verdicts ("" = none, a comment only).
VERDICTS: tuple[str, ...] = ("accept", "reject", "unsure")
#: Columns of the sidecar, in order.
NOTE_COLUMNS: tuple[str, ...] = ("case", "axis", "slice", "verdict", "comment", "updated")

Key = tuple[str, int | None, int | None]


def notes_path_for(test_set: str | os.PathLike[str]) -> Path:
    """Where the notes of a test set live: ``<stem>.notes.csv`` beside a case-list file,
    ``segviewer-notes.csv`` inside a test-set folder."""
    p = Path(test_set)
    if p.is_dir():
        return p / "segviewer-notes.csv"
    name = p.name
    stem = name[: -len(p.suffix)] if p.suffix else name
    return p.with_name(f"{stem}.notes.csv")


@dataclass(frozen=True)
class Note:
    """One review note.

    Attributes
    ----------
    case
        Case id (the test set's ``id`` column, or what the case list derived).
    axis, slice
        Image axis and 0-based slice index; both ``None`` for a note on the whole case.
    verdict
        One of :data:`VERDICTS`, or ``""``.
    comment
        Free text (may span lines).
    updated
        ISO 8601 UTC time of the last change.
    """

    case: str
    axis: int | None = None
    slice: int | None = None
    verdict: str = ""
    comment: str = ""
    updated: str = ""

    def __post_init__(self) -> None:
        if not self.case:
            raise SegviewerError("a review note needs a case id")
        if self.verdict not in VERDICTS + ("",):
            raise SegviewerError(
                f"unknown verdict {self.verdict!r}; use one of {', '.join(VERDICTS)} or none"
            )
        if (self.axis is None) != (self.slice is None):
            raise SegviewerError("a slice note needs both an axis and a slice index")
        if self.axis is not None and self.axis not in (0, 1, 2):
            raise SegviewerError(f"the axis of a slice note must be 0, 1 or 2, got {self.axis}")
        if self.slice is not None and self.slice < 0:
            raise SegviewerError(f"slice indices are 0-based, got {self.slice}")

    def as_dict(self) -> dict[str, Any]:
        """The note as a plain record (an export manifest's ``review_notes`` entry)."""
        return {
            "case": self.case,
            "axis": self.axis,
            "slice": self.slice,
            "verdict": self.verdict,
            "comment": self.comment,
            "updated": self.updated,
        }

    @property
    def key(self) -> Key:
        return (self.case, self.axis, self.slice)

    @property
    def is_empty(self) -> bool:
        return not self.verdict and not self.comment.strip()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_none(text: str, what: str, line: int, path: Path) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SegviewerError(
            f"{path}, line {line}: {what} must be a whole number, got {text!r}; fix or "
            "remove that line"
        ) from None


class ReviewNotes:
    """The notes of one test set, in memory, with their sidecar file.

    Parameters
    ----------
    path
        The sidecar CSV (see :func:`notes_path_for`); ``None`` keeps the notes in memory.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._notes: dict[Key, Note] = {}

    # ------------------------------------------------------------------ reading
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReviewNotes:
        """Read a sidecar; a missing file gives no notes (it is created on the first save).

        Raises
        ------
        SegviewerError
            The file is not a notes CSV (missing columns) or a row is malformed; the message
            names the file and line.
        """
        notes = cls(path)
        p = Path(path)
        if not p.exists():
            return notes
        try:
            text = p.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise SegviewerError(f"cannot read the review notes {p}: {exc}") from exc
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in ("case", "verdict", "comment") if c not in (reader.fieldnames or [])]
        if missing:
            raise SegviewerError(
                f"{p} is not a segviewer notes file (no {', '.join(missing)} column); move it "
                "away or choose another test set"
            )
        for row in reader:
            line = reader.line_num
            try:
                note = Note(
                    case=(row.get("case") or "").strip(),
                    axis=_int_or_none(row.get("axis") or "", "axis", line, p),
                    slice=_int_or_none(row.get("slice") or "", "slice", line, p),
                    verdict=(row.get("verdict") or "").strip().lower(),
                    comment=row.get("comment") or "",
                    updated=(row.get("updated") or "").strip(),
                )
            except SegviewerError as exc:
                msg = str(exc)
                if not msg.startswith(str(p)):
                    msg = f"{p}, line {line}: {msg}"
                raise SegviewerError(msg) from None
            notes._notes[note.key] = note
        return notes

    # ------------------------------------------------------------------ writing
    def save(self) -> None:
        """Write every note to :attr:`path` atomically (no-op without a path)."""
        if self.path is None:
            return
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(NOTE_COLUMNS)
        for n in self:
            w.writerow(
                [
                    n.case,
                    "" if n.axis is None else n.axis,
                    "" if n.slice is None else n.slice,
                    n.verdict,
                    n.comment,
                    n.updated,
                ]
            )
        with atomic_path(self.path, force=True) as tmp:
            tmp.write_text(buf.getvalue(), encoding="utf-8", newline="")

    def set(
        self,
        case: str,
        *,
        axis: int | None = None,
        slice: int | None = None,
        verdict: str | None = None,
        comment: str | None = None,
        save: bool = True,
    ) -> Note | None:
        """Create or change a note (``None`` keeps that field); save the sidecar.

        A note left with neither verdict nor comment is removed. Returns the note (or None
        when removed).
        """
        old = self._notes.get((case, axis, slice))
        base = old or Note(case, axis, slice)
        note = replace(
            base,
            verdict=base.verdict if verdict is None else verdict.strip().lower(),
            comment=base.comment if comment is None else comment,
            updated=_now(),
        )
        if note.is_empty:
            self._notes.pop(note.key, None)
            result = None
        else:
            self._notes[note.key] = note
            result = note
        if save:
            self.save()
        return result

    # ------------------------------------------------------------------ queries
    def get(self, case: str, axis: int | None = None, slice: int | None = None) -> Note | None:
        return self._notes.get((case, axis, slice))

    def for_case(self, case: str) -> list[Note]:
        """The case note (if any) first, then its slice notes by axis and slice."""
        return [n for n in self if n.case == case]

    def slice_notes(self, case: str, axis: int) -> dict[int, Note]:
        """Slice index -> note, for one case and image axis."""
        return {
            n.slice: n for n in self if n.case == case and n.axis == axis and n.slice is not None
        }

    def case_summary(self, case: str) -> dict[str, str | int]:
        """What the case table shows: the case verdict, its comment and the number of slice
        notes (``{"verdict", "comment", "slice_notes"}``)."""
        whole = self.get(case)
        n_slices = sum(1 for n in self if n.case == case and n.slice is not None)
        return {
            "verdict": whole.verdict if whole else "",
            "comment": whole.comment if whole else "",
            "slice_notes": n_slices,
        }

    def __iter__(self) -> Iterator[Note]:
        def order(n: Note) -> tuple[str, int, int]:
            return (n.case, -1 if n.axis is None else n.axis, -1 if n.slice is None else n.slice)

        return iter(sorted(self._notes.values(), key=order))

    def __len__(self) -> int:
        return len(self._notes)
