"""A test set in the window, without widgets: cases, metrics, notes, the open case.

:class:`TestSetSession` holds what the case table, the slice table and the two-prediction
view show, and runs their computations in background jobs (``ui.workers.JobRunner``), so
switching cases never blocks the window:

* the **case list** (``io.testset.load_cases``) and, when an evaluation folder is given,
  ``evaluate``'s ``cases.csv`` / ``slices.csv`` (``io.evaluate.read_rows``);
* the **review notes** sidecar (``io.notes``), reopened with the test set and saved
  atomically after every change;
* the **case-table rows** for one class (``core.review.pivot_cases``): the evaluation's
  metrics, or, without an evaluation, the metrics measured in the window for every case
  opened so far; with a second prediction, both models' metrics and their difference;
  verdict, comment and number of slice notes from the notes;
* the open case's **per-slice metrics** (``core.metrics.iter_case_metrics`` with the
  model's doubt from ``core.metrics.iter_uncertainty``), measured in a job when the host
  hands over the labels (:meth:`measure`), and its **second prediction** loaded, labelled and
  compared with the first and the reference in another job (:meth:`load_prediction_b`);
* where to open a case: its **worst slice** for a class (the evaluation's ``slices.csv``,
  else the measurement of that case).

The host (the window's controller) opens the files of a case and calls :meth:`measure`
when the labels are ready; the session never touches the viewer state or a widget.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from segviewer.core import review
from segviewer.core.metrics import METRICS, CaseMetrics, UncertaintySums
from segviewer.core.types import MaskSettings, Prediction, Progress, SegviewerError
from segviewer.io.notes import ReviewNotes, notes_path_for
from segviewer.io.testset import Case, CaseList
from segviewer.ui.workers import JobRunner

__all__ = [
    "LoadedTestSet",
    "Measured",
    "PairResult",
    "TestSetSession",
    "evaluated_test_set",
    "is_test_set",
    "load_test_set_job",
    "measure_job",
    "notes_sidecar",
    "pair_job",
    "read_test_set",
]

#: Case-level metric columns the case table shows from a measurement in the window, in order.
CASE_METRICS: tuple[str, ...] = tuple(METRICS)  # core.metrics.METRICS: name -> higher is better


def is_test_set(source: str | os.PathLike[str]) -> bool:
    """Whether the window's IMAGE argument names a test set rather than an image: a ``.csv``
    / ``.tsv`` file, a folder holding ``images/`` and ``predictions/``, or a glob pattern."""
    from segviewer.io.testset import FOLDER_NAMES

    text = os.fspath(source)
    if any(ch in text for ch in "*?["):
        return True
    p = Path(text).expanduser()
    if p.is_file():
        return p.suffix.lower() in (".csv", ".tsv")
    if p.is_dir():
        have = {d for d in FOLDER_NAMES if (p / d).is_dir()}
        return {"images", "predictions"} <= have
    return False


def evaluated_test_set(folder: str | os.PathLike[str]) -> str:
    """The test set an ``evaluate`` output folder scored (its ``summary.json``'s
    ``test_set.source``).

    Raises
    ------
    SegviewerError
        No readable ``summary.json`` naming a test set.
    """
    import json

    path = Path(folder) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        source = summary["test_set"]["source"]
    except FileNotFoundError:
        raise SegviewerError(
            f"{folder} has no summary.json; give the --out folder of 'segviewer evaluate', or "
            "the test set as well: segviewer CASES --evaluation DIR"
        ) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise SegviewerError(
            f"{path} does not name its test set; give it as well: segviewer CASES --evaluation DIR"
        ) from None
    return str(source)


@dataclass(frozen=True, eq=False)
class Measured:
    """One case measured in the window (the result of :func:`measure_job`)."""

    case_id: str
    metrics: CaseMetrics
    uncertainty: UncertaintySums | None
    class_names: tuple[str, ...]


@dataclass(frozen=True, eq=False)
class PairResult:
    """The second prediction of a case, labelled and compared (:func:`pair_job`)."""

    case_id: str
    labels_b: np.ndarray
    pair: review.PairComparison
    metrics_b: CaseMetrics


def measure_job(
    case_id: str,
    labels: np.ndarray,
    reference: np.ndarray | None,
    n_classes: int,
    spacing: Sequence[float],
    slice_axis: int,
    prediction: Prediction | None,
    class_names: Sequence[str],
) -> Generator[Progress, None, Measured]:
    """Worker: the case's metrics per class and per slice along ``slice_axis``, with the
    model's doubt when the prediction has class scores."""
    from segviewer.core.metrics import iter_case_metrics, iter_uncertainty

    unc = None
    if prediction is not None and prediction.kind.value != "labels":
        unc = yield from iter_uncertainty(prediction, labels, slice_axis)
    cm = yield from iter_case_metrics(
        labels, reference, n_classes, spacing, slice_axis, uncertainty=unc
    )
    return Measured(case_id, cm, unc, tuple(class_names))


