"""Raw readers shared by the image and prediction loaders: file -> N-D array + header facts.

:mod:`segviewer.io.images` (with :mod:`~segviewer.io.raster`) and
:mod:`segviewer.io.predictions` give the same file formats different meanings (frames,
geometry and rescaling for images; class axes and kinds for predictions). What they share is
the reading itself, kept here once:

* opening the file and reading its header without reading the voxels;
* refusing absurd header sizes (:func:`~segviewer.io.common.check_alloc`) and pickled data
  *before* anything is allocated or unpickled;
* memory-mapping where the format allows it (``.npy``; uncompressed NIfTI is mapped by the
  callers from the facts :func:`nifti_data_file` gives);
* turning every library error into a :class:`~segviewer.core.types.SegviewerError` that names
  the file and says what to do.

Arrays come back as the file stores them (axis order, dtype and byte order untouched);
callers decide what the axes mean and convert with :func:`native` where they need to.
"""

from __future__ import annotations

import gzip
import math
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import SegviewerError
from segviewer.io.common import check_alloc, check_claim, compound_suffix

__all__ = [
    "READ_ERRORS",
    "native",
    "NpyHeader",
    "npy_header",
    "read_npy_header",
    "open_npy",
    "NpzMember",
    "npz_member",
    "read_npz",
    "open_nifti",
    "nifti_scaling",
    "NiftiDataFile",
    "nifti_data_file",
    "read_gzip_voxels",
    "nrrd_dtype",
    "read_nrrd_header",
    "read_nrrd",
    "pil_dtype",
    "open_pil",
    "pil_array",
    "open_tiff",
    "tiff_series_array",
]

#: Exceptions the file libraries raise on corrupt or truncated input; every reader turns them
#: into :class:`SegviewerError`.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    zipfile.BadZipFile,
    gzip.BadGzipFile,
)


def native(arr: np.ndarray) -> np.ndarray:
    """``arr`` in native byte order: big-endian data is copied once, anything else returned as is.

    Downstream code (masks, overlays, Qt) assumes native order; a copy of a memory map is an
    in-memory array, so callers that report ``memory_mapped`` must check before calling.
    """
    if not arr.dtype.isnative:
        # np.asarray: np.memmap.astype returns an np.memmap that maps nothing, and callers
        # (describe_image) tell memory-mapped data by its type.
        return np.asarray(arr.astype(arr.dtype.newbyteorder("=")))
    return arr


# --------------------------------------------------------------------------------------
# NumPy .npy / .npz


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header declares.

    Attributes
    ----------
    shape
        Array shape as stored.
    fortran_order
        True if the data is stored column-major.
    dtype
        Element type (possibly non-native byte order; never an object dtype).
    data_offset
        Bytes from the start of the stream to the first data byte.
    """

    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype[Any]
    data_offset: int

    @property
    def nbytes(self) -> int:
        """Bytes of data the header claims (without the header itself)."""
        return math.prod(self.shape) * self.dtype.itemsize


def npy_header(fp: Any, what: str) -> NpyHeader:
    """Read a ``.npy`` header from a binary stream positioned at its start; no data is read.

    Parameters
    ----------
    fp
        Binary file object (a file or a zip member of an ``.npz``).
    what
        How messages name the array, e.g. ``"scan.npy"`` or ``"a.npz [logits]"``.

    Raises
    ------
    SegviewerError
        Not a ``.npy`` stream (e.g. a pickle), an unknown format version, or an object dtype
        (which only unpickling could load: refused because unpickling can run code).
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        offset = int(fp.tell())
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy parses the header text with tokenize and
        # ast: a damaged header raises ValueError, SyntaxError, tokenize.TokenError, ...
        if "max_header_size" in str(exc):  # numpy's advice (allow_pickle=True) is not ours
            raise SegviewerError(
                f"{what}: the .npy header is far larger than any array needs (over 10,000 "
                "bytes); the file is corrupt or hostile, save the array again with numpy.save"
            ) from exc
        raise SegviewerError(
            f"{what}: not a NumPy .npy array ({_first_line(exc)}); if it is a pickle, segviewer "
            "refuses it because unpickling can run code: re-save it with numpy.save"
        ) from exc
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise SegviewerError(
            f"{what}: the .npy header claims the shape {shape!r}, which is not a list of sizes "
            "0 or more; the file is corrupt, save it again with numpy.save"
        )
    if len(shape) > 32:
        raise SegviewerError(
            f"{what}: the .npy header claims {len(shape)} dimensions (NumPy allows 32); the "
            "file is corrupt"
        )
    if dtype.hasobject:
        raise SegviewerError(
            f"{what}: the array holds Python objects (dtype {dtype}), which NumPy can only "
            "load by unpickling; segviewer refuses pickled data because it can run code. "
            "Re-save a numeric array, e.g. numpy.save(path, np.asarray(a, dtype=np.float32))"
        )
    return NpyHeader(tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype), offset)


