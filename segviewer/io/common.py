"""Small helpers shared by the io modules: size/input checks, file endings, warnings, JSON."""

from __future__ import annotations

import math
import os
import re
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import SegviewerError

#: Largest array a reader will allocate in memory (memory-mapped files are not limited).
MAX_IN_MEMORY_BYTES = int(os.environ.get("SEGVIEWER_MAX_BYTES", 16 * 1024**3))


def check_alloc(shape: Sequence[int], dtype: Any, what: str) -> None:
    """Raise :class:`SegviewerError` if ``shape`` x ``dtype`` is negative or absurdly large.

    Called with the size a header *claims* before any data is read, so a corrupt or hostile
    header cannot make segviewer allocate terabytes.
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise SegviewerError(
            f"{what}: the header claims a negative size {tuple(dims)}; the file is corrupt"
        )
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    if nbytes > MAX_IN_MEMORY_BYTES:
        raise SegviewerError(
            f"{what}: the header claims {tuple(dims)} voxels of {np.dtype(dtype).name} "
            f"({nbytes / 1024**3:.1f} GiB), more than segviewer will load "
            f"({MAX_IN_MEMORY_BYTES / 1024**3:.0f} GiB); the file is probably corrupt "
            "(set SEGVIEWER_MAX_BYTES to raise the limit)"
        )


#: File-name endings the image readers understand, for "unsupported format" messages.
SUPPORTED_IMAGE_FORMATS = (
    "NIfTI (.nii, .nii.gz, .hdr/.img pairs), DICOM (a file or a folder of one series), NRRD (.nrrd, .nhdr), "
    "PNG, JPEG, TIFF (.png, .jpg, .jpeg, .tif, .tiff; a folder of 2-D images is a stack), "
    "NumPy (.npy, .npz)"
)

_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders embedded numbers by value: ``slice2`` before ``slice10``.

    Case-insensitive for the text parts; each part is tagged so numbers and text never get
    compared with each other.
    """
    parts: list[tuple[int, int | str]] = []
    for i, part in enumerate(_DIGITS.split(name)):
        if i % 2:
            parts.append((0, int(part)))
        elif part:
            parts.append((1, part.casefold()))
    return tuple(parts)


def check_input_file(path: Path) -> None:
    """Raise :class:`SegviewerError` if ``path`` is missing, unreadable or an empty file.

    Folders pass (the caller decides what a folder means).
    """
    if not path.exists():
        raise SegviewerError(f"{path}: no such file or folder; check the path and spelling")
    if path.is_dir():
        if not os.access(path, os.R_OK | os.X_OK):
            raise SegviewerError(f"{path}: the folder cannot be read; check its permissions")
        return
    if not os.access(path, os.R_OK):
        raise SegviewerError(f"{path}: the file cannot be read; check its permissions")
    if path.stat().st_size == 0:
        raise SegviewerError(
            f"{path}: the file is empty (0 bytes); it was probably not fully copied"
        )


def compound_suffix(path: Path) -> str:
    """Lower-case file ending including ``.gz``: ``"scan.NII.gz"`` -> ``".nii.gz"``."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] == ".gz":
        return suffixes[-2] + ".gz"
    return suffixes[-1] if suffixes else ""


_WARNINGS_LOCK = threading.RLock()


@contextmanager
def record_warnings(sink: list[str]) -> Iterator[None]:
    """Collect library warnings (odd headers, bad VRs) as one-line texts in ``sink``.

    The readers put them in ``Volume.metadata["warnings"]`` where the window and
    ``segviewer info`` show them, instead of letting them go to the console.
    """
    # warnings.catch_warnings swaps process-wide state; two readers interleaving their
    # enter/exit on worker threads could leave the warning hook pointing at a dead list.
    # The re-entrant lock serialises our readers (nested use in one thread is fine).
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        yield
    for w in got:
        text = str(w.message).strip()
        msg = text.splitlines()[0] if text else type(w.message).__name__
        if msg not in sink:
            sink.append(msg)


def jsonable(value: Any) -> Any:
    """``value`` made JSON-serialisable with ``allow_nan=False``, recursively.

    Mappings become dicts with string keys, tuples/lists/arrays become lists, numpy scalars
    Python numbers, non-finite floats ``None`` (strict JSON has no NaN/inf), paths strings;
    anything else unknown is written as its ``str``.
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
