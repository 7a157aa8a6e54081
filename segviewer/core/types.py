"""The data types every layer shares, and the axis conventions, written down once.

Axis conventions
----------------
* A :class:`Volume` holds a **3-D** array in the order the file's reference library yields it:
  NIfTI and NRRD ``(i, j, k)`` as nibabel / pynrrd give it; a DICOM series, a multi-page TIFF,
  a folder of 2-D images and a ``.npy`` stack ``(slice, row, column)``; a single 2-D image
  ``(1, row, column)``; a 2-D NIfTI ``(i, j, 1)``. These three are "image axis 0, 1, 2" in
  the whole program (``segviewer info`` prints them), and the layout letters X/Y/Z (or D/H/W)
  name them in that order.
* ``Volume.affine`` maps a voxel index ``(axis0, axis1, axis2, 1)`` to RAS+ world millimetres
  (x grows to the patient's Right, y to Anterior, z to Superior), exactly like a NIfTI affine.
  DICOM's LPS positions are converted when read. Formats without geometry get the "stack"
  affine: axis 0 → Superior, axis 1 → Posterior, axis 2 → Left (patient), 1 mm, so a 2-D
  image or a stack shows up unchanged in the axial view (rows down, columns right).
* A :class:`Prediction` keeps the array as read (possibly memory-mapped) plus a
  :class:`~segviewer.core.layout.Layout` that says which raw axis is the class axis, which raw
  axes are dropped batch axes of size 1, and which raw axis carries each image axis.
  :meth:`Prediction.channels_first` returns a zero-copy view ``(C, axis0, axis1, axis2)``
  (label maps: ``(axis0, axis1, axis2)``).
* Masks (label maps) are ``uint8`` (``uint16`` beyond 253 classes) in image-axis order. The two
  largest values of the dtype are reserved: :data:`INVALID` marks voxels whose logits are NaN
  or +inf (never silently class 0), :data:`UNCERTAIN` marks voxels below the minimum
  confidence when one is set.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.layout import Layout
from segviewer.core.orientation import STACK_AFFINE, axis_codes

__all__ = [
    "SegviewerError",
    "Volume",
    "PredictionKind",
    "Prediction",
    "Resampling",
    "MaskSettings",
    "Progress",
    "STACK_AFFINE",
    "label_dtype",
    "reserved_labels",
]


@dataclass(frozen=True, eq=False)
class Volume:
    """An MRI volume with its geometry.

    Parameters
    ----------
    data
        3-D array, image axes 0, 1, 2 (see module docstring). Any numeric dtype; may be a
        read-only ``np.memmap``.
    affine
        4x4 float64, voxel index → RAS+ mm.
    source
        Path (or a description such as ``"<array>"``) the data came from.
    format
        Short format name: ``nifti``, ``dicom``, ``nrrd``, ``png``, ``jpeg``, ``tiff``,
        ``npy``, ``npz``, ``array``.
    metadata
        Non-identifying facts a reviewer needs (modality, series description, rescale,
        number of frames of a 4-D file, which frame is shown, ...). Never patient fields.
    """

    data: np.ndarray
    affine: np.ndarray
    source: str = "<array>"
    format: str = "array"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise SegviewerError(
                f"internal: a Volume must be 3-D, got shape {self.data.shape} from {self.source}"
            )
        aff = np.asarray(self.affine, dtype=np.float64)
        if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
            raise SegviewerError(f"{self.source}: the image's affine is not a finite 4x4 matrix")
        object.__setattr__(self, "affine", aff)

    @property
    def shape(self) -> tuple[int, int, int]:
        s = self.data.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along image axes 0, 1, 2 (norms of the affine's columns)."""
        n = np.linalg.norm(self.affine[:3, :3], axis=0)
        return (float(n[0]), float(n[1]), float(n[2]))

    @property
    def orientation(self) -> str:
        """Three-letter anatomical code of the axes' directions, e.g. ``"RAS"`` or ``"SPL"``."""
        return "".join(axis_codes(self.affine))


class PredictionKind(str, enum.Enum):
    """What the values of a prediction mean."""

    LOGITS = "logits"  #: real values, softmax over the class axis gives probabilities
    PROBABILITIES = "probabilities"  #: non-negative, sum to 1 over the class axis
    SIGMOID = "sigmoid"  #: one channel, binary foreground (logit or probability)
    MULTILABEL = "multilabel"  #: several independent sigmoid channels (overlapping classes)
    LABELS = "labels"  #: integer label map, no class axis


