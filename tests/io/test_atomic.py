"""atomic_path: complete file under the final name, or nothing at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.types import SegviewerError
from segviewer.io import atomic
from segviewer.io.atomic import atomic_path, temp_name_for


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


def test_success_renames_and_leaves_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "mask.nii.gz"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".mask.partial-") and tmp.name.endswith(".nii.gz")
        assert not final.exists()
        # nibabel chooses gzip from the suffix: the temp name must keep ".nii.gz".
        nib.save(nib.Nifti1Image(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), np.eye(4)), tmp)
    assert final.exists()
    with open(final, "rb") as fh:
        assert fh.read(2) == b"\x1f\x8b"  # gzip magic
    assert np.array_equal(np.asanyarray(nib.load(final).dataobj), np.arange(8).reshape(2, 2, 2))
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("a.png", ".png"),
        ("labels.nii", ".nii"),
        ("p.npy", ".npy"),
        ("x.nii.gz", ".nii.gz"),
        ("noext", ""),
    ],
)
def test_temp_name_keeps_suffix(tmp_path: Path, name: str, suffix: str) -> None:
    tmp = temp_name_for(tmp_path / name)
    assert tmp.name.startswith(".")
    assert tmp.name.endswith(suffix)
    assert tmp.parent == tmp_path


def test_missing_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(SegviewerError, match="does not exist; create it or choose another"),
        atomic_path(tmp_path / "nope" / "a.npy"),
    ):
        pytest.fail("must not yield")


def test_folder_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with (
        pytest.raises(SegviewerError, match="choose a writable folder"),
        atomic_path(tmp_path / "afile" / "a.npy"),
    ):
        pytest.fail("must not yield")


def test_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, which ignores chmod 0o555; simulate what os.access reports for a
    # normal user in a read-only folder.
    real_access = os.access

    def fake_access(path: str | os.PathLike[str], mode: int, **kw: object) -> bool:
        if Path(path) == tmp_path and mode & os.W_OK:
            return False
        return real_access(path, mode)

    monkeypatch.setattr(atomic.os, "access", fake_access)
    with (
        pytest.raises(SegviewerError, match="not writable; choose a writable folder"),
        atomic_path(tmp_path / "a.npy"),
    ):
        pytest.fail("must not yield")
    assert list(tmp_path.iterdir()) == []


def test_real_permission_failure_mid_write_leaves_nothing(tmp_path: Path) -> None:
    # /proc is a real read-only file system even for root: creating the temp file fails for
    # real, and the error is translated.
    with (
        pytest.raises(SegviewerError, match="cannot write|writable"),
        atomic_path(Path("/proc/segviewer_test.npy")) as tmp,
    ):
        np.save(tmp, np.zeros(3))
    assert not Path("/proc/segviewer_test.npy").exists()


def test_existing_file_needs_force(tmp_path: Path) -> None:
    final = tmp_path / "a.npy"
    final.write_bytes(b"original")
    with pytest.raises(SegviewerError, match="already exists; use --force"), atomic_path(final):
        pytest.fail("must not yield")
    assert final.read_bytes() == b"original"
    with atomic_path(final, force=True) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_writer_raising_halfway_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "a.npy"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(final) as tmp:
        tmp.write_bytes(b"half of it")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_halfway_keeps_old_file(tmp_path: Path) -> None:
    final = tmp_path / "a.npy"
    final.write_bytes(b"original")
    with pytest.raises(KeyboardInterrupt), atomic_path(final, force=True) as tmp:
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert final.read_bytes() == b"original"
    assert _leftovers(tmp_path) == []


def test_generator_close_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "a.npy"

    def writer() -> object:
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"partial")
            yield 1
            tmp.write_bytes(b"complete")

    gen = writer()
    next(gen)  # type: ignore[call-overload]
    gen.close()  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []


def test_disk_full(tmp_path: Path) -> None:
    final = tmp_path / "big.npy"
    with pytest.raises(SegviewerError, match="the disk is full"), atomic_path(final) as tmp:
        tmp.write_bytes(b"some bytes")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_writer_that_creates_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SegviewerError, match="did not create"), atomic_path(tmp_path / "a.npy"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_real_failure_mid_write_leaves_no_partial_file(tmp_path: Path) -> None:
    # A real write error half-way through a file: a file-size limit (RLIMIT_FSIZE) makes the
    # kernel fail writes past 64 KiB (root is not exempt), in a subprocess so the limit does
    # not leak into the test run. numpy reports a short write, Python's file objects EFBIG.
    import subprocess
    import sys

    code = f"""
import resource, signal
import numpy as np
from pathlib import Path
from segviewer.core.types import SegviewerError
from segviewer.io.atomic import atomic_path
from segviewer.io.writers import write_npy
folder = Path({str(tmp_path)!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
try:
    write_npy(np.ones(1_000_000, np.float32), folder / "big.npy")
except SegviewerError as exc:
    print("npy:", exc)
try:
    with atomic_path(folder / "raw.bin") as tmp:
        tmp.write_bytes(bytes(200_000))
except SegviewerError as exc:
    print("raw:", exc)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("npy:") and "stopped part-way" in lines[0]
    assert lines[1].startswith("raw:") and "file-size limit" in lines[1]
    assert list(tmp_path.iterdir()) == []
