"""``segviewer --install-desktop-entry``: the launcher files, checked with the tools the
desktops themselves use (desktop-file-validate, update-mime-database) and by running the
command the launcher would run."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from segviewer import __version__
from segviewer.cli import desktop, main
from segviewer.core.types import SegviewerError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def odd_python(tmp_path: Path) -> Path:
    """This Python, reached through a path with a space, non-ASCII, a quote and a ``$``."""
    folder = tmp_path / "my pythön's $HOME (x)"
    folder.mkdir()
    # A wrapper, not a symlink: a symlinked venv python outside the venv loses the venv.
    wrapper = folder / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return wrapper


def _exec_argv(desktop_text: str) -> list[str]:
    """Read the Exec key back as the Desktop Entry spec says: string escapes first, then
    arguments split at spaces, double quotes group, and inside them a backslash escapes
    one of ``"`$\\``; ``%%`` is a percent sign."""
    line = next(ln for ln in desktop_text.splitlines() if ln.startswith("Exec="))
    value = line.removeprefix("Exec=").replace("\\\\", "\\")
    args: list[str] = []
    cur: str | None = None
    quoted = False
    i = 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\" and i + 1 < len(value) and value[i + 1] in '"`$\\':
                cur = (cur or "") + value[i + 1]
                i += 1
            elif c == '"':
                quoted = False
            else:
                cur = (cur or "") + c
        elif c == '"':
            quoted, cur = True, cur or ""
        elif c == " ":
            if cur is not None:
                args.append(cur)
            cur = None
        else:
            cur = (cur or "") + c
        i += 1
    if cur is not None:
        args.append(cur)
    return [a.replace("%%", "%") for a in args]


def test_linux_entry_installs_validates_and_runs(tmp_path: Path, odd_python: Path) -> None:
    data_home = tmp_path / "data home ü"
    result = desktop.install("linux", {"XDG_DATA_HOME": str(data_home)}, str(odd_python))
    entry = data_home / "applications" / "segviewer.desktop"
    png = data_home / "icons" / "hicolor" / "256x256" / "apps" / "segviewer.png"
    svg = data_home / "icons" / "hicolor" / "scalable" / "apps" / "segviewer.svg"
    mime = data_home / "mime" / "packages" / "segviewer.xml"
    assert set(result.written) == {entry, png, svg, mime}
    with Image.open(png) as im:
        assert im.size == (256, 256)
    assert svg.read_text(encoding="utf-8").startswith("<svg")
    text = entry.read_text(encoding="utf-8")
    assert "Icon=segviewer" in text
    assert "MimeType=application/x-nifti;application/x-nrrd;application/dicom;" in text
    argv = _exec_argv(text)
    assert argv == [str(odd_python), "-m", "segviewer", "%f"]
    # What the desktop would run, with --version for the file: prints the version.
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [*argv[:-1], "--version"], capture_output=True, text=True, timeout=120, env=env
    )
    assert r.returncode == 0 and r.stdout.strip() == f"segviewer {__version__}"
    if shutil.which("desktop-file-validate"):
        v = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
        assert v.returncode == 0 and "error" not in v.stdout.lower(), v.stdout
    if shutil.which("update-mime-database"):
        globs = (data_home / "mime" / "globs2").read_text(encoding="utf-8")
        assert ":application/x-nifti:*.nii.gz" in globs
        assert ":application/x-nrrd:*.nrrd" in globs and ":application/dicom:*.dcm" in globs
    # installing again replaces the files; uninstalling removes them all
    desktop.install("linux", {"XDG_DATA_HOME": str(data_home)}, str(odd_python))
    removed = desktop.uninstall("linux", {"XDG_DATA_HOME": str(data_home)})
    assert set(removed.removed) == {entry, png, svg, mime}
    assert not any(p.exists() for p in (entry, png, svg, mime))


def test_relative_xdg_data_home_is_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    result = desktop.install("linux", {"XDG_DATA_HOME": "relative/dir"}, sys.executable)
    assert (tmp_path / ".local" / "share" / "applications" / "segviewer.desktop") in result.written


def test_command_line_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("writes the Linux launcher")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert main(["--install-desktop-entry"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'applications' / 'segviewer.desktop'}" in out
    assert main(["--install-desktop-entry", "extra"]) == 2
    assert capsys.readouterr().err.startswith("segviewer: error: --install-desktop-entry")
    assert main(["--uninstall-desktop-entry"]) == 0
    assert "removed" in capsys.readouterr().out
    assert not (tmp_path / "applications" / "segviewer.desktop").exists()


def test_macos_bundle(tmp_path: Path, odd_python: Path) -> None:
    result = desktop.install("darwin", {"HOME": str(tmp_path)}, str(odd_python))
    app = tmp_path / "Applications" / "segviewer.app" / "Contents"
    info = plistlib.loads((app / "Info.plist").read_bytes())
    assert (
        info["CFBundleExecutable"] == "segviewer" and info["CFBundleIconFile"] == "segviewer.icns"
    )
    assert info["CFBundleShortVersionString"] == __version__
    with Image.open(app / "Resources" / "segviewer.icns") as im:
        assert im.format == "ICNS"
    assert any("does not open it" in n for n in result.notes)
    # The launcher is a shell script: run it as Finder would (here with --version).
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [str(app / "MacOS" / "segviewer"), "--version"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0 and r.stdout.strip() == f"segviewer {__version__}"
    assert desktop.uninstall("darwin", {"HOME": str(tmp_path)}).removed
    assert not app.exists()


def test_windows_shortcut(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    script = desktop.shortcut_script(
        Path("C:/Users/O'Brien/Start Menu/segviewer.lnk"),
        "C:\\Program Files\\Python311\\pythonw.exe",
        Path("C:/x/segviewer.ico"),
    )
    assert "CreateShortcut('C:/Users/O''Brien/Start Menu/segviewer.lnk')" in script
    assert "$s.TargetPath = 'C:\\Program Files\\Python311\\pythonw.exe'" in script
    assert "$s.Arguments = '-m segviewer'" in script and script.endswith("$s.Save()")
    # Without PowerShell (this Linux machine) the install says so in one sentence; the
    # icon it prepared is a real multi-size .ico.
    monkeypatch.setattr(desktop.shutil, "which", lambda name: None)
    env = {"APPDATA": str(tmp_path / "roaming"), "LOCALAPPDATA": str(tmp_path / "local")}
    with pytest.raises(SegviewerError, match="PowerShell"):
        desktop.install("win32", env, sys.executable)
    with Image.open(tmp_path / "local" / "segviewer" / "segviewer.ico") as ico:
        assert ico.format == "ICO" and (256, 256) in ico.info["sizes"]


def test_unknown_platform_is_one_clear_error() -> None:
    with pytest.raises(SegviewerError, match="does not know how to make a launcher on plan9"):
        desktop.install("plan9", {}, sys.executable)


def test_the_window_uses_the_icon_and_the_desktop_file_name() -> None:
    code = (
        "from segviewer.ui.app import ensure_app\n"
        "app = ensure_app()\n"
        "sizes = app.windowIcon().availableSizes()\n"
        "print(app.desktopFileName(), [(s.width(), s.height()) for s in sizes])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "segviewer [(256, 256)]"
