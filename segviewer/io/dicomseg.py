"""DICOM Segmentation objects (SEG): write one for a DICOM image, read one onto an image grid.

A SEG is how segmentations travel with a study: a PACS files it beside the images, and OHIF,
3D Slicer and other viewers place it on the slices it references. The IOD is built by
highdicom (https://highdicom.readthedocs.io), never by hand.

Writing (:func:`write_seg`)
---------------------------
* One SEG instance for the chosen classes, one segment per class (segment number 1, 2...
  in the order given). ``BINARY`` for masks; ``FRACTIONAL`` (probability, 8 bits) for
  per-class probabilities.
* Segment label = the class name; recommended display colour = the class colour as CIELab.
* Segmented property category and type (SNOMED CT): looked up by class name in the DICOM
  segmentation-property context groups that pydicom ships (CID 7159 morphologically abnormal
  structures such as "edema" or "necrosis", CID 7166 tissues, CID 7151 anatomical structures
  such as "white matter" or "liver"; spelling, case, spaces and "grey"/"gray", "tumour",
  "csf" do not matter). A name found nowhere gets the documented default
  :data:`DEFAULT_CATEGORY` / :data:`DEFAULT_TYPE` ("Tissue" / "Tissue", SCT 85756007, as
  3D Slicer uses for an unspecified segment); ``codes=`` overrides per class.
* Algorithm identification: name ``segviewer`` (plus the model file's name when a model
  ran), family "Artificial Intelligence", version = segviewer's; parameters hold the model
  file name and its SHA-256, or the prediction file's name.
* Frames are placed by the image's geometry (highdicom derives each frame's plane position
  and its reference to the source instance from the volume's affine), so viewers show them
  on the right slices; empty frames are left out.
* A SEG necessarily copies the patient and study identifiers (name, ID, birth date, sex,
  study UID, accession number...) from the source images: that is how a PACS files it with
  the study. :func:`write_seg` refuses unless ``allow_identifiers=True``; every other
  segviewer export stays free of them.

Reading (:func:`read_seg`)
--------------------------
Any SEG (segviewer's or another tool's: dcmqi, 3D Slicer, highdicom...) is read with
highdicom as a volume in patient coordinates and placed on the image grid by its geometry:
axes permuted, flipped, cropped or padded to the image's voxels (never resampled); a SEG
whose frames do not lie on the image's voxel grid is refused with the reason. ``BINARY``
segments become a label map (label = segment number; overlapping voxels are reported and get
the higher segment number); ``FRACTIONAL`` segments become one probability channel per
segment. :func:`seg_class_table` gives the segment labels and colours as a class table.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.classes import ClassTable
from segviewer.core.types import SegviewerError, Volume
from segviewer.io.atomic import atomic_path
from segviewer.io.common import check_input_file, record_warnings

__all__ = [
    "DEFAULT_CATEGORY",
    "DEFAULT_TYPE",
    "IDENTIFIER_NOTICE",
    "SegRead",
    "is_dicom_seg",
    "property_codes",
    "read_seg",
    "seg_class_table",
    "seg_unavailable",
    "source_instances",
    "write_seg",
]

#: (code value, coding scheme, meaning) used when a class name is in no context group.
DEFAULT_CATEGORY = ("85756007", "SCT", "Tissue")
DEFAULT_TYPE = ("85756007", "SCT", "Tissue")

#: One sentence for the dialog, the CLI and the README.
IDENTIFIER_NOTICE = (
    "A DICOM SEG carries the study's patient and study identifiers (patient name, ID, birth "
    "date, sex, study UID, accession number), copied from the source images, so that a PACS "
    "files it with the study"
)

_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_POSITION_TOL_MM = 0.01
_SYNONYMS = (
    ("grey", "gray"),
    ("tumour", "tumor"),
    ("oedema", "edema"),
    ("haemorrhage", "hemorrhage"),
)
_ABBREVIATIONS = {"csf": "cerebrospinalfluid", "wm": "whitematter", "gm": "graymatter"}


def _norm(name: str) -> str:
    text = name.casefold()
    for uk, us in _SYNONYMS:
        text = text.replace(uk, us)
    text = re.sub(r"[^a-z0-9]", "", text)
    return _ABBREVIATIONS.get(text, text)


def property_codes(name: str) -> tuple[tuple[str, str, str], tuple[str, str, str], str]:
    """Segmented property category and type for a class name.

    Returns
    -------
    (category, type, source)
        Each code as ``(value, scheme, meaning)``; ``source`` says where it came from
        (``"CID 7151"``... or ``"default"``).
    """
    from pydicom.sr.codedict import codes

    key = _norm(name)
    groups = (
        (codes.cid7159, codes.cid7150.MorphologicallyAbnormalStructure, "CID 7159"),
        (codes.cid7166, codes.cid7150.Tissue, "CID 7166"),
        (codes.cid7151, codes.cid7150.AnatomicalStructure, "CID 7151"),
    )
    if key:
        for group, category, cid in groups:
            for keyword in group.dir():
                code = getattr(group, keyword)
                if _norm(keyword) == key or _norm(str(code.meaning)) == key:
                    cat = (str(category.value), str(category.scheme_designator), category.meaning)
                    typ = (str(code.value), str(code.scheme_designator), str(code.meaning))
                    return cat, typ, cid
    return DEFAULT_CATEGORY, DEFAULT_TYPE, "default"


def is_dicom_seg(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a DICOM file of the Segmentation Storage SOP class (header only)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    if not p.is_file():
        return False
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError):
        return False
    return str(ds.get("SOPClassUID", "")) == _SEG_SOP_CLASS


# --------------------------------------------------------------------------------------------
# source instances


def seg_unavailable(volume: Volume) -> str | None:
    """Why no SEG can be exported for this image (a dialog's disabled option says it), or None.

    Cheap (no file access); :func:`source_instances` makes the full check before writing.
    """
    if volume.format != "dicom":
        return (
            f"a DICOM SEG refers to the DICOM images it segments; this image was read from "
            f"{volume.format}"
        )
    if not volume.metadata.get("series_uid") and not Path(volume.source).is_file():
        return "the DICOM image has no series UID to reference"
    return None


def _lps_affine(volume: Volume) -> np.ndarray:
    return _LPS_TO_RAS @ np.asarray(volume.affine, dtype=np.float64)


def source_instances(volume: Volume) -> list[Any]:
    """The DICOM headers (no pixel data) of the instances the image was read from.

    A series folder gives one dataset per slice, matched to the slice by position (the
    files' ``ImagePositionPatient`` against the image's affine) and, where several volumes
    share the positions, by the image's ``frame``; a multi-frame file gives itself.

    Raises
    ------
    SegviewerError
        The image did not come from DICOM, or its files are gone or changed.
    """
    import pydicom

    if volume.format != "dicom":
        raise SegviewerError(
            f"a DICOM SEG refers to the DICOM images it segments, but this image was read "
            f"from {volume.format} ({volume.source}); open the DICOM series to export a SEG"
        )
    src = Path(volume.source)
    uid = volume.metadata.get("series_uid")
    if src.is_file():
        files = [src]
    elif src.is_dir():
        files = sorted(p for p in src.rglob("*") if p.is_file())
    else:
        raise SegviewerError(
            f"{src}: the DICOM images are no longer there; a SEG must reference them, "
            "reopen the series"
        )
    heads = []
    caught: list[str] = []
    with record_warnings(caught):
        for p in files:
            try:
                ds = pydicom.dcmread(p, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - any unreadable file is just not part of it
                continue
            if "SOPInstanceUID" not in ds or "Rows" not in ds:
                continue
            if uid is not None and str(ds.get("SeriesInstanceUID", "")) != str(uid):
                continue
            heads.append(ds)
    if not heads:
        raise SegviewerError(
            f"{src}: no DICOM image of series {uid} found any more; reopen the series"
        )
    if len(heads) == 1 and int(heads[0].get("NumberOfFrames", 1) or 1) > 1:
        return heads
    if len(heads) == 1 and volume.shape[0] == 1:
        return heads
    aff = _lps_affine(volume)
    frame = int(volume.metadata.get("frame", 0) or 0)
    out = []
    for k in range(volume.shape[0]):
        want = (aff @ np.array([k, 0.0, 0.0, 1.0]))[:3]
        here = [
            ds
            for ds in heads
            if "ImagePositionPatient" in ds
            and np.linalg.norm(np.asarray(ds.ImagePositionPatient, float) - want) < _POSITION_TOL_MM
        ]
        if not here:
            raise SegviewerError(
                f"{src}: no file of the series lies at slice {k} (position {want.round(2)} mm); "
                "the series changed since it was opened, reopen it"
            )
        here.sort(
            key=lambda d: (
                float(d.get("TemporalPositionIdentifier", 0) or 0),
                float(d.get("EchoNumbers", 0) or 0),
                float(d.get("AcquisitionNumber", 0) or 0),
                float(d.get("InstanceNumber", 0) or 0),
            )
        )
        out.append(here[min(frame, len(here) - 1)])
    return out


# --------------------------------------------------------------------------------------------
# writing


def _coded(code: Sequence[str]) -> Any:
    from highdicom.sr import CodedConcept

    value, scheme, meaning = (str(c) for c in code)
    return CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _cielab(rgb: Sequence[int]) -> Any:
    from highdicom.color import CIELabColor

    r, g, b = (int(v) for v in rgb)
    return CIELabColor.from_rgb(r, g, b)


def _algorithm(provenance: Mapping[str, Any] | None, prediction_source: str | None) -> Any:
    from highdicom import AlgorithmIdentificationSequence
    from pydicom.sr.codedict import codes

    from segviewer._version import __version__

    params: dict[str, str] = {}
    name = "segviewer"
    model = (provenance or {}).get("model") if provenance else None
    if isinstance(model, Mapping) and model.get("path"):
        model_file = Path(str(model["path"])).name
        name = f"segviewer ({model_file})"
        params["model_file"] = model_file
        if model.get("sha256"):
            params["model_sha256"] = str(model["sha256"])
        device = (provenance or {}).get("device")
        if device:
            params["device"] = str(device)
    elif prediction_source:
        params["prediction_file"] = Path(prediction_source).name
    return AlgorithmIdentificationSequence(
        name=name[:64],
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
        parameters=params or None,
    )


def _rgb(color: Sequence[Any]) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in color)
    return (r, g, b)


@dataclass(frozen=True)
class _Segment:
    index: int
    name: str
    color: tuple[int, int, int]


def write_seg(
    volume: Volume,
    masks: Iterable[np.ndarray],
    table: Any,
    classes: Sequence[int],
    path: str | os.PathLike[str],
    *,
    allow_identifiers: bool,
    fractional: bool = False,
    provenance: Mapping[str, Any] | None = None,
    prediction_source: str | None = None,
    codes: Mapping[int, tuple[Sequence[str], Sequence[str]]] | None = None,
    force: bool = False,
    sources: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Write one DICOM SEG for ``classes`` of a DICOM image.

    Parameters
    ----------
    volume
        The image, read from DICOM (``volume.format == "dicom"``).
    masks
        One array per class in ``classes``, each ``volume.shape``: 0/1 masks (``BINARY``)
        or probabilities in [0, 1] (``fractional=True``).
    table
        The class table (names, colours).
    classes
        Class indices; segment ``i + 1`` is ``classes[i]``.
    path
        Output file (written atomically).
    allow_identifiers
        Must be True: the SEG copies the patient and study identifiers (see
        :data:`IDENTIFIER_NOTICE`).
    fractional
        ``FRACTIONAL`` (probability) instead of ``BINARY``.
    provenance
        The model run's provenance (``model.path``, ``model.sha256``, ``device``), or None.
    prediction_source
        Where the prediction came from when no model ran (recorded by file name).
    codes
        Per class index ``(category, type)``, each ``(value, scheme, meaning)``, overriding
        the name lookup of :func:`property_codes`.
    force
        Overwrite an existing file.
    sources
        The source headers (default: :func:`source_instances`).

    Returns
    -------
    dict
        What was written, for the manifest: ``segmentation_type``, ``segments`` (number,
        class, label, category, type, code source), ``series_instance_uid``,
        ``sop_instance_uid``, ``referenced_instances``. Identifiers are not in it.
    """
    import highdicom as hd
    from pydicom.uid import generate_uid

    from segviewer._version import __version__

    if not allow_identifiers:
        raise SegviewerError(
            f"{IDENTIFIER_NOTICE}; confirm that this is wanted (--allow-identifiers, or the "
            "export dialog's identifiers checkbox) or choose another format"
        )
    if not classes:
        raise SegviewerError("a DICOM SEG needs at least one class; choose the classes to export")
    src = list(sources) if sources is not None else source_instances(volume)
    arrays = [np.asarray(m) for m in masks]
    if len(arrays) != len(classes):
        raise SegviewerError(f"internal: {len(arrays)} masks for {len(classes)} classes")
    for a in arrays:
        if tuple(a.shape) != tuple(volume.shape):
            raise SegviewerError(
                f"internal: a mask of shape {a.shape} for an image of shape {volume.shape}"
            )
    segs = [_Segment(int(k), str(table[int(k)].name), _rgb(table[int(k)].color)) for k in classes]
    table_codes = {int(k): table[int(k)].codes for k in classes}
    algorithm = _algorithm(provenance, prediction_source)
    descriptions = []
    seg_info = []
    for number, s in enumerate(segs, start=1):
        if codes and s.index in codes:
            cat, typ = (tuple(str(v) for v in c) for c in codes[s.index])
            origin = "given"
        elif (known := table_codes.get(s.index)) is not None:
            # the class table says what the class is (a SEG's segments, opened here):
            # kept as they came, not looked up again by name
            cat, typ = known
            origin = "class table"
        else:
            cat, typ, origin = property_codes(s.name)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=s.name[:64],
                segmented_property_category=_coded(cat),
                segmented_property_type=_coded(typ),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                tracking_uid=generate_uid(),
                tracking_id=f"segviewer class {s.index}: {s.name}"[:64],
                display_color=_cielab(s.color),
            )
        )
        seg_info.append(
            {
                "segment_number": number,
                "class_index": s.index,
                "label": s.name,
                "category": list(cat),
                "type": list(typ),
                "codes_from": origin,
            }
        )
    if fractional:
        stack = np.stack([np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0) for a in arrays], -1)
        stack = stack.astype(np.float32)
        seg_type = hd.seg.SegmentationTypeValues.FRACTIONAL
    else:
        stack = np.stack([a != 0 for a in arrays], axis=-1).astype(np.uint8)
        seg_type = hd.seg.SegmentationTypeValues.BINARY
    for_uid = str(src[0].get("FrameOfReferenceUID", "")) or None
    hvol = hd.Volume(
        stack,
        affine=_lps_affine(volume),
        coordinate_system="PATIENT",
        frame_of_reference_uid=for_uid,
        channels={"SegmentNumber": list(range(1, len(segs) + 1))},
    )
    series_number = int(volume.metadata.get("series_number", 0) or 0) + 1000
    caught: list[str] = []
    try:
        with record_warnings(caught):
            seg = hd.seg.Segmentation(
                source_images=src,
                pixel_array=hvol,
                segmentation_type=seg_type,
                segment_descriptions=descriptions,
                series_instance_uid=generate_uid(),
                series_number=series_number,
                sop_instance_uid=generate_uid(),
                instance_number=1,
                manufacturer="segviewer",
                manufacturer_model_name="segviewer",
                software_versions=str(__version__),
                device_serial_number="none",
                fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
                max_fractional_value=255,
                content_description="segviewer segmentation"
                + (" (probabilities)" if fractional else ""),
                content_label="SEGVIEWER",
                content_creator_name="segviewer",
                series_description=(
                    "segviewer " + ("probabilities" if fractional else "segmentation")
                ),
            )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise SegviewerError(
            f"cannot build a DICOM SEG for {volume.source}: {exc}; the source images lack "
            "attributes a SEG needs"
        ) from exc
    target = Path(path)
    with atomic_path(target, force=force) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return {
        "segmentation_type": seg_type.value,
        "fractional_type": "PROBABILITY" if fractional else None,
        "segments": seg_info,
        "algorithm": {"name": str(algorithm[0].AlgorithmName), "version": str(__version__)},
        "series_instance_uid": str(seg.SeriesInstanceUID),
        "sop_instance_uid": str(seg.SOPInstanceUID),
        "referenced_instances": len(src),
        "frames": int(seg.NumberOfFrames),
        "contains_identifiers": True,
    }


