"""Rules for running on Windows and macOS as well as Linux, checked on Linux.

- No POSIX-only call without a fallback (``resource``, ``fcntl``, ``/proc``, ``os.fork``,
  POSIX-only signals): found by reading the package's source.
- Termination signals are set up in one function that skips what a platform lacks.
- Paths with spaces, non-ASCII letters, backslashes (legal in a Linux file name, a separator
  on Windows) and other odd characters work in every reader and writer, in the export and
  its manifest, and in the recent-files list.
- Case-insensitive file systems: tests/core/test_export_plan_names.py.
"""

from __future__ import annotations

import ast
import json
import shutil
import signal
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from segviewer.cli.terminal import handle_termination, termination_signals
from segviewer.core.classes import ClassInfo, ClassTable
from segviewer.core.progress import run_to_end
from segviewer.io.classtables import read_class_table, save_class_table
from segviewer.io.export import ExportRequest, run_export
from segviewer.io.images import load_image
from segviewer.io.predictions import load_prediction, load_reference, prediction_from_array
from segviewer.io.writers import write_nifti, write_npy, write_png

PACKAGE = Path(__file__).resolve().parents[1] / "segviewer"

#: Names that exist on POSIX only. Using one needs a fallback around it: a ``try`` whose
#: handler catches what the missing name raises elsewhere (ImportError, AttributeError,
#: OSError), or an ``if`` that asks first (``hasattr``, ``getattr``, ``sys.platform``,
#: ``os.name``). Anything else may say so on its line with ``# portable: <the fallback>``.
POSIX_ONLY_MODULES = {"resource", "fcntl", "termios", "pwd", "grp", "posix"}
POSIX_ONLY_ATTRIBUTES = {
    ("os", "fork"),
    ("os", "forkpty"),
    ("os", "getuid"),
    ("os", "geteuid"),
    ("os", "getpgid"),
    ("os", "killpg"),
    ("os", "uname"),
    ("os", "posix_fadvise"),
    ("os", "sched_getaffinity"),
    ("signal", "SIGHUP"),
    ("signal", "SIGKILL"),
    ("signal", "SIGQUIT"),
    ("signal", "SIGUSR1"),
    ("signal", "SIGUSR2"),
    ("signal", "SIGALRM"),
    ("signal", "SIGBUS"),
    ("signal", "SIGPIPE"),
    ("signal", "SIGXFSZ"),
    ("signal", "alarm"),
    ("signal", "setitimer"),
}
_FALLBACK_ERRORS = {"ImportError", "ModuleNotFoundError", "AttributeError", "OSError", "Exception"}
_ASKING = ("hasattr", "getattr", "sys.platform", "os.name", "platform.system")


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether ``node`` sits in a try/except or an if that provides the fallback."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.Try) and child in parent.body:
            for handler in parent.handlers:
                names = (
                    {ast.unparse(e) for e in handler.type.elts}
                    if isinstance(handler.type, ast.Tuple)
                    else {ast.unparse(handler.type)}
                    if handler.type is not None
                    else {"Exception"}
                )
                if names & _FALLBACK_ERRORS:
                    return True
        if isinstance(parent, (ast.If, ast.IfExp)) and any(
            a in ast.unparse(parent.test) for a in _ASKING
        ):
            return True
        child, parent = parent, parents.get(parent)
    return False


