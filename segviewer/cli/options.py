"""Every command-line option of ``segviewer``, declared once.

The window (``segviewer [IMAGE] ...``) and the subcommands ``info``, ``export`` and
``compare`` build their parsers from the same ``add_*`` functions, so a flag has one name,
one type and one help text wherever it appears. The functions that turn option text into
values (``series_arg``, ``csv_choice``, ``window_arg``) live here too.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence

from segviewer.core.display import (
    DISPLAYS,
    MIN_CONFIDENCE,
    MODES,
    OPACITY,
    OUTLINE_WIDTH,
    THRESHOLD,
    Bounded,
)
from segviewer.core.types import SegviewerError

__all__ = [
    "FORMATS",
    "KINDS",
    "VIEWS",
    "WHATS",
    "compare_parser",
    "csv_choice",
    "evaluate_parser",
    "export_parser",
    "info_parser",
    "series_arg",
    "window_arg",
    "window_parser",
]

WHATS = ("binary", "labels", "probabilities", "overlays", "errors")
FORMATS = ("nifti", "png", "npy", "dicom-seg")
KINDS = ("logits", "probabilities", "sigmoid", "multilabel", "labels")
VIEWS = ("axial", "coronal", "sagittal")


# ----------------------------------------------------------------------------------------
# option families


def add_image_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "image",
        nargs="?",
        metavar="IMAGE",
        help="MRI: NIfTI, DICOM file/folder, NRRD, PNG/TIFF, .npy/.npz",
    )


def add_image_options(p: argparse.ArgumentParser) -> None:
    """Which image of a DICOM folder or 4-D file."""
    p.add_argument("--series", metavar="UID_OR_N", help="DICOM series of a folder (UID or number)")
    p.add_argument(
        "--frame", type=int, default=0, metavar="N", help="volume of a 4-D image (0-based)"
    )


def add_layout_options(p: argparse.ArgumentParser) -> None:
    """How to read a prediction's array: layout and kind."""
    p.add_argument("--layout", help="prediction layout, e.g. NDHWC, CDHW, HWC (default: detected)")
    p.add_argument(
        "--kind", choices=KINDS, help="what the prediction's values are (default: detected)"
    )


def add_source_options(
    p: argparse.ArgumentParser, demo_help: str, *, prediction_or_model: bool
) -> None:
    """Image, prediction or model, demo, class table, layout and kind.

    ``prediction_or_model`` makes ``--prediction`` and ``--model`` exclusive (``export``,
    ``compare``); the window accepts both (the model's prediction replaces the file's).
    """
    add_image_argument(p)
    src: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup = (
        p.add_mutually_exclusive_group() if prediction_or_model else p
    )
    src.add_argument(
        "--prediction",
        "-p",
        metavar="FILE",
        help="model output aligned to the image (logits, probabilities, labels)",
    )
    src.add_argument(
        "--model",
        "-m",
        metavar="MODEL",
        help="TensorFlow/Keras model (.keras, .h5, SavedModel folder) to run on the image",
    )
    p.add_argument("--demo", action="store_true", help=demo_help)
    p.add_argument(
        "--classes",
        "-c",
        metavar="FILE",
        help="class table: JSON, CSV, ITK-SNAP, FreeSurferColorLUT, Slicer",
    )
    add_classes_offset_option(p)
    add_layout_options(p)


def add_classes_offset_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--classes-offset",
        type=int,
        default=0,
        metavar="N",
        help="add N to every class-table index: 1 for tables whose first row (index 0) is the "
        "first structure, not the background (segviewer warns when a table looks shifted)",
    )


def add_reference_option(p: argparse.ArgumentParser, effect: str) -> None:
    p.add_argument(
        "--reference",
        "-r",
        metavar="FILE",
        help="reference segmentation (ground truth) on the image grid: a label map, or "
        f"probabilities/logits (their argmax); {effect}",
    )


