"""The one export path, shared by the window and the command line.

:func:`run_export` turns a volume and a prediction into files: a label map, binary masks per
class, per-class probabilities and annotated overlay pictures, in NIfTI (keeping the image's
geometry), PNG (per slice, oriented as displayed) and NumPy, plus a ``manifest.json``
describing every file, the sources, the settings and the per-class volumes
(``docs/manifest.md``).

Guarantees
----------
* Everything that can be checked is checked before the first file is written: shapes,
  classes, slices, the output folder, and existing files (refused unless ``force``).
* The export is built in a hidden staging folder inside the output folder
  (``.segviewer-staging-<pid>-<tag>``), each file written atomically
  (:mod:`segviewer.io.atomic`), ``manifest.json`` last; only when every file is complete
  are they renamed to their final names (signals held for those few renames; a failed
  rename puts the replaced files back). If the export fails or is cancelled (the consumer
  stops iterating: ``generator.close()`` raises ``GeneratorExit`` at the current
  ``yield``; Ctrl-C; SIGTERM), the staging folder is removed and the folder still holds
  the previous export, untouched, even with ``force``. A staging folder left by a killed
  process (SIGKILL) is removed by the next export into that folder, with a warning.
* Nothing is written outside the output folder: a link inside it on the way to a planned
  file (``out/masks -> /elsewhere``) is refused, and checked again just before the swap.
* Masks are written for the classes that some voxel holds or that the class table names
  (unless ``classes`` chooses), never for every index up to a stray label.
* The manifest names the sources by file name (``full_paths`` for full paths) and leaves
  out free-text DICOM fields (``free_text`` to include them); see ``docs/manifest.md``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
import secrets
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.classes import rgb_to_hex
from segviewer.core.export_plan import (
    MANIFEST_NAME,
    ExportPlan,
    PlannedFile,
    check_path_lengths,
    default_classes,
    plan_export,
)
from segviewer.core.orientation import orientation_code
from segviewer.core.types import (
    MaskSettings,
    Prediction,
    PredictionKind,
    Progress,
    SegviewerError,
    Volume,
    reserved_labels,
)
from segviewer.io.atomic import atomic_path, check_writable_dir
from segviewer.io.common import jsonable
from segviewer.io.writers import nifti_like

__all__ = ["ExportRequest", "ExportResult", "run_export", "MANIFEST_SCHEMA_VERSION"]

MANIFEST_SCHEMA_VERSION = 1

#: Volume metadata keys copied into the manifest (never patient fields).
_SAFE_METADATA = (
    "modality",
    "series_number",
    "manufacturer",
    "model",
    "field_strength_T",
    "sequence_name",
    "scanning_sequence",
    "echo_time_ms",
    "repetition_time_ms",
    "inversion_time_ms",
    "flip_angle_deg",
    "slice_thickness_mm",
    "body_part",
    "frame",
    "n_frames",
    "transfer_syntax",
)
#: Free text a person typed at the scanner (may name the patient or the study): in the
#: manifest only with ``ExportRequest(free_text=True)`` (``--free-text``).
_FREE_TEXT_METADATA = ("series_description",)


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how.

    Parameters
    ----------
    out_dir
        Output folder; created (with parents) if missing.
    what
        Any of ``"binary"`` (mask per class), ``"labels"`` (label map), ``"probabilities"``
        (float32 per class), ``"overlays"`` (annotated RGB PNG per slice), ``"errors"``
        (where the label map disagrees with the reference; needs ``reference``).
    formats
        Any of ``"nifti"``, ``"png"``, ``"npy"`` for masks, label maps and probabilities
        (overlays are always PNG; probabilities are never PNG).
    classes
        Class indices for binary masks and overlays; ``None``: all except background.
    view
        ``"axial"``, ``"coronal"`` or ``"sagittal"``: the slicing of per-slice PNGs.
    slices
        Slice indices along the view's slice axis for per-slice PNGs; ``None``: all.
    opacity
        Overlay opacity 0..1.
    mode
        Overlay drawing ``"fill"``, ``"outline"`` or ``"both"``.
    outline_width
        Outline thickness in pixels.
    window
        Grey display window ``(level, width)`` in image intensity units; ``None``: automatic
        (1st-99th percentile).
    legend
        Burn a legend into overlay pictures.
    annotate
        Give overlay pictures a caption (view, slice index, position in mm), orientation
        letters at the edges and a scale bar (``io.render.SliceInfo``); the manifest then
        records where the slice lies in each picture (``image_box``).
    force
        Overwrite existing files.
    settings
        Threshold / minimum confidence used to make the label map.
    radiological
        Radiological display convention for slice PNGs (patient right on picture left).
    scale
        Integer enlargement of overlay pictures (``None``: automatic, longer side >= 512 px).
    allow_identifiers
        Consent to write files that carry the patient's and study's identifiers: needed for
        the ``dicom-seg`` format (a DICOM SEG copies them from the source images so a PACS
        files it with the study). No other file ever carries them.
    full_paths
        Record the sources' full paths in the manifest (default: file names only, so a
        folder named after a patient does not travel with every export).
    free_text
        Copy free-text DICOM fields (SeriesDescription) into the manifest.
    review_notes
        Review notes of this case (``io.notes.Note.as_dict`` rows: case, axis, slice,
        verdict, comment, updated), recorded in the manifest's ``review_notes``; the window
        passes those of the open test-set case. The reviewer's own text: no DICOM field.
    """

    out_dir: Path | str
    what: frozenset[str] = frozenset({"binary", "labels"})
    formats: frozenset[str] = frozenset({"nifti"})
    classes: tuple[int, ...] | None = None
    view: str = "axial"
    slices: tuple[int, ...] | None = None
    opacity: float = 0.5
    mode: str = "fill"
    outline_width: int = 1
    window: tuple[float, float] | None = None
    legend: bool = True
    annotate: bool = True
    force: bool = False
    settings: MaskSettings = field(default_factory=MaskSettings)
    radiological: bool = True
    scale: int | None = None
    allow_identifiers: bool = False
    full_paths: bool = False
    free_text: bool = False
    review_notes: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise SegviewerError(f"opacity must be between 0 and 1, got {self.opacity}")
        if self.mode not in ("fill", "outline", "both"):
            raise SegviewerError(
                f"unknown overlay mode {self.mode!r}; choose fill, outline or both"
            )
        if self.outline_width < 1:
            raise SegviewerError(f"outline width must be 1 or more, got {self.outline_width}")
        if self.window is not None and not (
            len(self.window) == 2
            and all(math.isfinite(float(v)) for v in self.window)
            and float(self.window[1]) > 0
        ):
            raise SegviewerError(
                f"the window must be (level, width) with a positive width, got {self.window}"
            )
        if self.scale is not None and not 1 <= self.scale <= 16:
            raise SegviewerError(f"overlay scale must be 1..16, got {self.scale}")
        object.__setattr__(self, "what", frozenset(self.what))
        object.__setattr__(self, "formats", frozenset(self.formats))


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes
    ----------
    out_dir
        The output folder.
    files
        Absolute paths of the files written (manifest excluded), in writing order.
    manifest
        Path of ``manifest.json``.
    warnings
        Sentences for the user (formats that did not apply, class table fitted, NaN logits...).
    n_invalid, n_uncertain
        Voxels marked invalid (NaN/inf logits) and uncertain (below minimum confidence).
    counts
        Voxels per class of the label map, ``(n_classes,)`` int64.
    comparison
        :class:`segviewer.core.compare.Comparison` with the reference, ``None`` without one.
    """

    out_dir: Path
    files: tuple[Path, ...]
    manifest: Path
    warnings: tuple[str, ...]
    n_invalid: int = 0
    n_uncertain: int = 0
    counts: tuple[int, ...] = ()
    comparison: Any = None


def _check_reference(reference: np.ndarray, volume: Volume) -> None:
    if reference.dtype.kind not in "ui" or reference.ndim != 3:
        raise SegviewerError(
            f"the reference segmentation must be a 3-D integer label map, got "
            f"{reference.ndim}-D {reference.dtype}; load it with io.predictions.load_reference"
        )
    if tuple(reference.shape) != tuple(volume.shape):
        raise SegviewerError(
            f"the reference segmentation's shape {tuple(reference.shape)} does not match the "
            f"image shape {tuple(volume.shape)}; it must be on the image's grid"
        )


def _fit_table(table: Any, prediction: Prediction) -> tuple[Any, list[str]]:
    n = int(prediction.n_classes)
    if len(table) == n:
        return table, []
    if prediction.kind == PredictionKind.LABELS and len(table) > n:
        # A label map may simply not contain the highest classes; keep the whole table.
        return table, []
    fitted, warnings = table.fitted(n)
    return fitted, list(warnings)


def _existing(out_dir: Path, rel_paths: Iterable[str]) -> list[str]:
    return [p for p in rel_paths if (out_dir / p).exists() or (out_dir / p).is_symlink()]


_hex = rgb_to_hex


def run_export(
    volume: Volume,
    prediction: Prediction,
    table: Any,
    request: ExportRequest,
    *,
    provenance: dict[str, Any] | None = None,
    reference: np.ndarray | None = None,
    reference_source: str | None = None,
) -> Generator[Progress, None, ExportResult]:
    """Export masks, label maps, probabilities and overlays; yields progress, returns the result.

    Parameters
    ----------
    volume
        The image (image axes ``(a0, a1, a2)``, RAS affine).
    prediction
        Aligned to ``volume``: ``prediction.spatial_shape == volume.shape``.
    table
        :class:`~segviewer.core.classes.ClassTable`; fitted to the prediction's number of
        classes (with a warning) when it differs.
    request
        What to write where.
    provenance
        Model information (path, hash, card, framework versions) recorded in the manifest;
        ``None`` when the prediction came from a file.
    reference
        Reference segmentation (ground truth), ``(a0, a1, a2)`` integer label map on the
        image grid (:func:`segviewer.io.predictions.load_reference`). When given, the
        manifest gets a ``comparison`` object (:mod:`segviewer.core.compare`) and
        ``request.what`` may include ``"errors"``.
    reference_source
        Where the reference came from (a path), recorded in the manifest.

    Yields
    ------
    Progress
        Computing the label map (forwarded from :func:`segviewer.core.masks.iter_labels`),
        comparing with the reference, then one step per file.

    Returns
    -------
    ExportResult

    Raises
    ------
    SegviewerError
        Shape mismatch (naming both shapes), bad classes or slices, unwritable folder,
        existing files without ``force``, full disk. Nothing is left half-written.

    Notes
    -----
    Files (see :mod:`segviewer.core.export_plan` and ``docs/manifest.md``): NIfTI volumes
    have the image's shape ``(a0, a1, a2)`` and affine; probabilities are float32,
    ``(a0, a1, a2, C)`` in NIfTI and ``(C, a0, a1, a2)`` in ``.npy``; binary masks are 0/1
    (NIfTI, npy) or 0/255 (PNG); label maps keep class indices, with the reserved
    uncertain / invalid values (254 / 255 for uint8) where they apply; error maps are 0
    (agree or reference unscored) / 2 (disagree) in NIfTI and npy, 0 / 255 in PNG. Per-slice
    PNGs are
    oriented as the window shows the view (row 0 at the top, radiological convention).
    """
    from segviewer._version import __version__
    from segviewer.core.compare import error_map, iter_compare
    from segviewer.core.masks import binary_mask_from_block, iter_labels, iter_probabilities
    from segviewer.core.orientation import display_axes, take_slice
    from segviewer.core.overlay import auto_window, build_lut, window_to_uint8
    from segviewer.io.render import render_slice
    from segviewer.io.writers import write_nifti, write_npy, write_png

    # ---- checks and plan: nothing is written before all of these pass ----------------------
    if tuple(prediction.spatial_shape) != tuple(volume.shape):
        raise SegviewerError(
            f"the prediction's spatial shape {tuple(prediction.spatial_shape)} does not match "
            f"the image shape {tuple(volume.shape)}; check the layout (--layout) or resample "
            "(--resample)"
        )
    if reference is not None:
        _check_reference(reference, volume)
    warnings: list[str] = []
    table, fit_warnings = _fit_table(table, prediction)
    warnings += fit_warnings
    what = set(request.what)
    if "overlay" in what:
        what = (what - {"overlay"}) | {"overlays"}
    if "probabilities" in what and prediction.kind == PredictionKind.LABELS:
        what.discard("probabilities")
        warnings.append("the prediction is a label map; it has no probabilities to export")
        if not what:
            raise SegviewerError(
                "the prediction is a label map, so there are no probabilities to export; "
                "choose labels, binary or overlays"
            )
    axes = display_axes(volume.affine, request.view, request.radiological)
    n_sl = int(volume.shape[axes.slice_axis])
    out_dir = Path(request.out_dir).expanduser()
    # refuse at once what needs no label map: an unwritable folder, an existing export
    # without --force (its manifest is always planned), links out of the folder
    check_path_lengths(str(out_dir), [MANIFEST_NAME])
    _check_out_dir(out_dir, [MANIFEST_NAME], request.force)
    guard = _MappedGuard([volume.data, prediction.data, reference])

    steps_labels = 400
    steps_compare = 100 if reference is not None else 0
    # the number of files is known only after the label map: they share 1000 steps
    steps_files = 1000
    total = steps_labels + steps_compare + (200 if "probabilities" in what else 0) + steps_files
    done = 0
    # ---- label map (nothing written yet) -----------------------------------------------
    gen = iter_labels(prediction, request.settings)
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        yield Progress(
            int(steps_labels * p.fraction), total, p.message or "computing the label map"
        )
        guard.check()  # before the next block is read: a shrunk file would raise SIGBUS
    guard.check()
    done = steps_labels
    labels = result.labels
    counts = np.asarray(result.counts, dtype=np.int64)
    n_invalid = int(result.n_invalid)
    n_uncertain = int(result.n_uncertain)
    if n_invalid:
        examples = list(getattr(result, "invalid_examples", []))[:3]
        warnings.append(
            f"{n_invalid} voxels have NaN or infinite values in the prediction; they are "
            f"marked invalid ({reserved_labels(labels.dtype)[1]}) in the label map, not "
            f"background"
            + (f" (e.g. voxels {[tuple(int(i) for i in e) for e in examples]})" if examples else "")
        )
    classes = request.classes
    if classes is None:
        # a label map's class count comes from its largest value, a class table's from its
        # largest index: one stray voxel (or entry) of 65533 must not plan 65,533 masks. A
        # model's channels are its classes: all of them count as present.
        held = [int(c) for c in counts]
        if prediction.kind != PredictionKind.LABELS:
            n_pred = min(int(prediction.n_classes), len(table))
            held = [1] * n_pred + [0] * (len(table) - n_pred)
        classes, class_notes = default_classes(
            table, held, label_map=prediction.kind == PredictionKind.LABELS
        )
        warnings += class_notes
    plan = plan_export(
        table,
        classes=classes,
        what=what,
        formats=request.formats,
        n_slices=n_sl,
        view=request.view,
        slices=request.slices,
        reference=reference is not None,
    )
    warnings += plan.warnings
    seg_sources = _seg_sources(plan, volume, request)
    planned_paths = [*plan.paths(), MANIFEST_NAME]
    check_path_lengths(str(out_dir), planned_paths)
    _check_out_dir(out_dir, planned_paths, request.force)
    per_file = steps_files / (len(plan.files) + 1)

    created_dirs: list[Path] = []
    staging: Path | None = None
    file_entries: list[dict[str, Any]] = []
    try:
        created_dirs = _make_dirs(out_dir)
        warnings += _remove_stale(out_dir, planned_paths)
        staging = _make_staging(out_dir)

        comparison: Any = None
        errors: np.ndarray | None = None
        vox_mm3 = float(abs(np.linalg.det(volume.affine[:3, :3])))
        if reference is not None:
            gen_c = iter_compare(labels, reference, len(table), vox_mm3)
            while True:
                try:
                    p = next(gen_c)
                except StopIteration as stop:
                    comparison = stop.value
                    break
                yield Progress(
                    done + int(steps_compare * p.fraction), total, "comparing with the reference"
                )
                guard.check()
            done += steps_compare
            if comparison.n_ignored:
                warnings.append(
                    f"{comparison.n_ignored} reference voxels have no class of the table "
                    f"(0..{len(table) - 1}) and were left out of the comparison"
                )
            if any(f.what == "errors" for f in plan.files):
                errors = error_map(labels, reference, n_classes=len(table))

        probs: np.ndarray | None = None
        if "probabilities" in what and any(f.what == "probabilities" for f in plan.files):
            gen_p = iter_probabilities(prediction)
            while True:
                try:
                    p = next(gen_p)
                except StopIteration as stop:
                    probs = np.asarray(stop.value, dtype=np.float32)
                    break
                yield Progress(
                    done + int(200 * p.fraction), total, p.message or "computing probabilities"
                )
                guard.check()
            done += 200

        # ---- overlays need a window and a colour table -------------------------------------
        window: tuple[float, float] | None = None
        lut: np.ndarray | None = None
        visible: list[bool] = []
        if any(f.what == "overlay" for f in plan.files):
            if request.window is None:
                level, width = auto_window(volume.data)
                window = (float(level), float(width))
            else:
                window = (float(request.window[0]), float(request.window[1]))
            chosen = set(plan.classes)
            visible = [k in chosen for k in range(len(table))]
            lut_size = int(np.iinfo(labels.dtype).max) + 1
            lut = build_lut(table, visible, request.opacity, lut_size)

        multilabel = prediction.kind == PredictionKind.MULTILABEL
        pixel_aspect = axes.row_spacing / axes.col_spacing if axes.col_spacing > 0 else 1.0
        mask_cache: dict[int, np.ndarray] = {}

        def binary(k: int) -> np.ndarray:
            if k not in mask_cache:
                mask_cache.clear()  # keep one class's mask at a time
                if multilabel:
                    # Classes overlap: class k is channel k-1 thresholded on its own.
                    mask_cache[k] = binary_mask_from_block(
                        prediction.channels_first(),
                        prediction.kind,
                        k,
                        request.settings,
                        values_are_probabilities=prediction.values_are_probabilities,
                    )
                else:
                    mask_cache[k] = labels == k
            return mask_cache[k]

        files_from = done
        for i, f in enumerate(plan.files):
            done = files_from + int(i * per_file)
            target = staging / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            yield Progress(done, total, f"writing {f.path}")
            guard.check()
            if f.format == "dicom-seg":
                seg_entry = _write_seg(
                    f,
                    target,
                    volume=volume,
                    prediction=prediction,
                    table=table,
                    classes=plan.classes,
                    binary=binary,
                    probs=probs,
                    request=request,
                    provenance=provenance,
                    sources=seg_sources,
                )
                file_entries.append(seg_entry)
                continue
            extra: dict[str, Any] = {}
            arr = _write_one(
                f,
                target,
                request=request,
                volume=volume,
                labels=labels,
                errors=errors,
                probs=probs,
                binary=binary,
                axes=axes,
                take_slice=take_slice,
                window=window,
                lut=lut,
                visible=visible,
                table=table,
                pixel_aspect=pixel_aspect,
                writers=(write_nifti, write_png, write_npy),
                render=render_slice,
                window_to_uint8=window_to_uint8,
                extra=extra,
            )
            entry: dict[str, Any] = {
                "path": f.path,
                "what": f.what,
                "class_index": f.class_index,
                "class_name": f.class_name,
                "format": f.format,
                "slice_index": f.slice_index,
                "view": f.view,
                "shape": list(arr.shape),
                "dtype": str(arr.dtype),
                **extra,
            }
            if f.what in ("binary", "errors") and f.slice_index is None:
                entry["voxels"] = int(np.count_nonzero(arr))
            file_entries.append(entry)

        # ---- manifest, last ---------------------------------------------------------------
        done = files_from + int(len(plan.files) * per_file)
        yield Progress(done, total, f"writing {MANIFEST_NAME}")
        listed = {0, *plan.classes, *(int(k) for k in np.flatnonzero(counts))}
        classes_out = []
        for c in table.classes:
            k = int(c.index)
            if k not in listed and str(c.name) == f"class {k}":
                continue  # an unnamed class no voxel holds: nothing to say about it
            n_vox = int(counts[k]) if k < counts.size else 0
            classes_out.append(
                {
                    "index": k,
                    "name": str(c.name),
                    "color": _hex(c.color),
                    "voxels": n_vox,
                    "volume_mm3": round(n_vox * vox_mm3, 3),
                }
            )
        comparison_out: dict[str, Any] | None = None
        if comparison is not None and reference is not None:
            comparison_out = {
                "reference": {
                    "path": _shown_path(reference_source, request.full_paths),
                    "shape": list(reference.shape),
                    "dtype": str(reference.dtype),
                },
                **comparison.as_dict(),
            }
            for c in comparison_out["classes"]:
                c["name"] = str(table[c["index"]].name)
        layout = prediction.layout
        safe_keys = _SAFE_METADATA + (_FREE_TEXT_METADATA if request.free_text else ())
        manifest = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "segviewer_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "sources": {
                "image": {
                    "path": _shown_path(volume.source, request.full_paths),
                    "format": volume.format,
                    "shape": list(volume.shape),
                    "dtype": str(volume.data.dtype),
                    "spacing_mm": list(volume.spacing),
                    "orientation": orientation_code(volume),
                    "affine": volume.affine.tolist(),
                    "metadata": {k: volume.metadata[k] for k in safe_keys if k in volume.metadata},
                },
                "prediction": {
                    "path": _shown_path(prediction.source, request.full_paths),
                    "kind": prediction.kind.value,
                    "raw_shape": list(prediction.data.shape),
                    "dtype": str(prediction.data.dtype),
                    "layout": getattr(layout, "name", None),
                    "layout_note": getattr(layout, "note", None),
                    "n_classes": int(prediction.n_classes),
                    "values_are_probabilities": bool(prediction.values_are_probabilities),
                    "notes": [_strip_paths(str(n), request.full_paths) for n in prediction.notes],
                    "resampling": None
                    if prediction.resampling is None
                    else prediction.resampling.as_dict(),
                },
            },
            "settings": {
                "threshold": request.settings.threshold,
                "min_confidence": request.settings.min_confidence,
                "view": request.view,
                "radiological": request.radiological,
                "slices": list(plan.slices)
                if any(f.slice_index is not None for f in plan.files)
                else None,
                "window": list(window) if window is not None else None,
                "window_auto": request.window is None,
                "opacity": request.opacity,
                "mode": request.mode,
                "outline_width": request.outline_width,
                "legend": request.legend,
                "annotate": request.annotate,
                "what": sorted(what),
                "formats": sorted(request.formats),
                "classes": list(plan.classes),
                "allow_identifiers": request.allow_identifiers,
                "full_paths": request.full_paths,
            },
            "classes": classes_out,
            "label_values": {
                "dtype": str(labels.dtype),
                "uncertain": reserved_labels(labels.dtype)[0],
                "invalid": reserved_labels(labels.dtype)[1],
            },
            # an empty dict means "no model": null
            "provenance": _private_provenance(provenance, request.full_paths) or None,
            "comparison": comparison_out,
            "review_notes": [dict(n) for n in request.review_notes],
            "voxel_volume_mm3": vox_mm3,
            "n_invalid": n_invalid,
            "n_uncertain": n_uncertain,
            "warnings": [_strip_paths(w, request.full_paths) for w in warnings],
            "files": file_entries,
        }
        text = json.dumps(jsonable(manifest), indent=2, ensure_ascii=False, allow_nan=False)
        with atomic_path(staging / MANIFEST_NAME) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        guard.check()
        # ---- swap the finished export in ----------------------------------------------------
        _swap_in(staging, out_dir, planned_paths, created_dirs)
        yield Progress(total, total, "export finished")
    except BaseException:
        # Failure or cancel (GeneratorExit at a yield, Ctrl-C, SIGTERM): the staging folder
        # goes, the previous export in the folder was never touched.
        if staging is not None:
            _remove_tree(staging)
        for d in reversed(created_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()  # only removes it if empty
        raise
    finally:
        if staging is not None and staging.exists():
            _remove_tree(staging)
    return ExportResult(
        out_dir=out_dir,
        files=tuple(out_dir / f.path for f in plan.files),
        manifest=out_dir / MANIFEST_NAME,
        warnings=tuple(warnings),
        n_invalid=n_invalid,
        n_uncertain=n_uncertain,
        counts=tuple(int(c) for c in counts),
        comparison=comparison,
    )


def _seg_sources(plan: ExportPlan, volume: Volume, request: ExportRequest) -> list[Any] | None:
    """Checks for DICOM SEG files before anything is written; their source headers."""
    if not any(f.format == "dicom-seg" for f in plan.files):
        return None
    from segviewer.io.dicomseg import IDENTIFIER_NOTICE, source_instances

    if not request.allow_identifiers:
        raise SegviewerError(
            f"{IDENTIFIER_NOTICE}; to write one, confirm it (--allow-identifiers, or tick "
            "'include patient and study identifiers' in the export dialog), or leave out "
            "the dicom-seg format"
        )
    return source_instances(volume)


def _write_seg(
    f: PlannedFile,
    target: Path,
    *,
    volume: Volume,
    prediction: Prediction,
    table: Any,
    classes: tuple[int, ...],
    binary: Any,
    probs: np.ndarray | None,
    request: ExportRequest,
    provenance: dict[str, Any] | None,
    sources: list[Any] | None,
) -> dict[str, Any]:
    """Write one DICOM SEG; returns its manifest entry (no identifiers in it)."""
    from segviewer.io.dicomseg import write_seg

    fractional = f.what == "probabilities"
    if fractional:
        assert probs is not None
        masks: list[np.ndarray] = [probs[k] for k in classes]
    else:
        masks = [np.asarray(binary(k)).copy() for k in classes]
    info = write_seg(
        volume,
        masks,
        table,
        classes,
        target,
        allow_identifiers=request.allow_identifiers,
        fractional=fractional,
        provenance=provenance,
        prediction_source=str(prediction.source),
        force=request.force,
        sources=sources,
    )
    return {
        "path": f.path,
        "what": f.what,
        "class_index": None,
        "class_name": None,
        "format": f.format,
        "slice_index": None,
        "view": None,
        "shape": [len(classes), *volume.shape],
        "dtype": "float32" if fractional else "uint8",
        "voxels": None if fractional else [int(np.count_nonzero(m)) for m in masks],
        "dicom_seg": info,
    }


# --------------------------------------------------------------------------------------
# the output folder: checks, staging, swap


#: Prefix of the hidden folder an export is built in (inside the output folder), followed by
#: the process id and a random tag: ``.segviewer-staging-1234-1a2b3c4d``.
STAGING_PREFIX = ".segviewer-staging-"
_STAGING_RE = re.compile(re.escape(STAGING_PREFIX) + r"(\d+)-[0-9a-f]{8}$")
_PARTIAL_RE = re.compile(r"^\.(?P<stem>.+)\.partial-[0-9a-f]{8}(?P<suffix>(\.[^.]+)*)$")


def _check_out_dir(out_dir: Path, rel_paths: list[str], force: bool) -> None:
    """The output folder can take these files: writable, no clash without ``force``, and no
    link (or ``..``) that would put a file outside it."""
    try:
        _check_out_dir_unguarded(out_dir, rel_paths, force)
    except OSError as exc:  # a name too long, a folder we may not look into, ...
        raise SegviewerError(
            f"cannot use the output folder {out_dir} ({exc.strerror or exc}); choose another"
        ) from exc


def _check_out_dir_unguarded(out_dir: Path, rel_paths: list[str], force: bool) -> None:
    if out_dir.exists():
        check_writable_dir(out_dir)
        root = out_dir.resolve()
        for rel in rel_paths:
            here = out_dir
            for part in Path(rel).parts[:-1]:
                here = here / part
                if here.is_symlink():
                    raise SegviewerError(
                        f"{here} is a link to {os.path.realpath(here)}; segviewer writes "
                        "nothing outside the output folder: remove the link or choose another "
                        "output folder"
                    )
                if not here.exists():
                    break
                if not here.is_dir():
                    raise SegviewerError(
                        f"{here} is a file, but the export needs a folder there; remove it or "
                        "choose another output folder"
                    )
            target = out_dir / rel
            real = Path(os.path.realpath(target.parent))
            if real != root and root not in real.parents:
                raise SegviewerError(
                    f"{target} would be written outside the output folder {out_dir}; choose "
                    "another output folder"
                )
        clash = _existing(out_dir, rel_paths)
        if clash and not force:
            shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
            raise SegviewerError(
                f"{out_dir} already holds {shown}; use --force to overwrite, or choose another "
                "output folder"
            )
        for rel in clash:
            if (out_dir / rel).is_dir() and not (out_dir / rel).is_symlink():
                raise SegviewerError(
                    f"{out_dir / rel} is a folder; remove it or choose another output folder"
                )
    else:
        parent = next((p for p in out_dir.parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            raise SegviewerError(
                f"cannot create the output folder {out_dir}; choose a writable folder"
            )
        check_writable_dir(parent)


def _make_dirs(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and its missing parents; returns those created (outermost first)."""
    missing = [m for m in [out_dir, *out_dir.parents] if not m.exists()]
    created: list[Path] = []
    for m in reversed(missing):
        try:
            m.mkdir()
        except OSError as exc:
            for d in reversed(created):
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise SegviewerError(
                f"cannot create the folder {m} ({exc.strerror}); choose a writable folder"
            ) from exc
        created.append(m)
    return created


