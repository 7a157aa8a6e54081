"""DICOM reader: a folder holding series, a multi-frame (enhanced) file, or one 2-D file.

The array is ``(slice, row, column)``: slices sorted by their position projected on the slice
normal (``ImagePositionPatient`` . (row direction x column direction)), never by file name;
``InstanceNumber`` only when positions are missing. The affine maps ``(slice, row, column)``
to RAS+ mm (DICOM's LPS patient coordinates with x and y negated). Rescale slope/intercept
are applied per slice. Compressed transfer syntaxes decode through pydicom's pixel-data
plugins (pylibjpeg: JPEG 2000, JPEG-LS, JPEG lossless/baseline, RLE; deflate is native).

Patient-identifying fields (names, IDs, dates, institution) never enter the metadata.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import STACK_AFFINE, SegviewerError, Volume
from segviewer.io.common import check_alloc, natural_key, record_warnings

__all__ = ["SeveralSeries", "SeriesInfo", "list_dicom_series", "load_dicom", "looks_like_dicom"]

#: Positions closer than this (mm, along the slice normal) count as the same slice location.
_SAME_POSITION_MM = 0.01
#: Relative deviation of a slice gap from the median gap that earns a "not uniform" warning.
_GAP_TOLERANCE = 0.01
#: Files a folder scan looks at before deciding the user picked the wrong folder (e.g. home).
_MAX_FILES_SCANNED = 100_000
#: Series named in an error message before "... more".
_MAX_LISTED = 20
#: LPS -> RAS.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# Non-identifying acquisition fields copied into Volume.metadata (keyword -> metadata key).
_SAFE_FIELDS = {
    "Modality": "modality",
    "SeriesDescription": "series_description",
    "SeriesNumber": "series_number",
    "SeriesInstanceUID": "series_uid",
    "FrameOfReferenceUID": "frame_of_reference_uid",  # a SEG must share it (io.dicomseg)
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "model",
    "MagneticFieldStrength": "field_strength_T",
    "SequenceName": "sequence_name",
    "ScanningSequence": "scanning_sequence",
    "EchoTime": "echo_time_ms",
    "RepetitionTime": "repetition_time_ms",
    "InversionTime": "inversion_time_ms",
    "FlipAngle": "flip_angle_deg",
    "SliceThickness": "slice_thickness_mm",
    "BodyPartExamined": "body_part",
    "PhotometricInterpretation": "photometric",
    "ImageType": "image_type",
}


class SeveralSeries(SegviewerError):
    """A DICOM folder holds several series and none was chosen.

    The message lists them and says how to pick one (``--series``); the window catches this
    type and offers a list to choose from (:func:`list_dicom_series` gives the details).
    """

    def __init__(self, message: str, folder: Path, n_series: int) -> None:
        super().__init__(message)
        self.folder = folder
        self.n_series = n_series


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series found in a folder.

    Attributes
    ----------
    uid
        SeriesInstanceUID.
    description
        SeriesDescription ("" if absent).
    modality
        Modality, e.g. ``"MR"``.
    n_files
        Number of image files in the series.
    shape
        ``(slices, rows, columns)`` the series loads as (frames of a multi-frame file count
        as slices; several volumes at the same positions count once).
    number
        1-based position in :func:`list_dicom_series`'s order, accepted by ``--series``.
    series_number
        The scanner's SeriesNumber, or None.
    n_frames
        Number of volumes (time points / echoes) sharing the slice positions.
    """

    uid: str
    description: str
    modality: str
    n_files: int
    shape: tuple[int, int, int]
    number: int = 0
    series_number: int | None = None
    n_frames: int = 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of the fields."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


@dataclass
class _Header:
    """What the folder scan keeps of one file (header only, no pixels)."""

    path: Path
    uid: str
    description: str
    modality: str
    series_number: int | None
    rows: int
    cols: int
    n_frames: int
    frame: _Frame


@dataclass
class _Frame:
    """Geometry and scaling of one 2-D image (a file, or a frame of a multi-frame file)."""

    index: int  # file index in the series, or frame index in a multi-frame file
    ipp: np.ndarray | None  # ImagePositionPatient, LPS mm
    iop: np.ndarray | None  # ImageOrientationPatient (row dir, column dir)
    spacing: tuple[float, float] | None  # PixelSpacing (between rows, between columns) mm
    thickness: float | None  # SpacingBetweenSlices, else SliceThickness
    slope: float = 1.0
    inter: float = 0.0
    order_keys: tuple[float, ...] = field(default_factory=tuple)  # time/echo/instance
    spacing_problem: str | None = None  # what was wrong with a PixelSpacing that is present


