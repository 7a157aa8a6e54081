"""Write the hostile-input corpus: every case is made at test time from real seed files.

Seeds: pydicom's ``MR_small.dcm`` (``pydicom.data.get_testdata_file``), nibabel's
``tests/data/anatomical.nii`` and small volumes generated here. Bombs are tiny compressed
files (a few KB) whose headers claim gigabytes, or header-only files.

``python tests/hostile/generate.py DIR`` writes the corpus to ``DIR`` and prints one line per
case; :func:`build` is what ``tests/hostile/test_hostile.py`` calls.

Each :class:`Case` has a *role*: how the file is handed to segviewer.

* ``image``: ``info FILE``, ``export FILE --prediction GOOD``, ``compare FILE ...``, and the
  window's image loader.
* ``prediction``: ``info FILE --image GOOD``, ``export GOOD --prediction FILE``, the window's
  prediction loader.
* ``classes``: ``info FILE``, ``export GOOD --prediction GOOD --classes FILE``, the window's
  class-table loader.
* ``reference``: ``compare GOOD --prediction GOOD --reference FILE`` and the window's
  reference loader.

``expect`` is ``"error"`` (exit 2, one ``segviewer: error:`` line) or ``"ok"`` (the input is
odd but valid: exit 0, what is odd reported as a warning).
"""

from __future__ import annotations

import gzip
import io
import json
import struct
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Shape of the generated good image (image axes 0, 1, 2) and its number of classes.
SHAPE = (12, 10, 6)
N_CLASSES = 3
GIB = 1024**3


@dataclass(frozen=True)
class Case:
    """One hostile input."""

    name: str
    role: str  # image | prediction | classes | reference
    path: Path
    expect: str = "error"  # error | ok
    why: str = ""
    extra: tuple[str, ...] = field(default=())
    #: For an image: a prediction of the shape the seed file has (None: the good one).
    prediction: Path | None = None


@dataclass(frozen=True)
class Good:
    """The valid inputs the hostile file is combined with."""

    image: Path
    prediction: Path
    classes: Path
    reference: Path
    #: logits on the grids of the seed files (nibabel's anatomical.nii, pydicom's MR_small)
    anatomical_logits: Path
    mr_small_logits: Path


# --------------------------------------------------------------------------------------
# seeds


def _anatomical() -> Path:
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"


def _mr_small() -> Path:
    from pydicom.data import get_testdata_file

    return Path(str(get_testdata_file("MR_small.dcm")))


def _good_volume() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random(SHAPE) * 1000).astype(np.int16)


def _good_logits() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.standard_normal((*SHAPE, N_CLASSES)).astype(np.float32)


def write_good(root: Path) -> Good:
    """The valid image, prediction (NDHWC-like ``(a0, a1, a2, C)`` logits), table, reference."""
    import nibabel as nib

    root.mkdir(parents=True, exist_ok=True)
    aff = np.diag([2.0, 2.0, 3.0, 1.0])
    image = root / "good_image.nii.gz"
    nib.save(nib.Nifti1Image(_good_volume(), aff), str(image))
    prediction = root / "good_logits.npy"
    np.save(prediction, _good_logits())
    classes = root / "good_classes.json"
    classes.write_text(
        json.dumps(
            {
                "classes": [
                    {"index": 0, "name": "background", "color": "#000000"},
                    {"index": 1, "name": "grey", "color": "#1f77b4"},
                    {"index": 2, "name": "white", "color": "#ff7f0e"},
                ]
            }
        )
    )
    reference = root / "good_reference.nii.gz"
    ref = np.argmax(_good_logits(), axis=-1).astype(np.uint8)
    nib.save(nib.Nifti1Image(ref, aff), str(reference))
    rng = np.random.default_rng(2)
    anatomical_logits = root / "anatomical_logits.npy"
    np.save(anatomical_logits, rng.standard_normal((33, 41, 25, 3)).astype(np.float32))
    mr_small_logits = root / "mr_small_logits.npy"
    np.save(mr_small_logits, rng.standard_normal((1, 64, 64, 3)).astype(np.float32))
    return Good(image, prediction, classes, reference, anatomical_logits, mr_small_logits)


# --------------------------------------------------------------------------------------
# helpers


