"""What a file is, from its name: every suffix list and file-dialog filter, in one place.

The readers (``io.images``, ``io.raster``, ``io.predictions``), the window's file dialogs and
drag and drop, and ``segviewer info`` all read these lists, so a format added here is offered
everywhere. Nothing here opens a file except :func:`classify_path`, which reads a NIfTI
header (not its data) to tell a 4-D prediction from an image.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CLASS_FILTER",
    "CLASS_TABLE_SUFFIXES",
    "DICOM_SUFFIXES",
    "IMAGE_FILTER",
    "IMAGE_SUFFIXES",
    "MODEL_FILTER",
    "MODEL_SUFFIXES",
    "NIFTI_SUFFIXES",
    "NRRD_SUFFIXES",
    "NUMPY_SUFFIXES",
    "PNG_FILTER",
    "PREDICTION_FILTER",
    "PREDICTION_SUFFIXES",
    "PREDICTION_WORDS",
    "RASTER_SUFFIXES",
    "REFERENCE_WORDS",
    "classify_path",
    "is_class_table",
    "tensorflow_available",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr", ".img", ".hdr.gz", ".img.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NUMPY_SUFFIXES = (".npy", ".npz")
#: Every suffix ``io.images.load_image`` reads (a DICOM folder has none).
IMAGE_SUFFIXES = NIFTI_SUFFIXES + NRRD_SUFFIXES + DICOM_SUFFIXES + RASTER_SUFFIXES + NUMPY_SUFFIXES
#: Every suffix ``io.predictions.load_prediction`` reads.
PREDICTION_SUFFIXES = (
    ".npy",
    ".npz",
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".nhdr",
    ".png",
    ".tif",
    ".tiff",
    ".dcm",
    ".h5",
    ".hdf5",
)
#: Class tables: JSON, CSV/TSV, ITK-SNAP label descriptions, Slicer/FreeSurfer colour tables.
CLASS_TABLE_SUFFIXES = (".json", ".csv", ".tsv", ".txt", ".ctbl", ".lut", ".label", ".labels")
#: Keras model files (a SavedModel is a folder).
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")

#: Words in a file name that mark a reference segmentation (ground truth) when a file is
#: dropped while a prediction is shown.
REFERENCE_WORDS = ("reference", "ref_", "_ref", "ground", "truth", "_gt", "gt_", "manual")
#: Words in a file name that mark a model's output.
PREDICTION_WORDS = ("pred", "prob", "logit", "seg", "label", "mask", "output")


def _filter(title: str, suffixes: Sequence[str]) -> str:
    patterns = " ".join(f"*{s}" for s in dict.fromkeys(suffixes))
    return f"{title} ({patterns});;All files (*)"


IMAGE_FILTER = _filter(
    "Images", (".nii", ".nii.gz", ".dcm", *NRRD_SUFFIXES, *RASTER_SUFFIXES, *NUMPY_SUFFIXES)
)
PREDICTION_FILTER = _filter("Predictions", PREDICTION_SUFFIXES)
CLASS_FILTER = _filter("Class tables", CLASS_TABLE_SUFFIXES)
MODEL_FILTER = _filter("Keras models", MODEL_SUFFIXES)
PNG_FILTER = "PNG (*.png)"


def is_class_table(path: str | os.PathLike[str]) -> bool:
    """Whether the name says class table (by suffix; the content decides the dialect)."""
    return Path(path).name.lower().endswith(CLASS_TABLE_SUFFIXES)


def classify_path(
    path: str | os.PathLike[str],
    have_image: bool,
    image_shape: Sequence[int] | None = None,
    *,
    have_prediction: bool = False,
) -> str:
    """Decide what a dropped / opened file is: ``"image"``, ``"prediction"``, ``"reference"``
    or ``"classes"``.

    Class-table suffixes are class tables; with no image loaded anything else is the image.
    With a prediction shown, names that say "reference", "ground truth", "gt" or "manual"
    are reference segmentations (File > Open reference segmentation is the unambiguous way).
    With an image loaded, NumPy files, 4-D NIfTI, names that say so (pred, prob, logit, seg,
    label, mask, output) and NIfTI arrays with the image's shape are predictions; anything
    else replaces the image.
    """
    p = Path(path)
    name = p.name.lower()
    if is_class_table(p):
        return "classes"
    if not have_image:
        return "image"
    stem = "_" + name.replace("-", "_").replace(".", "_") + "_"
    if have_prediction and any(w in stem for w in REFERENCE_WORDS):
        return "reference"
    if any(w in name for w in PREDICTION_WORDS):
        return "prediction"
    if name.endswith(NUMPY_SUFFIXES):
        return "prediction"
    if name.endswith((".nii", ".nii.gz")):
        try:
            import nibabel

            shape = nibabel.load(str(p)).shape  # type: ignore[attr-defined]  # header only
        except Exception:  # unreadable header: let the image loader report it
            return "image"
        if len(shape) >= 4 or (image_shape is not None and tuple(shape[:3]) == tuple(image_shape)):
            return "prediction"
    return "image"


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed, found without importing it (the import takes ~2 s)."""
    return importlib.util.find_spec("tensorflow") is not None
