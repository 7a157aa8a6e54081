"""The window serves slices from the whole-volume maps once they exist: labels, heatmaps and
grey levels are lookups (core.slicesource), and the pixels are those of the per-slice path."""

from __future__ import annotations

from typing import Any

import numpy as np
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
