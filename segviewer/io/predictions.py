"""Reading a model's prediction from a file and deciding what its values mean.

Sources
-------
* ``.npy``: memory-mapped (``mmap_mode="r"``, ``allow_pickle=False``); a multi-GB file opens
  without being read and every view stays a view of the map. Object (pickled) arrays are
  refused: unpickling can run code.
* ``.npz``: the only array, or the one named ``logits``, ``probabilities``, ``labels`` or
  ``prediction`` (read into memory: zip members cannot be mapped).
* NIfTI (``.nii``, ``.nii.gz``): 4-D with the class axis last, a 5-D ``(X, Y, Z, 1, C)``
  vector image, or a 3-D label map; uncompressed files without scaling are memory-mapped,
  scaled ones (``scl_slope``, e.g. probabilities stored as uint8 / 255) are read as float32.
* NRRD (``.nrrd``, ``.nhdr``): as pynrrd gives it (image axis order, like the image reader).
* PNG / TIFF label images: a 2-D image is a label map for a ``(1, H, W)`` image (its rows
  and columns are the image's); a multi-page TIFF is a stack ``(slices, H, W)``.

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
then it is resampled onto the image grid (``scipy.ndimage.zoom``, linear for logits and
probabilities, nearest for labels, voxel corners aligned) and a note says so.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.layout import Layout, ShapeMismatch, detect_layout, parse_layout
from segviewer.core.masks import iter_labels
from segviewer.core.progress import run_to_end
from segviewer.core.types import MaskSettings, Prediction, PredictionKind, SegviewerError
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

__all__ = [
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
    "images (.png, .tif, .tiff)"
)
#: Array names looked for in a multi-array ``.npz``, in this order.
NPZ_KEYS = ("logits", "probabilities", "labels", "prediction")

_SAMPLE_POINTS = 32  # per spatial axis: 32^3 voxels x C channels is cheap and representative
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
        Resample a prediction of another spatial size onto the image grid instead of failing.
    image_affine
        ``Volume.affine`` of the image. When given and the file carries its own geometry
        (NIfTI), a difference is reported in the notes: the prediction is always shown voxel
        for voxel on the image grid, so a flipped or shifted affine means a misplaced overlay.

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
    p = Path(path)
    check_input_file(p)
    if p.is_dir():
        raise SegviewerError(f"{p} is a folder; choose a prediction file ({PREDICTION_FORMATS})")
    raw, fmt, notes = _read(p)
    if image_affine is not None and fmt == "nifti":
        notes.extend(_affine_notes(open_nifti(p).affine, np.asarray(image_affine, float)))
    explicit = layout
    img = tuple(int(s) for s in image_shape)
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
    )


def load_reference(
    path: str | os.PathLike[str],
    image_shape: Sequence[int],
    *,
    layout: str | None = None,
    n_classes_hint: int | None = None,
    image_affine: np.ndarray | None = None,
    notes: list[str] | None = None,
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
        reference of another grid is refused (it is compared voxel for voxel, never
        resampled).
    """
    try:
        pred = load_prediction(
            path,
            image_shape,
            layout=layout,
            n_classes_hint=n_classes_hint,
            image_affine=image_affine,
        )
    except SegviewerError as exc:
        msg = str(exc).replace(
            "use --resample to resample the prediction onto the image grid",
            "a reference is compared voxel for voxel: save it on the image's grid",
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
) -> Prediction:
    """Align an in-memory (or memory-mapped) prediction array to an image.

    Same rules and parameters as :func:`load_prediction` (which calls it after reading the
    file); ``source`` names the array in messages, ``notes`` are prepended to the result's.
    The array is not copied unless it must be (non-native byte order, float label maps,
    resampling), and each such copy is mentioned in the notes.
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
    out_notes.append(lay.note)

    if is_int:
        pred_kind, n_classes, probs = _label_facts(
            raw, lay.apply(raw), n_classes_hint, what, out_notes
        )
    else:
        pred_kind, n_classes, probs = _channel_facts(
            lay.apply(raw), requested, n_classes_hint, what, out_notes
        )

    if lay.spatial_shape != img:
        raw, lay = _resample(raw, lay, img, pred_kind, what, out_notes)
    data = lay.expand(raw)
    return Prediction(
        data=data,
        kind=pred_kind,
        layout=lay.expanded(),
        n_classes=n_classes,
        source=source,
        values_are_probabilities=probs,
        notes=tuple(n for n in out_notes if n),
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
    p = Path(path)
    check_input_file(p)
    fmt = _format_of(p)
    info: dict[str, Any] = {"path": str(p), "format": fmt, "size_bytes": p.stat().st_size}
    if fmt == "npy":
        header = read_npy_header(p)
        info.update(
            shape=header.shape, dtype=header.dtype.name, memory_mapped=header.dtype.isnative
        )
    elif fmt == "npz":
        member = npz_member(p, _pick_npz_prediction)
        info.update(
            arrays=member.names,
            array=member.key,
            shape=member.header.shape,
            dtype=member.header.dtype.name,
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
    """Strided copy of at most ~32 points per spatial axis (all channels kept)."""
    lead = view.ndim - 3
    index = (slice(None),) * lead + tuple(
        slice(None, None, max(1, math.ceil(n / _SAMPLE_POINTS))) for n in view.shape[lead:]
    )
    return np.array(view[index])


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
            f"{i_codes}: shown voxel for voxel, the overlay may be mirrored or rotated; re-save "
            "the prediction in the image's voxel order (same affine)."
        ]
    shift = float(np.linalg.norm(pa[:3, 3] - image_affine[:3, 3]))
    return [
        f"Warning: the prediction's NIfTI affine differs from the image's (same orientation "
        f"{i_codes}, origins {shift:.1f} mm apart); it is shown voxel for voxel on the image grid."
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
            raise ShapeMismatch(f"{what}: {exc}", exc.resample_possible) from None
    except SegviewerError as exc:
        if not resample:
            raise SegviewerError(f"{what}: {exc}") from None
    try:
        return detect_layout(shape, img, explicit=explicit, has_class_axis=has_cls, resample=True)
    except SegviewerError as exc:
        raise SegviewerError(f"{what}: {exc}") from None


def _resample(
    raw: np.ndarray,
    lay: Layout,
    img: tuple[int, ...],
    kind: PredictionKind,
    what: str,
    notes: list[str],
) -> tuple[np.ndarray, Layout]:
    from scipy import ndimage

    src = lay.apply(raw)
    have = lay.spatial_shape
    if any(s == 0 for s in have):
        raise SegviewerError(f"{what}: the prediction has an empty axis {have}; cannot resample")
    factors = tuple(i / s for i, s in zip(img, have, strict=True))
    labels = kind is PredictionKind.LABELS
    out_dtype = src.dtype if labels else np.dtype(np.float32)
    lead = () if labels else (src.shape[0],)
    check_alloc(lead + img, out_dtype, what)
    out = np.empty(lead + img, dtype=out_dtype)
    order = 0 if labels else 1
    # grid_mode: voxel corners of both grids coincide (same field of view), as when a model
    # ran on a downsampled copy of the image
    for c in range(src.shape[0] if lead else 1):
        block = src if labels else np.asarray(src[c], dtype=np.float32)
        ndimage.zoom(
            block,
            factors,
            output=out if labels else out[c],
            order=order,
            mode="nearest",
            grid_mode=True,
        )
    name = "DHW" if labels else "CDHW"
    new = parse_layout(name, out.shape, img)
    scale = ", ".join(f"{f:.3g}" for f in factors)
    notes.append(
        f"Resampled from {have} onto the image grid {img} (zoom {scale}, "
        f"{'nearest neighbour' if labels else 'linear'}); the result is held in memory."
    )
    return out, dataclasses.replace(new, note=f"Layout {name} after resampling.")


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