def _first_line(exc: BaseException) -> str:
    """A library's message made one short line (some span lines or run for paragraphs)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."


def read_npy_header(path: Path) -> NpyHeader:
    """:func:`npy_header` of a ``.npy`` file (opens and closes it)."""
    try:
        with open(path, "rb") as fp:
            return npy_header(fp, str(path))
    except OSError as exc:
        raise SegviewerError(f"{path}: the file cannot be opened ({exc})") from exc


def open_npy(path: Path) -> tuple[np.ndarray, NpyHeader]:
    """Memory-map a ``.npy`` file read-only (``mmap_mode="r"``, ``allow_pickle=False``).

    Parameters
    ----------
    path
        The ``.npy`` file.

    Returns
    -------
    (array, header)
        ``array`` is an ``np.memmap`` of the stored shape, dtype and byte order (nothing is
        read until it is indexed; a zero-size array is an ordinary empty array, since an
        empty file region cannot be mapped); ``header`` as :func:`read_npy_header`.

    Raises
    ------
    SegviewerError
        Not a ``.npy`` file, pickled data, or a file shorter than its header claims.
    """
    header = read_npy_header(path)
    need = header.data_offset + header.nbytes
    size = path.stat().st_size
    if size < need:
        raise SegviewerError(
            f"{path}: the .npy header claims {header.shape} of {header.dtype.name} ({need} "
            f"bytes) but the file has {size} bytes; it is truncated, save it again"
        )
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except READ_ERRORS as exc:
        raise SegviewerError(
            f"{path}: the .npy array could not be read ({type(exc).__name__}: {exc}); it may "
            "be corrupt, save it again with numpy.save"
        ) from exc
    return arr, header


@dataclass(frozen=True)
class NpzMember:
    """The array of an ``.npz`` archive a reader chose, and what its header declares.

    Attributes
    ----------
    names
        All array names in the archive, in archive order.
    key
        The chosen array's name.
    header
        Its :class:`NpyHeader` (``data_offset`` is within the zip member).
    """

    names: tuple[str, ...]
    key: str
    header: NpyHeader


def npz_member(path: Path, pick: Callable[[Path, tuple[str, ...]], str]) -> NpzMember:
    """Open an ``.npz`` archive, choose one array and read its header only.

    Parameters
    ----------
    path
        The ``.npz`` file.
    pick
        ``pick(path, names) -> name``: which array to use when the archive holds several
        (called only then; it raises :class:`SegviewerError` if none fits).

    Raises
    ------
    SegviewerError
        Not a zip archive, no arrays in it, or a bad/pickled member header.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SegviewerError(
            f"{path}: not a valid .npz (zip) archive ({exc}); it is truncated or corrupt, save "
            "it again with numpy.savez"
        ) from exc
    with zf:
        names = tuple(n[:-4] for n in zf.namelist() if n.endswith(".npy"))
        if not names:
            raise SegviewerError(
                f"{path}: the .npz archive holds no arrays; save the array with numpy.savez"
            )
        key = names[0] if len(names) == 1 else pick(path, names)
        what = f"{path} [{key}]"
        try:
            info = zf.getinfo(key + ".npy")
            with zf.open(info) as fp:
                header = npy_header(fp, what)
        except READ_ERRORS as exc:
            raise SegviewerError(
                f"{what}: the archive member could not be read ({type(exc).__name__}: {exc}); "
                "it is truncated or corrupt, save it again with numpy.savez"
            ) from exc
    # The zip directory says how large the member is, stored and unpacked: a header claiming
    # more is a truncated or hostile archive (refused before anything is inflated).
    need = header.data_offset + header.nbytes
    check_claim(need, int(info.file_size), what, compressed=False, shape=header.shape)
    if info.compress_type != zipfile.ZIP_STORED:
        check_claim(
            header.nbytes, int(info.compress_size), what, compressed=True, shape=header.shape
        )
    return NpzMember(names, key, header)


