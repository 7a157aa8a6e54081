"""``segviewer doctor``: what this installation has and lacks, and how to get what is missing.

The first thing to paste into a bug report: segviewer's and Python's versions, the platform,
the libraries segviewer reads files with, the Qt binding and the platform plugin it starts
with, whether a display and an OpenGL context are available, TensorFlow (version and the
devices it sees), the DICOM decoders pydicom can use, and where the settings live.

Qt is probed in a child process: a platform plugin that cannot load aborts the process that
tries, and the report must still be printed. TensorFlow is imported only here (and only when
it is installed), never when segviewer starts.

Exit status: 0 when everything segviewer needs is there (optional parts may be missing),
1 when something it needs is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

from segviewer.cli.terminal import parse

__all__ = ["Check", "gather", "run"]

OK, MISSING, WARNING, INFO = "ok", "missing", "warning", "info"
_PIN = "PySide6-Essentials==6.11.3" if sys.version_info < (3, 12) else "PySide6-Essentials"

#: Shared libraries Qt needs on a bare Linux and the Debian/Ubuntu packages that hold them.
QT_SYSTEM_LIBRARIES = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libfreetype.so.6": "libfreetype6",
}
#: What Qt's xcb (X11) platform plugin loads; missing ones stop the window on X11 only.
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-image": "libxcb-image0",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-randr": "libxcb-randr0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xcb-xkb": "libxcb-xkb1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}
#: (distribution, import name, what segviewer uses it for)
LIBRARIES = (
    ("numpy", "numpy", "arrays"),
    ("nibabel", "nibabel", "NIfTI"),
    ("pydicom", "pydicom", "DICOM"),
    ("pynrrd", "nrrd", "NRRD"),
    ("Pillow", "PIL", "PNG/JPEG, legends"),
    ("tifffile", "tifffile", "TIFF"),
    ("scipy", "scipy", "resampling, outlines"),
    ("pyqtgraph", "pyqtgraph", "image display"),
    ("superqt", "superqt", "background workers"),
)
#: DICOM transfer syntaxes segviewer promises to read, and the package that decodes each.
DICOM_SYNTAXES = (
    ("JPEGBaseline8Bit", "JPEG baseline", "pylibjpeg-libjpeg"),
    ("JPEGExtended12Bit", "JPEG extended", "pylibjpeg-libjpeg"),
    ("JPEGLosslessSV1", "JPEG lossless", "pylibjpeg-libjpeg"),
    ("JPEGLSLossless", "JPEG-LS lossless", "pylibjpeg-libjpeg"),
    ("JPEG2000Lossless", "JPEG 2000 lossless", "pylibjpeg-openjpeg"),
    ("JPEG2000", "JPEG 2000", "pylibjpeg-openjpeg"),
    ("RLELossless", "RLE lossless", "pylibjpeg-rle"),
    ("DeflatedExplicitVRLittleEndian", "deflate", "(built in)"),
)


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: str  # ok, missing, warning or info
    value: str
    fix: str = ""
    #: whether segviewer cannot work without it (a missing one makes the exit status 1)
    required: bool = False


def _one_line(text: object, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


# ----------------------------------------------------------------------------------------
# the checks


def _python_checks() -> list[Check]:
    from segviewer import __version__

    return [
        Check("segviewer", OK, __version__),
        Check(
            "Python",
            OK,
            f"{platform.python_version()} ({platform.python_implementation()}) at "
            f"{sys.executable}"
            + (" in a virtual environment" if sys.prefix != sys.base_prefix else ""),
        ),
        Check("platform", INFO, f"{platform.platform()} ({platform.machine()})"),
    ]


def _library_checks() -> list[Check]:
    out = []
    for dist, module, purpose in LIBRARIES:
        try:
            importlib.import_module(module)
            version = importlib.metadata.version(dist)
        except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
            out.append(
                Check(
                    dist,
                    MISSING,
                    f"cannot be imported ({_one_line(exc, 120)}); needed for {purpose}",
                    f"python -m pip install {dist} (or reinstall segviewer)",
                    required=True,
                )
            )
            continue
        out.append(Check(dist, OK, f"{version} ({purpose})"))
    return out


def _missing_system_libraries(message: str) -> list[str]:
    """Debian package names for the shared libraries an ImportError says are missing."""
    found = re.findall(r"(lib[\w.+-]+\.so[.\d]*)", message)
    return [QT_SYSTEM_LIBRARIES.get(lib, lib) for lib in found]


def _qt_binding() -> tuple[Check, bool]:
    try:
        pyside = importlib.import_module("PySide6")
        core = importlib.import_module("PySide6.QtCore")
        # QtGui loads the system's libEGL/libGL/libxkbcommon/libfontconfig
        importlib.import_module("PySide6.QtGui")
    except ImportError as exc:
        text = _one_line(exc)
        libs = _missing_system_libraries(text)
        if libs and sys.platform.startswith("linux"):
            fix = (
                f"the system libraries Qt needs are missing: sudo apt install {' '.join(libs)} "
                "(Debian/Ubuntu; on Fedora/RHEL: sudo dnf install mesa-libEGL mesa-libGL "
                "libxkbcommon fontconfig)"
            )
        else:
            fix = f"python -m pip install {_PIN}"
        return Check("Qt binding", MISSING, f"PySide6 cannot be loaded ({text})", fix, True), False
    qt = core.qVersion()
    return Check("Qt binding", OK, f"PySide6 {pyside.__version__} (Qt {qt})"), True


def _display_check() -> Check:
    chosen = os.environ.get("QT_QPA_PLATFORM", "")
    if sys.platform.startswith("linux"):
        display = os.environ.get("DISPLAY", "")
        wayland = os.environ.get("WAYLAND_DISPLAY", "")
        if chosen.startswith(("offscreen", "minimal")):
            return Check(
                "display",
                INFO,
                f"QT_QPA_PLATFORM={chosen}: no window is shown (--screenshot still works)",
            )
        if not (display or wayland):
            return Check(
                "display",
                WARNING,
                "none (neither DISPLAY nor WAYLAND_DISPLAY is set): the window cannot open",
                "run on a desktop session or with ssh -X; headless: QT_QPA_PLATFORM=offscreen "
                "segviewer IMAGE --screenshot out.png, or use segviewer info / export / compare",
            )
        shown = ", ".join(
            t
            for t in (
                f"DISPLAY={display}" if display else "",
                f"WAYLAND_DISPLAY={wayland}" if wayland else "",
            )
            if t
        )
        return Check("display", OK, shown)
    return Check("display", OK, "the desktop of this session")


def _xcb_check() -> Check | None:
    """Missing X11 helper libraries (only when the xcb plugin would be used)."""
    if not sys.platform.startswith("linux") or not os.environ.get("DISPLAY"):
        return None
    if os.environ.get("QT_QPA_PLATFORM", "xcb").split(":")[0] not in ("", "xcb"):
        return None
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        return None
    import ctypes.util

    missing = [pkg for lib, pkg in XCB_LIBRARIES.items() if ctypes.util.find_library(lib) is None]
    if not missing:
        return Check("X11 libraries", OK, "everything Qt's xcb plugin loads is present")
    return Check(
        "X11 libraries",
        MISSING,
        f"Qt's xcb plugin needs {len(missing)} more system libraries",
        f"sudo apt install {' '.join(missing)} (Debian/Ubuntu)",
        required=True,
    )


#: Runs in a child process: which platform plugin starts, OpenGL, the settings file.
_QT_PROBE = r"""
import json, sys
from PySide6.QtCore import QSettings
from PySide6.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext
app = QGuiApplication(sys.argv[:1])
out = {"platform": app.platformName()}
screen = app.primaryScreen()
if screen is not None:
    g = screen.geometry()
    out["screen"] = f"{g.width()} x {g.height()}"
