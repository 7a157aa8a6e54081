"""Reading a model's prediction from a file and deciding what its values mean.

Sources
-------
* ``.npy``: memory-mapped (``mmap_mode="r"``, ``allow_pickle=False``); a multi-GB file opens
  without being read and every view stays a view of the map. Object (pickled) arrays are
  refused: unpickling can run code.
* ``.npz``: the only array; else the one array whose shape fits the image; else the one
  named ``logits``, ``probabilities``, ``softmax``, ``labels`` or ``prediction``; when
  several fit, the error lists them and ``FILE.npz:NAME`` picks one (read into memory: zip
  members cannot be memory-mapped). nnU-Net's ``--save_probabilities`` output (a
  ``probabilities`` or v1 ``softmax`` member beside a ``.pkl`` of the same name) is
  ``(C, Z, Y, X)``, SimpleITK's axis order: it is mapped onto the NIfTI image ``(X, Y, Z)``
  by reversing the spatial axes where the sizes allow it, without opening the pickle
  (unpickling can run code).
* HDF5 (``.h5``, ``.hdf5``, via h5py): one dataset per case; the only dataset, or the one
  that fits the image, or ``FILE.h5:NAME`` (a path inside the file). A Keras model file is
  refused with a pointer to the model dialog.
* ``np.save`` of a TensorFlow tensor: an ordinary ``.npy``; bfloat16 tensors (stored by
  NumPy as 2-byte void ``<V2``) are widened to float32 exactly.
* NIfTI (``.nii``, ``.nii.gz``): 4-D with the class axis last, a 5-D ``(X, Y, Z, 1, C)``
  vector image, or a 3-D label map; uncompressed files without scaling are memory-mapped,
  scaled ones (``scl_slope``, e.g. probabilities stored as uint8 / 255) are read as float32.
* NRRD (``.nrrd``, ``.nhdr``): as pynrrd gives it (image axis order, like the image reader).
* PNG / TIFF label images: a 2-D image is a label map for a ``(1, H, W)`` image (its rows
  and columns are the image's); a multi-page TIFF is a stack ``(slices, H, W)``.
* DICOM SEG (``.dcm``, or a DICOM file without extension): placed on the image grid by its
  geometry (:func:`segviewer.io.dicomseg.read_seg`); BINARY segments are a label map
  (label = segment number), FRACTIONAL ones one probability channel per segment.

Kind detection (the reasoning is kept in ``Prediction.notes``)
-------------------------------------------------------------
1. A ``kind`` given by the user (or a model card) wins; ``multilabel`` is never guessed.
2. Integer (or boolean) arrays are label maps (``labels``): no class axis. Negative labels or
   more than 65534 classes are errors; a sample with over 100 distinct values is flagged as
   probably an intensity image. An integer array that only fits with a class axis (one-hot
   masks) is converted to float32; uint8 / uint16 channels summing to 255 / 65535 are
   probabilities stored as whole numbers and are scaled to [0, 1].
3. A float array without a class axis is a label map if its values are whole numbers, else
   one sigmoid channel (a binary probability or logit map).
4. One channel: ``sigmoid``; values in [0, 1] are probabilities, otherwise logits.
5. Several channels whose values are non-negative and sum to 1 (within 0.02, allowing for
   8-bit quantisation) over the class axis: ``probabilities``; otherwise ``logits``.
   Values are checked on a strided sample of about 32 points per axis, never the whole file;
   NaN / inf in the sample are reported (``core.masks`` counts them all when computing).

Geometry
--------
The layout is found by :func:`segviewer.core.layout.detect_layout`. A prediction whose
spatial size differs from the image's is an error naming both shapes, unless ``resample=True``:
then it is put onto the image grid by :mod:`segviewer.core.resample`, in world space through
both affines when the file (NIfTI sform/qform, NRRD space directions) and the image carry
geometry (its own axis order is then kept, never permuted by size), else by shape; nearest
neighbour for labels, linear per class for logits and probabilities, slab by slab.
``Prediction.resampling`` records the grids, the method and how much of the image the
prediction covers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import mmap
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.layout import (
    Layout,
    ShapeMismatch,
    describe_layout,
    detect_layout,
    fitting_layouts,
    parse_layout,
)
from segviewer.core.masks import iter_labels
from segviewer.core.progress import run_to_end
from segviewer.core.resample import (
    background_fill,
    coverage_outside,
    iter_resample,
    same_grid,
    shape_matrix,
    world_matrix,
)
from segviewer.core.resample import record as resample_record
from segviewer.core.types import (
    STACK_AFFINE,
    MaskSettings,
    Prediction,
    PredictionKind,
    Resampling,
    SegviewerError,
)
from segviewer.io.arrays import (
    READ_ERRORS,
    nifti_data_file,
    nifti_scaling,
    npz_member,
    open_nifti,
    open_npy,
    open_pil,
    open_tiff,
    pil_array,
    pil_dtype,
    read_gzip_voxels,
    read_npy_header,
    read_npz,
    read_nrrd,
    read_nrrd_header,
    tiff_series_array,
)
from segviewer.io.common import check_alloc, check_input_file, compound_suffix
from segviewer.io.geometry import FileGeometry, nifti_geometry, nrrd_geometry

__all__ = [
    "PredictionChoices",
    "prediction_choices",
    "load_prediction",
    "prediction_from_array",
    "describe_prediction",
    "load_reference",
    "PREDICTION_FORMATS",
    "NPZ_KEYS",
]

#: Human-readable list for "unsupported format" messages and file dialogs.
PREDICTION_FORMATS = (
    "NumPy (.npy, .npz), NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), PNG or TIFF label "
    "images (.png, .tif, .tiff), DICOM SEG (.dcm), HDF5 (.h5, .hdf5)"
)
#: Array names looked for in a multi-array ``.npz``, in this order.
NPZ_KEYS = ("logits", "probabilities", "softmax", "labels", "prediction")

# The kind / range sample (_sample): runs of adjacent voxels, at most this many runs and
# about this many 4 KB pages read in all (2 MB; at least 4 runs).
_SAMPLE_RUN = 128
_SAMPLE_MAX_RUNS = 64
_SAMPLE_PAGES = 512
_PROB_TOL = 0.02  # sum-to-one tolerance; 8-bit probabilities are off by up to ~C/255 / 2
_MAX_LABELS = 65534
_MANY_LABELS = 100  # distinct values in a label-map sample that suggest an intensity image


# --------------------------------------------------------------------------------------------
# public


def load_prediction(
    path: str | os.PathLike[str],
    image_shape: Sequence[int],
    *,
    layout: str | None = None,
    kind: PredictionKind | str | None = None,
    n_classes_hint: int | None = None,
    resample: bool = False,
    image_affine: np.ndarray | None = None,
    image_geometry: bool | None = None,
    image_metadata: Mapping[str, Any] | None = None,
) -> Prediction:
    """Read a prediction file and align it to an image.

    Parameters
    ----------
    path
        A file in one of :data:`PREDICTION_FORMATS`.
    image_shape
        ``Volume.shape`` of the image it belongs to (image axes 0, 1, 2).
    layout
        Explicit layout string (``"NDHWC"``, ``"CHW"``, ``"ZYXC"``...), else detected.
    kind
        ``"logits"``, ``"probabilities"``, ``"sigmoid"``, ``"multilabel"`` or ``"labels"``
        to override detection.
    n_classes_hint
        Number of classes a class table or model card declares; a label map gets at least
        that many classes (its largest label may be absent from this case).
    resample
        Put a prediction of another grid onto the image grid instead of failing: in world
        space through both affines when the file (NIfTI, NRRD) and the image carry geometry,
        else by shape (see :mod:`segviewer.core.resample`). ``Prediction.resampling`` records
        what was done.
    image_affine
        ``Volume.affine`` of the image. When given and the file carries its own geometry
        (NIfTI), a difference is reported in the notes: without ``resample`` the prediction is
        shown voxel for voxel on the image grid, so a flipped or shifted affine means a
        misplaced overlay.
    image_geometry
        Whether ``image_affine`` is a real geometry
        (:func:`segviewer.core.orientation.orientation_known`); None guesses it (the stack
        affine of files without geometry is not).
    image_metadata
        ``Volume.metadata`` of the image: a DICOM SEG made in another frame of reference
        (``frame_of_reference_uid``) is refused, and one made on another series of the same
        frame is noted.

    Returns
    -------
    Prediction
        ``data`` is the array as read (a read-only memory map for ``.npy`` and uncompressed
        unscaled NIfTI) or the resampled array; ``channels_first()`` is a zero-copy view
        ``(C, a0, a1, a2)`` or ``(a0, a1, a2)``.

    Raises
    ------
    SegviewerError
        Unreadable or unsupported file, pickled data, shapes that do not fit the image,
        negative labels, too many classes, a kind that contradicts the data.
    """
    p, member = split_member(path)
    check_input_file(p)
    if p.is_dir():
        raise SegviewerError(f"{p} is a folder; choose a prediction file ({PREDICTION_FORMATS})")
    if _is_seg(p):
        return _load_dicom_seg(p, image_shape, kind, n_classes_hint, image_affine, image_metadata)
    img = tuple(int(s) for s in image_shape)
    raw, fmt, notes, convention = _read_for_image(p, member, img)
    if image_affine is not None and fmt == "nifti" and not resample:
        notes.extend(_affine_notes(open_nifti(p).affine, np.asarray(image_affine, float)))
    geometry = _file_geometry(p, fmt, raw.ndim) if resample else None
    explicit = layout if layout is not None else convention
    if explicit is None and fmt in ("png", "tiff"):
        # raster files hold (rows, cols) or (pages, rows, cols) exactly as the image reader
        # does, so square slices are not ambiguous here
        if raw.ndim == 2 and len(img) == 3 and img[0] == 1 and raw.shape == img[1:]:
            explicit = "HW"
        elif raw.ndim == 3 and raw.shape == img:
            explicit = "DHW"
        if explicit is not None:
            notes.append(f"{fmt.upper()} rows and columns are the image's rows and columns")
    return prediction_from_array(
        raw,
        image_shape,
        layout=explicit,
        kind=kind,
        n_classes_hint=n_classes_hint,
        resample=resample,
        source=str(p),
        notes=notes,
        source_affine=None if geometry is None else geometry.affine,
        source_spatial_axes=None if geometry is None else geometry.spatial_axes,
        no_geometry_reason=f"the prediction file ({fmt}) carries no geometry"
        if geometry is None
        else f"the prediction file: {geometry.reason}",
        image_affine=image_affine,
        image_geometry=image_geometry,
    )


def load_reference(
    path: str | os.PathLike[str],
    image_shape: Sequence[int],
    *,
    layout: str | None = None,
    n_classes_hint: int | None = None,
    image_affine: np.ndarray | None = None,
    notes: list[str] | None = None,
    resample: bool = False,
    image_metadata: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Read a reference segmentation (ground truth) as a label map on the image grid.

    Parameters
    ----------
    path
        A file in one of :data:`PREDICTION_FORMATS`: a label map (stored as it is) or
        probabilities / logits (their argmax is the reference; a single sigmoid channel is
        thresholded at 0.5).
    image_shape
        ``Volume.shape`` of the image (image axes 0, 1, 2).
    layout
        Explicit layout string, as for :func:`load_prediction`.
    n_classes_hint
        Number of classes of the class table; the label dtype fits at least that many.
    image_affine
        ``Volume.affine`` of the image; with ``notes``, a NIfTI reference whose geometry
        differs (mirrored axes, shifted origin, no geometry) is reported: it is compared
        voxel for voxel, so a mirrored reference gives meaningless scores.
    notes
        A list that receives the sentences about how the reference was read (kind, layout,
        geometry warnings), for the user.
    resample
        Put a reference of another grid onto the image grid (world space when both carry
        geometry): nearest neighbour for a label map, linear per class then argmax for
        probabilities. Without it a reference of another grid is refused.
    image_metadata
        ``Volume.metadata`` of the image, as for :func:`load_prediction` (DICOM SEG frame of
        reference check).

    Returns
    -------
    numpy.ndarray
        ``(a0, a1, a2)`` label map in image-axis order, ``uint8`` (``uint16`` beyond 253
        classes), a new in-memory array (never a memory map of the file). Voxels whose
        probabilities are NaN get the reserved INVALID label, which comparisons leave out.

    Raises
    ------
    SegviewerError
        Everything :func:`load_prediction` refuses, with "reference" in the message; a
        reference of another grid is refused unless ``resample``.
    """
    try:
        pred = load_prediction(
            path,
            image_shape,
            layout=layout,
            n_classes_hint=n_classes_hint,
            image_affine=image_affine,
            resample=resample,
            image_metadata=image_metadata,
        )
    except SegviewerError as exc:
        msg = str(exc).replace(
            "use --resample to resample the prediction onto the image grid",
            "save it on the image's grid, or resample it (--resample; nearest neighbour)",
        )
        msg = msg.replace("prediction", "reference")
        raise SegviewerError(f"reference segmentation: {msg}") from None
    if notes is not None:
        for n in pred.notes:
            # the prediction's geometry sentences talk about display; a reference is scored
            n = n.replace(
                "shown voxel for voxel, the overlay may be",
                "compared voxel for voxel, its scores are meaningless if it is",
            )
            n = n.replace("it is shown voxel for voxel", "it is compared voxel for voxel")
            notes.append(n.replace("prediction", "reference"))
    return run_to_end(iter_labels(pred, MaskSettings())).labels


