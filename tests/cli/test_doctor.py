"""``segviewer doctor`` and ``segviewer --version``: this machine reported as it is, and a
piece taken away reported as missing with a way to get it."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from segviewer.cli import doctor, main


def _by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def test_version_subprocess() -> None:
    from segviewer import __version__

    r = subprocess.run(
        [sys.executable, "-m", "segviewer", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout == f"segviewer {__version__}\n"


def test_doctor_reports_this_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import PySide6
    from pydicom import uid
    from pydicom.pixels.decoders.base import get_decoder

    from segviewer import __version__

    settings = tmp_path / "my settings ü" / "segviewer.ini"
    monkeypatch.setenv("SEGVIEWER_SETTINGS", str(settings))
    checks = _by_name(doctor.gather(tensorflow=False))
    assert checks["segviewer"].value == __version__
    assert checks["Python"].value.startswith(platform.python_version() + " ")
    assert sys.executable in checks["Python"].value
    assert checks["Qt binding"].status == "ok"
    assert f"PySide6 {PySide6.__version__}" in checks["Qt binding"].value
    # The tests run Qt offscreen (tests/conftest.py): the probe must have started that plugin.
    assert checks["platform plugin"].status == "ok"
    assert checks["platform plugin"].value.startswith("offscreen")
    assert checks["settings"].value.startswith(str(settings))
    assert checks["numpy"].status == "ok" and checks["numpy"].value.startswith(
        importlib.metadata.version("numpy")
    )
    # The decoders line says what pydicom itself says.
    j2k = get_decoder(uid.JPEG2000Lossless)
    assert j2k.is_available
    assert (
        f"JPEG 2000 lossless ({', '.join(j2k.available_plugins)})" in checks["DICOM decoders"].value
    )
    assert "TensorFlow" not in checks  # --no-tensorflow: not imported
    assert main(["doctor", "--no-tensorflow"]) == 0
    out = capsys.readouterr().out
    assert "platform plugin" in out and "MISSING" not in out


def test_doctor_reports_removed_pieces(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # TensorFlow and pynrrd "uninstalled"; Qt's GUI module failing as on a bare Linux
    # without libEGL (the error text is the one the dynamic loader gives).
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    monkeypatch.setitem(sys.modules, "nrrd", None)
    real_import = importlib.import_module

    def failing_import(name: str, package: str | None = None) -> Any:
        if name == "PySide6.QtGui":
            raise ImportError(
                "libEGL.so.1: cannot open shared object file: No such file or directory"
            )
        return real_import(name, package)

    monkeypatch.setattr(doctor.importlib, "import_module", failing_import)
    checks = _by_name(doctor.gather(tensorflow=True))
    tf = checks["TensorFlow"]
    assert tf.status == "missing" and not tf.required and "[model]" in tf.fix
    nrrd = checks["pynrrd"]
    assert nrrd.status == "missing" and nrrd.required and "pip install pynrrd" in nrrd.fix
    qt = checks["Qt binding"]
    assert qt.status == "missing" and "libEGL.so.1" in qt.value
    assert "apt install libegl1" in qt.fix
    assert "platform plugin" not in checks  # not probed without a binding
    assert main(["doctor", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    missing = {c["name"] for c in doc if c["status"] == "missing"}
    assert {"TensorFlow", "pynrrd", "Qt binding"} <= missing
    assert main(["doctor"]) == 1
    text = capsys.readouterr().out
    assert "MISSING TensorFlow" in text and "-> python -m pip install" in text


def test_doctor_names_missing_x11_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes.util

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    real = ctypes.util.find_library
    monkeypatch.setattr(
        ctypes.util, "find_library", lambda n: None if n == "xcb-cursor" else real(n)
    )
    check = doctor._xcb_check()
    assert check is not None and check.status == "missing" and check.required
    assert "libxcb-cursor0" in check.fix


@pytest.mark.tf
def test_doctor_reports_tensorflow_and_its_devices() -> None:
    tf = pytest.importorskip("tensorflow")
    check = doctor._tensorflow_check()
    assert check.status == "ok" and check.value.startswith(tf.__version__ + ";")
    for d in tf.config.list_physical_devices():
        assert d.name.split("device:")[-1] in check.value


def test_platform_plugin_failures_get_the_right_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Qt's own messages for the two usual failures on Linux."""
    monkeypatch.setenv("DISPLAY", ":99")
    fix = doctor._platform_fix("qt.qpa.xcb: could not connect to display :99 ...", None)
    assert "no display server answers at :99" in fix and "QT_QPA_PLATFORM=offscreen" in fix
    libs = doctor.Check("X11 libraries", doctor.MISSING, "", "sudo apt install libxcb-icccm4")
    fix = doctor._platform_fix('Could not load the Qt platform plugin "xcb" in ""', libs)
    assert fix.endswith("sudo apt install libxcb-icccm4")
    assert "libxcb-cursor0" in doctor._platform_fix('plugin "xcb" ...', None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 display on Linux")
def test_doctor_on_an_x11_display_that_cannot_start(tmp_path: Path) -> None:
    """For real on this machine: DISPLAY points at no server, so the xcb plugin cannot start and
    doctor exits 1 with a MISSING platform-plugin line and a fix."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=":387", SEGVIEWER_SETTINGS=str(tmp_path / "s.ini"))
    env.pop("WAYLAND_DISPLAY", None)
    r = subprocess.run(
        [sys.executable, "-m", "segviewer", "doctor", "--no-tensorflow", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert r.returncode == 1, r.stdout + r.stderr
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    plugin = checks["platform plugin"]
    assert plugin["status"] == "missing" and plugin["required"] and "xcb" in plugin["value"]
    assert "apt install" in plugin["fix"] or "no display server" in plugin["fix"]