def read_npz(
    path: Path, pick: Callable[[Path, tuple[str, ...]], str]
) -> tuple[np.ndarray, NpzMember]:
    """Read one array of an ``.npz`` into memory (zip members cannot be memory-mapped).

    The size its header claims is checked with ``check_alloc`` before decompressing, and
    ``allow_pickle=False``. ``pick`` as for :func:`npz_member`.

    Returns
    -------
    (array, member)
        The array as stored (shape, dtype and byte order unchanged) and what was chosen.
    """
    member = npz_member(path, pick)
    what = f"{path} [{member.key}]"
    check_alloc(member.header.shape, member.header.dtype, what)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arr = np.asarray(npz[member.key])
    except READ_ERRORS as exc:
        raise SegviewerError(
            f"{what}: the array could not be read ({type(exc).__name__}: {exc}); the archive "
            "is truncated or corrupt, save it again with numpy.savez"
        ) from exc
    return arr, member


# --------------------------------------------------------------------------------------
# NIfTI


def open_nifti(path: Path, *, mmap: bool | str = True) -> Any:
    """Open a NIfTI-1/2 file or ``.hdr``/``.img`` pair with nibabel (header only, lazy data).

    Parameters
    ----------
    path
        ``.nii``, ``.nii.gz`` or a pair's ``.hdr``/``.img``.
    mmap
        Passed to ``nibabel.load``: ``"r"`` makes ``dataobj`` reads of uncompressed unscaled
        files read-only memory maps.

    Returns
    -------
    nibabel.Nifti1Pair or Nifti2Pair (``Nifti1Image`` is one)

    Raises
    ------
    SegviewerError
        Unreadable header, or an Analyze 7.5 / other non-NIfTI image (its orientation is
        ambiguous).
    """
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    errors: tuple[type[BaseException], ...] = (ImageFileError, HeaderDataError, *READ_ERRORS)
    try:
        img = nib.load(str(path), mmap=mmap)
    except errors as exc:
        raise SegviewerError(
            f"{path}: not a valid NIfTI file ({exc}); check that it is really NIfTI and was "
            "copied completely (it may be truncated or corrupt)"
        ) from exc
    if not isinstance(img, (nib.Nifti1Pair, nib.Nifti2Pair)):
        kind = (
            "Analyze 7.5"
            if isinstance(img, nib.AnalyzeImage)
            else type(img).__name__.replace("Image", "")
        )
        raise SegviewerError(
            f"{path}: this is {kind} format, not NIfTI; its orientation is ambiguous, convert "
            "it to NIfTI (e.g. with fslchfiletype or nibabel) and open that"
        )
    return img


