"""What the window's background jobs do: worker bodies run by ``ui.workers.JobRunner``.

Each function here runs in a worker thread: it reads files or computes, yields
:class:`~segviewer.core.types.Progress` between steps (so it can be cancelled there) and
returns a typed result. None touches the state or a widget; the controller applies the
results in the GUI thread.
"""

from __future__ import annotations

import gc
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core import kernels, masks, overlay
from segviewer.core.classes import ClassTable
from segviewer.core.compare import Comparison
from segviewer.core.types import Prediction, Progress, Volume

__all__ = [
    "CUSTOM_PRESET",
    "SCANNER_PRESET",
    "WINDOW_PRESETS",
    "ComparedReference",
    "LoadedImage",
    "LoadedPrediction",
    "LoadedReference",
    "SeriesChoice",
    "compare_job",
    "load_classes_job",
    "load_image_job",
    "load_prediction_job",
    "load_reference_job",
    "prepare_kernel_job",
    "scanner_window",
    "window_presets",
]

WINDOW_PRESETS = ("Auto (1–99 %)", "Auto (0.5–99.5 %)", "Full range", "Scanner (DICOM)", "Custom")
#: The DICOM's own WindowCenter/WindowWidth, offered (and the default) when the file has one.
SCANNER_PRESET = WINDOW_PRESETS[3]
CUSTOM_PRESET = WINDOW_PRESETS[4]


@dataclass(frozen=True)
class LoadedImage:
    """An image read in a worker, with its named windows (:func:`window_presets`)."""

    volume: Volume
    windows: dict[str, tuple[float, float]]

    def default_preset(self) -> str:
        """A DICOM's own window is what the radiographer chose for the series: start there."""
        return SCANNER_PRESET if SCANNER_PRESET in self.windows else WINDOW_PRESETS[0]


@dataclass(frozen=True)
class SeriesChoice:
    """The folder holds several DICOM series: the user (or ``--series``) must pick one."""

    folder: str
    series: list[Any]  # io.dicom.SeriesInfo


@dataclass(frozen=True)
class LoadedReference:
    labels: np.ndarray  # (a0, a1, a2) integer label map on the image grid
    notes: list[str]  # how it was read (kind, layout, geometry warnings)


@dataclass(frozen=True)
class ComparedReference:
    comparison: Comparison
    error_counts: tuple[np.ndarray, np.ndarray, np.ndarray]


def load_image_job(
    path: str, frame: int, series: str | None
) -> Generator[Progress, None, LoadedImage | SeriesChoice]:
    """Read the image, then its windows (cancellable between the steps)."""
    from segviewer.io.dicom import SeveralSeries, list_dicom_series
    from segviewer.io.images import load_image

    yield Progress(0, 3, f"Reading {Path(path).name}")
    try:
        volume = load_image(path, frame=frame, series=series)
    except SeveralSeries:
        # The user picks one in the GUI thread; the details come from the headers only.
        yield Progress(1, 3, "Listing the series")
        return SeriesChoice(path, list(list_dicom_series(path)))
    yield Progress(1, 3, "Computing the display window")
    windows = window_presets(volume)
    yield Progress(2, 3, "Done")
    return LoadedImage(volume, windows)


def window_presets(volume: Volume) -> dict[str, tuple[float, float]]:
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


def load_reference_job(
    path: str,
    image_shape: tuple[int, int, int],
    n_classes: int | None,
    affine: np.ndarray,
    image_metadata: Mapping[str, Any] | None = None,
) -> Generator[Progress, None, LoadedReference]:
    """The reference as a label map, and the notes on how it was read (kind, layout, and a
    NIfTI whose geometry differs from the image's: mirrored, shifted)."""
    from segviewer.io.predictions import load_reference

    yield Progress(0, 1, f"Reading {Path(path).name}")
    notes: list[str] = []
    ref = load_reference(
        path,
        image_shape,
        n_classes_hint=n_classes,
        image_affine=affine,
        notes=notes,
        image_metadata=image_metadata,
    )
    return LoadedReference(ref, notes)


def compare_job(
    labels: np.ndarray, reference: np.ndarray, n_classes: int, voxel_mm3: float
) -> Generator[Progress, None, ComparedReference]:
    """``core.compare.iter_compare``, then the per-slice error counts along each image axis
    (``core.compare.iter_slice_error_counts``)."""
    from segviewer.core.compare import iter_compare, iter_slice_error_counts

    comparison = yield from iter_compare(labels, reference, n_classes, voxel_mm3)
    counts = yield from iter_slice_error_counts(labels, reference, n_classes)
    return ComparedReference(comparison, counts)


@dataclass(frozen=True)
class LoadedPrediction:
    """A prediction read in a worker, and the class names its writing tool stored with it
    (DICOM SEG segments, BIDS ``_dseg.tsv``, nnU-Net ``dataset.json``...; see
    ``io.classtables.class_table_beside``), or None."""

    prediction: Prediction
    names: ClassTable | None = None
    names_source: str = ""


def load_prediction_job(
    path: str,
    image_shape: tuple[int, int, int],
    layout: str | None,
    kind: str | None,
    resample: bool = False,
    image_affine: np.ndarray | None = None,
    want_names: bool = False,
    image_geometry: bool | None = None,
    image_metadata: Mapping[str, Any] | None = None,
) -> Generator[Progress, None, LoadedPrediction]:
    from segviewer.io.predictions import load_prediction

    yield Progress(0, 1, f"{'Resampling' if resample else 'Reading'} {Path(path).name}")
    pred = load_prediction(
        path,
        image_shape,
        layout=layout,
        kind=kind,
        resample=resample,
        image_affine=image_affine,
        image_geometry=image_geometry,
        image_metadata=image_metadata,
    )
    if not want_names:
        return LoadedPrediction(pred)
    from segviewer.io.classtables import class_table_beside

    beside = class_table_beside(path)
    if beside is None:
        return LoadedPrediction(pred)
    return LoadedPrediction(pred, beside[0], beside[1])


def prediction_choices_job(
    path: str, image_shape: tuple[int, int, int]
) -> Generator[Progress, None, Any]:
    """The detected layout and kind of a prediction file and the alternatives (the dialog's)."""
    from segviewer.io.predictions import prediction_choices

    yield Progress(0, 1, f"Reading {Path(path).name}")
    return prediction_choices(path, image_shape)


def load_classes_job(path: str) -> Generator[Progress, None, ClassTable]:
    from segviewer.io.classtables import load_class_table

    yield Progress(0, 1, f"Reading {Path(path).name}")
    return load_class_table(path)


def prepare_kernel_job(pred: Prediction) -> bool:
    """Make the compiled labels kernel for ``pred`` ready (``core.masks.prepare_labels_kernel``),
    and the compiled table lookup that blends the window's frames (``core.kernels.
    warm_up_lookup``).

    The garbage collector is paused meanwhile: numba builds its type registries on first
    use (some 300 modules and several hundred thousand objects), and a full collection in
    the middle of that holds the interpreter lock for 50-70 ms (measured with an event-loop
    probe: a visible hiccup of the window), against about 15 ms without. The objects are
    not frozen afterwards (``gc.freeze`` would also pin whatever the open case holds in
    reference cycles, for the rest of the session).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        # and the table lookup that blends every frame (core.overlay.compose)
        kernels.warm_up_lookup()
        return masks.prepare_labels_kernel(pred)
    finally:
        if enabled:
            gc.enable()