def _truncations(data: bytes) -> list[int]:
    n = len(data)
    cuts = {1, 4, 16, 100, 200, 347, 352, 540, n // 4, n // 2, n - 100, n - 1}
    return sorted(c for c in cuts if 0 < c < n)


def _flips(data: bytes, seed: int, count: int, span: int) -> list[bytes]:
    """``count`` copies of ``data`` with 8 random bytes in the first ``span`` bytes replaced."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        b = bytearray(data)
        for pos in rng.integers(0, min(span, len(b)), size=8):
            b[int(pos)] = int(rng.integers(0, 256))
        out.append(bytes(b))
    return out


def _nifti1_header(
    dims: tuple[int, ...],
    *,
    datatype: int = 4,
    bitpix: int = 16,
    pixdim: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0),
    vox_offset: float = 352.0,
    sform: tuple[tuple[float, ...], ...] | None = None,
    scl: tuple[float, float] = (0.0, 0.0),
    magic: bytes = b"n+1\0",
) -> bytes:
    """A raw 348-byte NIfTI-1 header plus 4 extension bytes (dims taken as given: may lie)."""
    h = bytearray(352)
    struct.pack_into("<i", h, 0, 348)
    dim = [len(dims), *dims] + [1] * (7 - len(dims))
    struct.pack_into("<8h", h, 40, *[int(max(-32768, min(32767, d))) for d in dim])
    struct.pack_into("<h", h, 70, datatype)
    struct.pack_into("<h", h, 72, bitpix)
    pd = [1.0, *pixdim] + [1.0] * (7 - len(pixdim))
    struct.pack_into("<8f", h, 76, *pd[:8])
    struct.pack_into("<f", h, 108, vox_offset)
    struct.pack_into("<2f", h, 112, *scl)
    if sform is not None:
        struct.pack_into("<h", h, 254, 1)  # sform_code
        for i, row in enumerate(sform):
            struct.pack_into("<4f", h, 280 + 16 * i, *row)
    struct.pack_into("<4s", h, 344, magic)
    return bytes(h)


def _nifti2_header(dims: tuple[int, ...], *, datatype: int = 2, bitpix: int = 8) -> bytes:
    """A raw 540-byte NIfTI-2 header + 4 extension bytes; dims are int64 (may claim exabytes)."""
    h = bytearray(544)
    struct.pack_into("<i", h, 0, 540)
    struct.pack_into("<8s", h, 4, b"n+2\0\r\n\x1a\n")
    struct.pack_into("<h", h, 12, datatype)
    struct.pack_into("<h", h, 14, bitpix)
    dim = [len(dims), *dims] + [1] * (7 - len(dims))
    struct.pack_into("<8q", h, 16, *dim)
    struct.pack_into("<8d", h, 104, *([1.0] * 8))
    struct.pack_into("<q", h, 168, 544)  # vox_offset
    struct.pack_into("<d", h, 176, 1.0)  # scl_slope
    return bytes(h)


def _gzip_stream(header: bytes, zeros: int) -> bytes:
    """gzip of ``header`` followed by ``zeros`` zero bytes, compressed in a streaming way."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [comp.compress(header)]
    chunk = bytes(1 << 20)
    left = zeros
    while left > 0:
        n = min(left, len(chunk))
        parts.append(comp.compress(chunk[:n]))
        left -= n
    parts.append(comp.flush())
    return b"".join(parts)


def _npy_bytes(header_dict: str, payload: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A ``.npy`` file with a hand-written header dict (may lie about shape or dtype)."""
    hdr = header_dict.encode("latin1")
    if version == (1, 0):
        pad = 64 - (10 + len(hdr) + 1) % 64
        body = hdr + b" " * pad + b"\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body + payload
    pad = 64 - (12 + len(hdr) + 1) % 64
    body = hdr + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(body)) + body + payload


def _nrrd(header_lines: list[str], payload: bytes = b"", detached: bool = False) -> bytes:
    text = "NRRD0004\n" + "".join(line + "\n" for line in header_lines)
    return (text + ("" if detached else "\n")).encode("latin1") + payload


def _tiff_claiming(width: int, height: int, pages: int = 1) -> bytes:
    """A minimal little-endian TIFF whose IFDs claim ``width`` x ``height`` 8-bit pages."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for p in range(pages):
        entries = [
            (256, 4, 1, width),
            (257, 4, 1, height),
            (258, 3, 1, 8),
            (259, 3, 1, 1),
            (262, 3, 1, 1),
            (273, 4, 1, 8),  # strip offset: points into the header
            (277, 3, 1, 1),
            (278, 4, 1, height),
            (279, 4, 1, width * height & 0xFFFFFFFF),
        ]
        ifd_at = len(out)
        nxt = ifd_at + 2 + 12 * len(entries) + 4
        out += struct.pack("<H", len(entries))
        for tag, typ, count, value in entries:
            if typ == 3:
                out += struct.pack("<HHIHH", tag, typ, count, value, 0)
            else:
                out += struct.pack("<HHII", tag, typ, count, value)
        out += struct.pack("<I", nxt if p < pages - 1 else 0)
    return bytes(out)


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(bytes(width + 1) * min(height, 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------
# case families


class _Writer:
    def __init__(self, root: Path, good: Good) -> None:
        self.root = root
        self.good = good
        self.cases: list[Case] = []
        self.prediction: Path | None = None  # matching the seed of the current family

    def add(
        self,
        name: str,
        role: str,
        data: bytes | Callable[[Path], None],
        *,
        expect: str = "error",
        why: str = "",
        extra: tuple[str, ...] = (),
        roles: tuple[str, ...] = (),
    ) -> Path:
        folder = self.root / role
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        if callable(data):
            data(path)
        else:
            path.write_bytes(data)
        for r in (role, *roles):
            pred = self.prediction if r == "image" else None
            self.cases.append(Case(f"{r}/{name}", r, path, expect, why, extra, pred))
        return path


def _dicom_cases(w: _Writer) -> None:
    import pydicom

    seed = _mr_small()
    w.prediction = w.good.mr_small_logits
    raw = seed.read_bytes()
    for cut in _truncations(raw):
        # MR_small.dcm ends with 162 bytes of trailing padding (FFFC,FFFC): cutting into it
        # leaves a complete image
        tail = cut > len(raw) - 160
        w.add(
            f"mr_small_cut{cut}.dcm",
            "image",
            raw[:cut],
            why="truncated DICOM",
            expect="any" if tail else "error",
        )
    for i, b in enumerate(_flips(raw[:200] + raw[200:], 11, 4, len(raw) - 8192)):
        # header bytes flipped: the parser may still find an image; anything but a traceback
        w.add(f"mr_small_flip{i}.dcm", "image", b, expect="any", why="corrupt DICOM header")

    def tampered(name: str, why: str, expect: str = "error", **changes: object) -> None:
        ds = pydicom.dcmread(seed)
        for key, value in changes.items():
            if value is None:
                if key in ds:
                    del ds[key]
            else:
                setattr(ds, key, value)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=False)
        w.add(name, "image", buf.getvalue(), expect=expect, why=why)

    tampered(
        "frames_20M.dcm", "NumberOfFrames 20,000,000 in a small file", NumberOfFrames=20_000_000
    )
    tampered(
        "frames_20M_16x16.dcm",
        "NumberOfFrames 20,000,000 of 16x16 frames (passes a byte cap)",
        NumberOfFrames=20_000_000,
        Rows=16,
        Columns=16,
    )
    tampered("frames_2.dcm", "two frames claimed, one stored", NumberOfFrames=2)
    tampered("frames_neg.dcm", "NumberOfFrames -5", NumberOfFrames=-5)
    tampered("rows_0.dcm", "Rows 0", Rows=0)
    tampered("rows_huge.dcm", "Rows 65535", Rows=65535, Columns=65535)
    tampered("bits_3.dcm", "BitsAllocated 3", BitsAllocated=3)
    tampered("bits_0.dcm", "BitsAllocated 0", BitsAllocated=0)
    tampered("samples_7.dcm", "SamplesPerPixel 7", SamplesPerPixel=7)
    tampered("no_pixels.dcm", "no PixelData", PixelData=None)
    tampered("ps_zero.dcm", "PixelSpacing 0", expect="ok", PixelSpacing=[0, 0])
    tampered("ps_nan.dcm", "PixelSpacing NaN", expect="ok", PixelSpacing=["NaN", "NaN"])
    tampered("ps_inf.dcm", "PixelSpacing inf", expect="ok", PixelSpacing=["inf", "inf"])
    tampered("ps_neg.dcm", "PixelSpacing -1", expect="ok", PixelSpacing=[-1, -1])
    tampered("ps_huge.dcm", "PixelSpacing 1e300", expect="error", PixelSpacing=["1e300", "1e300"])
    tampered(
        "ipp_1e308.dcm",
        "ImagePositionPatient 1e308",
        expect="error",
        ImagePositionPatient=["1e308", "1e308", "1e308"],
    )
    tampered(
        "ipp_nan.dcm", "ImagePositionPatient NaN", expect="ok", ImagePositionPatient=["nan"] * 3
    )
    tampered(
        "iop_zero.dcm",
        "ImageOrientationPatient all zero",
        expect="error",
        ImageOrientationPatient=[0, 0, 0, 0, 0, 0],
    )
    tampered(
        "iop_parallel.dcm",
        "ImageOrientationPatient rows parallel to columns",
        expect="error",
        ImageOrientationPatient=[1, 0, 0, 1, 0, 0],
    )

    def ps_text(path: Path) -> None:
        from pydicom.dataelem import DataElement

        ds = pydicom.dcmread(seed)
        ds[0x00280030] = DataElement(0x00280030, "LO", "abc\\def")  # PixelSpacing as text
        ds.save_as(path, enforce_file_format=False)

    w.add("ps_text.dcm", "image", ps_text, expect="ok", why="PixelSpacing is text")
    tampered("ps_three.dcm", "PixelSpacing with 3 values", expect="ok", PixelSpacing=[1, 1, 1])
    tampered("slope_inf.dcm", "RescaleSlope inf", expect="any", RescaleSlope="inf")
    tampered("slope_huge.dcm", "RescaleSlope 1e308", expect="any", RescaleSlope="1e308")

    def encapsulated(frames: int, fragment: bytes) -> Callable[[Path], None]:
        def make(path: Path) -> None:
            from pydicom.encaps import encapsulate

            ds = pydicom.dcmread(seed)
            ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"  # JPEG 2000
            ds.PixelData = encapsulate([fragment])
            ds["PixelData"].is_undefined_length = True
            ds.NumberOfFrames = frames
            ds.save_as(path, enforce_file_format=False)

        return make

    rnd = np.random.default_rng(8).bytes(300)
    w.add("jpeg2000_garbage.dcm", "image", encapsulated(1, rnd), why="JPEG 2000 of random bytes")
    w.add(
        "jpeg2000_20M_frames.dcm",
        "image",
        encapsulated(20_000_000, rnd),
        why="encapsulated, one fragment, 20,000,000 frames claimed",
    )

    def multi_series_dir(path: Path) -> None:
        path.mkdir()
        for i in range(3):
            ds = pydicom.dcmread(seed)
            ds.SeriesInstanceUID = f"1.2.3.{i}"
            ds.save_as(path / f"s{i}.dcm", enforce_file_format=False)

    w.add("three_series_dir", "image", multi_series_dir, why="folder with three series")

    def mixed_sizes_dir(path: Path) -> None:
        path.mkdir()
        ds = pydicom.dcmread(seed)
        ds.save_as(path / "a.dcm", enforce_file_format=False)
        ds.Rows = 32
        ds.InstanceNumber = 2
        ds.ImagePositionPatient = [0, 0, 5]
        ds.save_as(path / "b.dcm", enforce_file_format=False)

    w.add("mixed_sizes_dir", "image", mixed_sizes_dir, why="series whose images differ in size")

    def empty_dir(path: Path) -> None:
        path.mkdir()

    w.add("empty_dir", "image", empty_dir, why="an empty folder")


def _nifti_cases(w: _Writer) -> None:
    import nibabel as nib

    seed = _anatomical().read_bytes()
    w.prediction = w.good.anatomical_logits
    for cut in _truncations(seed):
        w.add(
            f"anatomical_cut{cut}.nii",
            "image",
            seed[:cut],
            why="truncated NIfTI",
            roles=("prediction",) if cut in (16, 352) else (),
        )
    gz = gzip.compress(seed)
    for cut in (10, 30, len(gz) // 2, len(gz) - 4):
        w.add(f"anatomical_cut{cut}.nii.gz", "image", gz[:cut], why="truncated gzip NIfTI")
    for i, b in enumerate(_flips(seed, 21, 12, 348)):
        w.add(f"anatomical_flip{i}.nii", "image", b, expect="any", why="random header bytes")
    w.add("random.nii", "image", np.random.default_rng(3).bytes(4096), why="random bytes")
    w.add("random.nii.gz", "image", gzip.compress(np.random.default_rng(4).bytes(4096)))
    w.add("text.nii", "image", b"this is not a nifti file\n" * 30, why="text")

    hdr = nib.load(str(_anatomical())).header

    def edited(name: str, why: str, expect: str = "error", role: str = "image", **fields: object):
        h = hdr.copy()
        raw = bytearray(seed)
        for key, value in fields.items():
            h[key] = value
        raw[:348] = h.binaryblock
        w.add(name, role, bytes(raw), expect=expect, why=why)

    edited("pixdim_1e38.nii", "pixdim 1e38", expect="ok", pixdim=[1, 1e38, 1e38, 1e38, 1, 1, 1, 1])
    edited("pixdim_nan.nii", "pixdim NaN", expect="ok", pixdim=[1, np.nan, 1, 1, 1, 1, 1, 1])
    edited("pixdim_inf.nii", "pixdim inf", expect="ok", pixdim=[1, np.inf, 1, 1, 1, 1, 1, 1])
    edited("pixdim_zero.nii", "pixdim 0", expect="ok", pixdim=[1, 0, 0, 0, 1, 1, 1, 1])
    edited(
        "sform_inf.nii",
        "sform with inf",
        expect="error",
        sform_code=1,
        srow_x=[np.inf, 0, 0, 0],
    )
    edited("sform_1e38.nii", "sform 1e38", expect="error", sform_code=1, srow_x=[1e38, 0, 0, 1e38])
    edited("sform_zero.nii", "sform all zero", expect="error", sform_code=1, srow_x=[0, 0, 0, 0])
    edited(
        "qform_nan.nii",
        "qform quaternion NaN",
        expect="error",
        qform_code=1,
        sform_code=0,
        quatern_b=np.nan,
    )
    edited(
        "pixdim_1e38_noform.nii",
        "pixdim 1e38 and no sform/qform (the affine comes from pixdim)",
        pixdim=[1, 1e38, 1e38, 1e38, 1, 1, 1, 1],
        sform_code=0,
        qform_code=0,
    )
    edited(
        "pixdim_nan_noform.nii",
        "pixdim NaN and no sform/qform",
        pixdim=[1, np.nan, 1, 1, 1, 1, 1, 1],
        sform_code=0,
        qform_code=0,
    )
    edited(
        "qoffset_1e30.nii",
        "qform offset 1e30",
        qform_code=1,
        sform_code=0,
        qoffset_x=1e30,
    )
    edited("slope_inf.nii", "scl_slope inf", expect="any", scl_slope=np.inf)
    edited("slope_huge.nii", "scl_slope 1e38", expect="any", scl_slope=1e38)
    edited("vox_offset_huge.nii", "vox_offset past the end", vox_offset=1e9)
    edited("vox_offset_neg.nii", "vox_offset negative", expect="any", vox_offset=-1000)
    edited("dim_zero.nii", "a zero-length axis", dim=[3, 33, 0, 25, 1, 1, 1, 1])
    edited("dim_neg.nii", "a negative dimension", dim=[3, 33, -41, 25, 1, 1, 1, 1])
    edited("dim_huge.nii", "dims 32767^3 in a 70 KB file", dim=[3, 32767, 32767, 32767, 1, 1, 1, 1])
    edited("dim_7d.nii", "7-D", dim=[7, 33, 41, 25, 2, 2, 2, 2])
    edited("dim_count_0.nii", "dim[0] = 0", dim=[0, 33, 41, 25, 1, 1, 1, 1])
    edited("dim_count_9.nii", "dim[0] = 9", dim=[9, 33, 41, 25, 1, 1, 1, 1], expect="any")
    edited("rgb24.nii", "RGB24 data type", datatype=128, bitpix=24)
    edited("rgb24_pred.nii", "RGB24 data type", datatype=128, bitpix=24, role="prediction")
    edited("complex.nii", "complex64 data type", datatype=32, bitpix=64)
    edited("unknown_dtype.nii", "unknown data type 1234", datatype=1234)
    edited("float128.nii", "float128 data type", datatype=1536, bitpix=128)

    # bombs
    claim = (1024, 1024, 1024)  # int32: 4 GiB
    h4 = _nifti1_header(claim, datatype=8, bitpix=32)
    w.add("header_only_4GiB.nii.gz", "image", gzip.compress(h4), why="1 KB header claiming 4 GiB")
    w.add(
        "header_only_4GiB.nii",
        "image",
        h4,
        why="uncompressed header claiming 4 GiB",
        roles=("prediction", "reference"),
    )
    w.add(
        "zeros_64MiB_claims_4GiB.nii.gz",
        "image",
        _gzip_stream(h4, 64 * 1024**2),
        why="gzip bomb: 64 MiB of zeros, header claims 4 GiB",
        roles=("prediction", "reference"),
    )
    h_small = _nifti1_header((512, 512, 256), datatype=2, bitpix=8)  # 64 MiB uint8
    w.add(
        "zeros_64MiB.nii.gz",
        "image",
        _gzip_stream(h_small, 64 * 1024**2),
        why="64 KB gzip decompressing to 64 MiB (over the test memory cap)",
    )
    w.add(
        "nifti2_exabyte.nii",
        "image",
        _nifti2_header((2**40, 2**20, 1)),
        why="NIfTI-2 dims claiming an exabyte",
        roles=("prediction",),
    )
    w.add(
        "nifti2_4GiB.nii.gz",
        "image",
        gzip.compress(_nifti2_header((2048, 2048, 1024))),
        why="NIfTI-2 header-only claiming 4 GiB",
    )
    w.add(
        "nifti2_neg.nii",
        "image",
        _nifti2_header((-5, 10, 10)) + bytes(1000),
        why="NIfTI-2 negative dimension",
    )

    def pair_missing_img(path: Path) -> None:
        h = nib.Nifti1Header()
        h.set_data_shape((4, 4, 4))
        h["magic"] = b"ni1"
        path.write_bytes(h.binaryblock)

    w.add("pair_without_img.hdr", "image", pair_missing_img, why=".hdr without its .img")

    def analyze(path: Path) -> None:
        img = nib.AnalyzeImage(np.zeros((4, 4, 4), np.int16), np.eye(4))
        nib.save(img, str(path))

    w.add("analyze.hdr", "image", analyze, why="Analyze 7.5 (ambiguous orientation)")


def _npy_cases(w: _Writer) -> None:
    w.prediction = None
    good = io.BytesIO()
    np.save(good, np.arange(12 * 10 * 6, dtype=np.int16).reshape(SHAPE))
    raw = good.getvalue()
    for cut in _truncations(raw):
        w.add(f"cut{cut}.npy", "image", raw[:cut], why="truncated .npy", roles=("prediction",))
    for i, b in enumerate(_flips(raw, 31, 8, 128)):
        w.add(f"flip{i}.npy", "image", b, expect="any", why="random header bytes")
    hdrs = {
        "neg_dim": "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 10, 6), }",
        "huge": "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100), }",
        "overflow": "{'descr': '<f8', 'fortran_order': False, 'shape': (2**62, 2**62, 8), }",
        "zero_len": "{'descr': '<f4', 'fortran_order': False, 'shape': (12, 0, 6), }",
        "scalar": "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
        "object": "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }",
        "structured": "{'descr': [('a', '<f4'), ('b', '<i2')], 'fortran_order': False, "
        "'shape': (12, 10, 6), }",
        "void": "{'descr': '|V8', 'fortran_order': False, 'shape': (12, 10, 6), }",
        "unicode": "{'descr': '<U4', 'fortran_order': False, 'shape': (12, 10, 6), }",
        "bytes": "{'descr': '|S4', 'fortran_order': False, 'shape': (12, 10, 6), }",
        "datetime": "{'descr': '<M8[s]', 'fortran_order': False, 'shape': (12, 10, 6), }",
        "complex": "{'descr': '<c8', 'fortran_order': False, 'shape': (12, 10, 6), }",
        "float16": "{'descr': '<f2', 'fortran_order': False, 'shape': (12, 10, 6), }",
        "bad_descr": "{'descr': 'zz9', 'fortran_order': False, 'shape': (12, 10, 6), }",
        "not_dict": "[1, 2, 3]",
        "code": "__import__('os').system('echo pwned')",
        "huge_tuple": "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 40 + "), }",
        "bool_shape": "{'descr': '<f4', 'fortran_order': False, 'shape': (True, 10, 6), }",
        "float_shape": "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5, 10, 6), }",
    }
    for name, text in hdrs.items():
        itemsize = 8
        payload = bytes(12 * 10 * 6 * itemsize)
        expect = "ok" if name == "float16" else "error"
        w.add(
            f"hdr_{name}.npy",
            "image",
            _npy_bytes(text, payload),
            expect=expect,
            roles=("prediction",) if expect == "error" else (),
        )
    w.add("version_9.npy", "image", _npy_bytes(hdrs["huge"], b"", (9, 0)), why="format 9.0")
    w.add(
        "v2_huge_header.npy",
        "image",
        _npy_bytes(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" + " " * 200000, b"", (2, 0)
        ),
        expect="any",
        why="200 KB .npy header",
    )

    import pickle

    w.add(
        "pickle.npy",
        "image",
        pickle.dumps({"a": 1}),
        why="a pickle named .npy",
        roles=("prediction",),
    )

    # predictions with hostile shapes
    def save(arr: np.ndarray) -> bytes:
        b = io.BytesIO()
        np.save(b, arr)
        return b.getvalue()

    w.add(
        "zero_classes.npy",
        "prediction",
        save(np.zeros((*SHAPE, 0), np.float32)),
        why="a prediction with 0 classes",
    )
    w.add(
        "zero_len_axis.npy",
        "prediction",
        save(np.zeros((12, 0, 6, 3), np.float32)),
        why="a zero-length spatial axis",
    )
    w.add(
        "wrong_shape.npy",
        "prediction",
        save(np.zeros((5, 5, 5, 3), np.float32)),
        why="shape does not match the image",
    )
    w.add(
        "all_nan.npy",
        "prediction",
        save(np.full((*SHAPE, 3), np.nan, np.float32)),
        expect="ok",
        why="all NaN logits (reported as invalid)",
    )
    w.add(
        "inf_logits.npy",
        "prediction",
        save(np.full((*SHAPE, 3), np.inf, np.float32)),
        expect="ok",
        why="infinite logits",
    )
    lab = np.zeros(SHAPE, np.uint16)
    lab[0, 0, 0] = 65533
    w.add(
        "stray_65533.npy",
        "prediction",
        save(lab),
        expect="ok",
        why="one voxel of 65533 in a label map",
        extra=("--what", "binary"),
    )
    lab32 = np.zeros(SHAPE, np.int32)
    lab32[1, 1, 1] = 2**31 - 1
    w.add(
        "stray_int32_max.npy",
        "prediction",
        save(lab32),
        expect="any",
        why="one voxel of 2**31-1 in a label map",
    )
    labneg = np.zeros(SHAPE, np.int16)
    labneg[1, 1, 1] = -7
    w.add("negative_label.npy", "prediction", save(labneg), expect="any", why="a negative label")
    w.add(
        "many_classes.npy",
        "prediction",
        save(np.zeros((*SHAPE[:2], 1, 20000), np.float16)),
        why="20,000 classes on a wrong grid",
    )
    ref = np.zeros(SHAPE, np.uint16)
    ref[0, 0, 0] = 65533
    w.add(
        "ref_65533.npy",
        "reference",
        save(ref),
        expect="ok",
        why="reference with a label 65533 (65534 classes: confusion matrix)",
    )
    w.add(
        "ref_wrong_shape.npy",
        "reference",
        save(np.zeros((3, 3, 3), np.uint8)),
        why="reference on another grid",
    )
    w.add(
        "ref_float_nan.npy",
        "reference",
        save(np.full(SHAPE, np.nan, np.float32)),
        expect="any",
        why="reference of NaN",
    )


def _npz_cases(w: _Writer) -> None:
    w.prediction = None

    def npz(members: dict[str, bytes], compress: bool = True) -> bytes:
        b = io.BytesIO()
        mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(b, "w", mode) as z:
            for k, v in members.items():
                z.writestr(k, v)
        return b.getvalue()

    good = io.BytesIO()
    np.savez_compressed(good, image=np.arange(720, dtype=np.int16).reshape(SHAPE))
    raw = good.getvalue()
    for cut in _truncations(raw):
        w.add(f"cut{cut}.npz", "image", raw[:cut], why="truncated .npz")
    huge_hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (1024, 1024, 1024), }"
    w.add(
        "member_claims_4GiB.npz",
        "image",
        npz({"image.npy": _npy_bytes(huge_hdr)}),
        why="member header claims 4 GiB",
        roles=("prediction",),
    )

    def bomb(path: Path) -> None:
        hdr = "{'descr': '|u1', 'fortran_order': False, 'shape': (512, 512, 256), }"
        with (
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z,
            z.open("image.npy", "w", force_zip64=True) as f,
        ):
            f.write(_npy_bytes(hdr))
            chunk = bytes(1 << 20)
            for _ in range(64):
                f.write(chunk)

    w.add(
        "zip_bomb_64MiB.npz",
        "image",
        bomb,
        why="64 KB zip member inflating to 64 MiB",
        roles=("prediction",),
    )
    lying = _npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (12, 10, 6), }")
    w.add("member_short.npz", "image", npz({"image.npy": lying}), why="member shorter than header")
    w.add("no_arrays.npz", "image", npz({"readme.txt": b"hello"}), why="no arrays in the archive")
    w.add(
        "pickle_member.npz",
        "image",
        npz({"image.npy": __import__("pickle").dumps([1, 2])}),
        why="a pickled member",
        roles=("prediction",),
    )
    w.add(
        "object_member.npz",
        "image",
        npz({"image.npy": _npy_bytes("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }")}),
        why="object dtype member",
    )
    many = {
        f"a{i}.npy": _npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", b"\0")
        for i in range(3000)
    }
    w.add("3000_members.npz", "image", npz(many), expect="any", why="3000 tiny members")
    w.add("zip_with_dirs.npz", "image", npz({"../../evil.npy": lying}), why="member with ..")
    w.add("random.npz", "image", np.random.default_rng(5).bytes(2048), why="random bytes")


