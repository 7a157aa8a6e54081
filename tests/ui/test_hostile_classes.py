"""A class table listing index 65533, and a label map with one stray voxel of 65533, in the
window (issue 13, items 3 and 4): no exception from a Qt slot (pytest-qt fails the test on
one), and the class panel lists the classes that matter instead of 65,534 rows built on the
GUI thread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PySide6.QtCore import Qt
from ui_helpers import wait_idle

from segviewer.ui.class_panel import MAX_ROWS


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "image.nii.gz"
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image((rng.random((12, 10, 6)) * 100).astype(np.float32), np.eye(4)), path)
    return path


def test_table_with_index_65533_and_a_three_class_prediction(
    window: Any, qtbot: Any, tmp_path: Path
) -> None:
    table = tmp_path / "classes.json"
    table.write_text(
        json.dumps({"classes": [{"index": 65533, "name": "stray", "color": "#ff0000"}]})
    )
    logits = tmp_path / "logits.npy"
    np.save(logits, np.random.default_rng(1).standard_normal((12, 10, 6, 3)).astype(np.float32))
    window.open_image(_image(tmp_path))
    wait_idle(qtbot, window)
    window.open_class_table(table)
    wait_idle(qtbot, window)
    window.open_prediction(logits)
    wait_idle(qtbot, window)
    assert window.state.table is not None and len(window.state.table) == 65534
    panel = window.class_panel
    listed = [panel.table.item(r, 2).text() for r in range(panel.table.rowCount())]
    assert listed[0].startswith("0  ")
    assert any(t.startswith("65533  stray") for t in listed)
    assert len(listed) <= 4  # background, the classes present, the named one
    assert "listing" in panel.summary.text() and "65,534 classes" in panel.summary.text()
    window.grab_canvas()  # draws with a 256-entry lookup table: no exception


def test_stray_label_lists_present_classes(window: Any, qtbot: Any, tmp_path: Path) -> None:
    labels = np.zeros((12, 10, 6), np.uint16)
    labels[3:6] = 2
    labels[0, 0, 0] = 65533
    np.save(tmp_path / "labels.npy", labels)
    window.open_image(_image(tmp_path))
    wait_idle(qtbot, window)
    with qtbot.waitSignal(window.labels_ready, timeout=60_000):
        window.open_prediction(tmp_path / "labels.npy")
    wait_idle(qtbot, window)
    panel = window.class_panel
    rows = [panel.table.item(r, 2).text().split()[0] for r in range(panel.table.rowCount())]
    assert rows == ["0", "2", "65533"]
    assert panel.row_text(65533)[1] == "1"
    assert panel.table.rowCount() <= MAX_ROWS
    # visibility edits reach the right class through the row -> class mapping
    panel.table.item(2, 0).setCheckState(Qt.CheckState.Unchecked)
    assert not window.state.visible[65533]
    assert window.state.visible[2]