def prediction_from_array(
    raw: np.ndarray,
    image_shape: Sequence[int],
    *,
    layout: str | None = None,
    kind: PredictionKind | str | None = None,
    n_classes_hint: int | None = None,
    resample: bool = False,
    source: str = "<array>",
    notes: Sequence[str] = (),
    source_affine: np.ndarray | None = None,
    source_spatial_axes: Sequence[int] | None = None,
    image_affine: np.ndarray | None = None,
    image_geometry: bool | None = None,
    no_geometry_reason: str = "the prediction array carries no geometry",
) -> Prediction:
    """Align an in-memory (or memory-mapped) prediction array to an image.

    Same rules and parameters as :func:`load_prediction` (which calls it after reading the
    file); ``source`` names the array in messages, ``notes`` are prepended to the result's.
    The array is not copied unless it must be (non-native byte order, float label maps,
    resampling), and each such copy is mentioned in the notes.

    With ``resample``, ``source_affine`` (voxel index -> RAS+ mm of the array's spatial axes,
    ``source_spatial_axes`` of ``raw`` in that order; by default the axes a layout detection
    finds, in raw order) and ``image_affine`` place the prediction in world space; without
    them it is scaled by shape and ``no_geometry_reason`` says why.
    """
    what = source
    out_notes = list(notes)
    img = tuple(int(s) for s in image_shape)
    if len(img) != 3:
        raise SegviewerError(f"internal: image shape must have 3 axes, got {img}")
    requested = _parse_kind(kind)
    if raw.size == 0:
        raise SegviewerError(
            f"{what}: the prediction has the shape {tuple(raw.shape)}, with an axis of length 0 "
            "(no voxels or no classes); the file is empty or was saved wrongly"
        )
    raw = _numeric(raw, what, out_notes)
    is_int = raw.dtype.kind in "iu"

    if requested is None:
        has_cls: bool | None = False if is_int else None
    else:
        has_cls = requested is not PredictionKind.LABELS
    world = (
        resample
        and source_affine is not None
        and image_affine is not None
        and (image_geometry if image_geometry is not None else _has_geometry(image_affine))
    )
    geometry_layout = False
    if world and layout is None:
        # with geometry, the file's own axis order is the truth: never permute by size
        layout = _geometry_layout(raw.shape, source_spatial_axes, is_int, requested, img)
        geometry_layout = layout is not None
        if layout is not None and "C" in layout and is_int and requested is None:
            has_cls = True  # integer channels (one-hot masks) in the file's own axis order
    try:
        lay = _find_layout(raw.shape, img, layout, has_cls, resample, what)
    except SegviewerError:
        if not (is_int and requested is None and layout is None):
            raise
        # integer channels (one-hot masks, 8-bit probabilities without scaling): the label-map
        # reading did not fit, so try a class axis; otherwise report the shapes without a bias
        try:
            lay = _find_layout(raw.shape, img, None, True, resample, what)
        except SegviewerError:
            lay = _find_layout(raw.shape, img, None, None, resample, what)
    if is_int and lay.class_axis is not None:
        check_alloc(raw.shape, np.float32, what)
        out_notes.append(
            f"Integer values with a class axis ({raw.dtype.name}, e.g. one-hot masks): "
            "converted to float32 in memory."
        )
        top = float(np.iinfo(raw.dtype).max)
        raw = raw.astype(np.float32)
        is_int = False
        if requested is None and top in (255.0, 65535.0):
            # probabilities quantised to the integer range without a scale factor: each
            # channel sums to the dtype's maximum (within rounding of one unit per channel)
            sums = _sample(lay.apply(raw)).sum(axis=0, dtype=np.float64)
            if sums.size and bool(np.all(np.abs(sums - top) <= lay.n_channels)):
                raw *= np.float32(1.0 / top)
                out_notes.append(
                    f"The channels sum to {top:.0f}: probabilities stored as whole numbers, "
                    f"scaled by 1/{top:.0f}."
                )

    if lay.class_axis is None and not is_int:
        # a float map without a class axis: label values stored as float, or one sigmoid channel
        sample = _sample(lay.apply(raw)).astype(np.float64)
        finite = sample[np.isfinite(sample)]
        # the sample can miss the few fractional voxels of a mostly-empty probability map, so
        # a whole-number sample is confirmed on the whole array before choosing labels
        whole = finite.size > 0 and bool(np.all(finite == np.round(finite))) and _all_whole(raw)
        if requested is PredictionKind.LABELS or (requested is None and whole):
            raw = _float_labels_to_int(raw, what, out_notes)
            is_int = True
        else:
            raw = raw.reshape(raw.shape + (1,))
            lay = parse_layout(lay.name + "C", raw.shape, img, resample=resample)
            lay = dataclasses.replace(
                lay,
                note=f"Layout {lay.name}: a float map without a class axis whose values are not "
                "whole numbers is read as one sigmoid channel.",
            )
    if geometry_layout and lay.note.endswith("given explicitly"):
        lay = dataclasses.replace(
            lay,
            note=f"Layout {lay.name}: the file's own axis order (it carries geometry, so its "
            "axes are placed by its affine, not matched to the image by size).",
        )
    out_notes.append(lay.note)

    if is_int:
        pred_kind, n_classes, probs = _label_facts(
            raw, lay.apply(raw), n_classes_hint, what, out_notes
        )
    else:
        pred_kind, n_classes, probs = _channel_facts(
            lay.apply(raw), requested, n_classes_hint, what, out_notes
        )

    resampling = None
    if world:
        src_aff = _view_affine(np.asarray(source_affine, dtype=np.float64), lay)
        img_aff = np.asarray(image_affine, dtype=np.float64)
        if not same_grid(lay.spatial_shape, src_aff, img, img_aff):
            raw, lay, resampling = _resample(
                raw, lay, img, pred_kind, probs, what, out_notes, (src_aff, img_aff, "")
            )
    elif lay.spatial_shape != img:
        if source_affine is None or image_affine is None:
            reason = f"Scaled by shape: {no_geometry_reason}."
        else:
            reason = "Scaled by shape: the image carries no geometry."
        raw, lay, resampling = _resample(
            raw, lay, img, pred_kind, probs, what, out_notes, (None, None, reason)
        )
    data = lay.expand(raw)
    return Prediction(
        data=data,
        kind=pred_kind,
        layout=lay.expanded(),
        n_classes=n_classes,
        source=source,
        values_are_probabilities=probs,
        notes=tuple(n for n in out_notes if n),
        resampling=resampling,
    )


