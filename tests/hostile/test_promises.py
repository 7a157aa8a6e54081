"""The README's promises about bad input and interrupted exports, one named test each.

Every test runs the real command (``python -m segviewer``) in a subprocess, except where a
file must change while an export reads it (then a small script does, also in a subprocess,
so that a failure cannot take pytest down).

Promises (README "Safety"): one-line errors (also tests/hostile/test_hostile.py over the
whole corpus), nothing half-written, nothing overwritten without --force, no pickles, no
patient identifiers, nothing outside the output folder.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
POSIX = os.name == "posix"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra)
    return env


def _run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segviewer", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_env(**env),
        cwd=cwd,
        timeout=300,
    )


def _one_error(r: subprocess.CompletedProcess[str]) -> str:
    """The single ``segviewer: error:`` line of a failed run (exit 2, no traceback)."""
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("segviewer: error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (hidden ones too): file contents, None for folders."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = None if p.is_dir() and not p.is_symlink() else p.read_bytes()
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 12x10x6 image, 3-class logits on its grid, and a class table."""
    d = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    img = d / "image.nii.gz"
    nib.save(nib.Nifti1Image((rng.random((12, 10, 6)) * 100).astype(np.int16), np.eye(4)), img)
    logits = d / "logits.npy"
    np.save(logits, rng.standard_normal((12, 10, 6, 3)).astype(np.float32))
    return {"image": img, "logits": logits}


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An export that takes a few seconds: 96 slices of overlays and masks for 7 classes."""
    d = tmp_path_factory.mktemp("slow")
    rng = np.random.default_rng(1)
    img = d / "image.nii.gz"
    nib.save(nib.Nifti1Image((rng.random((64, 64, 96)) * 100).astype(np.float32), np.eye(4)), img)
    logits = d / "logits.npy"
    np.save(logits, rng.standard_normal((64, 64, 96, 8)).astype(np.float32))
    return {"image": img, "logits": logits}


def _slow_export(slow: dict[str, Path], out: Path) -> list[str]:
    return [
        sys.executable, "-m", "segviewer", "export", str(slow["image"]), "--prediction",
        str(slow["logits"]), "--out", str(out), "--what", "binary,labels,overlays", "--format",
        "png,nifti", "--scale", "4", "--force",
    ]  # fmt: skip


def _wait_for_staging(out: Path, proc: subprocess.Popen[str], files: int = 3) -> Path:
    """The export's staging folder once it holds a few files (the export is under way)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the export ended before it could be interrupted"
        for d in out.glob(".segviewer-staging-*"):
            if sum(1 for p in d.rglob("*") if p.is_file()) >= files:
                return d
        time.sleep(0.01)
    raise AssertionError("no staging folder appeared")


# ------------------------------------------------------------------------------------------
# nothing outside the output folder


def test_nothing_written_outside_output_folder_through_symlink(
    tmp_path: Path, small: dict[str, Path]
) -> None:
    """Issue 13.1: out/x/masks -> victim/m must not receive masks, with or without --force."""
    if not POSIX:
        pytest.skip("symbolic links need privileges on Windows")
    out, victim = tmp_path / "out" / "x", tmp_path / "victim" / "m"
    out.mkdir(parents=True)
    victim.mkdir(parents=True)
    (victim / "keep.npy").write_bytes(b"victim's file")
    (out / "masks").symlink_to(victim)
    for force in ([], ["--force"]):
        r = _run("export", str(small["image"]), "--prediction", str(small["logits"]), "--out",
                 str(out), "--what", "binary", "--format", "npy", *force)  # fmt: skip
        line = _one_error(r)
        assert "is a link" in line and "outside the output folder" in line
        assert _tree(victim) == {"keep.npy": b"victim's file"}
        assert sorted(p.name for p in out.iterdir()) == ["masks"]


