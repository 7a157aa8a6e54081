"""File > Export: build an ``io.export.ExportRequest`` and run it in a worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from segviewer.core import orientation
from segviewer.core.types import SegviewerError
from segviewer.ui.controller import Notice, ViewerController
from segviewer.ui.state import MODES
from segviewer.ui.workers import Job

__all__ = ["PICTURE_KINDS", "ExportDialog", "ReportPictureDialog"]

WHAT = (
    ("binary", "Binary mask per class"),
    ("labels", "Label map"),
    ("probabilities", "Probabilities (float32 per class)"),
    ("overlays", "Annotated slices (PNG)"),
    ("errors", "Error map vs reference (0 agree / 2 disagree)"),
)
FORMATS = (
    ("nifti", "NIfTI (keeps the image geometry)"),
    ("png", "PNG per slice"),
    ("npy", "NumPy .npy"),
    ("dicom-seg", "DICOM SEG (one file for the PACS; masks, or probabilities as FRACTIONAL)"),
)


class ExportDialog(QDialog):
    """Choose classes, outputs, formats, slices and folder; Export runs ``run_export``.

    Signals
    -------
    export_finished(object)
        The ``ExportResult`` of a successful export.
    """

    export_finished = Signal(object)

    def __init__(
        self, controller: ViewerController, view: str = "axial", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export masks and pictures")
        self.controller = controller
        st = controller.state
        assert st.table is not None and st.volume is not None
        self.job: Job | None = None
        self.result: Any = None

        self.class_list = QListWidget()
        for info in st.table.classes:
            item = QListWidgetItem(f"{info.index}  {info.name}")
            item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
            on = info.index != 0 and st.visible[info.index]
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, info.index)
            self.class_list.addItem(item)
        classes_box = QGroupBox("Classes (binary masks, overlays)")
        QVBoxLayout(classes_box).addWidget(self.class_list)

        self.what_checks: dict[str, QCheckBox] = {}
        what_box = QGroupBox("What")
        wl = QVBoxLayout(what_box)
        has_ref = st.reference is not None
        for key, text in WHAT:
            if key == "errors" and not has_ref:
                continue  # offered only with a reference segmentation to compare with
            cb = QCheckBox(text)
            cb.setChecked(key in ("binary", "labels"))
            self.what_checks[key] = cb
            wl.addWidget(cb)
        if has_ref:
            self.what_checks["errors"].setToolTip(
                "Where the label map disagrees with the reference segmentation "
                f"({Path(st.reference_source or '<array>').name}); the manifest records "
                "Dice, sensitivity and precision per class either way"
            )
        self.format_checks: dict[str, QCheckBox] = {}
        fmt_box = QGroupBox("Formats")
        fl = QVBoxLayout(fmt_box)
        for key, text in FORMATS:
            cb = QCheckBox(text)
            cb.setChecked(key == "nifti")
            self.format_checks[key] = cb
            fl.addWidget(cb)
        # A SEG carries the patient's and study's identifiers: an explicit, separate choice.
        from segviewer.io.dicomseg import IDENTIFIER_NOTICE, seg_unavailable

        self.identifiers_check = QCheckBox("Include patient and study identifiers (DICOM SEG)")
        self.identifiers_check.setToolTip(
            f"{IDENTIFIER_NOTICE}. No other export carries them; a SEG is only written when "
            "this is ticked."
        )
        self.identifiers_note = QLabel(IDENTIFIER_NOTICE + ".")
        self.identifiers_note.setWordWrap(True)
        self.identifiers_note.setStyleSheet("color: #e0b060;")
        fl.addWidget(self.identifiers_check)
        fl.addWidget(self.identifiers_note)
        seg_check = self.format_checks["dicom-seg"]
        why_not = seg_unavailable(st.volume)
        if why_not is not None:
            seg_check.setEnabled(False)
            seg_check.setToolTip(why_not)
        seg_check.toggled.connect(self._seg_toggled)
        self._seg_toggled(seg_check.isChecked())

        slices_box = QGroupBox("Slices (PNG outputs)")
        sg = QGridLayout(slices_box)
        self.view_combo = QComboBox()
        self.view_combo.addItems(list(orientation.VIEWS))
        self.view_combo.setCurrentText(view)
        self.view_combo.currentTextChanged.connect(self._view_changed)
        self.slice_current = QRadioButton("Current")
        self.slice_range = QRadioButton("Range")
        self.slice_all = QRadioButton("All")
        self.slice_current.setChecked(True)
        group = QButtonGroup(self)
        for b in (self.slice_current, self.slice_range, self.slice_all):
            group.addButton(b)
        self.range_from = QSpinBox()
        self.range_to = QSpinBox()
        sg.addWidget(QLabel("View"), 0, 0)
        sg.addWidget(self.view_combo, 0, 1, 1, 3)
        sg.addWidget(self.slice_current, 1, 0)
        sg.addWidget(self.slice_all, 1, 1)
        sg.addWidget(self.slice_range, 2, 0)
        sg.addWidget(self.range_from, 2, 1)
        sg.addWidget(QLabel("to"), 2, 2)
        sg.addWidget(self.range_to, 2, 3)
        self._view_changed(view)

        look_box = QGroupBox("Overlay pictures")
        lf = QFormLayout(look_box)
        self.opacity_spin = QDoubleSpinBox()
        self.opacity_spin.setRange(0.0, 1.0)
        self.opacity_spin.setSingleStep(0.05)
        self.opacity_spin.setValue(st.opacity)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(list(MODES))
        self.mode_combo.setCurrentText(st.mode)
        self.legend_check = QCheckBox("Legend")
        self.legend_check.setChecked(st.show_legend)
        self.annotate_check = QCheckBox("Caption, orientation letters, scale bar")
        self.annotate_check.setChecked(True)
        self.annotate_check.setToolTip(
            "Annotated slices say their view, slice index and position in mm, carry the "
            "orientation letters at their edges and a scale bar"
        )
        self.scale_spin = QSpinBox()
        self.scale_spin.setRange(0, 16)
        self.scale_spin.setSpecialValueText("automatic (≥ 512 px)")
        self.scale_spin.setSuffix(" ×")
        self.scale_spin.setToolTip("Enlarge annotated slices this many times (nearest neighbour)")
        lf.addRow("Opacity", self.opacity_spin)
        lf.addRow("Style", self.mode_combo)
        lf.addRow("Enlarge", self.scale_spin)
        lf.addRow(self.legend_check)
        lf.addRow(self.annotate_check)

        self.folder_edit = QLineEdit(
            str(Path(controller.settings.last_folder()) / "segviewer_export")
        )
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.force_check = QCheckBox("Overwrite existing files")
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Folder"))
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Close")
        self.cancel_button.clicked.connect(self._cancel_or_close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.cancel_button)

        grid = QGridLayout()
        grid.addWidget(classes_box, 0, 0, 2, 1)
        grid.addWidget(what_box, 0, 1)
        grid.addWidget(fmt_box, 1, 1)
        grid.addWidget(slices_box, 2, 0)
        grid.addWidget(look_box, 2, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(grid)
        lay.addLayout(folder_row)
        lay.addWidget(self.force_check)
        lay.addWidget(self.message)
        lay.addLayout(buttons)
        controller.runner.progress.connect(self._progress)
        controller.notified.connect(self._notified)

    # -- request ---------------------------------------------------------------------------
    def build_request(self) -> Any:
        """The ``ExportRequest`` the dialog's controls describe (SegviewerError if invalid)."""
        from segviewer.io.export import ExportRequest

        st = self.controller.state
        classes = tuple(
            int(self.class_list.item(i).data(Qt.ItemDataRole.UserRole))
            for i in range(self.class_list.count())
            if self.class_list.item(i).checkState() == Qt.CheckState.Checked
        )
        what = frozenset(k for k, cb in self.what_checks.items() if cb.isChecked())
        formats = frozenset(k for k, cb in self.format_checks.items() if cb.isChecked())
        if not what:
            raise SegviewerError("choose at least one thing to export (masks, label map, ...)")
        if not formats and what - {"overlays"}:
            raise SegviewerError("choose at least one format (NIfTI, PNG, NumPy or DICOM SEG)")
        allow_identifiers = "dicom-seg" in formats and self.identifiers_check.isChecked()
        if "dicom-seg" in formats and not allow_identifiers:
            raise SegviewerError(
                "a DICOM SEG carries the patient and study identifiers; tick 'Include patient "
                "and study identifiers' to write one, or untick DICOM SEG"
            )
        if not classes and what & {"binary", "overlays"}:
            raise SegviewerError("tick at least one class for binary masks / overlays")
        folder = self.folder_edit.text().strip()
        if not folder:
            raise SegviewerError("choose an output folder")
        if self.slice_all.isChecked():
            slices = None
        elif self.slice_range.isChecked():
            a, b = self.range_from.value(), self.range_to.value()
            if b < a:
                raise SegviewerError(
                    f"the slice range {a}..{b} is empty; the end must be ≥ the start"
                )
            slices = tuple(range(a, b + 1))
        else:
            slices = (self._current_slice(),)
        return ExportRequest(
            out_dir=Path(folder),
            what=what,
            formats=formats,
            classes=classes or None,
            view=self.view_combo.currentText(),
            slices=slices,
            opacity=float(self.opacity_spin.value()),
            mode=self.mode_combo.currentText(),
            outline_width=st.outline_width,
            window=(st.level, st.width),
            legend=self.legend_check.isChecked(),
            annotate=self.annotate_check.isChecked(),
            scale=self.scale_spin.value() or None,
            force=self.force_check.isChecked(),
            settings=st.mask_settings,
            radiological=st.radiological,
            allow_identifiers=allow_identifiers,
        )

    def start(self) -> Job | None:
        """Validate and start the export (progress and Cancel in the dialog)."""
        try:
            request = self.build_request()
        except SegviewerError as exc:
            self.message.setText(f'<span style="color:#ff7070">{exc}</span>')
            return None
        self.message.setText("Exporting…")
        self.progress.setValue(0)
        self.progress.show()
        self.export_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.job = self.controller.run_export(request, on_done=self._done)
        return self.job

    # -- internals ---------------------------------------------------------------------------
    def _current_slice(self) -> int:
        st = self.controller.state
        assert st.volume is not None
        axes = orientation.display_axes(st.volume.affine, self.view_combo.currentText())
        return int(st.cursor[axes.slice_axis])

    def _seg_toggled(self, on: bool) -> None:
        """The identifiers choice is offered (and explained) only with DICOM SEG."""
        self.identifiers_check.setVisible(on)
        self.identifiers_note.setVisible(on)
        if not on:
            self.identifiers_check.setChecked(False)

    def _view_changed(self, view: str) -> None:
        st = self.controller.state
        assert st.volume is not None
        axes = orientation.display_axes(st.volume.affine, view)
        n = st.volume.shape[axes.slice_axis]
        for s in (self.range_from, self.range_to):
            s.setRange(0, n - 1)
        self.range_from.setValue(0)
        self.range_to.setValue(n - 1)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _progress(self, job: Job) -> None:
        if job is self.job and job.progress is not None:
            self.progress.setValue(round(job.progress.fraction * 1000))
            self.message.setText(job.progress.message or "Exporting…")

    def _done(self, result: Any) -> None:
        self.result = result
        self.job = None
        self.progress.setValue(1000)
        self.export_button.setEnabled(True)
        self.cancel_button.setText("Close")
        text = f"Wrote {len(result.files)} files to {result.out_dir}"
        if result.warnings:
            text += "<br>" + "<br>".join(str(w) for w in result.warnings)
        self.message.setText(text)
        self.controller.settings.remember_folder(str(result.out_dir))
        self.export_finished.emit(result)

    def _notified(self, notice: Notice) -> None:
        if notice.is_error:
            self._failed(notice.text)

    def _failed(self, text: str) -> None:
        if self.job is not None:
            self.job = None
            self.progress.hide()
            self.export_button.setEnabled(True)
            self.cancel_button.setText("Close")
            self.message.setText(f'<span style="color:#ff7070">{text}</span>')

    def _cancel_or_close(self) -> None:
        if self.job is not None:
            self.controller.runner.cancel("export")
            self.job = None
            self.progress.hide()
            self.export_button.setEnabled(True)
            self.cancel_button.setText("Close")
            self.message.setText(
                "Export cancelled; nothing was written (an earlier export there is kept)."
            )
        else:
            self.close()

    def done(self, r: int) -> None:
        self._disconnect()
        super().done(r)

    def _disconnect(self) -> None:
        try:
            self.controller.runner.progress.disconnect(self._progress)
            self.controller.notified.disconnect(self._notified)
        except (RuntimeError, TypeError):  # already disconnected
            pass