def nifti_scaling(img: Any) -> tuple[float, float]:
    """``(scl_slope, scl_inter)`` nibabel applies to ``img.dataobj``; ``(1.0, 0.0)`` = none.

    A missing, zero or non-finite slope means "no scaling" (NIfTI standard).
    """
    slope = getattr(img.dataobj, "slope", 1.0)
    inter = getattr(img.dataobj, "inter", 0.0)
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope, inter


@dataclass(frozen=True)
class NiftiDataFile:
    """Where the voxels of an opened NIfTI live.

    Attributes
    ----------
    path
        The file holding the voxels (the ``.img`` of a pair, else the ``.nii`` itself).
    compressed
        Gzipped (cannot be memory-mapped).
    offset
        Byte offset of the first voxel in ``path`` (``vox_offset``).
    """

    path: Path
    compressed: bool
    offset: int


def nifti_data_file(img: Any, path: Path) -> NiftiDataFile:
    """Locate the voxel data of ``img`` (from :func:`open_nifti`) and check it is all there.

    Raises
    ------
    SegviewerError
        The ``.img`` of a pair is missing, or an uncompressed file is shorter than the header
        claims (truncated copy or corrupt header) -- caught here, before mapping.
    """
    data_path = Path(str(img.file_map["image"].filename or path))
    compressed = compound_suffix(data_path).endswith(".gz")
    offset = int(getattr(img.dataobj, "offset", 0))
    if not data_path.is_file():
        raise SegviewerError(
            f"{path}: the voxel file {data_path.name} of this NIfTI pair is missing; keep the "
            ".hdr and .img files together"
        )
    shape = tuple(int(d) for d in img.shape)
    dtype = np.dtype(img.get_data_dtype())
    need = offset + math.prod(shape) * dtype.itemsize
    size = data_path.stat().st_size
    if any(d == 0 for d in shape):
        raise SegviewerError(
            f"{path}: the header claims the shape {shape}, with an axis of length 0: there are "
            "no voxels to show; the file is corrupt or empty"
        )
    if offset < 0:
        raise SegviewerError(f"{path}: the header's vox_offset {offset} is negative; it is corrupt")
    if not compressed and size < need:
        raise SegviewerError(
            f"{path}: the header claims {shape} voxels of {dtype.name} ({need} bytes with the "
            f"header) but {data_path.name} has only {size} bytes; it is truncated or the header "
            "is corrupt, re-export it"
        )
    if compressed:
        check_claim(need, size, str(path), compressed=True, shape=shape)
        isize = _gzip_isize(data_path)
        if isize is not None and isize < need and need < 2**32:
            # single-member gzip: the trailer holds the unpacked size (mod 2**32)
            raise SegviewerError(
                f"{path}: the header claims {shape} voxels of {dtype.name} ({need} bytes with "
                f"the header) but the gzip stream unpacks to {isize} bytes; it is truncated "
                "or the header is corrupt, re-export it"
            )
    return NiftiDataFile(data_path, compressed, offset)


