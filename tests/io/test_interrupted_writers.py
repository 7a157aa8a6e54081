"""Every writer leaves no file under its final name until the file is complete.

The README promises "files are written under a temporary name and renamed". Each test below
interrupts one real writer in the middle of writing: the library call that fills the file
(nibabel, Pillow, numpy, text) writes part of its bytes to the path it was given and then
raises ``KeyboardInterrupt``, as Ctrl-C would. Afterwards the final name must not exist and
no temporary file may be left in the folder. A writer changed to write straight to its final
name fails these tests (the partial bytes would be found under the final name).

The same is checked for a whole export (the manifest is the last file written) and, with a
real signal, for the ``segviewer export`` process (exit status 130, empty folder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.classes import ClassTable
from segviewer.inference.card import ModelCard, save_card
from segviewer.io import export as export_mod
from segviewer.io.classtables import save_class_table
from segviewer.io.writers import write_nifti, write_npy, write_png


def _interrupting(written: list[Path]) -> Callable[..., None]:
    """A stand-in for a library writer: half a file at the given path, then Ctrl-C."""

    def write(*args: Any, **kwargs: Any) -> None:
        target = next(
            (a for a in args if isinstance(a, (str, Path, os.PathLike)) or hasattr(a, "write")),
            kwargs.get("filename") or kwargs.get("fp") or kwargs.get("file"),
        )
        if hasattr(target, "write"):  # an open file object (np.save(fh, ...))
            target.write(b"\x93NUMPY partial")
            written.append(Path(target.name))
        else:
            Path(target).write_bytes(b"partial bytes")
            written.append(Path(target))
        raise KeyboardInterrupt

    return write


def _check_nothing_left(folder: Path, final: Path, written: list[Path]) -> None:
    assert written, "the interrupting stand-in was never called"
    assert all(p != final for p in written), f"the writer wrote straight to {final}"
    assert not final.exists()
    assert list(folder.iterdir()) == [], list(folder.iterdir())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "out"
    f.mkdir()
    return f


def test_nifti_writer(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Path] = []
    monkeypatch.setattr(nib, "save", _interrupting(written))
    final = folder / "labels.nii.gz"
    with pytest.raises(KeyboardInterrupt):
        write_nifti(np.zeros((4, 5, 6), np.uint8), np.eye(4), final)
    _check_nothing_left(folder, final, written)


def test_png_writer(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    written: list[Path] = []
    monkeypatch.setattr(Image.Image, "save", lambda self, *a, **k: _interrupting(written)(*a))
    final = folder / "slice.png"
    with pytest.raises(KeyboardInterrupt):
        write_png(np.zeros((8, 9), np.uint8), final)
    _check_nothing_left(folder, final, written)


def test_npy_writer(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Path] = []
    monkeypatch.setattr(np, "save", _interrupting(written))
    final = folder / "labels.npy"
    with pytest.raises(KeyboardInterrupt):
        write_npy(np.zeros((4, 5), np.uint8), final)
    _check_nothing_left(folder, final, written)


def test_class_table_and_model_card_writers(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Path] = []
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: _interrupting(written)(self))
    final = folder / "classes.json"
    with pytest.raises(KeyboardInterrupt):
        save_class_table(ClassTable.default(3), final)
    _check_nothing_left(folder, final, written)
    written.clear()
    card_path = folder / "model.segviewer.json"
    with pytest.raises(KeyboardInterrupt):
        save_card(ModelCard(), card_path)
    _check_nothing_left(folder, card_path, written)


def test_export_interrupted_at_the_manifest_leaves_nothing(
    tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segviewer.cli import main

    written: list[Path] = []
    real_write_text = Path.write_text

    def write_text(self: Path, *a: Any, **k: Any) -> int:
        if self.name.startswith(".manifest"):
            _interrupting(written)(self)
        return real_write_text(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", write_text)
    out = tmp_path / "export"
    rc = main(["export", "--demo", "--out", str(out), "--format", "nifti,npy", "--quiet"])
    assert rc == 130
    assert written and written[0].name.startswith(".manifest")
    assert not (out / export_mod.MANIFEST_NAME).exists()
    # every mask written before the manifest was rolled back, no hidden file either
    assert [p for p in out.rglob("*") if p.is_file()] == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_real_sigint_stops_an_export_process_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "export"
    # Many annotated PNG slices at a large scale: several seconds of work to interrupt.
    cmd = [
        sys.executable,
        "-m",
        "segviewer",
        "export",
        "--demo",
        "--out",
        str(out),
        "--what",
        "binary,overlays",
        "--format",
        "png",
        "--scale",
        "8",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # Wait until the export is really writing (several finished files), then Ctrl-C.
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and sum(1 for p in out.rglob("*.png")) >= 3:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the export finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "cancel" in lines[0].lower(), err
    assert not (out / export_mod.MANIFEST_NAME).exists()
    assert [p for p in out.rglob("*") if p.is_file()] == []
