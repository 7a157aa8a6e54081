"""2-D image formats: PNG, JPEG, TIFF (multi-page = a stack), and folders of 2-D images.

Arrays are ``(slice, row, column)``; a single image is ``(1, row, column)``. Colour images
become luminance (ITU-R BT.601) with a note in the metadata, because masks are reviewed on a
grey image. There is no patient geometry in these formats, so the affine is
:data:`~segviewer.core.types.STACK_AFFINE`, scaled by the pixel size only when the file
states it in physical units (TIFF resolution in centimetres, or ImageJ metadata in mm/um);
a dots-per-inch value is a print setting, not a pixel size, and is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import STACK_AFFINE, SegviewerError, Volume
from segviewer.io.arrays import native, open_pil, open_tiff, pil_array, tiff_series_array
from segviewer.io.common import check_alloc, natural_key
from segviewer.io.sniff import RASTER_SUFFIXES

__all__ = ["RASTER_SUFFIXES", "load_raster", "load_raster_folder"]

_TIFF = (".tif", ".tiff")
_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# ImageJ "unit" values -> millimetres per unit.
_UNIT_MM = {
    "mm": 1.0,
    "millimeter": 1.0,
    "millimetre": 1.0,
    "cm": 10.0,
    "centimeter": 10.0,
    "micron": 1e-3,
    "um": 1e-3,
    "\u00b5m": 1e-3,
    "\\u00b5m": 1e-3,
    "microns": 1e-3,
}


def _format_of(path: Path) -> str:
    s = path.suffix.lower()
    return "tiff" if s in _TIFF else "jpeg" if s in (".jpg", ".jpeg") else "png"


def load_raster(path: Path) -> Volume:
    """Read one PNG/JPEG/TIFF file.

    Parameters
    ----------
    path
        The image. Multi-page TIFF (and ImageJ/OME stacks) become ``(pages, rows, cols)``.

    Returns
    -------
    Volume
        ``(slice, row, column)``; uint8/uint16/int/float as stored (colour -> luminance);
        :data:`STACK_AFFINE` scaled by a trustworthy pixel size, else 1 mm.
    """
    notes: list[str] = []
    if path.suffix.lower() in _TIFF:
        data, spacing, tnotes = _read_tiff(path)
        notes.extend(tnotes)
    else:
        img, pnotes = _read_pillow(path)
        data = img[np.newaxis]
        notes.extend(pnotes)
        spacing = None
    if spacing is None:
        notes.append("no physical pixel size in the file: 1 mm pixels, shown as a stack")
        spacing = (1.0, 1.0, 1.0)
    affine = STACK_AFFINE @ np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    meta = {
        "n_frames": 1,
        "frame": 0,
        "pixel_size_mm": spacing,
        "notes": tuple(notes),
        "warnings": (),
    }
    return Volume(
        data=data, affine=affine, source=str(path), format=_format_of(path), metadata=meta
    )


def load_raster_folder(folder: Path) -> Volume:
    """Stack the 2-D images of a folder in natural name order (``slice2`` before ``slice10``).

    Parameters
    ----------
    folder
        Holds PNG/JPEG/TIFF files (other files are ignored), all the same size and type.

    Returns
    -------
    Volume
        ``(n_files, rows, cols)``, format of the first file, 1 mm stack affine.
    """
    files = sorted(
        (
            f
            for f in folder.iterdir()
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in RASTER_SUFFIXES
        ),
        key=lambda f: natural_key(f.name),
    )
    if not files:
        raise SegviewerError(f"{folder}: no PNG/JPEG/TIFF images in this folder")
    notes: list[str] = []
    first = _single(files[0], notes)
    check_alloc((len(files),) + first.shape, first.dtype, str(folder))
    stack = np.empty((len(files),) + first.shape, dtype=first.dtype)
    stack[0] = first
    for s, f in enumerate(files[1:], start=1):
        img = _single(f, notes)
        if img.shape != first.shape or img.dtype != first.dtype:
            raise SegviewerError(
                f"{folder}: {f.name} is {img.shape[1]}x{img.shape[0]} {img.dtype} but "
                f"{files[0].name} is {first.shape[1]}x{first.shape[0]} {first.dtype}; all images "
                "of a stack must have the same size and type, move the odd ones out"
            )
        stack[s] = img
    meta = {
        "n_frames": 1,
        "frame": 0,
        "files": tuple(f.name for f in files[:3]) + (("...",) if len(files) > 3 else ()),
        "n_files": len(files),
        "notes": tuple(dict.fromkeys(notes))
        + (f"{len(files)} images stacked in natural name order; 1 mm pixels, no geometry",),
        "warnings": (),
    }
    return Volume(
        data=stack,
        affine=STACK_AFFINE,
        source=str(folder),
        format=_format_of(files[0]),
        metadata=meta,
    )


def _single(path: Path, notes: list[str] | None = None) -> np.ndarray:
    """One 2-D grey image of a folder stack."""
    if path.suffix.lower() in _TIFF:
        data, _spacing, tnotes = _read_tiff(path)
        if data.shape[0] != 1:
            raise SegviewerError(
                f"{path}: a multi-page TIFF ({data.shape[0]} pages) inside a folder stack; open it "
                "on its own or split it into single pages"
            )
        img = data[0]
    else:
        img, tnotes = _read_pillow(path)
    if notes is not None:
        notes.extend(tnotes)
    return img


def _read_pillow(path: Path) -> tuple[np.ndarray, list[str]]:
    """PNG/JPEG -> 2-D grey array (rows, cols)."""
    notes: list[str] = []
    with open_pil(path) as opened:
        im = opened
        mode = im.mode
        if mode == "P":
            # Palette images: expand through the palette, then to luminance.
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            mode = im.mode
        if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
            mode = "RGB"
        arr = pil_array(im)
    if mode in ("LA", "La", "PA"):
        arr = arr[..., 0]
        notes.append("alpha channel dropped")
    if arr.ndim == 3:
        arr = _to_luminance(arr, notes, f"{mode} image")
    return np.ascontiguousarray(arr), notes


def _to_luminance(arr: np.ndarray, notes: list[str], what: str) -> np.ndarray:
    """(..., 3|4) colour -> grey with ITU-R BT.601 weights; integer types stay integer."""
    if arr.shape[-1] == 4:
        notes.append("alpha channel dropped")
    grey = arr[..., :3].astype(np.float32) @ _BT601
    notes.append(f"{what} converted to luminance (0.299 R + 0.587 G + 0.114 B)")
    if arr.dtype.kind in "ui":
        return np.rint(grey).astype(arr.dtype)
    return grey


def _read_tiff(path: Path) -> tuple[np.ndarray, tuple[float, float, float] | None, list[str]]:
    """TIFF -> ((pages, rows, cols), pixel size in mm or None, notes)."""
    notes: list[str] = []
    with open_tiff(path) as tif:
        series = tif.series[0]
        shape = tuple(int(d) for d in series.shape)
        stored_axes = axes = str(series.axes)
        arr = tiff_series_array(tif, path)
        spacing = _tiff_spacing(tif, notes)
    if axes and axes[-1] in "S" and arr.shape[-1] in (3, 4):
        arr = _to_luminance(arr, notes, "RGB TIFF")
        axes = axes[:-1]
    # Drop singleton axes (ImageJ/OME hyperstacks write T, Z, C of size 1).
    keep = [i for i, d in enumerate(arr.shape) if d != 1 or i >= arr.ndim - 2]
    arr = arr.reshape([arr.shape[i] for i in keep])
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise SegviewerError(
            f"{path}: TIFF with axes {stored_axes} {shape} is not one stack of 2-D images; "
            "save one channel/time point as a multi-page TIFF"
        )
    if arr.dtype.kind not in "biuf":
        raise SegviewerError(f"{path}: TIFF sample type {arr.dtype} is not a real number type")
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    return native(arr), spacing, notes


def _tiff_spacing(tif: Any, notes: list[str]) -> tuple[float, float, float] | None:
    """(slice, row, column) pixel size in mm if the TIFF states it in physical units."""
    page = tif.pages[0]
    tags = page.tags
    xres, yres, unit = tags.get("XResolution"), tags.get("YResolution"), tags.get("ResolutionUnit")
    if xres is None or yres is None:
        return None

    def per_unit(tag: Any) -> float:
        num, den = tag.value
        return float(num) / float(den) if den else 0.0

    px, py = per_unit(xres), per_unit(yres)
    if px <= 0 or py <= 0:
        return None
    ij = tif.imagej_metadata or {}
    ij_unit = str(ij.get("unit", "")).strip().lower()
    if ij_unit in _UNIT_MM:
        mm = _UNIT_MM[ij_unit]
        z = float(ij.get("spacing", 1.0 / px)) * mm
        notes.append(f"pixel size from ImageJ metadata (unit {ij_unit})")
        return (z, mm / py, mm / px)
    unit_value = int(getattr(unit, "value", 2) if unit is not None else 2)
    if unit_value == 3:  # centimetre: a physical pixel size
        notes.append(
            "pixel size from the TIFF resolution tags (pixels per cm); page spacing is not "
            "stored, taken equal to the column pixel size"
        )
        return (10.0 / px, 10.0 / py, 10.0 / px)
    if unit_value == 2:
        notes.append("TIFF resolution is in dots per inch (a print setting): ignored")
    return None