#: The kinds in words, for the window's choice (the value is what ``kind=`` takes).
KIND_WORDS: dict[str, str] = {
    "logits": "logits (softmax over the class axis)",
    "probabilities": "probabilities (sum to 1 over the class axis)",
    "sigmoid": "one sigmoid channel (binary foreground)",
    "multilabel": "independent sigmoid channels (overlapping classes)",
    "labels": "label map (integer class per voxel)",
}


@dataclasses.dataclass(frozen=True)
class PredictionChoices:
    """What the window's Open prediction offers for a file: detected values and alternatives.

    Attributes
    ----------
    raw_shape
        The array's shape as stored.
    layout, layout_words
        The detected layout string (``"ZCXY"``) and the same in words ("image axis 2 (189),
        classes (3), ..."); None / "" when nothing fits the image.
    layouts
        Every layout that fits the image's size exactly, ``(name, words)``, detected first.
    kind, kind_words
        The detected kind and its words (:data:`KIND_WORDS`).
    error
        Why nothing fits (empty when something does).
    resample_possible
        True only when no axis order fits exactly and one fits up to scale; the window offers
        resampling only then.
    geometry
        Whether the file carries its own geometry (then resampling is done in world space).
    """

    raw_shape: tuple[int, ...]
    layout: str | None
    layout_words: str
    layouts: tuple[tuple[str, str], ...]
    kind: str | None
    kind_words: str
    error: str = ""
    resample_possible: bool = False
    geometry: bool = False


def prediction_choices(
    path: str | os.PathLike[str],
    image_shape: Sequence[int],
    *,
    layout: str | None = None,
    kind: PredictionKind | str | None = None,
) -> PredictionChoices:
    """Detect a prediction file's layout and kind against an image, for the window's choice.

    Reads the file as :func:`load_prediction` does (memory-mapped where it can); nothing that
    fits is an answer too (``error``, ``resample_possible``), not an exception. Unreadable
    files still raise :class:`SegviewerError`.
    """
    p = Path(path)
    info = describe_prediction(p)
    raw_shape = tuple(int(v) for v in info["shape"])
    img = tuple(int(v) for v in image_shape)
    fmt = info["format"]
    geometry = False
    if fmt in ("nifti", "nrrd"):
        geo = _file_geometry(p, fmt, len(raw_shape))  # the header only
        geometry = geo is not None and geo.affine is not None

    def words(name: str) -> str:
        try:
            return describe_layout(parse_layout(name, raw_shape, img))
        except SegviewerError:
            return name

    fits = tuple((n, words(n)) for n in fitting_layouts(raw_shape, img))
    try:
        pred = load_prediction(p, img, layout=layout, kind=kind)
    except ShapeMismatch as exc:
        return PredictionChoices(
            raw_shape, None, "", fits, None, "", str(exc), exc.resample_possible, geometry
        )
    except SegviewerError as exc:
        return PredictionChoices(raw_shape, None, "", fits, None, "", str(exc), False, geometry)
    name = str(pred.layout.name)
    if pred.layout.raw_shape == raw_shape:
        lay_words = describe_layout(pred.layout)
    else:  # a float map read as one sigmoid channel gets a trailing axis
        lay_words = words(name) if len(name) == len(raw_shape) else name
    fits = tuple(sorted(fits, key=lambda f: f[0] != name))
    return PredictionChoices(
        raw_shape,
        name,
        lay_words,
        fits,
        pred.kind.value,
        KIND_WORDS[pred.kind.value],
        geometry=geometry,
    )


