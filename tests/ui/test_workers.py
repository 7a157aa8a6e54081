"""JobRunner: results, progress, cancel, stale results, errors, a responsive event loop."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

from PySide6.QtCore import QTimer

from segviewer.core.types import Progress, SegviewerError
from segviewer.ui.workers import JobRunner


def _count_to(n: int, gate: threading.Event | None = None) -> Generator[Progress, None, int]:
    total = 0
    for i in range(n):
        if gate is not None:
            gate.wait(5)
        total += i
        yield Progress(i + 1, n, f"step {i + 1}")
    return total


def _slow_forever(
    started: threading.Event, stop: threading.Event
) -> Generator[Progress, None, str]:
    started.set()
    i = 0
    while not stop.is_set():
        i += 1
        stop.wait(0.002)
        yield Progress(i, 0, "working")
    return "should not be delivered"


def test_generator_job_returns_result_and_reports_progress(qtbot: Any) -> None:
    runner = JobRunner()
    results: list[int] = []
    seen: list[int] = []
    runner.progress.connect(lambda job: seen.append(job.progress.done) if job.progress else None)
    with qtbot.waitSignal(
        runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=10_000
    ):
        runner.start("sum", _count_to, 50, on_result=results.append)
    assert results == [sum(range(50))]
    assert seen and max(seen) <= 50
    assert runner.is_idle()


def test_cancel_stops_a_long_generator_and_drops_its_result(qtbot: Any) -> None:
    runner = JobRunner()
    started, stop = threading.Event(), threading.Event()
    results: list[str] = []
    job = runner.start("long", _slow_forever, started, stop, on_result=results.append)
    assert job.cancellable
    qtbot.waitUntil(started.is_set, timeout=5000)
    assert not runner.is_idle()
    assert runner.cancel("long")
    # The worker stops at its next yield although `stop` is never set.
    qtbot.waitUntil(runner.is_idle, timeout=5000)
    assert results == []
    assert not stop.is_set()


def test_stale_result_of_a_superseded_job_is_dropped(qtbot: Any) -> None:
    runner = JobRunner()
    gate = threading.Event()
    got: list[str] = []

    def slow_plain() -> str:  # a plain function cannot be cancelled: it runs to the end
        gate.wait(10)
        return "old"

    runner.start("image", slow_plain, on_result=got.append)
    runner.start("image", lambda: "new", on_result=got.append)
    qtbot.waitUntil(lambda: got == ["new"], timeout=5000)
    gate.set()
    qtbot.waitUntil(runner.is_idle, timeout=5000)
    assert got == ["new"]
    assert runner.generation("image") == 2


def test_event_loop_keeps_ticking_while_a_job_runs(qtbot: Any) -> None:
    runner = JobRunner()
    gate = threading.Event()
    ticks = [0]
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))
    timer.start()
    done: list[int] = []
    runner.start("busy", _count_to, 3, gate, on_result=done.append)
    qtbot.waitUntil(lambda: ticks[0] >= 10, timeout=5000)  # the GUI thread is free
    assert done == []  # ... while the job is still blocked
    gate.set()
    qtbot.waitUntil(lambda: done == [3], timeout=5000)
    timer.stop()


def test_errors_reach_on_error_and_never_raise_in_the_gui_thread(qtbot: Any) -> None:
    runner = JobRunner()
    errors: list[BaseException] = []

    def fails() -> Generator[Progress, None, None]:
        yield Progress(0, 1)
        raise SegviewerError("broken.nii: not a NIfTI file; check the file")

    runner.start("x", fails, on_error=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert isinstance(errors[0], SegviewerError)
    assert "broken.nii" in str(errors[0])
    qtbot.waitUntil(runner.is_idle, timeout=5000)