def _findings(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    out = []

    def flag(node: ast.AST, what: str) -> None:
        lineno = getattr(node, "lineno", 0)
        if "# portable:" in lines[lineno - 1] or _guarded(node, parents):
            return
        out.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in POSIX_ONLY_MODULES:
                    flag(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in POSIX_ONLY_MODULES:
                flag(node, f"from {node.module} import")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in POSIX_ONLY_ATTRIBUTES:
                flag(node, f"{node.value.id}.{node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (node.value.startswith("/proc/") or node.value == "/proc")
        ):
            flag(node, f"path {node.value!r}")
    return out


def test_no_posix_only_call_without_a_fallback() -> None:
    findings = [f for p in sorted(PACKAGE.rglob("*.py")) for f in _findings(p)]
    assert not findings, "POSIX-only calls without '# portable:' fallback:\n" + "\n".join(findings)


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    # The rule above must be able to fail: a file with each kind of finding is flagged.
    bad = PACKAGE / "_portability_probe_tmp.py"
    try:
        bad.write_text(
            "import resource\nimport os, signal\nos.fork()\nsignal.signal(signal.SIGHUP, None)\n"
            "open('/proc/self/status')\nimport fcntl  # portable: guarded by try/except\n"
            "try:\n    import termios\nexcept ImportError:\n    termios = None\n"
            "if hasattr(os, 'fork'):\n    os.fork()\n"
            "try:\n    os.getuid()\nexcept ValueError:\n    pass\n",
            encoding="utf-8",
        )
        found = _findings(bad)
    finally:
        bad.unlink()
    assert [f.split(": ", 1)[1] for f in found] == [
        "import resource",
        "os.fork",
        "signal.SIGHUP",
        "path '/proc/self/status'",
        "os.getuid",  # a handler that does not catch what a missing name raises
    ]


# ----------------------------------------------------------------------------------------
# signals


def test_termination_signals_on_posix_and_on_windows() -> None:
    posix = termination_signals()
    assert signal.SIGTERM in posix
    if hasattr(signal, "SIGHUP"):
        assert signal.SIGHUP in posix
    # Windows' signal module: SIGTERM and SIGBREAK, no SIGHUP.
    windows = types.SimpleNamespace(SIGTERM=15, SIGBREAK=21, SIGINT=2)
    assert termination_signals(windows) == [15, 21]


def test_handle_termination_installs_only_what_exists_and_restores() -> None:
    installed: dict[int, Any] = {15: "default-15", 21: "default-21"}

    def fake_signal(sig: int, handler: Any) -> Any:
        old = installed[sig]
        installed[sig] = handler
        return old

    windows = types.SimpleNamespace(SIGTERM=15, SIGBREAK=21, signal=fake_signal)

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    with handle_termination(handler, windows) as handled:
        assert handled == [15, 21] and installed == {15: handler, 21: handler}
    assert installed == {15: "default-15", 21: "default-21"}
    # On this machine, for real: SIGTERM reaches the handler, and the old one comes back.
    before = signal.getsignal(signal.SIGTERM)
    seen: list[int] = []
    with handle_termination(lambda s, f: seen.append(s)) as handled:
        assert signal.SIGTERM in handled
        signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) == before


# ----------------------------------------------------------------------------------------
# paths

ODD_NAMES = [
    "with space",
    "Ünïcödé 脳 MRI",
    "back\\slash",
    "semi;colon & 'quote' $HOME (1)",
]


@pytest.fixture(params=ODD_NAMES)
def odd_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    folder = tmp_path / request.param / request.param
    folder.mkdir(parents=True)
    return folder


def test_readers_accept_odd_paths(
    odd_dir: Path, nibabel_anatomical: Path, mr_small: Path, demo_dir: Path
) -> None:
    nii = odd_dir / "scan 1 ü.nii"
    shutil.copy(nibabel_anatomical, nii)
    vol = load_image(str(nii))
    assert vol.shape == nib.load(nibabel_anatomical).shape[:3]
    assert Path(str(vol.source)) == nii
    dcm_dir = odd_dir / "dicom ü"
    dcm_dir.mkdir()
    shutil.copy(mr_small, dcm_dir / "image 1.dcm")
    assert load_image(dcm_dir / "image 1.dcm").shape == load_image(mr_small).shape
    assert load_image(dcm_dir).shape == load_image(mr_small).shape  # as a folder
    # writers, then the readers on what they wrote
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    written_npy = write_npy(data, odd_dir / "stack é.npy")
    np.testing.assert_array_equal(load_image(written_npy).data, data)
    written_nii = write_nifti(data, np.diag([2.0, 2.0, 2.0, 1.0]), odd_dir / "out ü.nii.gz")
    np.testing.assert_array_equal(np.asarray(load_image(written_nii).data), data)
    png = write_png(np.full((7, 9), 200, np.uint8), odd_dir / "slice ü.png")
    assert load_image(png).shape == (1, 7, 9)
    # predictions, references and class tables
    probs = np.random.default_rng(0).random((*data.shape, 3)).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    np.save(odd_dir / "probs ü.npy", probs)
    pred = load_prediction(odd_dir / "probs ü.npy", data.shape)
    assert pred.n_classes == 3
    ref = load_reference(str(written_nii), data.shape, n_classes_hint=3)
    assert ref.shape == data.shape
    table = ClassTable((ClassInfo(0, "bg", (0, 0, 0)), ClassInfo(1, "Leber ü", (200, 0, 0))))
    saved = save_class_table(table, odd_dir / "classes ü.json")
    assert read_class_table(saved)[0].classes[1].name == "Leber ü"
    assert read_class_table(demo_dir / "classes.json")[0]  # and the bundled one


def test_export_and_manifest_with_odd_paths(odd_dir: Path, demo_dir: Path) -> None:
    src = odd_dir / "demo ü"
    shutil.copytree(demo_dir, src)
    vol = load_image(src / "t1.nii.gz")
    pred = load_prediction(src / "tissue_prob.nii.gz", vol.shape)
    table, _ = read_class_table(src / "classes.json")
    out = odd_dir / "export ü dir"
    request = ExportRequest(
        out_dir=out,
        what=frozenset({"binary", "labels", "overlays"}),
        formats=frozenset({"nifti", "png"}),
        slices=(40,),
        full_paths=True,  # the manifest records the odd paths themselves
    )
    result = run_to_end(run_export(vol, pred, table, request))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"]["image"]["path"] == str(src / "t1.nii.gz")
    assert manifest["sources"]["prediction"]["path"] == str(src / "tissue_prob.nii.gz")
    listed = [f["path"] for f in manifest["files"]]
    # paths in the manifest: relative, forward slashes on every system, and they exist
    assert all("\\" not in p and not Path(p).is_absolute() for p in listed)
    assert sorted(out / p for p in listed) == sorted(result.files)
    assert all((out / p).is_file() for p in listed)
    # by default the manifest names the sources by file name only (no folder names)
    result = run_to_end(
        run_export(vol, pred, table, replace(request, full_paths=False, force=True))
    )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"]["image"]["path"] == "t1.nii.gz"


def test_recent_files_keep_odd_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("PySide6")
    from segviewer.ui.settings import Settings

    monkeypatch.setenv("SEGVIEWER_SETTINGS", str(tmp_path / "settings ü" / "segviewer.ini"))
    folder = tmp_path / "scans ü 脳" / "back\\slash" / "pipe | and ; semicolon"
    folder.mkdir(parents=True)
    files = {
        "image": folder / "t1 ü.nii.gz",
        "prediction": folder / "probs, 1.npy",
        "reference": folder / "manual%20seg.nii.gz",
        "classes": folder / "classes=ü.json",
    }
    s = Settings()
    for kind, path in files.items():
        path.write_bytes(b"")
        s.add_recent(kind, path)
    s.sync()
    again = Settings()  # read back from the INI file
    assert dict(again.recent()) == {k: str(p.resolve()) for k, p in files.items()}
    assert again.recent()[0] == ("classes", str(files["classes"].resolve()))


def test_model_extra_picks_one_tensorflow_wheel_per_platform() -> None:
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    model = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]["model"]
    reqs = [Requirement(r) for r in model]
    platforms = {
        ("linux", "x86_64"): "tensorflow-cpu",  # no CUDA download on Linux PCs
        ("linux", "aarch64"): "tensorflow",
        ("win32", "AMD64"): "tensorflow",
        ("darwin", "x86_64"): "tensorflow",  # tensorflow-cpu has no macOS wheels
        ("darwin", "arm64"): "tensorflow",
    }
    for (plat, machine), wanted in platforms.items():
        env = {"sys_platform": plat, "platform_machine": machine}
        chosen = [r.name for r in reqs if r.marker is None or Marker(str(r.marker)).evaluate(env)]
        assert chosen == [wanted], (plat, machine, chosen)


