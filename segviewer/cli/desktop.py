"""``segviewer --install-desktop-entry``: a launcher for people who do not use terminals.

Linux (freedesktop.org)
    ``$XDG_DATA_HOME/applications/segviewer.desktop`` (default ``~/.local/share``), the icon
    in ``icons/hicolor`` (256 px PNG and SVG) and a MIME package ``mime/packages/
    segviewer.xml`` that names ``.nii``, ``.nii.gz``, ``.nrrd``/``.nhdr`` and ``.dcm`` files, so
    a file manager offers segviewer for them (suffixes from :mod:`segviewer.io.sniff`). The MIME and desktop databases are refreshed
    when their tools are installed.
Windows
    A Start-menu shortcut (``segviewer.lnk``, created through PowerShell's WScript.Shell) with
    an ``.ico`` made from the icon. File associations are left to "Open with".
macOS
    ``~/Applications/segviewer.app``: a small bundle that starts ``python -m segviewer`` with
    the icon as ``.icns``. Double-clicking a file does not open it there yet (the window does
    not handle macOS "open document" events); use File > Open or drag the file on the window.

Every launcher runs this Python (``sys.executable -m segviewer``), so it works from a
virtual environment that is not activated. ``--uninstall-desktop-entry`` removes what the
install wrote.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segviewer.core.types import SegviewerError
from segviewer.io.atomic import atomic_path
from segviewer.io.bundled import icon_path
from segviewer.io.sniff import DICOM_SUFFIXES, NIFTI_SUFFIXES, NRRD_SUFFIXES

__all__ = [
    "MIME_TYPES",
    "DesktopResult",
    "desktop_exec",
    "desktop_file_text",
    "icon_path",
    "install",
    "mime_package_xml",
    "uninstall",
]

APP_ID = "segviewer"

#: (MIME type, description, glob patterns) of the files segviewer opens from a file manager,
#: from the suffix lists in :mod:`segviewer.io.sniff` (Analyze .hdr/.img pairs are left out:
#: other programs own those suffixes). application/dicom is already known to
#: shared-mime-info; naming it again only adds the globs.
MIME_TYPES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "application/x-nifti",
        "NIfTI image",
        tuple(f"*{s}" for s in NIFTI_SUFFIXES if s.startswith(".nii")),
    ),
    ("application/x-nrrd", "NRRD image", tuple(f"*{s}" for s in NRRD_SUFFIXES)),
    ("application/dicom", "DICOM image", tuple(f"*{s}" for s in DICOM_SUFFIXES)),
)


@dataclass
class DesktopResult:
    """What an install or uninstall did."""

    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------
# Linux


def _data_home(env: Mapping[str, str]) -> Path:
    value = env.get("XDG_DATA_HOME", "")
    # The spec: a relative XDG_DATA_HOME is invalid and must be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / ".local" / "share"


_EXEC_RESERVED = set(" \t\n\"'\\><~|&;$*?#()`")


def _exec_quote(arg: str) -> str:
    """One argument of a desktop entry's ``Exec`` key (freedesktop Desktop Entry spec)."""
    if arg and not (_EXEC_RESERVED & set(arg)):
        return arg.replace("%", "%%")
    inner = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return '"' + inner.replace("%", "%%") + '"'


def _string_escape(value: str) -> str:
    """The spec's escapes for a ``string`` value (applied after the Exec quoting)."""
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def desktop_exec(command: Sequence[str]) -> str:
    """The ``Exec`` value that runs ``command`` with the opened file appended (``%f``)."""
    return _string_escape(" ".join(_exec_quote(a) for a in command) + " %f")


def desktop_file_text(command: Sequence[str]) -> str:
    """The ``segviewer.desktop`` file for a launcher running ``command``."""
    mimes = ";".join(m for m, _, _ in MIME_TYPES) + ";"
    return "\n".join(
        [
            "[Desktop Entry]",
            "Type=Application",
            "Version=1.4",
            "Name=segviewer",
            "GenericName=Segmentation viewer",
            "Comment=Review what a segmentation model predicts on MRI",
            f"Exec={desktop_exec(command)}",
            f"Icon={APP_ID}",
            "Terminal=false",
            "Categories=Science;MedicalSoftware;",
            f"MimeType={mimes}",
            "Keywords=MRI;NIfTI;DICOM;NRRD;segmentation;",
            "",
        ]
    )