ctx = QOpenGLContext()
out["gl"] = bool(ctx.create())
if out["gl"]:
    fmt = ctx.format()
    out["gl_version"] = f"{fmt.majorVersion()}.{fmt.minorVersion()}"
    surface = QOffscreenSurface()
    surface.setFormat(fmt)
    surface.create()
    if ctx.makeCurrent(surface):
        f = ctx.functions()
        out["gl_renderer"] = str(f.glGetString(0x1F01) or "")
        out["gl_version"] = str(f.glGetString(0x1F02) or out["gl_version"])
        ctx.doneCurrent()
s = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "segviewer", "segviewer")
out["settings"] = s.fileName()
print("SEGVIEWER-PROBE " + json.dumps(out))
"""


def _qt_probe(timeout: float = 60.0) -> dict[str, object]:
    """Start Qt in a child process; ``{"error": ...}`` when it cannot start."""
    env = dict(os.environ)
    headless = (
        sys.platform.startswith("linux")
        and not env.get("QT_QPA_PLATFORM")
        and not (env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    )
    if headless:
        env["QT_QPA_PLATFORM"] = "offscreen"  # still learn about OpenGL and settings
    try:
        done = subprocess.run(
            [sys.executable, "-c", _QT_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"Qt did not start within {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith("SEGVIEWER-PROBE "):
            result: dict[str, object] = json.loads(line.removeprefix("SEGVIEWER-PROBE "))
            if headless:
                result["platform"] = f"{result['platform']} (tried without a display)"
            return result
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    wanted = [ln for ln in lines if "plugin" in ln.lower() or "error" in ln.lower()]
    return {"error": _one_line(" ".join(wanted[-3:] or lines[-3:]) or f"exit {done.returncode}")}


def _settings_fallback() -> str:
    if sys.platform == "win32":
        return str(os.path.join(os.environ.get("APPDATA", "~"), "segviewer", "segviewer.ini"))
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "segviewer", "segviewer.ini")


def _platform_fix(err: str, xcb: Check | None) -> str:
    """How to get a platform plugin that does not start, from Qt's own message."""
    low = err.lower()
    if "could not connect to display" in low or "cannot open display" in low:
        shown = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or "(none)"
        return (
            f"no display server answers at {shown}: start segviewer from the desktop session "
            "(or ssh -X); without one, QT_QPA_PLATFORM=offscreen segviewer ... --screenshot "
            "out.png, or segviewer info / export / compare"
        )
    if "xcb" in low:
        if xcb is not None and xcb.status == MISSING:
            return f"Qt's xcb plugin cannot load its libraries: {xcb.fix}"
        return (
            "Qt's xcb plugin cannot load: sudo apt install libxcb-cursor0 (Debian/Ubuntu), or "
            "try QT_QPA_PLATFORM=wayland"
        )
    return "see the display lines above; QT_DEBUG_PLUGINS=1 segviewer shows Qt's details"