def _nrrd_cases(w: _Writer) -> None:
    w.prediction = None
    base = [
        "type: short",
        "dimension: 3",
        "sizes: 12 10 6",
        "encoding: raw",
        "endian: little",
        "space: left-posterior-superior",
        "space directions: (1,0,0) (0,1,0) (0,0,1)",
        "space origin: (0,0,0)",
    ]
    payload = bytes(12 * 10 * 6 * 2)
    good = _nrrd(base, payload)
    for cut in _truncations(good):
        w.add(f"cut{cut}.nrrd", "image", good[:cut], why="truncated NRRD")

    def variant(
        name: str,
        replace: dict[str, str],
        why: str,
        expect: str = "error",
        data: bytes = payload,
        roles: tuple[str, ...] = (),
    ) -> None:
        lines = []
        for line in base:
            key = line.split(":")[0]
            if key in replace:
                if replace[key]:
                    lines.append(f"{key}: {replace[key]}")
            else:
                lines.append(line)
        for key, value in replace.items():
            if key not in [b.split(":")[0] for b in base] and value:
                lines.append(f"{key}: {value}")
        w.add(name, "image", _nrrd(lines, data), expect=expect, why=why, roles=roles)

    variant(
        "sizes_huge.nrrd",
        {"sizes": "100000 100000 1000"},
        "sizes claim 20 TB",
        roles=("prediction",),
    )
    variant("sizes_4GiB.nrrd", {"sizes": "1024 1024 2048"}, "sizes claim 4 GiB")
    variant("sizes_neg.nrrd", {"sizes": "12 -10 6"}, "negative size")
    variant("sizes_zero.nrrd", {"sizes": "12 0 6"}, "zero size")
    variant("sizes_text.nrrd", {"sizes": "a b c"}, "sizes not numbers")
    variant("sizes_5000digits.nrrd", {"sizes": "1" * 5000 + " 1 1"}, "5000-digit size")
    variant("dim_mismatch.nrrd", {"dimension": "4"}, "dimension does not match sizes")
    variant("type_block.nrrd", {"type": "block", "block size": "4"}, "block type")
    variant("type_unknown.nrrd", {"type": "quaternion"}, "unknown type")
    variant("encoding_weird.nrrd", {"encoding": "zip64"}, "unknown encoding")
    variant(
        "dirs_nan.nrrd",
        {"space directions": "(nan,0,0) (0,1,0) (0,0,1)"},
        "NaN direction",
        expect="any",
    )
    variant(
        "dirs_inf.nrrd",
        {"space directions": "(inf,0,0) (0,1,0) (0,0,1)"},
        "inf direction",
        expect="any",
    )
    variant(
        "dirs_1e308.nrrd",
        {"space directions": "(1e308,0,0) (0,1e308,0) (0,0,1e308)"},
        "1e308 direction",
        expect="error",
    )
    variant(
        "dirs_zero.nrrd",
        {"space directions": "(0,0,0) (0,0,0) (0,0,0)"},
        "zero directions",
        expect="error",
    )
    variant(
        "origin_inf.nrrd", {"space origin": "(inf,1e308,nan)"}, "non-finite origin", expect="error"
    )
    variant("dirs_garbage.nrrd", {"space directions": "(((((("}, "unparsable directions")
    zeros_gz = _gzip_stream(b"", 64 * 1024**2)
    variant(
        "gzip_bomb.nrrd",
        {"encoding": "gzip", "sizes": "1024 1024 2048"},
        "gzip data claimed 4 GiB",
        data=zeros_gz,
    )
    variant(
        "gzip_64MiB.nrrd",
        {"encoding": "gzip", "type": "uchar", "sizes": "512 512 256"},
        "64 KB gzip inflating to 64 MiB (over the test cap)",
        data=zeros_gz,
    )
    variant(
        "gzip_short.nrrd",
        {"encoding": "gzip", "type": "uchar", "sizes": "512 512 256"},
        "gzip stream shorter than sizes",
        data=gzip.compress(bytes(1000)),
    )
    variant(
        "ascii_huge.nrrd",
        {"encoding": "ascii", "sizes": "100000 100000 100"},
        "ascii data claiming 2 TB",
        data=b"1 2 3\n",
    )

    def detached(name: str, datafile: str, why: str, make_data: bool = True) -> None:
        folder = w.root / "image"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [b for b in base] + [f"data file: {datafile}"]
        if make_data:
            (folder / "detached_data.raw").write_bytes(payload)
        w.add(name, "image", _nrrd(lines, b"", detached=True), why=why)

    detached("nhdr_passwd.nhdr", "/etc/passwd", "data file /etc/passwd")
    detached("nhdr_dotdot.nhdr", "../../../../../../etc/hostname", "data file outside with ..")
    detached("nhdr_missing.nhdr", "no_such_file.raw", "missing data file", make_data=False)
    detached("nhdr_self.nhdr", "nhdr_self.nhdr", "data file is the header itself")
    detached("nhdr_list.nhdr", "LIST\n/etc/passwd\n/etc/hosts", "LIST of outside files")
    detached("nhdr_pattern.nhdr", "/etc/pass%c 0 5 1", "pattern of outside files")
    detached("nhdr_devzero.nhdr", "/dev/zero", "data file /dev/zero")


