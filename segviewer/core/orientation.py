"""Anatomical orientation: which voxel axis the axial / coronal / sagittal views slice along.

Every view is computed from the image's affine (voxel index -> RAS+ mm), never from a file
format's habits, so NIfTI (usually RAS), DICOM (LPS converted to RAS on read) and stacks
without geometry (:data:`~segviewer.core.types.STACK_AFFINE`) all display the same way:

* **axial**: one slice per Superior/Inferior position; rows go Anterior (top) to Posterior,
  columns go patient Right (screen left) to Left in the radiological convention, patient Left
  on screen left in the neurological one.
* **coronal**: one slice per Anterior/Posterior position; rows Superior (top) to Inferior,
  columns as in axial.
* **sagittal**: one slice per Right/Left position; rows Superior to Inferior, columns Anterior
  (screen left) to Posterior.

A slice is always a zero-copy view of the volume (``transpose`` and ``[::-1]`` only), so the
canvas can show a memory-mapped volume without reading more than the slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from segviewer.core.errors import SegviewerError


class ImageLike(Protocol):
    """What these functions read of a ``core.types.Volume`` (named structurally: core.types
    imports this module, so this module does not import it)."""

    @property
    def affine(self) -> np.ndarray: ...
    @property
    def shape(self) -> tuple[int, int, int]: ...
    @property
    def format(self) -> str: ...
    @property
    def metadata(self) -> Any: ...
    @property
    def orientation(self) -> str: ...


#: Affine for data without geometry: axis 0 → +S, axis 1 → −A (posterior), axis 2 → −R (left).
STACK_AFFINE: np.ndarray = np.array(
    [[0.0, 0.0, -1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
STACK_AFFINE.setflags(write=False)

__all__ = [
    "VIEWS",
    "DisplayAxes",
    "axis_codes",
    "world_axes",
    "display_axes",
    "take_slice",
    "display_shape",
    "n_slices",
    "display_to_voxel",
    "voxel_to_display",
    "voxel_to_world",
    "edge_letters",
    "slice_position",
    "orientation_known",
    "orientation_code",
    "acquisition_view",
    "initial_view",
    "UNKNOWN_ORIENTATION",
]

#: What the window and ``info`` say instead of letters when a file carries no orientation.
UNKNOWN_ORIENTATION = "orientation unknown"

# formats that never carry patient orientation / that normally do
_NO_GEOMETRY_FORMATS = frozenset({"npy", "npz", "png", "jpeg", "tiff", "raster"})
_GEOMETRY_FORMATS = frozenset({"nifti", "nrrd", "dicom"})

VIEWS: tuple[str, str, str] = ("axial", "coronal", "sagittal")

# RAS+ world axis -> (letter for the positive direction, letter for the negative direction).
_LETTERS: tuple[tuple[str, str], ...] = (("R", "L"), ("A", "P"), ("S", "I"))


@dataclass(frozen=True)
class DisplayAxes:
    """How a 3-D image-axis array maps onto one 2-D view.

    Attributes
    ----------
    slice_axis
        Image axis (0, 1 or 2) that the slice index runs along.
    row_axis, col_axis
        Image axes shown as screen rows (top to bottom) and columns (left to right).
    flip_rows, flip_cols
        Whether the screen order is the reverse of the voxel order along that axis
        (screen row ``r`` shows voxel ``n - 1 - r``).
    row_spacing, col_spacing
        Physical size in mm of one screen row / column (norms of the affine's columns), so
        the canvas can draw anisotropic voxels with the right aspect ratio.
    view
        One of :data:`VIEWS`.
    """

    slice_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool
    flip_cols: bool
    row_spacing: float
    col_spacing: float
    view: str


def _check_affine(affine: np.ndarray) -> np.ndarray:
    a = np.asarray(affine, dtype=np.float64)
    if a.shape not in ((4, 4), (3, 4), (3, 3)) or not np.all(np.isfinite(a)):
        raise SegviewerError(
            f"the affine must be a finite 4x4 matrix (got shape {a.shape}); "
            "check the image header or load it without geometry"
        )
    return a[:3, :3]


def world_axes(affine: np.ndarray) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Dominant RAS+ world axis and its sign for each voxel axis.

    Parameters
    ----------
    affine
        4x4 voxel index -> RAS+ mm matrix.

    Returns
    -------
    (world, sign)
        ``world[v]`` is the world axis (0 = x/R, 1 = y/A, 2 = z/S) that voxel axis ``v``
        runs along, ``sign[v]`` is +1 if the index grows towards R/A/S and -1 otherwise.
        ``world`` is always a permutation of (0, 1, 2).

    Notes
    -----
    Oblique affines are assigned greedily by the largest absolute component of the
    (column-normalised) direction matrix, so each voxel axis gets a different world axis;
    exact ties go to the lower voxel axis and then the lower world axis, deterministically.
    A degenerate (zero) column raises :class:`SegviewerError`.
    """
    m = _check_affine(affine)
    norms = np.linalg.norm(m, axis=0)
    if np.any(norms == 0):
        raise SegviewerError(
            "the image's affine has a zero-length voxel axis, so its orientation is undefined; "
            "fix the header (pixel spacing / pixdim) or load it without geometry"
        )
    d = np.abs(m / norms)  # rows: world axis, columns: voxel axis
    candidates = sorted(
        ((-float(d[w, v]), v, w) for v in range(3) for w in range(3)),
    )
    world = [-1, -1, -1]
    used: set[int] = set()
    for _neg, v, w in candidates:
        if world[v] < 0 and w not in used:
            world[v] = w
            used.add(w)
    sign = tuple(1 if m[world[v], v] > 0 else -1 for v in range(3))
    return (world[0], world[1], world[2]), sign  # type: ignore[return-value]


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Anatomical letters of the direction each voxel axis grows towards (like nibabel's aff2axcodes).

    Parameters
    ----------
    affine
        4x4 voxel index -> RAS+ mm matrix.

    Returns
    -------
    tuple of str
        One letter per image axis 0, 1, 2 from R/L, A/P, S/I, e.g. ``('R', 'A', 'S')`` for a
        typical NIfTI, ``('L', 'P', 'S')`` for an axial DICOM series (after LPS -> RAS
        conversion), ``('S', 'P', 'L')`` for :data:`~segviewer.core.types.STACK_AFFINE`.
    """
    world, sign = world_axes(affine)
    return tuple(_LETTERS[w][0 if s > 0 else 1] for w, s in zip(world, sign, strict=True))  # type: ignore[return-value]


def display_axes(affine: np.ndarray, view: str, radiological: bool = True) -> DisplayAxes:
    """Which image axes a view shows as rows and columns, and in which direction.

    Parameters
    ----------
    affine
        4x4 voxel index -> RAS+ mm matrix of the image.
    view
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    radiological
        Radiological convention (patient Right on screen left; the default, as in most
        clinical viewers) or neurological (patient Left on screen left). Sagittal views do
        not depend on it.

    Returns
    -------
    DisplayAxes
    """
    if view not in VIEWS:
        raise SegviewerError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    world, sign = world_axes(affine)
    voxel_of = {w: v for v, w in enumerate(world)}  # world axis -> voxel axis
    m = _check_affine(affine)
    spacing = np.linalg.norm(m, axis=0)

    def rows_down_from_positive(w: int) -> tuple[int, bool]:
        # Screen rows start at the positive end (Anterior / Superior): flip when the voxel
        # index grows towards that end.
        v = voxel_of[w]
        return v, sign[v] > 0

    def cols_left_to_right_patient() -> tuple[int, bool]:
        v = voxel_of[0]
        # Radiological: columns run patient Right -> Left, i.e. towards -x.
        return v, (sign[v] > 0) if radiological else (sign[v] < 0)

    if view == "axial":
        slice_w = 2
        row_axis, flip_rows = rows_down_from_positive(1)
        col_axis, flip_cols = cols_left_to_right_patient()
    elif view == "coronal":
        slice_w = 1
        row_axis, flip_rows = rows_down_from_positive(2)
        col_axis, flip_cols = cols_left_to_right_patient()
    else:
        slice_w = 0
        row_axis, flip_rows = rows_down_from_positive(2)
        # Anterior on screen left: columns run towards -y.
        col_axis = voxel_of[1]
        flip_cols = sign[col_axis] > 0
    return DisplayAxes(
        slice_axis=voxel_of[slice_w],
        row_axis=row_axis,
        col_axis=col_axis,
        flip_rows=bool(flip_rows),
        flip_cols=bool(flip_cols),
        row_spacing=float(spacing[row_axis]),
        col_spacing=float(spacing[col_axis]),
        view=view,
    )


def n_slices(shape: Sequence[int], axes: DisplayAxes) -> int:
    """Number of slices of an image of ``shape`` (image axes 0, 1, 2) in this view."""
    return int(shape[axes.slice_axis])


def display_shape(shape: Sequence[int], axes: DisplayAxes) -> tuple[int, int]:
    """``(rows, cols)`` of one slice of an image of ``shape`` (image axes 0, 1, 2)."""
    return int(shape[axes.row_axis]), int(shape[axes.col_axis])


def take_slice(array: np.ndarray, axes: DisplayAxes, index: int, leading: int = 0) -> np.ndarray:
    """Zero-copy 2-D view of one slice, in screen order.

    Parameters
    ----------
    array
        Image-axis array ``(a0, a1, a2)``, or with ``leading`` extra axes in front, e.g.
        channels-first ``(C, a0, a1, a2)`` with ``leading=1``. May be a memory map.
    axes
        From :func:`display_axes`.
    index
        Slice index along ``axes.slice_axis`` (0-based, no negative wrap-around).
    leading
        Number of leading non-image axes kept in front of the result.

    Returns
    -------
    numpy.ndarray
        A view ``(rows, cols)`` (or ``(*leading_shape, rows, cols)``) sharing memory with
        ``array``: row 0 is the top of the screen, column 0 its left.
    """
    if array.ndim != 3 + leading:
        raise SegviewerError(
            f"internal: take_slice expects {3 + leading} axes ({leading} leading + 3 image "
            f"axes), got shape {array.shape}"
        )
    n = array.shape[leading + axes.slice_axis]
    if not 0 <= index < n:
        raise SegviewerError(
            f"slice {index} is outside the {axes.view} view's range 0..{n - 1}; "
            f"pick a slice between 0 and {n - 1}"
        )
    idx: list[int | slice] = [slice(None)] * (leading + 3)
    idx[leading + axes.slice_axis] = int(index)
    view = array[tuple(idx)]
    # The two remaining image axes keep their relative order; swap them if rows come after
    # columns in the array.
    if axes.row_axis > axes.col_axis:
        order = list(range(leading)) + [leading + 1, leading]
        view = view.transpose(order)
    flips: list[slice] = [slice(None)] * leading
    flips.append(slice(None, None, -1) if axes.flip_rows else slice(None))
    flips.append(slice(None, None, -1) if axes.flip_cols else slice(None))
    return view[tuple(flips)]


def _check_in(shape: Sequence[int], ijk: Sequence[int]) -> None:
    for a in range(3):
        if not 0 <= ijk[a] < shape[a]:
            raise SegviewerError(
                f"voxel {tuple(int(x) for x in ijk)} is outside the image of shape {tuple(shape)}"
            )


def display_to_voxel(
    axes: DisplayAxes, index: int, row: int, col: int, *, shape: Sequence[int]
) -> tuple[int, int, int]:
    """Voxel index of a screen position.

    Parameters
    ----------
    axes
        From :func:`display_axes`.
    index, row, col
        Slice index and screen row / column (integers; round a mouse position first).
    shape
        Image shape ``(a0, a1, a2)``; needed to undo the flips.

    Returns
    -------
    tuple of int
        ``(i0, i1, i2)`` along image axes 0, 1, 2.
    """
    ijk = [0, 0, 0]
    ijk[axes.slice_axis] = int(index)
    ijk[axes.row_axis] = shape[axes.row_axis] - 1 - int(row) if axes.flip_rows else int(row)
    ijk[axes.col_axis] = shape[axes.col_axis] - 1 - int(col) if axes.flip_cols else int(col)
    _check_in(shape, ijk)
    return ijk[0], ijk[1], ijk[2]


def voxel_to_display(
    axes: DisplayAxes, ijk: Sequence[int], *, shape: Sequence[int]
) -> tuple[int, int, int]:
    """Screen position ``(index, row, col)`` of a voxel; the inverse of :func:`display_to_voxel`.

    Parameters
    ----------
    axes
        From :func:`display_axes`.
    ijk
        Voxel index along image axes 0, 1, 2.
    shape
        Image shape ``(a0, a1, a2)``.
    """
    _check_in(shape, ijk)
    index = int(ijk[axes.slice_axis])
    r = int(ijk[axes.row_axis])
    c = int(ijk[axes.col_axis])
    row = shape[axes.row_axis] - 1 - r if axes.flip_rows else r
    col = shape[axes.col_axis] - 1 - c if axes.flip_cols else c
    return index, int(row), int(col)


def voxel_to_world(affine: np.ndarray, ijk: Sequence[float]) -> tuple[float, float, float]:
    """RAS+ world position in mm of a (possibly fractional) voxel index.

    Parameters
    ----------
    affine
        4x4 voxel index -> RAS+ mm matrix.
    ijk
        Index along image axes 0, 1, 2 (voxel centres are at integers).

    Returns
    -------
    tuple of float
        ``(x, y, z)`` mm; x grows to the patient's Right, y Anterior, z Superior.
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise SegviewerError(f"the affine must be 4x4, got shape {a.shape}")
    p = a[:3, :3] @ np.asarray(ijk, dtype=np.float64)[:3] + a[:3, 3]
    return float(p[0]), float(p[1]), float(p[2])


def orientation_known(volume: ImageLike) -> bool:
    """Whether the image's affine states a patient orientation (so letters mean something).

    The reader says so in ``metadata["orientation_known"]`` (False for a NIfTI without sform
    or qform, a NRRD without space directions, DICOM without position/orientation tags);
    otherwise formats without geometry (NumPy, PNG, JPEG, TIFF) are unknown and NIfTI / NRRD /
    DICOM known. An array given with its own affine is known unless that affine is the stack
    affine of data without geometry.
    """
    flag = volume.metadata.get("orientation_known")
    if flag is not None:
        return bool(flag)
    if volume.format in _NO_GEOMETRY_FORMATS:
        return False
    if volume.format in _GEOMETRY_FORMATS:
        return True

    a = np.asarray(volume.affine, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(a, axis=0)
    if np.any(norms == 0):
        return False
    return not np.allclose(a / norms, STACK_AFFINE[:3, :3])


def orientation_code(volume: ImageLike) -> str:
    """The three-letter code (``"RAS"``) when the orientation is known, else ``"unknown"``.

    The one answer ``info``, the window's image information and the export manifest give.
    """
    return volume.orientation if orientation_known(volume) else "unknown"


def acquisition_view(
    affine: np.ndarray, shape: Sequence[int], *, slice_axis: int | None = None
) -> str:
    """The view closest to the plane the image was acquired in.

    Rules, in order:

    1. A single 2-D slice (exactly one image axis of length 1): the view whose slice axis is
       that axis, so the slice is shown in-plane (a sagittal DICOM image opens in the
       sagittal view, not as a one-voxel stripe in the axial one).
    2. ``slice_axis`` given (the axis the slices were stacked along, e.g. 0 for a DICOM
       series): the view that slices along it.
    3. One axis clearly thicker than the others (spacing at least 1.25 times the largest
       other spacing; e.g. 0.5 x 0.5 x 4 mm): the view that slices along it.
    4. Otherwise (isotropic or near-isotropic 3-D): axial.

    Oblique slices go to the view of the dominant direction (:func:`world_axes`).
    """
    shape = tuple(int(s) for s in shape)
    thin = [a for a in range(3) if shape[a] == 1]
    axis: int | None = None
    if len(thin) == 1:
        axis = thin[0]
    elif slice_axis is not None and 0 <= slice_axis < 3 and shape[slice_axis] > 1:
        axis = slice_axis
    else:
        spacing = np.linalg.norm(_check_affine(affine), axis=0)
        k = int(np.argmax(spacing))
        others = [float(spacing[a]) for a in range(3) if a != k]
        if float(spacing[k]) >= 1.25 * max(others):
            axis = k
    if axis is None:
        return "axial"
    world, _sign = world_axes(affine)
    return VIEWS[2 - world[axis]]  # world z -> axial, y -> coronal, x -> sagittal


def initial_view(volume: ImageLike, chosen: str | None = None) -> str:
    """The view a newly opened image starts in: the user's choice, else the acquisition plane.

    Parameters
    ----------
    volume
        The image (its affine, shape and format).
    chosen
        A view the user asked for (``--view``, a saved preference); wins when given.
    """
    if chosen:
        if chosen not in VIEWS:
            raise SegviewerError(f"unknown view {chosen!r}; choose one of {', '.join(VIEWS)}")
        return chosen
    hint = 0 if volume.format == "dicom" else None  # DICOM slices are stacked along axis 0
    return acquisition_view(volume.affine, volume.shape, slice_axis=hint)


def edge_letters(affine: np.ndarray, axes: DisplayAxes) -> dict[str, str]:
    """Anatomical letter at each edge of a view: ``{"top", "bottom", "left", "right"}``.

    The world direction of one screen row down / one column right is the affine's column of
    that image axis, reversed when the screen order is flipped (so it works for one-voxel
    axes too); the letter is that of its dominant RAS+ component.
    """
    a = np.asarray(affine, dtype=np.float64)
    down = a[:3, axes.row_axis] * (-1.0 if axes.flip_rows else 1.0)
    right = a[:3, axes.col_axis] * (-1.0 if axes.flip_cols else 1.0)

    def letter(v: np.ndarray) -> str:
        k = int(np.argmax(np.abs(v)))
        return _LETTERS[k][0] if v[k] >= 0 else _LETTERS[k][1]

    return {
        "top": letter(-down),
        "bottom": letter(down),
        "left": letter(-right),
        "right": letter(right),
    }


def slice_position(
    affine: np.ndarray, axes: DisplayAxes, index: int, shape: Sequence[int]
) -> tuple[str, float]:
    """Where slice ``index`` lies: the world axis it is across (``"x"``, ``"y"`` or ``"z"``,
    RAS+) and the slice centre's coordinate along it in mm."""
    ijk = [(n - 1) / 2.0 for n in shape[:3]]
    ijk[axes.slice_axis] = float(index)
    world = voxel_to_world(affine, ijk)
    col = np.asarray(affine, dtype=np.float64)[:3, axes.slice_axis]
    k = int(np.argmax(np.abs(col)))
    return "xyz"[k], float(world[k])
