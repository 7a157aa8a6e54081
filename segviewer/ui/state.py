"""What the window shows, in one observable object shared by the canvases and panels.

:class:`ViewerState` holds the loaded data (volume, prediction, class table) and the display
settings (visibility, colours, opacity, mode, heatmap, window/level, cursor). Widgets change
it through its setters and listen to :attr:`ViewerState.changed`, whose argument says what
changed, so each listener redoes only what it must:

``"data"``      volume or prediction replaced: everything is recomputed.
``"labels"``    mask settings (threshold, minimum confidence): slice labels recomputed.
``"lut"``       visibility, colours, opacity, fill/outline: only the lookup table is rebuilt.
``"display"``   labels vs heatmap, heatmap class: the slice overlay is recomputed.
``"window"``    window/level: the grey image is re-windowed.
``"cursor"``    the linked cursor moved (slices of the other views follow).
``"options"``   legend / crosshair visibility.
``"orientation"`` radiological / neurological convention switched.
``"reference"`` reference segmentation loaded / closed, or its comparison replaced.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segviewer.core.classes import ClassTable
from segviewer.core.types import MaskSettings, Prediction, SegviewerError, Volume

__all__ = ["DISPLAYS", "MODES", "ViewerState"]

MODES = ("fill", "outline", "both")
DISPLAYS = ("labels", "probability", "confidence", "entropy", "errors")


class ViewerState(QObject):
    """The model behind the window (see module docstring for the ``changed`` kinds)."""

    changed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self.prediction: Prediction | None = None
        self.provenance: dict[str, Any] = {}
        self.table: ClassTable | None = None
        self.visible: list[bool] = []
        self.opacity: float = 0.5
        self.mode: str = "fill"
        self.outline_width: int = 1
        self.display: str = "labels"
        self.display_class: int = 1
        self.mask_settings: MaskSettings = MaskSettings()
        self.level: float = 0.5
        self.width: float = 1.0
        self.cursor: tuple[int, int, int] = (0, 0, 0)
        self.show_legend: bool = True
        self.show_crosshair: bool = False
        self.radiological: bool = True  # patient right on screen left (clinical default)
        self.lut_version = 0  # bumped on every "lut" change; canvases cache composed slices by it
        # Reference segmentation (ground truth): (a0, a1, a2) integer label map on the image
        # grid, its comparison with the current labels (core.compare.Comparison) and the
        # per-slice error counts of that comparison (see error_counts below).
        self.reference: np.ndarray | None = None
        self.reference_source: str | None = None
        self.comparison: Any = None
        self.error_counts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.error_class: int | None = 1  # class of the "errors" display; None = all classes

    # -- data ----------------------------------------------------------------------------
    def set_volume(self, volume: Volume, level: float, width: float) -> None:
        """Replace the image (drops a prediction whose shape no longer matches)."""
        self.volume = volume
        self.level, self.width = float(level), max(float(width), 1e-6)
        self.cursor = tuple(s // 2 for s in volume.shape)  # type: ignore[assignment]
        if self.prediction is not None and self.prediction.spatial_shape != volume.shape:
            self.prediction = None
            self.provenance = {}
        if self.reference is not None and self.reference.shape != volume.shape:
            self._drop_reference()
        self.changed.emit("data")

    def set_prediction(
        self, prediction: Prediction | None, table: ClassTable, provenance: dict[str, Any]
    ) -> None:
        """Replace the prediction and its class table (table already fitted to it)."""
        if (
            prediction is not None
            and self.volume is not None
            and prediction.spatial_shape != self.volume.shape
        ):
            raise SegviewerError(
                f"the prediction's spatial shape {prediction.spatial_shape} does not match "
                f"the image's {self.volume.shape}; open the matching image or pass --layout"
            )
        self.prediction = prediction
        self.provenance = dict(provenance)
        self._set_table(table)
        if prediction is not None and not 0 <= self.display_class < prediction.n_classes:
            self.display_class = min(1, prediction.n_classes - 1)
        if (
            prediction is not None
            and self.error_class is not None
            and not 0 <= self.error_class < prediction.n_classes
        ):
            self.error_class = min(1, prediction.n_classes - 1)
        # the comparison was made with the previous prediction's labels; recomputed later
        self.comparison = None
        self.error_counts = None
        self.changed.emit("data")

    def set_reference(self, reference: np.ndarray | None, source: str | None = None) -> None:
        """Use ``reference`` (``(a0, a1, a2)`` integer label map on the image grid, e.g. from
        ``io.predictions.load_reference``) as the ground truth, or close it (None).

        Its comparison arrives later (:meth:`set_comparison`, computed in a worker)."""
        if reference is not None:
            if self.volume is None:
                raise SegviewerError("open an image before a reference segmentation")
            if reference.ndim != 3 or reference.dtype.kind not in "iu":
                raise SegviewerError(
                    f"a reference segmentation is a 3-D integer label map, got "
                    f"{reference.ndim}-D {reference.dtype}; load it with load_reference"
                )
            if tuple(reference.shape) != tuple(self.volume.shape):
                raise SegviewerError(
                    f"the reference segmentation's shape {tuple(reference.shape)} does not "
                    f"match the image's {tuple(self.volume.shape)}; save it on the image grid"
                )
        if reference is None:
            self._drop_reference()
        else:
            self.reference = reference
            self.reference_source = source
            self.comparison = None
            self.error_counts = None
        self.changed.emit("reference")

    def set_comparison(
        self, comparison: Any, error_counts: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    ) -> None:
        """The reference compared with the current labels (``core.compare.Comparison``) and
        the per-slice error counts: one ``(n_classes + 1, a_k)`` int64 array per image axis
        ``k``, row ``c`` = false positives + false negatives of class ``c`` in each slice,
        last row = voxels where the labels disagree (any class)."""
        self.comparison = comparison
        self.error_counts = error_counts
        self.changed.emit("reference")

    def set_error_class(self, index: int | None) -> None:
        """Class of the "errors" display (None: every disagreement, whatever the class)."""
        if index is not None:
            self._check_class(index)
        if index != self.error_class:
            self.error_class = index
            if self.display == "errors":
                self.changed.emit("display")

    def _drop_reference(self) -> None:
        self.reference = None
        self.reference_source = None
        self.comparison = None
        self.error_counts = None
        if self.display == "errors":
            self.display = "labels"

    def set_table(self, table: ClassTable) -> None:
        """Replace names and colours (same number of classes): only the LUT changes."""
        self._set_table(table)
        self._lut_changed()

    def _set_table(self, table: ClassTable) -> None:
        old = self.visible
        self.table = table
        self.visible = [old[i] if i < len(old) else True for i in range(len(table))]

    # -- display settings ----------------------------------------------------------------
    def n_classes(self) -> int:
        return 0 if self.table is None else len(self.table)

    def _check_class(self, index: int) -> None:
        if not 0 <= index < self.n_classes():
            raise SegviewerError(
                f"class {index} does not exist; the prediction has classes 0..{self.n_classes() - 1}"
            )

    def set_visible(self, index: int, visible: bool) -> None:
        self._check_class(index)
        if self.visible[index] != visible:
            self.visible[index] = bool(visible)
            self._lut_changed()

    def set_all_visible(self, visible: bool) -> None:
        """Show or hide every class except background, which is never drawn."""
        self.visible = [bool(visible)] * len(self.visible)
        self._lut_changed()

    def show_only(self, index: int) -> None:
        self._check_class(index)
        self.visible = [i == index for i in range(len(self.visible))]
        self._lut_changed()

    def set_color(self, index: int, rgb: tuple[int, int, int]) -> None:
        self._check_class(index)
        if self.table is None:
            return
        if any(not 0 <= int(c) <= 255 for c in rgb) or len(rgb) != 3:
            raise SegviewerError(f"a colour is three integers 0..255, got {rgb!r}")
        self.table = self.table.with_color(index, (int(rgb[0]), int(rgb[1]), int(rgb[2])))
        self._lut_changed()

    def set_opacity(self, opacity: float) -> None:
        if not 0.0 <= opacity <= 1.0:
            raise SegviewerError(f"opacity must be between 0 and 1, got {opacity}")
        self.opacity = float(opacity)
        self._lut_changed()

    def set_mode(self, mode: str, outline_width: int | None = None) -> None:
        if mode not in MODES:
            raise SegviewerError(f"overlay mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        if outline_width is not None:
            if not 1 <= outline_width <= 20:
                raise SegviewerError(f"outline width must be 1..20 pixels, got {outline_width}")
            self.outline_width = int(outline_width)
        self._lut_changed()

    def set_display(self, display: str, class_index: int | None = None) -> None:
        if display not in DISPLAYS:
            raise SegviewerError(f"display must be one of {', '.join(DISPLAYS)}, got {display!r}")
        if display == "probability":
            index = self.display_class if class_index is None else int(class_index)
            self._check_class(index)
            self.display_class = index
        if display == "errors":
            if self.reference is None:
                raise SegviewerError(
                    "open a reference segmentation first (File > Open reference "
                    "segmentation…) to show where the prediction disagrees with it"
                )
            if class_index is not None:
                self._check_class(int(class_index))
                self.error_class = int(class_index)
        self.display = display
        self.changed.emit("display")

    def set_mask_settings(self, settings: MaskSettings) -> None:
        if settings != self.mask_settings:
            self.mask_settings = settings
            self.changed.emit("labels")

    def set_threshold(self, threshold: float) -> None:
        self.set_mask_settings(replace(self.mask_settings, threshold=float(threshold)))

    def set_min_confidence(self, value: float | None) -> None:
        self.set_mask_settings(replace(self.mask_settings, min_confidence=value))

    def set_window(self, level: float, width: float) -> None:
        self.level, self.width = float(level), max(float(width), 1e-6)
        self.changed.emit("window")

    def set_cursor(self, ijk: tuple[int, int, int]) -> None:
        if self.volume is None:
            return
        clipped = tuple(
            int(np.clip(v, 0, s - 1)) for v, s in zip(ijk, self.volume.shape, strict=True)
        )
        if clipped != self.cursor:
            self.cursor = clipped  # type: ignore[assignment]
            self.changed.emit("cursor")

    def set_options(self, *, legend: bool | None = None, crosshair: bool | None = None) -> None:
        if legend is not None:
            self.show_legend = bool(legend)
        if crosshair is not None:
            self.show_crosshair = bool(crosshair)
        self.changed.emit("options")

    def set_radiological(self, radiological: bool) -> None:
        """Radiological (patient right on screen left) or neurological convention."""
        if bool(radiological) != self.radiological:
            self.radiological = bool(radiological)
            self.changed.emit("orientation")

    def _lut_changed(self) -> None:
        self.lut_version += 1
        self.changed.emit("lut")
