"""``report.html`` of an evaluation: one self-contained page (no script, no external file).

* the **summary table**: per model and class, mean ± standard deviation and median of every
  metric, with how many values were undefined (e.g. HD95 where one mask is empty);
* a **distribution plot per metric** (inline SVG): per class and model a box (quartiles,
  median, range) over the cases' values with every case as a dot;
* the **worst cases**, each with its worst slice as an annotated picture (PNG embedded as
  base64; drawn by the workers with :func:`segviewer.io.render.annotated_slice`) and its
  per-class numbers;
* the failed cases and their reasons, and the timing.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.metrics import METRICS
from segviewer.io.atomic import atomic_path

__all__ = ["write_report", "distribution_svg"]

_LABELS = {
    "dice": "Dice",
    "iou": "IoU",
    "sensitivity": "sensitivity",
    "precision": "precision",
    "volume_pred_ml": "predicted volume (ml)",
    "volume_ref_ml": "reference volume (ml)",
    "volume_diff_ml": "volume difference, pred − ref (ml)",
    "fp": "false-positive voxels",
    "fn": "false-negative voxels",
    "hd95_mm": "HD95 (mm)",
    "assd_mm": "ASSD (mm)",
    "mean_entropy": "mean normalised entropy",
    "low_confidence_share": "low-confidence share",
}
_TABLE_METRICS = (
    "dice",
    "iou",
    "sensitivity",
    "precision",
    "hd95_mm",
    "assd_mm",
    "volume_diff_ml",
    "mean_entropy",
    "low_confidence_share",
)
_PLOT_METRICS = _TABLE_METRICS
_UNIT_RANGE = {"dice", "iou", "sensitivity", "precision", "mean_entropy", "low_confidence_share"}
_NON_NEGATIVE = {"hd95_mm", "assd_mm", "volume_pred_ml", "volume_ref_ml", "fp", "fn"}
_MODEL_COLORS = {"a": "#2b7bd6", "b": "#e8830c"}

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.muted{color:#777}.bad{color:#b00}
figure{margin:16px 0;padding:8px;border:1px solid #ddd;background:#fafafa}
figure img{max-width:100%;image-rendering:pixelated}figcaption{margin-top:6px}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{border:1px solid #eee;background:#fff}
"""


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return f"{v:.{digits}f}" if abs(v) < 1000 else f"{v:.0f}"
    return html.escape(str(v))


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _nice_ticks(lo: float, hi: float, *, non_negative: bool) -> list[float]:
    """About five round tick values covering ``[lo, hi]`` (steps 1, 2, 2.5 or 5 x 10^k)."""
    if non_negative:
        lo = max(0.0, lo)
    if hi - lo < 1e-9:
        lo, hi = lo - 1.0, hi + 1.0
        if non_negative:
            lo = max(0.0, lo)
    raw = (hi - lo) / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    stop = math.ceil(hi / step) * step
    n = int(round((stop - start) / step))
    return [round(start + i * step, 10) for i in range(n + 1)]


