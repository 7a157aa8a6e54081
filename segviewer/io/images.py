"""Read MRI images into :class:`~segviewer.core.types.Volume`.

One entry point, :func:`load_image`, picks the reader from the path: NIfTI (and .hdr/.img
pairs), DICOM (a file or a folder of one series, see :mod:`segviewer.io.dicom`), NRRD/NHDR,
PNG/JPEG/TIFF and folders of 2-D images (see :mod:`segviewer.io.raster`), and NumPy
``.npy``/``.npz``. Every reader
returns a 3-D array in the axis conventions of :mod:`segviewer.core.types` and an affine from
voxel index to RAS+ millimetres. :func:`describe_image` is what ``segviewer info`` prints.

Every failure the user can cause (missing, empty, truncated or corrupt files, absurd header
sizes, unknown formats, pickled arrays) raises :class:`SegviewerError` naming the file and
saying what to do; library exceptions never escape.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.orientation import orientation_code
from segviewer.core.types import STACK_AFFINE, SegviewerError, Volume
from segviewer.io.arrays import (
    READ_ERRORS,
    native,
    nifti_data_file,
    nifti_scaling,
    open_nifti,
    open_npy,
    read_gzip_voxels,
    read_npy_header,
    read_npz,
    read_nrrd,
    read_nrrd_header,
)
from segviewer.io.common import (
    SUPPORTED_IMAGE_FORMATS,
    check_alloc,
    check_input_file,
    compound_suffix,
    jsonable,
    record_warnings,
)
from segviewer.io.dicom import SeriesInfo, list_dicom_series, load_dicom, looks_like_dicom
from segviewer.io.geometry import nrrd_geometry
from segviewer.io.raster import load_raster, load_raster_folder
from segviewer.io.sniff import DICOM_SUFFIXES, NIFTI_SUFFIXES, NRRD_SUFFIXES, RASTER_SUFFIXES

__all__ = ["load_image", "describe_image", "list_dicom_series", "SeriesInfo"]

# .hdr/.img: a NIfTI pair (header and voxels in two files), as SPM and FSL can write.
_NIFTI_SUFFIXES = NIFTI_SUFFIXES
_NRRD_SUFFIXES = NRRD_SUFFIXES
_DICOM_SUFFIXES = DICOM_SUFFIXES


def load_image(
    path: str | os.PathLike[str], *, frame: int = 0, series: str | int | None = None
) -> Volume:
    """Read an MRI image file (or folder) into a 3-D :class:`Volume`.

    Parameters
    ----------
    path
        A NIfTI ``.nii``/``.nii.gz`` (or ``.hdr``/``.img`` pair), a DICOM file (single or
        multi-frame), a folder holding a DICOM series, an ``.nrrd``/``.nhdr``, a PNG/JPEG/TIFF
        (multi-page TIFF = a stack), a folder of 2-D images (stacked in natural name order),
        or a ``.npy``/``.npz`` array.
    frame
        0-based volume to show from a 4-D file (NIfTI time series, NRRD with a list axis,
        a DICOM series with several volumes at the same positions). Must be 0 for 3-D data.
    series
        For a folder holding several DICOM series: the SeriesInstanceUID, or the 1-based
        number that :func:`list_dicom_series` (and ``segviewer info``) shows.

    Returns
    -------
    Volume
        ``data`` 3-D in the file's image axes (NIfTI/NRRD ``(i, j, k)``; DICOM, TIFF stacks,
        image folders and ``.npy`` ``(slice, row, column)``; one 2-D image ``(1, row,
        column)``), native byte order; ``affine`` voxel index -> RAS+ mm. Integer data stays
        integer when no rescaling applies; rescaled data is float32 (float64 for 32-bit
        integers). Uncompressed NIfTI and ``.npy`` are read-only memory maps.
        ``metadata`` holds non-identifying facts: ``n_frames``, ``frame``, ``notes`` and
        ``warnings`` (tuples of sentences), and per-format fields.

    Raises
    ------
    SegviewerError
        Missing/empty/truncated/corrupt file, unknown format, absurd header size, frame out
        of range, several DICOM series without ``series``.
    """
    p = Path(os.fspath(path)).expanduser()
    check_input_file(p)
    if frame < 0:
        raise SegviewerError(f"{p}: frame {frame} is negative; frames are numbered from 0")
    caught: list[str] = []
    with record_warnings(caught):
        vol = _dispatch(p, frame, series)
    if vol.data.size == 0:
        raise SegviewerError(
            f"{p}: the image has the shape {tuple(vol.data.shape)}, with an axis of length 0: "
            "there are no voxels to show; the file is corrupt or empty"
        )
    check_geometry(vol.affine, vol.shape, p)
    if caught:
        meta = dict(vol.metadata)
        meta["warnings"] = tuple(dict.fromkeys((*meta.get("warnings", ()), *caught[:5])))
        vol = Volume(
            data=vol.data, affine=vol.affine, source=vol.source, format=vol.format, metadata=meta
        )
    return vol


def _dispatch(p: Path, frame: int, series: str | int | None) -> Volume:
    """Pick the reader from the path; turn library exceptions into SegviewerError."""
    if p.is_dir():
        return _load_folder(p, frame=frame, series=series)
    suffix = compound_suffix(p)
    try:
        if suffix in _NIFTI_SUFFIXES:
            return _load_nifti(p, frame)
        if suffix in _NRRD_SUFFIXES:
            return _load_nrrd(p, frame)
        if suffix == ".npy":
            return _no_frames(_load_npy(p), frame)
        if suffix == ".npz":
            return _no_frames(_load_npz(p), frame)
        if suffix in RASTER_SUFFIXES:
            return _no_frames(load_raster(p), frame)
        if suffix in _DICOM_SUFFIXES or looks_like_dicom(p):
            return load_dicom(p, frame=frame, series=series)
    except SegviewerError:
        raise
    except MemoryError as exc:
        raise SegviewerError(
            f"{p}: not enough memory to load the image ({exc}); close other programs or "
            "crop/downsample the image"
        ) from exc
    except READ_ERRORS as exc:
        raise SegviewerError(
            f"{p}: the file could not be read as {_format_name(suffix)} "
            f"({type(exc).__name__}: {exc}); it may be truncated or corrupt, re-export it"
        ) from exc
    raise SegviewerError(
        f"{p}: unknown image format {suffix or '(no file ending)'!r}; segviewer reads "
        f"{SUPPORTED_IMAGE_FORMATS}"
    )


def header_shape(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """The image shape :func:`load_image` will return, from the header alone, or None.

    Known for NIfTI and ``.npy`` (the formats whose data can be gigabytes behind a small
    header); None for the others. Lets ``segviewer export`` refuse a prediction of the wrong
    shape before reading a large image. Raises :class:`SegviewerError` like the readers.
    """
    p = Path(os.fspath(path)).expanduser()
    if not p.is_file():
        return None
    suffix = compound_suffix(p)
    if suffix in _NIFTI_SUFFIXES:
        shape = tuple(int(d) for d in open_nifti(p).shape)
        if len(shape) < 2 or any(d != 1 for d in shape[4:]):
            return None
        s3 = (shape + (1, 1))[:3]
        return (s3[0], s3[1], s3[2])
    if suffix == ".npy":  # as _array_to_volume: singletons dropped beyond 3-D, 2-D is one slice
        dims = list(read_npy_header(p).shape)
        if len(dims) > 3:
            dims = [d for d in dims if d != 1]
        if len(dims) == 2:
            return (1, dims[0], dims[1])
        if len(dims) == 3:
            return (dims[0], dims[1], dims[2])
    return None


def describe_image(
    path: str | os.PathLike[str], *, frame: int = 0, series: str | int | None = None
) -> dict[str, Any]:
    """Facts about an image for ``segviewer info``, JSON-serialisable, no patient fields.

    Parameters
    ----------
    path, frame, series
        As for :func:`load_image`.

    Returns
    -------
    dict
        ``path``, ``format``, ``shape`` (image axes 0, 1, 2), ``dtype``, ``spacing_mm``,
        ``orientation`` (3-letter code, e.g. ``"RAS"``, or ``"unknown"`` when the file
        carries no patient orientation: then no letters are shown anywhere), ``affine`` (4x4 nested lists),
        ``value_range`` ([min, max] of the finite values, or None), ``n_frames``, ``frame``,
        ``memory_mapped``, ``notes``, ``warnings``, ``metadata`` (the reader's other fields)
        and, for a DICOM folder, ``series`` (one dict per series). A folder with several
        DICOM series and no ``series`` chosen gives only ``path``, ``format`` and ``series``
        plus a note saying how to pick one.
    """
    p = Path(os.fspath(path)).expanduser()
    check_input_file(p)
    series_list: list[SeriesInfo] = []
    if p.is_dir() and not _raster_files(p):
        series_list = list_dicom_series(p)
        if len(series_list) > 1 and series is None:
            return {
                "path": str(p),
                "format": "dicom",
                "series": [s.as_dict() for s in series_list],
                "notes": [
                    f"{len(series_list)} series in this folder; pick one with --series "
                    "NUMBER or UID to see its geometry"
                ],
            }
    vol = load_image(p, frame=frame, series=series)
    meta = dict(vol.metadata)
    info: dict[str, Any] = {
        "path": str(p),
        "format": vol.format,
        "shape": list(vol.shape),
        "dtype": str(vol.data.dtype),
        "spacing_mm": [round(s, 6) for s in vol.spacing],
        "orientation": orientation_code(vol),
        "affine": [[float(v) for v in row] for row in vol.affine],
        "value_range": _value_range(vol.data),
        "n_frames": int(meta.pop("n_frames", 1)),
        "frame": int(meta.pop("frame", 0)),
        "memory_mapped": isinstance(vol.data, np.memmap),
        "notes": list(meta.pop("notes", ())),
        "warnings": list(meta.pop("warnings", ())),
        "metadata": jsonable(meta),
    }
    if series_list:
        info["series"] = [s.as_dict() for s in series_list]
    return info


# --------------------------------------------------------------------------------------
# helpers shared by the readers below


def _format_name(suffix: str) -> str:
    if suffix in _NIFTI_SUFFIXES:
        return "NIfTI"
    if suffix in _NRRD_SUFFIXES:
        return "NRRD"
    if suffix in (".npy", ".npz"):
        return "a NumPy array"
    if suffix in RASTER_SUFFIXES:
        return "an image"
    return "DICOM"


def _no_frames(vol: Volume, frame: int) -> Volume:
    if frame != 0:
        raise SegviewerError(
            f"{vol.source}: frame {frame} requested but this {vol.format} image has a single "
            "volume; leave the frame at 0"
        )
    return vol


def _raster_files(folder: Path) -> list[Path]:
    return [
        f
        for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in RASTER_SUFFIXES
    ]


def _load_folder(folder: Path, *, frame: int, series: str | int | None) -> Volume:
    if _raster_files(folder):
        if series is not None:
            raise SegviewerError(
                f"{folder}: --series applies to DICOM folders, but this folder holds 2-D "
                "images; leave it out"
            )
        return _no_frames(load_raster_folder(folder), frame)
    return load_dicom(folder, frame=frame, series=series)


#: Largest voxel size (mm) and distance from the scanner origin (mm) segviewer believes: a
#: header beyond these (pixdim 1e38, ImagePositionPatient 1e308) is corrupt, and its numbers
#: would overflow to infinity in any affine segviewer writes.
MAX_VOXEL_MM = 1e4
MAX_POSITION_MM = 1e6


def check_geometry(affine: np.ndarray, shape: tuple[int, ...], path: Path) -> None:
    """Refuse an affine with non-finite or absurd values, naming what is wrong.

    Raises
    ------
    SegviewerError
        A NaN or infinite entry, a voxel size of 0 or over :data:`MAX_VOXEL_MM`, or a corner
        of the volume farther than :data:`MAX_POSITION_MM` from the origin.
    """
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise SegviewerError(
            f"{path}: the geometry in the header is not finite (NaN or infinite voxel sizes, "
            "positions or directions); the header is corrupt, fix its voxel sizes / positions"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        sizes = np.linalg.norm(aff[:3, :3], axis=0)
        extent = np.abs(aff[:3, :3]) @ np.maximum(np.asarray(shape, dtype=np.float64), 1.0)
        far = np.abs(aff[:3, 3]) + extent
    if np.any(sizes > MAX_VOXEL_MM) or not np.all(np.isfinite(sizes)):
        raise SegviewerError(
            f"{path}: the header claims voxel sizes {_mm(sizes)} mm; sizes over "
            f"{MAX_VOXEL_MM:g} mm are not an MRI, the header is corrupt (fix pixdim / "
            "PixelSpacing / space directions)"
        )
    if not np.all(np.isfinite(far)) or np.any(far > MAX_POSITION_MM):
        raise SegviewerError(
            f"{path}: the header places the volume {_mm(aff[:3, 3])} mm from the scanner "
            f"origin, beyond {MAX_POSITION_MM:g} mm; the position (qoffset / sform / "
            "ImagePositionPatient / space origin) is corrupt"
        )


def _mm(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):.3g}" for v in values) + ")"


def _checked_affine(affine: np.ndarray, path: Path, what: str) -> np.ndarray:
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise SegviewerError(
            f"{path}: the {what} holds NaN or infinite values (voxel sizes, directions or "
            "position); the header is corrupt, fix it or re-export the image"
        )
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise SegviewerError(
            f"{path}: the {what} is degenerate (a voxel size is 0 or two axes are parallel); "
            "fix the header's voxel sizes/orientation"
        )
    return aff


def _value_range(data: np.ndarray) -> list[float] | None:
    """Finite min/max, one slice at a time so a memory-mapped volume is streamed, not copied."""
    lo, hi = math.inf, -math.inf
    # Walk along the slowest-varying axis so each step reads one contiguous block of a memmap.
    # Basic slicing only: np.take would first copy the whole (memory-mapped) array to C order.
    axis = 2 if data.flags.f_contiguous and not data.flags.c_contiguous else 0
    n = data.shape[axis]
    per_slice = max(1, data.size // max(n, 1)) * data.dtype.itemsize
    step = max(1, (16 * 1024**2) // per_slice)  # about 16 MB per block
    for s in range(0, n, step):
        block = slice(s, min(n, s + step))
        sl = np.asarray(data[block] if axis == 0 else data[:, :, block])
        if sl.dtype.kind == "f":
            sl = sl[np.isfinite(sl)]
        if sl.size:
            lo = min(lo, float(sl.min()))
            hi = max(hi, float(sl.max()))
    return None if lo > hi else [lo, hi]


def _check_frame(frame: int, n_frames: int, path: Path) -> None:
    """Raise if ``frame`` is not one of the file's ``n_frames`` volumes (NIfTI, NRRD)."""
    if frame >= n_frames:
        raise SegviewerError(
            f"{path}: frame {frame} is out of range; the file has {n_frames} frame"
            f"{'s' if n_frames != 1 else ''} (0 to {n_frames - 1})"
        )


# --------------------------------------------------------------------------------------
# NIfTI


def _load_nifti(path: Path, frame: int) -> Volume:
    img = open_nifti(path)
    hdr = img.header
    shape = tuple(int(d) for d in img.shape)
    notes: list[str] = []
    # Keep 3 spatial axes and at most one frame axis; drop singleton higher dimensions
    # (e.g. the 5th "vector" axis of size 1 some tools write).
    if len(shape) > 4:
        if any(d != 1 for d in shape[4:]):
            raise SegviewerError(
                f"{path}: {len(shape)}-D NIfTI {shape} with a non-singleton 5th+ dimension "
                "(vector/tensor image) is not an MRI volume; extract one component first"
            )
        notes.append(f"dropped singleton dimensions 5+ of {shape}")
    if len(shape) < 2:
        raise SegviewerError(f"{path}: NIfTI with shape {shape} is not an image (needs 2-4-D)")
    spatial = (shape + (1, 1))[:3] if len(shape) < 3 else shape[:3]
    n_frames = shape[3] if len(shape) > 3 else 1
    _check_frame(frame, n_frames, path)

    dtype_on_disk = np.dtype(hdr.get_data_dtype())
    if dtype_on_disk.kind not in "biuf":
        raise SegviewerError(
            f"{path}: NIfTI data type {hdr.get_data_dtype()} (colour or complex) is not a grey "
            "MRI volume; convert it to a scalar image (e.g. magnitude or luminance) first"
        )
    proxy = img.dataobj
    slope, inter = nifti_scaling(img)
    scaled = not (slope == 1.0 and inter == 0.0)
    out_dtype = (
        np.dtype(np.float32)
        if dtype_on_disk.kind in "iub" and dtype_on_disk.itemsize <= 2
        else np.dtype(np.float64)
    )
    if dtype_on_disk.kind == "f" and dtype_on_disk.itemsize <= 4:
        out_dtype = np.dtype(np.float32)

    # The voxels live in the .img of a pair, in the file itself for .nii.
    voxels = nifti_data_file(img, path)
    frame_elems = math.prod(spatial)
    check_alloc(spatial, out_dtype if scaled else dtype_on_disk, str(path))

    memory_mapped = False
    if not voxels.compressed and getattr(proxy, "order", "F") == "F" and not scaled:
        # Map the frame straight from the file: no read, no copy (F order: a frame of a
        # 4-D file is one contiguous block).
        mm = np.memmap(
            voxels.path,
            dtype=dtype_on_disk,
            mode="r",
            offset=voxels.offset + frame * frame_elems * dtype_on_disk.itemsize,
            shape=spatial,
            order="F",
        )
        data: np.ndarray = mm
        memory_mapped = dtype_on_disk.isnative or dtype_on_disk.itemsize == 1
        data = native(data) if not memory_mapped else data
    elif voxels.compressed and getattr(proxy, "order", "F") == "F":
        # Stream the frame out of the gzip into one array: nibabel would first read the
        # whole file into memory and then copy it (twice the image, and all frames of 4-D).
        raw = read_gzip_voxels(
            voxels,
            spatial,
            dtype_on_disk,
            skip=frame * frame_elems * dtype_on_disk.itemsize,
            to_end=frame == n_frames - 1,
        )
        data = native(raw)
        if scaled:
            data = data.astype(out_dtype, copy=False)
            data *= out_dtype.type(slope)
            data += out_dtype.type(inter)
            notes.append(f"values scaled by scl_slope={slope:g}, scl_inter={inter:g}")
    else:
        slicer: tuple[Any, ...] = (Ellipsis, frame) if len(shape) > 3 else (Ellipsis,)
        if len(shape) > 4:
            slicer = (slice(None),) * 3 + (frame,) + (0,) * (len(shape) - 4)
        raw = np.asarray(proxy[slicer])
        data = native(raw.reshape(spatial, order="F") if raw.ndim != 3 else raw)
        if scaled:
            data = data.astype(out_dtype, copy=False)
            notes.append(f"values scaled by scl_slope={slope:g}, scl_inter={inter:g}")
    if data.dtype == np.bool_:
        data = data.view(np.uint8)

    sform = int(hdr.get("sform_code", 0)) if "sform_code" in hdr else 0
    qform = int(hdr.get("qform_code", 0)) if "qform_code" in hdr else 0
    if sform > 0:
        affine_source = "sform"
    elif qform > 0:
        affine_source = "qform"
    else:
        affine_source = "voxel sizes only"
        notes.append(
            "the header has no sform or qform: orientation is unknown, shown as nibabel's "
            "default (voxel sizes on the diagonal)"
        )
    if len(shape) == 2:
        notes.append("2-D NIfTI read as (i, j, 1)")
    affine = _checked_affine(img.affine, path, "NIfTI affine")
    meta: dict[str, Any] = {
        "n_frames": n_frames,
        "frame": frame,
        "dtype_on_disk": dtype_on_disk.name,
        "scl_slope": slope,
        "scl_inter": inter,
        "affine_source": affine_source,
        "sform_code": sform,
        "qform_code": qform,
        "orientation_known": affine_source != "voxel sizes only",
        "stored_shape": shape,
        "memory_mapped": memory_mapped,
        "notes": tuple(notes),
        "warnings": (),
    }
    zooms = hdr.get_zooms()
    if n_frames > 1 and len(zooms) > 3:
        meta["frame_interval"] = float(zooms[3])
    intent = hdr.get_intent()[0] if hasattr(hdr, "get_intent") else "none"
    if intent != "none":
        meta["intent"] = str(intent)
    units = hdr.get_xyzt_units()
    meta["units"] = {"space": units[0], "time": units[1]}
    return Volume(data=data, affine=affine, source=str(path), format="nifti", metadata=meta)


# --------------------------------------------------------------------------------------
# NRRD


def _load_nrrd(path: Path, frame: int) -> Volume:
    header, sizes, dtype = read_nrrd_header(path)
    if not sizes or len(sizes) > 4:
        raise SegviewerError(
            f"{path}: NRRD with {len(sizes)} dimensions {sizes} is not supported; segviewer "
            "reads 2-D, 3-D and 4-D (one list/time axis) NRRD"
        )
    data, header = read_nrrd(path, sizes, dtype)
    notes: list[str] = []
    geometry = nrrd_geometry(header, len(sizes))
    spatial_axes = list(geometry.spatial_axes)
    frame_axes = [a for a in range(len(sizes)) if a not in spatial_axes]
    if len(spatial_axes) not in (2, 3) or len(frame_axes) > 1:
        raise SegviewerError(
            f"{path}: NRRD with sizes {sizes} and {len(spatial_axes)} spatial axes is not an "
            "MRI volume segviewer can show (needs 2 or 3 spatial axes and at most one list axis)"
        )
    n_frames = sizes[frame_axes[0]] if frame_axes else 1
    _check_frame(frame, n_frames, path)
    if frame_axes:
        # Basic indexing (a view): np.take would copy the whole 4-D array to C order first.
        data = data[(slice(None),) * frame_axes[0] + (frame,)]
        notes.append(f"axis {frame_axes[0]} of {sizes} is a list/time axis: frame {frame} shown")
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
        notes.append("2-D NRRD read as (i, j, 1)")
    data = native(np.ascontiguousarray(data) if not data.flags.f_contiguous else data)

    space = str(header.get("space", "")).lower()
    if geometry.affine is not None:
        affine = geometry.affine
        notes.extend(geometry.notes)
    else:
        affine = np.eye(4)
        spacings = header.get("spacings")
        sp = [1.0, 1.0, 1.0]
        if spacings is not None:
            vals = [float(s) for a, s in enumerate(spacings) if a in spatial_axes]
            sp = [v if np.isfinite(v) and v > 0 else 1.0 for v in vals] + [1.0] * 3
        affine[:3, :3] = np.diag(sp[:3])
        notes.append("the NRRD has no space directions: orientation unknown, shown as RAS")
    affine = _checked_affine(affine, path, "NRRD space directions")
    meta: dict[str, Any] = {
        "n_frames": n_frames,
        "frame": frame,
        "space": space or None,
        "encoding": str(header.get("encoding", "")),
        "detached": "data file" in header or "datafile" in header,
        "orientation_known": geometry.affine is not None,
        "notes": tuple(notes),
        "warnings": (),
    }
    return Volume(data=data, affine=affine, source=str(path), format="nrrd", metadata=meta)


# --------------------------------------------------------------------------------------
# NumPy


def _array_to_volume(arr: np.ndarray, what: str) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    if arr.dtype.kind not in "biuf":
        raise SegviewerError(
            f"{what}: array dtype {arr.dtype} is not a real number type; save the image as "
            "integers or floats"
        )
    shape = arr.shape
    if arr.ndim > 3:
        arr = arr.reshape([d for d in shape if d != 1])
        if arr.ndim > 3:
            raise SegviewerError(
                f"{what}: {len(shape)}-D array {shape} is not one image volume; save a 2-D "
                "(H, W) or 3-D (slices, H, W) array (one frame/channel)"
            )
        notes.append(f"singleton axes of {shape} dropped")
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise SegviewerError(
            f"{what}: array of shape {shape} is not an image; save a 2-D (H, W) or 3-D "
            "(slices, H, W) array"
        )
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    return arr, notes


def _load_npy(path: Path) -> Volume:
    arr, header = open_npy(path)
    memory_mapped = isinstance(arr, np.memmap)
    if not arr.dtype.isnative:
        # Byte-swapping reads the whole array into memory: size-check that allocation.
        check_alloc(header.shape, header.dtype, str(path))
        arr = native(arr)
        memory_mapped = False
    data, notes = _array_to_volume(arr, str(path))
    meta = {
        "n_frames": 1,
        "frame": 0,
        "array_shape": header.shape,
        "memory_mapped": memory_mapped,
        "notes": tuple(notes) + ("no geometry in .npy: shown as a 1 mm stack",),
        "warnings": (),
    }
    return Volume(data=data, affine=STACK_AFFINE, source=str(path), format="npy", metadata=meta)


def _pick_npz_image(path: Path, names: tuple[str, ...]) -> str:
    """The array named ``image`` of a multi-array ``.npz``, else its first array."""
    return "image" if "image" in names else names[0]


def _load_npz(path: Path) -> Volume:
    raw, member = read_npz(path, _pick_npz_image)
    key, names = member.key, member.names
    data, notes = _array_to_volume(native(raw), f"{path} [{key}]")
    if len(names) > 1:
        notes.append(
            f"the archive holds {len(names)} arrays ({', '.join(names[:8])}); showing "
            f"{key!r} (name the image array 'image' to choose)"
        )
    meta = {
        "n_frames": 1,
        "frame": 0,
        "array_name": key,
        "array_names": names,
        "array_shape": member.header.shape,
        "notes": tuple(notes) + ("no geometry in .npz: shown as a 1 mm stack",),
        "warnings": (),
    }
    return Volume(data=data, affine=STACK_AFFINE, source=str(path), format="npz", metadata=meta)