def mime_package_xml() -> str:
    """A shared-mime-info package naming the file types segviewer opens."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<mime-info xmlns="http://www.freedesktop.org/standards/shared-mime-info">',
    ]
    for mime, comment, globs in MIME_TYPES:
        lines.append(f'  <mime-type type="{mime}">')
        lines.append(f"    <comment>{comment}</comment>")
        lines += [f'    <glob pattern="{g}"/>' for g in globs]
        lines.append("  </mime-type>")
    lines += ["</mime-info>", ""]
    return "\n".join(lines)


def _linux_paths(data_home: Path) -> dict[str, Path]:
    return {
        "desktop": data_home / "applications" / f"{APP_ID}.desktop",
        "png": data_home / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png",
        "svg": data_home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
        "mime": data_home / "mime" / "packages" / f"{APP_ID}.xml",
    }


def _write(path: Path, data: bytes, result: DesktopResult) -> None:
    """Write a whole file (temporary name, then rename), replacing an older one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegviewerError(
            f"cannot create the folder {path.parent} ({exc.strerror or exc}); check its permissions"
        ) from None
    with atomic_path(path, force=True) as tmp:
        tmp.write_bytes(data)
    result.written.append(path)


def _refresh(tool: str, args: list[str], result: DesktopResult, why: str) -> None:
    exe = shutil.which(tool)
    if exe is None:
        result.notes.append(f"{tool} is not installed; {why} after the next login or reboot")
        return
    done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        result.notes.append(f"{tool} failed: {' '.join(done.stderr.split())[:200]}")


def _install_linux(command: Sequence[str], data_home: Path) -> DesktopResult:
    result = DesktopResult()
    paths = _linux_paths(data_home)
    _write(paths["png"], icon_path(".png").read_bytes(), result)
    _write(paths["svg"], icon_path(".svg").read_bytes(), result)
    _write(paths["mime"], mime_package_xml().encode("utf-8"), result)
    _write(paths["desktop"], desktop_file_text(command).encode("utf-8"), result)
    _refresh(
        "update-mime-database",
        [str(data_home / "mime")],
        result,
        "file managers learn the .nii/.nrrd/.dcm types",
    )
    _refresh(
        "update-desktop-database",
        [str(paths["desktop"].parent)],
        result,
        "segviewer appears under 'Open with'",
    )
    return result


# ----------------------------------------------------------------------------------------
# Windows


def _start_menu(env: Mapping[str, str]) -> Path:
    appdata = env.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
    return Path(appdata) / "Microsoft" / "Windows" / "Start Menu" / "Programs"


def _gui_python(python: str) -> str:
    """``pythonw.exe`` next to ``python.exe`` when present: no console window behind the app."""
    p = Path(python)
    w = p.with_name(p.stem + "w" + p.suffix)
    return str(w) if p.stem.lower() == "python" and w.is_file() else python


def shortcut_script(link: Path, python: str, icon: Path) -> str:
    """The PowerShell that creates the Start-menu shortcut (single-quoted literals)."""

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return "; ".join(
        [
            "$s = (New-Object -ComObject WScript.Shell).CreateShortcut(" + lit(str(link)) + ")",
            "$s.TargetPath = " + lit(python),
            "$s.Arguments = '-m segviewer'",
            "$s.IconLocation = " + lit(str(icon)),
            "$s.Description = 'Review what a segmentation model predicts on MRI'",
            "$s.Save()",
        ]
    )


def _windows_paths(env: Mapping[str, str]) -> dict[str, Path]:
    local = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    return {
        "link": _start_menu(env) / "segviewer.lnk",
        "ico": Path(local) / "segviewer" / "segviewer.ico",
    }


