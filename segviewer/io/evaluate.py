"""``segviewer evaluate``: score every case of a test set, case by case on Dask.

:func:`run_evaluation` is a plain generator (it yields :class:`Progress`, returns an
:class:`EvaluationResult`) like the export: the command line prints a progress bar from it,
the window can run it on a worker thread. The per-case work is :func:`iter_evaluate_case`
(itself a generator: load the image, the prediction or run the model, the reference,
stream the label map and the uncertainty, measure with :mod:`segviewer.core.metrics`, draw
the worst slice); :func:`evaluate_case` runs it to the end and turns any failure into a
:class:`CaseResult` with an error, and is what the Dask workers run.

Where the work runs
-------------------
``workers=0``: in this process, one case after the other. ``workers=N`` (default: the
number of CPU cores, at most the number of cases): a local Dask cluster of N worker
processes, one thread each. ``scheduler="tcp://host:8786"``: an existing Dask cluster.
Workers open the case files themselves (every worker must see the same paths); the results
come back to this process, which alone writes the output folder.

Output folder
-------------
``cases/<id>.json``
    One case's rows (the resume state), written atomically as soon as the case is done,
    with a fingerprint of its input files (size and modification time) and the options.
``cases/<id>.png``
    The case's worst slice: prediction(s), reference and the errors of its worst class.
``cases.csv``, ``slices.csv``, ``summary.json``, ``report.html``
    Written last, from the per-case files (see :data:`CASE_COLUMNS`, :data:`SLICE_COLUMNS`
    and :mod:`segviewer.io.report`).

Resume and failures
-------------------
Without ``resume`` a folder that already holds case results is refused. With it, a case
whose ``cases/<id>.json`` exists with the same fingerprint is skipped; a changed case is
computed again. A failing case (unreadable file, wrong shape, a worker killed for memory) is
reported in ``summary.json`` and the report, and never stops the others; it is tried again
on the next ``resume``.

Memory
------
Per case a worker holds the image, one label map per prediction and the reference (one
byte per voxel each) and chunk-sized buffers: logits are streamed from their (memory-mapped)
file chunk by chunk, never loaded whole.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.colours import error_colors
from segviewer.core.metrics import (
    LOW_CONFIDENCE,
    METRIC_COLUMNS,
    METRICS,
    CaseMetrics,
    ClassMetrics,
)
from segviewer.core.types import MaskSettings, Progress, SegviewerError
from segviewer.io.atomic import atomic_path, check_writable_dir
from segviewer.io.common import jsonable
from segviewer.io.testset import Case, CaseList, load_cases

__all__ = [
    "CASE_COLUMNS",
    "SLICE_COLUMNS",
    "SCHEMA_VERSION",
    "EvaluateOptions",
    "CaseResult",
    "EvaluationResult",
    "iter_evaluate_case",
    "evaluate_case",
    "run_evaluation",
    "read_rows",
    "Evaluation",
    "open_evaluation",
]

SCHEMA_VERSION = 1

_METRIC_COLUMNS = METRIC_COLUMNS
#: Columns of ``cases.csv`` (one row per case, model and class). ``model`` is ``a`` (the
#: ``prediction`` column) or ``b`` (``prediction_b``); ``axis`` / ``worst_slice`` say where
#: to look first (image axis, 0-based slice); ``dice_a_b`` is the Dice of the two
#: predictions against each other; ``verdict`` / ``comment`` come from the review notes.
CASE_COLUMNS: tuple[str, ...] = (
    "case",
    "model",
    "class",
    "class_index",
    *_METRIC_COLUMNS,
    "axis",
    "worst_slice",
    "dice_a_b",
    "verdict",
    "comment",
)
#: Columns of ``slices.csv`` (one row per case, model, slice and class).
SLICE_COLUMNS: tuple[str, ...] = (
    "case",
    "model",
    "class",
    "class_index",
    "axis",
    "slice",
    *_METRIC_COLUMNS,
    "verdict",
    "comment",
)
_CASES_DIR = "cases"
_OUTPUTS = ("cases.csv", "slices.csv", "summary.json", "report.html")
_TP_COLOR = (235, 235, 235)  # neutral: a class colour could be mistaken for an error hue


@dataclass(frozen=True)
class EvaluateOptions:
    """How to evaluate (the same for every case).

    Parameters
    ----------
    classes
        A class table for every case without its own ``classes`` column.
    view
        ``axial``, ``coronal`` or ``sagittal``: the slices of the per-slice metrics and
        pictures.
    settings
        Threshold / minimum confidence that turn a prediction into a label map.
    low_confidence
        Top-probability threshold of a low-confidence voxel.
    distances, slice_distances
        Compute HD95 / ASSD per case / per slice (the slowest part).
    model
        Run this model on every image (instead of reading ``prediction``).
    trust_model
        Allow a model that runs code on load.
    n_worst
        How many worst cases the summary and the report list.
    """

    classes: str | None = None
    view: str = "axial"
    settings: MaskSettings = field(default_factory=MaskSettings)
    low_confidence: float = LOW_CONFIDENCE
    distances: bool = True
    slice_distances: bool = True
    model: str | None = None
    trust_model: bool = False
    n_worst: int = 5

    def __post_init__(self) -> None:
        if self.view not in ("axial", "coronal", "sagittal"):
            raise SegviewerError(f"unknown view {self.view!r}; choose axial, coronal or sagittal")
        if not 0.0 < self.low_confidence <= 1.0:
            raise SegviewerError(
                f"the low-confidence threshold must be in (0, 1], got {self.low_confidence}"
            )
        if self.n_worst < 1:
            raise SegviewerError(f"n_worst must be 1 or more, got {self.n_worst}")

    def fingerprint_fields(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("n_worst")
        return d


@dataclass(frozen=True)
class CaseResult:
    """What one case gives back to the coordinating process.

    Attributes
    ----------
    case_id
        The case.
    record
        JSON-ready rows (``None`` on failure): ``rows`` (``cases.csv`` without the notes
        columns), ``slices`` (``{"columns", "rows"}``), ``warnings``, ``picture_class``...
    picture
        PNG bytes of the worst-slice picture, or None.
    error
        One line saying why the case failed, or None.
    seconds
        Time the case took (wall clock).
    cpu_seconds
        CPU time of the thread that computed it (independent of how busy the machine was).
    """

    case_id: str
    record: dict[str, Any] | None
    picture: bytes | None = None
    error: str | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`run_evaluation` did.

    Attributes
    ----------
    out_dir
        The output folder.
    files
        ``cases.csv``, ``slices.csv``, ``summary.json``, ``report.html``.
    n_cases, n_evaluated, n_resumed
        Cases in the test set, computed in this run, skipped because already done.
    failed
        ``(case id, reason)`` of the cases that failed.
    seconds
        Wall time of the case computations in this run (after the workers started).
    cases_per_second
        ``n_evaluated / seconds`` (NaN when nothing was computed).
    workers
        Worker count (0: in this process).
    summary
        The content of ``summary.json``.
    """

    out_dir: Path
    files: tuple[Path, ...]
    n_cases: int
    n_evaluated: int
    n_resumed: int
    failed: tuple[tuple[str, str], ...]
    seconds: float
    cases_per_second: float
    workers: int
    summary: dict[str, Any]


