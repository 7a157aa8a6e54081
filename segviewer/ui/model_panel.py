"""File > Open model: what a TensorFlow/Keras model says, its card settings, Run and Cancel.

:class:`ModelDialog` is both the dialog and the controller of model runs for its window: it
opens the model in a worker (``inference.iter_open_model``; TensorFlow is imported there, never
when the window starts), shows what the model tells about itself, lets the user edit the card
settings it cannot tell (normalisation, slice axis, output kind, batch size, class names,
threshold), and runs ``inference.predict`` in a worker on the window's image. The result goes
through ``MainWindow.set_prediction(prediction, provenance)``, so a later export's manifest
records the model, its hash and every preprocessing setting. The dialog may stay hidden
(``segviewer IMAGE --model M``, ``--demo``, ``Viewer.run_model``); it is shown when the user
asks for it or when the safe load is refused and the user has to decide about trust.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
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
)

from segviewer.core import orientation
from segviewer.core.classes import ClassTable
from segviewer.core.types import Prediction, PredictionKind, SegviewerError
from segviewer.inference.card import (
    NORMALIZATIONS,
    OUTPUT_KINDS,
    SCOPES,
    ModelCard,
    card_path_for,
    find_card,
    load_card,
    save_card,
)
from segviewer.ui.workers import Job

if TYPE_CHECKING:
    from segviewer.inference.model import ModelHandle
    from segviewer.ui.main_window import MainWindow

__all__ = [
    "MODEL_FILTER",
    "TRUST_TEXT",
    "ModelDialog",
    "is_trust_refusal",
    "n_classes_for",
    "table_from_names",
    "tensorflow_available",
]

MODEL_FILTER = "Keras models (*.keras *.h5 *.hdf5);;All files (*)"
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


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed, found without importing it (the import takes ~2 s)."""
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def is_trust_refusal(exc: BaseException) -> bool:
    """Whether an ``open_model`` error is the refusal of code-carrying content (the user may
    trust the file), as opposed to a broken or unsupported model."""
    from segviewer.inference.model import TrustRequired

    return isinstance(exc, TrustRequired)


def n_classes_for(output_channels: int, kind: str) -> int:
    """Classes a model's output means: sigmoid 2 (background, foreground), multi-label one per
    channel plus "none", otherwise one per channel."""
    if kind == "sigmoid":
        return 2
    if kind == "multilabel":
        return output_channels + 1
    return output_channels


def table_from_names(
    names: tuple[str, ...],
    colors: tuple[str, ...] | None = None,
    fallback: ClassTable | None = None,
) -> ClassTable:
    """Class table from card names and ``#rrggbb`` colours; missing colours come from
    ``fallback`` (the table shown now) where it has that index, else the defaults."""
    table = ClassTable.default(len(names))
    for i, name in enumerate(names):
        table = table.with_name(i, name)
        if colors is not None and i < len(colors):
            h = colors[i].lstrip("#")
            table = table.with_color(i, (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)))
        elif fallback is not None and i < len(fallback):
            table = table.with_color(i, fallback[i].color)
    return table


def _card_diff(card: ModelCard, base: ModelCard) -> tuple[dict[str, Any], bool]:
    """Fields of ``card`` that differ from ``base`` (lists for tuples), and whether any of them
    was set back to None."""
    import dataclasses

    out: dict[str, Any] = {}
    cleared = False
    for f in dataclasses.fields(ModelCard):
        v = getattr(card, f.name)
        if v == getattr(base, f.name):
            continue
        if v is None:
            cleared = True
        else:
            out[f.name] = list(v) if isinstance(v, tuple) else v
    return out, cleared


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


