"""A real MR series for DICOM SEG tests, written from data pydicom ships.

pydicom's test files hold no multi-slice single-frame MR series; ``emri_small.dcm`` holds ten
real 64x64 MR frames (an enhanced multi-frame file without plane geometry) and
``MR_small.dcm`` a complete single-frame MR header. :func:`write_mr_series` writes the ten
frames as ten single-frame MR images (MR_small's header, one SOP instance per frame) in an
oblique plane with consistent ImagePositionPatient / ImageOrientationPatient / PixelSpacing,
as a scanner would: the geometry a SEG must reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

#: Row direction, column direction (LPS): an oblique axial plane tilted about x.
ROW_DIR = np.array([1.0, 0.0, 0.0])
COL_DIR = np.array([0.0, np.cos(0.2), -np.sin(0.2)])
NORMAL = np.cross(ROW_DIR, COL_DIR)
PIXEL_SPACING = (0.8, 0.7)  # between rows, between columns (mm)
SLICE_GAP = 2.5
ORIGIN = np.array([-20.0, -25.0, 40.0])


def mr_frames() -> np.ndarray:
    """The ten real MR frames of emri_small.dcm, ``(10, 64, 64)`` uint16."""
    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    return np.asarray(ds.pixel_array)


def write_mr_series(folder: Path, *, shuffle_names: bool = True) -> list[Path]:
    """Write the series; returns the files in slice order (increasing position along NORMAL).

    File names are shuffled so that only the geometry gives the order.
    """
    frames = mr_frames()
    template = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    frame_of_ref = generate_uid()
    n = frames.shape[0]
    order = list(range(n))
    names = [f"im{(7 * k + 3) % n:02d}.dcm" if shuffle_names else f"im{k:02d}.dcm" for k in order]
    paths = []
    for k in order:
        ds = template.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.FrameOfReferenceUID = frame_of_ref
        ds.SeriesNumber = 7
        ds.SeriesDescription = "emri_small frames as a series"
        ds.InstanceNumber = n - k  # reversed: only the positions give the order
        ds.ImageOrientationPatient = [*ROW_DIR.tolist(), *COL_DIR.round(8).tolist()]
        ds.ImagePositionPatient = (ORIGIN + k * SLICE_GAP * NORMAL).round(6).tolist()
        ds.PixelSpacing = list(PIXEL_SPACING)
        ds.SliceThickness = SLICE_GAP
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = frames[k].astype(np.uint16).tobytes()
        path = folder / names[k]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
