"""The window serves slices from the whole-volume maps once they exist: labels, heatmaps and
grey levels are lookups (core.slicesource), and the pixels are those of the per-slice path."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest
from ui_helpers import wait_idle

from segviewer.core import masks, orientation, overlay


def test_labels_heatmap_and_grey_are_looked_up_after_the_background_work(
    demo_window: Any, qtbot: Any
) -> None:
    win = demo_window
    st, c = win.state, win.canvas
    assert st.label_result is not None and st.slices is not None and st.slices.has_labels
    # the shown labels are a view of the whole-volume map, equal to the slice computed alone
    shown = c._labels_slice()
    assert np.shares_memory(shown, st.label_result.labels)
    alone = masks.slice_labels(st.prediction, c.axes, c.index, st.mask_settings)
    np.testing.assert_array_equal(shown, alone)
    # the grey levels too, once the image is windowed whole for the shown window
    assert st.greys is not None and st.greys.has_window(st.level, st.width)
    grey = st.greys.grey(c.axes, c.index, st.level, st.width)
    sl = orientation.take_slice(st.volume.data, c.axes, c.index)
    np.testing.assert_array_equal(grey, overlay.window_to_uint8(sl, st.level, st.width))
    labels_frame = c.frame().copy()

    # entropy: shown at once from the slice, then the whole-volume map arrives
    win.display_combo.setCurrentIndex(3)
    assert st.display == "entropy"
    first = c.frame().copy()
    wait_idle(qtbot, win)
    assert st.slices.has_stat("entropy")
    values = c._stat_slice()
    vol = st.slices._stats[("entropy", None, True)]
    assert np.shares_memory(values, vol)
    alone = masks.slice_stat(st.prediction, c.axes, c.index, "entropy", normalised=True)
    np.testing.assert_array_equal(values, alone)
    c.step_slice(1)
    c.step_slice(-1)
    np.testing.assert_array_equal(c.frame(), first)  # same pixels from the map
    win.display_combo.setCurrentIndex(0)
    np.testing.assert_array_equal(c.frame(), labels_frame)

    # new mask settings: the map made with the old ones is dropped at once
    st.set_min_confidence(0.9)
    assert not st.slices.has_labels
    with_unc = c._labels_slice()
    assert (with_unc == 254).any()
    wait_idle(qtbot, win)
    assert st.slices.has_labels
    np.testing.assert_array_equal(c._labels_slice(), with_unc)


def test_the_window_prepares_the_compiled_labels_kernel_and_uses_it(
    demo_window: Any, qtbot: Any, monkeypatch: Any
) -> None:
    from segviewer.core import kernels
    from segviewer.core.progress import run_to_end

    if not kernels.available():
        pytest.skip("numba is not installed")
    win = demo_window
    st = win.state
    pred = st.prediction
    n = pred.n_classes
    # after the first label map (numpy), the window makes the kernel ready in the background
    # (the demo's probabilities are a Fortran-ordered NIfTI: class planes contiguous)
    qtbot.waitUntil(lambda: kernels.ready(n, False) or kernels.ready(n, True), timeout=60_000)
    wait_idle(qtbot, win)
    # the collector was paused while numba loaded (no long pause of the window) and runs
    # again; nothing was frozen (that would pin the open case's objects)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    used: list[bool] = []
    real = kernels.argmax_into

    def spy(*args: Any) -> int | None:
        n = real(*args)
        used.append(n is not None)
        return n

    monkeypatch.setattr(kernels, "argmax_into", spy)
    before = st.label_result.labels.copy()
    st.set_min_confidence(0.9)  # the numpy path (needs the soft maximum)
    wait_idle(qtbot, win)
    assert (st.label_result.labels == 254).any()
    st.set_min_confidence(0.0)  # back: the compiled kernel makes the label map
    wait_idle(qtbot, win)
    assert any(used)
    np.testing.assert_array_equal(st.label_result.labels, before)
    with kernels.suspended():
        numpy_labels = run_to_end(masks.iter_labels(pred, st.mask_settings)).labels
    np.testing.assert_array_equal(st.label_result.labels, numpy_labels)
    np.testing.assert_array_equal(
        win.canvas._labels_slice(),
        masks.slice_labels(pred, win.canvas.axes, win.canvas.index, st.mask_settings),
    )


def test_the_kernels_load_only_in_a_quiet_moment(demo_window: Any, qtbot: Any) -> None:
    """numba's first load pauses the event loop briefly, so the window loads the kernels
    only when no job runs and nobody has touched mouse or keyboard for a moment: while the
    user scrolls, nothing is loaded."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from segviewer.core import kernels
    from segviewer.core.layout import detect_layout
    from segviewer.core.types import Prediction, PredictionKind
    from segviewer.ui.controller import KERNEL_IDLE_MS

    if not kernels.available():
        pytest.skip("numba is not installed")
    win = demo_window
    st = win.state
    probs = np.ascontiguousarray(np.asarray(st.prediction.data), dtype=np.float32)
    logits = np.log(np.clip(probs, 1e-6, None))  # C-ordered channels-last logits: new kernel
    pred = Prediction(
        logits, PredictionKind.LOGITS, detect_layout(logits.shape, st.volume.shape), 3
    )
    with kernels.suspended():
        with qtbot.waitSignal(win.labels_ready, timeout=30_000):
            win.set_prediction(pred)
        wait_idle(qtbot, win)
        assert win.controller._kernel_pending is pred
        win.canvas.setFocus()
        for _ in range(int(2.5 * KERNEL_IDLE_MS / 300)):  # the user keeps scrolling
            QTest.keyClick(win.canvas, Qt.Key.Key_Up)
            qtbot.wait(300)
            assert not kernels.ready(3, True)
        assert win.controller._kernel_pending is pred
        qtbot.waitUntil(lambda: kernels.ready(3, True), timeout=60_000)  # then, quiet
        wait_idle(qtbot, win)
        assert win.controller._kernel_pending is None
        assert not win.controller._watching_input  # the input watch is removed again