def _make_staging(out_dir: Path) -> Path:
    staging = out_dir / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise SegviewerError(
            f"cannot create a folder in {out_dir} ({exc.strerror}); choose a writable folder"
        ) from exc
    return staging


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its folder alone
    try:  # Linux: a killed process nobody has reaped yet (a zombie) is dead too
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _remove_stale(out_dir: Path, rel_paths: list[str]) -> list[str]:
    """Remove what an export killed outright (SIGKILL, power loss) left in ``out_dir``.

    Only what segviewer recognises as its own: staging folders of processes that no longer
    run, and hidden ``.NAME.partial-XXXXXXXX.EXT`` files next to a file this export plans.
    Returns a note for the user when something was removed.
    """
    removed: list[str] = []
    for entry in out_dir.iterdir():
        m = _STAGING_RE.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and not _pid_alive(int(m.group(1))):
            _remove_tree(entry)
            removed.append(entry.name)
    planned: dict[str, set[str]] = {}
    for rel in rel_paths:
        parent, _, name = rel.rpartition("/")
        planned.setdefault(parent, set()).add(name)
    for parent, names in planned.items():
        folder = out_dir / parent if parent else out_dir
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            m = _PARTIAL_RE.match(entry.name)
            if m and entry.is_file() and m.group("stem") + m.group("suffix") in names:
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(f"{parent}/{entry.name}" if parent else entry.name)
    if not removed:
        return []
    shown = ", ".join(removed[:3]) + (f" and {len(removed) - 3} more" if len(removed) > 3 else "")
    return [
        f"removed {len(removed)} unfinished file{'s' if len(removed) > 1 else ''} of an earlier "
        f"export that was killed ({shown})"
    ]


