"""The window's decisions, without a widget: what to open, how to fit, what to compute next.

:class:`ViewerController` owns the :class:`~segviewer.ui.state.ViewerState`, the
:class:`~segviewer.ui.workers.JobRunner` and the :class:`~segviewer.ui.model_session.ModelSession`.
It opens files through one queue of typed :class:`OpenRequest` s (image, prediction, class
table, model, reference, in that order), fits class tables to predictions, runs labels →
comparison with the reference → per-slice error counts, exports, saves a model's outputs,
and reports every notice and error through one signal, :attr:`ViewerController.notified`.

The window, the scripting API (``segviewer.view``) and the dialogs call the controller; the
controller never calls a widget. When it needs the user (resample a prediction of another
size? which DICOM series?) it asks its :class:`ViewerView`; without a view, or when
:attr:`ViewerController.interactive` is False (scripts, ``--screenshot``), the answer is no.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal

from segviewer.core import masks
from segviewer.core.classes import ClassTable
from segviewer.core.compare import rank_error_slices
from segviewer.core.errors import SegviewerError, ShapeMismatch
from segviewer.core.orientation import initial_view, orientation_known
from segviewer.core.types import MaskSettings, Prediction, Volume
from segviewer.io import sniff
from segviewer.ui import jobs
from segviewer.ui.model_session import ModelSession
from segviewer.ui.settings import Settings
from segviewer.ui.state import Change, ViewerState
from segviewer.ui.workers import Job, JobRunner

__all__ = [
    "Notice",
    "NoticeLevel",
    "OpenKind",
    "OpenRequest",
    "ViewerController",
    "ViewerView",
]


class NoticeLevel(enum.Enum):
    INFO = "info"
    ERROR = "error"


def _kernel_key(pred: Prediction) -> tuple[object, ...]:
    """What a compiled kernel depends on: predictions alike share it."""
    return (pred.kind, pred.n_classes, pred.data.dtype.str, pred.layout.name)


#: Quiet time (no job, no mouse or key input) before the compiled kernels are loaded.
KERNEL_IDLE_MS = 1500
_INPUT_EVENTS = frozenset(
    {
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonRelease,
        QEvent.Type.MouseMove,
        QEvent.Type.Wheel,
        QEvent.Type.KeyPress,
        QEvent.Type.KeyRelease,
    }
)


@dataclass(frozen=True)
class Notice:
    """A message for the user: ``text``, how long a status line shows it, and for errors the
    exception (kept, as napari's notification manager keeps it)."""

    text: str
    level: NoticeLevel = NoticeLevel.INFO
    seconds: float = 10.0
    exception: BaseException | None = None
    #: an error the user has already seen (they cancelled a choice; the model dialog shows
    #: the trust question): no error dialog
    quiet: bool = False

    @property
    def is_error(self) -> bool:
        return self.level is NoticeLevel.ERROR


class OpenKind(enum.Enum):
    """What an :class:`OpenRequest` opens (also the order :meth:`ViewerController.open_files`
    queues them in)."""

    IMAGE = "image"
    PREDICTION = "prediction"
    CLASSES = "classes"
    MODEL = "model"
    REFERENCE = "reference"


@dataclass(frozen=True)
class OpenRequest:
    """One step of the loading queue. Fields that do not apply to ``kind`` stay default."""

    kind: OpenKind
    path: str
    frame: int = 0  # image: frame of a 4-D image
    series: str | None = None  # image: DICOM series UID or number
    layout: str | None = None  # prediction: explicit layout (--layout)
    value_kind: str | None = None  # prediction: logits/probabilities/... (--kind)
    resample: bool = False  # prediction: resample onto the image grid
    trust: bool = False  # model: allow code-carrying content
    card: Any = None  # model: ModelCard or card file
    overrides: Mapping[str, Any] | None = None  # model: card fields (--model-option)
    optional: bool = False  # model: without TensorFlow, a note instead of an error (--demo)


class ViewerView(Protocol):
    """The questions the controller may put to the user (the window answers them)."""

    def ask_resample(self, message: str) -> bool: ...

    def choose_series(self, folder: str, series: list[Any]) -> str | None: ...

    def choose_reading(
        self, path: str, choices: Any, image_shape: tuple[int, int, int]
    ) -> tuple[str | None, str | None, bool] | None:
        """Layout, kind and whether to resample (``io.predictions.PredictionChoices`` holds
        the detected values and the alternatives); None cancels."""
        ...


@dataclass
class _ErrorWalk:
    key: Hashable
    position: int


@dataclass
class _Queue:
    requests: list[OpenRequest] = field(default_factory=list)


class ViewerController(QObject):
    """Loads, fits, computes and reports for one window (see the module docstring).

    Signals
    -------
    notified(object)
        A :class:`Notice` (information or error) for the user.
    image_loaded(object), prediction_loaded(object)
        The new :class:`Volume` / :class:`Prediction` is in the state.
    labels_ready(object)
        The whole-volume ``LabelResult`` for the current mask settings.
    model_prediction_shown(object)
        A model's prediction (run in the window) replaced the one shown.
    """

    notified = Signal(object)
    image_loaded = Signal(object)
    prediction_loaded = Signal(object)
    labels_ready = Signal(object)
    model_prediction_shown = Signal(object)

    def __init__(
        self,
        state: ViewerState | None = None,
        *,
        settings: Settings | None = None,
        view: ViewerView | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.state = state if state is not None else ViewerState(self)
        self.runner = JobRunner(self)
        # predictions (kind, classes, dtype, layout) the labels kernel was prepared for
        self._kernels_tried: set[tuple[object, ...]] = set()
        self._kernel_pending: Prediction | None = None  # waits for a quiet moment
        self._watching_input = False
        self._idle_timer = QTimer(self)
        self._idle_timer.setSingleShot(True)
        self._idle_timer.setInterval(KERNEL_IDLE_MS)
        self._idle_timer.timeout.connect(self._quiet)
        self.runner.busy_changed.connect(self._runner_busy)
        self.settings = settings if settings is not None else Settings(persistent=False)
        self.view = view
        #: Ask the view (dialogs); False for scripts and --screenshot: errors are only notified
        self.interactive = True
        self.model = ModelSession(self, self)
        self._queue = _Queue()
        self._user_table: ClassTable | None = None
        self._user_table_raw: ClassTable | None = None  # as read, before classes_offset
        self.classes_offset = 0
        self._labelled: Prediction | None = None  # the prediction the labels job is for
        self._error_walk: _ErrorWalk | None = None
        self._openers: dict[OpenKind, Callable[[OpenRequest], Job | None]] = {
            OpenKind.IMAGE: self._open_image_request,
            OpenKind.PREDICTION: self._open_prediction_request,
            OpenKind.CLASSES: lambda r: self.open_class_table(r.path),
            OpenKind.MODEL: self._open_model_request,
            OpenKind.REFERENCE: lambda r: self.open_reference(r.path),
        }
        #: Review notes to record with an export (a test-set feature sets it: the open case's
        #: notes); ``None`` or an empty list records none.
        self.review_notes_provider: Callable[[], list[dict[str, Any]]] | None = None
        self.state.changed.connect(self._state_changed)

    # == reporting =============================================================================
    def report(
        self, text: str, *, error: bool = False, seconds: float = 10.0, quiet: bool = False
    ) -> None:
        """Tell the user ``text`` (an error when ``error``; ``quiet``: without an error
        dialog); errors stop the loading queue."""
        if error:
            self.cancel_queue()
        level = NoticeLevel.ERROR if error else NoticeLevel.INFO
        self.notified.emit(Notice(text, level, 15.0 if error else seconds, quiet=quiet))

    def report_error(self, exc: BaseException) -> None:
        """An exception from a job or a setter: its message for a SegviewerError, else a
        request to report the bug. Stops the loading queue."""
        self.cancel_queue()
        if isinstance(exc, SegviewerError):
            text = str(exc)
        else:
            text = (
                f"Unexpected error ({type(exc).__name__}): {exc}. "
                "Please report it with the file that caused it."
            )
        self.notified.emit(Notice(text, NoticeLevel.ERROR, 15.0, exc))

    # == the loading queue =====================================================================
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
        model_options: Mapping[str, Any] | None = None,
        model_optional: bool = False,
        reference: str | os.PathLike[str] | None = None,
        resample: bool = False,
    ) -> None:
        """Load an image, then a prediction aligned to it, then a class table, then run a
        model on the image, then a reference segmentation, in that order (any may be None).

        ``model_options``: model-card fields to override (``--model-option``).
        ``model_optional`` (``--demo``): without TensorFlow installed, skip the model with a
        note instead of an error (the prediction file stays shown)."""
        requests: list[OpenRequest] = []
        if image is not None:
            requests.append(OpenRequest(OpenKind.IMAGE, str(image), frame=frame, series=series))
        if prediction is not None:
            requests.append(
                OpenRequest(
                    OpenKind.PREDICTION,
                    str(prediction),
                    layout=layout,
                    value_kind=kind,
                    resample=resample,
                )
            )
        if classes is not None:
            requests.append(OpenRequest(OpenKind.CLASSES, str(classes)))
        if model is not None:
            requests.append(
                OpenRequest(
                    OpenKind.MODEL,
                    str(model),
                    trust=trust_model,
                    card=model_card,
                    overrides=model_options,
                    optional=model_optional,
                )
            )
        if reference is not None:
            requests.append(OpenRequest(OpenKind.REFERENCE, str(reference)))
        self.submit(requests)

    def submit(self, requests: Iterable[OpenRequest]) -> None:
        """Replace the loading queue with ``requests`` and start the first."""
        self._queue.requests = list(requests)
        self.advance()

    def queued(self) -> list[OpenRequest]:
        """Requests still waiting (the one being loaded is not among them)."""
        return list(self._queue.requests)

    def cancel_queue(self) -> None:
        self._queue.requests.clear()

    def register_opener(self, kind: OpenKind, opener: Callable[[OpenRequest], Job | None]) -> None:
        """Open requests of ``kind`` with ``opener`` (a feature in its own module adds its
        kind of file this way). The opener starts the work and calls :meth:`advance` when it
        succeeded; a failure goes to :meth:`report_error`, which stops the queue."""
        self._openers[kind] = opener

    def advance(self) -> None:
        """Start the next queued request (an opener calls it when its request succeeded)."""
        if not self._queue.requests:
            return
        request = self._queue.requests.pop(0)
        self._openers[request.kind](request)

    def open_dropped(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Open dropped files: images first, then predictions, then class tables, then a
        reference segmentation (``io.sniff.classify_path`` decides which is which)."""
        st = self.state
        have_image = st.volume is not None
        have_pred = st.prediction is not None
        shape = st.volume.shape if st.volume is not None else None
        kinds: dict[str, list[str]] = {k.value: [] for k in OpenKind}
        for p in paths:
            what = sniff.classify_path(
                p,
                have_image or bool(kinds["image"]),
                shape,
                have_prediction=(have_pred and not kinds["image"]) or bool(kinds["prediction"]),
            )
            kinds[what].append(str(p))
        self.open_files(
            kinds["image"][0] if kinds["image"] else None,
            kinds["prediction"][0] if kinds["prediction"] else None,
            kinds["classes"][0] if kinds["classes"] else None,
            reference=kinds["reference"][0] if kinds["reference"] else None,
        )

    def is_idle(self) -> bool:
        """No background job running or queued."""
        return self.runner.is_idle() and not self._queue.requests

    def cancel_all(self) -> None:
        """Cancel every running job and the queue; loaded data stays as it was."""
        self.cancel_queue()
        self.runner.cancel_all()
        self.report("Cancelled", seconds=3)

    # == image =================================================================================
    def _open_image_request(self, r: OpenRequest) -> Job:
        return self.open_image(r.path, frame=r.frame, series=r.series)

    def open_image(
        self, path: str | os.PathLike[str], *, frame: int = 0, series: str | None = None
    ) -> Job:
        """Load an image file in a worker; the current one stays until it succeeds."""
        path = str(path)
        self.settings.remember_folder(path)

        def done(result: jobs.LoadedImage | jobs.SeriesChoice) -> None:
            if isinstance(result, jobs.SeriesChoice):
                self._choose_series(result)
                return
            self.settings.add_recent("image", path)
            self._apply_image(result.volume, result.windows, result.default_preset(), path)
            self._series = series
            self.advance()

        return self.runner.start(
            "image",
            jobs.load_image_job,
            path,
            frame,
            series,
            label=f"Loading {Path(path).name}",
            on_result=done,
            on_error=self.report_error,
        )

    _series: str | None = None

    def set_frame(self, frame: int) -> Job | None:
        """Show another volume of a 4-D image (re-read in a worker; the prediction stays when
        its shape still matches)."""
        if self.state.image_path is None:
            return None
        return self.open_image(self.state.image_path, frame=frame, series=self._series)

    def _choose_series(self, choice: jobs.SeriesChoice) -> None:
        """A folder with several DICOM series: ask which one, then load it with whatever was
        queued after the image still queued."""
        uid = None
        if self.interactive and self.view is not None:
            uid = self.view.choose_series(choice.folder, choice.series)
        if uid is None:
            listing = "; ".join(f"{s.number}) {s.description or s.uid}" for s in choice.series)
            self.report(
                f"{choice.folder} holds {len(choice.series)} DICOM series ({listing}); none was "
                "opened. Open the folder again and pick one, or start with --series NUMBER",
                error=True,
                quiet=True,
            )
            return
        self.open_image(choice.folder, series=uid)

    def set_image(self, volume: Volume, *, source_path: str | None = None) -> None:
        """Show ``volume`` (its windows are computed here, in the GUI thread: small volumes
        only; files go through :meth:`open_image`)."""
        loaded = jobs.LoadedImage(volume, jobs.window_presets(volume))
        self._apply_image(volume, loaded.windows, loaded.default_preset(), source_path)

    def _apply_image(
        self,
        volume: Volume,
        windows: dict[str, tuple[float, float]],
        preset: str,
        path: str | None,
    ) -> None:
        # A model run on the previous image would arrive with that image's shape.
        self.runner.cancel("inference")
        st = self.state
        had_pred, had_ref = st.prediction is not None, st.reference is not None
        st.set_volume(volume, windows, preset, path=path)
        # the acquisition plane (a 2-D slice in its own plane), unless the user chose a view;
        # any other view of a single slice would be a one-voxel stripe
        if st.layout != "three" and (not st.layout_chosen or 1 in volume.shape):
            plane = initial_view(volume)
            if plane != st.layout:
                st.set_layout(plane, chosen=False)
        if had_pred and st.prediction is None:
            self.runner.cancel("labels")
            self.report("The prediction was closed: its shape does not match the new image")
        if had_ref and st.reference is None:
            self.runner.cancel("compare")
            self.report(
                "The reference segmentation was closed: its shape does not match the new image"
            )
        self.image_loaded.emit(volume)
        warnings = [str(w) for w in volume.metadata.get("warnings", ())]
        if warnings:
            self.report(
                "Image warning: " + " ".join(warnings) + " (View > Image information)", seconds=30
            )

    # == prediction ============================================================================
    def _open_prediction_request(self, r: OpenRequest) -> Job | None:
        return self.open_prediction(r.path, layout=r.layout, kind=r.value_kind, resample=r.resample)

    def open_prediction(
        self,
        path: str | os.PathLike[str],
        *,
        layout: str | None = None,
        kind: str | None = None,
        resample: bool = False,
    ) -> Job | None:
        """Load a prediction aligned to the current image, in a worker. A prediction made at
        another resolution is refused unless ``resample``; the view is then asked whether to
        resample it onto the image grid."""
        path = str(path)
        if self.state.volume is None:
            self.report(
                "Open an image first: a prediction is aligned to the image's shape.", error=True
            )
            return None
        self.settings.remember_folder(path)

        def done(loaded: jobs.LoadedPrediction) -> None:
            pred = loaded.prediction
            self.settings.add_recent("prediction", path)
            if loaded.names is not None and self._user_table is None:
                # the names the writing tool stored with the file (SEG segments, dseg.tsv...)
                self.report(f"Class names from {loaded.names_source}")
            self.set_prediction(
                pred,
                {
                    "source": path,
                    "layout": pred.layout.name if pred.layout is not None else layout,
                    "requested_layout": layout,
                    "requested_kind": kind,
                    "notes": list(pred.notes),
                    "resampling": None if pred.resampling is None else pred.resampling.as_dict(),
                },
                path=path,
                table=loaded.names if self._user_table is None else None,
            )
            if pred.resampling is not None:
                self.report(pred.resampling.describe(), seconds=30)
            self.advance()

        def failed(exc: BaseException) -> None:
            if (
                isinstance(exc, ShapeMismatch)
                and exc.resample_possible
                and self.interactive
                and self.view is not None
                and self.view.ask_resample(str(exc))
            ):
                self.open_prediction(path, layout=layout, kind=kind, resample=True)
                return
            self.report_error(exc)

        return self.runner.start(
            "prediction",
            jobs.load_prediction_job,
            path,
            self.state.volume.shape,
            layout,
            kind,
            resample,
            self.state.volume.affine,
            self._user_table is None,
            orientation_known(self.state.volume),
            self.state.volume.metadata,
            label=f"Loading {Path(path).name}",
            on_result=done,
            on_error=failed,
        )

    def open_prediction_asking(self, path: str | os.PathLike[str]) -> Job | None:
        """File > Open prediction: detect the layout and kind, let the user confirm or change
        them (``ViewerView.choose_reading``; resampling is offered only when no axis order
        fits exactly), then open. Without an interactive view it opens as detected."""
        path = str(path)
        volume = self.state.volume
        if volume is None:
            return self.open_prediction(path)
        if not (self.interactive and self.view is not None):
            return self.open_prediction(path)
        view = self.view

        def done(choices: Any) -> None:
            answer = view.choose_reading(path, choices, volume.shape)
            if answer is not None:
                layout, kind, resample = answer
                self.open_prediction(path, layout=layout, kind=kind, resample=resample)

        return self.runner.start(
            "prediction",
            jobs.prediction_choices_job,
            path,
            volume.shape,
            label=f"Reading {Path(path).name}",
            on_result=done,
            on_error=self.report_error,
        )

    def set_classes_offset(self, offset: int) -> None:
        """Move every row of the user's class table up by ``offset`` (``--classes-offset``;
        Classes > Table starts at the first structure): for tables whose row 0 is a
        structure, not the background. Applies to the table shown and to later ones."""
        offset = int(offset)
        if offset < 0:
            raise SegviewerError(f"a class-table offset must be 0 or more, got {offset}")
        self.classes_offset = offset
        if self._user_table_raw is not None:
            self.set_class_table(self._user_table_raw, path=self.state.classes_path)

    def fit_table(
        self, n_classes: int, table: ClassTable | None = None
    ) -> tuple[ClassTable, list[str]]:
        """The class table for a prediction of ``n_classes``: ``table`` (or the one the user
        opened) fitted to it, else the shown table when it has that many classes, else the
        default names and colours. Returns the table and the fitting warnings."""
        chosen = table if table is not None else self._user_table
        if chosen is not None:
            return chosen.fitted(n_classes)
        st = self.state
        if st.table is not None and len(st.table) == n_classes:
            return st.table, []
        return ClassTable.default(n_classes), []

    def set_prediction(
        self,
        prediction: Prediction,
        provenance: dict[str, Any] | None = None,
        *,
        path: str | None = None,
        table: ClassTable | None = None,
        threshold: float | None = None,
    ) -> list[str]:
        """Show ``prediction`` over the current image: the single entry point for predictions
        (files, arrays and model inference all end here). The class table is fitted once and
        the labels job started once.

        ``provenance`` (where it came from: file, model, layout decisions) is kept for the
        export manifest. ``table`` (a model card's names) becomes the user's table;
        ``threshold`` (a model card's) is set with the prediction. Returns the table-fitting
        warnings (also reported)."""
        st = self.state
        if st.volume is None:
            raise SegviewerError("open an image before setting a prediction")
        if table is not None:
            self._user_table = table
        n = prediction.n_classes
        fitted, warnings = self.fit_table(n)
        settings = None
        if threshold is not None:
            settings = MaskSettings(
                threshold=float(threshold), min_confidence=st.mask_settings.min_confidence
            )
        st.set_prediction(
            prediction,
            fitted,
            provenance or {"source": prediction.source},
            path=path,
            mask_settings=settings,
        )
        self.prediction_loaded.emit(prediction)
        msg = f"Prediction: {Path(prediction.source).name}, {prediction.kind.value}, {n} classes"
        if warnings:
            msg += " — " + "; ".join(warnings)
        self.report(msg)
        return warnings

    def show_model_prediction(
        self,
        prediction: Prediction,
        provenance: dict[str, Any],
        model_path: str | os.PathLike[str] | None = None,
        *,
        table: ClassTable | None = None,
        threshold: float | None = None,
    ) -> None:
        """Show a model's output (with the card's class table and threshold, in one step)."""
        replaced = self.state.prediction is not None
        path = str(model_path) if model_path is not None else None
        self.set_prediction(prediction, provenance, path=path, table=table, threshold=threshold)
        name = Path(path).name if path is not None else "the model"
        seconds = provenance.get("seconds")
        took = f" ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else ""
        self.report(
            f"Showing the prediction of {name}{took}"
            + (", replacing the previous prediction" if replaced else "")
            + f": {prediction.kind.value}, {prediction.n_classes} classes",
            seconds=15,
        )
        self.model_prediction_shown.emit(prediction)

    # == class table ===========================================================================
    def open_class_table(self, path: str | os.PathLike[str]) -> Job:
        """Load class names and colours (JSON/CSV/ITK-SNAP/FreeSurfer/Slicer) in a worker."""
        path = str(path)
        self.settings.remember_folder(path)

        def done(table: ClassTable) -> None:
            self.settings.add_recent("classes", path)
            self.set_class_table(table, path=path)
            self.advance()

        return self.runner.start(
            "classes",
            jobs.load_classes_job,
            path,
            label=f"Loading {Path(path).name}",
            on_result=done,
            on_error=self.report_error,
        )

    def set_class_table(self, table: ClassTable, *, path: str | None = None) -> None:
        """Use these names/colours (fitted to the prediction's class count, with a warning;
        moved up by :attr:`classes_offset`)."""
        self._user_table_raw = table
        table = table.shifted(self.classes_offset)
        self._user_table = table
        st = self.state
        if path is not None:
            st.classes_path = path
        if st.prediction is not None:
            fitted, warnings = table.fitted(st.prediction.n_classes)
            st.set_table(fitted)
            if warnings:
                self.report("; ".join(warnings))

    # == labels and the comparison =============================================================
    def _state_changed(self, what: Change) -> None:
        st = self.state
        if what is Change.LABELS or (
            what is Change.DATA
            and st.prediction is not None
            and st.prediction is not self._labelled
        ):
            self._start_labels()
        elif what is Change.DATA and st.prediction is None:
            self._labelled = None
        if what in (Change.DATA, Change.DISPLAY):
            self._start_heatmap()
        if what in (Change.DATA, Change.WINDOW):
            self._start_window()
        if what is Change.LABEL_RESULT:
            self._start_slice_counts()

    def _start_slice_counts(self) -> None:
        """Count the classes of every slice once the whole-volume labels are in, in the
        background, so the legend of a slice is a lookup (until then each shown slice is
        counted alone)."""
        st = self.state
        src = st.slices
        if src is None or not src.wants_slice_counts:
            return
        labels = src.volume_labels
        assert labels is not None

        def done(counts: tuple[np.ndarray, ...]) -> None:
            if st.slices is src:
                src.set_slice_counts(labels, counts)

        self.runner.start(
            "slice counts",
            src.slice_counts_job,
            label="Counting classes per slice",
            on_result=done,
            on_error=self.report_error,
        )

    def _start_heatmap(self) -> None:
        """Compute the shown heatmap over the whole volume once, in the background; slices
        are then looked up (until then each slice is computed alone)."""
        st = self.state
        src = st.slices
        if src is None or st.display not in ("probability", "confidence", "entropy"):
            return
        stat = st.display
        cls = st.display_class if stat == "probability" else None
        if src.has_stat(stat, cls):
            return

        def done(volume: np.ndarray) -> None:
            if st.slices is src:
                st.set_stat_volume(stat, cls, volume)

        self.runner.start(
            "heatmap",
            src.stat_job,
            stat,
            cls,
            label=f"Computing the {stat} map",
            on_result=done,
            on_error=self.report_error,
        )

    def _start_window(self) -> None:
        """Window the whole image for the shown level / width in the background, so grey
        slices are looked up; a newer window (a drag) supersedes it."""
        st = self.state
        greys = st.greys
        if greys is None or not greys.wants_volume or greys.has_window(st.level, st.width):
            return
        level, width = st.level, st.width

        def done(volume: np.ndarray) -> None:
            if st.greys is greys:
                st.set_windowed(level, width, volume)

        self.runner.start(
            "window",
            greys.window_job,
            level,
            width,
            label="Windowing the image",
            on_result=done,
            on_error=self.report_error,
        )

    def _start_labels(self) -> None:
        st = self.state
        pred = st.prediction
        if pred is None:
            return
        self._labelled = pred
        self.runner.cancel("compare")
        if st.label_result is not None:
            st.set_label_result(None)
        if st.comparison is not None:
            st.set_comparison(None, None)  # made with the old labels
        settings = st.mask_settings

        def done(result: masks.LabelResult) -> None:
            if st.prediction is not pred or st.mask_settings != settings:
                return
            st.set_label_result(result)
            self.labels_ready.emit(result)
            self._start_compare()
            self._prepare_kernel(pred)

        self.runner.start(
            "labels",
            masks.iter_labels,
            pred,
            settings,
            label="Computing class volumes",
            on_result=done,
            on_error=self.report_error,
        )

    def _prepare_kernel(self, pred: Prediction) -> None:
        """Once per kind of prediction: make the compiled kernels ready in the background
        (labels, frame blending), after the first label map (made by numpy meanwhile), so
        later ones (threshold changes, the next case of a test set) take one pass over the
        data.

        It waits until no job runs and the user has not touched mouse or keyboard for
        :data:`KERNEL_IDLE_MS`: numba's first load in a process pauses the event loop for
        40-90 ms in all (measured with an event-loop probe; module initialisation and the
        loading of machine code hold the interpreter lock), once per session; next to the
        comparison, statistics and slice counts that follow a label map it made their pauses
        longer too. While the user scrolls, nothing is loaded."""
        key = _kernel_key(pred)
        if key in self._kernels_tried:
            return
        self._kernel_pending = pred
        app = QCoreApplication.instance()
        if app is not None and not self._watching_input:
            app.installEventFilter(self)  # only while a preparation waits
            self._watching_input = True
        self._idle_timer.start()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """While a kernel preparation waits: any input restarts the wait for quiet."""
        if event.type() in _INPUT_EVENTS:
            self._idle_timer.start()
        return False

    def _runner_busy(self, busy: bool) -> None:
        if busy:
            self._idle_timer.stop()
        elif self._kernel_pending is not None:
            self._idle_timer.start()

    def _quiet(self) -> None:
        if self._kernel_pending is None:
            return
        if not self.runner.is_idle():
            return  # the runner's next idle moment starts the wait again
        self._start_kernel_job()

    def _stop_watching_input(self) -> None:
        app = QCoreApplication.instance()
        if app is not None and self._watching_input:
            app.removeEventFilter(self)
        self._watching_input = False

    def _start_kernel_job(self) -> None:
        pred, self._kernel_pending = self._kernel_pending, None
        self._stop_watching_input()
        if pred is None or pred is not self.state.prediction:
            return  # superseded: the next prediction's label map asks again
        key = _kernel_key(pred)
        if key in self._kernels_tried:
            return
        self._kernels_tried.add(key)
        self.runner.start(
            "kernels",
            jobs.prepare_kernel_job,
            pred,
            label="Preparing the compiled labels kernel",
            on_error=lambda exc: None,  # never a user's concern: numpy stays in use
        )

    def open_reference(self, path: str | os.PathLike[str]) -> Job | None:
        """Load a reference segmentation (ground truth: label map, or probabilities / logits
        whose argmax is taken) on the image grid in a worker, then compare it with the
        prediction's labels. A reference of another shape is refused and the state keeps
        what it had."""
        path = str(path)
        st = self.state
        if st.volume is None:
            self.report(
                "Open an image first: a reference segmentation is compared on the image's grid.",
                error=True,
            )
            return None
        self.settings.remember_folder(path)

        def done(result: jobs.LoadedReference) -> None:
            self.settings.add_recent("reference", path)
            try:
                self._apply_reference(result.labels, path, result.notes)
            except SegviewerError as exc:  # the image changed meanwhile
                self.report_error(exc)
                return
            warnings = [n for n in result.notes if n.lower().startswith("warning")]
            self.report(
                f"Reference segmentation: {Path(path).name}"
                + (" — " + " ".join(warnings) if warnings else ""),
                seconds=30 if warnings else 10,
            )
            self.advance()

        return self.runner.start(
            "reference",
            jobs.load_reference_job,
            path,
            st.volume.shape,
            st.n_classes() or None,
            st.volume.affine,
            st.volume.metadata,
            label=f"Loading reference {Path(path).name}",
            on_result=done,
            on_error=self.report_error,
        )

    def set_reference(self, reference: np.ndarray | None, *, source: str | None = None) -> None:
        """Compare the prediction with ``reference`` (``(a0, a1, a2)`` integer label map on
        the image grid) or close the reference (None). A reference file still loading is
        cancelled: this one wins."""
        self.runner.cancel("reference")
        self._apply_reference(reference, source, [])

    def close_reference(self) -> None:
        """Stop comparing with the reference segmentation."""
        self.set_reference(None)

    def _apply_reference(
        self, reference: np.ndarray | None, source: str | None, notes: list[str]
    ) -> None:
        self.runner.cancel("compare")
        self.state.set_reference(reference, source, notes)
        if reference is None:
            self.report("Reference segmentation closed", seconds=5)
            return
        self._start_compare()

    def _start_compare(self) -> None:
        """Compare the current whole-volume labels with the reference, in a worker."""
        st = self.state
        res = st.label_result
        if st.reference is None or res is None or st.volume is None or st.table is None:
            return  # the labels job starts it once the labels exist
        reference = st.reference

        def done(result: jobs.ComparedReference) -> None:
            # superseded by new labels or another reference while it ran: drop it
            if st.label_result is not res or st.reference is not reference:
                return
            comparison = result.comparison
            st.set_comparison(comparison, result.error_counts)
            self.report(
                f"Compared with the reference: mean Dice (foreground) "
                f"{comparison.mean_dice():.3f}, accuracy {comparison.accuracy:.3f}"
                + (
                    f"; {comparison.n_ignored:,} reference voxels have no class of the table"
                    if comparison.n_ignored
                    else ""
                )
                + "".join(f" — {n}" for n in st.reference_notes if n.lower().startswith("warning")),
                seconds=30,
            )

        self.runner.start(
            "compare",
            jobs.compare_job,
            res.labels,
            reference,
            len(st.table),
            float(np.prod(st.volume.spacing)),
            label="Comparing with the reference",
            on_result=done,
            on_error=self.report_error,
        )

    def error_slice(
        self, counts: np.ndarray | None, current: int, step: int, key: Hashable
    ) -> int | None:
        """The slice E (``step`` 1) or Shift+E (-1) goes to, from the per-slice error counts
        of one view (``counts``; None while the comparison is computed).

        The first press goes to the slice with the most errors; while the user stays on the
        slice the last jump showed (same ``key``: view, class, comparison), E goes on down
        the ranking and Shift+E back up. Reports what it did; returns None when there is no
        slice to go to."""
        st = self.state
        if st.reference is None:
            self.report(
                "Open a reference segmentation first (File > Open reference segmentation…): "
                "E jumps to the slices where the prediction disagrees with it most.",
                error=True,
            )
            return None
        if counts is None:
            self.report("The comparison with the reference is being computed…", seconds=5)
            return None
        order = rank_error_slices(counts)
        what = (
            "any class"
            if st.error_class is None or st.table is None
            else st.table[st.error_class].name
        )
        if not order:
            self.report(f"No errors for {what} in this view", seconds=8)
            return None
        last = self._error_walk
        if last is not None and last.key == key and last.position == current:
            pos = order.index(current) + step if current in order else 0
            if not 0 <= pos < len(order):
                self.report(
                    f"No slice with {'fewer' if step > 0 else 'more'} errors for {what}",
                    seconds=8,
                )
                return None
        else:
            pos = 0
        target = order[pos]
        self._error_walk = _ErrorWalk(key, target)
        self.report(
            f"Slice {target}: {int(counts[target]):,} error voxels for {what} "
            f"(rank {pos + 1} of {len(order)} slices with errors)"
        )
        return target

    # == report pictures =========================================================================
    def report_picture(
        self,
        kind: str,
        *,
        view: str | None = None,
        every: int = 5,
        worst: int = 9,
        width: int | None = None,
    ) -> np.ndarray:
        """A picture for a report, as shown now (colours, visibility, opacity, mode, window,
        convention), from ``io.render``: ``"slice"`` (the view's slice at the cursor),
        ``"lightbox"`` (every ``every``-th slice holding a class), ``"worst"`` (the ``worst``
        slices with the most errors against the reference, captioned with their counts) or
        ``"three"`` (the three views at the cursor). Every slice carries its caption,
        orientation letters, scale bar and legend; ``width`` (pixels) rescales the whole.

        Raises
        ------
        SegviewerError
            Nothing to draw yet, no comparison for ``"worst"``, an unknown kind.
        """
        from segviewer.core import orientation, overlay
        from segviewer.io import render

        st = self.state
        if st.volume is None or st.table is None or st.label_result is None:
            raise SegviewerError("Open an image and a prediction first (and let its labels load)")
        view = view or (st.layout if st.layout in orientation.VIEWS else "axial")
        labels = st.label_result.labels
        lut = overlay.build_lut(st.table, st.visible, st.opacity)
        common: dict[str, Any] = dict(
            window=(st.level, st.width),
            radiological=st.radiological,
            mode=st.mode,
            outline_width=st.outline_width,
            visible=st.visible,
        )

        def one(v: str, index: int, **kw: Any) -> np.ndarray:
            return render.slice_picture(st.volume, labels, st.table, lut, v, index, **common, **kw)

        cursor = st.cursor
        if kind == "slice":
            axes = orientation.display_axes(st.volume.affine, view, st.radiological)
            pic = one(view, int(cursor[axes.slice_axis]))
        elif kind == "three":
            pics, caps = [], []
            for v in orientation.VIEWS:
                axes = orientation.display_axes(st.volume.affine, v, st.radiological)
                pics.append(one(v, int(cursor[axes.slice_axis]), scale=None))
                caps.append("")
            ijk = ", ".join(str(int(c)) for c in cursor)
            pic = render.montage(pics, caps, columns=3, title=f"Crosshair at voxel ({ijk})")
        elif kind in ("lightbox", "worst"):
            axes = orientation.display_axes(st.volume.affine, view, st.radiological)
            if kind == "lightbox":
                slices = render.every_nth_slice(labels, axes, every)
                caps = [""] * len(slices)
                title = f"{view.capitalize()}: every {every} slices"
            else:
                if st.error_counts is None:
                    raise SegviewerError(
                        "Open a reference segmentation first (and let the comparison finish): "
                        "the worst slices are those with the most errors against it"
                    )
                per_axis = st.error_counts[axes.slice_axis]
                row = per_axis.shape[0] - 1 if st.error_class is None else st.error_class
                counts = np.asarray(per_axis[row])
                slices = render.worst_slices(counts, worst)
                if not slices:
                    raise SegviewerError(f"No errors in the {view} view: no worst slices to show")
                caps = [f"{int(counts[i]):,} error voxels" for i in slices]
                what = "all classes" if st.error_class is None else st.table[st.error_class].name
                title = f"{view.capitalize()}: the {len(slices)} slices with most errors ({what})"
            pics = [one(view, i, legend=False, scale=2) for i in slices]
            pic = render.montage(pics, caps, title=title)
            shown = np.stack([orientation.take_slice(labels, axes, i) for i in slices])
            pic = render.with_legend(pic, render.legend_entries(shown, st.table, st.visible))
        else:
            raise SegviewerError(
                f"unknown picture {kind!r}; choose slice, three, lightbox or worst"
            )
        return render.fit_width(pic, width) if width else pic

    def save_report_picture(
        self,
        path: str | os.PathLike[str],
        kind: str = "slice",
        *,
        dpi: float = 150.0,
        force: bool = False,
        **options: Any,
    ) -> Path | None:
        """:meth:`report_picture` saved as PNG or PDF (by the suffix) at ``dpi``; reports
        what it did; None when it could not."""
        from segviewer.io.render import write_picture

        try:
            pic = self.report_picture(kind, **options)
            target = write_picture(pic, Path(path), dpi=dpi, force=force)
        except SegviewerError as exc:
            self.report(f"Could not save the picture: {exc}", error=True)
            return None
        h, w = pic.shape[:2]
        self.report(f"Saved {target} ({w} x {h} pixels, {dpi:g} dpi)", seconds=8)
        return target

    # == model =================================================================================
    def _open_model_request(self, r: OpenRequest) -> Job | None:
        if not sniff.tensorflow_available():
            self.cancel_queue()
            if r.optional:
                self.report(
                    "TensorFlow is not installed: showing the reference tissue probabilities "
                    "instead of the bundled model's prediction (pip install 'segviewer[model]' "
                    "to run models)",
                    seconds=0,
                )
            else:
                self.report(
                    f"Running the model {Path(r.path).name} needs TensorFlow, which is not "
                    "installed; install it with: pip install 'segviewer[model]'",
                    error=True,
                )
            return None
        if self.state.volume is None:
            self.report(
                "Open an image to run the model on (segviewer IMAGE --model MODEL).", error=True
            )
            return None
        job = self.model.load_model(
            r.path,
            trust=r.trust,
            card=r.card,
            overrides=r.overrides,
            run=True,
            then=self.advance,
        )
        if job is None:
            self.cancel_queue()
        return job

    def open_model(
        self,
        path: str | os.PathLike[str],
        *,
        trust: bool = False,
        card: Any = None,
        run: bool = False,
        overrides: Mapping[str, Any] | None = None,
    ) -> Job | None:
        """Open a TensorFlow/Keras model in a child process (TensorFlow is imported and runs
        there); with ``run``, run it on the image once loaded."""
        return self.model.load_model(path, trust=trust, card=card, run=run, overrides=overrides)

    def run_model(self, overrides: Mapping[str, Any] | None = None) -> Job | None:
        """Run the open model on the image (its card plus ``overrides``)."""
        return self.model.run(overrides)

    def save_logits(self, path: str | os.PathLike[str], *, force: bool = False) -> Job | None:
        """Save the shown model prediction's raw outputs (``.npy`` channels-first float32, or
        ``.nii.gz`` with the image geometry), atomically, in a worker."""
        st = self.state
        if st.prediction is None or st.volume is None or "model" not in st.provenance:
            self.report(
                "Run a model first: File > Save logits saves a model's outputs.", error=True
            )
            return None
        from segviewer.inference import save_logits

        target = str(path)
        return self.runner.start(
            "save_logits",
            save_logits,
            st.prediction,
            target,
            affine=st.volume.affine,
            force=force,
            label=f"Saving {Path(target).name}",
            on_result=lambda written: self.report(
                f"Saved the model outputs to {written}", seconds=8
            ),
            on_error=self.report_error,
        )

    # == export ================================================================================
    def run_export(self, request: Any, on_done: Callable[[Any], None] | None = None) -> Job:
        """Run ``io.export.run_export`` with the state's data in a worker."""
        from segviewer.io.export import run_export

        st = self.state
        if st.volume is None or st.prediction is None or st.table is None:
            raise SegviewerError("open an image and a prediction before exporting")

        def done(result: Any) -> None:
            self.report(f"Export finished: {getattr(result, 'out_dir', '')}")
            if on_done is not None:
                on_done(result)

        if self.review_notes_provider is not None and not getattr(request, "review_notes", ()):
            import dataclasses

            notes = tuple(self.review_notes_provider() or ())
            if notes:
                request = dataclasses.replace(request, review_notes=notes)
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
            on_error=self.report_error,
        )

    def shutdown(self, msecs: int = 5000) -> None:
        """Stop the queue, the model's process and every worker (the window is closing)."""
        self.cancel_queue()
        self._idle_timer.stop()
        self._kernel_pending = None
        self._stop_watching_input()
        self.model.shutdown()
        self.runner.wait_all(msecs)