# --------------------------------------------------------------------------------------------
# one case


_MODELS: dict[tuple[str, bool], Any] = {}


def _model_handle(path: str, trust: bool) -> Any:
    """The model, opened once per worker process."""
    key = (str(Path(path).resolve()), trust)
    if key not in _MODELS:
        from segviewer.inference import open_model

        _MODELS[key] = open_model(path, trust=trust)
    return _MODELS[key]


def _forward(
    gen: Generator[Progress, None, Any], lo: float, hi: float, total: int, message: str
) -> Generator[Progress, None, Any]:
    """Re-yield a sub-generator's progress scaled into ``[lo, hi]`` of ``total``."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        yield Progress(int(lo + (hi - lo) * p.fraction), total, message)


def _fit_table(table: Any, n_pred: int, is_labels: bool) -> tuple[Any, list[str]]:
    if len(table) == n_pred or (is_labels and len(table) > n_pred):
        return table, []
    fitted, warnings = table.fitted(n_pred)
    return fitted, list(warnings)


def _read_prediction(path: Any, volume: Any, hint: int | None) -> Any:
    """A case's prediction on its image: the image's geometry goes along, so a DICOM SEG is
    placed (and checked against the image's frame of reference) and a NIfTI whose affine
    differs is reported, as in the window."""
    from segviewer.io.predictions import load_prediction

    return load_prediction(
        path,
        volume.shape,
        n_classes_hint=hint,
        image_affine=volume.affine,
        image_metadata=volume.metadata,
    )


def iter_evaluate_case(
    case: Case, options: EvaluateOptions
) -> Generator[Progress, None, CaseResult]:
    """Evaluate one case: every metric of :mod:`segviewer.core.metrics`, per class and slice.

    Yields
    ------
    Progress
        0..1000 over loading, labels, uncertainty, metrics and the picture.

    Returns
    -------
    CaseResult
        Its ``record`` holds the ``cases.csv`` and ``slices.csv`` rows of the case (without
        the review-notes columns) and its warnings.

    Raises
    ------
    SegviewerError
        Unreadable files, mismatched shapes or classes (:func:`evaluate_case` turns it into
        a failed :class:`CaseResult`).
    """
    from segviewer.core.classes import ClassTable
    from segviewer.core.masks import iter_labels
    from segviewer.core.metrics import iter_case_metrics, iter_uncertainty
    from segviewer.core.orientation import display_axes
    from segviewer.core.stats import dice_per_class
    from segviewer.core.types import PredictionKind
    from segviewer.io.images import load_image
    from segviewer.io.predictions import load_reference

    t0 = time.perf_counter()
    c0 = time.thread_time()
    total = 1000
    warnings: list[str] = []
    yield Progress(0, total, "reading the image")
    table: Any = None
    table_path = case.classes or options.classes
    if table_path:
        from segviewer.io.classtables import read_class_table

        table, tw = read_class_table(table_path)
        warnings += tw
    volume = load_image(case.image)
    warnings += [str(w) for w in volume.metadata.get("warnings", ())]
    axes = display_axes(volume.affine, options.view)
    slice_axis = axes.slice_axis
    hint = len(table) if table is not None else None

    predictions: list[tuple[str, Any]] = []
    if options.model:
        from segviewer.inference import card_for_model, predict

        handle = _model_handle(options.model, options.trust_model)
        if table is None:
            card = card_for_model(options.model)
            if card is not None and card.class_names:
                entries = [(i, n, c) for i, (n, c) in enumerate(_card_entries(card))]
                table, tw = ClassTable.from_entries(entries, source=str(options.model))
                warnings += tw
        pred, _prov = yield from _forward(
            predict(volume, handle, trust=options.trust_model), 10, 300, total, "running the model"
        )
        predictions.append(("a", pred))
    elif case.prediction is not None:
        predictions.append(("a", _read_prediction(case.prediction, volume, hint)))
    else:
        raise SegviewerError(f"case {case.id} has no prediction; give one or a model")
    if case.prediction_b is not None:
        predictions.append(("b", _read_prediction(case.prediction_b, volume, hint)))
    first = predictions[0][1]
    if table is None:
        table = ClassTable.default(int(first.n_classes))
    table, tw = _fit_table(table, int(first.n_classes), first.kind is PredictionKind.LABELS)
    warnings += tw
    n = len(table)
    for _name, p in predictions[1:]:
        if p.kind is not PredictionKind.LABELS and int(p.n_classes) != n:
            raise SegviewerError(
                f"case {case.id}: prediction_b has {p.n_classes} classes but the prediction "
                f"has {n}; both must use the same classes"
            )
    reference = None
    if case.reference is not None:
        notes: list[str] = []
        reference = load_reference(
            case.reference,
            volume.shape,
            n_classes_hint=n,
            image_affine=volume.affine,
            notes=notes,
            image_metadata=volume.metadata,
        )
        warnings += [x.removeprefix("Warning: ") for x in notes if x.startswith("Warning")]

    share = 900 // len(predictions)
    labels_of: dict[str, np.ndarray] = {}
    metrics_of: dict[str, CaseMetrics] = {}
    for j, (name, pred) in enumerate(predictions):
        lo = 100 + j * share
        res = yield from _forward(
            iter_labels(pred, options.settings), lo, lo + share * 0.2, total, "label map"
        )
        labels = res.labels
        if res.n_invalid:
            warnings.append(
                f"model {name}: {res.n_invalid} voxels have NaN or infinite scores; they count "
                "as wrong for every class"
            )
        unc = None
        if pred.kind is not PredictionKind.LABELS:
            unc = yield from _forward(
                iter_uncertainty(pred, labels, slice_axis, options.low_confidence),
                lo + share * 0.2,
                lo + share * 0.5,
                total,
                "uncertainty",
            )
        m = yield from _forward(
            iter_case_metrics(
                labels,
                reference,
                n,
                volume.spacing,
                slice_axis,
                uncertainty=unc,
                distances=options.distances,
                slice_distances=options.slice_distances,
            ),
            lo + share * 0.5,
            lo + share,
            total,
            "metrics",
        )
        labels_of[name] = labels
        metrics_of[name] = m
    dice_ab: np.ndarray | None = None
    if "b" in labels_of:
        dice_ab = dice_per_class(labels_of["a"], labels_of["b"], n)

    names = [str(c.name) for c in table]
    rows: list[dict[str, Any]] = []
    slice_rows: list[list[Any]] = []
    for name, m in metrics_of.items():
        for c in m.per_class:
            k = c.class_index
            rows.append(
                {
                    "case": case.id,
                    "model": name,
                    "class": names[k],
                    "class_index": k,
                    **_metric_values(c),
                    "axis": slice_axis,
                    "worst_slice": m.worst_slice[k],
                    "dice_a_b": None if dice_ab is None else float(dice_ab[k]),
                }
            )
        for i, per in enumerate(m.per_slice):
            for c in per:
                k = c.class_index
                vals = _metric_values(c)
                slice_rows.append(
                    [case.id, name, names[k], k, slice_axis, i]
                    + [vals[col] for col in _METRIC_COLUMNS]
                )
    yield Progress(950, total, "drawing the worst slice")
    pic_class, pic_slice = _picture_target(metrics_of["a"])
    picture = None
    if pic_class is not None and pic_slice is not None:
        picture = _picture(
            volume,
            axes,
            labels_of,
            reference,
            table,
            pic_class,
            pic_slice,
            title=f"{case.id}: {names[pic_class]}, slice {pic_slice} ({options.view})",
        )
    record = {
        "case": case.id,
        "rows": rows,
        "slices": {"columns": list(SLICE_COLUMNS[:-2]), "rows": slice_rows},
        "warnings": warnings,
        "classes": names,
        "axis": slice_axis,
        "spacing_mm": list(volume.spacing),
        "shape": list(volume.shape),
        "has_reference": reference is not None,
        "models": list(metrics_of),
        "picture_class": pic_class,
        "picture_slice": pic_slice,
    }
    yield Progress(total, total, "finished")
    return CaseResult(
        case.id, record, picture, None, time.perf_counter() - t0, time.thread_time() - c0
    )


def _card_entries(card: Any) -> Iterator[tuple[str, Sequence[int]]]:
    from segviewer.core.classes import default_color, hex_to_rgb

    colors = list(card.class_colors or [])
    for i, name in enumerate(card.class_names):
        c = colors[i] if i < len(colors) else None
        if isinstance(c, str) and c.startswith("#") and len(c) == 7:
            yield name, hex_to_rgb(c)
        else:
            yield name, default_color(i)


def _metric_values(c: ClassMetrics) -> dict[str, Any]:
    d = c.as_dict()
    return {col: d[col] for col in _METRIC_COLUMNS}


def _picture_target(m: CaseMetrics) -> tuple[int | None, int | None]:
    """The class and slice of the case's picture: its worst foreground class (lowest Dice;
    without a reference the most uncertain), at that class's worst slice."""
    fg = [c for c in m.per_class[1:] if not c.absent_in_both] or list(m.per_class[1:])
    if not fg:
        return None, None
    if m.has_reference:
        worst = min(fg, key=lambda c: (c.dice, -((c.fp or 0) + (c.fn or 0))))
    else:
        worst = max(
            fg,
            key=lambda c: c.mean_entropy if math.isfinite(c.mean_entropy) else -1.0,
        )
    k = worst.class_index
    s = m.worst_slice[k]
    if s is None:
        # nothing wrong with that class anywhere: its largest slice
        sizes = [row[k].n_pred for row in m.per_slice]
        s = int(np.argmax(sizes)) if sizes and max(sizes) > 0 else None
    return k, s


