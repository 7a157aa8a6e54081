"""Review notes sidecar: where it lives, round trip, atomic rewrite, bad files."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from segviewer.core.types import SegviewerError
from segviewer.io.notes import NOTE_COLUMNS, ReviewNotes, notes_path_for


def test_sidecar_location(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    assert notes_path_for(tmp_path / "cases.csv") == tmp_path / "cases.notes.csv"
    assert notes_path_for(tmp_path / "set") == tmp_path / "set" / "segviewer-notes.csv"


def test_round_trip_one_row_per_note(tmp_path: Path) -> None:
    path = tmp_path / "cases.notes.csv"
    notes = ReviewNotes(path)
    notes.set("sub-02", verdict="Reject", comment='left hippocampus missed, "badly"\nsee 87')
    notes.set("sub-02", axis=2, slice=87, verdict="unsure")
    notes.set("sub-01", comment="fine")
    assert path.exists()
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [tuple(r) for r in rows][0] == NOTE_COLUMNS
    assert [(r["case"], r["axis"], r["slice"], r["verdict"]) for r in rows] == [
        ("sub-01", "", "", ""),
        ("sub-02", "", "", "reject"),
        ("sub-02", "2", "87", "unsure"),
    ]
    assert all(r["updated"].endswith("Z") for r in rows)

    again = ReviewNotes.load(path)
    assert len(again) == 3
    n = again.get("sub-02")
    assert n is not None and n.verdict == "reject" and n.comment.endswith('"badly"\nsee 87')
    assert again.slice_notes("sub-02", 2)[87].verdict == "unsure"
    assert again.slice_notes("sub-02", 0) == {}
    assert again.case_summary("sub-02") == {
        "verdict": "reject",
        "comment": 'left hippocampus missed, "badly"\nsee 87',
        "slice_notes": 1,
    }
    assert again.case_summary("sub-03") == {"verdict": "", "comment": "", "slice_notes": 0}


def test_changing_keeps_other_field_and_clearing_removes(tmp_path: Path) -> None:
    notes = ReviewNotes(tmp_path / "n.csv")
    notes.set("c", verdict="accept")
    notes.set("c", comment="checked twice")
    n = notes.get("c")
    assert n is not None and (n.verdict, n.comment) == ("accept", "checked twice")
    assert notes.set("c", verdict="", comment="") is None
    assert len(ReviewNotes.load(tmp_path / "n.csv")) == 0


def test_rewrite_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "cases.notes.csv"
    notes = ReviewNotes(path)
    for i in range(5):
        notes.set(f"case{i}", verdict="accept")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.notes.csv"]
    # a read-only folder: the old file stays whole and the error says what to do
    notes.set("case0", verdict="reject")
    before = path.read_bytes()
    os.chmod(tmp_path, 0o500)
    try:
        if os.access(tmp_path, os.W_OK):  # running as root: permissions are not enforced
            pytest.skip("file permissions are not enforced for this user")
        with pytest.raises(SegviewerError, match="not writable"):
            notes.set("case1", verdict="reject")
    finally:
        os.chmod(tmp_path, 0o700)
    assert path.read_bytes() == before


def test_missing_file_is_no_notes_and_bad_files_are_one_line(tmp_path: Path) -> None:
    assert len(ReviewNotes.load(tmp_path / "none.csv")) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("image,prediction\na.nii,b.nii\n")
    with pytest.raises(SegviewerError, match=r"not a segviewer notes file \(no case, verdict"):
        ReviewNotes.load(bad)
    bad.write_text("case,axis,slice,verdict,comment\nx,2,abc,accept,\n")
    with pytest.raises(SegviewerError, match=r"bad.csv, line 2: slice must be a whole number"):
        ReviewNotes.load(bad)
    bad.write_text("case,axis,slice,verdict,comment\nx,,,maybe,\n")
    with pytest.raises(SegviewerError, match=r"line 2: unknown verdict 'maybe'"):
        ReviewNotes.load(bad)
    bad.write_text("case,axis,slice,verdict,comment\nx,1,,accept,\n")
    with pytest.raises(SegviewerError, match="needs both an axis and a slice"):
        ReviewNotes.load(bad)


def test_refuses_bad_notes_in_memory() -> None:
    notes = ReviewNotes()
    with pytest.raises(SegviewerError, match="unknown verdict 'good'"):
        notes.set("c", verdict="good")
    with pytest.raises(SegviewerError, match="0-based"):
        notes.set("c", axis=0, slice=-1, verdict="accept")
    assert len(notes) == 0
