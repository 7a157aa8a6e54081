"""Fixtures for the window tests: isolated settings, the demo loaded into a MainWindow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import demo_prediction, many_class_case, wait_idle


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own QSettings file (never the user's)."""
    monkeypatch.setenv("SEGVIEWER_SETTINGS", str(tmp_path / "settings.ini"))


@pytest.fixture
def window(qtbot: Any) -> Iterator[Any]:
    """An empty MainWindow, shown (offscreen), closed after the test."""
    from segviewer.ui.main_window import MainWindow

    win = MainWindow()
    win.resize(1100, 760)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.runner.wait_all(5000)


@pytest.fixture
def demo_window(window: Any, qtbot: Any, demo_dir: Path) -> Any:
    """The window with the demo T1, its tissue probabilities and class table loaded."""
    from segviewer.io.classtables import load_class_table

    window.open_image(demo_dir / "t1.nii.gz")
    wait_idle(qtbot, window)
    assert window.state.volume is not None
    window.set_class_table(load_class_table(demo_dir / "classes.json"))
    with qtbot.waitSignal(window.labels_ready, timeout=30_000):
        window.set_prediction(demo_prediction(demo_dir, window.state.volume.shape))
    wait_idle(qtbot, window)
    return window


@pytest.fixture
def many_window(demo_window: Any, qtbot: Any) -> Any:
    """The demo window showing a 114-class atlas-like label map (``many_class_case``)."""
    win = demo_window
    pred, table = many_class_case(win.label_result.labels)
    with qtbot.waitSignal(win.labels_ready, timeout=30_000):
        win.set_prediction(pred, table=table)
    wait_idle(qtbot, win)
    assert win.state.n_classes() == 114
    return win
