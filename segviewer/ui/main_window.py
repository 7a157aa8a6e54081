"""The segviewer main window: canvases, class panel, overlay controls, menus, jobs."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from segviewer.core import masks, orientation, overlay
from segviewer.core.classes import ClassTable
from segviewer.core.types import (
    Prediction,
    Progress,
    SegviewerError,
    Volume,
    label_dtype,
    reserved_labels,
)
from segviewer.ui.canvas import SliceCanvas
from segviewer.ui.class_panel import ClassPanel
from segviewer.ui.settings import Settings
from segviewer.ui.state import DISPLAYS, MODES, ViewerState
from segviewer.ui.workers import Job, JobRunner

__all__ = ["MainWindow", "classify_path"]

IMAGE_FILTER = (
    "Images (*.nii *.nii.gz *.dcm *.nrrd *.nhdr *.png *.jpg *.jpeg *.tif *.tiff *.npy *.npz);;"
    "All files (*)"
)
PREDICTION_FILTER = (
    "Predictions (*.npy *.npz *.nii *.nii.gz *.nrrd *.nhdr *.tif *.tiff);;All files (*)"
)
CLASS_FILTER = "Class tables (*.json *.csv *.txt *.ctbl *.lut *.label);;All files (*)"
CLASS_TABLE_SUFFIXES = (".json", ".csv", ".txt", ".ctbl", ".lut", ".label")
WINDOW_PRESETS = ("Auto (1–99 %)", "Auto (0.5–99.5 %)", "Full range", "Scanner (DICOM)", "Custom")
#: The DICOM's own WindowCenter/WindowWidth, offered (and the default) when the file has one.
SCANNER_PRESET = WINDOW_PRESETS[3]
CUSTOM_PRESET = WINDOW_PRESETS[4]
#: Words in a file name that mark a reference segmentation (ground truth) when a file is
#: dropped while a prediction is shown.
REFERENCE_WORDS = ("reference", "ref_", "_ref", "ground", "truth", "_gt", "gt_", "manual")


def classify_path(
    path: str | os.PathLike[str],
    have_image: bool,
    image_shape: Sequence[int] | None = None,
    *,
    have_prediction: bool = False,
) -> str:
    """Decide what a dropped / opened file is: ``"image"``, ``"prediction"``, ``"reference"``
    or ``"classes"``.

    Class-table suffixes are class tables; with no image loaded anything else is the image.
    With a prediction shown, names that say "reference", "ground truth", "gt" or "manual"
    are reference segmentations (anything else goes by the rules below; File > Open
    reference segmentation is the unambiguous way). With an image loaded, NumPy files, 4-D
    NIfTI/NRRD, names that say so (pred, prob, logit, seg, label, mask) and arrays with the
    image's shape are predictions; anything else replaces the image.
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith(CLASS_TABLE_SUFFIXES):
        return "classes"
    if not have_image:
        return "image"
    stem = "_" + name.replace("-", "_").replace(".", "_") + "_"
    if have_prediction and any(w in stem for w in REFERENCE_WORDS):
        return "reference"
    if any(w in name for w in ("pred", "prob", "logit", "seg", "label", "mask", "output")):
        return "prediction"
    if name.endswith((".npy", ".npz")):
        return "prediction"
    if name.endswith((".nii", ".nii.gz")):
        try:
            import nibabel

            shape = nibabel.load(str(p)).shape  # type: ignore[attr-defined]  # header only
        except Exception:  # unreadable header: let the image loader report it
            return "image"
        if len(shape) >= 4 or (image_shape is not None and tuple(shape[:3]) == tuple(image_shape)):
            return "prediction"
    return "image"


def _load_image_job(path: str, frame: int, series: str | None) -> Any:
    """Worker: read the image, then its auto window (generator: cancellable between steps)."""
    from segviewer.io.dicom import SeveralSeries, list_dicom_series
    from segviewer.io.images import load_image

    yield Progress(0, 3, f"Reading {Path(path).name}")
    try:
        volume = load_image(path, frame=frame, series=series)
    except SeveralSeries:
        # The user picks one in the GUI thread; the details come from the headers only.
        yield Progress(1, 3, "Listing the series")
        return SERIES_CHOICE, list_dicom_series(path)
    yield Progress(1, 3, "Computing the display window")
    windows = _window_presets(volume)
    yield Progress(2, 3, "Done")
    return volume, windows


#: First element of an image job's result when a DICOM folder holds several series.
SERIES_CHOICE = "choose-series"


def _window_presets(volume: Volume) -> dict[str, tuple[float, float]]:
    """Level/width of each preset (percentiles on a strided sample; min/max of the volume;
    the scanner's DICOM window when ``volume.metadata["window"]`` has level and width)."""
    lo_hi = overlay.auto_window(volume.data, 1, 99)
    wide = overlay.auto_window(volume.data, 0.5, 99.5)
    vmin, vmax = float(np.min(volume.data)), float(np.max(volume.data))
    full = ((vmin + vmax) / 2.0, max(vmax - vmin, 1e-6))
    presets = {WINDOW_PRESETS[0]: lo_hi, WINDOW_PRESETS[1]: wide, WINDOW_PRESETS[2]: full}
    scanner = scanner_window(volume)
    if scanner is not None:
        presets[SCANNER_PRESET] = scanner
    return presets