def _qt_checks() -> list[Check]:
    binding, loaded = _qt_binding()
    checks = [binding, _display_check()]
    xcb = _xcb_check()
    if xcb is not None:
        checks.append(xcb)
    override = os.environ.get("SEGVIEWER_SETTINGS")
    if not loaded:
        checks.append(
            Check("settings", INFO, override or f"{_settings_fallback()} (Qt not loaded)")
        )
        return checks
    probe = _qt_probe()
    if "error" in probe:
        err = str(probe["error"])
        checks.append(
            Check("platform plugin", MISSING, err, _platform_fix(err, xcb), required=True)
        )
        checks.append(Check("settings", INFO, override or _settings_fallback()))
        return checks
    screen = f", screen {probe['screen']}" if probe.get("screen") else ""
    checks.append(Check("platform plugin", OK, f"{probe['platform']}{screen}"))
    if probe.get("gl"):
        renderer = f" ({probe['gl_renderer']})" if probe.get("gl_renderer") else ""
        checks.append(Check("OpenGL", OK, f"context {probe.get('gl_version', '?')}{renderer}"))
    else:
        checks.append(
            Check(
                "OpenGL",
                INFO,
                f"no OpenGL context on the {probe['platform']} platform; not needed "
                "(segviewer draws with Qt's raster engine)",
            )
        )
    where = override or str(probe.get("settings", ""))
    how = " (from SEGVIEWER_SETTINGS)" if override else ""
    checks.append(Check("settings", INFO, where + how))
    return checks


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ libraries write there directly) for a moment."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (tests, pythonw)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _tensorflow_check() -> Check:
    import importlib.util

    try:
        spec = importlib.util.find_spec("tensorflow")
    except (ImportError, ValueError):
        spec = None
    fix = (
        'python -m pip install "segviewer[model]" (in a checkout: python -m pip install '
        '".[model]"); only needed to run models'
    )
    if spec is None:
        return Check("TensorFlow", MISSING, "not installed: models cannot run", fix)
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with _quiet_stderr():  # TensorFlow's C++ start-up lines are not part of the report
            tf = importlib.import_module("tensorflow")
            devices = tf.config.list_physical_devices()
    except Exception as exc:  # a broken TensorFlow raises anything: report it
        return Check(
            "TensorFlow", MISSING, f"installed but cannot be imported ({_one_line(exc)})", fix
        )
    seen = ", ".join(f"{d.device_type} {d.name.split('device:')[-1]}" for d in devices) or "none"
    return Check("TensorFlow", OK, f"{tf.__version__}; devices: {seen}")


