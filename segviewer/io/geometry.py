"""Where a file's voxels are: the affine (voxel index -> RAS+ mm) a header declares.

One place for the geometry the image reader and the prediction reader both need:

* NIfTI: nibabel's ``affine`` (the sform when ``sform_code > 0``, else the qform when
  ``qform_code > 0``); a header with neither has no geometry.
* NRRD: ``space directions`` (one column per spatial axis; ``none`` marks a list axis such as
  the classes) and ``space origin``, converted from the declared ``space`` (LPS, LAS) to RAS.
  A header without space directions has no geometry.

DICOM geometry (ImagePositionPatient / ImageOrientationPatient) is built where the slices are
ordered, in :mod:`segviewer.io.dicom`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FileGeometry", "nifti_geometry", "nrrd_geometry", "NRRD_SPACES"]

# NRRD "space" names -> sign of each world axis to reach RAS.
NRRD_SPACES: dict[str, tuple[float, float, float]] = {
    "right-anterior-superior": (1.0, 1.0, 1.0),
    "ras": (1.0, 1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0),
    "las": (-1.0, 1.0, 1.0),
    "left-posterior-superior": (-1.0, -1.0, 1.0),
    "lps": (-1.0, -1.0, 1.0),
}


@dataclass(frozen=True, eq=False)
class FileGeometry:
    """The geometry a header declares.

    Attributes
    ----------
    affine
        4x4 voxel index -> RAS+ mm for the spatial axes in file order, or ``None`` when the
        header declares no geometry (the reason says why).
    spatial_axes
        The file's axes that are spatial, in order (NIfTI: 0, 1, 2; NRRD: those with a space
        direction). An affine column ``k`` belongs to ``spatial_axes[k]``.
    reason
        Why there is no geometry (empty when there is).
    notes
        Sentences about how the affine was read (e.g. a non-anatomical NRRD space).
    """

    affine: np.ndarray | None
    spatial_axes: tuple[int, ...]
    reason: str = ""
    notes: tuple[str, ...] = ()


def nifti_geometry(img: Any) -> FileGeometry:
    """Geometry of an opened nibabel NIfTI image (header only)."""
    hdr = img.header
    sform = int(hdr["sform_code"]) if "sform_code" in hdr else 0
    qform = int(hdr["qform_code"]) if "qform_code" in hdr else 0
    n_spatial = min(3, len(img.shape))
    axes = tuple(range(n_spatial))
    if sform <= 0 and qform <= 0:
        return FileGeometry(None, axes, "its NIfTI header has neither sform nor qform")
    aff = np.asarray(img.affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        return FileGeometry(None, axes, "its NIfTI affine is not a finite 4x4 matrix")
    if np.allclose(aff, np.eye(4)):
        return FileGeometry(None, axes, "its NIfTI affine is the identity (no geometry saved)")
    return FileGeometry(aff, axes)


def nrrd_geometry(header: dict[str, Any], n_axes: int) -> FileGeometry:
    """Geometry of a NRRD header (pynrrd's dict) for an array of ``n_axes`` axes."""
    directions = header.get("space directions")
    if directions is None:
        kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * n_axes)]
        non_space = {"list", "vector", "point", "covariant-vector", "normal", "time"}
        spatial = tuple(a for a in range(n_axes) if kinds[a] not in non_space)[:3]
        return FileGeometry(None, spatial, "the NRRD has no space directions")
    dirs = np.array(
        [[np.nan] * 3 if d is None else list(np.asarray(d, dtype=float)) for d in directions],
        dtype=float,
    )
    if dirs.ndim == 2 and dirs.shape[1] == 2:
        dirs = np.concatenate([dirs, np.zeros((dirs.shape[0], 1))], axis=1)
    spatial = tuple(a for a in range(len(dirs)) if np.all(np.isfinite(dirs[a])))
    affine = np.eye(4)
    m = dirs[list(spatial)].T  # columns = world vector of each spatial axis
    if m.shape[1] == 2:
        m = np.concatenate([m, np.cross(m[:, 0], m[:, 1])[:, None]], axis=1)
        n = np.linalg.norm(m[:, 2])
        m[:, 2] = m[:, 2] / n if n > 0 else m[:, 2]
    if m.shape != (3, 3):
        return FileGeometry(None, spatial, f"the NRRD has {m.shape[1]} space directions")
    affine[:3, :3] = m
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float).ravel()
    origin = np.concatenate([origin, np.zeros(3)])[:3]
    affine[:3, 3] = np.where(np.isfinite(origin), origin, 0.0)
    space = str(header.get("space", "")).lower()
    notes: tuple[str, ...] = ()
    if space in NRRD_SPACES:
        affine = np.diag(NRRD_SPACES[space] + (1.0,)) @ affine
    else:
        notes = (f"NRRD space {space or '(none)'!r} is not anatomical; world axes taken as RAS",)
    return FileGeometry(affine, spatial, notes=notes)