class ModelDialog(QDialog):
    """Open a model, review what it says, edit its card settings, run it on the image.

    Signals
    -------
    model_opened(object)
        The :class:`~segviewer.inference.ModelHandle` that was loaded.
    model_refused(str)
        The safe load was refused (Lambda layer / custom class); the message is shown and the
        trust checkbox offered.
    run_finished(object)
        ``(prediction, provenance)`` of a run whose result is now shown in the window.
    """

    model_opened = Signal(object)
    model_refused = Signal(str)
    run_finished = Signal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.setWindowTitle("Model")
        self.setModal(False)
        self.handle: ModelHandle | None = None
        self.model_path: Path | None = None
        # The card the settings start from: given (--model-card, API), found next to the
        # model, or the defaults; ``_card_given`` decides what predict() is told.
        self.base_card = ModelCard()
        self.card_source: str | None = None
        self._card_given = False
        self._run_after_open = False
        # Card fields given with the model (--model-option, Viewer.run_model overrides): shown
        # in the settings and kept for every run of this model.
        self._session: dict[str, Any] = {}
        self._prefilled_names: list[str] = []
        # Set by the window when this open/run is a step of its loading queue (--model,
        # --demo): the queue goes on when it ends.
        self.continue_queue = False
        self.open_job: Job | None = None
        self.run_job: Job | None = None
        self._build()
        self._update_enabled()
        window.runner.progress.connect(self._progress)
        window.runner.job_finished.connect(self._job_finished)
        window.image_loaded.connect(lambda _v: self._image_changed())

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
        vol = self.window_.state.volume
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
            table = self.window_.state.table
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
        f["card"].setText(self.card_source or "none: defaults below")
        notes = "\n".join(h.notes)
        for w in f.values():
            w.setToolTip(notes)

    def _clear_facts(self) -> None:
        for w in self.facts.values():
            w.setText("—")

    def _update_enabled(self) -> None:
        h = self.handle
        busy = self.run_job is not None
        ready = h is not None and self.window_.state.volume is not None and not busy
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

    def _image_changed(self) -> None:
        self._fill_slice_axes()
        self._update_enabled()

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
                fallback = self.window_.state.table
                colors = tuple(
                    _hex(c.color) for c in table_from_names(names, None, fallback).classes
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
        return _card_diff(self.card(), self.base_card)[0]

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
            base = self.base_card.with_overrides(self._session)
            base = dataclasses.replace(base, **cleared)
        except SegviewerError as e:
            raise SegviewerError(f"model settings: {e}") from None
        return base.with_overrides(values)

    # == opening =================================================================================
    def ask_model_file(self) -> None:
        """Pick a ``.keras`` / ``.h5`` file and open it."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", self.window_.settings.last_folder(), MODEL_FILTER
        )
        if path:
            self.load_model(path)

    def ask_model_folder(self) -> None:
        """Pick a SavedModel folder and open it."""
        path = QFileDialog.getExistingDirectory(
            self, "Open SavedModel folder", self.window_.settings.last_folder()
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
        """Open a model in a worker (imports TensorFlow there); with ``run`` run it when loaded.

        Parameters
        ----------
        path
            ``.keras`` / ``.h5`` file or SavedModel folder.
        trust
            Allow code-carrying content (the trust checkbox).
        card
            A :class:`ModelCard` or card file to start from; ``None``: the card next to the
            model, else the defaults.
        run
            Run the model on the window's image as soon as it is loaded.
        overrides
            Card fields to override (``--model-option``, ``Viewer.run_model``): shown in the
            settings and used by every run of this model.

        Returns
        -------
        Job or None
            The opening job; None when the card could not be read (error shown).
        """
        p = Path(path).expanduser()
        self.window_.runner.cancel("inference")
        self.window_.settings.remember_folder(str(p))
        try:
            session = dict(overrides or {})
            if isinstance(card, ModelCard):
                self.base_card, self.card_source, self._card_given = card, "given", True
            elif card is not None:
                self.base_card = load_card(card)
                self.card_source, self._card_given = str(card), True
            else:
                found = find_card(p)
                self.base_card = load_card(found) if found is not None else ModelCard()
                self.card_source = None if found is None else str(found)
                self._card_given = False
            self.base_card.with_overrides(session)  # unknown keys / bad values: say so now
        except SegviewerError as e:
            self.window_._show_error(str(e))
            return None
        self.model_path = p
        self.handle = None
        self.path_edit.setText(str(p))
        self._clear_facts()
        self.progress_label.setText(f"Loading {p.name}…")
        self._run_after_open = run
        self._session = session
        self.trust_check.blockSignals(True)
        self.trust_check.setChecked(trust)
        self.trust_check.blockSignals(False)
        if not trust:
            self.trust_box.hide()
        from segviewer.inference import iter_open_model

        self.open_job = self.window_.runner.start(
            "model",
            iter_open_model,
            p,
            trust,
            label=f"Opening model {p.name}",
            on_result=self._opened,
            on_error=self._open_failed,
        )
        self._update_enabled()
        return self.open_job

    def _opened(self, handle: ModelHandle) -> None:
        self.handle = handle
        self.open_job = None
        self._set_card_widgets(self.base_card.with_overrides(self._session))
        self._show_facts(handle)
        self.progress_label.setText(
            f"{handle.path.name} loaded" + (" (trusted: its code ran)" if handle.trusted else "")
        )
        self._update_enabled()
        self.model_opened.emit(handle)
        if self._run_after_open:
            self._run_after_open = False
            if self.run() is None:
                self._continue_queue()
        else:
            self._continue_queue()

    def _continue_queue(self) -> None:
        if self.continue_queue:
            self.continue_queue = False
            self.window_._next_pending()

    def _open_failed(self, exc: BaseException) -> None:
        self.open_job = None
        self._run_after_open = False
        text = str(exc)
        if is_trust_refusal(exc):
            # Not a broken file: the user decides. Message and checkbox in the dialog.
            self.refusal_label.setText(text)
            self.trust_box.show()
            self.progress_label.setText("Not loaded: the model needs your trust (see above)")
            self.continue_queue = False
            self.window_._pending.clear()
            self.window_.statusBar().showMessage(text, 15000)
            self.window_.error_shown.emit(text)
            self.model_refused.emit(text)
            if self.window_.show_dialogs:
                self.show()
                self.raise_()
            return
        self.continue_queue = False
        self.progress_label.setText("Not loaded")
        self.window_._job_error(exc)

    def _trust_toggled(self, on: bool) -> None:
        if self.model_path is None:
            return
        card: ModelCard | None = self.base_card if self._card_given else None
        self.load_model(self.model_path, trust=on, card=card, overrides=self._session)

    # == running =================================================================================
    def run(self, overrides: Mapping[str, Any] | None = None) -> Job | None:
        """Run the open model on the window's image in a worker (progress in the status bar).

        The window's current prediction stays until the new one arrives; a cancelled or failed
        run leaves it shown. ``overrides`` are applied on top of the dialog's settings.
        """
        win = self.window_
        if self.handle is None:
            win._show_error("Open a model first (File > Open model…).")
            return None
        if win.state.volume is None:
            win._show_error("Open an image first: the model runs on the image shown.")
            return None
        try:
            card = self.card()
            extra = dict(overrides or {})
            card = card.with_overrides(extra)
        except SegviewerError as e:
            win._show_error(str(e))
            return None
        from segviewer.inference import predict

        changed, cleared = _card_diff(card, self.base_card)
        # predict() finds the card next to the model itself, so the manifest names its file;
        # a given card is passed, and the whole edited card when a field was set back to None
        # (overrides cannot express that).
        card_arg = card if cleared else (self.base_card if self._card_given else None)
        handle = self.handle
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        self.progress_label.setText(f"Running {handle.path.name}…")
        self.run_job = win.runner.start(
            "inference",
            predict,
            win.state.volume,
            handle,
            card=card_arg,
            overrides=changed or None,
            label=f"Running {handle.path.name}",
            on_result=lambda res: self._ran(card, res),
            on_error=self._run_failed,
        )
        self._update_enabled()
        return self.run_job

    def cancel_run(self) -> None:
        """Stop the running model at its next batch; the shown prediction stays."""
        if self.window_.runner.cancel("inference"):
            self.window_.statusBar().showMessage(
                "Model run cancelled; the previous prediction is still shown", 5000
            )

    def _ran(self, card: ModelCard, result: tuple[Prediction, dict[str, Any]]) -> None:
        prediction, provenance = result
        win = self.window_
        names = card.class_names
        n = prediction.n_classes
        if names is not None:
            # Fitted to the output's class count by the window, with a warning if they differ.
            win.set_class_table(table_from_names(names, card.class_colors, win.state.table))
        elif win.state.table is None or len(win.state.table) != n:
            win.set_class_table(ClassTable.default(n))
        win.show_model_prediction(prediction, provenance, self.model_path)
        if prediction.kind in (PredictionKind.SIGMOID, PredictionKind.MULTILABEL):
            win.threshold_spin.setValue(card.threshold)
        seconds = provenance.get("seconds")
        self.progress_label.setText(
            f"Done: {prediction.n_classes} classes"
            + (f" in {seconds:.1f} s" if isinstance(seconds, (int, float)) else "")
        )
        self.run_finished.emit(result)
        self._continue_queue()

    def _run_failed(self, exc: BaseException) -> None:
        self.continue_queue = False
        self.progress_label.setText("The run failed; the previous prediction is still shown")
        self.window_._job_error(exc)

    def _progress(self, job: Job) -> None:
        if job.channel != "inference" or job is not self.run_job or job.progress is None:
            return
        p = job.progress
        if p.total > 0:
            self.progress_bar.setValue(round(p.fraction * 1000))
        if p.message:
            self.progress_label.setText(p.message)

    def _job_finished(self, job: Job) -> None:
        if job is self.run_job:
            self.run_job = None
            self.progress_bar.hide()
            if job.cancelled:
                self.progress_label.setText("Cancelled; the previous prediction is still shown")
            self._update_enabled()
        elif job is self.open_job:
            self.open_job = None
            self._update_enabled()

    # == card file ===============================================================================
    def save_card(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write the dialog's card to ``path`` (default ``<model>.segviewer.json``)."""
        if self.model_path is None and path is None:
            self.window_._show_error("Open a model first: its card is saved next to it.")
            return None
        target = Path(path) if path is not None else card_path_for(self.model_path or "")
        try:
            card = self.card()
            save_card(card, target)
        except SegviewerError as e:
            self.window_._show_error(str(e))
            return None
        self.base_card, self.card_source = card, str(target)
        self.facts["card"].setText(str(target))
        self.window_.statusBar().showMessage(f"Saved model card {target}", 5000)
        self.progress_label.setText(f"Saved {target.name}")
        return target
