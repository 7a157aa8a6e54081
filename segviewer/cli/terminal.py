"""What the ``segviewer`` command shows on the terminal: the progress bar, tables of numbers,
one-line errors and warnings, and the guard that turns errors into exit statuses.

Exit status: 0 success, 2 a problem the user can fix (one line ``segviewer: error: ...`` on
stderr), 130 cancelled with Ctrl-C (nothing half-written is left behind).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from segviewer.core.progress import run_to_end
from segviewer.core.types import Progress, SegviewerError

if TYPE_CHECKING:
    from segviewer.core.compare import Comparison

__all__ = [
    "ProgressBar",
    "comparison_table",
    "drive",
    "err",
    "fail",
    "guarded",
    "handle_termination",
    "library_noise",
    "survive_sigbus",
    "stop_on_termination",
    "Terminated",
    "one_line",
    "parse",
    "ratio_text",
    "termination_signals",
    "warn",
]

T = TypeVar("T")

#: The one exit status for a problem the user can fix (argparse uses it too).
EXIT_USAGE = 2
EXIT_CANCELLED = 130


def err(text: str) -> None:
    """One line on stderr, flushed at once."""
    print(text, file=sys.stderr, flush=True)


def one_line(text: str) -> str:
    """``text`` with every run of white space (newlines too) as one space."""
    return " ".join(text.split())


def fail(message: str) -> int:
    """Print ``segviewer: error: MESSAGE`` (one line) and return the exit status 2."""
    err(f"segviewer: error: {one_line(message)}")
    return EXIT_USAGE


def warn(message: str) -> None:
    """Print ``segviewer: warning: MESSAGE`` (one line)."""
    err(f"segviewer: warning: {one_line(message)}")


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C (a KeyboardInterrupt, so every cleanup
    that handles Ctrl-C -- atomic writes, the export's staging folder -- handles it too)."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.name = name


@contextlib.contextmanager
def stop_on_termination() -> Iterator[None]:
    """While active, SIGTERM, SIGHUP (POSIX) and SIGBREAK (Windows) raise :class:`Terminated`
    in the main thread.

    ``timeout``, ``docker stop``, ``kill`` and closing the terminal send them; by default
    they kill Python at once, leaving an export half done. Built on
    :func:`handle_termination`, the one place segviewer sets signal handlers: signals the
    platform lacks, and every signal outside the main thread, are left as they are.
    """

    def handler(num: int, _frame: FrameType | None) -> None:
        try:
            name = signal.Signals(num).name
        except ValueError:
            name = f"signal {num}"
        # one is enough: a second (closing a terminal sends SIGHUP to every process of it)
        # must not interrupt the cleanup the first one started
        for sig in termination_signals():
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                signal.signal(sig, signal.SIG_IGN)
        raise Terminated(num, name)

    with handle_termination(handler):
        yield


def survive_sigbus(func: Callable[[], int], out_dir: str | None) -> int:
    """Run ``func`` (a whole export) in a child process, so that SIGBUS ends it with one line.

    Reading a memory-mapped input that another program truncates raises SIGBUS, which no
    Python code can catch: the process dies at once. The export checks the sizes of its
    mapped inputs between blocks, but blocks read in parallel can still fault. Here the
    parent only waits: if the child dies of SIGBUS, it removes the child's staging folder in
    ``out_dir`` and prints one ``segviewer: error:`` line (exit 2). Ctrl-C and termination
    signals sent to the parent are passed on (the child acts on the first of each). Runs ``func`` in this process where forking is not
    possible or not safe (Windows, other threads running, output captured in-process).
    """
    if (
        not hasattr(os, "fork")
        or not hasattr(signal, "SIGBUS")
        or threading.active_count() > 1
        or sys.stdout is not sys.__stdout__
        or sys.stderr is not sys.__stderr__
    ):
        return func()
    _flush_std()
    parent = os.getpid()
    pid = os.fork()  # portable: only after the hasattr(os, 'fork') return above
    if pid == 0:  # the child does the work, with every handler of a normal run
        rc = 70
        try:
            _die_with_parent(parent)
            signal.signal(signal.SIGINT, _interrupt_once)
            rc = func()
        finally:
            with contextlib.suppress(BaseException):
                _flush_std()
            os._exit(rc)

    def pass_on(num: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, num)

    old_int = signal.signal(signal.SIGINT, pass_on)
    try:
        with handle_termination(pass_on):
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
    finally:
        signal.signal(signal.SIGINT, old_int)
    if os.WIFSIGNALED(status):
        num = os.WTERMSIG(status)
        if num == signal.SIGBUS:  # portable: POSIX only (checked on entry)
            if out_dir:
                import shutil
                from pathlib import Path

                for d in Path(out_dir).expanduser().glob(f".segviewer-staging-{pid}-*"):
                    shutil.rmtree(d, ignore_errors=True)
            return fail(
                "an input file shrank while it was being read (SIGBUS: another program "
                "truncated or replaced a memory-mapped file); the export was stopped and "
                "nothing was written; run it again when the file is complete"
            )
        err(f"segviewer: stopped by {signal.Signals(num).name}")
        return 128 + num
    return os.waitstatus_to_exitcode(status)


def _interrupt_once(_num: int, _frame: FrameType | None) -> None:
    """Ctrl-C in the export's child: a terminal sends it to the child and the parent, which
    passes it on; the second must not interrupt the cleanup the first started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _die_with_parent(parent: int) -> None:
    """Linux: get SIGKILL when the parent dies (``kill -9`` of segviewer stops the export too)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        # PR_SET_PDEATHSIG; portable: Linux only (returned above elsewhere)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # portable: Linux only
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(128 + int(signal.SIGKILL))  # portable: Linux only (returned above elsewhere)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


@contextlib.contextmanager
def library_noise(verbose: bool) -> Iterator[None]:
    """Keep the libraries' own warnings and log lines off the terminal unless ``verbose``.

    nibabel, pydicom, tifffile and TensorFlow report through ``warnings``, ``logging`` and
    (TensorFlow's C++ core) ``TF_CPP_MIN_LOG_LEVEL``; what the user must know, the readers
    already turn into segviewer's own ``warning:`` lines and notes.
    """
    import logging
    import warnings

    if verbose:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def guarded(func: Callable[[], int], *, verbose: bool = False) -> int:
    """Turn the errors a user can act on into one line and an exit status.

    SIGTERM / SIGHUP stop the command like Ctrl-C (exit 143 / 129, one line); library
    warnings and logs are hidden unless ``verbose``.
    """
    try:
        with stop_on_termination(), library_noise(verbose):
            return func()
    except SegviewerError as exc:
        return fail(str(exc))
    except Terminated as exc:
        err(f"segviewer: stopped by {exc.name}; nothing half-written was left behind")
        return 128 + exc.signum
    except KeyboardInterrupt:
        err("\ncancelled")
        return EXIT_CANCELLED
    except MemoryError:
        return fail(
            "not enough memory for this file; close other programs, or crop or downsample the image"
        )
    except RecursionError:
        return fail("the input is nested too deeply to read; the file is corrupt")
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    """argparse exits on errors and --help; in-process callers get the status instead."""
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)


# ----------------------------------------------------------------------------------------
# termination signals (the one place that sets them up)

#: Signals that ask a command to stop, by name: SIGTERM (``kill``, ``timeout``, ``docker
#: stop``), SIGHUP (the terminal closed; POSIX only) and SIGBREAK (Ctrl+Break; Windows only).
#: Ctrl-C (SIGINT) is Python's own KeyboardInterrupt and is not changed here.
TERMINATION_SIGNALS = ("SIGTERM", "SIGHUP", "SIGBREAK")


def termination_signals(module: Any = signal) -> list[signal.Signals]:
    """The termination signals this platform has (Windows has no SIGHUP, POSIX no SIGBREAK)."""
    found = (getattr(module, name, None) for name in TERMINATION_SIGNALS)
    return [s for s in found if s is not None]


@contextlib.contextmanager
def handle_termination(
    handler: Callable[[int, FrameType | None], Any], module: Any = signal
) -> Iterator[list[signal.Signals]]:
    """Install ``handler`` for every termination signal this platform has, and restore the
    previous handlers afterwards. Yields the signals handled.

    Portable by construction: signals the platform lacks are skipped (no ``signal.SIGHUP``
    on Windows), and outside the main thread, where Python cannot set handlers, nothing is
    installed and the list is empty.
    """
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in termination_signals(module):
            try:
                previous[sig] = module.signal(sig, handler)
            except (OSError, ValueError, RuntimeError):
                continue  # a signal this process may not handle: leave the default
        yield list(previous)
    finally:
        for sig, old in previous.items():
            with contextlib.suppress(OSError, ValueError, RuntimeError, TypeError):
                module.signal(sig, old)


# ----------------------------------------------------------------------------------------
# progress


class ProgressBar:
    """One ``\\r`` line on stderr with percent, ETA and the current step (TTYs only)."""

    def __init__(self, stream: TextIO, enabled: bool, label: str = "") -> None:
        self.stream = stream
        self.enabled = enabled
        self.label = label
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.width = 0

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        frac = p.fraction
        if now - self.last_draw < 0.1 and frac < 1.0:
            return  # at most 10 redraws a second
        self.last_draw = now
        elapsed = now - self.start
        eta = "--:--" if frac <= 0.01 else _clock(elapsed * (1 - frac) / frac)
        cols = _terminal_columns()
        bar_w = 24 if cols >= 80 else 8  # keep percent and ETA visible on narrow terminals
        filled = int(bar_w * frac)
        msg = p.message or self.label
        line = f"[{'#' * filled}{'.' * (bar_w - filled)}] {frac * 100:5.1f}%  ETA {eta}  {msg}"
        line = line[: cols - 1]
        pad = max(0, self.width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.width = len(line)

    def finish(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _terminal_columns() -> int:
    try:
        return max(40, os.get_terminal_size(sys.stderr.fileno()).columns)
    except (OSError, ValueError):
        return 100


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def drive(gen: Generator[Progress, None, T], bar: ProgressBar) -> T:
    """Run a progress generator; on Ctrl-C or error it is closed (``run_to_end``), so
    atomic writers and the export roll back at once."""
    try:
        return run_to_end(gen, bar)
    finally:
        bar.finish()


# ----------------------------------------------------------------------------------------
# tables


def ratio_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def comparison_table(comparison: Comparison, names: dict[int, str]) -> str:
    """Per-class agreement as aligned text columns, then the overall accuracy."""
    head = ("class", "dice", "jaccard", "sensitivity", "precision", "pred ml", "ref ml", "diff %")
    rows = []
    many = len(comparison.per_class) > 64  # a stray label: list the classes that occur
    for c in comparison.per_class:
        if many and c.absent_in_both:
            continue
        diff = c.volume_diff_percent
        rows.append(
            (
                f"{c.index} {names.get(c.index, f'class {c.index}')}",
                ratio_text(c.dice),
                ratio_text(c.jaccard),
                ratio_text(c.sensitivity),
                ratio_text(c.precision),
                f"{c.volume_pred_mm3 / 1000:.2f}",
                f"{c.volume_ref_mm3 / 1000:.2f}",
                "n/a" if math.isnan(diff) else f"{diff:+.1f}",
            )
            + (("(absent in both)",) if c.absent_in_both else ())
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = []
    for r in [head, *rows]:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(head))]
        lines.append("  ".join(cells + list(r[len(head) :])).rstrip())
    mean = comparison.mean_dice()
    lines.append(
        f"accuracy {ratio_text(comparison.accuracy)} over {comparison.n_voxels} voxels"
        + (f" ({comparison.n_ignored} reference voxels left out)" if comparison.n_ignored else "")
        + (f"; mean foreground Dice {mean:.4f}" if not math.isnan(mean) else "")
    )
    return "\n".join(lines)
