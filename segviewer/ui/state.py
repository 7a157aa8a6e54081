"""What the window shows, in one observable object: the single owner of every displayed value.

:class:`ViewerState` holds the loaded data (volume, prediction, class table, reference, the
whole-volume labels and their comparison with the reference) and every display setting
(visibility, colours, opacity, fill/outline and its width, labels vs heatmap, threshold,
minimum confidence, window/level, cursor, the view layout, legend, crosshair, convention).
Anything may change it (a widget, a key, a script, a dialog, the controller); everything that
shows it listens to :attr:`ViewerState.changed`, whose argument is a :class:`Change` saying
what changed, so each listener redoes only what it must and every widget follows whoever
made the change.

Bounded settings are declared once, in ``core.display`` (:data:`OPACITY`,
:data:`OUTLINE_WIDTH`, :data:`THRESHOLD`, :data:`MIN_CONFIDENCE`, re-exported here) with their
range and default; the setters validate against these declarations, and the widgets and the
command line read their ranges from them.
"""

from __future__ import annotations

import enum
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segviewer.core.classes import ClassTable
from segviewer.core.display import (
    DISPLAYS,
    LAYOUTS,
    MIN_CONFIDENCE,
    MODES,
    OPACITY,
    OUTLINE_WIDTH,
    THRESHOLD,
    Bounded,
)
from segviewer.core.errors import SegviewerError
from segviewer.core.slicesource import GreySource, SliceSource
from segviewer.core.types import MaskSettings, Prediction, Volume

if TYPE_CHECKING:
    from segviewer.core.compare import Comparison
    from segviewer.core.masks import LabelResult

__all__ = [
    "DISPLAYS",
    "LAYOUTS",
    "MIN_CONFIDENCE",
    "MODES",
    "OPACITY",
    "OUTLINE_WIDTH",
    "THRESHOLD",
    "Bounded",
    "Change",
    "ViewerState",
]


class Change(enum.Enum):
    """What changed in a :class:`ViewerState` (the argument of ``changed``)."""

    DATA = enum.auto()  #: volume or prediction replaced: everything is recomputed
    LABELS = enum.auto()  #: mask settings (threshold, minimum confidence): labels recomputed
    LUT = enum.auto()  #: visibility, colours, opacity, mode, outline width: LUT rebuilt
    DISPLAY = enum.auto()  #: labels vs heatmap vs errors, heatmap / error class
    WINDOW = enum.auto()  #: window/level or its preset
    CURSOR = enum.auto()  #: the linked cursor moved (slices of the other views follow)
    OPTIONS = enum.auto()  #: legend / crosshair visibility
    ORIENTATION = enum.auto()  #: radiological / neurological convention switched
    REFERENCE = enum.auto()  #: reference loaded / closed, or its comparison replaced
    LABEL_RESULT = enum.auto()  #: whole-volume labels and class counts arrived (or cleared)
    LAYOUT = enum.auto()  #: single view (which plane) or three views