# --------------------------------------------------------------------------------------------
# reading


@dataclass(frozen=True)
class SegRead:
    """A SEG placed on an image grid.

    Attributes
    ----------
    data
        ``BINARY``: ``(a0, a1, a2)`` label map (uint8 / uint16), label = segment number.
        ``FRACTIONAL``: ``(S, a0, a1, a2)`` float32 probabilities per segment.
    fractional
        Whether the SEG is ``FRACTIONAL``.
    segments
        ``(segment number, label, rgb)`` per segment.
    notes
        Sentences for the user: who made it, how it was placed, overlaps.
    """

    data: np.ndarray
    fractional: bool
    segments: tuple[tuple[int, str, tuple[int, int, int]], ...]
    notes: tuple[str, ...]


def _open_seg(path: Path) -> Any:
    import highdicom as hd

    check_input_file(path)
    caught: list[str] = []
    try:
        with record_warnings(caught):
            return hd.seg.segread(path)
    except Exception as exc:  # noqa: BLE001 - pydicom/highdicom raise many types on bad files
        raise SegviewerError(
            f"{path}: not a readable DICOM SEG ({type(exc).__name__}: {exc}); check that the "
            "file is a complete Segmentation object"
        ) from None


def _segment_rgb(desc: Any, number: int) -> tuple[int, int, int]:
    from segviewer.core.classes import default_color

    lab = desc.get("RecommendedDisplayCIELabValue")
    if lab is not None:
        try:
            from highdicom.color import CIELabColor

            return _rgb(CIELabColor.from_dicom_value(list(lab)).to_rgb())
        except Exception:  # noqa: BLE001 - a bad colour only costs the colour
            pass
    return _rgb(default_color(number))


