"""Small helpers shared by the io modules: size/input checks, file endings, warnings, JSON."""

from __future__ import annotations

import json
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


#: Most a deflate stream (gzip, zip) can expand: 1032 bytes out per byte in (zlib's limit),
#: plus room for headers. A header claiming more than this from the compressed size lies.
MAX_DEFLATE_RATIO = 1032


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux ``MemAvailable``), else None."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_alloc(shape: Sequence[int], dtype: Any, what: str) -> None:
    """Raise :class:`SegviewerError` if ``shape`` x ``dtype`` is negative or absurdly large.

    Called with the size a header *claims* before any data is read, so a corrupt or hostile
    header cannot make segviewer allocate terabytes: the size must be under
    ``SEGVIEWER_MAX_BYTES`` (default 16 GiB) and under the memory the system has available.
    """
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise SegviewerError(
            f"{what}: the header claims a negative size {tuple(dims)}; the file is corrupt"
        )
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    avail = available_memory() if nbytes > 256 * 1024**2 else None
    if avail is not None and nbytes > avail and nbytes <= MAX_IN_MEMORY_BYTES:
        raise SegviewerError(
            f"{what}: the image needs {nbytes / 1024**3:.1f} GiB of memory "
            f"({tuple(dims)} voxels of {np.dtype(dtype).name}) but only "
            f"{avail / 1024**3:.1f} GiB are available; close other programs or crop the image"
        )
    if nbytes > MAX_IN_MEMORY_BYTES:
        raise SegviewerError(
            f"{what}: the header claims {tuple(dims)} voxels of {np.dtype(dtype).name} "
            f"({nbytes / 1024**3:.1f} GiB), more than segviewer will load "
            f"({MAX_IN_MEMORY_BYTES / 1024**3:.0f} GiB); the file is probably corrupt "
            "(set SEGVIEWER_MAX_BYTES to raise the limit)"
        )


def check_claim(
    claimed: int, stored: int, what: str, *, compressed: bool, shape: Sequence[int] = ()
) -> None:
    """Raise if a header claims more data bytes than the file can hold.

    Parameters
    ----------
    claimed
        Data bytes the header claims (shape x item size).
    stored
        Bytes of the file that hold the data (compressed size for gzip/zip data).
    what
        How messages name the file.
    compressed
        ``stored`` is deflate-compressed: it can expand :data:`MAX_DEFLATE_RATIO` times.
    shape
        The claimed shape, for the message.
    """
    claim = f"claims {tuple(int(d) for d in shape)} " if len(shape) else "claims "
    if compressed:
        most = stored * MAX_DEFLATE_RATIO + 65536
        if claimed > most:
            raise SegviewerError(
                f"{what}: the header {claim}({claimed / 1024**2:.0f} MiB of data) but "
                f"{stored} compressed bytes cannot hold more than {most / 1024**2:.0f} MiB; "
                "the file is truncated or its header is corrupt"
            )
    elif claimed > stored:
        raise SegviewerError(
            f"{what}: the header {claim}({claimed} bytes of data) but the file holds {stored}; "
            "it is truncated or its header is corrupt"
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


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` in a JSON text (strings skipped; nothing parsed)."""
    bare = _JSON_STRING.sub('""', text).encode("utf-8", "replace")
    codes = np.frombuffer(bare, dtype=np.uint8)
    if codes.size == 0:
        return 0
    step = (np.isin(codes, (91, 123))).astype(np.int64) - np.isin(codes, (93, 125))
    return int(max(0, np.cumsum(step).max()))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number segviewer accepts here")


def load_json(text: str | bytes, what: str, *, max_depth: int = 200, finite: bool = False) -> Any:
    """``json.loads`` for files a user hands segviewer: hostile input gives one clear error.

    Parameters
    ----------
    text
        The JSON text.
    what
        How messages name it, e.g. ``"model card m.json"``.
    max_depth
        Deepest nesting accepted: a document of 100,000 nested brackets is refused before
        parsing (``json`` would recurse until ``RecursionError``, or hang a worker thread).
    finite
        Refuse ``NaN`` / ``Infinity`` (not JSON, but Python's json accepts them).

    Raises
    ------
    SegviewerError
        Invalid JSON, too deep, a non-finite constant with ``finite``, or a number of
        thousands of digits (over Python's integer-string limit).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if json_depth(text) > max_depth:
        raise SegviewerError(
            f"{what}: the JSON is nested more than {max_depth} levels deep; the file is "
            "corrupt or not what segviewer expects"
        )
    try:
        if finite:
            return json.loads(text, parse_constant=_refuse_constant)
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SegviewerError(
            f"{what}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise SegviewerError(
            f"{what}: the JSON holds a value segviewer cannot accept ({str(exc)[:80]}); the "
            "file is corrupt"
        ) from exc


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
