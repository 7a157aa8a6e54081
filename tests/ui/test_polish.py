"""Review polish: atomic screenshots, the DICOM scanner window, image warnings and the
Image information dialog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ui_helpers import wait_idle

from segviewer.core.types import Volume


def test_screenshot_is_written_atomically_and_never_half(
    demo_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    from segviewer.ui.canvas import qimage_to_array

    win = demo_window
    win.show_dialogs = False
    errors: list[str] = []
    win.error_shown.connect(errors.append)
    path = tmp_path / "shot.png"
    assert win.save_screenshot(path) == str(path)
    with Image.open(path) as im:
        saved = np.asarray(im.convert("RGBA"))
    assert np.array_equal(saved, qimage_to_array(win.grab_canvas()))
    # An existing file is not replaced silently (no dialog asked) ...
    before = path.read_bytes()
    win.canvas.step_slice(5)
    assert win.save_screenshot(path) is None
    assert "exists" in errors[-1]
    assert path.read_bytes() == before
    # ... unless forced (what the file dialog's overwrite prompt means).
    assert win.save_screenshot(path, force=True) == str(path)
    assert path.read_bytes() != before

    # A write that fails half-way (disk full) leaves no partial file behind.
    real_save = Image.Image.save

    def failing_save(self: Any, fp: Any, *args: Any, **kwargs: Any) -> None:
        Path(fp).write_bytes(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    target = tmp_path / "full_disk.png"
    assert win.save_screenshot(target) is None
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if "full_disk" in p.name) == []
    assert "full_disk.png" in errors[-1]


def test_dicom_scanner_window_is_a_preset_and_the_default(
    window: Any, qtbot: Any, mr_small: Path
) -> None:
    window.open_image(mr_small)
    wait_idle(qtbot, window)
    items = [window.window_combo.itemText(i) for i in range(window.window_combo.count())]
    assert "Scanner (DICOM)" in items
    assert window.window_combo.currentText() == "Scanner (DICOM)"
    # MR_small.dcm stores WindowCenter 600, WindowWidth 1600.
    assert (window.state.level, window.state.width) == (600.0, 1600.0)
    # Another preset, then back to the scanner's through the combobox.
    auto = items.index("Auto (1–99 %)")
    window.window_combo.setCurrentIndex(auto)
    window.window_combo.activated.emit(auto)
    assert window.state.level != 600.0
    scanner = items.index("Scanner (DICOM)")
    window.window_combo.setCurrentIndex(scanner)
    window.window_combo.activated.emit(scanner)
    assert (window.state.level, window.state.width) == (600.0, 1600.0)
    info = window.image_info_text()
    assert "Format: dicom" in info
    assert "1 × 64 × 64" in info
    assert "level 600, width 1600" in info


def test_nifti_has_no_scanner_preset(demo_window: Any) -> None:
    combo = demo_window.window_combo
    items = [combo.itemText(i) for i in range(combo.count())]
    assert "Scanner (DICOM)" not in items
    assert combo.currentText() == "Auto (1–99 %)"


def test_image_warnings_reach_the_status_bar_and_the_info_dialog(
    window: Any, nibabel_anatomical: Path
) -> None:
    import nibabel

    img: Any = nibabel.load(nibabel_anatomical)  # a Nifti1Image (the stubs say FileBasedImage)
    warning = "slice spacing is uneven (2.0 to 2.6 mm); distances along axis 2 are approximate"
    vol = Volume(
        np.asarray(img.dataobj, np.float32),
        img.affine,
        source=str(nibabel_anatomical),
        format="nifti",
        metadata={"warnings": (warning,), "notes": (), "n_frames": 1, "frame": 0},
    )
    window.set_image(vol)
    assert warning in window.statusBar().currentMessage()
    info = window.image_info_text()
    assert "33 × 41 × 25" in info
    assert "Orientation (axis codes): " in info
    assert f"• {warning}" in info
    box = window.show_image_info()
    assert warning in box.text()
    box.close()
