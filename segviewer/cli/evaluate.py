"""``segviewer evaluate CASES --out DIR [--classes FILE] [--workers N | --scheduler ADDRESS]
[--resume] [--model MODEL]``.

Scores every case of a test set through :func:`segviewer.io.evaluate.run_evaluation` and
writes ``cases.csv``, ``slices.csv``, ``summary.json`` and ``report.html`` into DIR. On a
terminal a progress bar shows the finished cases; otherwise one line per finished case goes
to stderr (logs of long cluster runs). Exit status 0, or 1 when some cases failed (they are
listed on stderr and in the outputs; ``--resume`` tries them again).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from segviewer.cli.options import evaluate_parser
from segviewer.cli.terminal import ProgressBar, drive, err, parse, warn
from segviewer.core.types import Progress

__all__ = ["run"]


class _CaseLines(ProgressBar):
    """Without a terminal: one line per finished (or failed) case instead of a bar."""

    def __call__(self, p: Progress) -> None:
        if self.enabled and (p.message.endswith(" done") or " FAILED: " in p.message):
            err(f"segviewer: [{p.done}/{p.total}] {p.message}")


def _cases(n: int) -> str:
    return f"{n} case" if n == 1 else f"{n} cases"


def run(argv: Sequence[str]) -> int:
    ns = parse(evaluate_parser(), argv)
    if isinstance(ns, int):
        return ns
    from segviewer.core.types import MaskSettings
    from segviewer.io.evaluate import EvaluateOptions, run_evaluation

    options = EvaluateOptions(
        classes=ns.classes,
        view=ns.view,
        settings=MaskSettings(threshold=ns.threshold, min_confidence=ns.min_confidence),
        low_confidence=ns.low_confidence,
        distances=not ns.no_distances,
        slice_distances=not (ns.no_distances or ns.no_slice_distances),
        model=ns.model,
        trust_model=ns.trust_model,
        n_worst=ns.worst,
    )
    tty = sys.stderr.isatty()
    bar = (ProgressBar if tty else _CaseLines)(sys.stderr, not ns.quiet, "evaluating")
    result = drive(
        run_evaluation(
            ns.cases,
            ns.out,
            options,
            workers=ns.workers,
            scheduler=ns.scheduler,
            resume=ns.resume,
        ),
        bar,
    )
    for case_id, reason in result.failed:
        warn(f"case {case_id} failed: {reason}")
    if not ns.quiet:
        speed = (
            f", {result.cases_per_second:.3f} cases/s"
            if math.isfinite(result.cases_per_second)
            else ""
        )
        where = (
            f"{result.workers} worker{'s' if result.workers != 1 else ''}"
            if result.workers
            else "in this process"
        )
        print(
            f"{_cases(result.n_evaluated - len(result.failed))} evaluated in "
            f"{result.seconds:.1f} s ({where}{speed})"
            + (f", {result.n_resumed} already done" if result.n_resumed else "")
            + (f", {len(result.failed)} failed" if result.failed else "")
            + f"; report: {result.out_dir / 'report.html'}"
        )
    return 1 if result.failed else 0
