"""Small checks shared by the readers: refuse absurd sizes before allocating."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
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
        raise SegviewerError(f"{what}: the header claims a negative size {tuple(dims)}; the file is corrupt")
    nbytes = math.prod(dims) * np.dtype(dtype).itemsize
    if nbytes > MAX_IN_MEMORY_BYTES:
        raise SegviewerError(
            f"{what}: the header claims {tuple(dims)} voxels of {np.dtype(dtype).name} "
            f"({nbytes / 1024**3:.1f} GiB), more than segviewer will load "
            f"({MAX_IN_MEMORY_BYTES / 1024**3:.0f} GiB); the file is probably corrupt "
            "(set SEGVIEWER_MAX_BYTES to raise the limit)"
        )
