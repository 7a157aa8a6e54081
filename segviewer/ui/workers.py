"""Background jobs for the window: superqt workers with generations, progress and cancel.

Every long task (loading a file, the whole-volume mask, an export) runs through
:class:`JobRunner`. A job belongs to a *channel* ("image", "prediction", "labels",
"export", ...); starting a job on a channel cancels the one running there and bumps the
channel's generation, and a result or error that arrives from an older generation is
dropped, so a slow stale job can never overwrite a newer one (ndv's ``_request_data`` idea).

Workers never touch widgets: they yield :class:`~segviewer.core.types.Progress` and return a
value; the callbacks given to :meth:`JobRunner.start` run in the GUI thread (superqt's
signals are queued to the thread that created the worker).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from PySide6.QtCore import QObject, Qt, Signal
from superqt.utils import GeneratorWorker, WorkerBase, create_worker

from segviewer.core.types import Progress

__all__ = ["Job", "JobRunner"]

R = TypeVar("R")


@dataclass(eq=False)
class Job:
    """One running job: its channel, generation, user-facing label and worker."""

    channel: str
    generation: int
    label: str
    worker: WorkerBase[Any]
    progress: Progress | None = None
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cancellable(self) -> bool:
        """Generator jobs stop at their next ``yield``; plain functions cannot be stopped."""
        return isinstance(self.worker, GeneratorWorker)


class JobRunner(QObject):
    """Runs callables or progress generators on the thread pool, one live job per channel.

    Signals
    -------
    progress(object)
        A :class:`Job` whose progress changed (or that started).
    job_finished(object)
        A :class:`Job` ended (returned, failed or was cancelled).
    busy_changed(bool)
        True when the first job starts, False when the last one ends.
    """

    progress = Signal(object)
    job_finished = Signal(object)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation: dict[str, int] = {}
        self._jobs: dict[str, Job] = {}
        # Superseded workers keep running until their next yield; we count them so that
        # "idle" means no thread of ours is still working (tests and --screenshot wait on it).
        self._live: set[WorkerBase[Any]] = set()

    # -- queries ---------------------------------------------------------------------------
    def generation(self, channel: str) -> int:
        """The current generation of ``channel`` (0 before any job)."""
        return self._generation.get(channel, 0)

    def jobs(self) -> list[Job]:
        """The current (newest) job of each busy channel."""
        return list(self._jobs.values())

    def is_idle(self) -> bool:
        """True when no worker started by this runner is still running."""
        return not self._live

    # -- control ---------------------------------------------------------------------------
    @overload
    def start(
        self,
        channel: str,
        func: Callable[..., Generator[Any, Any, R]],
        *args: Any,
        label: str = "",
        on_result: Callable[[R], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> Job: ...

    @overload
    def start(
        self,
        channel: str,
        func: Callable[..., R],
        *args: Any,
        label: str = "",
        on_result: Callable[[R], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> Job: ...

    def start(
        self,
        channel: str,
        func: Callable[..., Any],
        *args: Any,
        label: str = "",
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        **kwargs: Any,
    ) -> Job:
        """Run ``func(*args, **kwargs)`` in a worker thread on ``channel``.

        Parameters
        ----------
        channel
            Jobs on one channel supersede each other: the previous one is cancelled and its
            result, if it still arrives, is dropped.
        func
            A plain function, or a generator function yielding :class:`Progress` (cancelled
            cooperatively at its next yield).
        label
            What the status bar shows while it runs, e.g. ``"Loading t1.nii.gz"``.
        on_result, on_error
            Called in the GUI thread with the return value / the exception, only if the job
            is still the newest on its channel and was not cancelled. ``on_result`` is typed
            by ``func``: the return type of a plain function, the return value type of a
            generator (``Generator[Progress, None, R]``), as superqt's ``create_worker`` is.
        """
        self.cancel(channel)
        gen = self._generation.get(channel, 0) + 1
        self._generation[channel] = gen
        is_generator = inspect.isgeneratorfunction(func)
        running: list[Generator[Any, Any, Any]] = []
        if is_generator:
            # superqt stops a cancelled generator at its next yield but never closes it, so
            # its cleanup (``finally``: an export's staging folder, partial files) would wait
            # for the garbage collector. Keep a handle and close it in the worker thread, at
            # the moment the worker gives up (``aborted`` is emitted there, between yields).
            def body(*a: Any, **k: Any) -> Generator[Any, Any, Any]:
                inner = func(*a, **k)
                running.append(inner)
                return (yield from inner)

            worker = create_worker(body, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        else:
            worker = create_worker(func, *args, _start_thread=False, _ignore_errors=True, **kwargs)
        job = Job(channel=channel, generation=gen, label=label or channel, worker=worker)

        def current() -> bool:
            return self._generation.get(channel) == gen and not job.cancelled

        def yielded(value: object) -> None:
            if current() and isinstance(value, Progress):
                job.progress = value
                self.progress.emit(job)

        def returned(value: object) -> None:
            if current() and on_result is not None:
                on_result(value)

        def errored(exc: BaseException) -> None:
            if current() and on_error is not None:
                on_error(exc)

        def finished() -> None:
            was_busy = bool(self._live)
            self._live.discard(worker)
            if self._jobs.get(channel) is job:
                del self._jobs[channel]
            if not job.cancelled:  # cancel() already reported it
                self.job_finished.emit(job)
            if was_busy and not self._live:
                self.busy_changed.emit(False)

        def close_generator() -> None:
            for inner in running:
                # runs the generator's cleanup now, in this worker thread; a cleanup that
                # fails must not take the thread down (the job is cancelled anyway)
                with contextlib.suppress(Exception):
                    inner.close()

        if is_generator:
            worker.yielded.connect(yielded)
            worker.aborted.connect(close_generator, Qt.ConnectionType.DirectConnection)
        worker.returned.connect(returned)
        # Always connected: superqt would otherwise re-raise the exception in the GUI thread.
        worker.errored.connect(errored)
        worker.finished.connect(finished)
        self._jobs[channel] = job
        was_idle = not self._live
        self._live.add(worker)
        if was_idle:
            self.busy_changed.emit(True)
        self.progress.emit(job)
        worker.start()
        return job

    def cancel(self, channel: str) -> bool:
        """Cancel the job on ``channel``; returns whether there was one to cancel."""
        job = self._jobs.pop(channel, None)
        if job is None:
            return False
        job.cancelled = True
        job.worker.quit()
        self.job_finished.emit(job)
        return True

    def cancel_all(self) -> None:
        """Cancel every channel's job (closing the window, opening a new image)."""
        for channel in list(self._jobs):
            self.cancel(channel)

    def wait_all(self, msecs: int = 10_000) -> None:
        """Ask all workers to stop and block until their threads end (window close)."""
        self.cancel_all()
        from PySide6.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(msecs)