def pair_job(
    case_id: str,
    path_b: str,
    image_shape: tuple[int, int, int],
    image_affine: np.ndarray,
    settings: MaskSettings,
    labels_a: np.ndarray,
    reference: np.ndarray | None,
    n_classes: int,
    spacing: Sequence[float],
    slice_axis: int,
) -> Generator[Progress, None, PairResult]:
    """Worker: read the second prediction, label it like the first, compare both with the
    reference and with each other, and measure it per class."""
    from segviewer.core.masks import iter_labels
    from segviewer.core.metrics import iter_case_metrics
    from segviewer.io.predictions import load_prediction

    yield Progress(0, 1, f"Reading {Path(path_b).name}")
    pred_b = load_prediction(
        path_b, image_shape, n_classes_hint=n_classes, image_affine=image_affine
    )
    if pred_b.n_classes > n_classes:
        raise SegviewerError(
            f"the second prediction {Path(path_b).name} has {pred_b.n_classes} classes, the "
            f"first {n_classes}; both must use the same classes"
        )
    lab = yield from iter_labels(pred_b, settings)
    labels_b = lab.labels
    pair = yield from review.compare_pair(
        labels_a, labels_b, reference, n_classes, float(np.prod(spacing))
    )
    cm = yield from iter_case_metrics(
        labels_b, reference, n_classes, spacing, slice_axis, slice_distances=False
    )
    return PairResult(case_id, labels_b, pair, cm)


def notes_sidecar(cases: CaseList) -> Path:
    """Where a test set's review notes live (see :meth:`TestSetSession.notes_path_for`)."""
    if cases.kind in ("csv", "folder"):
        return notes_path_for(cases.source)
    return notes_path_for(cases.root)


@dataclass(frozen=True, eq=False)
class LoadedTestSet:
    """A test set with its notes and evaluation tables, read in a worker.

    ``eval_slices`` maps a case id to its ``slices.csv`` rows (so opening a case never scans
    every slice of every case)."""

    cases: CaseList
    notes: ReviewNotes
    evaluation: Path | None = None
    eval_cases: list[dict[str, Any]] | None = None
    eval_slices: dict[str, list[dict[str, Any]]] | None = None


def read_test_set(
    cases: CaseList | str | os.PathLike[str], evaluation: str | os.PathLike[str] | None = None
) -> LoadedTestSet:
    """Read a case list (unless given), its notes sidecar and an evaluation folder.

    Raises
    ------
    SegviewerError
        A bad case list, notes file or evaluation folder (one line naming the file).
    """
    from segviewer.io.evaluate import read_rows
    from segviewer.io.testset import load_cases

    cl = cases if isinstance(cases, CaseList) else load_cases(cases)
    notes = ReviewNotes.load(notes_sidecar(cl))
    if evaluation is None:
        return LoadedTestSet(cl, notes)
    folder = Path(evaluation)
    if not folder.is_dir():
        raise SegviewerError(
            f"{folder} is not a folder; give the --out folder of 'segviewer evaluate'"
        )
    if not (folder / "cases.csv").is_file():
        raise SegviewerError(
            f"{folder} has no cases.csv; give the --out folder of 'segviewer evaluate'"
        )
    rows = [_normalise(r) for r in read_rows(folder / "cases.csv")]
    if rows and "case" not in rows[0]:
        raise SegviewerError(f"{folder / 'cases.csv'} has no case column")
    by_case: dict[str, list[dict[str, Any]]] | None = None
    if (folder / "slices.csv").exists() and not _has_case_records(folder):
        # another tool's tables: the whole slices.csv, once, here in the worker. segviewer's
        # own evaluation keeps each case's slice rows in a small file, read when the case
        # is opened (:meth:`TestSetSession._slice_rows`): a test set of hundreds of cases
        # opens without reading millions of rows.
        by_case = {}
        for r in read_rows(folder / "slices.csv"):
            r = _normalise(r)
            by_case.setdefault(str(r.get("case")), []).append(r)
    return LoadedTestSet(cl, notes, folder, rows, by_case)