def _picture(
    volume: Any,
    axes: Any,
    labels_of: Mapping[str, np.ndarray],
    reference: np.ndarray | None,
    table: Any,
    k: int,
    index: int,
    *,
    title: str,
) -> bytes:
    """PNG: the slice with each prediction, the reference, and the errors of class k."""
    from PIL import Image, ImageDraw, ImageFont

    from segviewer.core.classes import ClassTable
    from segviewer.core.compare import error_map
    from segviewer.core.orientation import take_slice
    from segviewer.core.overlay import auto_window, build_lut, window_to_uint8
    from segviewer.io.render import annotated_slice

    level, width = auto_window(volume.data)
    grey = np.ascontiguousarray(
        window_to_uint8(np.asarray(take_slice(volume.data, axes, index)), level, width)
    )
    aspect = axes.row_spacing / axes.col_spacing if axes.col_spacing > 0 else 1.0
    n = len(table)
    panels: list[tuple[str, np.ndarray]] = []

    def draw(lab: np.ndarray, tab: Any, lut: np.ndarray) -> np.ndarray:
        return annotated_slice(
            grey, np.ascontiguousarray(lab), lut, tab, scale=None, pixel_aspect=aspect
        )

    for name, labels in labels_of.items():
        lab = take_slice(labels, axes, index)
        lut = build_lut(table, None, 0.5, int(np.iinfo(lab.dtype).max) + 1)
        panels.append((f"prediction {name.upper()}", draw(lab, table, lut)))
    if reference is not None:
        ref = take_slice(reference, axes, index)
        lut = build_lut(table, None, 0.5, int(np.iinfo(ref.dtype).max) + 1)
        panels.append(("reference", draw(ref, table, lut)))
        codes = error_map(
            np.ascontiguousarray(take_slice(labels_of["a"], axes, index)),
            np.ascontiguousarray(ref),
            k,
            n_classes=n,
        )
        # the window's error colours: away from every class colour (core.colours)
        fp_color, fn_color = error_colors([tuple(c) for c in table.colors[1:]])
        err_table, _ = ClassTable.from_entries(
            [
                (0, "none", (0, 0, 0)),
                (1, f"{table[k].name} found", _TP_COLOR),
                (2, "false positive", fp_color),
                (3, "false negative", fn_color),
            ]
        )
        # errors stand out (opaque), agreement is a faint neutral wash
        lut = build_lut(err_table, None, 0.85, 256)
        lut[1, 3] = 80
        panels.append((f"errors of {table[k].name} (A)", draw(codes, err_table, lut)))
    font = ImageFont.load_default(size=26)
    pad = 10
    head = 36
    width_px = sum(p.shape[1] for _, p in panels) + pad * (len(panels) + 1)
    height_px = max(p.shape[0] for _, p in panels) + head * 2 + pad
    canvas = Image.new("RGB", (width_px, height_px), (24, 24, 24))
    d = ImageDraw.Draw(canvas)
    d.text((pad, 5), title, fill=(240, 240, 240), font=font)
    x = pad
    for label, arr in panels:
        d.text((x, head + 2), label, fill=(220, 220, 220), font=font)
        canvas.paste(Image.fromarray(arr), (x, head * 2))
        x += arr.shape[1] + pad
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=6)  # optimize=True cost ~0.3 s a case
    return buf.getvalue()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, SegviewerError):
        return text
    if isinstance(exc, MemoryError):
        return "ran out of memory; use fewer workers or a machine with more memory"
    return f"internal error ({type(exc).__name__}: {text})"


