"""Writers for masks, label maps, probabilities and pictures; every one is atomic.

* :func:`write_nifti` keeps the image's geometry, so a mask opens aligned with its image in
  ITK-SNAP, 3D Slicer and FSLeyes.
* :func:`write_png` writes 2-D grey (uint8 / uint16), RGB or RGBA pictures.
* :func:`write_npy` writes plain ``.npy`` files (never pickles).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import SegviewerError
from segviewer.io.arrays import native
from segviewer.io.atomic import atomic_path

__all__ = ["write_nifti", "write_png", "write_npy", "nifti_like"]

_NIFTI_DTYPES = (
    np.uint8,
    np.int8,
    np.uint16,
    np.int16,
    np.uint32,
    np.int32,
    np.int64,
    np.uint64,
    np.float32,
    np.float64,
)


def _destination(path: str | os.PathLike[str], endings: tuple[str, ...], kind: str) -> Path:
    """``path`` as a Path if its name ends in one of ``endings`` (any case), else an error."""
    final = Path(path)
    if not final.name.lower().endswith(endings):
        raise SegviewerError(f"{final}: a {kind} file name must end in {' or '.join(endings)}")
    return final


def write_nifti(
    array: np.ndarray,
    affine: np.ndarray,
    path: str | os.PathLike[str],
    *,
    force: bool = False,
    description: str = "",
    like: Mapping[str, Any] | None = None,
) -> Path:
    """Write a 3-D (or 4-D) array as NIfTI-1 with the image's affine.

    Parameters
    ----------
    array
        Image-axis order ``(a0, a1, a2)`` (a mask or label map), or ``(a0, a1, a2, C)`` for
        per-class probabilities. Bool is written as uint8 0/1; integer and float32/float64
        dtypes are kept (float16 is widened to float32).
    affine
        4x4 voxel -> RAS+ mm matrix of the image (``Volume.affine``). Stored as both sform
        and qform with code 1 (scanner-anatomical); spatial units are mm. For DICOM sources
        this is the RAS affine the reader derived from the patient-position tags.
    path
        Destination, ``.nii`` or ``.nii.gz`` (gzip is chosen by the suffix).
    force
        Overwrite an existing file.
    description
        Stored in the header's ``descrip`` field (at most 79 ASCII characters).
    like
        The source NIfTI's header facts (:func:`nifti_like`): a 3-D array is written in the
        source's stored shape (trailing axes of length 1 restored, e.g. ``(116, 150, 155,
        1)``), with its sform/qform codes and units, so the mask re-opens exactly like the
        image. Without it: sform and qform code 1, mm.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    import nibabel as nib

    final = _destination(path, (".nii", ".nii.gz"), "NIfTI")
    arr = np.asarray(array)
    if arr.ndim not in (3, 4):
        raise SegviewerError(f"internal: NIfTI output must be 3-D or 4-D, got shape {arr.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype.type not in _NIFTI_DTYPES:
        raise SegviewerError(f"internal: cannot write dtype {arr.dtype} to NIfTI")
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise SegviewerError(f"{final}: the affine is not a finite 4x4 matrix")

    sform_code, qform_code, xyz, t = 1, 1, "mm", "sec"
    if like is not None:
        arr = _source_shape(arr, like.get("shape"))
        sform_code = int(like.get("sform_code", 1))
        qform_code = int(like.get("qform_code", 1))
        xyz = str(like.get("xyz_units") or "mm")
        t = str(like.get("t_units") or "sec")
    img = nib.Nifti1Image(arr, aff)
    hdr = img.header
    hdr.set_data_dtype(arr.dtype)
    img.set_sform(aff, code=sform_code)
    img.set_qform(aff, code=qform_code)
    hdr.set_xyzt_units(xyz=xyz, t=t)
    # Masks must not be rescaled on read: slope 1, intercept 0 exactly.
    hdr["scl_slope"] = 1.0
    hdr["scl_inter"] = 0.0
    if description:
        hdr["descrip"] = description.encode("ascii", "replace")[:79]
    if np.issubdtype(arr.dtype, np.integer) and arr.size:
        # cal_min/max let viewers pick a sensible initial display range for label maps.
        hdr["cal_min"] = 0.0
        hdr["cal_max"] = float(arr.max())
    with atomic_path(final, force=force) as tmp:
        nib.save(img, str(tmp))
    return final


def nifti_like(volume: Any) -> dict[str, Any] | None:
    """The header facts of a NIfTI source that a written mask should share (None otherwise).

    ``shape`` (as stored, e.g. ``(116, 150, 155, 1)``), ``sform_code``, ``qform_code``,
    ``xyz_units``, ``t_units`` from the reader's metadata (:func:`segviewer.io.images.load_image`).
    """
    meta = getattr(volume, "metadata", {}) or {}
    if getattr(volume, "format", None) != "nifti" or "sform_code" not in meta:
        return None
    units = meta.get("units") or {}
    return {
        "shape": tuple(int(s) for s in meta.get("stored_shape", volume.shape)),
        "sform_code": int(meta.get("sform_code", 1)),
        "qform_code": int(meta.get("qform_code", 1)),
        "xyz_units": units.get("space") or "mm",
        "t_units": units.get("time") or "sec",
    }


def _source_shape(arr: np.ndarray, shape: Any) -> np.ndarray:
    """``arr`` (image axes) reshaped to the source's stored shape when they differ only by
    axes of length 1 (a 2-D ``(i, j)`` source, a ``(i, j, k, 1)`` one); else unchanged."""
    if shape is None or arr.ndim != 3:
        return arr
    target = tuple(int(s) for s in shape)
    if target == arr.shape:
        return arr
    if len(target) < 3:
        ok = target == arr.shape[: len(target)] and all(s == 1 for s in arr.shape[len(target) :])
    else:
        ok = target[:3] == arr.shape and all(s == 1 for s in target[3:])
    return arr.reshape(target) if ok else arr


def write_png(array2d: np.ndarray, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write a picture as PNG (lossless).

    Parameters
    ----------
    array2d
        ``(rows, cols)`` uint8 or uint16 grey (a binary mask 0/255, a label map), bool (written
        0/255), or ``(rows, cols, 3)`` RGB / ``(rows, cols, 4)`` RGBA uint8. Row 0 is the top
        of the picture.
    path
        Destination ending in ``.png``.
    force
        Overwrite an existing file.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    from PIL import Image

    final = _destination(path, (".png",), "PNG")
    arr = np.asarray(array2d)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    arr = native(arr)
    image: Any
    # Pillow infers the mode from shape and dtype (L, I;16, RGB, RGBA); passing ``mode=`` is
    # deprecated in Pillow >= 11.3. uint16 becomes a 16-bit PNG with values unchanged.
    if (arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16)) or (
        arr.ndim == 3 and arr.shape[2] in (3, 4) and arr.dtype == np.uint8
    ):
        image = Image.fromarray(np.ascontiguousarray(arr))
    else:
        raise SegviewerError(
            f"internal: cannot write an array of shape {arr.shape} and dtype {arr.dtype} as PNG "
            "(need 2-D uint8/uint16 or (rows, cols, 3|4) uint8)"
        )
    with atomic_path(final, force=force) as tmp:
        image.save(tmp, format="PNG", optimize=False, compress_level=6)
    return final


def write_npy(array: np.ndarray, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write an array as ``.npy`` (``np.save`` with ``allow_pickle=False``).

    Parameters
    ----------
    array
        Any numeric array, written with its shape and dtype unchanged (object arrays are
        refused).
    path
        Destination ending in ``.npy``.
    force
        Overwrite an existing file.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    final = _destination(path, (".npy",), "NumPy")
    arr = np.asarray(array)
    if arr.dtype.hasobject:
        raise SegviewerError("internal: refusing to write an object array (would need pickle)")
    with atomic_path(final, force=force) as tmp, open(tmp, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    return final