#: Report pictures the dialog offers: (kind for ``ViewerController.report_picture``, label).
PICTURE_KINDS = (
    ("slice", "This slice"),
    ("three", "Three views at the crosshair"),
    ("lightbox", "Lightbox: every Nth slice"),
    ("worst", "Lightbox: the K slices with most errors"),
)


class ReportPictureDialog(QDialog):
    """File > Save report picture: one slice, the three views at the crosshair, or a
    lightbox montage, with caption, orientation letters, scale bar and legend; size in
    pixels and resolution in dpi; PNG or PDF (by the file name)."""

    def __init__(
        self, controller: ViewerController, view: str, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Save report picture")
        self.controller = controller
        self.saved: Path | None = None
        self.kind_combo = QComboBox()
        for _, text in PICTURE_KINDS:
            self.kind_combo.addItem(text)
        self.view_combo = QComboBox()
        self.view_combo.addItems([v.capitalize() for v in orientation.VIEWS])
        self.view_combo.setCurrentIndex(orientation.VIEWS.index(view))
        self.every_spin = QSpinBox()
        self.every_spin.setRange(1, 100)
        self.every_spin.setValue(5)
        self.worst_spin = QSpinBox()
        self.worst_spin.setRange(1, 64)
        self.worst_spin.setValue(9)
        self.width_spin = QSpinBox()
        self.width_spin.setRange(0, 20000)
        self.width_spin.setSingleStep(100)
        self.width_spin.setSpecialValueText("natural size")
        self.width_spin.setSuffix(" px")
        self.dpi_spin = QSpinBox()
        self.dpi_spin.setRange(10, 2400)
        self.dpi_spin.setValue(300)
        self.dpi_spin.setSuffix(" dpi")
        self.path_edit = QLineEdit(str(Path.home() / "segviewer_picture.png"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Picture", self.kind_combo)
        form.addRow("View", self.view_combo)
        form.addRow("Every Nth slice", self.every_spin)
        form.addRow("Worst K slices", self.worst_spin)
        form.addRow("Width", self.width_spin)
        form.addRow("Resolution", self.dpi_spin)
        form.addRow("File (.png or .pdf)", path_row)
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(self.save)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        self.kind_combo.currentIndexChanged.connect(self._kind_chosen)
        self._kind_chosen()

    def kind(self) -> str:
        return PICTURE_KINDS[self.kind_combo.currentIndex()][0]

    def _kind_chosen(self) -> None:
        kind = self.kind()
        self.view_combo.setEnabled(kind != "three")
        self.every_spin.setEnabled(kind == "lightbox")
        self.worst_spin.setEnabled(kind == "worst")

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save report picture", self.path_edit.text(), "PNG (*.png);;PDF (*.pdf)"
        )
        if path:
            self.path_edit.setText(path)

    def save(self, *, force: bool = True) -> Path | None:
        """Save the chosen picture; returns its path (None when it could not, reported)."""
        self.saved = self.controller.save_report_picture(
            self.path_edit.text(),
            self.kind(),
            dpi=float(self.dpi_spin.value()),
            force=force,
            view=orientation.VIEWS[self.view_combo.currentIndex()],
            every=self.every_spin.value(),
            worst=self.worst_spin.value(),
            width=self.width_spin.value() or None,
        )
        return self.saved