def test_detached_nrrd_data_file_stays_in_header_folder(tmp_path: Path) -> None:
    """Issue 13.11: a .nhdr naming /etc/passwd or ../secret is refused; allowed on request."""
    header = "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 4 4 2\nencoding: raw\ndata file: {}\n"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.raw").write_bytes(bytes(range(32)))
    (tmp_path / "hdr").mkdir()
    outside = tmp_path / "hdr" / "outside.nhdr"
    outside.write_text(header.format("../other/data.raw"))
    passwd = tmp_path / "hdr" / "passwd.nhdr"
    passwd.write_text(header.format("/etc/passwd"))
    for nhdr in (outside, passwd):
        r = _run("info", str(nhdr))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "lies outside the header's folder" in r.stdout
        assert "root:" not in r.stdout + r.stderr
    allowed = _run("info", "--json", str(outside), SEGVIEWER_NRRD_DATA_ANYWHERE="1")
    assert allowed.returncode == 0, allowed.stdout
    assert json.loads(allowed.stdout)[0]["image"]["shape"] == [4, 4, 2]


# ------------------------------------------------------------------------------------------
# nothing overwritten without --force; nothing half-written


def test_nothing_overwritten_without_force(tmp_path: Path, small: dict[str, Path]) -> None:
    out = tmp_path / "out"
    args = ("export", str(small["image"]), "--prediction", str(small["logits"]), "--out",
            str(out), "--format", "npy")  # fmt: skip
    assert _run(*args).returncode == 0
    before = _tree(out)
    line = _one_error(_run(*args))
    assert "already holds" in line and "--force" in line
    assert _tree(out) == before


def test_failed_force_export_keeps_previous_export(tmp_path: Path, small: dict[str, Path]) -> None:
    """Issue 13.6: a --force export that fails (here: a bad class) leaves the old one as it was."""
    out = tmp_path / "out"
    base = ("export", str(small["image"]), "--prediction", str(small["logits"]), "--out",
            str(out), "--format", "npy,nifti")  # fmt: skip
    assert _run(*base).returncode == 0
    before = _tree(out)
    _one_error(_run(*base, "--force", "--slices", "999", "--format", "png"))
    assert _tree(out) == before