class ViewerState(QObject):
    """The model behind the window (see the module docstring and :class:`Change`)."""

    changed = Signal(object)  # a Change

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # -- data
        self.volume: Volume | None = None
        self.prediction: Prediction | None = None
        self.provenance: dict[str, Any] = {}
        self.table: ClassTable | None = None
        self.label_result: LabelResult | None = None  # whole-volume labels of the prediction
        # what the views ask for a slice's labels / heatmap values / grey levels: lookups
        # into the whole-volume maps once they are in, the slice alone before
        # (core.slicesource); replaced with the prediction / image
        self.slices: SliceSource | None = None
        self.greys: GreySource | None = None
        # -- where the data came from (window title, export manifest, image information)
        self.image_path: str | None = None
        self.prediction_path: str | None = None
        self.classes_path: str | None = None
        # -- display settings
        self.visible: list[bool] = []
        self.opacity: float = OPACITY.default
        self.mode: str = "fill"
        self.outline_width: int = int(OUTLINE_WIDTH.default)
        self.display: str = "labels"
        self.display_class: int = 1
        self.mask_settings: MaskSettings = MaskSettings(threshold=THRESHOLD.default)
        #: the minimum confidence offered when it is switched on (kept while it is off)
        self.min_confidence_value: float = MIN_CONFIDENCE.default
        self.level: float = 0.5
        self.width: float = 1.0
        #: named windows of the image (``ui.jobs.window_presets``) and the one in use
        #: (``"Custom"`` after a right-drag)
        self.window_presets: dict[str, tuple[float, float]] = {}
        self.window_preset: str = ""
        self.cursor: tuple[int, int, int] = (0, 0, 0)
        self.layout: str = "axial"
        self.layout_chosen = False  # the user picked the view (else the acquisition plane)
        self.show_legend: bool = True
        #: confidence / entropy heatmaps drawn inside the predicted foreground only
        self.heat_foreground_only: bool = True
        #: the class hovered in the class panel: drawn strongly, the others dimmed (None: off)
        self.highlight: int | None = None
        self.show_crosshair: bool = False
        self.radiological: bool = True  # patient right on screen left (clinical default)
        self.lut_version = 0  # bumped on every LUT change; canvases cache composed slices by it
        # -- reference segmentation (ground truth): (a0, a1, a2) integer label map on the
        # image grid, its comparison with the current labels and the per-slice error counts
        # (core.compare.iter_slice_error_counts)
        self.reference: np.ndarray | None = None
        self.reference_source: str | None = None
        self.reference_notes: list[str] = []  # how the reference file was read (geometry)
        self.comparison: Comparison | None = None
        self.error_counts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.error_class: int | None = 1  # class of the "errors" display; None = all classes

    # -- data ----------------------------------------------------------------------------
    def set_volume(
        self,
        volume: Volume,
        presets: dict[str, tuple[float, float]],
        preset: str,
        *,
        path: str | None = None,
    ) -> None:
        """Replace the image, shown with window ``presets[preset]`` (drops a prediction or a
        reference whose shape no longer matches)."""
        if preset not in presets:
            raise SegviewerError(f"internal: window preset {preset!r} is not offered")
        self.volume = volume
        self.greys = GreySource(volume.data)
        self.image_path = path
        self.window_presets = dict(presets)
        self.window_preset = preset
        level, width = presets[preset]
        self.level, self.width = float(level), max(float(width), 1e-6)
        self.cursor = (volume.shape[0] // 2, volume.shape[1] // 2, volume.shape[2] // 2)
        if self.prediction is not None and self.prediction.spatial_shape != volume.shape:
            self.prediction = None
            self.prediction_path = None
            self.provenance = {}
            self.label_result = None
            self.slices = None
        if self.reference is not None and self.reference.shape != volume.shape:
            self._drop_reference()
        self.changed.emit(Change.DATA)

    def set_prediction(
        self,
        prediction: Prediction | None,
        table: ClassTable,
        provenance: dict[str, Any],
        *,
        path: str | None = None,
        mask_settings: MaskSettings | None = None,
    ) -> None:
        """Replace the prediction and its class table (already fitted to it), in one change.

        ``mask_settings`` (a model card's threshold) are taken in the same step, so the
        labels are computed once, for the new prediction with its own settings."""
        if (
            prediction is not None
            and self.volume is not None
            and prediction.spatial_shape != self.volume.shape
        ):
            raise SegviewerError(
                f"the prediction's spatial shape {prediction.spatial_shape} does not match "
                f"the image's {self.volume.shape}; open the matching image or pass --layout"
            )
        if prediction is not None and len(table) < prediction.n_classes:
            raise SegviewerError(
                f"internal: a table of {len(table)} classes for a prediction of "
                f"{prediction.n_classes}; fit it first (ClassTable.fitted)"
            )
        self.prediction = prediction
        self.prediction_path = path
        self.provenance = dict(provenance)
        if mask_settings is not None:
            self.mask_settings = mask_settings
        self.slices = None if prediction is None else SliceSource(prediction, self.mask_settings)
        self._set_table(table)
        if prediction is not None and not 0 <= self.display_class < prediction.n_classes:
            self.display_class = min(1, prediction.n_classes - 1)
        if (
            prediction is not None
            and self.error_class is not None
            and not 0 <= self.error_class < prediction.n_classes
        ):
            self.error_class = min(1, prediction.n_classes - 1)
        if (
            prediction is not None
            and prediction.kind.value == "labels"
            and self.display in ("probability", "confidence", "entropy")
        ):
            self.display = "labels"  # a label map has no probabilities
        # the labels and the comparison were made with the previous prediction
        self.label_result = None
        self.comparison = None
        self.error_counts = None
        self.lut_version += 1
        self.changed.emit(Change.DATA)

    def set_label_result(self, result: LabelResult | None) -> None:
        """The whole-volume labels (and class counts) of the current prediction, for the
        current mask settings; slices are looked up in them from now on."""
        self.label_result = result
        if result is not None and self.slices is not None:
            self.slices.set_labels(result, self.mask_settings)
        self.changed.emit(Change.LABEL_RESULT)

    def set_reference(
        self,
        reference: np.ndarray | None,
        source: str | None = None,
        notes: list[str] | None = None,
    ) -> None:
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
            self.reference_notes = list(notes or [])
            self.comparison = None
            self.error_counts = None
        self.changed.emit(Change.REFERENCE)

    def set_comparison(
        self,
        comparison: Comparison | None,
        error_counts: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> None:
        """The reference compared with the current labels and the per-slice error counts: one
        ``(n_classes + 1, a_k)`` int64 array per image axis ``k`` (see
        ``core.compare.iter_slice_error_counts``)."""
        self.comparison = comparison
        self.error_counts = error_counts
        self.changed.emit(Change.REFERENCE)

    def set_error_class(self, index: int | None) -> None:
        """Class of the "errors" display (None: every disagreement, whatever the class)."""
        if index is not None:
            self._check_class(index)
        if index != self.error_class:
            self.error_class = index
            self.changed.emit(Change.DISPLAY)

    def _drop_reference(self) -> None:
        self.reference = None
        self.reference_source = None
        self.reference_notes = []
        self.comparison = None
        self.error_counts = None
        if self.display == "errors":
            self.display = "labels"

    def set_table(self, table: ClassTable, *, path: str | None = None) -> None:
        """Replace names and colours (same number of classes): only the LUT changes."""
        if self.prediction is not None and len(table) < self.prediction.n_classes:
            raise SegviewerError(
                f"internal: a table of {len(table)} classes for a prediction of "
                f"{self.prediction.n_classes}; fit it first (ClassTable.fitted)"
            )
        if path is not None:
            self.classes_path = path
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

    def toggle_visible(self, index: int) -> None:
        self._check_class(index)
        self.set_visible(index, not self.visible[index])

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
        if len(rgb) != 3 or any(not 0 <= int(c) <= 255 for c in rgb):
            raise SegviewerError(f"a colour is three integers 0..255, got {rgb!r}")
        self.table = self.table.with_color(index, (int(rgb[0]), int(rgb[1]), int(rgb[2])))
        self._lut_changed()

    def set_heat_foreground_only(self, on: bool) -> None:
        """Draw the confidence / entropy heatmap inside the predicted foreground only."""
        if bool(on) != self.heat_foreground_only:
            self.heat_foreground_only = bool(on)
            self.changed.emit(Change.DISPLAY)

    def set_highlight(self, index: int | None) -> None:
        """Highlight class ``index`` on the canvases (the others dimmed); None ends it."""
        if index is not None:
            self._check_class(index)
        if index != self.highlight:
            self.highlight = index
            self._lut_changed()

    def set_opacity(self, opacity: float) -> None:
        value = OPACITY.check(opacity)
        if value != self.opacity:
            self.opacity = value
            self._lut_changed()

    def set_mode(self, mode: str, outline_width: int | None = None) -> None:
        if mode not in MODES:
            raise SegviewerError(f"overlay mode must be one of {', '.join(MODES)}, got {mode!r}")
        width = (
            self.outline_width if outline_width is None else int(OUTLINE_WIDTH.check(outline_width))
        )
        if (mode, width) != (self.mode, self.outline_width):
            self.mode, self.outline_width = mode, width
            self._lut_changed()

    def set_outline_width(self, width: int) -> None:
        self.set_mode(self.mode, width)

    def set_display(self, display: str, class_index: int | None = None) -> None:
        if display not in DISPLAYS:
            raise SegviewerError(f"display must be one of {', '.join(DISPLAYS)}, got {display!r}")
        if display in ("probability", "confidence", "entropy") and (
            self.prediction is not None and self.prediction.kind.value == "labels"
        ):
            raise SegviewerError(
                "this prediction is a label map: it has no probabilities to show as a heatmap"
            )
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
        self.changed.emit(Change.DISPLAY)

    def set_display_class(self, index: int) -> None:
        """Class of the probability heatmap (remembered while another display is shown)."""
        self._check_class(index)
        if index != self.display_class:
            self.display_class = index
            if self.display == "probability":
                self.changed.emit(Change.DISPLAY)

    def set_mask_settings(self, settings: MaskSettings) -> None:
        THRESHOLD.check(settings.threshold)
        if settings.min_confidence is not None:
            self.min_confidence_value = MIN_CONFIDENCE.check(settings.min_confidence)
        if settings != self.mask_settings:
            self.mask_settings = settings
            if self.slices is not None:
                self.slices.set_settings(settings)  # per slice until the new labels are in
            self.changed.emit(Change.LABELS)

    def set_stat_volume(self, stat: str, class_index: int | None, volume: np.ndarray) -> None:
        """A whole-volume heatmap map (normalised, ``core.masks.iter_stat``) of the current
        prediction: its slices are looked up from now on (the values do not change)."""
        if self.slices is not None:
            self.slices.set_stat(stat, class_index, True, volume)

    def set_windowed(self, level: float, width: float, volume: np.ndarray) -> None:
        """The whole image windowed to uint8 for ``level`` / ``width``: grey slices are
        looked up while that window is shown (the pixels do not change)."""
        if self.greys is not None:
            self.greys.set_windowed(level, width, volume)

    def set_threshold(self, threshold: float) -> None:
        self.set_mask_settings(replace(self.mask_settings, threshold=THRESHOLD.check(threshold)))

    def set_min_confidence(self, value: float | None) -> None:
        """Mark voxels whose top probability is below ``value`` as uncertain (None: off)."""
        v = None if value is None else MIN_CONFIDENCE.check(value)
        self.set_mask_settings(replace(self.mask_settings, min_confidence=v))

    def set_window(self, level: float, width: float) -> None:
        """Window/level in image units; the preset follows (one that matches, else Custom)."""
        self.level, self.width = float(level), max(float(width), 1e-6)
        current = (self.level, self.width)
        if self.window_presets.get(self.window_preset) != current:
            match = [n for n, lw in self.window_presets.items() if lw == current]
            self.window_preset = match[0] if match else "Custom"
        self.changed.emit(Change.WINDOW)

    def set_window_preset(self, name: str) -> None:
        """Use one of :attr:`window_presets` by name."""
        if name not in self.window_presets:
            raise SegviewerError(
                f"window preset must be one of {', '.join(self.window_presets)}, got {name!r}"
            )
        self.window_preset = name
        self.set_window(*self.window_presets[name])

    def set_cursor(self, ijk: tuple[int, int, int]) -> None:
        if self.volume is None:
            return
        i, j, k = (min(max(int(v), 0), s - 1) for v, s in zip(ijk, self.volume.shape, strict=True))
        if (i, j, k) != self.cursor:
            self.cursor = (i, j, k)
            self.changed.emit(Change.CURSOR)

    def set_layout(self, layout: str, *, chosen: bool = True) -> None:
        """``"axial"``, ``"coronal"``, ``"sagittal"`` (one view) or ``"three"``.

        ``chosen`` False: the window's own pick (the image's acquisition plane,
        ``core.orientation.initial_view``), which a later image may change; a user's choice
        (``--view``, the toolbar) is kept for the next images."""
        if layout not in LAYOUTS:
            raise SegviewerError(f"view must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.layout_chosen = self.layout_chosen or chosen
        if layout != self.layout:
            self.layout = layout
            self.changed.emit(Change.LAYOUT)

    def set_options(self, *, legend: bool | None = None, crosshair: bool | None = None) -> None:
        """Legend on the canvas; crosshair (the three-view always draws it)."""
        if legend is not None:
            self.show_legend = bool(legend)
        if crosshair is not None:
            self.show_crosshair = bool(crosshair)
        self.changed.emit(Change.OPTIONS)

    def crosshair_drawn(self) -> bool:
        """Whether canvases draw the crosshair (asked for, or the linked three-view)."""
        return self.show_crosshair or self.layout == "three"

    def set_radiological(self, radiological: bool) -> None:
        """Radiological (patient right on screen left) or neurological convention."""
        if bool(radiological) != self.radiological:
            self.radiological = bool(radiological)
            self.changed.emit(Change.ORIENTATION)

    def _lut_changed(self) -> None:
        self.lut_version += 1
        self.changed.emit(Change.LUT)