def distribution_svg(
    metric: str, groups: Sequence[tuple[str, str, Sequence[float]]], width: int = 560
) -> str:
    """An inline SVG box-and-dots plot of one metric.

    Parameters
    ----------
    metric
        Metric name (title and axis range: ratios are drawn on [0, 1]).
    groups
        ``(label, model, values)`` per row; ``model`` picks the colour (``a`` / ``b``).
    """
    row_h, top, left, right, bottom = 26, 30, 150, 16, 34
    height = top + row_h * max(1, len(groups)) + bottom
    vals = [v for _, _, vs in groups for v in vs]
    if metric in _UNIT_RANGE or not vals:
        ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    else:
        ticks = _nice_ticks(min(vals), max(vals), non_negative=metric in _NON_NEGATIVE)
    lo, hi = ticks[0], ticks[-1]
    x0, x1 = left, width - right

    def x(v: float) -> float:
        return x0 + (v - lo) / (hi - lo) * (x1 - x0)

    better = METRICS.get(metric)
    hint = "" if better is None else (" (higher is better)" if better else " (lower is better)")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(metric)}">',
        f'<text x="8" y="18" font-size="13" font-weight="bold">'
        f"{html.escape(_LABELS.get(metric, metric) + hint)}</text>",
    ]
    y_axis = top + row_h * max(1, len(groups)) + 4
    for t in ticks:
        xt = x(float(t))
        parts.append(
            f'<line x1="{xt:.1f}" y1="{top - 4}" x2="{xt:.1f}" y2="{y_axis}" stroke="#eee"/>'
            f'<text x="{xt:.1f}" y="{y_axis + 14}" font-size="10" text-anchor="middle">'
            f"{float(t):g}</text>"
        )
    for i, (label, model, vs) in enumerate(groups):
        yc = top + row_h * i + row_h / 2
        color = _MODEL_COLORS.get(model, "#555")
        parts.append(
            f'<text x="{left - 8}" y="{yc + 4:.1f}" font-size="11" text-anchor="end">'
            f"{html.escape(label)}</text>"
        )
        if not vs:
            parts.append(
                f'<text x="{x0 + 4}" y="{yc + 4:.1f}" font-size="10" fill="#999">'
                "no defined values</text>"
            )
            continue
        a = np.asarray(vs, dtype=float)
        q1, med, q3 = (float(q) for q in np.percentile(a, [25, 50, 75]))
        parts.append(
            f'<line x1="{x(float(a.min())):.1f}" y1="{yc:.1f}" x2="{x(float(a.max())):.1f}" '
            f'y2="{yc:.1f}" stroke="{color}" stroke-width="1"/>'
            f'<rect x="{x(q1):.1f}" y="{yc - 7:.1f}" width="{max(1.0, x(q3) - x(q1)):.1f}" '
            f'height="14" fill="{color}" fill-opacity="0.18" stroke="{color}"/>'
            f'<line x1="{x(med):.1f}" y1="{yc - 8:.1f}" x2="{x(med):.1f}" y2="{yc + 8:.1f}" '
            f'stroke="{color}" stroke-width="2.5"/>'
        )
        for j, v in enumerate(a):
            jitter = ((j * 37) % 11 - 5) * 1.0  # deterministic spread, no randomness
            parts.append(
                f'<circle cx="{x(float(v)):.1f}" cy="{yc + jitter:.1f}" r="2.2" '
                f'fill="{color}" fill-opacity="0.7"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _summary_table(summary: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(_LABELS[m])}</th>" for m in _TABLE_METRICS)
    rows = []
    for model in summary["models"]:
        for cname, per in summary["metrics"][model].items():
            cells = []
            for m in _TABLE_METRICS:
                st = per.get(m, {})
                if not st.get("n"):
                    cells.append('<td class="muted">–</td>')
                    continue
                undefined = st.get("n_undefined", 0)
                extra = (
                    f' <span class="muted" title="cases where it is undefined">'
                    f"({undefined} undef.)</span>"
                    if undefined
                    else ""
                )
                cells.append(
                    f"<td>{_fmt(st['mean'])} ± {_fmt(st['std'])}<br>"
                    f'<span class="muted">median {_fmt(st["median"])}</span>{extra}</td>'
                )
            rows.append(
                f'<tr><td class="l">{html.escape(model.upper())}</td>'
                f'<td class="l">{html.escape(str(cname))}</td>{"".join(cells)}</tr>'
            )
    return (
        f'<table><tr><th class="l">model</th><th class="l">class</th>{head}</tr>'
        + "".join(rows)
        + "</table>"
    )


def _plots(summary: Mapping[str, Any], case_rows: Sequence[Mapping[str, Any]]) -> str:
    out = []
    for metric in _PLOT_METRICS:
        groups = []
        for cname in summary["classes"]:
            for model in summary["models"]:
                rows = [r for r in case_rows if r["model"] == model and r["class"] == cname]
                if not rows or rows[0].get("class_index") == 0:
                    continue
                vs = [v for v in (_num(r.get(metric)) for r in rows) if v is not None]
                label = f"{cname} ({model.upper()})" if len(summary["models"]) > 1 else str(cname)
                groups.append((label, model, vs))
        if any(vs for _, _, vs in groups):
            out.append(distribution_svg(metric, groups))
    return '<div class="plots">' + "".join(out) + "</div>"


def _case_table(rows: Sequence[Mapping[str, Any]]) -> str:
    cols = ("dice", "sensitivity", "precision", "hd95_mm", "assd_mm", "volume_diff_ml", "fp", "fn")
    head = "".join(f"<th>{html.escape(_LABELS.get(c, c))}</th>" for c in cols)
    body = []
    for r in rows:
        if r.get("class_index") == 0:
            continue
        cells = "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols)
        body.append(
            f'<tr><td class="l">{html.escape(str(r["model"]).upper())}</td>'
            f'<td class="l">{html.escape(str(r["class"]))}</td>{cells}'
            f"<td>{_fmt(r.get('worst_slice'))}</td></tr>"
        )
    return (
        f'<table><tr><th class="l">model</th><th class="l">class</th>{head}'
        f"<th>worst slice</th></tr>" + "".join(body) + "</table>"
    )


def _worst(
    summary: Mapping[str, Any],
    case_rows: Sequence[Mapping[str, Any]],
    pictures: Path,
) -> str:
    out = []
    for w in summary.get("worst_overall", []):
        cid = str(w["case"])
        img = ""
        if w.get("picture"):
            p = pictures / str(w["picture"])
            if p.is_file():
                b64 = base64.b64encode(p.read_bytes()).decode("ascii")
                img = f'<img alt="worst slice of {html.escape(cid)}" src="data:image/png;base64,{b64}">'
        where = (
            f"class {html.escape(str(w['class']))}, slice {w['slice']} along image axis {w['axis']}"
            if w.get("slice") is not None
            else "no slice to show"
        )
        rows = [r for r in case_rows if str(r["case"]) == cid]
        out.append(
            f"<figure>{img}<figcaption><b>{html.escape(cid)}</b>: "
            f"{html.escape(str(w['score_name']))} {_fmt(w['score'])}; {where}"
            f"{_case_table(rows)}</figcaption></figure>"
        )
    return "".join(out) or '<p class="muted">no case could be ranked</p>'


def _worst_per_class(summary: Mapping[str, Any]) -> str:
    out = []
    for model, per in summary.get("worst_cases", {}).items():
        for cname, items in per.items():
            if not items:
                continue
            key = "dice" if "dice" in items[0] else "mean_entropy"
            lis = "".join(
                f"<li>{html.escape(str(it['case']))}: {_LABELS[key]} {_fmt(it[key])}"
                + (
                    f", worst slice {it['worst_slice']} (axis {it['axis']})"
                    if it.get("worst_slice") is not None
                    else ""
                )
                + "</li>"
                for it in items
            )
            out.append(
                f"<h3>{html.escape(str(cname))} (model {html.escape(model.upper())})</h3><ol>{lis}</ol>"
            )
    return "".join(out)


def write_report(
    path: Path,
    summary: Mapping[str, Any],
    case_rows: Sequence[Mapping[str, Any]],
    pictures: Path,
) -> None:
    """Write ``report.html`` atomically (see the module docstring)."""
    t = summary.get("timing", {})
    failed = summary.get("failed", [])
    cps = t.get("cases_per_second")
    timing = (
        f"{t.get('cases_evaluated', 0)} cases computed in {t.get('seconds', 0):.1f} s"
        + (f" ({cps:.3f} cases/s" if isinstance(cps, float) and math.isfinite(cps) else " (")
        + (
            f", {t['workers']} worker{'s' if t['workers'] != 1 else ''}"
            if t.get("workers")
            else ", in one process"
        )
        + (f", {t['startup_seconds']:.1f} s to start them" if t.get("startup_seconds") else "")
        + ")"
        + (f"; {t['cases_resumed']} resumed from an earlier run" if t.get("cases_resumed") else "")
    )
    fail_html = (
        "<ul>"
        + "".join(
            f'<li class="bad"><b>{html.escape(str(f["case"]))}</b>: {html.escape(str(f["error"]))}</li>'
            for f in failed
        )
        + "</ul>"
        if failed
        else '<p class="muted">none</p>'
    )
    warn = summary.get("warnings", {})
    warn_html = (
        "<ul>"
        + "".join(
            f"<li><b>{html.escape(str(c))}</b>: {html.escape('; '.join(map(str, ws)))}</li>"
            for c, ws in warn.items()
        )
        + "</ul>"
        if warn
        else ""
    )
    ts = summary["test_set"]
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>segviewer evaluation: {html.escape(str(ts["source"]))}</title>
<style>{_CSS}</style></head><body>
<h1>Evaluation of {html.escape(str(ts["source"]))}</h1>
<p>{summary["n_evaluated"]} of {summary["n_cases"]} cases evaluated, {len(failed)} failed;
models: {", ".join(html.escape(m.upper()) for m in summary["models"]) or "–"};
slices: {html.escape(str(summary["options"]["view"]))}. {html.escape(timing)}.
segviewer {html.escape(str(summary["segviewer_version"]))}, {html.escape(str(summary["created"]))}.</p>
<p class="muted">{html.escape(str(summary["conventions"]))}</p>
<h2>Summary</h2>{_summary_table(summary)}
<h2>Distributions over cases</h2>
<p class="muted">Box: quartiles and median; line: range; dots: cases.</p>{_plots(summary, case_rows)}
<h2>Worst cases</h2>{_worst(summary, case_rows, pictures)}
<h2>Worst cases per class</h2>{_worst_per_class(summary)}
<h2>Failed cases</h2>{fail_html}
{"<h2>Warnings</h2>" + warn_html if warn_html else ""}
</body></html>
"""
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(doc, encoding="utf-8")
