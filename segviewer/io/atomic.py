"""Atomic file creation: a file appears complete under its final name, or not at all.

Every file segviewer writes goes through :func:`atomic_path`: the writer fills a hidden
temporary file in the destination folder and, only when it finished without error, the
temporary file is renamed over the final name (``os.replace``, atomic on one file system).
A crash, a cancel (``GeneratorExit`` / ``KeyboardInterrupt``) or a full disk leaves no
half-written mask behind that a reviewer could mistake for a result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from segviewer.core.types import SegviewerError

__all__ = ["atomic_path", "atomic_write", "check_writable_dir", "temp_name_for"]

#: Compound suffixes kept whole on the temporary name, so libraries that look at the
#: extension (nibabel: ``.nii.gz`` means gzip) write the right format.
_COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz", ".nrrd.gz", ".npy.gz")


def _split_suffix(name: str) -> tuple[str, str]:
    """Split ``name`` into (stem, suffix) keeping compound suffixes such as ``.nii.gz``."""
    lower = name.lower()
    for suffix in _COMPOUND_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    stem, dot, ext = name.rpartition(".")
    if dot and stem:
        return stem, "." + ext
    return name, ""


def temp_name_for(final_path: Path) -> Path:
    """Hidden temporary sibling of ``final_path`` with the same suffix.

    ``out/mask.nii.gz`` -> ``out/.mask.partial-1a2b3c4d.nii.gz``.
    """
    stem, suffix = _split_suffix(final_path.name)
    return final_path.with_name(f".{stem}.partial-{secrets.token_hex(4)}{suffix}")


def check_writable_dir(folder: Path) -> None:
    """Raise :class:`SegviewerError` unless ``folder`` exists, is a folder and is writable.

    Parameters
    ----------
    folder
        The destination folder of a file about to be written.
    """
    if not folder.exists():
        raise SegviewerError(
            f"the output folder {folder} does not exist; create it or choose another"
        )
    if not folder.is_dir():
        raise SegviewerError(
            f"the output path {folder} is a file, not a folder; choose a writable folder"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SegviewerError(
            f"the output folder {folder} is not writable; choose a writable folder"
        )


def _translate_oserror(exc: OSError, final_path: Path) -> SegviewerError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return SegviewerError(
            f"the disk is full while writing {final_path}; free some space or choose another "
            "folder (nothing was left half-written)"
        )
    if exc.errno == errno.EFBIG:
        return SegviewerError(
            f"{final_path} is larger than this file system or the file-size limit allows; "
            "choose another folder (nothing was left half-written)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return SegviewerError(
            f"cannot write {final_path} ({exc.strerror}); choose a writable folder"
        )
    if exc.errno is None and "written" in str(exc):
        # numpy's short-write error carries no errno: the disk or a size limit ran out.
        return SegviewerError(
            f"writing {final_path} stopped part-way ({exc}); the disk is probably full: free "
            "some space or choose another folder (nothing was left half-written)"
        )
    return SegviewerError(f"cannot write {final_path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``final_path`` when the block succeeds.

    Parameters
    ----------
    final_path
        Where the finished file must appear. Its folder must already exist.
    force
        Replace an existing file at ``final_path``. Without it an existing file is an error
        and is left untouched.

    Yields
    ------
    pathlib.Path
        A hidden path in the same folder (``.name.partial-XXXXXXXX.suffix``, same suffix as
        ``final_path``) that does not exist yet; the caller creates the file there.

    Raises
    ------
    SegviewerError
        Missing or read-only folder, existing file without ``force``, full disk, or any
        other operating-system error while writing or renaming. On any exception (including
        ``KeyboardInterrupt`` and ``GeneratorExit``) the temporary file is removed.
    """
    final = Path(final_path)
    check_writable_dir(final.parent)
    if final.is_dir():
        raise SegviewerError(f"{final} is a folder; choose another file name")
    if final.exists() and not force:
        raise SegviewerError(f"{final} already exists; use --force to overwrite it")
    tmp = temp_name_for(final)
    try:
        yield tmp
        if not tmp.exists():
            raise SegviewerError(f"internal: the writer did not create {final}")
        os.replace(tmp, final)
    except OSError as exc:
        _remove_quietly(tmp)
        raise _translate_oserror(exc, final) from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


#: The name docs/design.md first used; same function.
atomic_write = atomic_path


def _remove_quietly(path: Path) -> None:
    # Cleanup must never mask the original exception.
    with contextlib.suppress(OSError):
        path.unlink()