def _has_case_records(folder: Path) -> bool:
    """Whether ``folder`` is segviewer's evaluation with per-case records."""
    return (folder / "summary.json").is_file() and (folder / "cases").is_dir()


def load_test_set_job(
    source: str | os.PathLike[str], evaluation: str | os.PathLike[str] | None
) -> Generator[Progress, None, LoadedTestSet]:
    """Worker: :func:`read_test_set` (a large ``slices.csv`` takes seconds)."""
    yield Progress(0, 1, f"Reading the test set {os.fspath(source)}")
    return read_test_set(source, evaluation)


class TestSetSession(QObject):
    """The open test set (see the module docstring).

    Signals
    -------
    rows_changed()
        The case-table rows changed (a case measured, a note saved, another class).
    measured(object)
        A :class:`Measured` for the open case arrived.
    pair_ready(object)
        A :class:`PairResult` for the open case arrived.
    failed(str)
        A job failed; the one-line reason.
    """

    __test__ = False  # not a pytest test class, despite the name

    rows_changed = Signal()
    measured = Signal(object)
    pair_ready = Signal(object)
    failed = Signal(str)

    def __init__(self, runner: JobRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self.cases: CaseList | None = None
        self.notes = ReviewNotes()
        self.evaluation: Path | None = None
        self._eval_cases: list[dict[str, Any]] | None = None
        self._eval_slices: dict[str, list[dict[str, Any]]] | None = None
        self._measured: dict[str, Measured] = {}
        self._measured_b: dict[str, CaseMetrics] = {}
        self.current: str | None = None
        self.class_name: str | None = None
        self.last: Measured | None = None
        self.last_pair: PairResult | None = None

    # -- opening -------------------------------------------------------------------------
    def open(self, cases: CaseList, *, evaluation: str | os.PathLike[str] | None = None) -> None:
        """Use this case list (from ``io.testset.load_cases``); read its notes sidecar and,
        if given, an evaluation folder (``cases.csv``, ``slices.csv``), in this thread
        (the window reads them with :func:`load_test_set_job` in a worker, then
        :meth:`apply`).

        Raises
        ------
        SegviewerError
            Unreadable notes or evaluation tables (nothing is changed then).
        """
        self.apply(read_test_set(cases, evaluation))

    def apply(self, loaded: LoadedTestSet) -> None:
        """Show a test set read by :func:`read_test_set` / :func:`load_test_set_job`."""
        self.cases = loaded.cases
        self.notes = loaded.notes
        self.evaluation = loaded.evaluation
        self._eval_cases = loaded.eval_cases
        self._eval_slices = loaded.eval_slices
        self._measured.clear()
        self._measured_b.clear()
        self.current = None
        self.last = self.last_pair = None
        names = self.class_names()
        self.class_name = names[0] if names else None
        self.rows_changed.emit()

    @staticmethod
    def notes_path_for(cases: CaseList) -> Path:
        """The sidecar: ``<name>.notes.csv`` beside a case-list CSV, else
        ``segviewer-notes.csv`` in the test-set folder (a glob: its fixed leading folder);
        the same file ``evaluate`` reads the verdicts from."""
        return notes_sidecar(cases)

    # -- queries -------------------------------------------------------------------------
    def case(self, case_id: str) -> Case:
        if self.cases is None:
            raise SegviewerError("open a test set first (File > Open test set…)")
        return self.cases.by_id(case_id)

    def class_names(self) -> list[str]:
        """Classes the case table can show (foreground, in class order)."""
        if self._eval_cases is not None:
            seen: dict[str, None] = {}
            for r in self._eval_cases:
                if r.get("class") is None:
                    continue
                if r.get("class_index", -1) == 0 or str(r["class"]).lower() in ("0", "background"):
                    continue  # background is never the class a reviewer hunts errors of
                seen.setdefault(str(r["class"]), None)
            return list(seen)
        for m in self._measured.values():
            return list(m.class_names[1:]) or list(m.class_names)
        return []

    def set_class(self, name: str | None) -> None:
        if name != self.class_name:
            self.class_name = name
            self.rows_changed.emit()

    def case_rows(self) -> list[dict[str, Any]]:
        """One row per case for :attr:`class_name` (see the module docstring)."""
        if self.cases is None:
            return []
        if self._eval_cases is not None:
            metrics = review.pivot_cases(self._eval_cases, self.class_name)
        else:
            metrics = review.pivot_cases(self._measured_records(), self.class_name)
        by_case = {str(r["case"]): r for r in metrics}
        rows = []
        for c in self.cases.cases:
            row: dict[str, Any] = {"case": c.id}
            for k, v in by_case.get(c.id, {}).items():
                if k != "case":
                    row[k] = v
            row.update(self.notes.case_summary(c.id))
            rows.append(row)
        return rows

    def case_columns(self, rows: list[dict[str, Any]] | None = None) -> list[str]:
        """Columns of ``rows`` (default :meth:`case_rows`) in a stable order: case, verdict,
        slice notes, the metrics (each of B's after A's), the comment."""
        cols = review.columns_of(self.case_rows() if rows is None else rows)
        head = ["case", "verdict", "slice_notes"]
        tail = ["comment"]
        return (
            [c for c in head if c in cols]
            + [c for c in cols if c not in head and c not in tail]
            + [c for c in tail if c in cols]
        )

    def _measured_records(self) -> list[dict[str, Any]]:
        recs: list[dict[str, Any]] = []
        for cid, m in self._measured.items():
            recs += _class_records(cid, m.metrics, m.class_names, "a")
            mb = self._measured_b.get(cid)
            if mb is not None:
                recs += _class_records(cid, mb, m.class_names, "b")
        return recs

    def worst_slice(self, case_id: str, class_name: str | None = None) -> int | None:
        """The slice index of :meth:`worst_position` (None when unknown)."""
        pos = self.worst_position(case_id, class_name)
        return None if pos is None else pos[1]

    def worst_position(self, case_id: str, class_name: str | None = None) -> tuple[int, int] | None:
        """Where to open a case for a class (default the case table's): ``(image axis,
        slice)`` of the evaluation's worst slice (its ``worst_slice`` column, else
        ``core.review.worst_slice`` over ``slices.csv``; the axis is the evaluation's
        ``--view``), else of the window's own measurement of that case; None when unknown."""
        name = self.class_name if class_name is None else class_name

        def ours(r: dict[str, Any]) -> bool:
            return str(r.get("model") or "a").lower() == "a" and (
                name is None or str(r.get("class", "")).lower() == name.lower()
            )

        if self._eval_cases is not None:
            for r in self._eval_cases:
                if str(r.get("case")) == case_id and ours(r):
                    ws, ax = review.as_number(r.get("worst_slice")), review.as_number(r.get("axis"))
                    if ws is not None:
                        return (int(ax) if ax is not None else 2), int(ws)
            all_rows = self._slice_rows(case_id)
            if all_rows:
                rows = [r for r in all_rows if ours(r)]
                ws = review.worst_slice(rows, case=case_id, class_name=name)
                if ws is not None:
                    ax = review.as_number(rows[0].get("axis")) if rows else None
                    return (int(ax) if ax is not None else 2), ws
        m = self._measured.get(case_id)
        if m is not None and name is not None:
            names = [n.lower() for n in m.class_names]
            if name.lower() in names:
                ws = m.metrics.worst_slice[names.index(name.lower())]
                return None if ws is None else (m.metrics.slice_axis, ws)
        return None

    def _slice_rows(self, case_id: str) -> list[dict[str, Any]]:
        """The evaluation's slice rows of one case: from the tables read at open, else from
        segviewer's per-case record (small; read on demand); [] when there are none."""
        if self._eval_slices is not None:
            return self._eval_slices.get(case_id, [])
        if self.evaluation is None or not _has_case_records(self.evaluation):
            return []
        from segviewer.io.evaluate import open_evaluation

        try:
            got = open_evaluation(self.evaluation).slice_rows(case_id)
        except SegviewerError:  # the case failed or was not evaluated
            return []
        return [_normalise(r) for r in got]

    # -- the open case ---------------------------------------------------------------------
    def set_current(self, case_id: str) -> Case:
        """The case the window now shows (the host opens its files)."""
        case = self.case(case_id)
        if case_id != self.current:
            self.current = case_id
            self.last = None
            self.last_pair = None
            self.runner.cancel("testset-measure")
            self.runner.cancel("testset-pair")
        return case

    def measure(
        self,
        labels: np.ndarray,
        reference: np.ndarray | None,
        n_classes: int,
        spacing: Sequence[float],
        slice_axis: int,
        prediction: Prediction | None,
        class_names: Sequence[str],
    ) -> None:
        """Measure the open case in a job (``measured`` follows)."""
        if self.current is None:
            raise SegviewerError("internal: no case is open to measure")
        self.runner.start(
            "testset-measure",
            measure_job,
            self.current,
            labels,
            reference,
            n_classes,
            tuple(spacing),
            slice_axis,
            prediction,
            tuple(class_names),
            label=f"Measuring {self.current}",
            on_result=self._measured_result,
            on_error=self._failed,
        )

    def _measured_result(self, m: Measured) -> None:
        self._measured[m.case_id] = m
        if m.case_id == self.current:
            self.last = m
        if self.class_name is None:
            names = self.class_names()
            self.class_name = names[0] if names else None
        self.measured.emit(m)
        self.rows_changed.emit()

    def load_prediction_b(
        self,
        image_shape: tuple[int, int, int],
        image_affine: np.ndarray,
        settings: MaskSettings,
        labels_a: np.ndarray,
        reference: np.ndarray | None,
        n_classes: int,
        spacing: Sequence[float],
        slice_axis: int,
    ) -> bool:
        """Load, label and compare the open case's second prediction in a job
        (``pair_ready`` follows). False when the case has none."""
        if self.current is None:
            return False
        case = self.case(self.current)
        if case.prediction_b is None:
            return False
        self.runner.start(
            "testset-pair",
            pair_job,
            case.id,
            str(case.prediction_b),
            tuple(image_shape),
            image_affine,
            settings,
            labels_a,
            reference,
            n_classes,
            tuple(spacing),
            slice_axis,
            label=f"Comparing with {case.prediction_b.name}",
            on_result=self._pair_result,
            on_error=self._failed,
        )
        return True

    def _pair_result(self, result: PairResult) -> None:
        self._measured_b[result.case_id] = result.metrics_b
        if result.case_id == self.current:
            self.last_pair = result
        self.pair_ready.emit(result)
        self.rows_changed.emit()

    def _failed(self, exc: BaseException) -> None:
        self.failed.emit(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def slice_rows(self, class_index: int | None) -> list[dict[str, Any]]:
        """The open case's slice-table rows (``core.review.slice_rows``) with the verdict
        of each slice's note; [] before the measurement arrives."""
        m = self.last
        if m is None:
            return []
        rows = review.slice_rows(
            m.metrics, class_index, uncertainty=m.uncertainty, class_names=m.class_names
        )
        notes = self.notes.slice_notes(m.case_id, m.metrics.slice_axis)
        for r in rows:
            n = notes.get(int(r["slice"]))
            r["verdict"] = n.verdict if n else ""
            r["comment"] = n.comment if n else ""
        return rows

    # -- notes -----------------------------------------------------------------------------
    def set_note(
        self,
        case_id: str,
        *,
        axis: int | None = None,
        slice_index: int | None = None,
        verdict: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Save a case note (no slice) or a slice note; the case table follows."""
        self.case(case_id)
        self.notes.set(case_id, axis=axis, slice=slice_index, verdict=verdict, comment=comment)
        self.rows_changed.emit()


def _normalise(row: dict[str, Any]) -> dict[str, Any]:
    """Evaluation rows under the names the session uses (``case``, ``class``)."""
    out = dict(row)
    if "case" not in out:
        for k in ("id", "case_id"):
            if k in out:
                out["case"] = out.pop(k)
                break
    if "class" not in out:
        for k in ("class_name", "label"):
            if k in out:
                out["class"] = out.pop(k)
                break
    if "case" in out and out["case"] is not None:
        out["case"] = str(out["case"])
    return out


_REFERENCE_METRICS = set(CASE_METRICS) - {"volume_pred_ml", "mean_entropy", "low_confidence_share"}


def _class_records(
    case_id: str, cm: CaseMetrics, names: Sequence[str], model: str
) -> list[dict[str, Any]]:
    recs = []
    for k, c in enumerate(cm.per_class):
        if k == 0 and cm.n_classes > 1:
            continue
        d = c.as_dict()
        rec: dict[str, Any] = {
            "case": case_id,
            "class": names[k] if k < len(names) else str(k),
            "model": model,
        }
        for col in CASE_METRICS:
            if col in _REFERENCE_METRICS and not cm.has_reference:
                continue  # without a reference these are undefined: no column at all
            if col in ("mean_entropy", "low_confidence_share") and not cm.has_uncertainty:
                continue
            rec[col] = d[col]
        if model == "a":
            rec["worst_slice"] = cm.worst_slice[k]
        recs.append(rec)
    return recs