def _raster_cases(w: _Writer) -> None:
    w.prediction = None
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray((np.arange(64 * 48) % 251).astype(np.uint8).reshape(48, 64)).save(b, "PNG")
    png = b.getvalue()
    for cut in _truncations(png):
        # the last 12 bytes are the IEND chunk: without it the pixels are all there
        w.add(
            f"cut{cut}.png",
            "image",
            png[:cut],
            why="truncated PNG",
            expect="any" if cut >= len(png) - 12 else "error",
        )
    w.add("claims_65535x65535.png", "image", _png_claiming(65535, 65535), why="PNG claims 4 GiB")
    w.add("claims_1x2e9.png", "image", _png_claiming(1, 2_000_000_000), why="PNG claims 2e9 rows")
    w.add("claims_0x0.png", "image", _png_claiming(0, 0), why="PNG 0 x 0")
    import tifffile

    t = io.BytesIO()
    tifffile.imwrite(t, (np.arange(3 * 48 * 64) % 251).astype(np.uint8).reshape(3, 48, 64))
    tif = t.getvalue()
    for cut in _truncations(tif):
        w.add(f"cut{cut}.tif", "image", tif[:cut], why="truncated TIFF")
    for i, fb in enumerate(_flips(tif, 41, 6, 64)):
        w.add(f"flip{i}.tif", "image", fb, expect="any", why="random TIFF header bytes")
    w.add(
        "claims_4GiB.tif",
        "image",
        _tiff_claiming(65536, 65536),
        why="TIFF claims 4 GiB",
        roles=("prediction",),
    )
    w.add(
        "claims_pages.tif",
        "image",
        _tiff_claiming(4096, 4096, pages=300),
        why="300 pages of 16 MiB claimed in a few KB",
    )
    w.add("claims_0.tif", "image", _tiff_claiming(0, 0), why="TIFF 0 x 0")
    w.add(
        "jpeg_random.jpg",
        "image",
        b"\xff\xd8\xff\xe0" + np.random.default_rng(6).bytes(500),
        why="random JPEG body",
    )

    def folder_mixed(path: Path) -> None:
        path.mkdir()
        Image.new("L", (10, 10)).save(path / "a1.png")
        Image.new("L", (12, 10)).save(path / "a2.png")

    w.add("stack_mixed_sizes", "image", folder_mixed, why="a stack of PNGs of different sizes")

    def folder_bad_member(path: Path) -> None:
        path.mkdir()
        Image.new("L", (10, 10)).save(path / "a1.png")
        (path / "a2.png").write_bytes(png[:100])

    w.add("stack_truncated_member", "image", folder_bad_member, why="a stack with a cut PNG")