def test_windows_paths_survive_in_the_manifest_and_names_are_windows_safe(
    tmp_path: Path, demo_dir: Path
) -> None:
    """A volume read on Windows carries a drive-letter path with backslashes: the manifest
    keeps it exactly (JSON escapes it), and every planned name is valid on NTFS."""
    from pathlib import PureWindowsPath

    from segviewer.core.types import Volume

    vol = load_image(demo_dir / "t1.nii.gz")
    windows_source = "C:\\Users\\Zoë Müller\\MRI scans\\t1 (1).nii.gz"
    vol = Volume(vol.data, vol.affine, source=windows_source, format=vol.format)
    pred = load_prediction(demo_dir / "tissue_prob.nii.gz", vol.shape)
    names = ["bg", "C:\\evil", "a:b", 'x?y*"<z>|', "CON.txt", "trailing. ", "Liver", "liver"]
    table = ClassTable(tuple(ClassInfo(i, n, (i * 30, 0, 0)) for i, n in enumerate(names)))
    out = tmp_path / "out"
    request = ExportRequest(
        out_dir=out,
        what=frozenset({"binary"}),
        formats=frozenset({"npy", "png"}),
        slices=(40,),
        full_paths=True,
    )
    prob8 = np.zeros((*vol.shape, len(names)), np.float32)
    prob8[..., :3] = np.asarray(pred.channels_first()).transpose(1, 2, 3, 0)
    pred8 = prediction_from_array(prob8, vol.shape, kind="probabilities")
    run_to_end(run_export(vol, pred8, table, request))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["sources"]["image"]["path"] == windows_source
    reserved = set('<>:"/\\|?*')
    for entry in manifest["files"]:
        for part in entry["path"].split("/"):
            win = PureWindowsPath(part)
            assert not win.drive and not (reserved & set(part)), part
            assert not part.endswith((".", " ")), part
            assert part.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL"}, part
    masks = {e["path"].casefold() for e in manifest["files"] if e["path"].endswith(".npy")}
    assert len(masks) == len(names) - 1  # Liver and liver: two files on NTFS too


