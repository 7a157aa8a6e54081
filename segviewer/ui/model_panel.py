"""File > Open model: what a TensorFlow/Keras model says, its card settings, Run and Cancel.

:class:`ModelDialog` is a view on the window's :class:`~segviewer.ui.model_session.ModelSession`
(which opens and runs the model without any widget): it shows what the model tells about
itself, lets the user edit the card settings it cannot tell (normalisation, slice axis,
output kind, batch size, class names, threshold) and hands its edited card to the session
(``session.card_provider``). The dialog may stay hidden (``segviewer IMAGE --model M``,
``--demo``, ``Viewer.run_model``); it shows itself when the safe load is refused and the
user has to decide about trust.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from segviewer.core import orientation
from segviewer.core.classes import ClassTable, rgb_to_hex
from segviewer.core.errors import SegviewerError
from segviewer.inference.card import NORMALIZATIONS, OUTPUT_KINDS, SCOPES, ModelCard
from segviewer.io.sniff import MODEL_FILTER
from segviewer.ui.model_session import ModelSession, card_diff, n_classes_for
from segviewer.ui.state import Change
from segviewer.ui.workers import Job

if TYPE_CHECKING:
    from segviewer.inference.model import ModelHandle

__all__ = ["TRUST_TEXT", "ModelDialog"]

TRUST_TEXT = "Trust this model file (runs code from it)"
TRUST_WARNING = (
    "Loading this model executes Python code stored in the file (a Lambda layer or a custom "
    "class). That code can do anything your user account can: read, change or send your "
    "files. Tick this only if you trust where the file came from. A model exported as a "
    "SavedModel folder (model.export) needs no code."
)
NORMALIZATION_LABELS = {
    "none": "None (values as stored)",
    "zscore": "z-score (x − mean) / std",
    "minmax": "Min–max to [0, 1]",
    "max": "Divide by max |x|",
    "percentile": "Percentile clip, then [0, 1]",
}
KIND_LABELS = {
    "auto": "Auto (from the model)",
    "probabilities": "Probabilities (softmax)",
    "logits": "Logits",
    "sigmoid": "Sigmoid (one channel)",
    "multilabel": "Multi-label (sigmoid per channel)",
}


class ModelDialog(QDialog):
    """Open a model, review what it says, edit its card settings, run it on the image.

    ``model_opened``, ``model_refused`` and ``run_finished`` are the session's ``opened``,
    ``refused`` and ``run_finished`` signals.
    """

    def __init__(self, session: ModelSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.state = session.host.state
        self.setWindowTitle("Model")
        self.setModal(False)
        self.model_opened = session.opened
        self.model_refused = session.refused
        self.run_finished = session.run_finished
        self._prefilled_names: list[str] = []
        self._build()
        self._show_session()
        session.card_provider = self.card
        session.changed.connect(self._show_session)
        session.opened.connect(self._opened)
        session.refused.connect(self._refused)
        session.open_failed.connect(lambda _text: self.progress_label.setText("Not loaded"))
        session.run_finished.connect(self._ran)
        session.run_ended.connect(self._run_ended)
        session.host.runner.progress.connect(self._progress)
        self.state.changed.connect(self._state_changed)
        if session.handle is not None:  # opened before this dialog existed (--model)
            self._opened(session.handle)

    # -- the session's values, under the names the dialog had --------------------------------
    @property
    def handle(self) -> ModelHandle | None:
        return self.session.handle

    @property
    def model_path(self) -> Path | None:
        return self.session.model_path

    @property
    def base_card(self) -> ModelCard:
        return self.session.base_card

    @property
    def run_job(self) -> Job | None:
        return self.session.run_job

    # == building ==============================================================================
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.path_edit = QLineEdit()
        self.path_edit.setReadOnly(True)
        self.path_edit.setPlaceholderText("No model open")
        row.addWidget(QLabel("Model"))
        row.addWidget(self.path_edit, 1)
        self.file_button = QPushButton("File…")
        self.file_button.setToolTip("Open a Keras model file (.keras, legacy .h5)")
        self.file_button.clicked.connect(self.ask_model_file)
        self.folder_button = QPushButton("SavedModel folder…")
        self.folder_button.setToolTip("Open a TensorFlow SavedModel folder (model.export)")
        self.folder_button.clicked.connect(self.ask_model_folder)
        row.addWidget(self.file_button)
        row.addWidget(self.folder_button)
        lay.addLayout(row)

        # What the model says about itself (read from its layers).
        facts = QGroupBox("What the model says")
        form = QFormLayout(facts)
        self.facts: dict[str, QLabel] = {}
        for key, text in (
            ("format", "Format"),
            ("rank", "Type"),
            ("input", "Input size"),
            ("layout", "Input layout"),
            ("device", "Runs on"),
            ("channels", "Channels in → out"),
            ("kind", "Output"),
            ("classes", "Classes"),
            ("downsampling", "Downsampling"),
            ("card", "Model card"),
        ):
            label = QLabel("—")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setWordWrap(True)
            form.addRow(text, label)
            self.facts[key] = label
        self.description_label = QLabel("")
        self.description_label.setWordWrap(True)
        self.description_label.setStyleSheet("color: #bbbbbb; font-style: italic;")
        form.addRow(self.description_label)
        lay.addWidget(facts)

        # Refusal of code-carrying content: the message, the trust checkbox and its warning.
        self.trust_box = QGroupBox("This model runs code when loaded")
        tl = QVBoxLayout(self.trust_box)
        self.refusal_label = QLabel("")
        self.refusal_label.setWordWrap(True)
        self.refusal_label.setStyleSheet("color: #ff8a80;")
        self.refusal_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.trust_check = QCheckBox(TRUST_TEXT)
        self.trust_check.toggled.connect(self._trust_toggled)
        self.trust_warning = QLabel(TRUST_WARNING)
        self.trust_warning.setWordWrap(True)
        self.trust_warning.setStyleSheet("color: #ffd75e;")
        for w in (self.refusal_label, self.trust_check, self.trust_warning):
            tl.addWidget(w)
        self.trust_box.hide()
        lay.addWidget(self.trust_box)

        # The card settings the model cannot tell.
        box = QGroupBox("Settings (model card)")
        sf = QFormLayout(box)
        self.norm_combo = QComboBox()
        for n in NORMALIZATIONS:
            self.norm_combo.addItem(NORMALIZATION_LABELS.get(n, n), n)
        self.scope_combo = QComboBox()
        for s in SCOPES:
            self.scope_combo.addItem("whole volume" if s == "volume" else "each slice", s)
        self.norm_combo.currentIndexChanged.connect(self._update_enabled)
        nrow = QHBoxLayout()
        nrow.addWidget(self.norm_combo, 1)
        nrow.addWidget(QLabel("over"))
        nrow.addWidget(self.scope_combo)
        sf.addRow("Normalisation", nrow)
        self.pct_low = QDoubleSpinBox()
        self.pct_high = QDoubleSpinBox()
        for spin in (self.pct_low, self.pct_high):
            spin.setRange(0.0, 100.0)
            spin.setDecimals(2)
            spin.setSuffix(" %")
        self.nonzero_check = QCheckBox("non-zero voxels only")
        self.nonzero_check.setToolTip("Statistics over non-zero voxels (skull-stripped images)")
        prow = QHBoxLayout()
        prow.addWidget(self.pct_low)
        prow.addWidget(QLabel("to"))
        prow.addWidget(self.pct_high)
        prow.addWidget(self.nonzero_check)
        sf.addRow("Percentiles", prow)
        self.slice_axis_combo = QComboBox()
        self.slice_axis_combo.setToolTip(
            "2-D models: the image axis the model's slices are taken across"
        )
        self._fill_slice_axes()
        sf.addRow("Slice axis (2-D)", self.slice_axis_combo)
        self.kind_combo = QComboBox()
        for k in OUTPUT_KINDS:
            self.kind_combo.addItem(KIND_LABELS.get(k, k), k)
        self.kind_combo.currentIndexChanged.connect(self._kind_changed)
        sf.addRow("Output kind", self.kind_combo)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(0, 4096)
        self.batch_spin.setSpecialValueText("automatic")
        self.batch_spin.setToolTip(
            "Slices per model call (3-D models: always one volume). Halved automatically "
            "when memory runs out; Cancel takes effect after the current batch."
        )
        sf.addRow("Batch size", self.batch_spin)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setToolTip("Sigmoid / multi-label outputs: foreground at or above")
        sf.addRow("Threshold", self.threshold_spin)
        self.classes_edit = QPlainTextEdit()
        self.classes_edit.setPlaceholderText("one class name per line, class 0 first")
        self.classes_edit.setFixedHeight(84)
        sf.addRow("Class names", self.classes_edit)
        lay.addWidget(box)
        self.settings_box = box

        self.progress_label = QLabel("")
        self.progress_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.hide()
        lay.addWidget(self.progress_label)
        lay.addWidget(self.progress_bar)

        buttons = QHBoxLayout()
        self.save_card_button = QPushButton("Save model card")
        self.save_card_button.setToolTip("Write these settings to <model>.segviewer.json")
        self.save_card_button.clicked.connect(lambda: self.save_card())
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button = QPushButton("Cancel run")
        self.cancel_button.clicked.connect(self.cancel_run)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.save_card_button)
        buttons.addStretch(1)
        for b in (self.run_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        lay.addLayout(buttons)
        self.setMinimumWidth(560)
        self._set_card_widgets(self.base_card)

    def _fill_slice_axes(self) -> None:
        """Axes 0, 1, 2 named after the view whose slices they cut (from the image affine)."""
        current = self.slice_axis_combo.currentData()
        self.slice_axis_combo.clear()
        names: dict[int, str] = {}
        vol = self.state.volume
        if vol is not None:
            for view in orientation.VIEWS:
                names.setdefault(orientation.display_axes(vol.affine, view).slice_axis, view)
        for axis in range(3):
            text = f"axis {axis}"
            if axis in names:
                text += f" ({names[axis]} slices)"
            self.slice_axis_combo.addItem(text, axis)
        if current is not None:
            self.slice_axis_combo.setCurrentIndex(int(current))

    # == what the user sees ======================================================================
    def _set_card_widgets(self, card: ModelCard) -> None:
        self.norm_combo.setCurrentIndex(NORMALIZATIONS.index(card.normalization))
        self.scope_combo.setCurrentIndex(SCOPES.index(card.normalization_scope))
        self.pct_low.setValue(card.percentile_low)
        self.pct_high.setValue(card.percentile_high)
        self.nonzero_check.setChecked(card.nonzero)
        self.slice_axis_combo.setCurrentIndex(card.slice_axis)
        self.kind_combo.setCurrentIndex(OUTPUT_KINDS.index(card.output_kind))
        self.batch_spin.setValue(card.batch_size or 0)
        self.threshold_spin.setValue(card.threshold)
        self.description_label.setText(card.description)
        self._fill_class_names(card)

    def _expected_classes(self) -> int | None:
        h = self.handle
        if h is None:
            return None
        kind = str(self.kind_combo.currentData())
        if kind == "auto":
            kind = h.output_kind.value if h.output_kind is not None else "probabilities"
        return n_classes_for(h.output_channels, kind)

    def _fill_class_names(self, card: ModelCard) -> None:
        n = self._expected_classes()
        if card.class_names is not None:
            names = list(card.class_names)
        elif n is not None:
            # The class table shown now, when it has the model's class count (e.g. the demo's).
            table = self.state.table
            names = list(table.names) if table is not None and len(table) == n else []
            names = names or list(ClassTable.default(n).names)
        else:
            names = []
        self._prefilled_names = names if card.class_names is None else []
        self.classes_edit.setPlainText("\n".join(names))

    def _kind_changed(self) -> None:
        n = self._expected_classes()
        if n is not None and len(self.class_names()) != n:
            names = self.class_names()[:n]
            names += list(ClassTable.default(n).names[len(names) :])
            self.classes_edit.setPlainText("\n".join(names))
        self._update_enabled()

    def _show_facts(self, h: ModelHandle) -> None:
        def size(s: tuple[int | None, ...]) -> str:
            return " × ".join("any" if v is None else str(v) for v in s)

        f = self.facts
        f["format"].setText(
            {"keras": "Keras (.keras)", "h5": "Keras legacy (.h5)"}.get(
                h.format, "TensorFlow SavedModel"
            )
            + (f" — {h.name}" if h.name else "")
        )
        f["rank"].setText(
            "2-D: runs slice by slice" if h.rank == 2 else "3-D: runs on the whole volume"
        )
        f["input"].setText(size(h.input_size))
        f["layout"].setText(h.layout_name)
        f["device"].setText(h.device or "—")
        f["channels"].setText(f"{h.input_channels} → {h.output_channels}")
        if h.output_kind is None:
            kind = "decided from the values on the first batch"
        else:
            kind = KIND_LABELS.get(h.output_kind.value, h.output_kind.value)
        f["kind"].setText(kind)
        n = self._expected_classes()
        f["classes"].setText("—" if n is None else str(n))
        f["downsampling"].setText(
            "found by trying sizes at run time"
            if h.downsampling is None
            else f"{h.downsampling} (free sizes are padded to a multiple)"
        )
        f["card"].setText(self.session.card_source or "none: defaults below")
        notes = "\n".join(h.notes)
        for w in f.values():
            w.setToolTip(notes)

    def _clear_facts(self) -> None:
        for w in self.facts.values():
            w.setText("—")

    def _update_enabled(self) -> None:
        h = self.handle
        busy = self.session.busy
        ready = h is not None and self.state.volume is not None and not busy
        self.run_button.setEnabled(ready)
        self.cancel_button.setEnabled(busy)
        self.save_card_button.setEnabled(self.model_path is not None)
        self.slice_axis_combo.setEnabled(h is None or h.rank == 2)
        self.scope_combo.setEnabled(h is None or h.rank == 2)
        pct = self.norm_combo.currentData() == "percentile"
        self.pct_low.setEnabled(pct)
        self.pct_high.setEnabled(pct)
        kind = str(self.kind_combo.currentData())
        if kind == "auto" and h is not None and h.output_kind is not None:
            kind = h.output_kind.value
        self.threshold_spin.setEnabled(kind in ("sigmoid", "multilabel", "auto"))

    # == settings -> card ========================================================================
    def class_names(self) -> list[str]:
        """The class names typed in the dialog, one per non-empty line."""
        return [s.strip() for s in self.classes_edit.toPlainText().splitlines() if s.strip()]

    def settings(self) -> dict[str, Any]:
        """Every card field the dialog edits, as ``ModelCard.with_overrides`` keys."""
        names = tuple(self.class_names())
        colors: tuple[str, ...] | None = None
        if self.base_card.class_names is None and list(names) == self._prefilled_names:
            names = ()  # untouched defaults: the class table shown stays in charge
        if names:
            base = self.base_card
            if base.class_colors is not None and len(base.class_colors) == len(names):
                colors = base.class_colors
            else:
                fallback = self.state.table
                colors = tuple(
                    rgb_to_hex(c.color)
                    for c in ClassTable.from_names(names, None, fallback).classes
                )
        return {
            "normalization": str(self.norm_combo.currentData()),
            "normalization_scope": str(self.scope_combo.currentData()),
            "percentile_low": float(self.pct_low.value()),
            "percentile_high": float(self.pct_high.value()),
            "nonzero": self.nonzero_check.isChecked(),
            "slice_axis": int(self.slice_axis_combo.currentData()),
            "output_kind": str(self.kind_combo.currentData()),
            "batch_size": self.batch_spin.value() or None,
            "threshold": round(float(self.threshold_spin.value()), 4),
            "class_names": names or None,
            "class_colors": colors,
        }

    def overrides(self) -> dict[str, Any]:
        """Card fields the dialog (and the options given with the model) change, with their
        new values: what the export manifest lists as overrides."""
        return card_diff(self.card(), self.base_card)[0]

    def card(self) -> ModelCard:
        """The card the dialog describes: the base card with the dialog's settings.

        Raises
        ------
        SegviewerError
            An invalid combination (e.g. percentile low >= high), naming the field.
        """
        import dataclasses

        values = self.settings()
        # with_overrides ignores None; fields the dialog sets back to None (automatic batch
        # size, no class names) are cleared first.
        cleared: dict[str, Any] = {k: None for k, v in values.items() if v is None}
        try:
            base = self.session.start_card()
            base = dataclasses.replace(base, **cleared)
        except SegviewerError as e:
            raise SegviewerError(f"model settings: {e}") from None
        return base.with_overrides(values)

    # == opening =================================================================================
    def ask_model_file(self) -> None:
        """Pick a ``.keras`` / ``.h5`` file and open it."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", self.session.host.settings.last_folder(), MODEL_FILTER
        )
        if path:
            self.load_model(path)

    def ask_model_folder(self) -> None:
        """Pick a SavedModel folder and open it."""
        path = QFileDialog.getExistingDirectory(
            self, "Open SavedModel folder", self.session.host.settings.last_folder()
        )
        if path:
            self.load_model(path)

    def load_model(
        self,
        path: str | os.PathLike[str],
        *,
        trust: bool = False,
        card: ModelCard | str | os.PathLike[str] | None = None,
        run: bool = False,
        overrides: Mapping[str, Any] | None = None,
    ) -> Job | None:
        """Open a model (``ModelSession.load_model``) and show it here."""
        return self.session.load_model(path, trust=trust, card=card, run=run, overrides=overrides)

    def run(self, overrides: Mapping[str, Any] | None = None) -> Job | None:
        """Run the open model with the dialog's settings (plus ``overrides``)."""
        job = self.session.run(overrides)
        if job is not None:
            self.progress_bar.setValue(0)
            self.progress_bar.show()
            assert self.session.handle is not None
            self.progress_label.setText(f"Running {self.session.handle.path.name}…")
        return job

    def cancel_run(self) -> None:
        """Stop the running model at its next batch; the shown prediction stays."""
        self.session.cancel_run()

    def save_card(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write the dialog's card to ``path`` (default ``<model>.segviewer.json``)."""
        target = self.session.save_card(path)
        if target is not None:
            self.facts["card"].setText(str(target))
            self.progress_label.setText(f"Saved {target.name}")
        return target

    # == the session, shown =====================================================================
    def _show_session(self) -> None:
        s = self.session
        if s.model_path is not None and self.path_edit.text() != str(s.model_path):
            self.path_edit.setText(str(s.model_path))
        if s.open_job is not None:
            self._clear_facts()
            self.progress_label.setText(f"Loading {s.model_path.name if s.model_path else ''}…")
            with signals_blocked(self.trust_check):
                self.trust_check.setChecked(s.trusted)
            if not s.trusted:
                self.trust_box.hide()
        if s.run_job is None:
            self.progress_bar.hide()
        self._update_enabled()

    def _opened(self, handle: ModelHandle) -> None:
        self._set_card_widgets(self.session.start_card())
        self._show_facts(handle)
        self.progress_label.setText(
            f"{handle.path.name} loaded" + (" (trusted: its code ran)" if handle.trusted else "")
        )
        self._update_enabled()

    def _refused(self, text: str) -> None:
        # Not a broken file: the user decides. Message and checkbox in the dialog.
        self.refusal_label.setText(text)
        self.trust_box.show()
        self.progress_label.setText("Not loaded: the model needs your trust (see above)")
        if self.session.host.interactive:
            self.show()
            self.raise_()

    def _trust_toggled(self, on: bool) -> None:
        self.session.reload(trust=on)

    def _ran(self, result: tuple[Any, dict[str, Any]]) -> None:
        prediction, provenance = result
        seconds = provenance.get("seconds")
        self.progress_label.setText(
            f"Done: {prediction.n_classes} classes"
            + (f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else "")
        )

    def _run_ended(self, how: str) -> None:
        self.progress_bar.hide()
        if how == "cancelled":
            self.progress_label.setText("Cancelled; the previous prediction is still shown")
        else:
            self.progress_label.setText("The run failed; the previous prediction is still shown")
        self._update_enabled()

    def _progress(self, job: Job) -> None:
        if job.channel != "inference" or job is not self.session.run_job or job.progress is None:
            return
        if not self.progress_bar.isVisible():
            self.progress_bar.show()
        p = job.progress
        if p.total > 0:
            self.progress_bar.setValue(round(p.fraction * 1000))
        if p.message:
            self.progress_label.setText(p.message)

    def _state_changed(self, what: Change) -> None:
        if what is Change.DATA:
            self._fill_slice_axes()
            self._update_enabled()
