"""Test-set review in the main window: docks, the Test set menu and its shortcuts.

:class:`TestSetFeature` adds to a ``MainWindow`` (anything with a ``controller``, a menu bar
and docks):

* a **Test set** dock (left): :class:`~segviewer.ui.testset_panel.TestSetPanel` (case table,
  note bar, slice table) driven by a :class:`~segviewer.ui.testset_panel.TestSetDriver`;
* a **Two predictions** dock (bottom): :class:`~segviewer.ui.compare_view.CompareView`
  bound to the state by a :class:`~segviewer.ui.compare_driver.CompareDriver`, shown when a
  case's ``prediction_b`` (or File > Open second prediction) has been compared;
* File > Open test set…, Open evaluation…, Open second prediction…; a Test set menu with
  Next case (**Ctrl+N**) and Previous case (**Ctrl+P**, the SlicerCaseIterator keys; while
  a test set is open, Ctrl+P leaves File > Open prediction, which keeps its menu entry),
  and the verdict keys of the note bar.

Both docks start hidden; nothing changes for a window that never opens a test set.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMenu

from segviewer.core.types import SegviewerError
from segviewer.ui.compare_driver import CompareDriver
from segviewer.ui.compare_view import CompareView
from segviewer.ui.testset_panel import TestSetDriver, TestSetPanel
from segviewer.ui.testset_session import PairResult, evaluated_test_set

__all__ = ["TestSetFeature", "TEST_SET_FILTER"]

TEST_SET_FILTER = "Test sets (*.csv *.tsv);;All files (*)"


class TestSetFeature(QObject):
    """See the module docstring. ``window`` is the ``MainWindow``."""

    __test__ = False

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.controller = window.controller
        self.panel = TestSetPanel()
        self.driver = TestSetDriver(self.controller, self.panel, self)
        self.session = self.driver.session
        self.compare_view = CompareView()
        self.compare = CompareDriver(self.controller, self.compare_view, self)
        self.session.pair_ready.connect(self._pair_ready)
        # an export of the open case records its review notes in the manifest
        self.controller.review_notes_provider = self._notes_for_export

        self.dock = QDockWidget("Test set", window)
        self.dock.setObjectName("testset_dock")
        self.dock.setWidget(self.panel)
        self.panel.setMinimumWidth(430)
        window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)
        self.dock.hide()
        self.compare_dock = QDockWidget("Two predictions", window)
        self.compare_dock.setObjectName("compare_dock")
        self.compare_dock.setWidget(self.compare_view)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.compare_dock)
        self.compare_dock.hide()
        self._build_actions()
        self.driver.opened.connect(self._opened)

    def _notes_for_export(self) -> list[dict[str, Any]]:
        case = self.session.current
        if case is None:
            return []
        return [n.as_dict() for n in self.session.notes.for_case(case) if not n.is_empty]

    # -- menus ---------------------------------------------------------------------------
    def _action(self, text: str, slot: Any, shortcut: str | None = None) -> QAction:
        act = QAction(text, self.window)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _=False: slot())
        return act

    def _build_actions(self) -> None:
        w = self.window
        mb = w.menuBar()
        file_menu = next(
            (a.menu() for a in mb.actions() if a.menu() and a.text().replace("&", "") == "File"),
            None,
        )
        self.open_action = self._action("Open &test set…", self._ask_open_test_set, "Ctrl+Shift+T")
        self.open_eval_action = self._action("Open e&valuation…", self._ask_open_evaluation)
        self.open_b_action = self._action("Open &second prediction…", self._ask_open_b)
        if isinstance(file_menu, QMenu):
            # after the Open ... block: before the first separator (or at the end)
            sep = next((a for a in file_menu.actions() if a.isSeparator()), None)
            for act in (self.open_action, self.open_eval_action, self.open_b_action):
                if sep is not None:
                    file_menu.insertAction(sep, act)
                else:
                    file_menu.addAction(act)
        menu = QMenu("&Test set", w)
        self.menu = menu
        self.next_action = self._action("&Next case", lambda: self.step(1), "Ctrl+N")
        self.prev_action = self._action("&Previous case", lambda: self.step(-1))
        menu.addAction(self.next_action)
        menu.addAction(self.prev_action)
        menu.addSeparator()
        self.verdict_actions: dict[str, QAction] = {}
        for verdict, key in (
            ("accept", "Ctrl+Shift+A"),
            ("reject", "Ctrl+Shift+R"),
            ("unsure", "Ctrl+Shift+U"),
        ):
            act = self._action(
                f"Mark {verdict}", lambda v=verdict: self.panel.notes.buttons[v].click(), key
            )
            menu.addAction(act)
            self.verdict_actions[verdict] = act
        menu.addSeparator()
        self.show_action = QAction("Show test-set panel", w)
        self.show_action.setCheckable(True)
        self.show_action.toggled.connect(self.dock.setVisible)
        self.dock.visibilityChanged.connect(self.show_action.setChecked)
        menu.addAction(self.show_action)
        self.show_compare_action = QAction("Show two predictions", w)
        self.show_compare_action.setCheckable(True)
        self.show_compare_action.toggled.connect(self.compare_dock.setVisible)
        self.compare_dock.visibilityChanged.connect(self.show_compare_action.setChecked)
        menu.addAction(self.show_compare_action)
        help_action = next(
            (a for a in mb.actions() if a.menu() and a.text().replace("&", "") == "Help"), None
        )
        if help_action is not None:
            mb.insertMenu(help_action, menu)
        else:
            mb.addMenu(menu)
        for act in (self.next_action, self.prev_action, *self.verdict_actions.values()):
            act.setEnabled(False)

    def _opened(self, _loaded: object) -> None:
        self.dock.show()
        self._enable()

    def _enable(self) -> None:
        """A test set is open: navigation and verdict keys work; Ctrl+P goes to Previous
        case (File > Open prediction keeps its menu entry without the shortcut)."""
        for act in (self.next_action, self.prev_action, *self.verdict_actions.values()):
            act.setEnabled(True)
        open_pred = getattr(self.window, "open_prediction_action", None)
        if isinstance(open_pred, QAction):
            open_pred.setShortcut(QKeySequence())
        self.prev_action.setShortcut(QKeySequence("Ctrl+P"))

    # -- dialogs -------------------------------------------------------------------------
    def _ask_open_test_set(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open test set", "", TEST_SET_FILTER)
        if path:
            self.open_test_set(path)

    def _ask_open_evaluation(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open evaluation (--out folder)")
        if folder:
            self.open_test_set(None, evaluation=folder)

    def _ask_open_b(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open second prediction")
        if path:
            self.open_prediction_b(path)

    # -- actions -------------------------------------------------------------------------
    def open_test_set(
        self,
        source: str | os.PathLike[str] | None,
        *,
        evaluation: str | os.PathLike[str] | None = None,
    ) -> bool:
        """Open a test set (and an evaluation of it) in a worker; with only ``evaluation``,
        the test set its ``summary.json`` names. False (reported) when that names none; a
        bad test set is reported when the worker finds it."""
        if source is None:
            if evaluation is None:
                return False
            try:
                source = evaluated_test_set(evaluation)
            except SegviewerError as exc:
                self.controller.report_error(exc)
                return False
        self.driver.open_test_set(source, evaluation=evaluation)
        return True

    def step(self, step: int) -> str | None:
        """Next (1) / previous (-1) case of the case table (Ctrl+N / Ctrl+P)."""
        if self.session.cases is None:
            return None
        return self.driver.step(step)

    def open_prediction_b(self, path: str | os.PathLike[str]) -> bool:
        """Compare a second prediction of the shown image with the first."""
        ok = self.compare.open_prediction_b(path)
        if ok:
            self.compare_dock.show()
        return ok

    def _pair_ready(self, result: PairResult) -> None:
        if result.case_id != self.session.current:
            return
        case = self.session.case(result.case_id)
        names = (
            case.prediction.name if case.prediction is not None else "A",
            case.prediction_b.name if case.prediction_b is not None else "B",
        )
        self.compare.show_pair(result, names=(f"A: {names[0]}", f"B: {names[1]}"))
        self.compare_dock.show()
        QTimer.singleShot(0, self.compare_view.reset_zoom)  # once the dock has its size