def describe_prediction(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Facts about a prediction file read from its header only (no image needed).

    Returns
    -------
    dict
        ``path``, ``format``, ``shape`` (as stored), ``dtype``, ``size_bytes`` (file),
        ``memory_mapped`` (whether :func:`load_prediction` maps it instead of reading it),
        ``values`` ("integer: a label map" or "float: logits, probabilities or sigmoid"),
        and per format ``arrays`` (.npz names, ``array`` the one used), ``affine`` and
        ``zooms`` (NIfTI), ``scaled`` (NIfTI slope/intercept), ``pages`` (TIFF).
    """
    p, member = split_member(path)
    check_input_file(p)
    fmt = _format_of(p)
    info: dict[str, Any] = {"path": str(p), "format": fmt, "size_bytes": p.stat().st_size}
    if fmt == "npy":
        header = read_npy_header(p)
        info.update(
            shape=header.shape, dtype=header.dtype.name, memory_mapped=header.dtype.isnative
        )
    elif fmt == "npz":
        member_info = npz_member(
            p, _pick_npz_prediction if member is None else (lambda _p, _n: str(member))
        )
        info.update(
            arrays=member_info.names,
            array=member_info.key,
            shape=member_info.header.shape,
            dtype=member_info.header.dtype.name,
            memory_mapped=False,
        )
    elif fmt == "nifti":
        img = open_nifti(p, mmap="r")
        slope, inter = nifti_scaling(img)
        scaled = (slope, inter) != (1.0, 0.0)
        info.update(
            shape=tuple(int(s) for s in img.shape),
            dtype=(np.dtype(np.float32) if scaled else img.get_data_dtype()).name,
            stored_dtype=img.get_data_dtype().name,
            scaled=scaled,
            memory_mapped=not scaled and not str(p).lower().endswith(".gz"),
            affine=np.asarray(img.affine).tolist(),
            zooms=tuple(float(z) for z in img.header.get_zooms()),
        )
    elif fmt == "nrrd":
        _header, sizes, dtype = read_nrrd_header(p)
        info.update(shape=sizes, dtype=dtype.name, memory_mapped=False)
    elif fmt == "dicom-seg":
        info.update(_describe_dicom_seg(p))
    elif fmt == "hdf5":
        info.update(_describe_hdf5(p, member))
    elif fmt == "png":
        with open_pil(p) as im:
            _check_label_mode(im.mode, p)
            info.update(
                shape=(im.size[1], im.size[0]),
                dtype=pil_dtype(im.mode).name,
                mode=im.mode,
                memory_mapped=False,
            )
    else:
        with open_tiff(p) as tf:
            series = tf.series[0]
            info.update(
                shape=tuple(int(s) for s in series.shape),
                dtype=np.dtype(series.dtype).name,
                pages=len(tf.pages),
                memory_mapped=False,
            )
    dt = info["dtype"]
    kind = _dtype_kind(dt)
    if kind not in "iubf":
        # structured, void, text, complex, date or RGB data (an RGB24 NIfTI): no prediction
        raise SegviewerError(
            f"{p}: the values are of type {dt} ({_KIND_NAMES.get(kind, 'not numbers')}); a "
            "prediction holds integers (labels) or floats (logits / probabilities)"
        )
    info["values"] = (
        "integer: a label map" if kind in "iub" else "float: logits, probabilities or sigmoid"
    )
    return info


_KIND_NAMES = {
    "V": "structured or raw bytes",
    "U": "text",
    "S": "text",
    "c": "complex numbers",
    "M": "dates",
    "m": "time spans",
    "O": "Python objects",
}


def _dtype_kind(name: str) -> str:
    """The kind letter of a dtype name; ``"V"`` for names numpy cannot parse back (``void24``)."""
    try:
        return np.dtype(str(name)).kind
    except TypeError:
        return "V"


# --------------------------------------------------------------------------------------------
# kind and classes


def _parse_kind(kind: PredictionKind | str | None) -> PredictionKind | None:
    if kind is None or isinstance(kind, PredictionKind):
        return kind
    text = str(kind).strip().lower()
    aliases = {
        "probs": "probabilities",
        "probability": "probabilities",
        "label": "labels",
        "logit": "logits",
        "multi-label": "multilabel",
    }
    text = aliases.get(text, text)
    try:
        return PredictionKind(text)
    except ValueError:
        options = ", ".join(k.value for k in PredictionKind)
        raise SegviewerError(f"unknown prediction kind {kind!r}; use one of {options}") from None


def _numeric(raw: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    if raw.dtype.hasobject:
        raise SegviewerError(f"{what}: the array holds Python objects; save a numeric array")
    if raw.dtype.kind == "b":
        return raw.view(np.uint8)
    if raw.dtype.kind not in "iuf":
        raise SegviewerError(
            f"{what}: dtype {raw.dtype} is not a real number type; a prediction must hold "
            "integers (labels) or floats (logits / probabilities)"
        )
    if not raw.dtype.isnative:
        check_alloc(raw.shape, raw.dtype, what)
        notes.append(f"byte order swapped to native ({raw.dtype.str}): read into memory")
        return raw.astype(raw.dtype.newbyteorder("="))
    if raw.dtype == np.float16:
        notes.append("float16 values: computing masks is much slower than from float32")
    return raw


def _sample(view: np.ndarray) -> np.ndarray:
    """A few thousand voxels (all channels) spread over the volume, reading few pages.

    The sample is a grid of short runs of adjacent voxels along the spatial axis nearest to
    contiguous in memory, at evenly spaced positions along the two other axes. A memory map
    then reads about a megabyte, asked for at once (:func:`_sparse_reads`),
    instead of the pages around ~32 000 scattered voxels, which with the kernel's read-ahead
    was the whole of a multi-GB file. Returns ``(*leading, n)`` (``(n,)`` for a label map).
    """
    lead = view.ndim - 3
    shape = [int(n) for n in view.shape[lead:]]
    if min(shape, default=0) == 0:
        return np.asarray(view).reshape(*view.shape[:lead], -1)
    strides = [abs(int(s)) for s in view.strides[lead:]]
    outer, middle, inner = sorted(range(3), key=lambda a: (-strides[a], a))
    run = min(shape[inner], _SAMPLE_RUN)
    # pages one run touches: one stretch per channel when the channels are planes
    # (channels first), one stretch holding every channel when they are interleaved
    ch = int(np.prod(view.shape[:lead])) if lead else 1
    interleaved = lead == 0 or abs(int(view.strides[0])) < strides[inner]
    stretch = run * strides[inner] if interleaved else run * view.itemsize
    pages = (1 if interleaved else ch) * (1 + stretch // 4096)
    n_runs = max(4, min(_SAMPLE_MAX_RUNS, _SAMPLE_PAGES // max(1, pages)))
    k = max(1, math.isqrt(n_runs))

    def picks(n: int) -> list[int]:
        return sorted({round(v) for v in np.linspace(0, n - 1, k + 2)[1:-1]} or {0})

    start = (shape[inner] - run) // 2
    runs: list[np.ndarray] = []
    stretches: list[np.ndarray] = []  # the contiguous pieces of memory the runs read
    for i in picks(shape[outer]):
        for j in picks(shape[middle]):
            idx: list[int | slice] = [0, 0, 0]
            idx[outer], idx[middle], idx[inner] = i, j, slice(start, start + run)
            runs.append(view[(slice(None),) * lead + tuple(idx)])
            if interleaved:
                stretches.append(runs[-1])
            else:
                stretches += [runs[-1][c] for c in np.ndindex(*view.shape[:lead])]
    with _sparse_reads(view, stretches):
        parts = [np.array(r) for r in runs]
    return np.concatenate(parts, axis=-1)


def _sparse_reads(
    arr: np.ndarray, stretches: list[np.ndarray]
) -> contextlib.AbstractContextManager[None]:
    """While sampling a memory map sparsely: ask the kernel for exactly the ``stretches``
    (views of ``arr``) at once (``MADV_WILLNEED``: the reads are queued together instead of
    one page fault after another) and not to read ahead around each touched page
    (``MADV_RANDOM``); normal read-ahead is restored afterwards for streaming."""
    base: Any = arr
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is None or not hasattr(mmap, "MADV_RANDOM"):
        return contextlib.nullcontext()
    mm: mmap.mmap = base

    @contextlib.contextmanager
    def advise() -> Iterator[None]:
        try:
            mm.madvise(mmap.MADV_RANDOM)
            origin = np.frombuffer(mm, dtype=np.uint8).ctypes.data
            page = mmap.PAGESIZE
            for v in stretches:
                lo = hi = v.__array_interface__["data"][0] - origin
                for n, st in zip(v.shape, v.strides, strict=True):
                    lo += min(0, st * (n - 1))
                    hi += max(0, st * (n - 1))
                first = max(0, lo // page * page)
                mm.madvise(mmap.MADV_WILLNEED, first, min(len(mm), hi + v.itemsize) - first)
        except (OSError, ValueError):
            pass
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                mm.madvise(mmap.MADV_NORMAL)

    return advise()


def _channel_facts(
    cf: np.ndarray,
    requested: PredictionKind | None,
    hint: int | None,
    what: str,
    notes: list[str],
) -> tuple[PredictionKind, int, bool]:
    n_ch = int(cf.shape[0])
    if n_ch > _MAX_LABELS - 1:
        raise SegviewerError(
            f"{what}: {n_ch} channels is more than segviewer supports ({_MAX_LABELS - 1}); "
            "check the layout (--layout)"
        )
    sample = _sample(cf).astype(np.float64)
    bad = int(np.count_nonzero(~np.isfinite(sample)))
    if bad:
        notes.append(
            f"{bad} of {sample.size} sampled values are NaN or infinite; those voxels are "
            "marked invalid in the masks"
        )
    flat = sample.reshape(n_ch, -1)
    ok = np.all(np.isfinite(flat), axis=0)
    vals = flat[:, ok]
    in_unit = vals.size > 0 and float(vals.min()) >= -1e-6 and float(vals.max()) <= 1 + 1e-6
    sums = vals.sum(axis=0)
    sum_one = in_unit and bool(np.all(np.abs(sums - 1.0) <= _PROB_TOL))
    rng = f"[{vals.min():.3g}, {vals.max():.3g}]" if vals.size else "(no finite values)"

    if requested is None:
        if n_ch == 1:
            kind = PredictionKind.SIGMOID
            why = "one channel: sigmoid (binary foreground)"
        elif sum_one:
            kind = PredictionKind.PROBABILITIES
            why = (
                f"{n_ch} channels, non-negative and summing to 1 over the class axis on a "
                "strided sample: probabilities"
            )
        else:
            kind = PredictionKind.LOGITS
            why = (
                f"{n_ch} channels whose sampled values {rng} are not probabilities summing "
                "to 1: logits (softmax gives probabilities)"
            )
        notes.append(f"Kind detected: {why}.")
    else:
        kind = requested
        notes.append(f"Kind {kind.value} given explicitly.")
        if kind is PredictionKind.SIGMOID and n_ch != 1:
            raise SegviewerError(
                f"{what}: kind 'sigmoid' needs one channel but the prediction has {n_ch}; use "
                "'multilabel' for independent channels, or 'logits' / 'probabilities'"
            )
        if kind in (PredictionKind.LOGITS, PredictionKind.PROBABILITIES) and n_ch < 2:
            raise SegviewerError(
                f"{what}: kind {kind.value!r} needs at least 2 channels (softmax over classes) "
                "but the prediction has 1; use 'sigmoid' for a single foreground channel"
            )
        if kind is PredictionKind.PROBABILITIES and not sum_one:
            notes.append(
                f"Warning: the sampled values {rng} do not look like probabilities summing to 1 "
                "over the class axis; check the kind"
            )

    probs = False
    if kind in (PredictionKind.SIGMOID, PredictionKind.MULTILABEL):
        probs = in_unit
        notes.append(
            f"Channel values {rng} are "
            + ("probabilities (within [0, 1])." if probs else "logits (outside [0, 1]).")
        )
        n_classes = 2 if kind is PredictionKind.SIGMOID else n_ch + 1
    else:
        probs = kind is PredictionKind.PROBABILITIES
        n_classes = n_ch
    if hint is not None and hint != n_classes:
        notes.append(
            f"The class table or model declares {hint} classes but the prediction has {n_classes}."
        )
    return kind, n_classes, probs


def _label_facts(
    raw: np.ndarray, view: np.ndarray, hint: int | None, what: str, notes: list[str]
) -> tuple[PredictionKind, int, bool]:
    lo, hi = _min_max(raw)
    if lo < 0:
        raise SegviewerError(
            f"{what}: the label map has negative values (minimum {lo}); labels must be 0 "
            "(background) or more"
        )
    if hi + 1 > _MAX_LABELS:
        raise SegviewerError(
            f"{what}: the largest label is {hi}; segviewer supports at most {_MAX_LABELS} "
            "classes (labels 0..65533). Is this an image rather than a label map?"
        )
    n = hi + 1
    note = f"Kind: integer values without a class axis are a label map (labels 0..{hi})"
    if hint is not None and hint > n:
        note += f"; {hint} classes declared by the class table, the highest ones are absent"
        n = hint
    notes.append(note + ".")
    distinct = int(np.unique(_sample(view)).size)
    if hint is None and distinct > _MANY_LABELS:
        notes.append(
            f"Warning: {distinct} distinct values in a small sample of the label map; is it an "
            "image (intensities) rather than a segmentation?"
        )
    return PredictionKind.LABELS, n, False


def _min_max(raw: np.ndarray) -> tuple[int, int]:
    """Smallest and largest value in one pass over chunks of the outermost axis.

    The whole label map is scanned (it has the image's size and both bounds are needed);
    chunking reads a memory-mapped file once, each chunk being reduced twice while cached.
    """
    if raw.size == 0:
        return 0, 0
    if raw.ndim == 0:
        return int(raw), int(raw)
    step = max(1, (32 * 1024**2) // max(1, raw[0].nbytes))
    lo, hi = int(raw[:step].min()), int(raw[:step].max())
    for start in range(step, raw.shape[0], step):
        block = raw[start : start + step]
        lo, hi = min(lo, int(block.min())), max(hi, int(block.max()))
    return lo, hi


def _all_whole(raw: np.ndarray) -> bool:
    """Whether every value is a finite whole number (chunked over the outermost axis)."""
    if raw.ndim == 0 or raw.size == 0:
        return bool(np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)))
    step = max(1, (32 * 1024**2) // max(1, raw[0].nbytes))
    for start in range(0, raw.shape[0], step):
        block = np.asarray(raw[start : start + step])
        if not (np.all(np.isfinite(block)) and np.array_equal(block, np.round(block))):
            return False
    return True


def _float_labels_to_int(raw: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    if not _all_whole(raw):
        raise SegviewerError(
            f"{what}: kind 'labels' needs finite whole numbers but the values have fractions, "
            "NaN or infinity; is it a probability or logit map? Leave the kind out to detect it"
        )
    lo, hi = (float(raw.min()), float(raw.max())) if raw.size else (0.0, 0.0)
    if lo < 0:
        raise SegviewerError(
            f"{what}: the label map has negative values (minimum {lo:g}); labels must be 0 "
            "(background) or more"
        )
    if hi + 1 > _MAX_LABELS:
        raise SegviewerError(
            f"{what}: the largest label is {hi:g}; segviewer supports at most {_MAX_LABELS} classes"
        )
    dtype = np.uint8 if hi < 256 else np.uint16
    notes.append(f"Float label values converted to {np.dtype(dtype).name} (a copy in memory).")
    return raw.astype(dtype)


def _affine_notes(pred_affine: np.ndarray, image_affine: np.ndarray) -> list[str]:
    """Warnings when a NIfTI prediction's geometry differs from the image's."""
    from nibabel.orientations import aff2axcodes

    pa = np.asarray(pred_affine, dtype=np.float64)
    if pa.shape != (4, 4) or image_affine.shape != (4, 4) or not np.all(np.isfinite(pa)):
        return ["Warning: the prediction's NIfTI affine is not a finite 4x4 matrix."]
    if np.allclose(pa, image_affine, atol=1e-3, rtol=1e-4):
        return []
    if np.allclose(pa, np.eye(4)):
        return [
            "The prediction's NIfTI affine is the identity (no geometry was saved); it is "
            "shown voxel for voxel on the image grid."
        ]
    p_codes = "".join(str(c) for c in aff2axcodes(pa))
    i_codes = "".join(str(c) for c in aff2axcodes(image_affine))
    if p_codes != i_codes:
        return [
            f"Warning: the prediction's voxel axes point {p_codes} but the image's point "
            f"{i_codes}: shown voxel for voxel, the overlay may be mirrored or rotated; use "
            "--resample to place it by its affine, or re-save the prediction in the image's "
            "voxel order (same affine)."
        ]
    shift = float(np.linalg.norm(pa[:3, 3] - image_affine[:3, 3]))
    return [
        f"Warning: the prediction's NIfTI affine differs from the image's (same orientation "
        f"{i_codes}, origins {shift:.1f} mm apart); it is shown voxel for voxel on the image grid "
        "(use --resample to place it by its affine)."
    ]


# --------------------------------------------------------------------------------------------
# layout and resampling


def _find_layout(
    shape: tuple[int, ...],
    img: tuple[int, ...],
    explicit: str | None,
    has_cls: bool | None,
    resample: bool,
    what: str,
) -> Layout:
    try:
        return detect_layout(shape, img, explicit=explicit, has_class_axis=has_cls)
    except ShapeMismatch as exc:
        if not resample:
            raise ShapeMismatch(
                f"{what}: {exc}", exc.resample_possible, exc.fitting_layouts
            ) from None
    except SegviewerError as exc:
        if not resample:
            raise SegviewerError(f"{what}: {exc}") from None
    try:
        return detect_layout(shape, img, explicit=explicit, has_class_axis=has_cls, resample=True)
    except SegviewerError as exc:
        raise SegviewerError(f"{what}: {exc}") from None


#: Above this size a resampled prediction is kept in a memory map on a temporary file (deleted
#: when the prediction is dropped) instead of in memory.
_RESAMPLE_IN_MEMORY_BYTES = 1024**3


def _resample(
    raw: np.ndarray,
    lay: Layout,
    img: tuple[int, ...],
    kind: PredictionKind,
    probs: bool,
    what: str,
    notes: list[str],
    geometry: tuple[np.ndarray | None, np.ndarray | None, str],
) -> tuple[np.ndarray, Layout, Resampling]:
    """Resample onto the image grid (:mod:`segviewer.core.resample`), streamed slab by slab.

    ``geometry`` is ``(prediction affine of the view, image affine, reason)``; both affines
    ``None`` means scaling by shape.
    """
    src_aff, img_aff, reason = geometry
    src = lay.apply(raw)
    have = lay.spatial_shape
    if any(s == 0 for s in have):
        raise SegviewerError(f"{what}: the prediction has an empty axis {have}; cannot resample")
    shape3 = (img[0], img[1], img[2])
    labels = kind is PredictionKind.LABELS
    if src_aff is not None and img_aff is not None:
        matrix = world_matrix(src_aff, img_aff)
        mode = "world"
    else:
        matrix = shape_matrix(have, shape3)
        mode = "shape"
    out_dtype = src.dtype if labels else np.dtype(np.float32)
    lead = () if labels else (int(src.shape[0]),)
    out = _resample_output(lead + shape3, out_dtype, what)
    fill = background_fill(kind, 0 if labels else int(src.shape[0]), probs)
    try:
        coverage, _n = run_to_end(iter_resample(src, matrix, out, labels=labels, fill=fill))
    except SegviewerError as exc:
        raise SegviewerError(f"{what}: {exc}") from None
    rec = resample_record(
        from_shape=have,
        to_shape=shape3,
        from_affine=src_aff,
        to_affine=img_aff,
        labels=labels,
        coverage=coverage,
        outside=coverage_outside(matrix, have, shape3),
        geometry=mode,
        reason=reason,
    )
    notes.append(rec.describe())
    name = "DHW" if labels else "CDHW"
    new = parse_layout(name, out.shape, img)
    return out, dataclasses.replace(new, note=f"Layout {name} after resampling."), rec


def _resample_output(shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> np.ndarray:
    """The resampled array: in memory, or a memory map on an unnamed temporary file."""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes <= _RESAMPLE_IN_MEMORY_BYTES:
        check_alloc(shape, dtype, what)
        return np.empty(shape, dtype=dtype)
    import shutil
    import tempfile

    tmp = tempfile.gettempdir()
    if shutil.disk_usage(tmp).free < nbytes * 1.1:
        raise SegviewerError(
            f"{what}: resampling needs {nbytes / 1024**3:.1f} GiB of temporary disk space in "
            f"{tmp} and less is free; free space there or set TMPDIR to a larger disk"
        )
    # the file has no name (deleted on close); the map keeps its own handle to the data
    with tempfile.TemporaryFile(dir=tmp) as fh:
        fh.truncate(nbytes)
        return np.memmap(fh, dtype=dtype, mode="w+", shape=shape)


def _has_geometry(affine: np.ndarray) -> bool:
    """Whether an image affine is more than the stack affine of files without geometry."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        return False
    norms = np.linalg.norm(a[:3, :3], axis=0)
    if np.any(norms == 0):
        return False
    stack_like = np.allclose(a[:3, :3] / norms, STACK_AFFINE[:3, :3]) and np.allclose(a[:3, 3], 0)
    return not stack_like


def _file_geometry(p: Path, fmt: str, ndim: int) -> FileGeometry | None:
    """The affine a prediction file declares (NIfTI, NRRD); None for formats without one."""
    if fmt == "nifti":
        return nifti_geometry(open_nifti(p))
    if fmt == "nrrd":
        header, _sizes, _dtype = read_nrrd_header(p)
        return nrrd_geometry(header, ndim)
    return None


def _geometry_layout(
    shape: tuple[int, ...],
    spatial: Sequence[int] | None,
    is_int: bool,
    requested: PredictionKind | None,
    img: tuple[int, ...],
) -> str | None:
    """The layout string that keeps a file's own spatial axis order (X, Y, Z in order).

    The remaining axis is the class axis (``C``), except a size-1 axis of a label map (``N``).
    None when the file's axes do not give 3 spatial axes and at most one other (then the
    layout is detected as usual).
    """
    if spatial is None:
        return None
    spatial = [int(a) for a in spatial if int(a) < len(shape)]
    others = [a for a in range(len(shape)) if a not in spatial]
    if len(spatial) != 3 or len(others) > 1:
        return None
    letters = [""] * len(shape)
    for a, ch in zip(spatial, "XYZ", strict=True):
        letters[a] = ch
    labels = requested is PredictionKind.LABELS or (requested is None and is_int)
    for a in others:
        letters[a] = "N" if shape[a] == 1 and labels else "C"
    return "".join(letters)


def _view_affine(file_affine: np.ndarray, lay: Layout) -> np.ndarray:
    """The file's affine re-ordered for the layout's view (spatial axes in image-axis order)."""
    ndim = len(lay.raw_shape)
    raw_axes = [a for a in lay.spatial_axes if a < ndim]
    order = sorted(raw_axes)
    out = file_affine.copy()
    if len(raw_axes) == 3:
        for i, a in enumerate(lay.spatial_axes):
            out[:3, i] = file_affine[:3, order.index(a)]
    return out


# --------------------------------------------------------------------------------------------
# readers


def _format_of(p: Path) -> str:
    ext = compound_suffix(p)
    fmt = {
        ".npy": "npy",
        ".npz": "npz",
        ".nii": "nifti",
        ".nii.gz": "nifti",
        ".nrrd": "nrrd",
        ".nhdr": "nrrd",
        ".png": "png",
        ".tif": "tiff",
        ".tiff": "tiff",
        ".dcm": "dicom-seg",
        ".h5": "hdf5",
        ".hdf5": "hdf5",
    }.get(ext)
    if fmt is None:
        raise SegviewerError(
            f"{p}: unsupported prediction format {ext or '(no extension)'!r}; use "
            f"{PREDICTION_FORMATS}"
        )
    return fmt


def _read(p: Path) -> tuple[np.ndarray, str, list[str]]:
    fmt = _format_of(p)
    reader = {
        "npy": _read_npy,
        "npz": _read_npz,
        "nifti": _read_nifti,
        "nrrd": _read_nrrd,
        "png": _read_png,
        "tiff": _read_tiff,
    }[fmt]
    arr, notes = reader(p)
    return arr, fmt, notes


def _read_npy(p: Path) -> tuple[np.ndarray, list[str]]:
    arr, _header = open_npy(p)
    return arr, []


def _pick_npz_prediction(p: Path, names: tuple[str, ...]) -> str:
    """The first of :data:`NPZ_KEYS` a multi-array ``.npz`` holds; refuse archives with none."""
    found = [k for k in NPZ_KEYS if k in names]
    if not found:
        raise SegviewerError(
            f"{p}: the archive holds {len(names)} arrays ({', '.join(names[:8])}) and "
            f"none is named {', '.join(NPZ_KEYS)}; save the prediction alone or under "
            "one of these names"
        )
    return found[0]


def _read_npz(p: Path) -> tuple[np.ndarray, list[str]]:
    arr, member = read_npz(p, _pick_npz_prediction)
    notes = [f"array {member.key!r} of the .npz archive"] if len(member.names) > 1 else []
    return arr, notes


def _read_nifti(p: Path) -> tuple[np.ndarray, list[str]]:
    img = open_nifti(p, mmap="r")
    voxels = nifti_data_file(img, p)
    shape = tuple(int(s) for s in img.shape)
    notes: list[str] = []
    slope, inter = nifti_scaling(img)
    try:
        if (slope, inter) != (1.0, 0.0):
            check_alloc(shape, np.float32, str(p))
            arr = np.asarray(img.dataobj.get_unscaled()).astype(np.float32)
            arr *= np.float32(slope)
            arr += np.float32(inter)
            notes.append(
                f"NIfTI scaling applied (slope {slope:.6g}, intercept {inter:.6g}): values read "
                "into memory as float32"
            )
        else:
            if voxels.compressed:
                check_alloc(shape, img.get_data_dtype(), str(p))
            if voxels.compressed and getattr(img.dataobj, "order", "F") == "F":
                # streamed into one array (nibabel reads the whole stream, then copies it)
                arr = read_gzip_voxels(voxels, shape, np.dtype(img.get_data_dtype()))
            else:
                arr = np.asanyarray(img.dataobj)
    except READ_ERRORS as exc:
        raise SegviewerError(
            f"{p}: the NIfTI data cannot be read ({type(exc).__name__}: {exc}); it is truncated "
            "or corrupt, re-export it"
        ) from exc
    if arr.ndim == 5 and arr.shape[3] == 1:
        # NIfTI vector images put the components on the 5th axis after a time axis of 1
        arr = arr.reshape(arr.shape[:3] + arr.shape[4:])
        notes.append("NIfTI vector image (X, Y, Z, 1, C): the time axis of 1 is dropped")
    return arr, notes


def _read_nrrd(p: Path) -> tuple[np.ndarray, list[str]]:
    _header, sizes, dtype = read_nrrd_header(p)
    arr, _ = read_nrrd(p, sizes, dtype)
    return arr, []


# Pillow modes a label image may have: grey (8/16/32-bit, float), palette (the indices are the
# labels), with alpha, or RGB(A) whose three channels are equal.
_LABEL_MODES = ("1", "L", "P", "LA", "PA", "I", "F", "RGB", "RGBA")


def _check_label_mode(mode: str, p: Path) -> None:
    if mode not in _LABEL_MODES and not mode.startswith("I;16"):
        raise SegviewerError(
            f"{p}: image mode {mode!r} is not a label image; save greyscale labels"
        )


def _read_png(p: Path) -> tuple[np.ndarray, list[str]]:
    with open_pil(p) as im:
        mode = im.mode
        _check_label_mode(mode, p)
        arr = pil_array(im)
    notes: list[str] = []
    if mode in ("LA", "PA"):
        arr = arr[..., 0]
    elif mode in ("RGB", "RGBA"):
        rgb = arr[..., :3]
        if not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        ):
            raise SegviewerError(
                f"{p}: a colour {mode} image is not a label map; save the labels as a greyscale "
                "(mode L or I;16) or palette PNG whose pixel values are the class indices"
            )
        arr = rgb[..., 0]
        notes.append(f"{mode} image with equal channels read as grey labels")
    elif mode == "P":
        notes.append("palette PNG: the palette indices are the labels")
    return np.ascontiguousarray(arr), notes


def _read_tiff(p: Path) -> tuple[np.ndarray, list[str]]:
    with open_tiff(p) as tf:
        arr = tiff_series_array(tf, p)
    return arr, []


# --------------------------------------------------------------------------------------------
# DICOM SEG


def _is_seg(p: Path) -> bool:
    """A ``.dcm`` file, or a file without extension that is a DICOM SEG (DICOM files often
    have no extension)."""
    from segviewer.io.dicomseg import is_dicom_seg

    ext = compound_suffix(p)
    if ext == ".dcm":
        if not is_dicom_seg(p):
            raise SegviewerError(
                f"{p}: a DICOM file that is not a Segmentation object (SEG); a prediction in "
                "DICOM must be a SEG (open images as the image, not as the prediction)"
            )
        return True
    return ext == "" and is_dicom_seg(p)


def _load_dicom_seg(
    p: Path,
    image_shape: Sequence[int],
    kind: PredictionKind | str | None,
    n_classes_hint: int | None,
    image_affine: np.ndarray | None,
    image_metadata: Mapping[str, Any] | None = None,
) -> Prediction:
    from segviewer.io.dicomseg import read_seg

    if image_affine is None:
        raise SegviewerError(
            f"{p}: a DICOM SEG is placed on the image by its geometry, and the image's is "
            "unknown; open the image first"
        )
    seg = read_seg(p, image_shape, image_affine, image_metadata)
    if seg.fractional:
        n_seg = seg.data.shape[0]
        layout = "CDHW"
        requested = kind or (PredictionKind.SIGMOID if n_seg == 1 else PredictionKind.MULTILABEL)
    else:
        layout, requested = "DHW", kind or PredictionKind.LABELS
    hint = n_classes_hint
    if not seg.fractional:
        top = max(n for n, _, _ in seg.segments) + 1
        hint = max(hint or 0, top)  # the highest segment may be empty in this case
    return prediction_from_array(
        seg.data,
        image_shape,
        layout=layout,
        kind=requested,
        n_classes_hint=hint,
        source=str(p),
        notes=seg.notes,
    )


def _describe_dicom_seg(p: Path) -> dict[str, Any]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:  # fmt: skip
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise SegviewerError(
            f"{p}: cannot be read as DICOM ({reason}); the file is damaged or not DICOM"
        ) from None
    if "SegmentSequence" not in ds or "Rows" not in ds or "Columns" not in ds:
        raise SegviewerError(
            f"{p}: a DICOM file that is not a complete Segmentation object (SEG); a prediction "
            "in DICOM must be a SEG (open images as the image, not as the prediction)"
        )
    segs = [
        (int(d.SegmentNumber), str(d.get("SegmentLabel", "")))
        for d in ds.get("SegmentSequence", [])
    ]
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    return {
        "shape": (n_frames, int(ds.Rows), int(ds.Columns)),
        "dtype": "float32" if ds.get("SegmentationType") == "FRACTIONAL" else "uint8",
        "segmentation_type": str(ds.get("SegmentationType", "")),
        "segments": segs,
        "memory_mapped": False,
    }


# --------------------------------------------------------------------------------------------
# containers with several arrays (.npz, HDF5), nnU-Net, TensorFlow tensors

_CONTAINERS = (".npz", ".h5", ".hdf5")


def split_member(path: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """``"case.npz:logits"`` -> (``case.npz``, ``"logits"``); ``"out.h5:/cases/c1"`` likewise.

    Only a ``:`` after an ``.npz`` / ``.h5`` / ``.hdf5`` name that exists splits, so Windows
    drive letters and file names containing ``:`` are left alone.
    """
    text = os.fspath(path)
    p = Path(text)
    if p.exists():
        return p, None
    for ext in _CONTAINERS:
        cut = text.lower().rfind(ext + ":")
        if cut > 0:
            base = Path(text[: cut + len(ext)])
            name = text[cut + len(ext) + 1 :]
            if base.is_file() and name:
                return base, name
    return p, None


def _fits(shape: Sequence[int], img: tuple[int, ...]) -> bool:
    try:
        detect_layout(tuple(int(s) for s in shape), img)
    except SegviewerError:
        return False
    return True


def _choose(
    p: Path,
    shapes: dict[str, tuple[tuple[int, ...], str]],
    member: str | None,
    img: tuple[int, ...] | None,
    what: str,
    notes: list[str],
) -> str:
    """Pick one array of a container: the one asked for, the only one, the only one that fits
    the image, the only conventional name (:data:`NPZ_KEYS`) among those that fit; else ask."""
    names = list(shapes)

    def listing(keys: Sequence[str]) -> str:
        shown = [f"{k!r} {shapes[k][0]} {shapes[k][1]}" for k in keys[:12]]
        more = f" and {len(keys) - 12} more" if len(keys) > 12 else ""
        return ", ".join(shown) + more

    if member is not None:
        key = member.strip("/") if what == "dataset" else member
        if key not in shapes:
            raise SegviewerError(
                f"{p} has no {what} {member!r}; it holds {listing(names)}; write "
                f"{p.name}:NAME with one of these"
            )
        notes.append(f"{what} {key!r} of {p.name}, as asked.")
        return key
    if len(names) == 1:
        if what == "dataset":
            notes.append(f"the only dataset of {p.name}: {names[0]!r}")
        return names[0]
    fitting = [k for k in names if img is not None and _fits(shapes[k][0], img)]
    named = [k for k in NPZ_KEYS if k in shapes]
    if len(fitting) == 1:
        notes.append(
            f"{what} {fitting[0]!r} of {p.name}: the only one of {len(names)} whose shape "
            f"fits the image {img}"
        )
        return fitting[0]
    named_fitting = [k for k in named if k in fitting] if fitting else named
    if len(named_fitting) == 1:
        notes.append(
            f"{what} {named_fitting[0]!r} of {p.name} (a conventional name); others: "
            + ", ".join(repr(k) for k in names if k != named_fitting[0])
        )
        return named_fitting[0]
    several = fitting or names
    why = (
        f"{len(fitting)} of them fit the image {img}"
        if fitting
        else "none is named " + (", ".join(NPZ_KEYS))
    )
    raise SegviewerError(
        f"{p} holds {len(names)} {what}s and {why}: {listing(several)}; choose one by "
        f"writing {p.name}:NAME (e.g. {p.name}:{several[0]})"
    )


def _npz_shapes(p: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    import zipfile

    from segviewer.io.arrays import npy_header

    out: dict[str, tuple[tuple[int, ...], str]] = {}
    try:
        with zipfile.ZipFile(p) as zf:
            for n in zf.namelist():
                if not n.endswith(".npy"):
                    continue
                with zf.open(n) as fp:
                    h = npy_header(fp, f"{p} [{n[:-4]}]")
                out[n[:-4]] = (tuple(int(s) for s in h.shape), h.dtype.name)
    except (zipfile.BadZipFile, OSError):
        return {}  # read_npz reports it with its own message
    return out


def _read_for_image(
    p: Path, member: str | None, img: tuple[int, ...]
) -> tuple[np.ndarray, str, list[str], str | None]:
    """Read the prediction array of ``p`` for an image of shape ``img``.

    Returns the array, the format, notes, and a layout fixed by a convention of the writing
    tool (nnU-Net) or None.
    """
    fmt = _format_of(p)
    if member is not None and fmt not in ("npz", "hdf5"):
        raise SegviewerError(f"{p}: ':{member}' picks an array of an .npz or HDF5 file only")
    convention: str | None = None
    if fmt == "npz":
        notes: list[str] = []
        shapes = _npz_shapes(p)

        def pick(path: Path, names: tuple[str, ...]) -> str:
            return _choose(
                path, {k: shapes[k] for k in names if k in shapes}, None, img, "array", notes
            )

        if member is not None:
            key = _choose(p, shapes, member, img, "array", notes)
            raw, used = read_npz(p, lambda _p, _n: key)
        else:
            raw, used = read_npz(p, pick)
        if len(used.names) > 1 and not notes:
            notes.append(f"array {used.key!r} of the .npz archive")
        convention = _nnunet_layout(p, used.key, raw.shape, img, notes)
    elif fmt == "hdf5":
        raw, notes = _read_hdf5(p, member, img)
    else:
        raw, fmt, notes = _read(p)
    raw = _widen_bfloat16(raw, str(p), notes)
    return raw, fmt, notes, convention


def _nnunet_layout(
    p: Path, key: str, shape: tuple[int, ...], img: tuple[int, ...], notes: list[str]
) -> str | None:
    """nnU-Net's ``--save_probabilities`` ``.npz``: ``(C, Z, Y, X)`` beside ``case.pkl``."""
    pkl = p.with_suffix(".pkl")
    if key not in ("probabilities", "softmax") or not pkl.is_file() or len(shape) != 4:
        return None
    spatial = tuple(int(s) for s in shape[1:])
    never = f"{pkl.name} beside it holds nnU-Net's properties and is not opened (unpickling can run code)"
    if spatial[::-1] == img:
        notes.append(
            f"nnU-Net output ({key!r} member; {never}): (C, Z, Y, X) in SimpleITK's axis order, "
            "mapped onto the image's (X, Y, Z) by reversing the spatial axes; if the image was "
            "not the NIfTI nnU-Net read, give --layout"
        )
        return "CZYX"
    if spatial == img:
        notes.append(
            f"nnU-Net output ({key!r} member; {never}): its spatial axes are the image's "
            "in the same order (e.g. a DICOM series, stored slice, row, column)"
        )
        return "CXYZ"
    notes.append(
        f"nnU-Net output ({key!r} member; {never}): its sizes {spatial} are neither the image's "
        f"{img} nor their reverse; matched by size"
    )
    return None


def _read_hdf5(p: Path, member: str | None, img: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    import h5py

    notes: list[str] = []
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise SegviewerError(
            f"{p}: not a readable HDF5 file ({exc}); it is truncated or not HDF5"
        ) from None
    with f:
        if "model_config" in f.attrs or "keras_version" in f.attrs:
            raise SegviewerError(
                f"{p} is a Keras model, not a prediction; open it as a model (--model)"
            )
        datasets: dict[str, Any] = {}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.ndim >= 2:
                datasets[name] = obj

        f.visititems(visit)
        if not datasets:
            raise SegviewerError(f"{p}: the HDF5 file holds no array of 2 or more dimensions")
        shapes = {k: (tuple(int(s) for s in d.shape), d.dtype.name) for k, d in datasets.items()}
        key = _choose(p, shapes, member, img, "dataset", notes)
        ds = datasets[key]
        if ds.dtype.kind not in "biuf":
            raise SegviewerError(
                f"{p} [{key}]: dtype {ds.dtype} is not a number type; a prediction holds "
                "integers (labels) or floats"
            )
        check_alloc(ds.shape, ds.dtype, f"{p} [{key}]")
        try:
            arr = np.asarray(ds[()])
        except (OSError, ValueError) as exc:
            raise SegviewerError(
                f"{p} [{key}]: the dataset cannot be read ({exc}); the file is damaged"
            ) from None
    return arr, notes


def _widen_bfloat16(raw: np.ndarray, what: str, notes: list[str]) -> np.ndarray:
    """bfloat16 as NumPy saves it (2-byte void, ``<V2``; or ml_dtypes' bfloat16) -> float32.

    bfloat16 is the top half of a float32, so the conversion is exact.
    """
    if raw.dtype.itemsize != 2 or not (raw.dtype.kind == "V" or raw.dtype.name == "bfloat16"):
        return raw
    if raw.dtype.kind == "V" and raw.dtype.fields is not None:
        return raw  # a structured array: refused later as not a number type
    check_alloc(raw.shape, np.float32, what)
    bits = np.ascontiguousarray(raw).view(np.uint16).astype(np.uint32) << np.uint32(16)
    notes.append(
        "2-byte values without a number type (how np.save stores a bfloat16 tensor, e.g. "
        "TensorFlow mixed precision): read as bfloat16, widened to float32 in memory"
    )
    return bits.view(np.float32)


def _describe_hdf5(p: Path, member: str | None) -> dict[str, Any]:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise SegviewerError(f"{p}: not a readable HDF5 file ({exc})") from None
    with f:
        found: dict[str, Any] = {}

        def visit(name: str, obj: Any) -> None:  # returning a value would stop the visit
            if isinstance(obj, h5py.Dataset) and obj.ndim >= 2:
                found[name] = obj

        f.visititems(visit)
        if not found:
            raise SegviewerError(f"{p}: the HDF5 file holds no array of 2 or more dimensions")
        key = member.strip("/") if member else next(iter(found))
        if key not in found:
            raise SegviewerError(f"{p} has no dataset {member!r}; it holds {', '.join(found)}")
        ds = found[key]
        return {
            "arrays": tuple(found),
            "array": key,
            "shape": tuple(int(s) for s in ds.shape),
            "dtype": ds.dtype.name,
            "memory_mapped": False,
        }
