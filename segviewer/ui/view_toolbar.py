"""The View toolbar: plane or three views, grey window preset, frame of a 4-D image, zoom
reset and the convention; bound both ways to the ViewerState."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox, QToolBar, QWidget
from superqt.utils import signals_blocked

from segviewer.core import orientation
from segviewer.ui.jobs import CUSTOM_PRESET, SCANNER_PRESET, WINDOW_PRESETS
from segviewer.ui.state import Change, ViewerState

__all__ = ["CONVENTION_TEXT", "UNKNOWN_TEXT", "ViewToolbar"]

#: What the convention label says for radiological / neurological views.
CONVENTION_TEXT = {
    True: "  Radiological: patient right on screen left ",
    False: "  Neurological: patient left on screen left ",
}
#: What it says instead when the image carries no patient orientation (no claim at all).
UNKNOWN_TEXT = "  Orientation unknown: no patient directions in the file "


class ViewToolbar(QToolBar):
    """Toolbar of the window (its actions also go into the View menu).

    Signals
    -------
    frame_chosen(int)
        The user picked another volume of a 4-D image (the controller re-reads it).
    reset_zoom_requested()
        Reset zoom (Ctrl+0).
    """

    frame_chosen = Signal(int)
    reset_zoom_requested = Signal()

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__("View", parent)
        self.state = state
        self.setObjectName("view_toolbar")
        self.setMovable(False)
        group = QActionGroup(self)
        group.setExclusionPolicy(QActionGroup.ExclusionPolicy.ExclusiveOptional)
        self.view_actions: dict[str, QAction] = {}
        for i, v in enumerate(orientation.VIEWS):
            act = QAction(v.capitalize(), self)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            act.setToolTip(f"{v.capitalize()} view (Ctrl+{i + 1})")
            act.triggered.connect(lambda _=False, view=v: state.set_layout(view))
            group.addAction(act)
            self.addAction(act)
            self.view_actions[v] = act
        self.three_action = QAction("Three views", self)
        self.three_action.setCheckable(True)
        self.three_action.setShortcut(QKeySequence("Ctrl+4"))
        self.three_action.setToolTip("Axial, coronal and sagittal side by side, linked (Ctrl+4)")
        self.three_action.triggered.connect(self._three_chosen)
        self.addAction(self.three_action)
        self.addSeparator()
        self.addWidget(QLabel(" Window "))
        self.window_combo = QComboBox()
        self.window_combo.setToolTip(
            "Grey-level window; right-drag on the image to adjust. DICOM images offer the "
            "scanner's own window (WindowCenter/WindowWidth)"
        )
        self.window_combo.activated.connect(self._preset_chosen)
        self.addWidget(self.window_combo)
        # 4-D images (fMRI, diffusion, multi-echo): which volume is shown. Hidden otherwise.
        self.frame_spin = QSpinBox()
        self.frame_spin.setKeyboardTracking(False)
        self.frame_spin.setToolTip("Volume (frame) of a 4-D image, 0-based; the file is re-read")
        self.frame_spin.valueChanged.connect(self.frame_chosen)
        self.frame_actions = (self.addWidget(QLabel(" Volume ")), self.addWidget(self.frame_spin))
        self.reset_zoom_action = QAction("Reset zoom", self)
        self.reset_zoom_action.setShortcut(QKeySequence("Ctrl+0"))
        self.reset_zoom_action.triggered.connect(self.reset_zoom_requested)
        self.addAction(self.reset_zoom_action)
        self.addSeparator()
        self.convention_label = QLabel(CONVENTION_TEXT[True])
        self.convention_label.setStyleSheet("color: #ffd75e;")
        self.addWidget(self.convention_label)
        self.radiological_action = QAction("Radiological convention (R on left)", self)
        self.radiological_action.setCheckable(True)
        self.radiological_action.toggled.connect(state.set_radiological)
        state.changed.connect(self._state_changed)
        for what in (Change.LAYOUT, Change.ORIENTATION, Change.DATA):
            self._state_changed(what)

    # -- user -> state ---------------------------------------------------------------------
    def _three_chosen(self, on: bool) -> None:
        current = self.state.layout
        self.state.set_layout("three" if on else (current if current != "three" else "axial"))

    def _preset_chosen(self, index: int) -> None:
        name = self.window_combo.itemText(index)
        if name in self.state.window_presets:
            self.state.set_window_preset(name)

    # -- state -> widgets ------------------------------------------------------------------
    def _state_changed(self, what: Change) -> None:
        st = self.state
        if what is Change.LAYOUT:
            for v, act in self.view_actions.items():
                act.setChecked(v == st.layout)
            self.three_action.setChecked(st.layout == "three")
        elif what is Change.ORIENTATION:
            with signals_blocked(self.radiological_action):
                self.radiological_action.setChecked(st.radiological)
            self._show_convention()
        elif what in (Change.WINDOW, Change.DATA):
            if what is Change.DATA:
                self._show_frames()
                self._show_convention()
            self._show_presets()

    def _show_convention(self) -> None:
        """The convention, or "orientation unknown" (and no toggle) for images without it."""
        st = self.state
        known = st.volume is None or orientation.orientation_known(st.volume)
        self.convention_label.setText(CONVENTION_TEXT[st.radiological] if known else UNKNOWN_TEXT)
        self.radiological_action.setEnabled(known)

    def _show_frames(self) -> None:
        st = self.state
        vol = st.volume
        n_frames = int(vol.metadata.get("n_frames", 1) or 1) if vol is not None else 1
        with signals_blocked(self.frame_spin):
            self.frame_spin.setRange(0, max(0, n_frames - 1))
            self.frame_spin.setSuffix(f" / {n_frames - 1}")
            self.frame_spin.setValue(int(vol.metadata.get("frame", 0) or 0) if vol else 0)
        for act in self.frame_actions:
            act.setVisible(n_frames > 1 and st.image_path is not None)

    def _show_presets(self) -> None:
        st = self.state
        names = [p for p in WINDOW_PRESETS if p in st.window_presets] + [CUSTOM_PRESET]
        if not st.window_presets:
            names = [p for p in WINDOW_PRESETS if p != SCANNER_PRESET]
        combo = self.window_combo
        with signals_blocked(combo):
            if [combo.itemText(i) for i in range(combo.count())] != names:
                combo.clear()
                combo.addItems(names)
            if st.window_preset:
                combo.setCurrentText(st.window_preset)
