"""One model in the window: open it, run it on the image, cancel, its card, save the card.

:class:`ModelSession` holds the model-run logic without any widget: it opens the model in a
child process (``inference.process.ModelProcess``: TensorFlow is imported and runs there, never
in the window's process, so the window never stalls on it), keeps the card the settings start
from and the card fields given with the model, runs ``inference.predict`` there on the state's
volume (a worker thread waits for it, relaying progress and cancel) and hands the result to its
host (the :class:`~segviewer.ui.controller.ViewerController`) in one call, with the class table
and threshold of the card, so the new prediction is fitted and labelled once. The child ends
when the model is replaced, when it fails to open, and when the window closes
(:meth:`ModelSession.shutdown`).

:class:`~segviewer.ui.model_panel.ModelDialog` is a view on a session: it shows what the
model says and lets the user edit the card; ``card_provider`` is the dialog's edited card.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QObject, Signal

from segviewer.core.classes import ClassTable
from segviewer.core.errors import SegviewerError
from segviewer.core.types import Prediction, PredictionKind
from segviewer.inference.card import ModelCard, card_path_for, find_card, load_card, save_card
from segviewer.ui.settings import Settings
from segviewer.ui.state import ViewerState
from segviewer.ui.workers import Job, JobRunner

if TYPE_CHECKING:
    from segviewer.inference.model import ModelHandle
    from segviewer.inference.process import ModelProcess

__all__ = ["ModelHost", "ModelSession", "card_diff", "is_trust_refusal", "n_classes_for"]


class ModelHost(Protocol):
    """What a session needs from its controller (``ui.controller.ViewerController``)."""

    state: ViewerState
    runner: JobRunner
    settings: Settings
    interactive: bool  # questions and errors in dialogs (False: scripts, --screenshot)

    def report(
        self, text: str, *, error: bool = False, seconds: float = 10.0, quiet: bool = False
    ) -> None: ...

    def report_error(self, exc: BaseException) -> None: ...

    def cancel_queue(self) -> None: ...

    def show_model_prediction(
        self,
        prediction: Prediction,
        provenance: dict[str, Any],
        model_path: str | os.PathLike[str] | None = None,
        *,
        table: ClassTable | None = None,
        threshold: float | None = None,
    ) -> None: ...


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


def card_diff(card: ModelCard, base: ModelCard) -> tuple[dict[str, Any], bool]:
    """Fields of ``card`` that differ from ``base`` (lists for tuples), and whether any of them
    was set back to None."""
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


class ModelSession(QObject):
    """The open model of one window, its card, and its runs.

    Signals
    -------
    opened(object)
        The :class:`~segviewer.inference.ModelHandle` that was loaded.
    refused(str)
        The safe load was refused (Lambda layer / custom class): the user decides on trust.
    open_failed(str)
        The model could not be opened (broken or unsupported file).
    run_finished(object)
        ``(prediction, provenance)`` of a run whose result is now shown.
    run_ended(str)
        A run ended without a result: ``"cancelled"`` or ``"failed"``.
    changed()
        Handle, card or busy state changed (views update what is enabled).
    """

    opened = Signal(object)
    refused = Signal(str)
    open_failed = Signal(str)
    run_finished = Signal(object)
    run_ended = Signal(str)
    changed = Signal()

    def __init__(self, host: ModelHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.host = host
        #: What the model's process reports about the open model (no Keras model in it).
        self.handle: ModelHandle | None = None
        #: The child process the model is open in (None before a model is opened).
        self.process: ModelProcess | None = None
        self.model_path: Path | None = None
        # The card the settings start from: given (--model-card, API), found next to the
        # model, or the defaults; ``card_given`` decides what predict() is told.
        self.base_card = ModelCard()
        self.card_source: str | None = None
        self.card_given = False
        self.trusted = False
        # Card fields given with the model (--model-option, Viewer.run_model overrides):
        # kept for every run of this model.
        self.overrides: dict[str, Any] = {}
        #: The card a run uses; a dialog sets its edited card here (default: base card
        #: with the given overrides).
        self.card_provider: Callable[[], ModelCard] | None = None
        self.open_job: Job | None = None
        self.run_job: Job | None = None
        self._then: Callable[[], None] | None = None  # what follows a successful open/run
        self._run_after_open = False
        host.runner.job_finished.connect(self._job_finished)

    # -- queries ---------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.run_job is not None

    def start_card(self) -> ModelCard:
        """The base card with the overrides given with the model (what a view shows first)."""
        return self.base_card.with_overrides(self.overrides)

    def card(self) -> ModelCard:
        """The card the next run uses (the view's edited card, else :meth:`start_card`)."""
        return self.card_provider() if self.card_provider is not None else self.start_card()

    # -- opening ---------------------------------------------------------------------------
    def load_model(
        self,
        path: str | os.PathLike[str],
        *,
        trust: bool = False,
        card: ModelCard | str | os.PathLike[str] | None = None,
        run: bool = False,
        overrides: Mapping[str, Any] | None = None,
        then: Callable[[], None] | None = None,
    ) -> Job | None:
        """Open a model in a new child process (TensorFlow is imported there), replacing the
        open one; with ``run`` run it when loaded.

        Parameters
        ----------
        path
            ``.keras`` / ``.h5`` file or SavedModel folder.
        trust
            Allow code-carrying content.
        card
            A :class:`ModelCard` or card file to start from; ``None``: the card next to the
            model, else the defaults.
        run
            Run the model on the image as soon as it is loaded.
        overrides
            Card fields to override (``--model-option``, ``Viewer.run_model``), kept for
            every run of this model.
        then
            Called after the open (and the run, with ``run``) succeeded: the controller's
            queue goes on.

        Returns
        -------
        Job or None
            The opening job; None when the card could not be read (error reported).
        """
        host = self.host
        p = Path(path).expanduser()
        host.runner.cancel("inference")
        host.settings.remember_folder(str(p))
        try:
            session = dict(overrides or {})
            source: str | None
            if isinstance(card, ModelCard):
                base, source, given = card, "given", True
            elif card is not None:
                base, source, given = load_card(card), str(card), True
            else:
                found = find_card(p)
                base = load_card(found) if found is not None else ModelCard()
                source, given = (None if found is None else str(found)), False
            base.with_overrides(session)  # unknown keys / bad values: say so now
        except SegviewerError as e:
            host.report_error(e)
            return None
        self.base_card, self.card_source, self.card_given = base, source, given
        self.model_path = p
        self.handle = None
        self.trusted = trust
        self.overrides = session
        self._run_after_open = run
        self._then = then
        host.runner.cancel("model")
        self._close_process()
        from segviewer.inference.process import ModelProcess

        self.process = process = ModelProcess()
        self.open_job = host.runner.start(
            "model",
            process.open,
            p,
            trust,
            label=f"Opening model {p.name}",
            on_result=self._opened,
            on_error=self._open_failed,
        )
        self.changed.emit()
        return self.open_job

    def reload(self, *, trust: bool) -> Job | None:
        """Open the same model again (the user changed their mind about trusting it)."""
        if self.model_path is None:
            return None
        card: ModelCard | None = self.base_card if self.card_given else None
        return self.load_model(self.model_path, trust=trust, card=card, overrides=self.overrides)

    def _opened(self, handle: ModelHandle) -> None:
        self.handle = handle
        self.open_job = None
        self.changed.emit()
        self.opened.emit(handle)
        if self._run_after_open:
            self._run_after_open = False
            if self.run(then=self._then) is None:
                self._then = None
        else:
            self._finish_step()

    def _finish_step(self) -> None:
        then, self._then = self._then, None
        if then is not None:
            then()

    def _open_failed(self, exc: BaseException) -> None:
        self.open_job = None
        self._close_process()
        self._run_after_open = False
        self._then = None
        self.changed.emit()
        if is_trust_refusal(exc):
            # Not a broken file: the user decides (the dialog shows the message and the
            # trust checkbox).
            self.host.cancel_queue()
            self.host.report(str(exc), error=True, quiet=True)
            self.refused.emit(str(exc))
            return
        self.open_failed.emit(str(exc))
        self.host.report_error(exc)

    # -- running ---------------------------------------------------------------------------
    def run(
        self, overrides: Mapping[str, Any] | None = None, then: Callable[[], None] | None = None
    ) -> Job | None:
        """Run the open model on the state's image in a worker.

        The shown prediction stays until the new one arrives; a cancelled or failed run leaves
        it shown. ``overrides`` are applied on top of :meth:`card`."""
        host = self.host
        if self.handle is None or self.process is None:
            host.report("Open a model first (File > Open model…).", error=True)
            return None
        if host.state.volume is None:
            host.report("Open an image first: the model runs on the image shown.", error=True)
            return None
        try:
            card = self.card().with_overrides(dict(overrides or {}))
        except SegviewerError as e:
            host.report_error(e)
            return None
        changed, cleared = card_diff(card, self.base_card)
        # predict() finds the card next to the model itself, so the manifest names its file;
        # a given card is passed, and the whole edited card when a field was set back to None
        # (overrides cannot express that).
        card_arg = card if cleared else (self.base_card if self.card_given else None)
        handle = self.handle
        self._then = then
        self.run_job = host.runner.start(
            "inference",
            self.process.predict,
            host.state.volume,
            card=card_arg,
            overrides=changed or None,
            label=f"Running {handle.path.name}",
            on_result=lambda res: self._ran(card, res),
            on_error=self._run_failed,
        )
        self.changed.emit()
        return self.run_job

    def cancel_run(self) -> bool:
        """Stop the running model at its next batch (its process is killed if that batch takes
        longer than ``inference.process.CANCEL_GRACE_S``); the shown prediction stays."""
        if self.host.runner.cancel("inference"):
            self.host.report(
                "Model run cancelled; the previous prediction is still shown", seconds=5
            )
            return True
        return False

    def _ran(self, card: ModelCard, result: tuple[Prediction, dict[str, Any]]) -> None:
        # The run is over once its result is here (the worker's "finished" comes later):
        # Run is available again to whoever reacts to run_finished.
        self.run_job = None
        self.changed.emit()
        prediction, provenance = result
        table = None
        if card.class_names is not None:
            table = ClassTable.from_names(
                card.class_names, card.class_colors, self.host.state.table
            )
        threshold = (
            card.threshold
            if prediction.kind in (PredictionKind.SIGMOID, PredictionKind.MULTILABEL)
            else None
        )
        # one call: table fitted once, threshold set with it, labels computed once
        self.host.show_model_prediction(
            prediction, provenance, self.model_path, table=table, threshold=threshold
        )
        self.run_finished.emit(result)
        self._finish_step()

    def _run_failed(self, exc: BaseException) -> None:
        self._then = None
        self.run_ended.emit("failed")
        self.host.report_error(exc)

    def _job_finished(self, job: Job) -> None:
        if job is self.run_job:
            self.run_job = None
            if job.cancelled:
                self._then = None
                self.run_ended.emit("cancelled")
            self.changed.emit()
        elif job is self.open_job:
            self.open_job = None
            self.changed.emit()

    # -- the model's process ----------------------------------------------------------------
    def shutdown(self) -> None:
        """The window is closing: stop the open and the run, end the model's process."""
        self.host.runner.cancel("inference")
        self.host.runner.cancel("model")
        self._close_process()
        self.handle = None

    def _close_process(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.close()  # returns at once; the child is reaped in the background

    # -- card file -------------------------------------------------------------------------
    def save_card(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write :meth:`card` to ``path`` (default ``<model>.segviewer.json``)."""
        if self.model_path is None and path is None:
            self.host.report("Open a model first: its card is saved next to it.", error=True)
            return None
        target = Path(path) if path is not None else card_path_for(self.model_path or "")
        try:
            card = self.card()
            save_card(card, target)
        except SegviewerError as e:
            self.host.report_error(e)
            return None
        self.base_card, self.card_source = card, str(target)
        self.host.report(f"Saved model card {target}", seconds=5)
        self.changed.emit()
        return target
