"""Export file names on case-insensitive file systems (macOS, Windows).

Linux is case-sensitive, so the test simulates the other systems: every planned path is
compared NFC-normalised and case-folded, as APFS and NTFS compare names.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from segviewer.core.classes import ClassInfo, ClassTable
from segviewer.core.export_plan import plan_export


def _folded(paths: list[str]) -> set[str]:
    return {unicodedata.normalize("NFC", p).casefold() for p in paths}


def _plan(table: object, n_classes: int) -> list[str]:
    plan = plan_export(
        table,
        classes=range(1, n_classes),
        what={"binary", "labels"},
        formats={"nifti", "png", "npy"},
        n_slices=2,
    )
    return plan.paths()


def test_liver_and_liver_do_not_share_a_file() -> None:
    table = ClassTable(
        (
            ClassInfo(0, "background", (0, 0, 0)),
            ClassInfo(1, "Liver", (200, 0, 0)),
            ClassInfo(2, "liver", (0, 200, 0)),
            ClassInfo(3, "LIVER", (0, 0, 200)),
        )
    )
    paths = _plan(table, 4)
    assert len(_folded(paths)) == len(paths)
    masks = sorted(p for p in paths if p.startswith("masks/") and p.endswith(".nii.gz"))
    assert len(masks) == 3


@dataclass
class _Named:
    name: str


class _BareTable:
    """A table without ``safe_filename``: the planner's own names must stay unique too."""

    def __init__(self, *names: str) -> None:
        self.items = [_Named(n) for n in names]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int) -> _Named:
        return self.items[k]


def test_case_and_normalisation_clashes_without_safe_filename() -> None:
    # "Liver_2" is what a naive "append the index" would give the second "liver" and it is
    # also a class of its own; "Café" in NFC and NFD is one name on macOS.
    nfd = unicodedata.normalize("NFD", "Café")
    table = _BareTable("bg", "Liver", "liver", "Liver_2", "LIVER", "Café", nfd, "Labels")
    paths = _plan(table, len(table))
    assert len(_folded(paths)) == len(paths)
    stems = {
        p.split("/")[1].removesuffix(".nii.gz")
        for p in paths
        if p.startswith("masks/") and p.endswith(".nii.gz")
    }
    assert len(stems) == 7 and "Liver" in stems
    # The suffix a clash gets may itself be taken: "X" clashes with "x", and "X_3" with "x_3".
    paths = _plan(_BareTable("bg", "x", "x_3", "X"), 4)
    assert len(_folded(paths)) == len(paths)