def _class_table_cases(w: _Writer) -> None:
    w.prediction = None

    def js(obj: object) -> bytes:
        return json.dumps(obj).encode()

    c = {"index": 1, "name": "grey", "color": "#112233"}
    cases: dict[str, tuple[bytes, str, str]] = {
        "nested_100k.json": (b"[" * 100_000 + b"]" * 100_000, "100,000 nested brackets", "error"),
        "nested_obj.json": (
            b'{"classes":' * 50_000 + b"1" + b"}" * 50_000,
            "nested objects",
            "error",
        ),
        "color_nan.json": (
            b'{"classes": [{"index": 1, "name": "a", "color": [NaN, 0, 0]}]}',
            "colour NaN",
            "error",
        ),
        "color_inf.json": (
            b'{"classes": [{"index": 1, "name": "a", "color": [Infinity, 0, 0]}]}',
            "colour Infinity",
            "error",
        ),
        "color_neg.json": (js({"classes": [{**c, "color": [-1, 0, 0]}]}), "colour -1", "error"),
        "color_300.json": (js({"classes": [{**c, "color": [300, 0, 0]}]}), "colour 300", "error"),
        "color_bad_hex.json": (js({"classes": [{**c, "color": "#xyz"}]}), "bad hex", "error"),
        "color_dict.json": (js({"classes": [{**c, "color": {"r": 1}}]}), "colour dict", "error"),
        "index_5000digits.json": (
            b'{"classes": [{"index": ' + b"9" * 5000 + b', "name": "a"}]}',
            "5,000-digit index",
            "error",
        ),
        "index_huge.json": (js({"classes": [{**c, "index": 2**63}]}), "index 2**63", "error"),
        "index_65533.json": (js({"classes": [{**c, "index": 65533}]}), "index 65533", "any"),
        "index_neg.json": (js({"classes": [{**c, "index": -1}]}), "negative index", "error"),
        "index_float.json": (js({"classes": [{**c, "index": 1.5}]}), "index 1.5", "error"),
        "index_nan.json": (b'{"classes": [{"index": NaN, "name": "a"}]}', "index NaN", "error"),
        "index_str.json": (js({"classes": [{**c, "index": "one"}]}), "index text", "error"),
        "index_dup.json": (js({"classes": [c, c]}), "duplicate index", "error"),
        "name_slash.json": (
            js({"classes": [{**c, "name": "../../etc/evil"}]}),
            "name with ../",
            "ok",
        ),
        "name_300bytes.json": (
            js({"classes": [{**c, "name": "é" * 150}]}),
            "150 letters, 300 bytes (file names are cut by bytes)",
            "ok",
        ),
        "name_4byte.json": (
            js({"classes": [{**c, "name": "\U0001f9e0" * 90}]}),
            "90 four-byte letters (360 bytes)",
            "ok",
        ),
        "name_300chars.json": (js({"classes": [{**c, "name": "é" * 300}]}), "300 letters", "error"),
        "name_control.json": (
            js({"classes": [{**c, "name": "a\x00b\x1b[31m"}]}),
            "control chars",
            "error",
        ),
        "name_huge.json": (js({"classes": [{**c, "name": "x" * 100_000}]}), "100 KB name", "error"),
        "name_dots.json": (
            js({"classes": [{**c, "name": ".."}, {**c, "index": 2, "name": "."}]}),
            "names '..' and '.'",
            "ok",
        ),
        "name_reserved.json": (
            js({"classes": [{**c, "name": "CON"}, {**c, "index": 2, "name": "nul.txt"}]}),
            "Windows device names",
            "ok",
        ),
        "name_number.json": (js({"classes": [{**c, "name": 12}]}), "name not text", "any"),
        "name_list.json": (js({"classes": [{**c, "name": ["a"]}]}), "name a list", "error"),
        "classes_dict.json": (js({"classes": {"1": "a"}}), "classes an object", "any"),
        "classes_str.json": (js({"classes": "abc"}), "classes a string", "error"),
        "top_list.json": (js([1, 2, 3]), "a list of numbers", "error"),
        "top_null.json": (b"null", "null", "error"),
        "empty_classes.json": (js({"classes": []}), "no classes", "error"),
        "many_classes.json": (
            js({"classes": [{"index": i, "name": f"c{i}"} for i in range(70000)]}),
            "70,000 classes",
            "error",
        ),
        "bom.json": (b"\xef\xbb\xbf" + js({"classes": [c]}), "UTF-8 BOM", "any"),
        "utf16.json": (js({"classes": [c]}).decode().encode("utf-16"), "UTF-16", "any"),
        "binary.json": (np.random.default_rng(7).bytes(1000), "random bytes", "error"),
        "huge_number.json": (b'{"classes": [{"index": 1e999, "name": "a"}]}', "1e999", "error"),
        "empty.json": (b"", "empty file", "error"),
        "csv_5000digits.csv": (
            b"index,name,color\n" + b"9" * 5000 + b",a,#000000\n",
            "5,000-digit CSV index",
            "error",
        ),
        "csv_nan.csv": (b"index,name,r,g,b\n1,a,nan,0,0\n", "CSV colour NaN", "error"),
        "csv_short.csv": (b"index,name\n1\n", "CSV row short", "error"),
        "csv_neg.csv": (b"index,name,color\n-4,a,#000000\n", "CSV negative index", "error"),
        "csv_binary.csv": (b"\x00\x01\x02" * 100, "CSV binary", "error"),
        "itk_huge.txt": (
            b'99999999999999999999 255 0 0 1 1 1 "a"\n',
            "ITK-SNAP huge index",
            "error",
        ),
        "itk_nan.txt": (b'1 nan 0 0 1 1 1 "a"\n', "ITK-SNAP NaN colour", "error"),
        "lut_5000.ctbl": (b"9" * 5000 + b" a 1 2 3 255\n", "Slicer 5000-digit index", "error"),
        "lut_65533.ctbl": (b"0 bg 0 0 0 0\n65533 stray 1 2 3 255\n", "Slicer index 65533", "any"),
    }
    for name, (data, why, expect) in cases.items():
        w.add(name, "classes", data, expect=expect, why=why)


def build(root: Path) -> tuple[Good, list[Case]]:
    """Write the good inputs and every hostile case under ``root``; return them."""
    good = write_good(root / "good")
    w = _Writer(root / "cases", good)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom/nibabel complain about what we write on purpose
        for family in (
            _dicom_cases,
            _nifti_cases,
            _npy_cases,
            _npz_cases,
            _nrrd_cases,
            _raster_cases,
            _class_table_cases,
        ):
            family(w)
    return good, w.cases


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/hostile/generate.py OUT_DIR", file=sys.stderr)
        return 2
    _, cases = build(Path(argv[0]))
    for c in cases:
        print(f"{c.name:50s} {c.expect:5s} {c.why}")
    print(f"{len(cases)} cases", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