def _gzip_isize(path: Path) -> int | None:
    """The unpacked size in a gzip file's trailer (mod 2**32), None if unreadable."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                return None
            f.seek(-4, 2)
            return int.from_bytes(f.read(4), "little")
    except OSError:
        return None


def read_gzip_voxels(
    data: NiftiDataFile,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    skip: int = 0,
    *,
    to_end: bool = True,
) -> np.ndarray:
    """Stream ``shape`` voxels (Fortran order) out of a gzipped file into one new array.

    Decompresses straight into the array (no second copy of the data in memory, unlike
    reading the whole stream first), starting ``skip`` bytes after the voxel offset (a
    later frame of a 4-D file). The caller has size-checked ``shape``. With ``to_end`` (the
    last or only frame) the rest of the stream is read too, so a file cut inside its gzip
    trailer is refused instead of shown.

    Raises
    ------
    SegviewerError
        The stream ends before the array is full, or is corrupt.
    """
    out = np.empty(shape, dtype=dtype, order="F")
    view: Any = out.T  # numpy arrays are buffers; numpy's stubs do not say so to mypy
    buf = memoryview(view).cast("B") if out.size else memoryview(b"")
    try:
        with gzip.open(data.path, "rb") as gz:
            gz.seek(data.offset + skip)
            got = 0
            while got < len(buf):
                n = gz.readinto(buf[got : got + (16 << 20)])
                if not n:
                    break
                got += n
            if got == len(buf) and to_end:
                # on to the end of the stream: its CRC and length trailer must be there too
                while gz.read(1 << 20):
                    pass
    except READ_ERRORS as exc:
        raise SegviewerError(
            f"{data.path}: the compressed voxels could not be read ({type(exc).__name__}: {exc});"
            " the file is truncated or corrupt, re-export it"
        ) from exc
    if got < len(buf):
        raise SegviewerError(
            f"{data.path}: the compressed data ends after {got} of {len(buf)} voxel bytes; the "
            "file is truncated, re-export it"
        )
    return out


# --------------------------------------------------------------------------------------
# NRRD

_NRRD_TYPES: dict[str, str] = {
    **dict.fromkeys(["signed char", "int8", "int8_t"], "i1"),
    **dict.fromkeys(["uchar", "unsigned char", "uint8", "uint8_t"], "u1"),
    **dict.fromkeys(
        ["short", "short int", "signed short", "signed short int", "int16", "int16_t"], "i2"
    ),
    **dict.fromkeys(["ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"], "u2"),
    **dict.fromkeys(["int", "signed int", "int32", "int32_t"], "i4"),
    **dict.fromkeys(["uint", "unsigned int", "uint32", "uint32_t"], "u4"),
    **dict.fromkeys(
        [
            "longlong",
            "long long",
            "long long int",
            "signed long long",
            "signed long long int",
            "int64",
            "int64_t",
        ],
        "i8",
    ),
    **dict.fromkeys(
        ["ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"], "u8"
    ),
    "float": "f4",
    "double": "f8",
}


def nrrd_dtype(header: Mapping[str, Any], path: Path) -> np.dtype[Any]:
    """Element type a NRRD header's ``type`` field declares (any of the NRRD spellings).

    Raises
    ------
    SegviewerError
        Missing type, or a non-number type (``block``).
    """
    name = str(header.get("type", "")).strip().lower()
    code = _NRRD_TYPES.get(name)
    if code is None:
        raise SegviewerError(
            f"{path}: NRRD element type {name or '(missing)'!r} is not a number type segviewer "
            "can show; save the data as integers or floats"
        )
    return np.dtype(code)


def read_nrrd_header(path: Path) -> tuple[dict[str, Any], tuple[int, ...], np.dtype[Any]]:
    """Read a NRRD/NHDR header only.

    Returns
    -------
    (header, sizes, dtype)
        pynrrd's header dict, the ``sizes`` field (NRRD axis order = pynrrd's
        ``index_order="F"``) and :func:`nrrd_dtype`.

    Raises
    ------
    SegviewerError
        Not NRRD, truncated header, or the required ``sizes``/``type`` fields missing.
    """
    import nrrd
    from nrrd.errors import NRRDError

    try:
        header = dict(nrrd.read_header(str(path)))
    except (NRRDError, *READ_ERRORS) as exc:
        raise SegviewerError(
            f"{path}: not a valid NRRD header ({exc}); check that it is NRRD and not truncated"
        ) from exc
    if "sizes" not in header or "type" not in header:
        raise SegviewerError(
            f"{path}: the NRRD header lacks the required 'sizes'/'type' fields; the file is "
            "truncated or not NRRD, re-export it"
        )
    try:
        sizes = tuple(int(s) for s in header["sizes"])
    except (TypeError, ValueError) as exc:
        raise SegviewerError(f"{path}: the NRRD 'sizes' field is not a list of numbers") from exc
    if any(s <= 0 for s in sizes):
        raise SegviewerError(
            f"{path}: the NRRD header claims the sizes {sizes}; every size must be 1 or more, "
            "the file is corrupt"
        )
    dtype = nrrd_dtype(header, path)
    _check_nrrd_data(path, header, sizes, dtype)
    return header, sizes, dtype


#: Set to 1 to let a detached NRRD header (.nhdr) read data files outside its own folder.
NRRD_DATA_ANYWHERE_ENV = "SEGVIEWER_NRRD_DATA_ANYWHERE"


def _nrrd_data_path(path: Path, datafile: str) -> Path:
    """The data file a ``.nhdr`` names, refused unless it lies inside the header's folder.

    A header is small and easy to send; it must not make segviewer read ``/etc/passwd`` or
    another user's scans. Relative names are taken from the header's folder (NRRD rule).
    """
    import os

    tokens = datafile.split()
    if tokens and tokens[0] == "LIST":
        raise SegviewerError(
            f"{path}: 'data file: LIST' (data split over several files) is not supported; "
            "save the volume as one .nrrd"
        )
    name = tokens[0] if len(tokens) >= 4 and "%" in tokens[0] else datafile.strip()
    target = Path(name) if Path(name).is_absolute() else path.parent / name
    folder = Path(os.path.realpath(path.parent))
    real = Path(os.path.realpath(target))
    if folder not in real.parents and os.environ.get(NRRD_DATA_ANYWHERE_ENV) != "1":
        raise SegviewerError(
            f"{path}: the header's data file {name!r} lies outside the header's folder "
            f"{path.parent}; segviewer reads data files only next to their header (move them "
            f"together, or set {NRRD_DATA_ANYWHERE_ENV}=1 if you trust this header)"
        )
    if "%" not in name and not real.is_file():
        raise SegviewerError(
            f"{path}: the header's data file {name!r} is missing or not a regular file; keep "
            "the .nhdr and its data file together"
        )
    return real


def _check_nrrd_data(
    path: Path, header: Mapping[str, Any], sizes: tuple[int, ...], dtype: np.dtype[Any]
) -> None:
    """Refuse a header that claims more data than its file can hold (before reading it)."""
    datafile = header.get("data file", header.get("datafile"))
    claimed = math.prod(sizes) * dtype.itemsize
    if datafile:
        data_path = _nrrd_data_path(path, str(datafile))
        if "%" in str(datafile).split()[0]:
            return  # a numbered series of files: pynrrd reads them, sizes checked by check_alloc
        stored = data_path.stat().st_size
    else:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
        end = head.find(b"\n\n")
        if end < 0:
            end = head.find(b"\n\r\n")
        if end < 0:
            raise SegviewerError(
                f"{path}: the NRRD header does not end with a blank line before the data; the "
                "file is truncated or the header too long"
            )
        stored = path.stat().st_size - (end + 2)
    encoding = str(header.get("encoding", "raw")).strip().lower()
    what = str(path)
    if encoding in ("raw",):
        check_claim(claimed, stored, what, compressed=False, shape=sizes)
    elif encoding in ("gzip", "gz"):
        check_claim(claimed, stored, what, compressed=True, shape=sizes)
    elif encoding in ("ascii", "text", "txt"):
        # every value takes at least a digit and a separator
        check_claim(math.prod(sizes), max(0, stored) // 2 + 1, what, compressed=False, shape=sizes)


def read_nrrd(
    path: Path, sizes: tuple[int, ...], dtype: np.dtype[Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read NRRD data (after :func:`read_nrrd_header`): size checked first, then decoded.

    Parameters
    ----------
    path
        The ``.nrrd``/``.nhdr`` (a detached data file is found by pynrrd).
    sizes, dtype
        From :func:`read_nrrd_header`; ``check_alloc`` refuses absurd sizes before reading.

    Returns
    -------
    (data, header)
        ``data`` in NRRD axis order (``index_order="F"``: axis 0 = fastest), as stored.
    """
    import nrrd
    from nrrd.errors import NRRDError

    check_alloc(sizes, dtype, str(path))
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except (NRRDError, *READ_ERRORS) as exc:
        raise SegviewerError(
            f"{path}: the NRRD data could not be read ({type(exc).__name__}: {exc}); the "
            "file (or its detached data file) is truncated or corrupt, re-export it"
        ) from exc
    return np.asarray(data), dict(header)


