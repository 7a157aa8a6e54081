"""The test-set side panel and what connects it to the window's controller.

:class:`TestSetPanel` stacks the case table, the review-note bar and the slice table of the
open case (all passive). :class:`TestSetDriver` connects them with a
:class:`~segviewer.ui.testset_session.TestSetSession` and the window's controller (a
``ui.controller.ViewerController``: ``state``, ``runner``, ``open_files``, ``labels_ready``,
``report`` / ``report_error``):

* opening a case (double-click, Enter, Ctrl+N / Ctrl+P through :meth:`TestSetDriver.step`)
  asks the controller to open its image, prediction, class table and reference; the view,
  zoom, class visibility and display live in the state and the canvases and are not
  touched, so they carry over to the next case;
* once the labels (and the comparison with the reference, when the case has one) are in the
  state, the case is measured in a job (per class and per slice along the shown view's slice
  axis), its second prediction, if any, loaded and compared in another;
* the case opens at its worst slice for the case table's class: at once from an evaluation
  (``--evaluation``), else when the measurement arrives;
* a click in the slice table goes to that slice (the state's cursor), a verdict or comment
  is saved to the notes sidecar and shows in the case table.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from segviewer.core import orientation
from segviewer.core.types import SegviewerError
from segviewer.ui.case_table import CaseTable
from segviewer.ui.note_panel import NotePanel
from segviewer.ui.slice_table import SliceTable
from segviewer.ui.testset_session import LoadedTestSet, Measured, PairResult, TestSetSession
from segviewer.ui.workers import Job

__all__ = ["TestSetPanel", "TestSetDriver"]


class TestSetPanel(QWidget):
    """Case table over note bar over slice table."""

    __test__ = False

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("testSetPanel")
        self.title = QLabel("No test set open (File > Open test set…)")
        self.title.setWordWrap(True)
        self.case_table = CaseTable()
        self.notes = NotePanel()
        self.slice_table = SliceTable()
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.case_table)
        lower = QWidget()
        lay2 = QVBoxLayout(lower)
        lay2.setContentsMargins(0, 0, 0, 0)
        lay2.addWidget(self.notes)
        lay2.addWidget(self.slice_table, 1)
        split.addWidget(lower)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        self.splitter = split
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(split, 1)


class TestSetDriver(QObject):
    """Connects the panel, the session and the controller (see the module docstring).

    Signals
    -------
    opened(object)
        A test set (:class:`~segviewer.ui.testset_session.LoadedTestSet`) is shown.
    """

    __test__ = False

    opened = Signal(object)

    def __init__(self, controller: Any, panel: TestSetPanel, parent: QObject | None = None):
        super().__init__(parent)
        self.controller = controller
        self.state = controller.state
        self.panel = panel
        self.session = TestSetSession(controller.runner, self)
        # where the open case should show first: (image axis, slice)
        self._pending: tuple[int, int] | None = None
        self._measured_for: tuple[str, int] | None = None  # (case, slice axis) measured
        self._pair_for: str | None = None
        # what the state showed before the open case's files were asked for: measuring waits
        # until each has been replaced (cases often share an image or a prediction file)
        self._stale: tuple[Any, Any, Any] = (None, None, None)
        s, p = self.session, panel
        s.rows_changed.connect(self._refresh_cases)
        s.measured.connect(self._on_measured)
        s.pair_ready.connect(self._on_pair)
        s.failed.connect(lambda text: self.controller.report(text, error=True))
        p.case_table.case_activated.connect(self.open_case)
        p.case_table.class_changed.connect(self._case_class_changed)
        p.slice_table.slice_activated.connect(self.go_to_slice)
        p.slice_table.class_changed.connect(lambda _c: self._refresh_slices())
        p.notes.note_edited.connect(self._note_edited)
        p.notes.scope_changed.connect(lambda _s: self._show_note())
        controller.labels_ready.connect(lambda _r: self._maybe_measure())
        self.state.changed.connect(self._state_changed)

    # -- opening -------------------------------------------------------------------------
    def open_test_set(
        self,
        source: str | os.PathLike[str],
        *,
        evaluation: str | os.PathLike[str] | None = None,
        open_first: bool = True,
    ) -> Job:
        """Read a test set (CSV, folder or glob) and, optionally, an ``evaluate`` folder in a
        worker; then show it and open the first case of the table. Bad input is reported
        (the test set shown stays)."""
        from segviewer.ui.testset_session import load_test_set_job

        def done(loaded: LoadedTestSet) -> None:
            self.show_test_set(loaded, open_first=open_first)

        return self.controller.runner.start(
            "testset-open",
            load_test_set_job,
            source,
            evaluation,
            label=f"Reading the test set {os.path.basename(os.fspath(source).rstrip('/'))}",
            on_result=done,
            on_error=self.controller.report_error,
        )

    def show_test_set(self, loaded: LoadedTestSet, *, open_first: bool = True) -> None:
        """Show a test set read in a worker (:meth:`open_test_set`)."""
        self.session.apply(loaded)
        cases = loaded.cases
        p = self.panel
        n = len(cases)
        extra = ", two predictions per case" if cases.has_prediction_b else ""
        ev = f", evaluation {loaded.evaluation}" if loaded.evaluation is not None else ""
        p.title.setText(f"Test set {cases.source}: {n} case{'s' if n != 1 else ''}{extra}{ev}")
        self._refresh_cases()
        self.opened.emit(loaded)
        if open_first:
            first = p.case_table.neighbour(None, 1)
            if first is not None:
                self.open_case(first)

    def open_case(self, case_id: str) -> None:
        """Open a case's files in the window (the view and display settings stay)."""
        try:
            case = self.session.set_current(case_id)
        except SegviewerError as exc:
            self.controller.report_error(exc)
            return
        self._measured_for = None
        self._pair_for = None
        st = self.state
        self._stale = (st.volume, st.prediction, st.reference)
        if case.reference is None and st.reference is not None:
            self.controller.set_reference(None)  # the previous case's reference
        self._pending = self.session.worst_position(case_id)
        self.panel.case_table.select_case(case_id)
        self.panel.slice_table.set_slice_rows([])
        self._show_note()
        self.controller.open_files(
            case.image,
            case.prediction,
            case.classes,
            reference=case.reference,
        )

    def step(self, step: int) -> str | None:
        """Open the next (1) or previous (-1) case in the case table's order (Ctrl+N /
        Ctrl+P); None at either end."""
        target = self.panel.case_table.neighbour(self.session.current, step)
        if target is None:
            where = "last" if step > 0 else "first"
            self.controller.report(f"This is the {where} case of the table", seconds=4)
            return None
        self.open_case(target)
        return target

    # -- the open case -------------------------------------------------------------------
    def slice_axis(self) -> int:
        """Image axis of the shown view's slices (the axial view's in the three-view)."""
        st = self.state
        view = getattr(st, "layout", "axial")
        if view not in orientation.VIEWS:
            view = "axial"
        return orientation.display_axes(st.volume.affine, view).slice_axis

    def go_to_slice(self, index: int, axis: int | None = None) -> None:
        """Show slice ``index`` along ``axis`` (default :meth:`slice_axis`, the view's):
        the cursor moves there."""
        st = self.state
        if st.volume is None:
            return
        ijk = list(st.cursor)
        ijk[self.slice_axis() if axis is None else axis] = int(index)
        st.set_cursor((ijk[0], ijk[1], ijk[2]))
        if self.panel.notes.scope() == "slice":
            self._show_note()

    def _state_changed(self, what: Any) -> None:
        name = getattr(what, "name", str(what))
        if name == "REFERENCE":
            self._maybe_measure()
        elif name == "LAYOUT" and self.session.current is not None:
            self._measured_for = None  # another slice axis: measure again
            self._maybe_measure()
        elif name == "CURSOR" and self.panel.notes.scope() == "slice":
            self._show_note()

    def _maybe_measure(self) -> None:
        """Measure the open case once its labels, and its reference if it has one, are in
        the state (each arrives from its own job, in either order)."""
        s, st = self.session, self.state
        if s.current is None or st.volume is None or st.label_result is None:
            return
        case = s.case(s.current)
        old_volume, old_prediction, old_reference = self._stale
        if st.volume is old_volume or st.prediction is old_prediction:
            return  # the previous case's image or prediction is still shown
        if case.reference is not None and (st.reference is None or st.reference is old_reference):
            return  # the reference is still loading
        axis = self.slice_axis()
        if self._measured_for == (case.id, axis):
            return
        self._measured_for = (case.id, axis)
        names = list(st.table.names) if st.table is not None else []
        labels = st.label_result.labels
        s.measure(
            labels,
            st.reference,
            st.n_classes(),
            st.volume.spacing,
            axis,
            st.prediction,
            names,
        )
        if self._pair_for != case.id and case.prediction_b is not None:
            self._pair_for = case.id
            s.load_prediction_b(
                st.volume.shape,
                st.volume.affine,
                st.mask_settings,
                labels,
                st.reference,
                st.n_classes(),
                st.volume.spacing,
                axis,
            )
        if self._pending is not None:
            self.go_to_slice(self._pending[1], self._pending[0])

    def _on_measured(self, m: Measured) -> None:
        if m.case_id != self.session.current:
            return
        p = self.panel
        p.slice_table.set_classes(list(m.class_names), self._class_index())
        self._refresh_slices()
        if self._pending is None:
            worst = self.session.worst_position(m.case_id)
            if worst is not None:
                self._pending = worst
                self.go_to_slice(worst[1], worst[0])

    def _on_pair(self, result: PairResult) -> None:
        if result.case_id == self.session.current:
            self.controller.report(
                f"Second prediction compared: mean Dice A vs B "
                f"{result.pair.a_vs_b.mean_dice():.3f}",
                seconds=10,
            )

    def _class_index(self) -> int | None:
        """The case table's class as an index of the open case's table (None: unknown)."""
        name = self.session.class_name
        m = self.session.last
        if name is None or m is None:
            return None
        names = [n.lower() for n in m.class_names]
        return names.index(name.lower()) if name.lower() in names else None

    # -- tables --------------------------------------------------------------------------
    def _refresh_cases(self) -> None:
        s, t = self.session, self.panel.case_table
        t.set_classes(s.class_names(), s.class_name)
        rows = s.case_rows()
        t.set_rows(rows, s.case_columns(rows))
        if s.current is not None:
            t.select_case(s.current)

    def _case_class_changed(self, name: str) -> None:
        self.session.set_class(name)
        idx = self._class_index()
        if idx is not None and self.session.last is not None:
            self.panel.slice_table.set_classes(list(self.session.last.class_names), idx)
            self._refresh_slices()

    def _refresh_slices(self) -> None:
        rows = self.session.slice_rows(self.panel.slice_table.current_class())
        self.panel.slice_table.set_slice_rows(rows)

    # -- notes ---------------------------------------------------------------------------
    def _note_target(self) -> tuple[int | None, int | None]:
        if self.panel.notes.scope() == "case" or self.state.volume is None:
            return None, None
        axis = self.slice_axis()
        return axis, int(self.state.cursor[axis])

    def _show_note(self) -> None:
        s = self.session
        if s.current is None:
            self.panel.notes.show_note(None)
            return
        axis, index = self._note_target()
        self.panel.notes.show_note(s.notes.get(s.current, axis, index))

    def _note_edited(self, scope: str, verdict: str, comment: str) -> None:
        s = self.session
        if s.current is None:
            self.controller.report("Open a case of a test set first", error=True)
            return
        axis, index = self._note_target()
        try:
            s.set_note(s.current, axis=axis, slice_index=index, verdict=verdict, comment=comment)
        except SegviewerError as exc:
            self.controller.report_error(exc)
            return
        self._show_note()
        if scope == "slice":
            self._refresh_slices()