def scanner_window(volume: Volume) -> tuple[float, float] | None:
    """The DICOM WindowCenter/WindowWidth ``(level, width)`` in the image's (rescaled)
    units, or None when the file has none (or a width that is not positive)."""
    win = volume.metadata.get("window")
    if not isinstance(win, dict):
        return None
    try:
        level, width = float(win["level"]), float(win["width"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(level) and np.isfinite(width) and width > 0):
        return None
    return level, width


def _load_reference_job(
    path: str, image_shape: tuple[int, int, int], n_classes: int | None, affine: np.ndarray
) -> Any:
    """Worker: the reference as a label map, and the notes on how it was read (kind, layout,
    and a NIfTI whose geometry differs from the image's: mirrored, shifted)."""
    from segviewer.io.predictions import load_reference

    yield Progress(0, 1, f"Reading {Path(path).name}")
    notes: list[str] = []
    ref = load_reference(
        path, image_shape, n_classes_hint=n_classes, image_affine=affine, notes=notes
    )
    return ref, notes


def _compare_job(
    labels: np.ndarray, reference: np.ndarray, n_classes: int, voxel_mm3: float
) -> Any:
    """Worker: ``core.compare.iter_compare`` then per-slice error counts along each image axis.

    Returns ``(Comparison, (counts0, counts1, counts2))``; ``counts_k`` is
    ``(n_classes + 1, a_k)`` int64: row ``c`` = false positives + false negatives of class
    ``c`` in each slice across axis ``k`` (the voxels ``error_map`` colours for ``c``), last
    row = scored voxels where the labels differ. One pass over the disagreeing voxels only.
    """
    from segviewer.core.compare import iter_compare

    comparison = yield from iter_compare(labels, reference, n_classes, voxel_mm3)
    n = n_classes
    shape = labels.shape
    counts = [np.zeros((n + 1) * size, np.int64) for size in shape]
    step = max(1, (1 << 20) // max(1, shape[1] * shape[2]))
    starts = range(0, shape[0], step)
    for done, s in enumerate(starts, start=1):
        e = min(s + step, shape[0])
        p = np.asarray(labels[s:e])
        r = np.asarray(reference[s:e])
        scored = r < n
        if r.dtype.kind == "i":
            scored &= r >= 0
        wrong = (p != r) & scored
        idx = np.nonzero(wrong)
        pk = p[wrong].astype(np.int64)
        rk = r[wrong].astype(np.int64)
        has_class = pk < n  # an uncertain / invalid prediction is no class's false positive
        for axis, size in enumerate(shape):
            pos = idx[axis] + (s if axis == 0 else 0)
            c = counts[axis]
            c += np.bincount(rk * size + pos, minlength=c.size)
            c += np.bincount((pk * size + pos)[has_class], minlength=c.size)
            c += np.bincount(n * size + pos, minlength=c.size)
        yield Progress(done, len(starts), f"counting errors per slice ({e}/{shape[0]})")
    per_axis = tuple(c.reshape(n + 1, size) for c, size in zip(counts, shape, strict=True))
    return comparison, per_axis


def _load_prediction_job(
    path: str,
    image_shape: tuple[int, int, int],
    layout: str | None,
    kind: str | None,
    resample: bool = False,
) -> Any:
    from segviewer.io.predictions import load_prediction

    yield Progress(0, 1, f"{'Resampling' if resample else 'Reading'} {Path(path).name}")
    return load_prediction(path, image_shape, layout=layout, kind=kind, resample=resample)


def _load_classes_job(path: str) -> Any:
    from segviewer.io.classtables import load_class_table

    yield Progress(0, 1, f"Reading {Path(path).name}")
    return load_class_table(path)


class MainWindow(QMainWindow):
    """The viewer window.

    Data enters through :meth:`open_image` / :meth:`open_prediction` /
    :meth:`open_class_table` (files, loaded in workers) or :meth:`set_image` /
    :meth:`set_prediction` / :meth:`set_class_table` (objects already in memory, e.g. from
    inference or the Python API). :attr:`state` is the display model; :attr:`runner` runs
    every background job.

    Signals
    -------
    image_loaded(object), prediction_loaded(object)
        The new :class:`Volume` / :class:`Prediction` is shown.
    labels_ready(object)
        The whole-volume ``LabelResult`` (counts) for the current mask settings.
    error_shown(str)
        A job failed and its message was shown to the user.
    model_prediction_shown(object)
        A model's prediction (run in the window) replaced the one shown.
    closed()
        The window was closed.
    """

    image_loaded = Signal(object)
    prediction_loaded = Signal(object)
    labels_ready = Signal(object)
    error_shown = Signal(str)
    model_prediction_shown = Signal(object)
    closed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("segviewer")
        self.setAcceptDrops(True)
        self.settings = Settings()
        self.state = ViewerState(self)
        self.runner = JobRunner(self)
        self.label_result: Any = None
        self.image_path: str | None = None
        self.prediction_path: str | None = None
        self.classes_path: str | None = None
        self.reference_path: str | None = None
        self.reference_notes: list[str] = []  # how the reference file was read (geometry)
        self._error_walk: tuple[tuple[Any, ...], int] | None = None  # E / Shift+E position
        self._user_table: ClassTable | None = None
        self._windows: dict[str, tuple[float, float]] = {}
        self._pending: list[tuple[str, str, dict[str, Any]]] = []
        self._image_series: str | None = None
        self._three_view = False
        self._model_dialog: Any = None  # ui.model_panel.ModelDialog, created when first needed
        self.show_dialogs = True  # False for --screenshot: errors go to error_shown only

        # Canvases: the first is the single view; all three form the linked three-view.
        self.canvases = [SliceCanvas(self.state, v) for v in orientation.VIEWS]
        for c in self.canvases[1:]:
            c.legend_here = False
        central = QWidget()
        self._central_layout = QHBoxLayout(central)
        self._central_layout.setContentsMargins(0, 0, 0, 0)
        self._central_layout.setSpacing(3)
        for c in self.canvases:
            self._central_layout.addWidget(c, 1)
            c.hovered.connect(self._hovered)
        self.setCentralWidget(central)

        self.class_panel = ClassPanel(self.state)
        self._build_overlay_controls()
        self._build_docks()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()
        self.set_three_view(False)

        self.state.changed.connect(self._state_changed)
        self.runner.progress.connect(self._job_progress)
        self.runner.job_finished.connect(self._job_finished)
        self._restore_settings()
        self.resize(1280, 860) if not self.settings.get("window/geometry") else None

    # == public API ==========================================================================
    @property
    def canvas(self) -> SliceCanvas:
        """The main (single-view) canvas."""
        return self.canvases[0]

    def open_files(
        self,
        image: str | os.PathLike[str] | None = None,
        prediction: str | os.PathLike[str] | None = None,
        classes: str | os.PathLike[str] | None = None,
        *,
        layout: str | None = None,
        kind: str | None = None,
        frame: int = 0,
        series: str | None = None,
        model: str | os.PathLike[str] | None = None,
        trust_model: bool = False,
        model_card: str | os.PathLike[str] | None = None,
        model_options: dict[str, Any] | None = None,
        model_optional: bool = False,
        reference: str | os.PathLike[str] | None = None,
        resample: bool = False,
    ) -> None:
        """Load an image, then a prediction aligned to it, then a class table, then run a
        model on the image, then a reference segmentation, in that order.

        ``model_options``: model-card fields to override (``--model-option``).
        ``model_optional`` (``--demo``): without TensorFlow installed, skip the model with a
        status-bar note instead of an error (the prediction file stays shown).
        """
        queue: list[tuple[str, str, dict[str, Any]]] = []
        if image is not None:
            queue.append(("image", str(image), {"frame": frame, "series": series}))
        if prediction is not None:
            queue.append(
                (
                    "prediction",
                    str(prediction),
                    {"layout": layout, "kind": kind, "resample": resample},
                )
            )
        if classes is not None:
            queue.append(("classes", str(classes), {}))
        if model is not None:
            queue.append(
                (
                    "model",
                    str(model),
                    {
                        "trust": trust_model,
                        "card": model_card,
                        "overrides": model_options,
                        "optional": model_optional,
                    },
                )
            )
        if reference is not None:
            queue.append(("reference", str(reference), {}))
        self._pending = queue
        self._next_pending()

    def open_image(
        self, path: str | os.PathLike[str], *, frame: int = 0, series: str | None = None
    ) -> Job:
        """Load an image file in a worker; the current one stays until it succeeds."""
        path = str(path)
        self.settings.remember_folder(path)
        self._image_series = series
        return self.runner.start(
            "image",
            _load_image_job,
            path,
            frame,
            series,
            label=f"Loading {Path(path).name}",
            on_result=lambda res: self._image_loaded(path, res),
            on_error=self._job_error,
        )

    def open_prediction(
        self,
        path: str | os.PathLike[str],
        *,
        layout: str | None = None,
        kind: str | None = None,
        resample: bool = False,
    ) -> Job | None:
        """Load a prediction aligned to the current image, in a worker. A prediction made at
        another resolution is refused unless ``resample``; the window then offers to resample
        it onto the image grid (:meth:`ask_resample`)."""
        path = str(path)
        if self.state.volume is None:
            self._show_error("Open an image first: a prediction is aligned to the image's shape.")
            return None
        self.settings.remember_folder(path)

        def failed(exc: BaseException) -> None:
            from segviewer.core.layout import ShapeMismatch

            if (
                isinstance(exc, ShapeMismatch)
                and exc.resample_possible
                and self.show_dialogs
                and self.ask_resample(str(exc))
            ):
                self.open_prediction(path, layout=layout, kind=kind, resample=True)
                return
            self._job_error(exc)

        return self.runner.start(
            "prediction",
            _load_prediction_job,
            path,
            self.state.volume.shape,
            layout,
            kind,
            resample,
            label=f"Loading {Path(path).name}",
            on_result=lambda pred: self._prediction_loaded(path, pred, layout, kind),
            on_error=failed,
        )

    def ask_resample(self, message: str) -> bool:
        """Ask whether to resample a prediction of another size onto the image grid (linear for
        logits/probabilities, nearest for labels). Tests and scripts may replace this."""
        answer = QMessageBox.question(
            self,
            "Prediction of another size",
            message.replace("use --resample to resample", "resample")
            + "\n\nResample it onto the image grid now? Only do this if the prediction covers "
            "the same field of view as the image.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def open_reference(self, path: str | os.PathLike[str]) -> Job | None:
        """Load a reference segmentation (ground truth: label map, or probabilities / logits
        whose argmax is taken) on the image grid in a worker, then compare it with the
        prediction's labels. A reference of another shape is refused (error dialog) and the
        window keeps what it had."""
        path = str(path)
        if self.state.volume is None:
            self._show_error(
                "Open an image first: a reference segmentation is compared on the image's grid."
            )
            return None
        self.settings.remember_folder(path)
        n = self.state.n_classes() or None
        return self.runner.start(
            "reference",
            _load_reference_job,
            path,
            self.state.volume.shape,
            n,
            self.state.volume.affine,
            label=f"Loading reference {Path(path).name}",
            on_result=lambda ref: self._reference_loaded(path, ref),
            on_error=self._job_error,
        )

    def set_reference(self, reference: np.ndarray | None, *, source: str | None = None) -> None:
        """Compare the prediction with ``reference`` (``(a0, a1, a2)`` integer label map on
        the image grid) or close the reference (None). The comparison (Dice per class,
        per-slice error counts) runs in a worker once the labels are ready. A reference file
        still loading (:meth:`open_reference`) is cancelled: this one wins."""
        self.runner.cancel("reference")
        self._apply_reference(reference, source)

    def _apply_reference(self, reference: np.ndarray | None, source: str | None) -> None:
        self.runner.cancel("compare")
        self.state.set_reference(reference, source)
        self.reference_path = source if reference is not None else None
        self.reference_notes = []
        self._update_class_controls()
        if reference is None:
            self.statusBar().showMessage("Reference segmentation closed", 5000)
            return
        self._start_compare()

    def close_reference(self) -> None:
        """Stop comparing with the reference segmentation."""
        self.set_reference(None)

    def open_class_table(self, path: str | os.PathLike[str]) -> Job:
        """Load class names and colours (JSON/CSV/ITK-SNAP/FreeSurfer/Slicer) in a worker."""
        path = str(path)
        self.settings.remember_folder(path)
        return self.runner.start(
            "classes",
            _load_classes_job,
            path,
            label=f"Loading {Path(path).name}",
            on_result=lambda table: self._classes_loaded(path, table),
            on_error=self._job_error,
        )

    def set_image(self, volume: Volume, *, source_path: str | None = None) -> None:
        """Show ``volume`` (computes its display window in the GUI thread: small volumes only;
        files go through :meth:`open_image`)."""
        self._apply_image(volume, _window_presets(volume), source_path)

    def set_prediction(
        self, prediction: Prediction, provenance: dict[str, Any] | None = None
    ) -> None:
        """Show ``prediction`` over the current image (the single entry point for predictions:
        files, arrays and model inference all end here).

        ``provenance`` (where it came from: file, model, layout decisions) is kept for the
        export manifest and shown in View > Prediction details.
        """
        if self.state.volume is None:
            raise SegviewerError("open an image before setting a prediction")
        n = prediction.n_classes
        warnings: list[str] = []
        if self._user_table is not None:
            table, warnings = self._user_table.fitted(n)
        elif self.state.table is not None and len(self.state.table) == n:
            table = self.state.table
        else:
            table = ClassTable.default(n)
        self.state.set_prediction(prediction, table, provenance or {"source": prediction.source})
        self._update_class_controls()
        self.prediction_loaded.emit(prediction)
        self._start_labels()
        msg = f"Prediction: {Path(prediction.source).name}, {prediction.kind.value}, {n} classes"
        if warnings:
            msg += " — " + "; ".join(warnings)
        self.statusBar().showMessage(msg, 10000)
        self._update_title()

    def model_dialog(self, show: bool = True) -> Any:
        """The model dialog (:class:`~segviewer.ui.model_panel.ModelDialog`), created on first
        use; it also runs models while hidden."""
        if self._model_dialog is None:
            from segviewer.ui.model_panel import ModelDialog

            self._model_dialog = ModelDialog(self)
        if show:
            self._model_dialog.show()
            self._model_dialog.raise_()
        return self._model_dialog

    def open_model(
        self,
        path: str | os.PathLike[str],
        *,
        trust: bool = False,
        card: Any = None,
        run: bool = False,
        overrides: dict[str, Any] | None = None,
        show: bool = True,
    ) -> Job | None:
        """Open a TensorFlow/Keras model in a worker (TensorFlow is imported there); with
        ``run``, run it on the image once loaded. ``card``: a ``ModelCard`` or card file
        (default: the card next to the model). A refused unsafe model shows the dialog with
        the message and the trust checkbox."""
        return self.model_dialog(show).load_model(
            path, trust=trust, card=card, run=run, overrides=overrides
        )

    def run_model(self, overrides: dict[str, Any] | None = None) -> Job | None:
        """Run the open model on the image with the dialog's settings (plus ``overrides``)."""
        return self.model_dialog(False).run(overrides)

    def show_model_prediction(
        self,
        prediction: Prediction,
        provenance: dict[str, Any],
        model_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """Show a model's output (through :meth:`set_prediction`, keeping the provenance for
        the export manifest) and say so in the status bar."""
        replaced = self.state.prediction is not None
        self.prediction_path = str(model_path) if model_path is not None else None
        self.set_prediction(prediction, provenance)
        name = Path(str(model_path)).name if model_path is not None else "the model"
        seconds = provenance.get("seconds")
        took = f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""
        self.statusBar().showMessage(
            f"Showing the prediction of {name}{took}"
            + (", replacing the previous prediction" if replaced else "")
            + f": {prediction.kind.value}, {prediction.n_classes} classes",
            15000,
        )
        self.model_prediction_shown.emit(prediction)

    def save_logits(self, path: str | os.PathLike[str] | None = None) -> Job | None:
        """Save the shown model prediction's raw outputs (``.npy`` channels-first float32, or
        ``.nii.gz`` with the image geometry), atomically, in a worker. Asks for a path when
        ``path`` is None (the file dialog confirms overwriting)."""
        st = self.state
        if st.prediction is None or st.volume is None or "model" not in st.provenance:
            self._show_error("Run a model first: File > Save logits saves a model's outputs.")
            return None
        if path is None:
            stem = Path(self.image_path or "image").name.split(".")[0]
            path, _ = QFileDialog.getSaveFileName(
                self,
                "Save logits",
                str(Path(self.settings.last_folder()) / f"{stem}_logits.npy"),
                "NumPy (*.npy);;NIfTI (*.nii.gz *.nii)",
            )
            if not path:
                return None
            force = True
        else:
            force = False
        from segviewer.inference import save_logits

        target = str(path)

        def done(written: Any) -> None:
            self.statusBar().showMessage(f"Saved the model outputs to {written}", 8000)

        return self.runner.start(
            "save_logits",
            save_logits,
            st.prediction,
            target,
            affine=st.volume.affine,
            force=force,
            label=f"Saving {Path(target).name}",
            on_result=done,
            on_error=self._job_error,
        )

    def set_class_table(self, table: ClassTable) -> None:
        """Use these names/colours (fitted to the prediction's class count, with a warning)."""
        self._user_table = table
        if self.state.prediction is not None:
            fitted, warnings = table.fitted(self.state.prediction.n_classes)
            self.state.set_table(fitted)
            self._update_class_controls()
            if warnings:
                self.statusBar().showMessage("; ".join(warnings), 10000)

    def set_view(self, view: str) -> None:
        """Show ``view`` (axial/coronal/sagittal) in the single-view layout."""
        if view not in orientation.VIEWS:
            raise SegviewerError(
                f"view must be one of {', '.join(orientation.VIEWS)}, got {view!r}"
            )
        if self._three_view:
            self.set_three_view(False)
        self.canvas.set_view(view)
        self._view_actions[view].setChecked(True)

    def set_three_view(self, on: bool) -> None:
        """Three linked canvases (axial, coronal, sagittal) or one."""
        self._three_view = bool(on)
        self._three_action.setChecked(self._three_view)
        if on:
            for c, v in zip(self.canvases, orientation.VIEWS, strict=True):
                c.set_view(v)
            for a in self._view_actions.values():
                a.setChecked(False)
        for i, c in enumerate(self.canvases):
            visible = on or i == 0
            c.setVisible(visible)
            c.set_active(visible)
        self.state.set_options(crosshair=on or self._crosshair_check.isChecked())

    def reset_zoom(self) -> None:
        """Fit every canvas's image to its view."""
        for c in self.canvases:
            c.reset_zoom()

    def is_idle(self) -> bool:
        """No background job running or queued."""
        return self.runner.is_idle() and not self._pending

    def grab_canvas(self) -> QImage:
        """The canvas area (all visible views) as an image."""
        central = self.centralWidget()
        assert central is not None
        return central.grab().toImage()

    def save_screenshot(
        self, path: str | os.PathLike[str] | None = None, *, force: bool = False
    ) -> str | None:
        """Save the canvas to PNG (asks for a path when ``path`` is None); returns the path.

        Written atomically (``io.writers.write_png``: a temporary file renamed over the
        target), so a failed write never leaves a partial PNG. An existing file is only
        replaced with ``force`` or when the file dialog already asked about overwriting.
        """
        from segviewer.io.writers import write_png
        from segviewer.ui.canvas import qimage_to_array

        if path is None:
            folder = self.settings.last_folder()
            path, _ = QFileDialog.getSaveFileName(
                self, "Save screenshot", str(Path(folder) / "segviewer.png"), "PNG (*.png)"
            )
            if not path:
                return None
            force = True  # QFileDialog's own overwrite prompt has asked
        target = str(path)
        if not target.lower().endswith(".png"):
            target += ".png"
        try:
            write_png(qimage_to_array(self.grab_canvas()), target, force=force)
        except SegviewerError as exc:
            self._show_error(f"Could not save the screenshot: {exc}")
            return None
        except OSError as exc:
            self._show_error(
                f"Could not write {target} ({exc.strerror or exc}); check that the folder "
                "exists, is writable and has free space."
            )
            return None
        self.statusBar().showMessage(f"Saved {target}", 5000)
        return target

    def copy_screenshot(self) -> None:
        """Copy the canvas image to the clipboard."""
        QGuiApplication.clipboard().setImage(self.grab_canvas())
        self.statusBar().showMessage("Canvas copied to the clipboard", 3000)

    def show_export_dialog(self) -> Any:
        """Open the export dialog (non-modal); returns it."""
        if self.state.volume is None or self.state.prediction is None:
            self._show_error("Open an image and a prediction before exporting.")
            return None
        from segviewer.ui.export_dialog import ExportDialog

        dlg = ExportDialog(self)
        dlg.show()
        return dlg

    def run_export(self, request: Any, on_done: Callable[[Any], None] | None = None) -> Job:
        """Run ``io.export.run_export`` with the current data in a worker."""
        from segviewer.io.export import run_export

        st = self.state
        if st.volume is None or st.prediction is None or st.table is None:
            raise SegviewerError("open an image and a prediction before exporting")

        def done(result: Any) -> None:
            self.statusBar().showMessage(
                f"Export finished: {getattr(result, 'out_dir', '')}", 10000
            )
            if on_done is not None:
                on_done(result)

        return self.runner.start(
            "export",
            run_export,
            st.volume,
            st.prediction,
            st.table,
            request,
            provenance=dict(st.provenance),
            reference=st.reference,
            reference_source=st.reference_source,
            label="Exporting",
            on_result=done,
            on_error=self._job_error,
        )

    # == building the window ================================================================
    def _build_overlay_controls(self) -> None:
        box = QGroupBox("Overlay")
        form = QFormLayout(box)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(self.state.opacity * 100))
        self.opacity_slider.valueChanged.connect(lambda v: self.state.set_opacity(v / 100.0))
        self.opacity_slider.setToolTip("Overlay opacity")
        form.addRow("Opacity", self.opacity_slider)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["Fill", "Outline", "Fill + outline"])
        self.outline_spin = QSpinBox()
        self.outline_spin.setRange(1, 10)
        self.mode_combo.currentIndexChanged.connect(
            lambda i: self.state.set_mode(MODES[i], self.outline_spin.value())
        )
        self.outline_spin.setSuffix(" px")
        self.outline_spin.setToolTip("Outline width in voxels")
        self.outline_spin.valueChanged.connect(lambda w: self.state.set_mode(self.state.mode, w))
        row = QHBoxLayout()
        row.addWidget(self.mode_combo, 1)
        row.addWidget(self.outline_spin)
        form.addRow("Style", row)
        self.display_combo = QComboBox()
        self.display_combo.addItems(
            ["Labels", "Probability of class", "Confidence", "Entropy", "Errors vs reference"]
        )
        self.display_combo.setToolTip(
            "Labels: the predicted class. Heatmaps: probability of one class, confidence (top "
            "probability) or entropy (uncertainty, nats). Errors vs reference: where the "
            "prediction disagrees with the reference segmentation, for the class chosen below "
            "(red-orange false positive, blue false negative) or for all classes"
        )
        self.display_combo.currentIndexChanged.connect(self._display_changed)
        form.addRow("Show", self.display_combo)
        self.display_class_combo = QComboBox()
        self.display_class_combo.currentIndexChanged.connect(self._class_combo_changed)
        form.addRow("Class", self.display_class_combo)
        self.minconf_check = QCheckBox("Min. confidence")
        self.minconf_check.setToolTip(
            "Mark voxels whose top probability is below this as uncertain"
        )
        self.minconf_spin = QDoubleSpinBox()
        self.minconf_spin.setRange(0.0, 1.0)
        self.minconf_spin.setSingleStep(0.05)
        self.minconf_spin.setValue(0.6)
        self.minconf_check.toggled.connect(self._mask_settings_changed)
        self.minconf_spin.valueChanged.connect(self._mask_settings_changed)
        row2 = QHBoxLayout()
        row2.addWidget(self.minconf_check)
        row2.addWidget(self.minconf_spin)
        form.addRow(row2)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 1.0)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(0.5)
        self.threshold_spin.setToolTip("Sigmoid / multi-label outputs: foreground at or above")
        self.threshold_spin.valueChanged.connect(self._mask_settings_changed)
        form.addRow("Threshold", self.threshold_spin)
        self.legend_check = QCheckBox("Legend on canvas")
        self.legend_check.setChecked(True)
        self.legend_check.toggled.connect(lambda on: self.state.set_options(legend=on))
        self._crosshair_check = QCheckBox("Crosshair")
        self._crosshair_check.toggled.connect(
            lambda on: self.state.set_options(crosshair=on or self._three_view)
        )
        row3 = QHBoxLayout()
        row3.addWidget(self.legend_check)
        row3.addWidget(self._crosshair_check)
        form.addRow(row3)
        self.overlay_box = box

    def _build_docks(self) -> None:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.class_panel, 1)
        lay.addWidget(self.overlay_box)
        dock = QDockWidget("Classes", self)
        dock.setObjectName("classes_dock")
        dock.setWidget(panel)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        panel.setMinimumWidth(410)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.dock = dock

    def _build_toolbar(self) -> None:
        tb = QToolBar("View")
        tb.setObjectName("view_toolbar")
        tb.setMovable(False)
        self.addToolBar(tb)
        group = QActionGroup(self)
        self._view_actions: dict[str, QAction] = {}
        for i, v in enumerate(orientation.VIEWS):
            act = QAction(v.capitalize(), self)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            act.setToolTip(f"{v.capitalize()} view (Ctrl+{i + 1})")
            act.triggered.connect(lambda _=False, view=v: self.set_view(view))
            group.addAction(act)
            tb.addAction(act)
            self._view_actions[v] = act
        self._view_actions["axial"].setChecked(True)
        self._three_action = QAction("Three views", self)
        self._three_action.setCheckable(True)
        self._three_action.setShortcut(QKeySequence("Ctrl+4"))
        self._three_action.setToolTip("Axial, coronal and sagittal side by side, linked (Ctrl+4)")
        self._three_action.triggered.connect(self.set_three_view)
        tb.addAction(self._three_action)
        tb.addSeparator()
        tb.addWidget(QLabel(" Window "))
        self.window_combo = QComboBox()
        self.window_combo.addItems([p for p in WINDOW_PRESETS if p != SCANNER_PRESET])
        self.window_combo.setToolTip(
            "Grey-level window; right-drag on the image to adjust. DICOM images offer the "
            "scanner's own window (WindowCenter/WindowWidth)"
        )
        self.window_combo.activated.connect(self._window_preset)
        tb.addWidget(self.window_combo)
        # 4-D images (fMRI, diffusion, multi-echo): which volume is shown. Hidden otherwise.
        self._frame_label = QLabel(" Volume ")
        self.frame_spin = QSpinBox()
        self.frame_spin.setKeyboardTracking(False)
        self.frame_spin.setToolTip("Volume (frame) of a 4-D image, 0-based; the file is re-read")
        self.frame_spin.valueChanged.connect(self._frame_changed)
        self._frame_actions = (tb.addWidget(self._frame_label), tb.addWidget(self.frame_spin))
        for act in self._frame_actions:
            act.setVisible(False)
        reset = QAction("Reset zoom", self)
        reset.setShortcut(QKeySequence("Ctrl+0"))
        reset.triggered.connect(self.reset_zoom)
        tb.addAction(reset)
        tb.addSeparator()
        self._conv_label = QLabel("  Radiological: patient right on screen left ")
        self._conv_label.setStyleSheet("color: #ffd75e;")
        tb.addWidget(self._conv_label)
        self.toolbar = tb
        self._reset_zoom_action = reset

    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")

        def add(menu: Any, text: str, slot: Callable[[], Any], shortcut: Any = None) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(lambda _=False: slot())
            menu.addAction(act)
            return act

        add(file_menu, "Open &image…", self._ask_open_image, QKeySequence.StandardKey.Open)
        add(file_menu, "Open &prediction…", self._ask_open_prediction, "Ctrl+P")
        add(file_menu, "Open &class table…", self._ask_open_classes, "Ctrl+L")
        add(file_menu, "Open r&eference segmentation…", self._ask_open_reference, "Ctrl+R")
        file_menu.addSeparator()
        add(file_menu, "Open &model…", self._ask_open_model, "Ctrl+M")
        add(file_menu, "Open model &folder (SavedModel)…", self._ask_open_model_folder)
        add(file_menu, "Model settings and &run…", lambda: self.model_dialog(True))
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self.export_action = add(file_menu, "&Export…", self.show_export_dialog, "Ctrl+E")
        add(file_menu, "&Save screenshot…", self.save_screenshot, "Ctrl+Shift+S")
        self.save_logits_action = add(file_menu, "Save &logits…", self.save_logits)
        self.save_logits_action.setEnabled(False)
        file_menu.addSeparator()
        add(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = mb.addMenu("&Edit")
        add(edit, "&Copy screenshot", self.copy_screenshot, "Ctrl+Shift+C")
        view = mb.addMenu("&View")
        for act in self._view_actions.values():
            view.addAction(act)
        view.addAction(self._three_action)
        view.addAction(self._reset_zoom_action)
        self.radiological_action = QAction("Radiological convention (R on left)", self)
        self.radiological_action.setCheckable(True)
        self.radiological_action.setChecked(True)
        self.radiological_action.toggled.connect(self._set_radiological)
        view.addAction(self.radiological_action)
        view.addSeparator()
        add(view, "&Image information…", self.show_image_info, "Ctrl+I")
        add(view, "Prediction &details…", self._show_details)
        ref = mb.addMenu("&Reference")
        add(ref, "Open r&eference segmentation…", self._ask_open_reference)
        self.show_errors_action = add(
            ref, "Show &errors vs reference", lambda: self._choose_display("errors")
        )
        self.next_error_action = add(
            ref, "&Next slice with most errors", lambda: self.jump_to_error_slice(1), "E"
        )
        self.prev_error_action = add(
            ref, "&Previous slice with most errors", lambda: self.jump_to_error_slice(-1), "Shift+E"
        )
        self.close_reference_action = add(ref, "&Close reference", self.close_reference)
        self.reference_menu = ref
        classes = mb.addMenu("&Classes")
        add(classes, "Show &all", lambda: self.state.set_all_visible(True), "A")
        add(classes, "Show &none", lambda: self.state.set_all_visible(False), "N")
        for k in range(1, 10):
            add(classes, f"Toggle class {k}", partial(self._toggle_class, k), str(k))
        help_menu = mb.addMenu("&Help")
        add(
            help_menu, "&Keyboard and mouse", self._show_help, QKeySequence.StandardKey.HelpContents
        )
        add(help_menu, "&About segviewer", self._show_about)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.readout = QLabel("")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        sb.addWidget(self.readout, 1)
        self.job_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_jobs)
        for w in (self.job_label, self.progress_bar, self.cancel_button):
            sb.addPermanentWidget(w)
            w.hide()

    # == jobs and their results ==============================================================
    def cancel_jobs(self) -> None:
        """Cancel every running job (Cancel button); loaded data stays as it was."""
        self._pending.clear()
        self.runner.cancel_all()
        self.statusBar().showMessage("Cancelled", 3000)

    def _next_pending(self) -> None:
        if not self._pending:
            return
        kind, path, opts = self._pending.pop(0)
        if kind == "model":
            self._start_queued_model(path, opts)
        elif kind == "image":
            self.open_image(path, **opts)
        elif kind == "prediction":
            self.open_prediction(path, **opts)
        elif kind == "reference":
            self.open_reference(path)
        else:
            self.open_class_table(path)

    def _start_queued_model(self, path: str, opts: dict[str, Any]) -> None:
        from segviewer.ui.model_panel import tensorflow_available

        if not tensorflow_available():
            if opts.get("optional"):
                self._pending.clear()
                self.statusBar().showMessage(
                    "TensorFlow is not installed: showing the reference tissue probabilities "
                    "instead of the bundled model's prediction (pip install 'segviewer[model]' "
                    "to run models)"
                )
                return
            self._pending.clear()
            self._show_error(
                f"Running the model {Path(path).name} needs TensorFlow, which is not installed; "
                "install it with: pip install 'segviewer[model]'"
            )
            return
        if self.state.volume is None:
            self._pending.clear()
            self._show_error("Open an image to run the model on (segviewer IMAGE --model MODEL).")
            return
        dlg = self.model_dialog(False)
        dlg.continue_queue = True
        job = dlg.load_model(
            path,
            trust=bool(opts.get("trust")),
            card=opts.get("card"),
            overrides=opts.get("overrides"),
            run=True,
        )
        if job is None:
            dlg.continue_queue = False
            self._pending.clear()

    def _image_loaded(self, path: str, result: tuple[Any, Any]) -> None:
        if result[0] == SERIES_CHOICE:
            self._choose_series(path, result[1])
            return
        volume, windows = result
        self.settings.add_recent("image", path)
        self._apply_image(volume, windows, path)
        self._next_pending()

    def _frame_changed(self, frame: int) -> None:
        """Show another volume of a 4-D image (read in a worker; the prediction stays when its
        shape still matches)."""
        if self.image_path is not None:
            self.open_image(self.image_path, frame=frame, series=self._image_series)

    def _choose_series(self, folder: str, series: list[Any]) -> None:
        """A folder with several DICOM series: ask which one (``choose_series``), then load it
        with whatever was queued after the image (prediction, model...) still queued."""
        uid = self.choose_series(folder, series) if self.show_dialogs else None
        if uid is None:
            self._pending.clear()
            listing = "; ".join(f"{s.number}) {s.description or s.uid}" for s in series)
            message = (
                f"{folder} holds {len(series)} DICOM series ({listing}); none was opened. "
                "Open the folder again and pick one, or start with --series NUMBER"
            )
            self.statusBar().showMessage(message, 15000)
            self.error_shown.emit(message)
            return
        self.open_image(folder, series=uid)

    def choose_series(self, folder: str, series: list[Any]) -> str | None:
        """Show the series picker; returns the chosen SeriesInstanceUID or None (cancelled).
        Tests and scripts may replace this method."""
        from segviewer.ui.series_dialog import SeriesDialog

        dialog = SeriesDialog(folder, series, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.chosen_uid()

    def _apply_image(
        self, volume: Volume, windows: dict[str, tuple[float, float]], path: str | None
    ) -> None:
        self.runner.cancel("labels")
        # A model run on the previous image would arrive with that image's shape.
        self.runner.cancel("inference")
        self.image_path = path
        self._windows = windows
        n_frames = int(volume.metadata.get("n_frames", 1) or 1)
        self.frame_spin.blockSignals(True)
        self.frame_spin.setRange(0, max(0, n_frames - 1))
        self.frame_spin.setSuffix(f" / {n_frames - 1}")
        self.frame_spin.setValue(int(volume.metadata.get("frame", 0) or 0))
        self.frame_spin.blockSignals(False)
        for act in self._frame_actions:
            act.setVisible(n_frames > 1 and path is not None)
        names = [p for p in WINDOW_PRESETS if p in windows] + [CUSTOM_PRESET]
        self.window_combo.blockSignals(True)
        self.window_combo.clear()
        self.window_combo.addItems(names)
        # A DICOM's own window is what the radiographer chose for this series: start there.
        default = SCANNER_PRESET if SCANNER_PRESET in windows else WINDOW_PRESETS[0]
        self.window_combo.setCurrentText(default)
        self.window_combo.blockSignals(False)
        level, width = windows[default]
        had_pred = self.state.prediction is not None
        had_ref = self.state.reference is not None
        self.state.set_volume(volume, level, width)
        if had_ref and self.state.reference is None:
            self.reference_path = None
            self.statusBar().showMessage(
                "The reference segmentation was closed: its shape does not match the new image",
                10000,
            )
        if had_pred and self.state.prediction is None:
            self.prediction_path = None
            self.class_panel.set_counts(None)
            self.statusBar().showMessage(
                "The prediction was closed: its shape does not match the new image", 10000
            )
        self._update_class_controls()
        self.image_loaded.emit(volume)
        self._update_title()
        warnings = [str(w) for w in volume.metadata.get("warnings", ())]
        if warnings:
            self.statusBar().showMessage(
                "Image warning: " + " ".join(warnings) + " (View > Image information)", 30000
            )

    def _prediction_loaded(
        self, path: str, pred: Prediction, layout: str | None, kind: str | None
    ) -> None:
        self.settings.add_recent("prediction", path)
        self.prediction_path = path
        self.set_prediction(
            pred,
            {
                "source": path,
                "layout": pred.layout.name if pred.layout is not None else layout,
                "requested_layout": layout,
                "requested_kind": kind,
                "notes": list(pred.notes),
            },
        )
        self._next_pending()

    def _reference_loaded(self, path: str, result: tuple[np.ndarray, list[str]]) -> None:
        reference, notes = result
        self.settings.add_recent("reference", path)
        try:
            self._apply_reference(reference, path)
        except SegviewerError as exc:  # the image changed meanwhile
            self._job_error(exc)
            return
        self.reference_notes = list(notes)
        # the notes say how it was read, and warn when its geometry differs from the image's
        warnings = [n for n in notes if n.lower().startswith("warning")]
        self.statusBar().showMessage(
            f"Reference segmentation: {Path(path).name}"
            + (" — " + " ".join(warnings) if warnings else ""),
            30000 if warnings else 10000,
        )
        self._next_pending()

    def _start_compare(self) -> None:
        """Compare the current whole-volume labels with the reference, in a worker."""
        st = self.state
        res = self.label_result
        if st.reference is None or res is None or st.volume is None or st.table is None:
            return  # _labels_done starts it once the labels exist
        labels, reference = res.labels, st.reference
        voxel_mm3 = float(np.prod(st.volume.spacing))

        def done(result: Any) -> None:
            # superseded by new labels or another reference while it ran: drop it
            if self.label_result is not res or self.state.reference is not reference:
                return
            comparison, counts = result
            self.state.set_comparison(comparison, counts)
            mean = comparison.mean_dice()
            self.statusBar().showMessage(
                f"Compared with the reference: mean Dice (foreground) {mean:.3f}, "
                f"accuracy {comparison.accuracy:.3f}"
                + (
                    f"; {comparison.n_ignored:,} reference voxels have no class of the table"
                    if comparison.n_ignored
                    else ""
                )
                + "".join(
                    f" — {n}" for n in self.reference_notes if n.lower().startswith("warning")
                ),
                30000,
            )

        self.runner.start(
            "compare",
            _compare_job,
            labels,
            reference,
            len(st.table),
            voxel_mm3,
            label="Comparing with the reference",
            on_result=done,
            on_error=self._job_error,
        )

    def jump_to_error_slice(self, step: int = 1) -> int | None:
        """Walk the slices of the focused view ranked by error count, most errors first, for
        the class of the errors display (``state.error_class``; None = any disagreement).

        The first press (key E, ``step`` 1, or Shift+E, -1) shows the slice with the most
        errors; while the user stays on the slice it showed, E goes on to the next worse
        slice down the ranking and Shift+E back up. Returns the slice index, or None when
        there is none (no reference, no errors, end of the ranking).
        """
        canvas = next((c for c in self.canvases if c.graphics.hasFocus()), self.canvas)
        st = self.state
        if st.reference is None:
            self._show_error(
                "Open a reference segmentation first (File > Open reference segmentation…): "
                "E jumps to the slices where the prediction disagrees with it most."
            )
            return None
        counts = canvas.slice_error_counts()
        if counts is None:
            self.statusBar().showMessage(
                "The comparison with the reference is being computed…", 5000
            )
            return None
        order = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
        what = (
            "any class"
            if st.error_class is None or st.table is None
            else st.table[st.error_class].name
        )
        if not order:
            self.statusBar().showMessage(f"No errors for {what} in this view", 8000)
            return None
        # Continue the walk only from where the last jump left this view (same class, same
        # comparison); after scrolling elsewhere, start again at the worst slice.
        key = (id(canvas), canvas.view, st.error_class, id(st.error_counts))
        last = self._error_walk
        if last is not None and last[0] == key and last[1] == canvas.index:
            pos = order.index(canvas.index) + step if canvas.index in order else 0
            if not 0 <= pos < len(order):
                self.statusBar().showMessage(
                    f"No slice with {'fewer' if step > 0 else 'more'} errors for {what}", 8000
                )
                return None
        else:
            pos = 0
        target = order[pos]
        canvas.set_slice(target)
        self._error_walk = (key, target)
        self.statusBar().showMessage(
            f"Slice {target}: {int(counts[target]):,} error voxels for {what} "
            f"(rank {pos + 1} of {len(order)} slices with errors)",
            10000,
        )
        return target

    def _classes_loaded(self, path: str, table: ClassTable) -> None:
        self.settings.add_recent("classes", path)
        self.classes_path = path
        self.set_class_table(table)
        self._next_pending()

    def _start_labels(self) -> None:
        pred = self.state.prediction
        if pred is None:
            return
        self.label_result = None
        self.class_panel.set_counts(None)
        self.runner.cancel("compare")
        if self.state.comparison is not None:
            self.state.set_comparison(None, None)  # made with the old labels
        self.runner.start(
            "labels",
            masks.iter_labels,
            pred,
            self.state.mask_settings,
            label="Computing class volumes",
            on_result=self._labels_done,
            on_error=self._job_error,
        )

    def _labels_done(self, result: Any) -> None:
        self.label_result = result
        spacing = self.state.volume.spacing if self.state.volume is not None else None
        self.class_panel.set_counts(
            result.counts,
            spacing,
            n_uncertain=int(result.n_uncertain),
            n_invalid=int(result.n_invalid),
        )
        self.labels_ready.emit(result)
        self._start_compare()

    def _job_error(self, exc: BaseException) -> None:
        self._pending.clear()
        if isinstance(exc, SegviewerError):
            text = str(exc)
        else:
            text = f"Unexpected error ({type(exc).__name__}): {exc}. Please report it with the file that caused it."
        self._show_error(text)

    def _show_error(self, text: str) -> None:
        self.statusBar().showMessage(text, 15000)
        self.error_shown.emit(text)
        if self.show_dialogs:
            QMessageBox.critical(self, "segviewer", text)

    def _job_progress(self, job: Job) -> None:
        p = job.progress
        text = job.label if p is None or not p.message else f"{job.label}: {p.message}"
        self.job_label.setText(text)
        if p is None or p.total <= 0:
            self.progress_bar.setRange(0, 0)
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(round(p.fraction * 1000))
        self.cancel_button.setEnabled(any(j.cancellable for j in self.runner.jobs()))
        for w in (self.job_label, self.progress_bar, self.cancel_button):
            w.show()

    def _job_finished(self, job: Job) -> None:
        remaining = self.runner.jobs()
        if remaining:
            self._job_progress(remaining[-1])
        else:
            for w in (self.job_label, self.progress_bar, self.cancel_button):
                w.hide()

    # == reacting to the state ===============================================================
    def _state_changed(self, what: str) -> None:
        if what == "labels":
            self._start_labels()
        elif what == "window":
            current = (self.state.level, self.state.width)
            chosen = self.window_combo.currentText()
            if self._windows.get(chosen) != current:  # keep a chosen preset that matches
                match = [name for name, lw in self._windows.items() if lw == current]
                self.window_combo.setCurrentText(match[0] if match else CUSTOM_PRESET)
        elif what == "reference":
            self._update_class_controls()

    def _update_class_controls(self) -> None:
        st = self.state
        has_pred = st.prediction is not None
        self._fill_class_combo()
        has_ref = st.reference is not None
        if not has_ref and self.display_combo.currentIndex() == DISPLAYS.index("errors"):
            self.display_combo.blockSignals(True)
            self.display_combo.setCurrentIndex(DISPLAYS.index(st.display))
            self.display_combo.blockSignals(False)
        for act in (
            self.show_errors_action,
            self.next_error_action,
            self.prev_error_action,
            self.close_reference_action,
        ):
            act.setEnabled(has_ref)
        kind = st.prediction.kind.value if st.prediction is not None else ""
        self.threshold_spin.setEnabled(kind in ("sigmoid", "multilabel"))
        self.minconf_check.setEnabled(has_pred and kind != "labels")
        self.minconf_spin.setEnabled(has_pred and kind != "labels")
        for w in (self.display_combo, self.mode_combo, self.opacity_slider, self.outline_spin):
            w.setEnabled(has_pred)
        self.export_action.setEnabled(has_pred)
        self.save_logits_action.setEnabled(has_pred and "model" in st.provenance)

    def _fill_class_combo(self) -> None:
        """Class choices for the display: every class; "All classes" too for the errors."""
        st = self.state
        combo = self.display_class_combo
        combo.blockSignals(True)
        combo.clear()
        if st.table is not None and st.prediction is not None:
            combo.addItems([f"{c.index}  {c.name}" for c in st.table.classes])
            if st.display == "errors":
                combo.addItem("All classes (any disagreement)")
                k = st.error_class
                combo.setCurrentIndex(len(st.table) if k is None else k)
            else:
                combo.setCurrentIndex(st.display_class)
        combo.blockSignals(False)
        combo.setEnabled(st.prediction is not None and st.display in ("probability", "errors"))

    def _class_combo_changed(self, index: int) -> None:
        st = self.state
        if index < 0 or st.prediction is None:
            return
        if st.display == "errors":
            st.set_error_class(None if index >= st.n_classes() else index)
        elif st.display == "probability":
            st.set_display("probability", index)
        else:
            st.display_class = index

    def _choose_display(self, display: str) -> None:
        """Select ``display`` in the Show combobox, as the user would."""
        self.display_combo.setCurrentIndex(DISPLAYS.index(display))

    def _display_changed(self) -> None:
        display = DISPLAYS[self.display_combo.currentIndex()]
        st = self.state
        if st.prediction is None:
            return
        if display == "errors":
            if st.reference is None:
                self.display_combo.blockSignals(True)
                self.display_combo.setCurrentIndex(DISPLAYS.index(st.display))
                self.display_combo.blockSignals(False)
                self._show_error(
                    "Open a reference segmentation first (File > Open reference "
                    "segmentation…) to see where the prediction disagrees with it."
                )
                return
            st.set_display("errors")
            self._fill_class_combo()
            return
        if display != "labels" and st.prediction.kind.value == "labels":
            self.display_combo.blockSignals(True)
            self.display_combo.setCurrentIndex(0)
            self.display_combo.blockSignals(False)
            self._show_error(
                "This prediction is a label map: it has no probabilities to show as a heatmap."
            )
            return
        self.state.set_display(display, st.display_class if display == "probability" else None)
        self._fill_class_combo()

    def _mask_settings_changed(self) -> None:
        from segviewer.core.types import MaskSettings

        minconf = self.minconf_spin.value() if self.minconf_check.isChecked() else None
        self.state.set_mask_settings(
            MaskSettings(threshold=self.threshold_spin.value(), min_confidence=minconf)
        )

    def _window_preset(self, index: int) -> None:
        name = self.window_combo.itemText(index)
        if name in self._windows:
            self.state.set_window(*self._windows[name])

    def _toggle_class(self, k: int) -> None:
        if k < self.state.n_classes():
            self.state.set_visible(k, not self.state.visible[k])

    def _set_radiological(self, on: bool) -> None:
        self.state.set_radiological(on)
        self._conv_label.setText(
            "  Radiological: patient right on screen left "
            if on
            else "  Neurological: patient left on screen left "
        )

    def _hovered(self, ijk: tuple[int, int, int] | None) -> None:
        self.readout.setText(self.readout_text(ijk, self.sender()))

    def readout_text(self, ijk: tuple[int, int, int] | None, canvas: Any = None) -> str:
        """Status-bar text for voxel ``ijk``: voxel, world mm, intensity, class, reference
        class (when a reference is loaded), top-3 P."""
        st = self.state
        if ijk is None or st.volume is None:
            return ""
        x, y, z = orientation.voxel_to_world(st.volume.affine, ijk)
        value = st.volume.data[ijk]
        val = f"{float(value):.6g}"
        parts = [
            f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})",
            f"{x:.1f}, {y:.1f}, {z:.1f} mm (RAS)",
            f"value {val}",
        ]
        pred = st.prediction
        label: int | None = None
        if pred is not None and st.table is not None:
            canvas = canvas if isinstance(canvas, SliceCanvas) else self.canvas
            label = canvas.label_at(ijk)
            if label is not None:
                uncertain, invalid = reserved_labels(label_dtype(pred.n_classes))
                if label == uncertain:
                    name = "uncertain (below minimum confidence)"
                elif label == invalid:
                    name = "invalid (NaN/inf in the prediction)"
                elif label < len(st.table):
                    name = st.table[label].name
                else:
                    name = f"label {label}"
                parts.append(f"class: {name}")
        if st.reference is not None:
            ref = int(st.reference[ijk])
            scored = st.table is not None and 0 <= ref < len(st.table)
            if st.table is not None and scored:
                ref_name = st.table[ref].name
            else:
                ref_name = f"label {ref} (not scored)"
            if label is not None and scored:
                ref_name += " (agrees)" if label == ref else " (disagrees)"
            parts.append(f"reference: {ref_name}")
        if pred is not None and st.table is not None and pred.kind.value != "labels":
            probs = np.asarray(masks.slice_probabilities(pred, ijk), np.float64)
            order = np.argsort(-probs, kind="stable")[:3]
            top = ", ".join(
                f"{st.table[int(k)].name if int(k) < len(st.table) else int(k)} {probs[k]:.2f}"
                for k in order
            )
            parts.append(f"P: {top}")
        return "   ".join(parts)

    def _update_title(self) -> None:
        names = [Path(p).name for p in (self.image_path, self.prediction_path) if p]
        self.setWindowTitle("segviewer" + (" — " + " + ".join(names) if names else ""))

    # == dialogs ===============================================================================
    def _ask_open_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open image", self.settings.last_folder(), IMAGE_FILTER
        )
        if path:
            self.open_image(path)

    def _ask_open_prediction(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open prediction", self.settings.last_folder(), PREDICTION_FILTER
        )
        if path:
            self.open_prediction(path)

    def _ask_open_model(self) -> None:
        from segviewer.ui.model_panel import MODEL_FILTER

        path, _ = QFileDialog.getOpenFileName(
            self, "Open model", self.settings.last_folder(), MODEL_FILTER
        )
        if path:
            self.open_model(path)

    def _ask_open_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Open SavedModel folder", self.settings.last_folder()
        )
        if path:
            self.open_model(path)

    def _ask_open_reference(self) -> None:
        if self.state.volume is None:
            self._show_error(
                "Open an image first: a reference segmentation is compared on the image's grid."
            )
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Open reference segmentation", self.settings.last_folder(), PREDICTION_FILTER
        )
        if path:
            self.open_reference(path)

    def _ask_open_classes(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open class table", self.settings.last_folder(), CLASS_FILTER
        )
        if path:
            self.open_class_table(path)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for kind, path in recent:
            act = self.recent_menu.addAction(f"{kind}: {path}")
            act.triggered.connect(lambda _=False, k=kind, p=path: self._open_kind(k, p))

    def _open_kind(self, kind: str, path: str) -> None:
        if kind == "image":
            self.open_image(path)
        elif kind == "prediction":
            self.open_prediction(path)
        elif kind == "reference":
            self.open_reference(path)
        else:
            self.open_class_table(path)

    def image_info_text(self) -> str:
        """What View > Image information shows: source, format, shape, spacing, orientation,
        data type, value range, frames, notes and warnings of the loaded image."""
        vol = self.state.volume
        if vol is None:
            return "No image is loaded."
        data = vol.data
        codes = "".join(orientation.axis_codes(vol.affine))
        sp = ", ".join(f"{v:.4g}" for v in vol.spacing)
        lines = [
            f"Source: {vol.source}",
            f"Format: {vol.format}",
            f"Shape (voxels, axes 0/1/2): {' × '.join(str(n) for n in vol.shape)}",
            f"Voxel spacing: {sp} mm",
            f"Orientation (axis codes): {codes}",
            f"Data type: {data.dtype}",
            f"Value range: {float(np.min(data)):.6g} … {float(np.max(data)):.6g}",
        ]
        meta = vol.metadata
        n_frames = meta.get("n_frames")
        if isinstance(n_frames, int) and n_frames > 1:
            lines.append(f"Frame: {meta.get('frame', 0)} of {n_frames} (0-based)")
        scanner = scanner_window(vol)
        if scanner is not None:
            lines.append(f"Scanner window (DICOM): level {scanner[0]:.6g}, width {scanner[1]:.6g}")
        for note in meta.get("notes", ()):
            lines.append(f"Note: {note}")
        warnings = list(meta.get("warnings", ()))
        lines.append("Warnings: " + ("none" if not warnings else ""))
        lines += [f"  • {w}" for w in warnings]
        if self.state.reference is not None:
            lines.append(f"Reference segmentation: {self.state.reference_source or '<array>'}")
            lines += [f"  • {n}" for n in self.reference_notes]
        return "\n".join(lines)

    def show_image_info(self) -> QMessageBox:
        """View > Image information (non-modal, like ITK-SNAP's Image Information)."""
        box = QMessageBox(self)
        box.setWindowTitle("Image information")
        box.setIcon(
            QMessageBox.Icon.Warning
            if self.state.volume is not None and self.state.volume.metadata.get("warnings")
            else QMessageBox.Icon.Information
        )
        box.setText(self.image_info_text())
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setModal(False)
        box.show()
        return box

    def _show_details(self) -> None:
        st = self.state
        if st.prediction is None:
            QMessageBox.information(self, "Prediction details", "No prediction is loaded.")
            return
        p = st.prediction
        lines = [
            f"Source: {p.source}",
            f"Kind: {p.kind.value}",
            f"Classes: {p.n_classes}",
            f"Raw shape: {tuple(p.data.shape)}  layout: {getattr(p.layout, 'name', '?')}",
            *p.notes,
        ]
        for k, v in st.provenance.items():
            if k not in ("source", "notes"):
                lines.append(f"{k}: {v}")
        QMessageBox.information(self, "Prediction details", "\n".join(str(x) for x in lines))

    def _show_help(self) -> None:
        QMessageBox.information(
            self,
            "Keyboard and mouse",
            "Slices: mouse wheel, ↑/↓ or ←/→ (±1), PageUp/PageDown (±10), Home/End\n"
            "Zoom: Ctrl+wheel; pan: left-drag; reset zoom: Ctrl+0 or double right-click\n"
            "Window/level: right-drag (horizontal = width, vertical = level)\n"
            "Click: move the cursor (three-view: the other views follow)\n"
            "Views: Ctrl+1 axial, Ctrl+2 coronal, Ctrl+3 sagittal, Ctrl+4 three views\n"
            "Classes: A show all, N hide all, 1–9 toggle a class\n"
            "Reference: E / Shift+E next / previous slice with the most errors for the class "
            "chosen under Show > Errors vs reference\n"
            "Slice numbers are 0-based, like voxel indices and --slice: slice 47 / 93\n"
            "Views are radiological: the patient's right is on the screen's left.",
        )

    def _show_about(self) -> None:
        from segviewer import __version__

        QMessageBox.about(
            self,
            "About segviewer",
            f"segviewer {__version__}\nReview segmentation predictions on MRI.",
        )

    # == drag and drop ==========================================================================
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = self._paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.open_dropped(paths)

    @staticmethod
    def _paths_from_mime(mime: QMimeData) -> list[str]:
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    def open_dropped(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Open dropped files: images first, then predictions, then class tables, then a
        reference segmentation (a file named like one — "reference", "gt", "ground truth",
        "manual" — dropped while a prediction is shown; File > Open reference otherwise)."""
        have_image = self.state.volume is not None
        have_pred = self.state.prediction is not None
        shape = self.state.volume.shape if self.state.volume is not None else None
        kinds: dict[str, list[str]] = {
            "image": [],
            "prediction": [],
            "classes": [],
            "reference": [],
        }
        for p in paths:
            kind = classify_path(
                p,
                have_image or bool(kinds["image"]),
                shape,
                have_prediction=(have_pred and not kinds["image"]) or bool(kinds["prediction"]),
            )
            kinds[kind].append(str(p))
        self.open_files(
            kinds["image"][0] if kinds["image"] else None,
            kinds["prediction"][0] if kinds["prediction"] else None,
            kinds["classes"][0] if kinds["classes"] else None,
            reference=kinds["reference"][0] if kinds["reference"] else None,
        )

    # == settings ================================================================================
    def _restore_settings(self) -> None:
        s = self.settings
        geo = s.get("window/geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        st = s.get("window/state")
        if isinstance(st, QByteArray):
            self.restoreState(st)
        self.opacity_slider.setValue(round(100 * s.get_float("display/opacity", 0.5)))
        self.legend_check.setChecked(s.get_bool("display/legend", True))
        self.state.opacity = self.opacity_slider.value() / 100.0

    def save_settings(self) -> None:
        s = self.settings
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set("display/opacity", self.state.opacity)
        s.set("display/legend", self.state.show_legend)
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_settings()
        self._pending.clear()
        self.runner.wait_all(5000)
        super().closeEvent(event)
        self.closed.emit()

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once no job is running or queued (``--screenshot``)."""

        def check() -> None:
            if self.is_idle():
                QTimer.singleShot(0, callback)
            else:
                QTimer.singleShot(20, check)

        QTimer.singleShot(0, check)
