"""Binds a :class:`~segviewer.ui.compare_view.CompareView` to the window's state.

The side-by-side view shows the state's prediction (A: ``state.label_result``) and a second
prediction of the same image (B), with the state's class table, its one set of class
visibility flags, opacity, window/level, view and cursor: a class toggled in the class panel
is toggled in both panes, the slice and crosshair follow the state's cursor, and a wheel
step or a click in either pane moves the state's cursor (so the main canvases follow too).

B comes from a test-set case's ``prediction_b`` (``ui.testset_session.pair_job``) or from
File > Open second prediction (:meth:`CompareDriver.open_prediction_b`, the same job).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PySide6.QtCore import QObject

from segviewer.core import orientation
from segviewer.core.types import SegviewerError
from segviewer.ui.compare_view import CompareView
from segviewer.ui.testset_session import PairResult, pair_job

__all__ = ["CompareDriver"]


class CompareDriver(QObject):
    """See the module docstring. ``controller`` is the window's ``ViewerController``."""

    def __init__(self, controller: Any, view: CompareView, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self.state = controller.state
        self.view = view
        self.result: PairResult | None = None
        self._labels_a: np.ndarray | None = None
        self.state.changed.connect(self._state_changed)
        view.slice_changed.connect(self._view_slice)
        view.clicked.connect(self._view_clicked)

    # -- B -------------------------------------------------------------------------------
    def open_prediction_b(self, path: str | os.PathLike[str], name: str | None = None) -> bool:
        """Load a second prediction of the shown image in a job, label it with the same
        settings, compare it with the first and the reference; the view shows it when done.
        False (reported) when there is no labelled first prediction yet."""
        st = self.state
        if st.volume is None or st.label_result is None or st.table is None:
            self.controller.report(
                "Open an image and its first prediction before a second one", error=True
            )
            return False
        axis = orientation.display_axes(st.volume.affine, self._view_name()).slice_axis
        self.controller.runner.start(
            "compare-b",
            pair_job,
            "",
            os.fspath(path),
            st.volume.shape,
            st.volume.affine,
            st.mask_settings,
            st.label_result.labels,
            st.reference,
            st.n_classes(),
            st.volume.spacing,
            axis,
            label=f"Comparing with {os.path.basename(os.fspath(path))}",
            on_result=lambda r: self.show_pair(
                r, names=("A", name or os.path.basename(os.fspath(path)))
            ),
            on_error=self.controller.report_error,
        )
        return True

    def show_pair(self, result: PairResult, *, names: tuple[str, str] = ("A", "B")) -> None:
        """Show a labelled and compared second prediction next to the state's."""
        st = self.state
        if st.volume is None or st.label_result is None or st.table is None:
            return
        if result.labels_b.shape != st.volume.shape:
            self.controller.report_error(
                SegviewerError("the second prediction is not on the shown image's grid")
            )
            return
        self.result = result
        self._labels_a = st.label_result.labels
        v = self.view
        v.set_appearance(st.table, st.visible, st.opacity, (st.level, st.width))
        v.set_axes(orientation.display_axes(st.volume.affine, self._view_name(), st.radiological))
        v.set_data(st.volume, self._labels_a, result.labels_b, st.reference, names=names)
        v.set_pair_comparison(result.pair)
        self._follow_cursor()

    def clear(self) -> None:
        self.result = None
        self._labels_a = None

    # -- following the state -----------------------------------------------------------------
    def _view_name(self) -> str:
        view = getattr(self.state, "layout", "axial")
        return view if view in orientation.VIEWS else "axial"

    def _state_changed(self, what: Any) -> None:
        if self.result is None:
            return
        st = self.state
        name = getattr(what, "name", str(what))
        if name in ("DATA", "LABEL_RESULT"):
            if st.label_result is None or st.label_result.labels is not self._labels_a:
                self.clear()  # another image or prediction: B no longer belongs to it
            return
        if name in ("LUT", "WINDOW", "DISPLAY") and st.table is not None:
            self.view.set_appearance(st.table, st.visible, st.opacity, (st.level, st.width))
        elif name in ("LAYOUT", "ORIENTATION") and st.volume is not None:
            self.view.set_axes(
                orientation.display_axes(st.volume.affine, self._view_name(), st.radiological)
            )
            self._follow_cursor()
        elif name == "CURSOR":
            self._follow_cursor()
        elif name == "REFERENCE":
            pass  # the comparison of B was made with the reference it was opened with

    def _follow_cursor(self) -> None:
        st = self.state
        if st.volume is None or self.view.n_slices() == 0:
            return
        axes = orientation.display_axes(st.volume.affine, self._view_name(), st.radiological)
        self.view.set_slice(int(st.cursor[axes.slice_axis]))
        self.view.set_cursor(st.cursor)

    def _view_slice(self, index: int) -> None:
        st = self.state
        if st.volume is None:
            return
        axis = orientation.display_axes(st.volume.affine, self._view_name()).slice_axis
        if int(st.cursor[axis]) != index:
            ijk = list(st.cursor)
            ijk[axis] = index
            st.set_cursor((ijk[0], ijk[1], ijk[2]))

    def _view_clicked(self, ijk: tuple[int, int, int]) -> None:
        self.state.set_cursor(tuple(int(v) for v in ijk))
