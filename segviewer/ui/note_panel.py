"""Review-note bar: accept / reject / unsure and a comment, for the open case or its slice.

A passive widget: it shows the note it is given (:meth:`NotePanel.show_note`) and sends
``note_edited(scope, verdict, comment)`` when the reviewer clicks a verdict or presses Enter
in the comment box; the test-set session saves it (``io.notes``, atomically) and the case
table shows it. Clicking the checked verdict again clears it. Keys while the panel has the
focus: none beyond Enter; the window binds its own shortcuts.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segviewer.io.notes import VERDICTS, Note

__all__ = ["NotePanel", "SCOPES"]

#: What a note is about: the whole case or the slice on screen.
SCOPES = ("case", "slice")


class NotePanel(QWidget):
    """Verdict buttons and a comment box (see the module docstring).

    Signals
    -------
    note_edited(str, str, str)
        ``(scope, verdict, comment)``: scope is ``"case"`` or ``"slice"``, verdict one of
        ``io.notes.VERDICTS`` or ``""``.
    scope_changed(str)
        The reviewer switched between case and slice notes.
    """

    note_edited = Signal(str, str, str)
    scope_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notePanel")
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(["This case", "This slice"])
        self.scope_combo.setToolTip("Whether the note is on the whole case or the shown slice")
        self.scope_combo.activated.connect(lambda _i: self.scope_changed.emit(self.scope()))
        self.buttons: dict[str, QPushButton] = {}
        self.group = QButtonGroup(self)
        self.group.setExclusive(False)
        for v in VERDICTS:
            b = QPushButton(v.capitalize())
            b.setCheckable(True)
            b.setObjectName(f"verdict_{v}")
            b.clicked.connect(lambda checked, v=v: self._verdict_clicked(v, checked))
            self.group.addButton(b)
            self.buttons[v] = b
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment (Enter saves)")
        self.comment.returnPressed.connect(self._emit)
        self.saved = QLabel()
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Note:"))
        top.addWidget(self.scope_combo)
        for b in self.buttons.values():
            top.addWidget(b)
        top.addStretch(1)
        top.addWidget(self.saved)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addWidget(self.comment)

    def scope(self) -> str:
        return SCOPES[max(0, self.scope_combo.currentIndex())]

    def set_scope(self, scope: str) -> None:
        self.scope_combo.setCurrentIndex(SCOPES.index(scope))

    def verdict(self) -> str:
        for v, b in self.buttons.items():
            if b.isChecked():
                return v
        return ""

    def show_note(self, note: Note | None) -> None:
        """Show a note (None: empty) without sending ``note_edited``."""
        verdict = note.verdict if note else ""
        for v, b in self.buttons.items():
            b.setChecked(v == verdict)
        self.comment.setText(note.comment if note else "")
        # "2026-12-01T20:45:12Z" -> "saved 20:45 UTC" (the full time is the tooltip)
        when = note.updated if note else ""
        self.saved.setText(f"saved {when[11:16]} UTC" if len(when) >= 16 else "")
        self.saved.setToolTip(when)

    def _verdict_clicked(self, verdict: str, checked: bool) -> None:
        for v, b in self.buttons.items():
            if v != verdict:
                b.setChecked(False)
        self.buttons[verdict].setChecked(checked)
        self._emit()

    def _emit(self) -> None:
        self.note_edited.emit(self.scope(), self.verdict(), self.comment.text())
