"""Shared helpers of the benchmarks: timing with medians and a plain-text table."""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Row:
    """One benchmark line.

    ``ratio`` is ``median_ms / baseline's median`` (a time multiple: 2.0x = twice as slow as
    the baseline, 0.25x = four times faster).
    """

    group: str
    name: str
    median_ms: float
    baseline: str = ""
    ratio: float | None = None


def median_ms(fn: Callable[[], object], repeat: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeat`` runs after ``warmup``."""
    for _ in range(warmup):
        fn()
    gc.collect()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def drop_from_page_cache(path: Path) -> bool:
    """Ask the kernel to forget a file's cached pages (a 'cold' read without root)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def format_table(rows: list[Row]) -> str:
    """Rows as an aligned text table."""
    head = ("group", "benchmark", "median ms", "baseline", "time / baseline")
    body = [
        (
            r.group,
            r.name,
            f"{r.median_ms:.2f}",
            r.baseline,
            "" if r.ratio is None else f"{r.ratio:.2f}x",
        )
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(b, widths, strict=True)).rstrip() for b in body
    ]
    return "\n".join(lines)