def _swap_in(staging: Path, out_dir: Path, rel_paths: list[str], created: list[Path]) -> None:
    """Move the finished files from ``staging`` to their final names, manifest last.

    Files they replace are first moved aside (into the staging folder); if a rename fails
    half-way, the moved files are put back, so the folder holds the old export or the new
    one, never a mix. Renames within one folder tree are atomic and need no space.
    """
    old = staging / ".old"
    moved: list[tuple[Path, Path]] = []  # (final, aside)
    placed: list[Path] = []
    blocked = _block_signals()
    try:
        for rel in rel_paths:
            final = out_dir / rel
            # checked again now: a link made while the export ran must not be followed
            here = out_dir
            for part in Path(rel).parts[:-1]:
                here = here / part
                if here.is_symlink():
                    raise SegviewerError(
                        f"{here} became a link while exporting; nothing was written outside "
                        f"{out_dir}, and the previous files are kept"
                    )
            if final.exists() or final.is_symlink():
                aside = old / rel
                aside.parent.mkdir(parents=True, exist_ok=True)
                os.replace(final, aside)
                moved.append((final, aside))
            if not final.parent.exists():
                for d in reversed([final.parent, *final.parent.parents]):
                    if not d.exists():
                        d.mkdir()
                        created.append(d)
            os.replace(staging / rel, final)
            placed.append(final)
    except BaseException as exc:
        for final in placed:
            with contextlib.suppress(OSError):
                final.unlink()
        for final, aside in reversed(moved):
            with contextlib.suppress(OSError):
                os.replace(aside, final)
        if isinstance(exc, OSError):
            raise SegviewerError(
                f"could not move the finished export into {out_dir} ({exc.strerror or exc}); "
                "the previous files are kept"
            ) from exc
        raise
    finally:
        _unblock_signals(blocked)