@dataclass(frozen=True, eq=False)
class Resampling:
    """What was done to put a prediction onto the image grid (for the screen, ``info`` and the
    export manifest); made by :mod:`segviewer.core.resample`.

    Parameters
    ----------
    from_shape, to_shape
        Spatial size of the prediction (image-axis order) and of the image.
    from_spacing, to_spacing
        Voxel sizes in mm along those axes (1 mm where a file has no geometry).
    from_affine, to_affine
        Voxel index -> RAS+ mm of the prediction (its own axes in image-axis order) and of the
        image; ``None`` when scaling by shape (no geometry).
    method
        ``"nearest neighbour"`` (label maps, references) or ``"linear per class"`` (logits,
        probabilities; the argmax is taken afterwards, class indices are never interpolated).
    geometry
        ``"world"`` (mapped through both affines) or ``"shape"`` (no geometry in one of the
        files: the grids are stretched so that their outer voxel corners coincide).
    coverage
        Share of the image's voxels that lie inside the prediction's field of view (0..1);
        voxels outside are background.
    outside
        Share of the prediction's voxels that fall outside the image (0..1, from a sample).
    reason
        Why this geometry was used (e.g. which file lacks geometry).
    """

    from_shape: tuple[int, int, int]
    to_shape: tuple[int, int, int]
    from_spacing: tuple[float, float, float]
    to_spacing: tuple[float, float, float]
    from_affine: np.ndarray | None
    to_affine: np.ndarray | None
    method: str
    geometry: str
    coverage: float
    outside: float
    reason: str = ""

    def describe(self) -> str:
        """One or two sentences for the status bar, ``info`` and the manifest."""

        def grid(shape: tuple[int, int, int], sp: tuple[float, float, float]) -> str:
            dims = "x".join(str(s) for s in shape)
            if self.geometry != "world":  # no geometry: voxel sizes are not known
                return dims
            return f"{dims} ({'x'.join(f'{v:.3g}' for v in sp)} mm)"

        how = (
            "in world space through both affines"
            if self.geometry == "world"
            else ("by shape (no geometry: the grids' outer corners are aligned)")
        )
        text = (
            f"Resampled from {grid(self.from_shape, self.from_spacing)} onto the image grid "
            f"{grid(self.to_shape, self.to_spacing)} {how}, {self.method}."
        )
        if self.reason:
            text += f" {self.reason}"
        if self.coverage < 0.9995 or self.outside > 0.0005:
            text += (
                f" The prediction covers {100 * self.coverage:.1f} % of the image (the rest is "
                f"background); {100 * self.outside:.1f} % of the prediction lies outside the image."
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able facts (lists and floats)."""

        def aff(a: np.ndarray | None) -> list[list[float]] | None:
            return None if a is None else [[round(float(v), 6) for v in row] for row in a]

        return {
            "from_shape": list(self.from_shape),
            "to_shape": list(self.to_shape),
            "from_spacing_mm": [round(v, 6) for v in self.from_spacing],
            "to_spacing_mm": [round(v, 6) for v in self.to_spacing],
            "from_affine": aff(self.from_affine),
            "to_affine": aff(self.to_affine),
            "method": self.method,
            "geometry": self.geometry,
            "image_covered": round(self.coverage, 6),
            "prediction_outside_image": round(self.outside, 6),
            "description": self.describe(),
        }


@dataclass(frozen=True, eq=False)
class Prediction:
    """A model's output, aligned to an image by its layout.

    Parameters
    ----------
    data
        The array as read, any layout, possibly a read-only memory map. Never copied here.
    kind
        What the values mean.
    layout
        How ``data``'s axes map to (class, image axis 0, 1, 2); see ``core.layout``.
    n_classes
        Number of classes including background. For ``SIGMOID`` it is 2 (background,
        foreground); for ``MULTILABEL`` it is channels + 1 (class 0 = "none"); for ``LABELS``
        the largest label + 1 unless a class table says more.
    source
        Path or description.
    values_are_probabilities
        For ``SIGMOID`` / ``MULTILABEL``: whether the channel values are probabilities in
        [0, 1] (True) or logits (False).
    notes
        Human-readable sentences on how kind and layout were decided (printed by ``info`` and
        recorded in the export manifest).
    resampling
        What was done to bring it onto the image grid, or ``None`` when it was read as stored.
    """

    data: np.ndarray
    kind: PredictionKind
    layout: Layout
    n_classes: int
    source: str = "<array>"
    values_are_probabilities: bool = False
    notes: tuple[str, ...] = ()
    resampling: Resampling | None = None

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return self.layout.spatial_shape

    def channels_first(self) -> np.ndarray:
        """Zero-copy view ``(C, a0, a1, a2)`` (or ``(a0, a1, a2)`` for label maps)."""
        return self.layout.apply(self.data)


@dataclass(frozen=True)
class MaskSettings:
    """How a prediction becomes a label map.

    Parameters
    ----------
    threshold
        For sigmoid / multi-label outputs: probability at or above which a voxel is
        foreground.
    min_confidence
        If set, voxels whose top probability is below it get :func:`reserved_labels`'s
        ``uncertain`` value instead of a class.
    """

    threshold: float = 0.5
    min_confidence: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise SegviewerError(f"threshold must be between 0 and 1, got {self.threshold}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise SegviewerError(
                f"minimum confidence must be between 0 and 1, got {self.min_confidence}"
            )


@dataclass(frozen=True)
class Progress:
    """What a long-running generator yields: ``done`` of ``total`` steps, and what it is doing."""

    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)


def label_dtype(n_classes: int) -> np.dtype[Any]:
    """``uint8`` while the classes and the two reserved values fit, else ``uint16``."""
    if n_classes <= 254:
        return np.dtype(np.uint8)
    if n_classes <= 65534:
        return np.dtype(np.uint16)
    raise SegviewerError(f"{n_classes} classes is more than segviewer supports (65534)")


def reserved_labels(dtype: np.dtype[Any] | type) -> tuple[int, int]:
    """``(uncertain, invalid)`` label values for a label dtype: its two largest values."""
    top = int(np.iinfo(np.dtype(dtype)).max)
    return top - 1, top


UNCERTAIN_U8, INVALID_U8 = reserved_labels(np.uint8)
