"""The Overlay box: opacity, fill/outline and width, what to show, threshold, minimum
confidence, legend and crosshair; every widget bound both ways to the ViewerState.

A widget's change goes to the state's setter; every state change (from this box, a key, a
script, a dialog) comes back through :meth:`OverlayControls.sync`, which sets the widgets
inside ``superqt.utils.signals_blocked`` so the write-back never loops. Ranges come from the
settings' declarations in ``ui.state`` (:data:`~segviewer.ui.state.OPACITY`, ...).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QSlider,
    QSpinBox,
    QWidget,
)
from superqt.utils import signals_blocked

from segviewer.core.errors import SegviewerError
from segviewer.core.types import MaskSettings
from segviewer.ui.state import (
    DISPLAYS,
    MIN_CONFIDENCE,
    MODES,
    OPACITY,
    OUTLINE_WIDTH,
    THRESHOLD,
    Change,
    ViewerState,
)

__all__ = ["DISPLAY_LABELS", "MODE_LABELS", "OverlayControls"]

MODE_LABELS = ("Fill", "Outline", "Fill + outline")
DISPLAY_LABELS = (
    "Labels",
    "Probability of class",
    "Confidence",
    "Entropy",
    "Errors vs reference",
)
ALL_CLASSES = "All classes (any disagreement)"
#: the opacity slider's steps per unit
_OPACITY_STEPS = round(1 / OPACITY.step)


class OverlayControls(QGroupBox):
    """The Overlay box (see module docstring).

    Signals
    -------
    refused(str)
        The user chose something the state refused (errors display without a reference,
        a heatmap of a label map): the message, for the window's error report.
    """

    refused = Signal(str)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__("Overlay", parent)
        self.state = state
        form = QFormLayout(self)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(
            round(OPACITY.minimum * _OPACITY_STEPS), round(OPACITY.maximum * _OPACITY_STEPS)
        )
        self.opacity_slider.setToolTip("Overlay opacity")
        self.opacity_slider.valueChanged.connect(
            lambda v: self._apply(lambda: state.set_opacity(v / _OPACITY_STEPS))
        )
        form.addRow("Opacity", self.opacity_slider)

        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(MODE_LABELS))
        self.mode_combo.currentIndexChanged.connect(
            lambda i: self._apply(lambda: state.set_mode(MODES[i]))
        )
        self.outline_spin = QSpinBox()
        self.outline_spin.setRange(int(OUTLINE_WIDTH.minimum), int(OUTLINE_WIDTH.maximum))
        self.outline_spin.setSuffix(" px")
        self.outline_spin.setToolTip("Outline width in voxels")
        self.outline_spin.valueChanged.connect(
            lambda w: self._apply(lambda: state.set_outline_width(w))
        )
        row = QHBoxLayout()
        row.addWidget(self.mode_combo, 1)
        row.addWidget(self.outline_spin)
        form.addRow("Style", row)

        self.display_combo = QComboBox()
        self.display_combo.addItems(list(DISPLAY_LABELS))
        self.display_combo.setToolTip(
            "Labels: the predicted class. Heatmaps: probability of one class, confidence (top "
            "probability) or entropy (uncertainty, nats). Errors vs reference: where the "
            "prediction disagrees with the reference segmentation, for the class chosen below "
            "(false positives and false negatives in two colours no class uses, agreement as "
            "the class outline) or for all classes"
        )
        self.display_combo.currentIndexChanged.connect(self._display_chosen)
        form.addRow("Show", self.display_combo)
        self.display_class_combo = QComboBox()
        self.display_class_combo.currentIndexChanged.connect(self._class_chosen)
        form.addRow("Class", self.display_class_combo)

        self.minconf_check = QCheckBox("Min. confidence")
        self.minconf_check.setToolTip(
            "Mark voxels whose top probability is below this as uncertain"
        )
        self.minconf_spin = QDoubleSpinBox()
        self.minconf_spin.setRange(MIN_CONFIDENCE.minimum, MIN_CONFIDENCE.maximum)
        self.minconf_spin.setSingleStep(MIN_CONFIDENCE.step)
        self.minconf_check.toggled.connect(self._mask_settings_chosen)
        self.minconf_spin.valueChanged.connect(self._mask_settings_chosen)
        row2 = QHBoxLayout()
        row2.addWidget(self.minconf_check)
        row2.addWidget(self.minconf_spin)
        form.addRow(row2)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(THRESHOLD.minimum, THRESHOLD.maximum)
        self.threshold_spin.setSingleStep(THRESHOLD.step)
        self.threshold_spin.setToolTip("Sigmoid / multi-label outputs: foreground at or above")
        self.threshold_spin.valueChanged.connect(self._mask_settings_chosen)
        form.addRow("Threshold", self.threshold_spin)

        self.legend_check = QCheckBox("Legend on canvas")
        self.legend_check.toggled.connect(lambda on: state.set_options(legend=on))
        self.crosshair_check = QCheckBox("Crosshair")
        self.crosshair_check.toggled.connect(lambda on: state.set_options(crosshair=on))
        row3 = QHBoxLayout()
        row3.addWidget(self.legend_check)
        row3.addWidget(self.crosshair_check)
        form.addRow(row3)
        self.heat_fg_check = QCheckBox("Heatmap inside prediction only")
        self.heat_fg_check.setToolTip(
            "Confidence and entropy drawn only where a class (not background) is predicted"
        )
        self.heat_fg_check.toggled.connect(state.set_heat_foreground_only)
        form.addRow(self.heat_fg_check)

        state.changed.connect(self._state_changed)
        self.sync()

    # -- widget -> state -------------------------------------------------------------------
    def _apply(self, setter: object) -> None:
        """Call ``setter``; a refusal puts the widgets back and is reported."""
        assert callable(setter)
        try:
            setter()
        except SegviewerError as exc:
            self.sync()
            self.refused.emit(str(exc))

    def _display_chosen(self, index: int) -> None:
        st = self.state
        if st.prediction is None or index < 0:
            return
        display = DISPLAYS[index]
        self._apply(lambda: st.set_display(display))

    def _class_chosen(self, index: int) -> None:
        st = self.state
        if index < 0 or st.prediction is None:
            return
        if st.display == "errors":
            self._apply(lambda: st.set_error_class(None if index >= st.n_classes() else index))
        else:
            self._apply(lambda: st.set_display_class(index))

    def _mask_settings_chosen(self) -> None:
        minconf = self.minconf_spin.value() if self.minconf_check.isChecked() else None
        settings = MaskSettings(threshold=self.threshold_spin.value(), min_confidence=minconf)
        self._apply(lambda: self.state.set_mask_settings(settings))

    # -- state -> widgets ------------------------------------------------------------------
    def _state_changed(self, what: Change) -> None:
        if what not in (Change.CURSOR, Change.WINDOW, Change.LABEL_RESULT, Change.ORIENTATION):
            self.sync()

    def sync(self) -> None:
        """Show the state's values (and what applies to the prediction shown)."""
        st = self.state
        has_pred = st.prediction is not None
        kind = st.prediction.kind.value if st.prediction is not None else ""
        widgets = (
            self.opacity_slider,
            self.mode_combo,
            self.outline_spin,
            self.display_combo,
            self.minconf_check,
            self.minconf_spin,
            self.threshold_spin,
            self.legend_check,
            self.crosshair_check,
            self.heat_fg_check,
        )
        for w in widgets:
            with signals_blocked(w):
                self._show_value(w)
        self._fill_class_combo()
        self.threshold_spin.setEnabled(kind in ("sigmoid", "multilabel"))
        self.minconf_check.setEnabled(has_pred and kind != "labels")
        self.minconf_spin.setEnabled(has_pred and kind != "labels")
        for w in (self.display_combo, self.mode_combo, self.opacity_slider, self.outline_spin):
            w.setEnabled(has_pred)

    def _show_value(self, w: QWidget) -> None:
        st = self.state
        ms = st.mask_settings
        if w is self.opacity_slider:
            self.opacity_slider.setValue(round(st.opacity * _OPACITY_STEPS))
        elif w is self.mode_combo:
            self.mode_combo.setCurrentIndex(MODES.index(st.mode))
        elif w is self.outline_spin:
            self.outline_spin.setValue(st.outline_width)
        elif w is self.display_combo:
            self.display_combo.setCurrentIndex(DISPLAYS.index(st.display))
        elif w is self.minconf_check:
            self.minconf_check.setChecked(ms.min_confidence is not None)
        elif w is self.minconf_spin:
            value = ms.min_confidence
            self.minconf_spin.setValue(st.min_confidence_value if value is None else value)
        elif w is self.threshold_spin:
            self.threshold_spin.setValue(ms.threshold)
        elif w is self.legend_check:
            self.legend_check.setChecked(st.show_legend)
        elif w is self.crosshair_check:
            self.crosshair_check.setChecked(st.show_crosshair)
        elif w is self.heat_fg_check:
            self.heat_fg_check.setChecked(st.heat_foreground_only)

    def _fill_class_combo(self) -> None:
        """Class choices for the display: every class; "All classes" too for the errors."""
        st = self.state
        combo = self.display_class_combo
        with signals_blocked(combo):
            combo.clear()
            if st.table is not None and st.prediction is not None:
                combo.addItems([f"{c.index}  {c.name}" for c in st.table.classes])
                if st.display == "errors":
                    combo.addItem(ALL_CLASSES)
                    k = st.error_class
                    combo.setCurrentIndex(len(st.table) if k is None else k)
                else:
                    combo.setCurrentIndex(st.display_class)
        combo.setEnabled(st.prediction is not None and st.display in ("probability", "errors"))