def _dicom_checks() -> list[Check]:
    try:
        from pydicom import uid as uids
        from pydicom.pixels.decoders.base import get_decoder
    except ImportError as exc:
        return [Check("DICOM decoders", MISSING, _one_line(exc), "python -m pip install pydicom")]
    have, lacking, packages = [], [], []
    for attr, label, package in DICOM_SYNTAXES:
        try:
            decoder = get_decoder(getattr(uids, attr))
            ok = bool(decoder.is_available)
            plugins = list(decoder.available_plugins)
        except Exception:  # an unknown syntax in another pydicom: treat as unavailable
            ok, plugins = False, []
        if ok:
            have.append(f"{label} ({', '.join(plugins) or 'built in'})")
        else:
            lacking.append(label)
            packages.append(package)
    checks = [Check("DICOM decoders", OK if have else MISSING, "; ".join(have) or "none")]
    if lacking:
        checks.append(
            Check(
                "DICOM decoders missing",
                MISSING,
                ", ".join(lacking),
                "python -m pip install " + " ".join(dict.fromkeys(packages)),
            )
        )
    return checks


def gather(tensorflow: bool = True) -> list[Check]:
    """Every check, in report order."""
    checks = _python_checks() + _library_checks() + _qt_checks() + _dicom_checks()
    if tensorflow:
        checks.append(_tensorflow_check())
    return checks


# ----------------------------------------------------------------------------------------
# the command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer doctor",
        description="Report what this installation has and lacks (versions, Qt and its "
        "platform plugin, display, OpenGL, TensorFlow and its devices, DICOM decoders, "
        "where settings live), and how to get what is missing. Paste it into bug reports.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument(
        "--no-tensorflow",
        action="store_true",
        help="do not import TensorFlow (it takes a few seconds)",
    )
    return p


def run(argv: Sequence[str]) -> int:
    ns = parse(_parser(), argv)
    if isinstance(ns, int):
        return ns
    checks = gather(tensorflow=not ns.no_tensorflow)
    failed = any(c.status == MISSING and c.required for c in checks)
    if ns.json:
        print(json.dumps([asdict(c) for c in checks], indent=2, ensure_ascii=False))
        return 1 if failed else 0
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = {OK: "ok", MISSING: "MISSING", WARNING: "WARNING", INFO: ""}[c.status]
        print(f"{mark:8}{c.name:<{width}}  {c.value}")
        if c.fix:
            print(f"{'':8}{'':<{width}}  -> {c.fix}")
    if failed:
        print("\nsegviewer lacks something it needs; see the MISSING lines above.")
    return 1 if failed else 0
