"""How to read a prediction file: its layout and kind, detected values preselected and shown in
words (File > Open prediction). Resampling is offered only when no axis order fits the image
exactly (``PredictionChoices.resample_possible``)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from segviewer.io.predictions import KIND_WORDS, PredictionChoices

__all__ = ["PredictionDialog"]


class PredictionDialog(QDialog):
    """Modal choice of layout, kind and resampling; :meth:`chosen` after ``exec()``."""

    def __init__(
        self,
        path: str,
        choices: PredictionChoices,
        image_shape: tuple[int, int, int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Open prediction")
        self._choices = choices
        shape = " x ".join(str(s) for s in choices.raw_shape)
        img = " x ".join(str(s) for s in image_shape)
        box = QVBoxLayout(self)
        intro = QLabel(f"{path}\nstored as {shape}, for the image {img}.")
        intro.setWordWrap(True)
        box.addWidget(intro)
        form = QFormLayout()
        self.layout_box = QComboBox(self)
        self.layout_box.setObjectName("layoutChoice")
        self._kept: str | None = None  # the layout chosen before a kind that has none
        form.addRow("Layout", self.layout_box)
        self.kind_box = QComboBox(self)
        self.kind_box.setObjectName("kindChoice")
        self.kind_box.addItem(
            f"detected: {choices.kind_words}" if choices.kind else "detect", choices.kind
        )
        for kind, words in KIND_WORDS.items():
            if kind != choices.kind:
                self.kind_box.addItem(words, kind)
        form.addRow("Values", self.kind_box)
        box.addLayout(form)
        self.note = QLabel(choices.error)
        self.note.setWordWrap(True)
        self.note.setVisible(bool(choices.error))
        box.addWidget(self.note)
        how = "in world space (both files' geometry)" if choices.geometry else "by shape"
        self.resample = QCheckBox(f"Resample onto the image grid ({how})", self)
        self.resample.setObjectName("resampleChoice")
        self.resample.setVisible(choices.resample_possible)
        self.resample.setChecked(choices.resample_possible)
        box.addWidget(self.resample)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.open_button = buttons.button(QDialogButtonBox.StandardButton.Open)
        box.addWidget(buttons)
        self._fill_layouts()
        self.kind_box.currentIndexChanged.connect(self._fill_layouts)

    def _fill_layouts(self) -> None:
        """The layouts that fit the chosen kind: a label map has no class axis, class scores
        have one; "detect" shows every layout that fits the image. The chosen layout stays
        chosen while it still fits."""
        ch = self._choices
        kind = self.kind_box.currentData() or ch.kind
        class_axis = None if kind is None else kind != "labels"
        keep = self.layout_box.currentData() or self._kept
        self._kept = keep
        fits = [
            (name, words)
            for name, words in ch.layouts
            if class_axis is None or ("C" in name) == class_axis
        ]
        self.layout_box.clear()
        for name, words in fits:
            tag = " (detected)" if name == ch.layout else ""
            self.layout_box.addItem(f"{name}{tag}: {words}", name)
        if fits:
            self.layout_box.setEnabled(True)
            at = self.layout_box.findData(keep) if keep is not None else -1
            self.layout_box.setCurrentIndex(max(at, 0))
        else:
            what = (
                "the image's size"
                if class_axis is None or not ch.layouts
                else "the image's size with " + ("a class axis" if class_axis else "no class axis")
            )
            self.layout_box.addItem(f"no axis order fits {what}", None)
            self.layout_box.setEnabled(False)
        self.open_button.setEnabled(bool(fits) or ch.resample_possible)

    def chosen(self) -> tuple[str | None, str | None, bool]:
        """``(layout, kind, resample)``: None leaves detection to the reader."""
        layout = self.layout_box.currentData()
        if layout == self._choices.layout:
            layout = None  # what detection finds anyway
        kind = self.kind_box.currentData()
        if kind == self._choices.kind:
            kind = None
        return layout, kind, bool(self._choices.resample_possible and self.resample.isChecked())
