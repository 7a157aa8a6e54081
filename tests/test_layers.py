"""The layering rules: core never pulls in Qt or TensorFlow; nothing imports TensorFlow early."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("PySide6", "pyqtgraph", "superqt", "tensorflow", "keras")


def _loaded_after(stmt: str) -> set[str]:
    code = f"import sys\n{stmt}\nprint(','.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.strip().split(","))


def test_core_imports_neither_qt_nor_tensorflow() -> None:
    mods = _loaded_after(
        "import segviewer.core.types, segviewer.core.layout, segviewer.core.masks, "
        "segviewer.core.overlay, segviewer.core.classes, segviewer.core.orientation, segviewer.core.stats, "
        "segviewer.core.resample, segviewer.core.metrics"
    )
    assert not mods & set(HEAVY), mods & set(HEAVY)
    assert not mods & {"nibabel", "pydicom", "PIL", "nrrd", "tifffile"}, "core must be pure numpy"


@pytest.mark.parametrize(
    "module",
    [
        "segviewer.io.images",
        "segviewer.io.predictions",
        "segviewer.io.export",
        "segviewer.cli",
        "segviewer.cli.info",
        "segviewer.cli.export",
        "segviewer.cli.compare",
        "segviewer.cli.window",
    ],
)
def test_io_and_cli_do_not_import_qt_or_tensorflow(module: str) -> None:
    mods = _loaded_after(f"import {module}")
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_ui_does_not_import_tensorflow() -> None:
    mods = _loaded_after("import segviewer.ui.main_window")
    assert "tensorflow" not in mods and "keras" not in mods