def looks_like_dicom(path: Path) -> bool:
    """True if ``path`` has the DICOM preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def list_dicom_series(folder: str | os.PathLike[str]) -> list[SeriesInfo]:
    """The DICOM image series in ``folder`` (searched recursively), in a stable order.

    Parameters
    ----------
    folder
        A folder holding DICOM files (any names; non-DICOM files are skipped).

    Returns
    -------
    list of SeriesInfo
        Ordered by SeriesNumber, then UID; ``number`` is the 1-based position.

    Raises
    ------
    SegviewerError
        The folder is missing or holds no DICOM images.
    """
    root = Path(os.fspath(folder))
    groups = _scan(root)
    out = []
    for number, (uid, heads) in enumerate(groups, start=1):
        h0 = heads[0]
        if len(heads) == 1 and h0.n_frames > 1:
            shape = (h0.n_frames, h0.rows, h0.cols)
            n_frames = 1
        else:
            try:
                order, *_ = _arrange([h.frame for h in heads], str(root))
                shape = (len(order[0]), h0.rows, h0.cols)
                n_frames = len(order)
            except SegviewerError:
                shape = (len(heads), h0.rows, h0.cols)
                n_frames = 1
        out.append(
            SeriesInfo(
                uid=uid,
                description=h0.description,
                modality=h0.modality,
                n_files=len(heads),
                shape=shape,
                number=number,
                series_number=h0.series_number,
                n_frames=n_frames,
            )
        )
    return out


def load_dicom(path: Path, *, frame: int = 0, series: str | int | None = None) -> Volume:
    """Read a DICOM folder (one series, or the one ``series`` picks), or a single file.

    Parameters
    ----------
    path
        Folder (searched recursively) or one DICOM file.
    frame
        0-based volume when several images share each slice position (time points,
        echoes); 0 otherwise.
    series
        SeriesInstanceUID or 1-based number (see :func:`list_dicom_series`); needed when the
        folder holds several series.

    Returns
    -------
    Volume
        ``(slice, row, column)``, affine to RAS+ mm, format ``"dicom"``.
    """
    notes: list[str] = []
    caught: list[str] = []
    # pydicom converts element values lazily, so its warnings (bad VRs...) can come from
    # any access below: record them all into the metadata instead of the console.
    with record_warnings(caught):
        if path.is_dir():
            groups = _scan(path)
            uid, heads = _select(groups, series, path)
            where = f"{path} (series {uid})"
        else:
            if path.name.upper() == "DICOMDIR":
                raise SegviewerError(
                    f"{path}: a DICOMDIR is an index of a disc or study, not an image; open the "
                    "folder that holds it (or a series folder inside it)"
                )
            if series is not None:
                raise SegviewerError(
                    f"{path}: --series picks a series in a folder; this is a single DICOM file, "
                    "leave --series out or open the folder"
                )
            with record_warnings(caught):
                h = _read_header(path, force=True)
            if h is None:
                raise SegviewerError(
                    f"{path}: not a readable DICOM image (no image header found); check that the "
                    "file is DICOM and was copied completely"
                )
            heads = [h]
            where = str(path)
        if len(heads) == 1 and heads[0].n_frames > 1:
            data, affine, meta = _load_multiframe(heads[0].path, frame, notes, caught)
        else:
            if any(h.n_frames > 1 for h in heads):
                raise SegviewerError(
                    f"{where}: the series holds {len(heads)} multi-frame files; open one of them "
                    "as a file instead of the folder"
                )
            data, affine, meta = _load_series(heads, frame, where, notes, caught)
    meta["n_files"] = len(heads)
    if meta.get("photometric") == "MONOCHROME1":
        notes.append(
            "MONOCHROME1: the scanner shows low values bright; values are kept as stored, "
            "so invert the grey map to match the scanner's display"
        )
    meta["notes"] = tuple(notes)
    meta["warnings"] = tuple(dict.fromkeys(meta.get("warnings", ()) + tuple(caught[:5])))
    meta["orientation_known"] = not any(_NO_ORIENTATION in n for n in notes)
    return Volume(data=data, affine=affine, source=str(path), format="dicom", metadata=meta)


# --------------------------------------------------------------------------------------
# scanning


def _float(value: Any, default: float | None = None) -> float | None:
    try:
        if value is None or value == "":
            return default
        return float(value)
    except (TypeError, ValueError):
        return default


def _vector(value: Any, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


def _frame_from(ds: Any, index: int) -> _Frame:
    """Geometry/scaling of a single-frame dataset (or a legacy multi-frame file's base)."""
    problem = _spacing_problem(ds.get("PixelSpacing"))
    ps = _vector(ds.get("PixelSpacing"), 2)
    if ps is None or np.any(ps <= 0):
        ps = _vector(ds.get("ImagerPixelSpacing"), 2)
    if ps is not None and np.any(ps <= 0):
        ps = None  # a zero pixel size would make the affine singular: treat as missing
    thickness = _float(ds.get("SpacingBetweenSlices")) or _float(ds.get("SliceThickness"))
    keys = (
        _float(ds.get("TemporalPositionIdentifier"), 0.0) or 0.0,
        _float(ds.get("EchoNumbers"), 0.0) or 0.0,
        _float(ds.get("AcquisitionNumber"), 0.0) or 0.0,
        _float(ds.get("InstanceNumber"), float(index)) or 0.0,
    )
    return _Frame(
        index=index,
        ipp=_vector(ds.get("ImagePositionPatient"), 3),
        iop=_vector(ds.get("ImageOrientationPatient"), 6),
        spacing=None if ps is None else (float(ps[0]), float(ps[1])),
        thickness=thickness if thickness and thickness > 0 else None,
        slope=_float(ds.get("RescaleSlope"), 1.0) or 1.0,
        inter=_float(ds.get("RescaleIntercept"), 0.0) or 0.0,
        order_keys=keys,
        spacing_problem=problem if ps is None else None,
    )


def _spacing_problem(value: Any) -> str | None:
    """What is wrong with a PixelSpacing that is present but unusable (None if fine/absent)."""
    if value is None or value == "":
        return None
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        return f"PixelSpacing {str(value)[:40]!r} is not two numbers"
    if len(vals) != 2:
        return f"PixelSpacing has {len(vals)} values instead of 2"
    shown = "\\".join(f"{v:g}" for v in vals)
    if not all(np.isfinite(vals)):
        return f"PixelSpacing {shown} is not finite (NaN or infinity)"
    if any(v <= 0 for v in vals):
        return f"PixelSpacing {shown} is zero or negative"
    return None


def _read_header(path: Path, *, force: bool = False) -> _Header | None:
    """Header of one file, or None if it is not a DICOM image."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    errors = (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=force)
    except InvalidDicomError:
        # No "DICM" preamble: some exporters write bare datasets. Accept one only if it
        # parses into an image with a SOP class, so stray binary files are not mistaken.
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            if "SOPClassUID" not in ds:
                return None
        except errors:
            return None
    except errors as exc:
        if force:
            raise SegviewerError(
                f"{path}: the DICOM header could not be read ({type(exc).__name__}: {exc}); "
                "the file is truncated or not DICOM"
            ) from exc
        return None
    try:
        rows, cols = ds.get("Rows"), ds.get("Columns")
    except errors:
        return None
    if rows is None or cols is None:
        return None  # structured report, presentation state, DICOMDIR...
    try:
        n_frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        n_frames = 1
    sn = ds.get("SeriesNumber")
    return _Header(
        path=path,
        uid=str(ds.get("SeriesInstanceUID", "") or "(no series UID)"),
        description=str(ds.get("SeriesDescription", "") or ""),
        modality=str(ds.get("Modality", "") or ""),
        series_number=int(sn) if isinstance(sn, (int, float)) or str(sn).isdigit() else None,
        rows=int(rows),
        cols=int(cols),
        n_frames=max(1, n_frames),
        frame=_frame_from(ds, 0),
    )


def _scan(root: Path) -> list[tuple[str, list[_Header]]]:
    """Group the DICOM image files under ``root`` by SeriesInstanceUID (headers only)."""
    if not root.is_dir():
        raise SegviewerError(f"{root}: not a folder; give the folder that holds the DICOM files")
    by_uid: dict[str, list[_Header]] = {}
    n_seen = 0
    # Header quirks of files we may not even use are dropped; the loader records the ones
    # of the series it reads.
    with record_warnings([]):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames, key=natural_key):
                if name.startswith(".") or name.upper() == "DICOMDIR":
                    continue
                n_seen += 1
                if n_seen > _MAX_FILES_SCANNED:
                    raise SegviewerError(
                        f"{root}: more than {_MAX_FILES_SCANNED} files under this folder; it "
                        "does not look like one study. Open the folder of a single series"
                    )
                h = _read_header(Path(dirpath) / name)
                if h is not None:
                    by_uid.setdefault(h.uid, []).append(h)
    if not by_uid:
        raise SegviewerError(
            f"{root}: no DICOM images found in this folder ({n_seen} files looked at); segviewer "
            "opens a folder of DICOM files or of 2-D PNG/JPEG/TIFF images, otherwise open the "
            "image file itself"
        )
    for heads in by_uid.values():
        for i, h in enumerate(heads):
            h.frame.index = i
    return sorted(
        by_uid.items(),
        key=lambda kv: (
            kv[1][0].series_number if kv[1][0].series_number is not None else 1 << 62,
            kv[0],
        ),
    )


def _select(
    groups: list[tuple[str, list[_Header]]], series: str | int | None, folder: Path
) -> tuple[str, list[_Header]]:
    listing = "; ".join(
        f"{i}) {uid} '{heads[0].description}' {heads[0].modality} {len(heads)} file"
        f"{'s' if len(heads) != 1 else ''}"
        for i, (uid, heads) in enumerate(groups[:_MAX_LISTED], start=1)
    )
    if len(groups) > _MAX_LISTED:
        listing += f"; ... ({len(groups) - _MAX_LISTED} more: `segviewer info` lists them all)"
    if series is None:
        if len(groups) == 1:
            return groups[0]
        raise SeveralSeries(
            f"{folder}: the folder holds {len(groups)} DICOM series: {listing}. "
            "Pick one with --series NUMBER or --series UID",
            folder,
            len(groups),
        )
    key = str(series).strip()
    for uid, heads in groups:
        if uid == key:
            return uid, heads
    if key.isdigit():
        n = int(key)
        if 1 <= n <= len(groups):
            return groups[n - 1]
    raise SegviewerError(
        f"{folder}: no series {key!r} here; the folder holds {len(groups)} series: {listing}. "
        "Give a number from 1 to "
        f"{len(groups)} or one of the UIDs"
    )


# --------------------------------------------------------------------------------------
# geometry

#: The words a note uses when the file has no position/orientation tags; load_dicom sets
#: ``metadata["orientation_known"]`` from them.
_NO_ORIENTATION = "orientation unknown"


def _arrange(
    frames: Sequence[_Frame], where: str
) -> tuple[list[list[int]], np.ndarray, list[str], list[str]]:
    """Order the 2-D images into volumes and build the affine.

    Returns
    -------
    order
        ``order[t][s]`` = index into ``frames`` of slice ``s`` of volume ``t``.
    affine
        ``(slice, row, column)`` -> RAS+ mm.
    notes, warnings
        Sentences for the metadata.
    """
    notes: list[str] = []
    warns: list[str] = []
    n = len(frames)
    f0 = frames[0]
    ps = f0.spacing
    if ps is None:
        ps = (1.0, 1.0)
        if f0.spacing_problem:
            warns.append(f"{f0.spacing_problem}: in-plane pixel size taken as 1 mm")
        else:
            notes.append("no PixelSpacing: in-plane pixel size taken as 1 mm")
    have_geometry = all(f.ipp is not None and f.iop is not None for f in frames)
    if not have_geometry:
        by_instance = sorted(range(n), key=lambda i: (frames[i].order_keys[-1:], i))
        thick = f0.thickness or 1.0
        affine = STACK_AFFINE @ np.diag([thick, ps[0], ps[1], 1.0])
        if n > 1:
            notes.append(
                "no ImagePositionPatient/ImageOrientationPatient: slices ordered by "
                "InstanceNumber (frames of one file: file order) and shown as a stack "
                f"({_NO_ORIENTATION})"
            )
        else:
            notes.append(f"no patient geometry in the file: shown as a stack ({_NO_ORIENTATION})")
        return [by_instance], affine, notes, warns

    iops = np.stack([f.iop for f in frames if f.iop is not None])
    if np.max(np.abs(iops - iops[0])) > 1e-3:
        n_orient = len({tuple(np.round(r, 3)) for r in iops})
        raise SegviewerError(
            f"{where}: the images have {n_orient} different orientations (e.g. a localizer "
            "mixed into the series); export one plane as its own series or pick another series"
        )
    row_norm, col_norm = np.linalg.norm(iops[0][:3]), np.linalg.norm(iops[0][3:])
    normal = np.cross(iops[0][:3], iops[0][3:])
    if min(row_norm, col_norm) < 1e-6 or np.linalg.norm(normal) < 1e-3 * row_norm * col_norm:
        raise SegviewerError(
            f"{where}: ImageOrientationPatient {[round(float(v), 6) for v in iops[0]]} does not "
            "describe two "
            "independent directions; the header is corrupt, re-export the series"
        )
    row_dir = iops[0][:3] / row_norm
    col_dir = iops[0][3:] / col_norm
    normal = np.cross(row_dir, col_dir)
    normal /= np.linalg.norm(normal)
    ipps = np.stack([f.ipp for f in frames if f.ipp is not None])
    dist = ipps @ normal
    by_dist = sorted(range(n), key=lambda i: (dist[i], i))
    # Cluster images at the same location: several volumes (time points, echoes).
    clusters: list[list[int]] = []
    for i in by_dist:
        if clusters and abs(dist[i] - dist[clusters[-1][0]]) < _SAME_POSITION_MM:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    sizes = {len(c) for c in clusters}
    if len(sizes) != 1:
        raise SegviewerError(
            f"{where}: slice locations hold different numbers of images "
            f"({min(sizes)} to {max(sizes)}): the series is incomplete or mixes acquisitions; "
            "re-export the series from the scanner/PACS"
        )
    k = sizes.pop()
    for c in clusters:
        c.sort(key=lambda i: (frames[i].order_keys, i))
    order = [[c[t] for c in clusters] for t in range(k)]
    if k > 1:
        notes.append(
            f"{k} images at each of {len(clusters)} slice positions: read as {k} volumes "
            "(time points/echoes), ordered by temporal position, echo, acquisition, instance"
        )

    first = ipps[order[0][0]]
    m = len(clusters)
    if m > 1:
        last = ipps[order[0][-1]]
        slice_vec = (last - first) / (m - 1)
        gaps = np.diff([dist[c[0]] for c in clusters])
        med = float(np.median(gaps))
        if float(np.max(np.abs(gaps - med))) > max(_SAME_POSITION_MM, _GAP_TOLERANCE * med):
            warns.append(
                f"slice spacing is not uniform: gaps from {gaps.min():.3g} to {gaps.max():.3g} mm "
                f"(median {med:.3g}); slices may be missing. The volume uses the average spacing "
                f"{float(np.linalg.norm(slice_vec)):.4g} mm, so mm distances along the slices "
                "are approximate"
            )
        across = slice_vec - normal * float(slice_vec @ normal)
        if float(np.linalg.norm(across)) > 1e-3 * float(np.linalg.norm(slice_vec)):
            notes.append("slices are sheared (gantry tilt): the affine keeps the shear")
    else:
        slice_vec = normal * (f0.thickness or 1.0)
        if f0.thickness is None:
            notes.append("single slice without a thickness: slice spacing taken as 1 mm")
    lps = np.eye(4)
    lps[:3, 0] = slice_vec
    lps[:3, 1] = col_dir * ps[0]  # moving down one row: along the column direction
    lps[:3, 2] = row_dir * ps[1]  # moving right one column: along the row direction
    lps[:3, 3] = first
    return order, _LPS_TO_RAS @ lps, notes, warns


# --------------------------------------------------------------------------------------
# pixels


def _decode(ds: Any, path: Path) -> np.ndarray:
    _check_native_length(ds, path)
    try:
        return np.asarray(ds.pixel_array)
    except MemoryError:
        raise
    except (AttributeError, KeyError) as exc:
        raise SegviewerError(
            f"{path}: the DICOM file has no pixel data ({exc}); it is not an image"
        ) from exc
    except (ValueError, RuntimeError, NotImplementedError, OSError, EOFError, TypeError) as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", str(ts))
        hint = (
            "the file may be truncated; compressed data also needs pylibjpeg, "
            "pylibjpeg-openjpeg, pylibjpeg-libjpeg and pylibjpeg-rle installed"
            if getattr(ts, "is_compressed", False)
            else "the file is truncated or corrupt, copy or export it again"
        )
        first_line = " ".join(str(exc).split(" - ")[0].split())[:200]
        raise SegviewerError(
            f"{path}: the pixel data could not be decoded (transfer syntax {ts_name}: "
            f"{first_line}); {hint}"
        ) from exc


def _check_native_length(ds: Any, path: Path) -> None:
    """Refuse uncompressed pixel data shorter than Rows x Columns x frames needs.

    pydicom only warns about it and pads the missing pixels, which would show a truncated
    copy as a complete image.
    """
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if getattr(ts, "is_compressed", False) or "PixelData" not in ds:
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        bits = int(ds.get("BitsAllocated", 16) or 16)
        have = len(ds.PixelData)
    except (AttributeError, TypeError, ValueError):
        return  # _decode reports what is missing
    need = (rows * cols * frames * spp * bits + 7) // 8
    if have < need:
        raise SegviewerError(
            f"{path}: the pixel data has {have} bytes but {rows} x {cols} pixels"
            f"{f' x {frames} frames' if frames > 1 else ''} need {need}; the file is truncated, "
            "copy or export it again"
        )


def _luminance(arr: np.ndarray, ds: Any, notes: list[str]) -> np.ndarray:
    """Colour (samples last) -> grey, ITU-R BT.601 weights, keeping an integer dtype.

    Also returns native byte order (big-endian files decode to big-endian arrays).
    """
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if spp == 1:
        return arr
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    grey = arr[..., :3].astype(np.float32) @ weights
    note = f"colour DICOM ({ds.get('PhotometricInterpretation', 'RGB')}) converted to luminance"
    if note not in notes:
        notes.append(note)
    if arr.dtype.kind in "ui":
        return np.rint(grey).astype(arr.dtype)
    return grey


def _read_dataset(path: Path, caught: list[str]) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with record_warnings(caught):
            return pydicom.dcmread(path, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as exc:
        raise SegviewerError(
            f"{path}: the DICOM file could not be read ({type(exc).__name__}: {exc}); it is "
            "truncated or corrupt, copy it again"
        ) from exc


def _rescale(
    raw: np.ndarray, slopes: np.ndarray, inters: np.ndarray, notes: list[str]
) -> np.ndarray:
    """Apply per-slice RescaleSlope/Intercept; integers stay integers when the result does."""
    if np.all(slopes == 1.0) and np.all(inters == 0.0):
        return raw
    integral = np.all(slopes == np.round(slopes)) and np.all(inters == np.round(inters))
    if integral and raw.dtype.kind in "ui":
        flat = raw.reshape(raw.shape[0], -1)
        a = flat.min(axis=1).astype(np.float64) * slopes + inters
        b = flat.max(axis=1).astype(np.float64) * slopes + inters
        lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
        dtype = _int_dtype_for(lo, hi)
        if dtype is not None:
            out = np.empty(raw.shape, dtype=dtype)
            for s in range(raw.shape[0]):
                np.multiply(raw[s], int(slopes[s]), out=out[s], dtype=dtype, casting="unsafe")
                out[s] += dtype.type(int(inters[s]))
            notes.append(_rescale_note(slopes, inters))
            return out
    out_f = np.empty(raw.shape, dtype=np.float32 if raw.dtype.itemsize <= 2 else np.float64)
    for s in range(raw.shape[0]):
        out_f[s] = raw[s] * slopes[s] + inters[s]
    notes.append(_rescale_note(slopes, inters))
    return out_f


def _rescale_chosen(
    raw: np.ndarray, frames: list[_Frame], chosen: list[int], notes: list[str]
) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`_rescale` the chosen frames (``raw`` = their pixels stacked in that order).

    Returns the rescaled data and the ``rescale_slope``/``rescale_intercept`` metadata (of the
    first chosen frame).
    """
    slopes = np.array([frames[i].slope for i in chosen], dtype=np.float64)
    inters = np.array([frames[i].inter for i in chosen], dtype=np.float64)
    data = _rescale(raw, slopes, inters, notes)
    return data, {"rescale_slope": float(slopes[0]), "rescale_intercept": float(inters[0])}


def _int_dtype_for(lo: float, hi: float) -> np.dtype[Any] | None:
    """Smallest of int16 / uint16 / int32 holding [lo, hi] (CT: -1024..3071 -> int16)."""
    for dt in (np.int16, np.uint16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return None


def _rescale_note(slopes: np.ndarray, inters: np.ndarray) -> str:
    if np.all(slopes == slopes[0]) and np.all(inters == inters[0]):
        return f"values rescaled: RescaleSlope {slopes[0]:g}, RescaleIntercept {inters[0]:g}"
    return "values rescaled with a different RescaleSlope/Intercept per slice"


def _safe_meta(ds: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for keyword, key in _SAFE_FIELDS.items():
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        if keyword == "ImageType":
            meta[key] = "\\".join(str(v) for v in value)
        elif isinstance(value, (int, float)):
            meta[key] = value if isinstance(value, int) else float(value)
        else:
            meta[key] = str(value)
    for keyword, key in (("WindowCenter", "level"), ("WindowWidth", "width")):
        value = ds.get(keyword)
        if value is not None and value != "":
            first = (
                value[0] if isinstance(value, Sequence) and not isinstance(value, str) else value
            )
            num = _float(first)
            if num is not None:
                meta.setdefault("window", {})[key] = num
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None:
        meta["transfer_syntax"] = getattr(ts, "name", str(ts))
    sop = ds.get("SOPClassUID")
    if sop is not None:
        meta["sop_class"] = getattr(sop, "name", str(sop))
    return meta


def _check_frame(frame: int, n: int, where: str) -> None:
    if frame >= n:
        raise SegviewerError(
            f"{where}: frame {frame} is out of range; the series has {n} volume"
            f"{'s' if n != 1 else ''} (frames 0 to {n - 1})"
        )


def _alloc_dtype(ds: Any) -> np.dtype[Any]:
    bits = int(ds.get("BitsAllocated", 16) or 16)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    size = max(1, (bits + 7) // 8)
    size = size if size in (1, 2, 4, 8) else 4
    return np.dtype(f"{'i' if signed else 'u'}{size}")


def _load_series(
    heads: Sequence[_Header], frame: int, where: str, notes: list[str], caught: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    shapes = {(h.rows, h.cols) for h in heads}
    if len(shapes) > 1:
        raise SegviewerError(
            f"{where}: the images have different sizes {sorted(shapes)}: the series mixes "
            "image types; export one acquisition as its own series"
        )
    rows, cols = heads[0].rows, heads[0].cols
    frames = [h.frame for h in heads]
    order, affine, geo_notes, warns = _arrange(frames, where)
    notes.extend(geo_notes)
    _check_frame(frame, len(order), where)
    chosen = order[frame]
    check_alloc((len(chosen), rows, cols), np.uint16, where)
    raw: np.ndarray | None = None
    first_ds: Any = None
    for s, i in enumerate(chosen):
        ds = _read_dataset(heads[i].path, caught)
        with record_warnings(caught):
            arr = _luminance(_decode(ds, heads[i].path), ds, notes)
        if arr.shape != (rows, cols):
            raise SegviewerError(
                f"{heads[i].path}: the pixel data has shape {arr.shape}, not the "
                f"({rows}, {cols}) its header claims; the file is corrupt, re-export the series"
            )
        if raw is None:
            first_ds = ds
            check_alloc((len(chosen), rows, cols), arr.dtype, where)
            raw = np.empty((len(chosen), rows, cols), dtype=arr.dtype)
        raw[s] = arr
    assert raw is not None and first_ds is not None  # chosen is never empty
    data, rescale_meta = _rescale_chosen(raw, frames, chosen, notes)
    meta = _safe_meta(first_ds)
    meta.update(
        n_frames=len(order),
        frame=frame,
        **rescale_meta,
        warnings=tuple(warns),
    )
    return data, affine, meta


def _fg(item: Any, shared: Any, seq: str, attr: str) -> Any:
    """Attribute from a functional group: the per-frame item first, then the shared one."""
    for group in (item, shared):
        if group is None:
            continue
        s = group.get(seq)
        if s is not None and len(s) and s[0].get(attr) is not None:
            return s[0].get(attr)
    return None


def _multiframe_frames(ds: Any, n: int, notes: list[str]) -> list[_Frame]:
    base = _frame_from(ds, 0)
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq is not None and len(shared_seq) else None
    per = ds.get("PerFrameFunctionalGroupsSequence")
    frames: list[_Frame] = []
    for k in range(n):
        item = per[k] if per is not None and k < len(per) else None
        ipp = _vector(_fg(item, shared, "PlanePositionSequence", "ImagePositionPatient"), 3)
        iop = _vector(_fg(item, shared, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
        ps = _vector(_fg(item, shared, "PixelMeasuresSequence", "PixelSpacing"), 2)
        thick = _float(
            _fg(item, shared, "PixelMeasuresSequence", "SpacingBetweenSlices")
        ) or _float(_fg(item, shared, "PixelMeasuresSequence", "SliceThickness"))
        slope = _float(_fg(item, shared, "PixelValueTransformationSequence", "RescaleSlope"))
        inter = _float(_fg(item, shared, "PixelValueTransformationSequence", "RescaleIntercept"))
        temporal = _float(_fg(item, None, "FrameContentSequence", "TemporalPositionIndex"))
        echo = _float(_fg(item, shared, "MREchoSequence", "EffectiveEchoTime"))
        frames.append(
            _Frame(
                index=k,
                ipp=ipp,
                iop=iop if iop is not None else base.iop,
                spacing=(float(ps[0]), float(ps[1])) if ps is not None else base.spacing,
                thickness=thick if thick and thick > 0 else base.thickness,
                slope=slope if slope is not None else base.slope,
                inter=inter if inter is not None else base.inter,
                order_keys=(temporal or 0.0, echo or 0.0, 0.0, float(k)),
            )
        )
    if any(f.ipp is None for f in frames) and base.ipp is not None and base.iop is not None:
        # Legacy multi-frame (e.g. NM): one position, frames stacked along the normal.
        normal = np.cross(base.iop[:3], base.iop[3:])
        step = base.thickness or 1.0
        for k, f in enumerate(frames):
            f.ipp = base.ipp + normal * step * k
            f.iop = base.iop
        notes.append(
            "frames have no positions: stacked along the slice normal from the file's "
            f"ImagePositionPatient, {step:g} mm apart"
        )
    return frames


def _check_frames_fit(hdr: Any, path: Path, n: int, rows: int, cols: int) -> None:
    """Refuse a header claiming more frames than the file can hold, before anything per frame.

    Uncompressed frames take rows x columns x samples x bytes each; a compressed (encapsulated)
    frame takes at least one 8-byte item header. Without this check a 10 KB file claiming
    20,000,000 frames would make segviewer build 20,000,000 frame records.
    """
    if n < 1 or rows < 1 or cols < 1:
        raise SegviewerError(
            f"{path}: the header claims {n} frames of {rows} x {cols} pixels; every number "
            "must be 1 or more, the file is corrupt"
        )
    size = path.stat().st_size
    ts = getattr(getattr(hdr, "file_meta", None), "TransferSyntaxUID", None)
    if getattr(ts, "is_compressed", False):
        per_frame = 8
    else:
        spp = int(hdr.get("SamplesPerPixel", 1) or 1)
        bits = int(hdr.get("BitsAllocated", 16) or 16)
        per_frame = max(1, rows * cols * max(1, spp) * bits // 8)
    if n * per_frame > size:
        raise SegviewerError(
            f"{path}: the header claims {n} frames of {rows} x {cols} pixels, more than the "
            f"{size} bytes of the file can hold; it is truncated or its header is corrupt"
        )


def _load_multiframe(
    path: Path, frame: int, notes: list[str], caught: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    import pydicom

    with record_warnings(caught):
        try:
            hdr = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except (OSError, EOFError, ValueError, TypeError, KeyError) as exc:
            raise SegviewerError(
                f"{path}: the DICOM header could not be read ({exc}); the file is corrupt"
            ) from exc
    try:
        n = int(hdr.get("NumberOfFrames") or 1)
        rows, cols = int(hdr.Rows), int(hdr.Columns)
    except (TypeError, ValueError, AttributeError) as exc:
        raise SegviewerError(
            f"{path}: NumberOfFrames / Rows / Columns are not numbers ({exc}); the file is corrupt"
        ) from exc
    _check_frames_fit(hdr, path, n, rows, cols)
    check_alloc((n, rows, cols), _alloc_dtype(hdr), str(path))
    frames = _multiframe_frames(hdr, n, notes)
    order, affine, geo_notes, warns = _arrange(frames, str(path))
    notes.extend(geo_notes)
    _check_frame(frame, len(order), str(path))
    ds = _read_dataset(path, caught)
    with record_warnings(caught):
        arr = _luminance(_decode(ds, path), ds, notes)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.shape != (n, rows, cols):
        raise SegviewerError(
            f"{path}: the pixel data has shape {arr.shape}, not the ({n}, {rows}, {cols}) the "
            "header claims; the file is corrupt"
        )
    chosen = order[frame]
    raw = arr[chosen] if chosen != list(range(n)) else arr
    data, rescale_meta = _rescale_chosen(raw, frames, chosen, notes)
    meta = _safe_meta(hdr)
    meta.update(
        n_frames=len(order),
        frame=frame,
        multiframe=True,
        n_frames_in_file=n,
        **rescale_meta,
        warnings=tuple(warns),
    )
    return data, affine, meta