def _segments(seg: Any) -> list[tuple[int, str, tuple[int, int, int]]]:
    out = []
    for desc in seg.SegmentSequence:
        number = int(desc.SegmentNumber)
        label = str(desc.get("SegmentLabel", "") or f"segment {number}").strip()
        out.append((number, label or f"segment {number}", _segment_rgb(desc, number)))
    return out


def seg_class_table(path: str | os.PathLike[str]) -> ClassTable:
    """Background plus one class per segment (label = segment number), named and coloured
    as the SEG's segment labels and recommended display colours (header only: the pixel data
    is not read)."""
    import pydicom

    p = Path(path)
    check_input_file(p)
    caught: list[str] = []
    try:
        with record_warnings(caught):
            seg = pydicom.dcmread(p, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad files
        raise SegviewerError(
            f"{p}: not a readable DICOM file ({type(exc).__name__}: {exc})"
        ) from None
    if str(seg.get("SOPClassUID", "")) != _SEG_SOP_CLASS or "SegmentSequence" not in seg:
        raise SegviewerError(f"{p}: not a DICOM Segmentation object (SEG)")
    entries: list[tuple[int, str, Sequence[int]]] = [(0, "background", (0, 0, 0))]
    seen: set[str] = {"background"}
    for number, label, rgb in _segments(seg):
        name = label if label.casefold() not in seen else f"{label} ({number})"
        seen.add(name.casefold())
        entries.append((number, name, rgb))
    table, _warnings = ClassTable.from_entries(entries, source=str(path))
    return table.with_codes(_segment_codes(seg))


def _code_of(item: Any) -> tuple[str, str, str] | None:
    try:
        c = item[0]
        out = (str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning))
    except (AttributeError, IndexError, TypeError, KeyError):
        return None
    return out if all(v.strip() for v in out) else None