def test_readme_install_commands_use_a_venv_on_posix_and_windows() -> None:
    """The README's first commands work where pip refuses the system Python (PEP 668): each
    creates a virtual environment and installs into it; PowerShell mirrors the POSIX lines
    (scripts/check_fresh_install.sh runs the POSIX ones)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")

    def block(lang: str) -> list[str]:
        m = re.search(rf"```{lang}\n(.*?)```", readme, re.S)
        assert m, lang
        return [ln for ln in m.group(1).splitlines() if ln.strip() and not ln.startswith("#")]

    posix, powershell = block("bash"), block("powershell")
    assert len(posix) == len(powershell) == 2
    for sh, ps in zip(posix, powershell, strict=True):
        assert sh.startswith("python3 -m venv .venv && .venv/bin/python -m pip install ")
        assert ps.startswith("py -m venv .venv; .venv\\Scripts\\python -m pip install ")
        target = re.search(r'pip install (-e )?"([^"]+)"', sh)
        assert target and f'pip install {target.group(1) or ""}"{target.group(2)}"' in ps
        last_sh = sh.rsplit("&& ", 1)[1].replace(".venv/bin/", "")
        last_ps = ps.rsplit("; ", 1)[1].replace(".venv\\Scripts\\", "")
        assert last_sh == last_ps