def _block_signals() -> Any:
    """Hold Ctrl-C / SIGTERM / SIGHUP during the swap (a few renames); POSIX only."""
    import signal

    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None:
        return None
    sigs = {getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)}
    return mask(signal.SIG_BLOCK, sigs)


def _unblock_signals(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _remove_tree(path: Path) -> None:
    import shutil

    with contextlib.suppress(OSError):
        shutil.rmtree(path)


# --------------------------------------------------------------------------------------
# privacy of the manifest


def _shown_path(path: Any, full: bool) -> str | None:
    """A source path as the manifest records it: the file name only, unless ``full``."""
    if path is None:
        return None
    text = str(path)
    if full or text.startswith("<"):
        return text
    return Path(text).name


def _strip_paths(text: str, full: bool) -> str:
    """``text`` with absolute paths cut to their file names (messages may quote paths)."""
    if full:
        return text
    return re.sub(
        r"(?<![\w.])(?:[A-Za-z]:)?[/\\](?:[^\s/\\:;,'\"]+[/\\])+([^\s/\\:;,'\"]+)", r"\1", text
    )


def _private_provenance(value: Any, full: bool) -> Any:
    """Provenance with paths (keys ``path`` / ``*_path`` / ``model``) cut to file names."""
    if full or value is None:
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if isinstance(v, str) and (
                k == "path" or str(k).endswith("_path") or k in ("model", "card")
            ):
                out[k] = _shown_path(v, False)
            else:
                out[k] = _private_provenance(v, full)
        return out
    if isinstance(value, (list, tuple)):
        return [_private_provenance(v, full) for v in value]
    if isinstance(value, str):
        return _strip_paths(value, full)
    return value


# --------------------------------------------------------------------------------------
# memory-mapped sources that shrink while they are read


class _MappedGuard:
    """Checks between reading blocks that memory-mapped source files still hold their data.

    Reading a page of a mapped file that another process truncated raises SIGBUS, which
    kills the process with no message; checking the size before each block turns the common
    case (the file shrank before or between blocks) into a clear error naming the file. A
    truncation in the middle of one block cannot be caught in Python; the export is then
    killed, but its files live only in the staging folder, which the next run removes.
    """

    def __init__(self, arrays: Iterable[Any]) -> None:
        self.files: list[tuple[str, int]] = []
        for arr in arrays:
            base = arr
            while isinstance(getattr(base, "base", None), np.ndarray):
                base = base.base
            if isinstance(base, np.memmap) and getattr(base, "filename", None):
                need = int(base.offset) + int(base.nbytes)
                self.files.append((str(base.filename), need))

    def check(self) -> None:
        for name, need in self.files:
            try:
                size = os.stat(name).st_size
            except OSError as exc:
                raise SegviewerError(
                    f"{name} disappeared while it was being read ({exc.strerror}); the export "
                    "was stopped and nothing was written"
                ) from exc
            if size < need:
                raise SegviewerError(
                    f"{name} shrank to {size} bytes while it was being read (it needs {need}); "
                    "another program changed it. The export was stopped and nothing was written"
                )


def _write_one(
    f: PlannedFile,
    target: Path,
    *,
    request: ExportRequest,
    volume: Volume,
    labels: np.ndarray,
    errors: np.ndarray | None,
    probs: np.ndarray | None,
    binary: Any,
    axes: Any,
    take_slice: Any,
    window: tuple[float, float] | None,
    lut: np.ndarray | None,
    visible: list[bool],
    table: Any,
    pixel_aspect: float,
    writers: tuple[Any, Any, Any],
    render: Any,
    window_to_uint8: Any,
    extra: dict[str, Any] | None = None,
) -> np.ndarray:
    """Write one planned file; returns the array written (for the manifest's shape/dtype).
    ``extra`` receives what the manifest adds for the file (an overlay's ``image_box``: where
    the slice lies in the picture, ``[top, left, height, width]``)."""
    write_nifti, write_png, write_npy = writers
    force = request.force
    arr: np.ndarray
    if f.what == "labels":
        arr = labels if f.slice_index is None else take_slice(labels, axes, f.slice_index)
        desc = "segviewer label map"
    elif f.what == "binary":
        assert f.class_index is not None
        mask = binary(f.class_index)
        if f.slice_index is None:
            arr = mask.astype(np.uint8)
        else:
            arr = take_slice(mask, axes, f.slice_index).astype(np.uint8) * np.uint8(255)
        desc = f"segviewer mask: {f.class_name}"
    elif f.what == "errors":
        assert errors is not None
        if f.slice_index is None:
            arr = errors
        else:
            # PNG: 0 agree, 255 disagree (a visible mask, like binary PNGs)
            arr = (take_slice(errors, axes, f.slice_index) != 0).astype(np.uint8) * np.uint8(255)
        desc = "segviewer errors: 0 agree, 2 disagree with reference"
    elif f.what == "probabilities":
        assert probs is not None
        # NIfTI stores extra dimensions last: (a0, a1, a2, C); npy keeps (C, a0, a1, a2).
        arr = np.moveaxis(probs, 0, -1) if f.format == "nifti" else probs
        desc = "segviewer probabilities"
    elif f.what == "overlay":
        assert window is not None and lut is not None and f.slice_index is not None
        grey = window_to_uint8(
            np.asarray(take_slice(volume.data, axes, f.slice_index)), window[0], window[1]
        )
        lab = np.ascontiguousarray(take_slice(labels, axes, f.slice_index))
        info = None
        if request.annotate:
            from segviewer.core.orientation import edge_letters, orientation_known, slice_position
            from segviewer.io.render import SliceInfo

            info = SliceInfo(
                view=axes.view,
                index=int(f.slice_index),
                n_slices=int(volume.shape[axes.slice_axis]),
                position=slice_position(volume.affine, axes, f.slice_index, volume.shape),
                letters=edge_letters(volume.affine, axes) if orientation_known(volume) else {},
                col_spacing=float(axes.col_spacing),
            )
        arr, box = render(
            np.ascontiguousarray(grey),
            lab,
            lut,
            table,
            mode=request.mode,
            outline_width=request.outline_width,
            legend=request.legend,
            visible=visible,
            scale=request.scale,
            pixel_aspect=pixel_aspect,
            info=info,
        )
        if extra is not None:
            extra["image_box"] = [int(v) for v in box]
        write_png(arr, target, force=force)
        return arr
    else:  # pragma: no cover - plan_export only produces the kinds above
        raise SegviewerError(f"internal: unknown export kind {f.what}")
    if f.format == "nifti":
        write_nifti(
            arr, volume.affine, target, force=force, description=desc, like=nifti_like(volume)
        )
    elif f.format == "npy":
        write_npy(arr, target, force=force)
    else:
        write_png(np.ascontiguousarray(arr), target, force=force)
    return arr
