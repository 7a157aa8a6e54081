"""Plan an export's files before anything is written (pure; no file-system access).

The plan is the list of files an export will create, with their relative paths, what each
holds and for which class and slice. :mod:`segviewer.io.export` checks it against the
output folder (existing files, collisions) *before* writing, writes exactly these files and
records them in ``manifest.json``.

Layout of an export folder (``<name>`` is the class's safe file name, ``<view>`` one of
``axial`` / ``coronal`` / ``sagittal``, ``NNNN`` the slice index, zero-padded)::

    labels.nii.gz | labels.npy                 label map, image-axis order (a0, a1, a2)
    labels/labels_<view>_sliceNNNN.png         label map per slice, values = class indices
    masks/<name>.nii.gz | masks/<name>.npy     binary mask 0/1 per class, (a0, a1, a2)
    masks/<name>/<name>_<view>_sliceNNNN.png   binary mask 0/255 per class and slice
    probabilities.nii.gz                       float32 (a0, a1, a2, C)
    probabilities.npy                          float32 (C, a0, a1, a2)
    overlays/overlay_<view>_sliceNNNN.png      annotated RGB picture per slice
    errors.nii.gz | errors.npy                 disagreement with the reference: 0 agree,
                                               2 disagree (uint8, (a0, a1, a2))
    errors/errors_<view>_sliceNNNN.png         the same per slice: 0 agree, 255 disagree
    segmentation.dcm                           DICOM SEG (format ``dicom-seg``), BINARY, one
                                               segment per chosen class (labels or binary)
    probabilities.dcm                          DICOM SEG, FRACTIONAL (probabilities, format
                                               ``dicom-seg``), one segment per chosen class
    manifest.json                              written last

Slice PNGs are oriented as the window displays the slice (row 0 at the top of the screen);
``NNNN`` is the voxel index along the image axis that the view slices through.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from segviewer.core.types import SegviewerError

__all__ = [
    "WHATS",
    "FORMATS",
    "MANIFEST_NAME",
    "PlannedFile",
    "ExportPlan",
    "plan_export",
    "parse_slices",
    "safe_component",
    "default_classes",
    "check_path_lengths",
]

#: Longest file-name component (bytes) most file systems accept, and longest path (Linux).
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096

#: What an export can contain, in the order files are written.
#: ``"errors"`` needs a reference segmentation (``plan_export(..., reference=True)``).
WHATS: tuple[str, ...] = ("labels", "binary", "probabilities", "overlays", "errors")
#: File formats for volumes (overlays are always PNG). ``dicom-seg`` writes one DICOM SEG
#: for the chosen classes (needs a DICOM image and consent to copy its identifiers).
FORMATS: tuple[str, ...] = ("nifti", "png", "npy", "dicom-seg")
#: The DICOM SEG files of an export (see the module docstring).
SEG_FILES = {"binary": "segmentation.dcm", "probabilities": "probabilities.dcm"}
MANIFEST_NAME = "manifest.json"

_SUFFIX = {"nifti": ".nii.gz", "npy": ".npy", "png": ".png"}
_WINDOWS_RESERVED = {
    "CON",
    "PRN",
    "AUX",
    "NUL",
    *(f"COM{i}" for i in range(1, 10)),
    *(f"LPT{i}" for i in range(1, 10)),
}
_UNSAFE = re.compile(r"[^\w.\-]+", re.UNICODE)


@dataclass(frozen=True)
class PlannedFile:
    """One file of an export.

    Attributes
    ----------
    path
        Relative POSIX path inside the output folder.
    what
        ``"labels"``, ``"binary"``, ``"probabilities"``, ``"overlay"`` or ``"errors"``.
    format
        ``"nifti"``, ``"png"``, ``"npy"`` or ``"dicom-seg"``.
    class_index, class_name
        The class of a binary mask; ``None`` for label maps, probabilities and overlays.
    slice_index
        Voxel index along the view's slice axis for per-slice PNGs, else ``None``.
    view
        The view of a per-slice PNG, else ``None``.
    """

    path: str
    what: str
    format: str
    class_index: int | None = None
    class_name: str | None = None
    slice_index: int | None = None
    view: str | None = None


@dataclass(frozen=True)
class ExportPlan:
    """The files of an export and the notes for the user (e.g. a format that does not apply)."""

    files: tuple[PlannedFile, ...]
    warnings: tuple[str, ...] = ()
    classes: tuple[int, ...] = ()
    slices: tuple[int, ...] = ()

    def paths(self) -> list[str]:
        """Relative paths of all planned files (manifest excluded)."""
        return [f.path for f in self.files]


def safe_component(name: str, index: int) -> str:
    """Make ``name`` safe as one file-name component on Linux, macOS and Windows.

    Path separators, ``..``, control characters, Windows-reserved device names (``CON``,
    ``NUL``, ...), trailing dots and spaces are neutralised; an empty result becomes
    ``class<index>``. Unicode letters are kept (NFC-normalised).
    """
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"_+", "_", text)
    text = re.sub(r"\.{2,}", ".", text).strip(" ._")  # no hidden files, no trailing dots
    if not text or text.strip("_") == "":
        return f"class{index}"
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = f"{text}_{index}"
    # at most 100 bytes in UTF-8 (not characters: 100 four-byte letters are 400 bytes, and
    # slice PNG names add about 30 bytes to this), cut on a character boundary
    return text.encode("utf-8")[:100].decode("utf-8", "ignore").rstrip(" .") or f"class{index}"


def default_classes(
    table: Any, counts: Sequence[int], *, label_map: bool = True
) -> tuple[tuple[int, ...], list[str]]:
    """The classes an export writes masks for when none are chosen, and notes for the user.

    A class is exported when some voxel holds it or the class table names it (a name other
    than the default ``"class k"``); background (0) never. So one stray voxel of label 65533
    gives one mask, not 65,533 masks of empty classes. A label far beyond every class the
    table names is reported.

    Parameters
    ----------
    table
        The class table (``len(table)`` classes, ``table[k].name``).
    counts
        Voxels per class of the label map (``counts[k]``; shorter than the table is fine);
        for a model's channels, nonzero for every class the model outputs.
    label_map
        ``counts`` are voxel counts of a label map (far-out labels are reported).
    """
    n = len(table)
    present = [k for k in range(1, min(n, len(counts))) if int(counts[k]) > 0]
    # "class k" is the name ClassTable.default and the gap filling of from_entries give
    named = [k for k in range(1, n) if str(table[k].name) != f"class {k}"]
    chosen = tuple(sorted(set(present) | set(named)))
    notes: list[str] = []
    top_named = max(named, default=0)
    far = [k for k in present if k > max(2 * top_named, 255) and k not in named and label_map]
    if far:
        shown = ", ".join(f"{k} ({int(counts[k])} voxels)" for k in far[:5])
        notes.append(
            f"the label map holds label{'s' if len(far) > 1 else ''} {shown}"
            + (f" and {len(far) - 5} more" if len(far) > 5 else "")
            + f", far beyond the named classes (0..{top_named}); "
            "a corrupt label map or the wrong file? They are exported as 'class k' masks"
        )
    unused = n - 1 - len(chosen)
    if unused > 0:
        notes.append(
            f"{unused} class{'es' if unused > 1 else ''} of 0..{n - 1} hold no voxel and have "
            "no name in the class table; no masks written for them (choose them with --class)"
        )
    return chosen, notes


def check_path_lengths(out_dir: str, rel_paths: Iterable[str]) -> None:
    """Refuse an export whose file names or paths are longer than file systems accept.

    Parameters
    ----------
    out_dir
        The output folder, as the user gave it (absolute or relative).
    rel_paths
        The planned files, relative to it.

    Raises
    ------
    SegviewerError
        A name component over :data:`MAX_NAME_BYTES` bytes or a path over
        :data:`MAX_PATH_BYTES` bytes (UTF-8).
    """
    base = len(out_dir.encode("utf-8", "surrogateescape"))
    for part in out_dir.replace("\\", "/").split("/"):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise SegviewerError(
                f"the output folder name {part[:40]}... is longer than {MAX_NAME_BYTES} bytes, "
                "more than file systems accept; choose a shorter name"
            )
    for rel in rel_paths:
        for part in rel.split("/"):
            if len(part.encode("utf-8")) > MAX_NAME_BYTES:
                raise SegviewerError(
                    f"the export file name {part[:40]}... is longer than {MAX_NAME_BYTES} "
                    "bytes; shorten the class name"
                )
        if base + 1 + len(rel.encode("utf-8")) > MAX_PATH_BYTES - 64:
            raise SegviewerError(
                f"the output path {out_dir[:40]}.../{rel} is longer than {MAX_PATH_BYTES - 64} "
                "bytes, more than file systems accept; choose a shorter output folder"
            )


def _class_file_names(table: Any, classes: Sequence[int]) -> dict[int, str]:
    """Safe file names for the chosen classes, unique on a case-insensitive file system.

    macOS and Windows file systems fold case (and macOS Unicode normalisation), so
    ``Liver`` and ``liver`` would be one file there: names are compared NFC-normalised and
    case-folded, and a clash gets ``_<index>`` (then ``_<index>_2``...) appended.
    """
    names: dict[int, str] = {}
    used: set[str] = {"labels", "probabilities", "overlays"}
    for k in classes:
        base = table.safe_filename(k) if hasattr(table, "safe_filename") else str(table[k].name)
        # Second guard, idempotent on names that are already safe: the plan must never
        # produce a path that escapes the output folder, whatever the table did.
        name = safe_component(str(base), k)
        candidate, n = name, 1
        while _fold(candidate) in used:
            candidate = f"{name}_{k}" if n == 1 else f"{name}_{k}_{n}"
            n += 1
        used.add(_fold(candidate))
        names[k] = candidate
    return names


def _fold(name: str) -> str:
    """How a case-insensitive file system compares names (NFC, then case-folded)."""
    return unicodedata.normalize("NFC", name).casefold()


def parse_slices(text: str, n_slices: int) -> tuple[int, ...]:
    """Parse a slice selection such as ``"10:20"``, ``"5"``, ``"0,4,8"``, ``"::10"`` or ``"all"``.

    Python slice semantics (stop excluded); negative numbers count from the end. Raises
    :class:`SegviewerError` on malformed text or indices outside ``0 .. n_slices-1``.
    """
    text = text.strip()
    if text.lower() in ("", "all", ":"):
        return tuple(range(n_slices))
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                bits = [int(b) if b.strip() else None for b in part.split(":")]
                if len(bits) > 3:
                    raise ValueError(part)
                if len(bits) == 3 and bits[2] == 0:
                    raise ValueError(part)
                out.extend(range(n_slices)[slice(*bits)])
            else:
                i = int(part)
                if not -n_slices <= i < n_slices:
                    raise SegviewerError(
                        f"slice {i} is outside 0..{n_slices - 1}; choose slices inside the volume"
                    )
                out.append(i % n_slices)
        except ValueError:
            raise SegviewerError(
                f"cannot read the slice selection {text!r}; write e.g. 10:20, 5, 0,4,8 or ::10"
            ) from None
    if not out:
        raise SegviewerError(f"the slice selection {text!r} selects no slice of 0..{n_slices - 1}")
    return tuple(dict.fromkeys(out))


def _seg_files(
    whats: set[str], chosen: tuple[int, ...], warnings: list[str], others: bool
) -> list[PlannedFile]:
    """The DICOM SEG files: one BINARY SEG for labels or binary masks (the same content: a
    segment per chosen class), one FRACTIONAL SEG for probabilities."""
    out: list[PlannedFile] = []
    if not chosen and whats & {"labels", "binary", "probabilities"}:
        warnings.append("no class chosen for the DICOM SEG; none written")
        return out
    if whats & {"labels", "binary"}:
        out.append(PlannedFile(SEG_FILES["binary"], "binary", "dicom-seg"))
    if "probabilities" in whats:
        out.append(PlannedFile(SEG_FILES["probabilities"], "probabilities", "dicom-seg"))
    if "errors" in whats and not others:
        warnings.append("error maps are not written as DICOM SEG; choose nifti, png or npy")
    return out


def plan_export(
    table: Any,
    *,
    classes: Iterable[int] | None,
    what: Iterable[str],
    formats: Iterable[str],
    n_slices: int,
    view: str = "axial",
    slices: Iterable[int] | None = None,
    reference: bool = False,
) -> ExportPlan:
    """List the files an export will write.

    Parameters
    ----------
    table
        The :class:`~segviewer.core.classes.ClassTable` (names, ``safe_filename``).
    classes
        Class indices for binary masks; ``None`` means every class except background (0).
    what
        Subset of :data:`WHATS`.
    formats
        Subset of :data:`FORMATS` for label maps, masks and probabilities; ``dicom-seg``
        plans one BINARY SEG for labels/binary and one FRACTIONAL SEG for probabilities,
        each with a segment per chosen class.
    n_slices
        Number of slices along the view's slice axis (for per-slice PNGs).
    view
        ``"axial"``, ``"coronal"`` or ``"sagittal"``.
    slices
        Slice indices for per-slice PNGs; ``None`` means all.
    reference
        Whether a reference segmentation is given; ``"errors"`` (where the prediction
        disagrees with it) needs one.

    Returns
    -------
    ExportPlan
        Files in writing order; warnings for combinations that write nothing.

    Raises
    ------
    SegviewerError
        Unknown ``what``/format/view, a class index outside the table, a slice outside the
        volume, ``"errors"`` without a reference, or an empty export.
    """
    whats = set(what)
    fmts = set(formats)
    bad = (whats - set(WHATS)) - {"overlay"}
    if bad:
        raise SegviewerError(
            f"unknown export content {sorted(bad)}; choose from {', '.join(WHATS)}"
        )
    if "overlay" in whats:
        whats = (whats - {"overlay"}) | {"overlays"}
    if "errors" in whats and not reference:
        raise SegviewerError(
            "error maps show where the prediction disagrees with a reference segmentation, "
            "and none was given; add a reference (--reference FILE) or leave out errors"
        )
    bad = fmts - set(FORMATS)
    if bad:
        raise SegviewerError(f"unknown format {sorted(bad)}; choose from {', '.join(FORMATS)}")
    if view not in ("axial", "coronal", "sagittal"):
        raise SegviewerError(f"unknown view {view!r}; choose axial, coronal or sagittal")
    if not whats:
        raise SegviewerError(
            "nothing to export; choose binary, labels, probabilities, overlays or errors"
        )
    n_table = len(table)
    if classes is None:
        chosen = tuple(range(1, n_table))
    else:
        chosen = tuple(dict.fromkeys(int(k) for k in classes))
        for k in chosen:
            if not 0 <= k < n_table:
                raise SegviewerError(
                    f"class {k} does not exist; the class table has classes 0..{n_table - 1}"
                )
    if slices is None:
        chosen_slices = tuple(range(n_slices))
    else:
        chosen_slices = tuple(dict.fromkeys(int(s) for s in slices))
        for s in chosen_slices:
            if not 0 <= s < n_slices:
                raise SegviewerError(
                    f"slice {s} is outside 0..{n_slices - 1} for the {view} view; "
                    "choose slices inside the volume"
                )
    width = max(4, len(str(max(n_slices - 1, 0))))

    def tag(s: int) -> str:
        return f"{view}_slice{s:0{width}d}"

    files: list[PlannedFile] = []
    warnings: list[str] = []
    volume_formats = [f for f in FORMATS if f in fmts and f != "dicom-seg"]  # stable order
    seg = "dicom-seg" in fmts
    if not volume_formats and not seg and whats & {"labels", "binary", "probabilities", "errors"}:
        raise SegviewerError("no file format chosen; choose nifti, png, npy or dicom-seg")

    def whole_map(what: str) -> None:
        """A map over all classes (label map, error map): one volume file per format, or one
        PNG per slice in ``<what>/``."""
        for fmt in volume_formats:
            if fmt == "png":
                files.extend(
                    PlannedFile(
                        f"{what}/{what}_{tag(s)}.png", what, "png", slice_index=s, view=view
                    )
                    for s in chosen_slices
                )
            else:
                files.append(PlannedFile(f"{what}{_SUFFIX[fmt]}", what, fmt))

    if "labels" in whats:
        whole_map("labels")

    if "binary" in whats:
        if not chosen:
            warnings.append("no class chosen for binary masks; none written")
        names = _class_file_names(table, chosen)
        for k in chosen:
            cname = str(table[k].name)
            for fmt in volume_formats:
                if fmt == "png":
                    files += [
                        PlannedFile(
                            f"masks/{names[k]}/{names[k]}_{tag(s)}.png",
                            "binary",
                            "png",
                            class_index=k,
                            class_name=cname,
                            slice_index=s,
                            view=view,
                        )
                        for s in chosen_slices
                    ]
                else:
                    files.append(
                        PlannedFile(
                            f"masks/{names[k]}{_SUFFIX[fmt]}",
                            "binary",
                            fmt,
                            class_index=k,
                            class_name=cname,
                        )
                    )

    if "probabilities" in whats:
        wrote = False
        for fmt in volume_formats:
            if fmt == "png":
                warnings.append(
                    "probabilities are not written as PNG (8 bits would lose precision); "
                    "choose nifti or npy for them"
                )
                continue
            files.append(PlannedFile(f"probabilities{_SUFFIX[fmt]}", "probabilities", fmt))
            wrote = True
        if not wrote and "png" not in fmts and not seg:
            warnings.append("no format for probabilities; none written")

    if seg:
        files.extend(_seg_files(whats, chosen, warnings, bool(volume_formats)))

    if "overlays" in whats:
        files += [
            PlannedFile(
                f"overlays/overlay_{tag(s)}.png", "overlay", "png", slice_index=s, view=view
            )
            for s in chosen_slices
        ]

    if "errors" in whats:
        whole_map("errors")
    seen: set[str] = set()
    for f in files:
        key = _fold(f.path)
        if key in seen:  # only possible through a bug above; never overwrite our own output
            raise SegviewerError(f"internal: two export files would be named {f.path}")
        seen.add(key)
        if f.path.startswith("/") or ".." in f.path.split("/"):
            raise SegviewerError(f"internal: export path {f.path} escapes the output folder")
    if not files:
        raise SegviewerError(
            "this export would write no file; " + ("; ".join(warnings) or "choose what to export")
        )
    return ExportPlan(
        files=tuple(files), warnings=tuple(warnings), classes=chosen, slices=chosen_slices
    )
