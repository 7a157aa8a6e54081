"""Driving the progress-yielding generators that all long work is written as."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

from segviewer.core.types import Progress

T = TypeVar("T")


def run_to_end(
    gen: Generator[Progress, None, T], on_progress: Callable[[Progress], None] | None = None
) -> T:
    """Run a progress generator to completion and return its result.

    Parameters
    ----------
    gen
        A generator that yields :class:`Progress` and returns a value.
    on_progress
        Called with each progress report (e.g. a terminal progress bar); optional. What it
        raises (a cancel, Ctrl-C) ends the run.

    The generator is closed however the run ends, so its cleanup (``finally``: partial
    files, temporary folders) runs at once, not when it is garbage-collected.
    """
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            if on_progress is not None:
                on_progress(p)
    finally:
        gen.close()