def _install_windows(python: str, env: Mapping[str, str]) -> DesktopResult:
    from PIL import Image

    result = DesktopResult()
    paths = _windows_paths(env)
    paths["ico"].parent.mkdir(parents=True, exist_ok=True)
    with Image.open(icon_path(".png")) as im, atomic_path(paths["ico"], force=True) as tmp:
        im.save(tmp, format="ICO", sizes=[(16, 16), (32, 32), (48, 48), (256, 256)])
    result.written.append(paths["ico"])
    shell = shutil.which("powershell") or shutil.which("pwsh")
    if shell is None:
        raise SegviewerError(
            "PowerShell is needed to create the Start-menu shortcut and was not found; "
            f"create a shortcut to {_gui_python(python)} -m segviewer yourself"
        )
    paths["link"].parent.mkdir(parents=True, exist_ok=True)
    script = shortcut_script(paths["link"], _gui_python(python), paths["ico"])
    done = subprocess.run(
        [shell, "-NoProfile", "-NonInteractive", "-Command", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 or not paths["link"].is_file():
        raise SegviewerError(
            f"could not create {paths['link']}: {' '.join(done.stderr.split())[:300]}"
        )
    result.written.append(paths["link"])
    result.notes.append(
        "file types are not associated; choose segviewer with 'Open with' on a .nii file"
    )
    return result


# ----------------------------------------------------------------------------------------
# macOS


def _mac_app(home: Path) -> Path:
    return home / "Applications" / "segviewer.app"


def info_plist(version: str) -> bytes:
    return plistlib.dumps(
        {
            "CFBundleName": "segviewer",
            "CFBundleDisplayName": "segviewer",
            "CFBundleIdentifier": "org.segviewer.segviewer",
            "CFBundleExecutable": "segviewer",
            "CFBundleIconFile": "segviewer.icns",
            "CFBundlePackageType": "APPL",
            "CFBundleShortVersionString": version,
            "NSHighResolutionCapable": True,
        }
    )


def _install_macos(python: str, home: Path) -> DesktopResult:
    from PIL import Image

    from segviewer import __version__

    result = DesktopResult()
    app = _mac_app(home)
    contents = app / "Contents"
    _write(contents / "Info.plist", info_plist(__version__), result)
    launcher = contents / "MacOS" / "segviewer"
    quoted = "'" + python.replace("'", "'\\''") + "'"
    _write(launcher, f'#!/bin/sh\nexec {quoted} -m segviewer "$@"\n'.encode(), result)
    launcher.chmod(0o755)
    icns = contents / "Resources" / "segviewer.icns"
    icns.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(icon_path(".png")) as im, atomic_path(icns, force=True) as tmp:
        im.save(tmp, format="ICNS")
    result.written.append(icns)
    result.notes.append(
        "double-clicking a .nii/.dcm file does not open it in segviewer on macOS yet; use "
        "File > Open or drop the file on the window"
    )
    return result


# ----------------------------------------------------------------------------------------
# entry points


def install(
    platform: str | None = None,
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> DesktopResult:
    """Install the launcher for ``platform`` (default ``sys.platform``)."""
    platform = sys.platform if platform is None else platform
    env = os.environ if env is None else env
    python = python or sys.executable
    if not python:
        raise SegviewerError(
            "cannot tell which Python runs segviewer; start it as python -m segviewer"
        )
    python = str(Path(python).absolute())
    if platform.startswith("linux") or platform.startswith("freebsd"):
        return _install_linux([python, "-m", "segviewer"], _data_home(env))
    if platform == "win32":
        return _install_windows(python, env)
    if platform == "darwin":
        return _install_macos(python, Path(env.get("HOME") or Path.home()))
    raise SegviewerError(
        f"--install-desktop-entry does not know how to make a launcher on {platform}; start "
        "segviewer from a terminal with 'segviewer' or 'python -m segviewer'"
    )


def uninstall(platform: str | None = None, env: Mapping[str, str] | None = None) -> DesktopResult:
    """Remove what :func:`install` wrote (files that are not there are skipped)."""
    platform = sys.platform if platform is None else platform
    env = os.environ if env is None else env
    result = DesktopResult()
    targets: list[Path]
    if platform == "win32":
        targets = list(_windows_paths(env).values())
    elif platform == "darwin":
        app = _mac_app(Path(env.get("HOME") or Path.home()))
        if app.is_dir():
            shutil.rmtree(app)
            result.removed.append(app)
        return result
    else:
        data_home = _data_home(env)
        targets = list(_linux_paths(data_home).values())
    for path in targets:
        if path.is_file():
            path.unlink()
            result.removed.append(path)
    if platform.startswith("linux") and result.removed:
        data_home = _data_home(env)
        _refresh(
            "update-mime-database",
            [str(data_home / "mime")],
            result,
            "file managers forget the types",
        )
    return result