def _segment_codes(
    seg: Any,
) -> dict[int, tuple[tuple[str, str, str], tuple[str, str, str]]]:
    """Segment number -> its segmented property (category, type) codes, where both are
    complete (a SEG with a damaged code keeps the name lookup for that segment)."""
    out = {}
    for desc in seg.SegmentSequence:
        cat = _code_of(desc.get("SegmentedPropertyCategoryCodeSequence"))
        typ = _code_of(desc.get("SegmentedPropertyTypeCodeSequence"))
        if cat is not None and typ is not None:
            out[int(desc.SegmentNumber)] = (cat, typ)
    return out


def read_seg(
    path: str | os.PathLike[str],
    image_shape: Sequence[int],
    image_affine: np.ndarray,
    image_metadata: Mapping[str, Any] | None = None,
) -> SegRead:
    """Read a SEG and place it on the image grid.

    Parameters
    ----------
    path
        A DICOM Segmentation file.
    image_shape, image_affine
        The image's ``Volume.shape`` and ``Volume.affine`` (RAS+). The SEG's frames are
        matched to the image's voxels in patient coordinates: axes permuted, flipped, cropped
        or padded, never resampled.
    image_metadata
        ``Volume.metadata`` of the image. When it and the SEG both name their frame of
        reference, they must be the same: patient coordinates of another frame (another
        session, another registration) mean other places, and a SEG of the same matrix could
        match the grid by coincidence and land on the wrong anatomy. A SEG made on another
        series of the same frame (a T1 segmentation shown on the T2) is placed, with a note.

    Raises
    ------
    SegviewerError
        Not a SEG, a SEG of another frame of reference, a SEG whose frames do not lie on the
        image's voxel grid, no segments.
    """
    import highdicom as hd

    p = Path(path)
    seg = _open_seg(p)
    segments = _segments(seg)
    if not segments:
        raise SegviewerError(f"{p}: the SEG has no segments")
    refs = seg.get("ReferencedSeriesSequence")
    ref_series = str(refs[0].get("SeriesInstanceUID", "")) if refs else ""
    seg_for = str(seg.get("FrameOfReferenceUID", "") or "")
    meta = image_metadata or {}
    img_for = str(meta.get("frame_of_reference_uid", "") or "")
    img_series = str(meta.get("series_uid", "") or "")
    if seg_for and img_for and seg_for != img_for:
        raise SegviewerError(
            f"{p}: the SEG was made in another frame of reference ({seg_for}) than the "
            f"image's ({img_for}): its patient coordinates belong to another scan session or "
            "registration, so placing it by geometry could put it on the wrong anatomy; open "
            "the series it references"
            + (f" (SeriesInstanceUID {ref_series})" if ref_series else "")
        )
    seg_type = str(seg.SegmentationType)
    fractional = seg_type == "FRACTIONAL"
    maker = " ".join(
        str(v) for v in (seg.get("Manufacturer", ""), seg.get("SoftwareVersions", "")) if v
    )
    notes = [
        f"DICOM SEG ({seg_type}, {len(segments)} segments"
        + (f", made by {maker}" if maker else "")
        + "): "
        + ", ".join(f"{n} {label!r}" for n, label, _ in segments)
        + "."
    ]
    img = tuple(int(s) for s in image_shape)
    caught: list[str] = []
    try:
        with record_warnings(caught):
            vol = seg.get_volume(
                combine_segments=False,
                rescale_fractional=True,
                dtype=np.float32 if fractional else np.uint8,
            )
    except (RuntimeError, ValueError) as exc:
        raise SegviewerError(
            f"{p}: the SEG's frames do not form a regular volume ({exc}); segviewer places a "
            "SEG on the image by its geometry"
        ) from None
    lps = _LPS_TO_RAS @ np.asarray(image_affine, dtype=np.float64)
    target = hd.Volume(np.zeros(img, dtype=np.uint8), affine=lps, coordinate_system="PATIENT")
    arr = np.asarray(vol.array)
    if arr.ndim == 3:
        arr = arr[..., None]
    seg_affine = np.array(vol.affine, dtype=np.float64)
    if arr.shape[0] == 1:
        # one plane: the spacing between slices is undefined in the SEG, so take the image's
        # along the axis normal to the plane (else no integer match is possible)
        normal = seg_affine[:3, 0] / max(float(np.linalg.norm(seg_affine[:3, 0])), 1e-12)
        for ax in range(3):
            col = lps[:3, ax]
            cos = float(normal @ col) / max(float(np.linalg.norm(col)), 1e-12)
            if abs(abs(cos) - 1.0) < 1e-3:
                seg_affine[:3, 0] = col * np.sign(cos)
                break
    moved = hd.Volume(
        arr,
        affine=seg_affine,
        coordinate_system="PATIENT",
        channels={"SegmentNumber": [n for n, _, _ in segments][: arr.shape[-1]]},
    )
    try:
        placed = moved.match_geometry(target, tol=1e-3)
    except RuntimeError as exc:
        raise SegviewerError(
            f"{p}: the SEG's frames do not lie on the image's voxel grid ({exc}); was it made "
            "for another series or resampled? Open the series it references"
        ) from None
    stack = np.asarray(placed.array)  # (a0, a1, a2, S)
    if refs:
        notes.append(
            f"Placed on the image grid by its geometry (frame of reference "
            f"{seg_for or '?'}"
            + (", the image's too" if seg_for and seg_for == img_for else "")
            + f"); it references series {ref_series or '?'}."
        )
    if ref_series and img_series and ref_series != img_series:
        notes.append(
            f"Note: the SEG was made on another series ({ref_series}) than the one shown "
            f"({img_series}), in the same frame of reference"
            + ("" if img_for else " as far as the image says (its frame is unknown)")
            + "."
        )
    if fractional:
        data = np.ascontiguousarray(np.moveaxis(stack, -1, 0).astype(np.float32))
        return SegRead(data, True, tuple(segments), tuple(notes))
    numbers = [n for n, _, _ in segments]
    dtype = np.uint8 if max(numbers) < 254 else np.uint16
    labels = np.zeros(img, dtype=dtype)
    on = stack != 0
    overlap = int(np.count_nonzero(on.sum(axis=-1) > 1))
    for i, n in enumerate(numbers[: stack.shape[-1]]):
        labels[on[..., i]] = n
    if overlap:
        notes.append(
            f"Warning: segments overlap at {overlap} voxels; the label map shows the higher "
            "segment number there."
        )
    return SegRead(labels, False, tuple(segments), tuple(notes))
