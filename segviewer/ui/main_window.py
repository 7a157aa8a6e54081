"""The segviewer main window: layout, docks, toolbar, menus, drag and drop, and the wiring.

Nothing is decided here. :class:`~segviewer.ui.controller.ViewerController` opens, fits,
computes and reports; :class:`~segviewer.ui.state.ViewerState` holds what is shown; the
canvases, the class panel and the overlay box are views bound to the state. This module
builds them, places them, and connects menus and keys to the controller and the state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QMimeData, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from segviewer.core import orientation
from segviewer.core.errors import SegviewerError
from segviewer.io import sniff
from segviewer.ui import info_dialogs
from segviewer.ui.canvas import SliceCanvas
from segviewer.ui.class_panel import ClassPanel
from segviewer.ui.controller import Notice, ViewerController
from segviewer.ui.overlay_controls import OverlayControls
from segviewer.ui.readout import readout_text
from segviewer.ui.settings import Settings
from segviewer.ui.state import Change
from segviewer.ui.testset_window import TestSetFeature
from segviewer.ui.view_toolbar import ViewToolbar
from segviewer.ui.workers import Job

if TYPE_CHECKING:
    from segviewer.core.masks import LabelResult
    from segviewer.ui.export_dialog import ExportDialog
    from segviewer.ui.model_panel import ModelDialog

__all__ = ["MainWindow"]


class MainWindow(QMainWindow):
    """The viewer window.

    :attr:`controller` does the work (its methods are the window's too: :meth:`open_image`,
    :meth:`set_prediction`, ...); :attr:`state` is what is shown; :attr:`runner` runs every
    background job. The controller's signals (``image_loaded``, ``prediction_loaded``,
    ``labels_ready``, ``model_prediction_shown``) are available on the window.

    Signals
    -------
    error_shown(str)
        An error was reported to the user (dialog, or only this signal when
        :attr:`show_dialogs` is False).
    closed()
        The window was closed.
    """

    error_shown = Signal(str)
    closed = Signal()

    def __init__(self, parent: QWidget | None = None, *, settings: Settings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("segviewer")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else Settings()
        self.controller = ViewerController(settings=self.settings, view=self, parent=self)
        self.state = self.controller.state
        self.runner = self.controller.runner
        self.image_loaded = self.controller.image_loaded
        self.prediction_loaded = self.controller.prediction_loaded
        self.labels_ready = self.controller.labels_ready
        self.model_prediction_shown = self.controller.model_prediction_shown
        # The controller's entry points, on the window too (its API before the controller).
        c = self.controller
        self.open_files, self.open_dropped = c.open_files, c.open_dropped
        self.open_image, self.open_prediction = c.open_image, c.open_prediction
        self.open_reference, self.open_class_table = c.open_reference, c.open_class_table
        self.set_image, self.set_prediction = c.set_image, c.set_prediction
        self.set_class_table, self.set_reference = c.set_class_table, c.set_reference
        self.close_reference, self.run_model = c.close_reference, c.run_model
        self.run_export, self.show_model_prediction = c.run_export, c.show_model_prediction
        self._model_dialog: ModelDialog | None = None

        # Canvases: the first is the single view; all three form the linked three-view. The
        # readout has its own line under them: notices in the status bar never hide it.
        self.canvases = [SliceCanvas(self.state, v) for v in orientation.VIEWS]
        self.canvas_area = QWidget()
        row = QHBoxLayout(self.canvas_area)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(3)
        for canvas in self.canvases:
            row.addWidget(canvas, 1)
            canvas.hovered.connect(self._hovered)
        self.readout = QLabel("")
        self.readout.setObjectName("readout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setMinimumHeight(self.readout.fontMetrics().height() + 6)
        self.readout.setContentsMargins(6, 0, 6, 0)
        central = QWidget()
        col = QVBoxLayout(central)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(2)
        col.addWidget(self.canvas_area, 1)
        col.addWidget(self.readout)
        self.setCentralWidget(central)

        self.class_panel = ClassPanel(self.state)
        self.overlay_controls = OverlayControls(self.state)
        self.overlay_controls.refused.connect(lambda text: self.controller.report(text, error=True))
        oc = self.overlay_controls
        self.overlay_box = oc
        self.opacity_slider, self.mode_combo, self.outline_spin = (
            oc.opacity_slider,
            oc.mode_combo,
            oc.outline_spin,
        )
        self.display_combo, self.display_class_combo = oc.display_combo, oc.display_class_combo
        self.minconf_check, self.minconf_spin = oc.minconf_check, oc.minconf_spin
        self.threshold_spin, self.legend_check = oc.threshold_spin, oc.legend_check
        self._build_docks()
        self._build_toolbar()
        self._build_menus()
        self._build_status_bar()

        self.state.changed.connect(self._state_changed)
        self.controller.notified.connect(self._notified)
        self.runner.progress.connect(self._job_progress)
        self.runner.job_finished.connect(self._job_finished)
        self._restore_settings()
        self._state_changed(Change.LAYOUT)
        self._state_changed(Change.DATA)
        # Test-set review (case table, slice table, notes, two predictions): docks and menus
        # that stay hidden until a test set or a second prediction is opened.
        self.testset = TestSetFeature(self)

    # == the controller's entry points, on the window ========================================
    @property
    def show_dialogs(self) -> bool:
        """Errors and questions in dialogs (False for --screenshot and scripts)."""
        return self.controller.interactive

    @show_dialogs.setter
    def show_dialogs(self, on: bool) -> None:
        self.controller.interactive = bool(on)

    @property
    def label_result(self) -> LabelResult | None:
        return self.state.label_result

    @property
    def image_path(self) -> str | None:
        return self.state.image_path

    @property
    def prediction_path(self) -> str | None:
        return self.state.prediction_path

    @property
    def classes_path(self) -> str | None:
        return self.state.classes_path

    @property
    def canvas(self) -> SliceCanvas:
        """The main (single-view) canvas."""
        return self.canvases[0]

    def is_idle(self) -> bool:
        """No background job running or queued."""
        return self.controller.is_idle()

    def model_dialog(self, show: bool = True) -> ModelDialog:
        """The model dialog (a view on ``controller.model``), created on first use."""
        if self._model_dialog is None:
            from segviewer.ui.model_panel import ModelDialog

            self._model_dialog = ModelDialog(self.controller.model, self)
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
        """Open a model (``controller.open_model``), showing the model dialog with ``show``."""
        self.model_dialog(show)
        return self.controller.open_model(
            path, trust=trust, card=card, run=run, overrides=overrides
        )

    # == questions the controller puts to the user (ViewerView) ================================
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

    def choose_series(self, folder: str, series: list[Any]) -> str | None:
        """Show the series picker; returns the chosen SeriesInstanceUID or None (cancelled).
        Tests and scripts may replace this method."""
        from segviewer.ui.series_dialog import SeriesDialog

        dialog = SeriesDialog(folder, series, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.chosen_uid()

    def choose_reading(
        self, path: str, choices: Any, image_shape: tuple[int, int, int]
    ) -> tuple[str | None, str | None, bool] | None:
        """Open prediction: layout and kind (detected ones preselected, in words), resampling
        only when no axis order fits. Tests and scripts may replace this method."""
        from segviewer.ui.prediction_dialog import PredictionDialog

        dialog = PredictionDialog(path, choices, image_shape, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.chosen()

    # == views ================================================================================
    def set_view(self, view: str) -> None:
        """Show ``view`` (axial/coronal/sagittal) in the single-view layout."""
        if view not in orientation.VIEWS:
            raise SegviewerError(
                f"view must be one of {', '.join(orientation.VIEWS)}, got {view!r}"
            )
        self.state.set_layout(view)

    def set_three_view(self, on: bool) -> None:
        """Three linked canvases (axial, coronal, sagittal) or one."""
        self.state.set_layout("three" if on else self.canvas.view)

    def reset_zoom(self) -> None:
        """Fit every canvas's image to its view."""
        for c in self.canvases:
            c.reset_zoom()

    def jump_to_error_slice(self, step: int = 1) -> int | None:
        """E / Shift+E in the focused view: the slices ranked by error count for the class of
        the errors display (``controller.error_slice``). Returns the slice shown, or None."""
        canvas = next((c for c in self.canvases if c.graphics.hasFocus()), self.canvas)
        st = self.state
        key = (id(canvas), canvas.view, st.error_class, id(st.error_counts))
        target = self.controller.error_slice(
            canvas.slice_error_counts() if st.reference is not None else None,
            canvas.index,
            step,
            key,
        )
        if target is not None:
            canvas.set_slice(target)
        return target

    def readout_text(self, ijk: tuple[int, int, int] | None, canvas: Any = None) -> str:
        """The readout for voxel ``ijk`` as ``canvas`` (default: the main one) shows it."""
        canvas = canvas if isinstance(canvas, SliceCanvas) else self.canvas
        label = (
            canvas.label_at(ijk) if ijk is not None and self.state.prediction is not None else None
        )
        return readout_text(self.state, ijk, label)

    def _hovered(self, ijk: tuple[int, int, int] | None) -> None:
        self.readout.setText(self.readout_text(ijk, self.sender()))

    # == pictures ==============================================================================
    def grab_canvas(self) -> QImage:
        """The canvas area (all visible views) as an image."""
        return self.canvas_area.grab().toImage()

    def save_screenshot(
        self, path: str | os.PathLike[str] | None = None, *, force: bool = False
    ) -> str | None:
        """Save the canvas to PNG (asks for a path when ``path`` is None); returns the path.

        Written atomically (``io.writers.write_png``), so a failed write never leaves a
        partial PNG. An existing file is only replaced with ``force`` or when the file dialog
        already asked about overwriting."""
        from segviewer.io.writers import write_png
        from segviewer.ui.canvas import qimage_to_array

        if path is None:
            folder = self.settings.last_folder()
            path, _ = QFileDialog.getSaveFileName(
                self, "Save screenshot", str(Path(folder) / "segviewer.png"), sniff.PNG_FILTER
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
            self.controller.report(f"Could not save the screenshot: {exc}", error=True)
            return None
        except OSError as exc:
            self.controller.report(
                f"Could not write {target} ({exc.strerror or exc}); check that the folder "
                "exists, is writable and has free space.",
                error=True,
            )
            return None
        self.controller.report(f"Saved {target}", seconds=5)
        return target

    def copy_screenshot(self) -> None:
        """Copy the canvas image to the clipboard."""
        QGuiApplication.clipboard().setImage(self.grab_canvas())
        self.controller.report("Canvas copied to the clipboard", seconds=3)

    # == dialogs ===============================================================================
    def show_export_dialog(self) -> ExportDialog | None:
        """Open the export dialog (non-modal); returns it."""
        if self.state.volume is None or self.state.prediction is None:
            self.controller.report("Open an image and a prediction before exporting.", error=True)
            return None
        from segviewer.ui.export_dialog import ExportDialog

        dlg = ExportDialog(self.controller, self.canvas.view, self)
        dlg.show()
        return dlg

    def show_picture_dialog(self) -> Any:
        """File > Save report picture (slice, three views, lightbox; PNG or PDF)."""
        from segviewer.ui.export_dialog import ReportPictureDialog

        dlg = ReportPictureDialog(self.controller, self.canvas.view, self)
        dlg.show()
        return dlg

    def save_logits(self, path: str | os.PathLike[str] | None = None) -> Job | None:
        """File > Save logits: asks for a path when ``path`` is None (the dialog confirms
        overwriting), then ``controller.save_logits``."""
        force = False
        if path is None and "model" in self.state.provenance:
            stem = Path(self.state.image_path or "image").name.split(".")[0]
            path, _ = QFileDialog.getSaveFileName(
                self,
                "Save logits",
                str(Path(self.settings.last_folder()) / f"{stem}_logits.npy"),
                "NumPy (*.npy);;NIfTI (*.nii.gz *.nii)",
            )
            if not path:
                return None
            force = True
        return self.controller.save_logits(path or "", force=force)

    def image_info_text(self) -> str:
        return info_dialogs.image_info_text(self.state)

    def show_image_info(self) -> QMessageBox:
        return info_dialogs.show_image_info(self, self.state)

    def _ask_open(self, title: str, file_filter: str, then: Callable[[str], Any]) -> None:
        path, _ = QFileDialog.getOpenFileName(self, title, self.settings.last_folder(), file_filter)
        if path:
            then(path)

    def _ask_open_model_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Open SavedModel folder", self.settings.last_folder()
        )
        if path:
            self.open_model(path)

    def _ask_open_reference(self) -> None:
        if self.state.volume is None:
            self.controller.open_reference("")  # reports "open an image first"
            return
        self._ask_open(
            "Open reference segmentation", sniff.PREDICTION_FILTER, self.controller.open_reference
        )

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent()
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        openers: dict[str, Callable[[str], Any]] = {
            "image": self.controller.open_image,
            "prediction": self.controller.open_prediction,
            "reference": self.controller.open_reference,
            "classes": self.controller.open_class_table,
        }
        for kind, path in recent:
            act = self.recent_menu.addAction(f"{kind}: {path}")
            act.triggered.connect(lambda _=False, k=kind, p=path: openers[k](p))

    # == building the window ====================================================================
    def _build_docks(self) -> None:
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.class_panel, 1)
        lay.addWidget(self.overlay_controls)
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
        tb = ViewToolbar(self.state, self)
        tb.frame_chosen.connect(self.controller.set_frame)
        tb.reset_zoom_requested.connect(self.reset_zoom)
        self.addToolBar(tb)
        self.toolbar = tb
        self._view_actions, self._three_action = tb.view_actions, tb.three_action
        self.window_combo, self.frame_spin = tb.window_combo, tb.frame_spin
        self.radiological_action = tb.radiological_action

    def _build_menus(self) -> None:
        mb = self.menuBar()
        c = self.controller

        def add(menu: QMenu, text: str, slot: Callable[[], Any], shortcut: Any = None) -> QAction:
            act = QAction(text, self)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.triggered.connect(lambda _=False: slot())
            menu.addAction(act)
            return act

        file_menu = mb.addMenu("&File")
        add(
            file_menu,
            "Open &image…",
            lambda: self._ask_open("Open image", sniff.IMAGE_FILTER, c.open_image),
            QKeySequence.StandardKey.Open,
        )
        self.open_prediction_action = add(
            file_menu,
            "Open &prediction…",
            lambda: self._ask_open(
                "Open prediction", sniff.PREDICTION_FILTER, c.open_prediction_asking
            ),
            "Ctrl+P",
        )
        add(
            file_menu,
            "Open &class table…",
            lambda: self._ask_open("Open class table", sniff.CLASS_FILTER, c.open_class_table),
            "Ctrl+L",
        )
        add(file_menu, "Open r&eference segmentation…", self._ask_open_reference, "Ctrl+R")
        file_menu.addSeparator()
        add(
            file_menu,
            "Open &model…",
            lambda: self._ask_open("Open model", sniff.MODEL_FILTER, self.open_model),
            "Ctrl+M",
        )
        add(file_menu, "Open model &folder (SavedModel)…", self._ask_open_model_folder)
        add(file_menu, "Model settings and &run…", lambda: self.model_dialog(True))
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self.export_action = add(file_menu, "&Export…", self.show_export_dialog, "Ctrl+E")
        self.picture_action = add(file_menu, "Save report &picture…", self.show_picture_dialog)
        add(file_menu, "&Save screenshot…", self.save_screenshot, "Ctrl+Shift+S")
        self.save_logits_action = add(file_menu, "Save &logits…", self.save_logits)
        file_menu.addSeparator()
        add(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit = mb.addMenu("&Edit")
        add(edit, "&Copy screenshot", self.copy_screenshot, "Ctrl+Shift+C")
        view = mb.addMenu("&View")
        for act in self._view_actions.values():
            view.addAction(act)
        view.addAction(self._three_action)
        view.addAction(self.toolbar.reset_zoom_action)
        view.addAction(self.radiological_action)
        view.addSeparator()
        add(view, "&Image information…", self.show_image_info, "Ctrl+I")
        add(
            view,
            "Prediction &details…",
            lambda: info_dialogs.show_prediction_details(self, self.state),
        )
        ref = mb.addMenu("&Reference")
        add(ref, "Open r&eference segmentation…", self._ask_open_reference)
        self.show_errors_action = add(
            ref,
            "Show &errors vs reference",
            lambda: self.display_combo.setCurrentIndex(self.display_combo.count() - 1),
        )
        self.next_error_action = add(
            ref, "&Next slice with most errors", lambda: self.jump_to_error_slice(1), "E"
        )
        self.prev_error_action = add(
            ref, "&Previous slice with most errors", lambda: self.jump_to_error_slice(-1), "Shift+E"
        )
        self.close_reference_action = add(ref, "&Close reference", c.close_reference)
        self.reference_menu = ref
        classes = mb.addMenu("&Classes")
        self.classes_offset_action = QAction(
            "Table starts at the first structure (offset &1)", self, checkable=True
        )
        self.classes_offset_action.setToolTip(
            "For class tables whose row 0 is a structure, not the background: row k names "
            "label k + 1 (--classes-offset 1)"
        )
        self.classes_offset_action.toggled.connect(lambda on: c.set_classes_offset(1 if on else 0))
        classes.addAction(self.classes_offset_action)
        classes.addSeparator()
        add(classes, "Show &all", lambda: self.state.set_all_visible(True), "A")
        add(classes, "Show &none", lambda: self.state.set_all_visible(False), "N")
        for k in range(1, 10):
            add(classes, f"Toggle class {k}", partial(self._toggle_class, k), str(k))
        help_menu = mb.addMenu("&Help")
        add(
            help_menu,
            "&Keyboard and mouse",
            lambda: info_dialogs.show_help(self),
            QKeySequence.StandardKey.HelpContents,
        )
        add(help_menu, "&About segviewer", lambda: info_dialogs.show_about(self))

    def _toggle_class(self, k: int) -> None:
        if k < self.state.n_classes():
            self.state.toggle_visible(k)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.job_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(180)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_jobs)
        for w in (self.job_label, self.progress_bar, self.cancel_button):
            sb.addPermanentWidget(w)
            w.hide()

    # == notices, jobs =========================================================================
    def _notified(self, notice: Notice) -> None:
        self.statusBar().showMessage(notice.text, round(notice.seconds * 1000))
        if notice.is_error:
            self.error_shown.emit(notice.text)
            if self.show_dialogs and not notice.quiet:
                QMessageBox.critical(self, "segviewer", notice.text)

    def cancel_jobs(self) -> None:
        """Cancel every running job (Cancel button); loaded data stays as it was."""
        self.controller.cancel_all()

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

    # == the state, shown ======================================================================
    def _state_changed(self, what: Change) -> None:
        st = self.state
        if what is Change.LAYOUT:
            self._show_layout()
        if what in (Change.DATA, Change.REFERENCE):
            has_pred, has_ref = st.prediction is not None, st.reference is not None
            for act in (
                self.show_errors_action,
                self.next_error_action,
                self.prev_error_action,
                self.close_reference_action,
            ):
                act.setEnabled(has_ref)
            self.export_action.setEnabled(has_pred)
            self.save_logits_action.setEnabled(has_pred and "model" in st.provenance)
            names = [Path(p).name for p in (st.image_path, st.prediction_path) if p]
            self.setWindowTitle("segviewer" + (" — " + " + ".join(names) if names else ""))

    def _show_layout(self) -> None:
        layout = self.state.layout
        three = layout == "three"
        for i, c in enumerate(self.canvases):
            if three:
                c.set_view(orientation.VIEWS[i])
            elif i == 0:
                c.set_view(layout)
            visible = three or i == 0
            c.setVisible(visible)
            c.set_active(visible)

    # == drag and drop =========================================================================
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = self._paths_from_mime(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.controller.open_dropped(paths)

    @staticmethod
    def _paths_from_mime(mime: QMimeData) -> list[str]:
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    # == settings ==============================================================================
    def _restore_settings(self) -> None:
        s = self.settings
        geo = s.get("window/geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        else:
            self.resize(1280, 860)
        dock_state = s.get("window/state")
        if isinstance(dock_state, QByteArray):
            self.restoreState(dock_state)
        self.state.set_opacity(s.get_float("display/opacity", self.state.opacity))
        self.state.set_options(legend=s.get_bool("display/legend", True))

    def save_settings(self) -> None:
        s = self.settings
        s.set("window/geometry", self.saveGeometry())
        s.set("window/state", self.saveState())
        s.set("display/opacity", self.state.opacity)
        s.set("display/legend", self.state.show_legend)
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.save_settings()
        self.controller.shutdown(5000)
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