def evaluate_case(case: Case, options: EvaluateOptions) -> CaseResult:
    """:func:`iter_evaluate_case` to the end; a failure becomes a result with an error.

    This is the function the Dask workers run.
    """
    from segviewer.core.progress import run_to_end

    t0 = time.perf_counter()
    try:
        return run_to_end(iter_evaluate_case(case, options))
    except Exception as exc:  # one case must never stop the others
        return CaseResult(case.id, None, None, _one_line(exc), time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------
# resume state


def _safe_name(case_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_id).strip(".") or "case"
    if safe != case_id:
        safe += "-" + hashlib.sha1(case_id.encode()).hexdigest()[:8]
    return safe


def _fingerprint(case: Case, options: EvaluateOptions) -> str:
    items: dict[str, Any] = {"case": case.id, "options": jsonable(options.fingerprint_fields())}
    files = dict(case.paths())
    if options.model:
        files["model"] = Path(options.model)
    if options.classes:
        files["classes_option"] = Path(options.classes)
    for role, p in files.items():
        try:
            st = p.stat()
            items[role] = [str(p.resolve()), st.st_size, st.st_mtime_ns]
        except OSError:
            items[role] = [str(p), None, None]
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


def _record_path(out_dir: Path, case_id: str) -> Path:
    return out_dir / _CASES_DIR / f"{_safe_name(case_id)}.json"


def _load_record(path: Path) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _write_result(out_dir: Path, result: CaseResult, fingerprint: str) -> None:
    assert result.record is not None
    rec = dict(result.record)
    rec["fingerprint"] = fingerprint
    rec["seconds"] = round(result.seconds, 3)
    rec["cpu_seconds"] = round(result.cpu_seconds, 3)
    rec["picture"] = None
    if result.picture is not None:
        png = out_dir / _CASES_DIR / f"{_safe_name(result.case_id)}.png"
        with atomic_path(png, force=True) as tmp:
            tmp.write_bytes(result.picture)
        rec["picture"] = png.name
    text = json.dumps(jsonable(rec), allow_nan=False, separators=(",", ":"))
    with atomic_path(_record_path(out_dir, result.case_id), force=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------
# the run


def _prepare_out_dir(out_dir: Path, resume: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SegviewerError(f"{out_dir} is a file; choose a folder for the evaluation")
    if out_dir.exists():
        check_writable_dir(out_dir)
        cases_dir = out_dir / _CASES_DIR
        has_results = cases_dir.is_dir() and any(cases_dir.glob("*.json"))
        if has_results and not resume:
            raise SegviewerError(
                f"{out_dir} already holds an evaluation; add --resume to continue it (finished "
                "cases are skipped), or choose another output folder"
            )
    else:
        parent = next((p for p in out_dir.parents if p.exists()), None)
        if parent is None or not parent.is_dir():
            raise SegviewerError(f"cannot create the output folder {out_dir}")
        check_writable_dir(parent)
    try:
        (out_dir / _CASES_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SegviewerError(f"cannot create {out_dir / _CASES_DIR} ({exc.strerror})") from exc


def _default_workers(n_cases: int) -> int:
    return max(1, min(os.cpu_count() or 1, n_cases))


def run_evaluation(
    cases: CaseList | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: EvaluateOptions | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    client: Any = None,
    resume: bool = False,
) -> Generator[Progress, None, EvaluationResult]:
    """Evaluate a test set; yields progress per finished case, returns what was done.

    Parameters
    ----------
    cases
        A :class:`~segviewer.io.testset.CaseList` or what :func:`load_cases` reads.
    out_dir
        Output folder (created).
    options
        :class:`EvaluateOptions`.
    workers
        ``0``: in this process. ``N``: a local Dask cluster of N processes. ``None``: the
        number of CPU cores (at most one per case).
    scheduler
        Address of an existing Dask scheduler (``tcp://host:8786``); ``workers`` is then
        ignored.
    client
        An existing ``dask.distributed.Client`` to use (tests, notebooks); not closed here.
    resume
        Skip cases already done with unchanged inputs (see the module docstring).

    Yields
    ------
    Progress
        ``done`` of ``total`` cases when a case finishes (message ``"<id> done"`` or
        ``"<id> FAILED: <reason>"``); with ``workers=0`` also the steps of the running case
        (in thousandths of a case: ``done`` of ``total * 1000``).

    Returns
    -------
    EvaluationResult
    """
    opts = options or EvaluateOptions()
    cl = (
        cases
        if isinstance(cases, CaseList)
        else load_cases(cases, need_prediction=opts.model is None)
    )
    out = Path(out_dir).expanduser()
    if workers is not None and workers < 0:
        raise SegviewerError(f"--workers must be 0 or more, got {workers}")
    _prepare_out_dir(out, resume)
    total = len(cl)
    fingerprints = {c.id: _fingerprint(c, opts) for c in cl.cases}
    todo: list[Case] = []
    n_resumed = 0
    for c in cl.cases:
        rec = _load_record(_record_path(out, c.id)) if resume else None
        if rec is not None and rec.get("fingerprint") == fingerprints[c.id]:
            n_resumed += 1
        else:
            todo.append(c)
    failed: list[tuple[str, str]] = []
    cpu: list[float] = []
    done = n_resumed
    yield Progress(done, total, f"{n_resumed} cases already done" if n_resumed else "starting")
    t0 = time.perf_counter()
    startup = 0.0
    n_workers = 0
    if todo:
        if client is None and scheduler is None and workers == 0:
            for c in todo:
                gen = _in_process(c, opts)
                while True:
                    try:
                        p = next(gen)
                    except StopIteration as stop:
                        result: CaseResult = stop.value
                        break
                    yield Progress(done * 1000 + int(p.done), total * 1000, f"{c.id}: {p.message}")
                done += 1
                _record(out, result, fingerprints, failed, cpu)
                yield Progress(done, total, _done_message(result, failed))
        else:
            gen_d = _on_dask(todo, opts, workers, scheduler, client)
            while True:
                try:
                    item = next(gen_d)
                except StopIteration as stop:
                    n_workers = int(stop.value)
                    break
                if item is _READY:
                    # the clock of cases/s starts when the workers are up
                    startup = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    continue
                if isinstance(item, Progress):
                    yield Progress(done, total, item.message)
                    continue
                assert isinstance(item, CaseResult)
                done += 1
                _record(out, item, fingerprints, failed, cpu)
                yield Progress(done, total, _done_message(item, failed))
    seconds = time.perf_counter() - t0
    n_eval = len(todo)
    cps = n_eval / seconds if n_eval and seconds > 0 else math.nan
    yield Progress(total, total, "writing cases.csv, slices.csv, summary.json, report.html")
    summary, files = _write_outputs(
        out,
        cl,
        opts,
        failed,
        timing={
            "seconds": round(seconds, 3),
            "startup_seconds": round(startup, 3),
            "cases_evaluated": n_eval,
            "cases_resumed": n_resumed,
            "cases_per_second": cps,
            "cpu_seconds_per_case": float(np.mean(cpu)) if cpu else math.nan,
            "workers": n_workers,
        },
    )
    return EvaluationResult(
        out_dir=out,
        files=files,
        n_cases=total,
        n_evaluated=n_eval,
        n_resumed=n_resumed,
        failed=tuple(failed),
        seconds=seconds,
        cases_per_second=cps,
        workers=n_workers,
        summary=summary,
    )


def _done_message(result: CaseResult, failed: Sequence[tuple[str, str]]) -> str:
    msg = f"{result.case_id} done" if result.ok else f"{result.case_id} FAILED: {result.error}"
    return msg + (f" ({len(failed)} failed)" if failed else "")


def _record(
    out: Path,
    result: CaseResult,
    fingerprints: Mapping[str, str],
    failed: list[tuple[str, str]],
    cpu: list[float],
) -> None:
    if result.ok:
        cpu.append(result.cpu_seconds)
        try:
            _write_result(out, result, fingerprints[result.case_id])
            return
        except SegviewerError as exc:
            failed.append((result.case_id, f"cannot save its results: {exc}"))
            return
    failed.append((result.case_id, str(result.error)))


def _in_process(case: Case, options: EvaluateOptions) -> Generator[Progress, None, CaseResult]:
    t0 = time.perf_counter()
    try:
        return (yield from iter_evaluate_case(case, options))
    except Exception as exc:
        return CaseResult(case.id, None, None, _one_line(exc), time.perf_counter() - t0)


_READY = object()  # _on_dask's sign that the workers are up
#: Dask settings of the local cluster's workers (README: set them on your own cluster too).
_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.gil.enabled": False,
}


def _on_dask(
    todo: Sequence[Case],
    options: EvaluateOptions,
    workers: int | None,
    scheduler: str | None,
    client: Any,
) -> Generator[object, None, int]:
    """Run the cases on Dask; yields progress while starting, :data:`_READY` when the workers
    are up, then each case's :class:`CaseResult` as it finishes; returns the worker count."""
    import logging

    try:
        import dask
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - a dependency
        raise SegviewerError(
            "Dask is not installed; install it with 'pip install \"dask[distributed]\"', or "
            "run with --workers 0"
        ) from exc

    own_client = client is None
    cluster = None
    with contextlib.ExitStack() as stack:
        if client is None:
            if scheduler:
                yield Progress(0, 1, f"connecting to the Dask scheduler {scheduler}")
                try:
                    client = Client(scheduler, timeout="20s")
                except (OSError, TimeoutError) as exc:
                    raise SegviewerError(
                        f"cannot reach the Dask scheduler {scheduler} ({exc}); check the "
                        "address (tcp://host:8786) and that the scheduler is running"
                    ) from None
            else:
                n = workers if workers is not None else _default_workers(len(todo))
                yield Progress(0, 1, f"starting a local Dask cluster of {n} workers")
                try:
                    # Dask's sampling profiler (every 10 ms) and GIL monitor compete for the
                    # GIL with the case's Python loops: a case took 2x longer (wall clock, on
                    # a busy machine) with them on (benchmarks/README.md). The workers get the
                    # config at spawn.
                    with dask.config.set(_WORKER_CONFIG):
                        cluster = LocalCluster(
                            n_workers=n,
                            threads_per_worker=1,
                            processes=True,
                            dashboard_address=":0",  # any free port: 8787 may be taken
                            silence_logs=logging.ERROR,
                        )
                except (OSError, RuntimeError, TimeoutError) as exc:
                    raise SegviewerError(
                        f"cannot start a local Dask cluster of {n} workers ({exc}); run with "
                        "--workers 0 to evaluate in this process"
                    ) from None
                stack.callback(cluster.close)
                client = Client(cluster)
            if own_client:
                stack.callback(client.close)
        n_workers = len(client.scheduler_info().get("workers", {}))
        yield _READY
        futures = client.map(evaluate_case, list(todo), options=options, pure=False)
        by_key = {f.key: c for f, c in zip(futures, todo, strict=True)}
        try:
            for fut in as_completed(futures):
                case = by_key[fut.key]
                try:
                    result = fut.result()
                except Exception as exc:  # a worker died (memory), or the task was lost
                    result = CaseResult(case.id, None, None, _one_line(exc))
                fut.release()
                yield result
        finally:
            for f in futures:
                if not f.done():
                    f.cancel()
    return n_workers


# --------------------------------------------------------------------------------------------
# outputs


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else format(v, ".7g")
    return v


def _notes_for(cl: CaseList) -> Any:
    """The test set's review notes (``segviewer.io.notes``), or None."""
    import importlib

    try:
        # io.notes is the window's review-notes module (the sidecar's one reader / writer)
        notes_mod = importlib.import_module("segviewer.io.notes")
    except ImportError:
        return None
    target = Path(cl.source) if cl.kind in ("csv", "folder") else cl.root
    path = notes_mod.notes_path_for(target)
    if not Path(path).exists():
        return None
    return notes_mod.ReviewNotes.load(path)


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with atomic_path(path, force=True) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(v) for v in r])


def _write_outputs(
    out: Path,
    cl: CaseList,
    opts: EvaluateOptions,
    failed: Sequence[tuple[str, str]],
    timing: dict[str, Any],
) -> tuple[dict[str, Any], tuple[Path, ...]]:
    from segviewer._version import __version__
    from segviewer.io.report import write_report

    notes = _notes_for(cl)
    failed_ids = {c for c, _ in failed}
    case_rows: list[dict[str, Any]] = []
    records: dict[str, dict[str, Any]] = {}
    for c in cl.cases:
        if c.id in failed_ids:
            continue
        rec = _load_record(_record_path(out, c.id))
        if rec is None:
            continue
        meta = {k: v for k, v in rec.items() if k != "slices"}
        records[c.id] = meta
        case_note = notes.get(c.id) if notes is not None else None
        for r in rec["rows"]:
            row = dict(r)
            row["verdict"] = case_note.verdict if case_note else ""
            row["comment"] = case_note.comment if case_note else ""
            case_rows.append(row)
    _write_csv(
        out / "cases.csv", CASE_COLUMNS, ([r.get(k) for k in CASE_COLUMNS] for r in case_rows)
    )

    def slice_rows() -> Iterator[list[Any]]:
        for c in cl.cases:
            if c.id not in records:
                continue
            rec = _load_record(_record_path(out, c.id))
            if rec is None:
                continue
            sl = rec["slices"]
            i_slice = list(sl["columns"]).index("slice")
            marks = notes.slice_notes(c.id, int(rec["axis"])) if notes is not None else {}
            for r in sl["rows"]:
                note = marks.get(int(r[i_slice])) if marks else None
                yield [*r, note.verdict if note else "", note.comment if note else ""]

    _write_csv(out / "slices.csv", SLICE_COLUMNS, slice_rows())
    summary = _summary(cl, opts, case_rows, records, failed, timing, __version__)
    text = json.dumps(jsonable(summary), indent=2, ensure_ascii=False, allow_nan=False)
    with atomic_path(out / "summary.json", force=True) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    write_report(out / "report.html", summary, case_rows, out / _CASES_DIR)
    return summary, tuple(out / name for name in _OUTPUTS)


def _stats(values: Sequence[Any]) -> dict[str, Any]:
    x = np.array(
        [float(v) for v in values if v is not None and math.isfinite(float(v))], dtype=float
    )
    undefined = len(values) - x.size
    if x.size == 0:
        return {"n": 0, "n_undefined": undefined}
    return {
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "min": float(x.min()),
        "max": float(x.max()),
        "n": int(x.size),
        "n_undefined": undefined,
    }


def _summary(
    cl: CaseList,
    opts: EvaluateOptions,
    case_rows: Sequence[dict[str, Any]],
    records: Mapping[str, dict[str, Any]],
    failed: Sequence[tuple[str, str]],
    timing: dict[str, Any],
    version: str,
) -> dict[str, Any]:
    models = sorted({str(r["model"]) for r in case_rows})
    classes: list[str] = []
    for r in case_rows:
        if r["class"] not in classes:
            classes.append(r["class"])
    metrics: dict[str, Any] = {}
    worst: dict[str, Any] = {}
    for m in models:
        metrics[m] = {}
        worst[m] = {}
        for cname in classes:
            rows = [r for r in case_rows if r["model"] == m and r["class"] == cname]
            metrics[m][cname] = {k: _stats([r.get(k) for r in rows]) for k in METRICS}
            if rows and rows[0]["class_index"] == 0:
                continue  # background: no worst-case list
            worst[m][cname] = _worst_cases(rows, opts.n_worst)
    # overall: mean foreground Dice per case (model a), or mean entropy without references
    per_case = _case_scores(case_rows, "a")
    has_ref = any(r.get("n_ref") is not None for r in case_rows)
    order = sorted(
        per_case.items(),
        key=lambda kv: kv[1]["score"] if has_ref else -kv[1]["score"],
    )
    overall: list[dict[str, Any]] = []
    for cid, v in order:
        if not math.isfinite(v["score"]) or len(overall) >= opts.n_worst:
            continue
        rec = records.get(cid, {})
        k = rec.get("picture_class")
        overall.append(
            {
                "case": cid,
                "score": v["score"],
                "score_name": "mean foreground Dice" if has_ref else "mean entropy",
                "class": rec["classes"][k] if k is not None else None,
                "axis": rec.get("axis"),
                "slice": rec.get("picture_slice"),
                "picture": rec.get("picture"),
            }
        )
    warnings = {cid: rec.get("warnings", []) for cid, rec in records.items() if rec.get("warnings")}
    return {
        "schema_version": SCHEMA_VERSION,
        "segviewer_version": version,
        "created": _dt.datetime.now(_dt.timezone.utc)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "test_set": {"source": cl.source, "kind": cl.kind, "n_cases": len(cl)},
        "options": {
            "classes": opts.classes,
            "view": opts.view,
            "threshold": opts.settings.threshold,
            "min_confidence": opts.settings.min_confidence,
            "low_confidence": opts.low_confidence,
            "distances": opts.distances,
            "slice_distances": opts.slice_distances,
            "model": opts.model,
        },
        "n_cases": len(cl),
        "n_evaluated": len(records),
        "failed": [{"case": c, "error": e} for c, e in failed],
        "models": models,
        "classes": classes,
        "metrics": metrics,
        "worst_cases": worst,
        "worst_overall": overall,
        "warnings": warnings,
        "timing": timing,
        "conventions": (
            "both masks empty: Dice/IoU/sensitivity/precision 1, HD95/ASSD 0; one empty: "
            "Dice/IoU 0, HD95/ASSD undefined (null, counted in n_undefined); HD95 = max of "
            "the directed 95th percentiles; ASSD = mean over both surfaces; entropy "
            "normalised to [0, 1] (see segviewer/core/metrics.py)"
        ),
    }


def _case_scores(case_rows: Sequence[dict[str, Any]], model: str) -> dict[str, dict[str, float]]:
    out: dict[str, list[float]] = {}
    ent: dict[str, list[float]] = {}
    for r in case_rows:
        if r["model"] != model or r["class_index"] == 0:
            continue
        out.setdefault(r["case"], [])
        ent.setdefault(r["case"], [])
        present = (r.get("n_pred") or 0) + (r.get("n_ref") or 0) > 0
        d = r.get("dice")
        if present and d is not None and math.isfinite(float(d)) and r.get("n_ref") is not None:
            out[r["case"]].append(float(d))
        e = r.get("mean_entropy")
        if e is not None and math.isfinite(float(e)):
            ent[r["case"]].append(float(e))
    has_ref = any(v for v in out.values())
    src = out if has_ref else ent
    return {cid: {"score": float(np.mean(v)) if v else math.nan} for cid, v in src.items()}


def _worst_cases(rows: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    with_ref = [r for r in rows if r.get("n_ref") is not None]
    if with_ref:
        scored = [
            r
            for r in with_ref
            if r.get("dice") is not None
            and math.isfinite(float(r["dice"]))
            and (r.get("n_pred") or 0) + (r.get("n_ref") or 0) > 0
        ]
        scored.sort(key=lambda r: (float(r["dice"]), -((r.get("fp") or 0) + (r.get("fn") or 0))))
        key = "dice"
    else:
        scored = [
            r
            for r in rows
            if r.get("mean_entropy") is not None and math.isfinite(r["mean_entropy"])
        ]
        scored.sort(key=lambda r: -float(r["mean_entropy"]))
        key = "mean_entropy"
    return [
        {
            "case": r["case"],
            key: r[key],
            "fp": r.get("fp"),
            "fn": r.get("fn"),
            "axis": r.get("axis"),
            "worst_slice": r.get("worst_slice"),
        }
        for r in scored[:n]
    ]


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read ``cases.csv`` or ``slices.csv`` back: numbers as int / float, empty cells None."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SegviewerError(f"cannot read {p} ({exc.strerror})") from None
    out: list[dict[str, Any]] = []
    for r in csv.DictReader(io.StringIO(text, newline="")):
        row: dict[str, Any] = {}
        for k, v in r.items():
            if v == "" or v is None:
                row[k] = None
            elif k in ("case", "model", "class", "verdict", "comment"):
                row[k] = v
            else:
                try:
                    row[k] = int(v)
                except ValueError:
                    try:
                        row[k] = float(v)
                    except ValueError:
                        row[k] = v
        out.append(row)
    return out


@dataclass(frozen=True)
class Evaluation:
    """An evaluation folder opened for reading (the window's ``--evaluation DIR``).

    Attributes
    ----------
    out_dir
        The folder.
    summary
        ``summary.json``.
    """

    out_dir: Path
    summary: dict[str, Any]

    def case_rows(self) -> list[dict[str, Any]]:
        """``cases.csv`` (one row per case, model and class), values typed."""
        return read_rows(self.out_dir / "cases.csv")

    def slice_rows(self, case_id: str) -> list[dict[str, Any]]:
        """One case's ``slices.csv`` rows, read from its small per-case file (so a window
        never loads the whole ``slices.csv`` of a large test set). Review-note columns are
        not included (they live in the notes sidecar)."""
        rec = _load_record(_record_path(self.out_dir, case_id))
        if rec is None:
            raise SegviewerError(
                f"{self.out_dir} has no results for case {case_id!r}; it failed or was not "
                "evaluated (run evaluate again with --resume)"
            )
        cols = list(rec["slices"]["columns"])
        return [dict(zip(cols, r, strict=True)) for r in rec["slices"]["rows"]]

    def picture(self, case_id: str) -> Path | None:
        """The case's worst-slice picture, if it has one."""
        p = self.out_dir / _CASES_DIR / f"{_safe_name(case_id)}.png"
        return p if p.is_file() else None


def open_evaluation(out_dir: str | os.PathLike[str]) -> Evaluation:
    """Open a folder written by :func:`run_evaluation`.

    Raises
    ------
    SegviewerError
        Not an evaluation folder (no ``summary.json``), or a newer schema.
    """
    d = Path(out_dir).expanduser()
    p = d / "summary.json"
    if not p.is_file():
        raise SegviewerError(
            f"{d} is not an evaluation folder (no summary.json); run 'segviewer evaluate "
            "CASES --out DIR' first"
        )
    try:
        summary = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SegviewerError(f"cannot read {p} ({exc}); run evaluate again") from None
    version = summary.get("schema_version") if isinstance(summary, dict) else None
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise SegviewerError(
            f"{p} has schema version {version!r}; this segviewer reads version "
            f"{SCHEMA_VERSION} or older: update segviewer"
        )
    return Evaluation(d, summary)