def add_resample_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resample",
        action="store_true",
        help="put a prediction (or reference) of another grid onto the image grid: in world "
        "space through both files' affines (NIfTI, NRRD), by shape for files without geometry; "
        "nearest neighbour for labels, linear per class for logits/probabilities",
    )


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Trust, card and card overrides of ``--model``."""
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="allow a model file that runs code when loaded (Keras Lambda layers, custom "
        "classes); only for files from a source you trust",
    )
    p.add_argument(
        "--model-card",
        metavar="FILE",
        help="the model's card (default: <model>.segviewer.json next to the model)",
    )
    p.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one model-card setting, e.g. normalization=zscore, slice_axis=0, "
        "batch_size=8 (repeatable; values read as JSON when they parse; see "
        "docs/model_card.md)",
    )


def add_mask_options(p: argparse.ArgumentParser) -> None:
    """Label-map settings, image selection and model options: shared by export and compare."""
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="sigmoid/multi-label threshold (default: the model card's, else 0.5)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="mark voxels whose top probability is below P as uncertain",
    )
    add_resample_option(p)
    add_image_options(p)
    add_model_options(p)


def add_view_option(
    p: argparse.ArgumentParser, *, three: bool, help: str, default: str | None = "axial"
) -> None:
    p.add_argument(
        "--view", choices=(*VIEWS, "three") if three else VIEWS, default=default, help=help
    )


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def add_verbose_option(p: argparse.ArgumentParser) -> None:
    # read by cli.main before parsing (terminal.guarded hides library output without it)
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show the libraries' own warnings and log lines (nibabel, pydicom, TensorFlow)",
    )


# ----------------------------------------------------------------------------------------
# parsers


def window_parser() -> argparse.ArgumentParser:
    """Options of the window command ``segviewer [IMAGE] ...``."""
    p = argparse.ArgumentParser(
        prog="segviewer",
        description="Review a segmentation model's prediction on an MRI volume.",
    )
    add_source_options(
        p,
        "open the bundled demo (ICBM152 T1 + reference tissue probabilities, replaced "
        "by the bundled model's prediction when TensorFlow is installed, which is then "
        "compared with the tissue probabilities as the reference)",
        prediction_or_model=False,
    )
    add_resample_option(p)
    add_reference_option(
        p,
        "shows Dice per class, 'Errors vs reference' and E / Shift+E to the slices with "
        "the most errors",
    )
    p.add_argument(
        "--evaluation",
        metavar="DIR",
        help="an 'evaluate' --out folder: open its test set (or IMAGE, given as a test set: "
        "a case-list CSV, a folder with images/ and predictions/, or a quoted glob) with its "
        "metrics in the case table, each case at its worst slice",
    )
    add_image_options(p)
    add_model_options(p)
    add_view_option(
        p,
        three=True,
        default=None,
        help="the view to show first (default: the image's acquisition plane; a 2-D slice "
        "in its own plane)",
    )
    p.add_argument(
        "--slice",
        type=int,
        help="slice index to show first, 0-based as on screen (default: middle)",
    )
    p.add_argument(
        "--screenshot",
        metavar="FILE.png",
        help="open, wait for all work, save the window to PNG and exit (never reads or "
        "writes your saved settings: the same command gives the same picture anywhere)",
    )
    add_window_display_options(p)
    return p


def _bounded(spec: Bounded) -> Callable[[str], float]:
    """argparse type for a setting declared in ``core.display`` (its range, one message)."""

    def parse(text: str) -> float:
        try:
            return spec.check(float(text))
        except (SegviewerError, ValueError):
            raise argparse.ArgumentTypeError(
                f"{spec.name} must be a number from {spec.minimum:g} to {spec.maximum:g}, "
                f"got {text!r}"
            ) from None

    return parse


def _window_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"write WIDTHxHEIGHT in pixels, e.g. 1280x860, got {text!r}"
        ) from None
    if not (400 <= w <= 10000 and 300 <= h <= 10000):
        raise argparse.ArgumentTypeError(f"{text!r}: the window is 400x300 to 10000x10000 pixels")
    return w, h


def add_window_display_options(p: argparse.ArgumentParser) -> None:
    """Every display setting of the window (ranges from ``core.display``), and its size."""
    g = p.add_argument_group("display (every setting the window has; default: as saved)")
    g.add_argument("--window-size", type=_window_size, metavar="WxH", help="e.g. 1280x860")
    g.add_argument("--opacity", type=_bounded(OPACITY), help="overlay opacity 0..1")
    g.add_argument("--mode", choices=MODES, help="draw classes filled, as outlines, or both")
    g.add_argument(
        "--outline-width",
        type=lambda t: int(_bounded(OUTLINE_WIDTH)(t)),
        metavar="PX",
        help=f"outline width {OUTLINE_WIDTH.minimum:g}..{OUTLINE_WIDTH.maximum:g} screen pixels",
    )
    g.add_argument("--display", choices=DISPLAYS, help="what the overlay shows (default labels)")
    g.add_argument(
        "--display-class",
        type=int,
        metavar="N",
        help="class of --display probability / errors (errors: default all classes)",
    )
    g.add_argument(
        "--threshold", type=_bounded(THRESHOLD), help="sigmoid/multi-label foreground threshold"
    )
    g.add_argument(
        "--min-confidence",
        type=_bounded(MIN_CONFIDENCE),
        metavar="P",
        help="mark voxels whose top probability is below P as uncertain",
    )
    g.add_argument("--window", metavar="LEVEL,WIDTH", help="grey window (default automatic)")
    g.add_argument("--no-legend", action="store_true", help="no class legend on the canvas")
    g.add_argument("--crosshair", action="store_true", help="draw the cursor's crosshair")
    g.add_argument("--neurological", action="store_true", help="patient left on screen left")


def info_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer info",
        description="Describe images, predictions and class tables: shape in image axes 0/1/2, "
        "dtype, spacing, orientation; a prediction's kind and layout; a table's classes.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="files or DICOM folders")
    p.add_argument(
        "--image",
        metavar="IMAGE",
        help="detect each prediction's layout against this image's shape",
    )
    add_image_options(p)
    add_layout_options(p)
    add_resample_option(p)
    add_classes_offset_option(p)
    add_json_option(p)
    add_verbose_option(p)
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer export",
        description="Export masks, label maps, probabilities and annotated slices from a "
        "prediction (or a model run on the image), with a manifest.json describing them.",
        epilog="NIfTI outputs keep the image's shape and affine, so they open aligned in "
        "ITK-SNAP, 3D Slicer and FSLeyes. PNG slices are oriented as the window shows them "
        "(radiological convention unless --neurological).",
    )
    add_source_options(
        p, "use the bundled demo image, prediction and classes", prediction_or_model=True
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    add_reference_option(p, "adds a comparison to the manifest and allows --what errors")
    p.add_argument(
        "--what",
        default="binary,labels",
        help=f"comma list of {','.join(WHATS)} (default binary,labels; errors needs --reference)",
    )
    p.add_argument(
        "--format",
        default="nifti",
        help=f"comma list of {','.join(FORMATS)} (default nifti; dicom-seg writes one DICOM SEG "
        "for the chosen classes of a DICOM image, FRACTIONAL for --what probabilities, and "
        "needs --allow-identifiers)",
    )
    p.add_argument(
        "--allow-identifiers",
        action="store_true",
        help="allow files that carry the patient and study identifiers: a DICOM SEG copies "
        "them from the source images so a PACS files it with the study (no other export "
        "carries them)",
    )
    p.add_argument(
        "--class",
        dest="class_",
        action="append",
        metavar="NAME_OR_INDEX",
        help="export only this class (repeatable; default: all but background)",
    )
    add_view_option(p, three=False, help="slicing of PNG outputs (default axial)")
    p.add_argument("--neurological", action="store_true", help="patient left on picture left")
    p.add_argument(
        "--slices", metavar="SEL", help="PNG slices: 10:20, 5, 0,4,8, ::10 (default all)"
    )
    p.add_argument("--opacity", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    p.add_argument(
        "--outline", action="store_true", help="draw class outlines instead of filled areas"
    )
    p.add_argument("--mode", choices=("fill", "outline", "both"), help="overlay drawing mode")
    p.add_argument(
        "--outline-width", type=int, default=1, metavar="PX", help="outline width in slice pixels"
    )
    p.add_argument(
        "--window", metavar="LEVEL,WIDTH", help="grey window for overlays (default automatic)"
    )
    p.add_argument("--no-legend", action="store_true", help="no legend on overlays")
    p.add_argument(
        "--no-annotate",
        action="store_true",
        help="overlays without caption (view, slice, position in mm), orientation letters "
        "and scale bar",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=0,
        metavar="N",
        help="enlarge overlays N times (default 0 = automatic: at least 512 px)",
    )
    add_mask_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument(
        "--full-paths",
        action="store_true",
        help="record the sources' full paths in manifest.json (default: file names only)",
    )
    p.add_argument(
        "--free-text",
        action="store_true",
        help="copy free-text DICOM fields (SeriesDescription) into manifest.json",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    add_verbose_option(p)
    return p


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer compare",
        description="Where is the model wrong: compare a prediction (file or model run on the "
        "image) with a reference segmentation, voxel by voxel, and print per-class Dice, "
        "Jaccard, sensitivity, precision and volumes, and the overall accuracy.",
        epilog="The reference must be on the image's grid (same shape) unless --resample "
        "(nearest neighbour for a label map). Reference voxels with "
        "no class of the table are left out; prediction voxels marked uncertain or invalid "
        "count as wrong for every class. 'segviewer export ... --reference FILE --what errors' "
        "writes the error maps.",
    )
    add_source_options(
        p,
        "run the bundled demo model on the demo image and compare it with the demo's tissue "
        "map (needs TensorFlow)",
        prediction_or_model=True,
    )
    add_reference_option(p, "the prediction is scored against it")
    p.add_argument(
        "--reference-layout",
        metavar="L",
        help="layout of a reference with a class axis, e.g. DHWC (default: detected)",
    )
    add_mask_options(p)
    add_json_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_verbose_option(p)
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer evaluate",
        description="Score every case of a test set: per case, class and slice Dice, IoU, "
        "sensitivity, precision, volumes, FP/FN voxels, HD95 and ASSD (mm), mean entropy and "
        "low-confidence share; writes cases.csv, slices.csv, summary.json and report.html.",
        epilog="CASES is a CSV (image,prediction[,reference][,classes][,id][,prediction_b], "
        "paths relative to the CSV), a folder with images/ predictions/ [references/] "
        "[predictions_b/], or a quoted glob of case folders. The cases run on a local Dask "
        "cluster (--workers N) or an existing one (--scheduler ADDRESS); --workers 0 runs "
        "them in this process. Exit status 1 when some cases failed (listed in the outputs).",
    )
    p.add_argument("cases", metavar="CASES", help="test set: CSV, folder or glob of case folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument(
        "--classes",
        "-c",
        metavar="FILE",
        help="class table for cases without their own: JSON, CSV, ITK-SNAP, FreeSurferColorLUT",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local Dask worker processes (default: one per CPU core; 0: in this process)",
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="join an existing Dask cluster, e.g. tcp://host:8786"
    )
    p.add_argument("--resume", action="store_true", help="continue in DIR: skip cases already done")
    p.add_argument(
        "--model",
        "-m",
        metavar="MODEL",
        help="run this TensorFlow/Keras model on every image instead of reading predictions",
    )
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="allow a model file that runs code when loaded; only for files you trust",
    )
    add_view_option(p, three=False, help="slices of the per-slice metrics (default axial)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="sigmoid/multi-label threshold (default 0.5)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="mark voxels whose top probability is below P as uncertain (wrong for every class)",
    )
    p.add_argument(
        "--low-confidence",
        type=float,
        default=0.8,
        metavar="P",
        help="a voxel is low-confidence when its top probability is below P (default 0.8)",
    )
    p.add_argument(
        "--no-distances",
        action="store_true",
        help="skip HD95 / ASSD (the slowest metrics), per case and per slice",
    )
    p.add_argument(
        "--no-slice-distances", action="store_true", help="skip HD95 / ASSD per slice only"
    )
    p.add_argument(
        "--worst", type=int, default=5, metavar="N", help="worst cases in the report (default 5)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress and no summary line")
    add_verbose_option(p)
    return p


# ----------------------------------------------------------------------------------------
# option values


def series_arg(text: str | None) -> str | int | None:
    """``--series``: a number selects by series number, anything else is a UID."""
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def csv_choice(text: str, allowed: Sequence[str], what: str) -> frozenset[str]:
    """A comma list of choices (``--what``, ``--format``)."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    items = ["overlays" if t == "overlay" else t for t in items]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise SegviewerError(
            f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(allowed)}"
        )
    return frozenset(items)


def window_arg(text: str | None) -> tuple[float, float] | None:
    """``--window LEVEL,WIDTH`` (grey window)."""
    if text is None:
        return None
    try:
        level, width = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise SegviewerError(
            f"--window {text!r}: write LEVEL,WIDTH, e.g. --window 300,600"
        ) from None
    if not (math.isfinite(level) and math.isfinite(width) and width > 0):
        raise SegviewerError(f"--window {text!r}: the width must be a positive number")
    return level, width