# --------------------------------------------------------------------------------------
# PNG / JPEG (Pillow)

# Pillow modes whose samples are not 8-bit.
_PIL_WIDE = {"I": np.int32, "F": np.float32, "I;16": np.uint16, "I;16B": np.uint16}


def pil_dtype(mode: str) -> np.dtype[Any]:
    """Sample type of a Pillow mode as :func:`pil_array` returns it (uint8 for 8-bit modes)."""
    if mode.startswith("I;16"):
        return np.dtype(np.uint16)
    return np.dtype(_PIL_WIDE.get(mode, np.uint8))


@contextmanager
def open_pil(path: Path) -> Iterator[Any]:
    """Open a PNG/JPEG with Pillow after checking its claimed size; translate Pillow errors.

    Yields the open ``PIL.Image.Image`` (closed on exit). Errors raised while decoding inside
    the ``with`` block (truncated data) are translated as well. Our ``check_alloc`` replaces
    Pillow's decompression-bomb warning; a bomb Pillow refuses outright becomes an error.

    Raises
    ------
    SegviewerError
        Not an image, truncated/corrupt data, or an absurd size.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                check_alloc((height, width, len(im.getbands())), pil_dtype(im.mode), str(path))
                yield im
    except SegviewerError:
        raise
    except UnidentifiedImageError as exc:
        raise SegviewerError(
            f"{path}: not a readable image ({exc}); check that the file is really "
            f"{path.suffix.lstrip('.').upper()} and not truncated"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise SegviewerError(f"{path}: the image is too large to load safely ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error) as exc:
        raise SegviewerError(
            f"{path}: the image could not be decoded ({exc}); it is truncated or corrupt, "
            "export it again"
        ) from exc


def pil_array(im: Any) -> np.ndarray:
    """Decode an image from :func:`open_pil` (inside its ``with``) to a native numpy array.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` or ``(rows, cols, bands)``, dtype :func:`pil_dtype` of the mode
        (mode ``"1"`` becomes uint8 0/1; palette images give their indices).
    """
    im.load()
    arr = np.asarray(im)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    return native(arr)


# --------------------------------------------------------------------------------------
# TIFF (tifffile)


@contextmanager
def open_tiff(path: Path) -> Iterator[Any]:
    """Open a TIFF with tifffile; translate its errors (also those raised inside the block).

    Yields the open ``tifffile.TiffFile`` (closed on exit), which has at least one series.

    Raises
    ------
    SegviewerError
        Not a TIFF, no image data, or truncated/corrupt data.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise SegviewerError(f"{path}: the TIFF holds no image data")
            yield tif
    except (SegviewerError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile parses damaged files with struct and
        # arithmetic: struct.error, ZeroDivisionError, ... as well as its own TiffFileError
        raise SegviewerError(
            f"{path}: the TIFF could not be read ({type(exc).__name__}: {exc}); it is truncated "
            "or corrupt, export it again"
        ) from exc


def tiff_series_array(tif: Any, path: Path) -> np.ndarray:
    """The first series of an open TIFF as stored, after ``check_alloc`` of its claimed size.

    Returns
    -------
    numpy.ndarray
        Shape ``series.shape`` (e.g. ``(pages, rows, cols)`` or ``(rows, cols, 3)``), dtype as
        stored (byte order too).
    """
    series = tif.series[0]
    check_alloc(tuple(int(d) for d in series.shape), np.dtype(series.dtype), str(path))
    return np.asarray(series.asarray())
