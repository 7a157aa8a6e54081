"""The files segviewer ships (io.bundled): present in this install, and a clear error when
an installation lost one."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import pytest
from PIL import Image

from segviewer.core.types import SegviewerError
from segviewer.io import bundled


def test_bundled_files_are_there() -> None:
    t1, prob, classes = bundled.demo_paths()
    assert nib.load(t1).shape == nib.load(prob).shape[:3]
    assert classes.read_text(encoding="utf-8").lstrip().startswith("{")
    assert bundled.demo_model_path().name == "model.keras"
    with Image.open(bundled.icon_path(".png")) as im:
        assert im.size == (256, 256) and im.mode == "RGBA"
    assert bundled.icon_path(".svg").read_text(encoding="utf-8").startswith("<svg")


def test_a_missing_file_says_reinstall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    monkeypatch.setattr(bundled.importlib.resources, "files", lambda package: tmp_path)
    with pytest.raises(
        SegviewerError, match=r"bundled demo file .*t1.nii.gz is missing; reinstall"
    ):
        bundled.demo_paths()
    with pytest.raises(SegviewerError, match="bundled icon .* reinstall segviewer"):
        bundled.icon_path(".png")