@pytest.mark.skipif(not POSIX, reason="SIGTERM / SIGHUP are POSIX signals")
@pytest.mark.parametrize(("sig", "status"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_termination_signal_stops_export_cleanly(
    tmp_path: Path, slow: dict[str, Path], small: dict[str, Path], sig: str, status: int
) -> None:
    """Issue 13.5 and 13.6: SIGTERM / SIGHUP during a --force export: one line, exit 143 /
    129, no staging folder left, the previous export untouched."""
    out = tmp_path / "out"
    prev = _run("export", str(small["image"]), "--prediction", str(small["logits"]), "--out",
                str(out), "--format", "npy")  # fmt: skip
    assert prev.returncode == 0
    before = _tree(out)
    proc = subprocess.Popen(
        _slow_export(slow, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(),
    )  # fmt: skip
    _wait_for_staging(out, proc)
    proc.send_signal(getattr(signal, sig))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr
    assert f"segviewer: stopped by {sig}" in stderr and "Traceback" not in stderr
    assert [ln for ln in stderr.splitlines() if ln.strip()] == [
        f"segviewer: stopped by {sig}; nothing half-written was left behind"
    ]
    assert _tree(out) == before


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the export child dies with its parent on Linux"
)
def test_stale_staging_after_sigkill_removed_by_next_export(
    tmp_path: Path, slow: dict[str, Path], small: dict[str, Path]
) -> None:
    """Issue 13.5: what a killed export left (its staging folder, a stray .partial file) is
    reported and removed by the next export into that folder; nothing of it is final-named."""
    out = tmp_path / "out"
    proc = subprocess.Popen(_slow_export(slow, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env())  # fmt: skip
    staging = _wait_for_staging(out, proc)
    proc.kill()
    proc.wait(timeout=60)
    # the export runs in a child of that process (segviewer.cli.terminal.survive_sigbus),
    # killed with it (Linux: PR_SET_PDEATHSIG); give it a moment to be gone
    worker = int(staging.name.split("-")[2])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{worker}/stat").read_bytes().rsplit(b")", 1)[-1].split()[0]
        except OSError:
            break  # gone
        if stat == b"Z":
            break
        time.sleep(0.05)
    assert staging.is_dir()
    assert [p.name for p in out.iterdir()] == [staging.name]  # no final-named file
    (out / ".labels.partial-0123abcd.npy").write_bytes(b"half")
    r = _run("export", str(small["image"]), "--prediction", str(small["logits"]), "--out",
             str(out), "--format", "npy")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "removed 2 unfinished files of an earlier export that was killed" in r.stderr
    assert not list(out.glob(".*"))


_SHRINK_SETUP = """
import sys, numpy as np
sys.path.insert(0, {repo!r})
from pathlib import Path
import nibabel as nib
tmp = Path({tmp!r})
np.save(tmp / "p.npy", np.random.default_rng(0).standard_normal((3, 128, 64, 64)).astype(np.float32))
nib.save(nib.Nifti1Image(np.zeros((128, 64, 64), np.float32), np.eye(4)), str(tmp / "img.nii"))
"""


@pytest.mark.skipif(not POSIX, reason="memory maps of a shrinking file: SIGBUS is POSIX")
def test_prediction_file_shrinking_between_blocks(tmp_path: Path) -> None:
    """Issue 13.7: a memory-mapped prediction truncated by another program between the blocks
    an export reads: a clear error naming the file, no output (the sizes are checked before
    each block is read)."""
    script = (
        _SHRINK_SETUP.format(repo=str(REPO), tmp=str(tmp_path))
        + """
import segviewer.core.masks as masks
masks.default_workers = lambda: 1  # blocks read one by one, in this thread
from segviewer.core.classes import ClassTable
from segviewer.core.types import SegviewerError
from segviewer.io.export import ExportRequest, run_export
from segviewer.io.images import load_image
from segviewer.io.predictions import load_prediction
vol = load_image(tmp / "img.nii")
pred = load_prediction(tmp / "p.npy", vol.shape)
assert isinstance(pred.data, np.memmap)
gen = run_export(vol, pred, ClassTable.default(3), ExportRequest(tmp / "out"))
next(gen)
with open(tmp / "p.npy", "r+b") as f:
    f.truncate(4096)
try:
    for _ in gen:
        pass
except SegviewerError as exc:
    print("ERROR", exc)
"""
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ERROR ") and "p.npy shrank to 4096 bytes" in r.stdout
    out = tmp_path / "out"
    assert not out.exists() or list(out.rglob("*")) == []


@pytest.mark.skipif(not POSIX, reason="memory maps of a shrinking file: SIGBUS is POSIX")
def test_sigbus_during_export_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """Issue 13.7: when a block is already being read as the file shrinks, the process gets
    SIGBUS, which Python cannot catch: ``segviewer export`` then still ends with one error line
    (exit 2) and no output, its staging folder removed."""
    script = (
        _SHRINK_SETUP.format(repo=str(REPO), tmp=str(tmp_path))
        + """
import segviewer.core.masks as masks
real = masks.iter_labels

def iter_labels(pred, settings, *args, **kwargs):
    gen = real(pred, settings, *args, **kwargs)
    first = next(gen)
    with open(tmp / "p.npy", "r+b") as f:  # another program truncates the file ...
        f.truncate(4096)
    float(np.asarray(pred.data[-1]).sum())  # ... while a block of it is being read: SIGBUS
    yield first
    return (yield from gen)

masks.iter_labels = iter_labels
from segviewer.cli import main
sys.exit(main(["export", str(tmp / "img.nii"), "--prediction", str(tmp / "p.npy"), "--out",
               str(tmp / "out"), "--format", "npy"]))
"""
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("segviewer: error: an input file shrank")
    out = tmp_path / "out"
    assert not out.exists() or list(out.rglob("*")) == []


# ------------------------------------------------------------------------------------------
# no pickles, no patient identifiers


def test_no_pickle_is_ever_loaded(tmp_path: Path, small: dict[str, Path]) -> None:
    """A pickle named .npy / inside an .npz whose unpickling would create a file: refused,
    and the file is never created."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Evil())
    (tmp_path / "evil.npy").write_bytes(payload)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([Evil()], dtype=object), allow_pickle=True)
    marker.unlink(missing_ok=True)
    for path in (tmp_path / "evil.npy", obj):
        for args in (
            ("info", str(path)),
            ("export", str(small["image"]), "--prediction", str(path), "--out",
             str(tmp_path / "o")),
            ("export", str(path), "--prediction", str(small["logits"]), "--out",
             str(tmp_path / "o")),
        ):  # fmt: skip
            r = _run(*args)
            assert r.returncode == 2 and "Traceback" not in r.stderr
            assert "pickle" in (r.stdout + r.stderr).lower()
    assert not marker.exists()


def test_no_patient_identifiers_in_export(tmp_path: Path) -> None:
    """Issue 13.10: no patient field, no free-text DICOM field and no source folder name in
    any exported file, unless --full-paths / --free-text ask for them."""
    import pydicom
    from pydicom.data import get_testdata_file

    folder = tmp_path / "Doe_John_19700101"
    folder.mkdir()
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PatientName = "Doe^John"
    ds.PatientID = "PID-8817"
    ds.PatientBirthDate = "19700101"
    ds.SeriesDescription = "John Doe follow-up brain"
    ds.save_as(folder / "mr.dcm", enforce_file_format=True)
    logits = tmp_path / "logits.npy"
    np.save(logits, np.random.default_rng(0).standard_normal((1, 64, 64, 3)).astype(np.float32))
    out = tmp_path / "out"
    r = _run("export", str(folder / "mr.dcm"), "--prediction", str(logits), "--out", str(out),
             "--what", "binary,labels,overlays", "--format", "nifti,png,npy")  # fmt: skip
    assert r.returncode == 0, r.stderr
    blob = b"".join(b or b"" for b in _tree(out).values())
    for secret in (b"Doe", b"John", b"PID-8817", b"19700101", str(tmp_path).encode()):
        assert secret not in blob, secret
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"]["image"]["path"] == "mr.dcm"
    assert manifest["sources"]["prediction"]["path"] == "logits.npy"
    out2 = tmp_path / "out2"
    r = _run("export", str(folder / "mr.dcm"), "--prediction", str(logits), "--out", str(out2),
             "--full-paths", "--free-text")  # fmt: skip
    assert r.returncode == 0, r.stderr
    m2 = json.loads((out2 / "manifest.json").read_text())
    assert m2["sources"]["image"]["path"] == str(folder / "mr.dcm")
    assert m2["sources"]["image"]["metadata"]["series_description"] == "John Doe follow-up brain"
    assert b"PID-8817" not in (out2 / "manifest.json").read_bytes()


# ------------------------------------------------------------------------------------------
# one-line errors, no library noise


def test_library_log_lines_only_with_verbose(tmp_path: Path, nibabel_anatomical: Path) -> None:
    """Issue 13.9: nibabel's own log line about a bad header shows only with --verbose."""
    h = nib.load(nibabel_anatomical).header.copy()
    h["vox_offset"] = -1000
    raw = bytearray(nibabel_anatomical.read_bytes())
    raw[:348] = h.binaryblock
    bad = tmp_path / "bad.nii"
    bad.write_bytes(bytes(raw))
    quiet = _run("info", str(bad))
    assert all(ln.startswith("segviewer: ") for ln in quiet.stderr.splitlines() if ln.strip())
    loud = _run("info", str(bad), "--verbose")
    assert "vox offset" in loud.stderr


def test_stray_label_exports_one_mask_quickly(tmp_path: Path, small: dict[str, Path]) -> None:
    """Issue 13.4: one voxel of 65533 in a label map: masks for the classes present, and the
    stray label reported, not 65,533 files."""
    lab = np.zeros((12, 10, 6), np.uint16)
    lab[2:5] = 1
    lab[0, 0, 0] = 65533
    np.save(tmp_path / "labels.npy", lab)
    out = tmp_path / "out"
    r = _run("export", str(small["image"]), "--prediction", str(tmp_path / "labels.npy"),
             "--out", str(out), "--what", "binary", "--format", "npy")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "masks").iterdir()) == [
        "00001_class_1.npy",
        "65533_class_65533.npy",
    ]
    assert "65533 (1 voxels)" in r.stderr and "far beyond" in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["index"] for c in manifest["classes"]] == [0, 1, 65533]
    cmp = _run("compare", str(small["image"]), "--prediction", str(tmp_path / "labels.npy"),
               "--reference", str(tmp_path / "labels.npy"), "--json")  # fmt: skip
    assert cmp.returncode == 0, cmp.stderr
    assert json.loads(cmp.stdout)["confusion_classes"] == [0, 1, 65533]


def test_export_checks_prediction_shape_before_reading_image(tmp_path: Path) -> None:
    """Issue 13.2: a prediction of the wrong shape is refused from the headers, before the
    image's data is read: here the image has no data at all, and the error is the shape."""
    header = nib.Nifti1Header()
    header.set_data_shape((64, 64, 64))
    header.set_data_dtype(np.float32)
    img = tmp_path / "header_only.nii"
    img.write_bytes(nib.Nifti1Image(np.zeros((64, 64, 64), np.float32), np.eye(4)).to_bytes()[:352])
    np.save(tmp_path / "p.npy", np.zeros((5, 5, 5, 3), np.float32))
    line = _one_error(_run("export", str(img), "--prediction", str(tmp_path / "p.npy"), "--out",
                           str(tmp_path / "out")))  # fmt: skip
    assert "p.npy" in line and "(64, 64, 64)" in line and "truncated" not in line
    np.save(tmp_path / "ok.npy", np.zeros((64, 64, 64, 3), np.float32))
    line = _one_error(_run("export", str(img), "--prediction", str(tmp_path / "ok.npy"), "--out",
                           str(tmp_path / "out")))  # fmt: skip
    assert "truncated" in line  # a fitting prediction: then the image is read, and refused


def test_overlong_names_are_one_line_errors(tmp_path: Path, small: dict[str, Path]) -> None:
    """Issue 13.3: an output name component over 255 bytes or a path over 4,096 bytes is
    refused before anything is written (they raised OSError tracebacks)."""
    base = ("export", str(small["image"]), "--prediction", str(small["logits"]), "--format",
            "npy")  # fmt: skip
    long_name = tmp_path / ("é" * 200)  # 400 bytes in UTF-8
    line = _one_error(_run(*base, "--out", str(long_name)))
    assert "longer than 255 bytes" in line
    deep = tmp_path.joinpath(*(["d" * 200] * 22))  # about 4,400 bytes
    line = _one_error(_run(*base, "--out", str(deep)))
    assert "longer than" in line and "bytes" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not POSIX, reason="process groups are POSIX")
def test_ctrl_c_in_a_terminal_stops_export_cleanly(tmp_path: Path, slow: dict[str, Path]) -> None:
    """Ctrl-C in a terminal reaches every process of the group: segviewer and the child it
    runs the export in (and the parent passes its copy on). One ``cancelled``, exit 130, an
    empty folder: the second SIGINT does not interrupt the cleanup of the first."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _slow_export(slow, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(), start_new_session=True,
    )  # fmt: skip
    _wait_for_staging(out, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip() == "cancelled"
    assert not out.exists() or list(out.rglob("*")) == []
