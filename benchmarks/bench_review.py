"""Case-table work at test-set scale: pivot, filter, sort (``core.review``), and the table
refresh in the window (``ui.case_table``), against a plain-Python baseline in the same run.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_review.py [--cases 2000] [--repeat 5]

The baseline is what a notebook does with the same rows: a dict comprehension for the pivot,
a list comprehension with the filter written as Python, ``sorted`` with a key. The ratio
says what the safe filter parser and the missing-values-last sort cost on top; the absolute
times say whether typing a filter on a 2000-case test set stays interactive (< 100 ms).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def records(n_cases: int, seed: int = 0) -> list[dict[str, Any]]:
    """``cases.csv``-like rows: n cases x 3 classes x 2 models, some metrics missing."""
    rng = random.Random(seed)
    out = []
    for i in range(n_cases):
        for cls in ("grey", "white", "csf"):
            for model in ("a", "b"):
                d = rng.betavariate(8, 2)
                out.append(
                    {
                        "case": f"case{i:05d}",
                        "class": cls,
                        "model": model,
                        "dice": d,
                        "iou": d / (2 - d),
                        "fp": rng.randint(0, 5000),
                        "fn": rng.randint(0, 5000),
                        "hd95_mm": math.nan if rng.random() < 0.05 else rng.uniform(0, 20),
                        "volume_pred_ml": rng.uniform(100, 900),
                    }
                )
    return out


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    from segviewer.core import review

    recs = records(args.cases)
    text = "dice < 0.8 and fp + fn > 1000"

    def ours() -> list[dict[str, Any]]:
        rows = review.pivot_cases(recs, "white")
        kept = review.filter_rows(rows, text)
        return review.sort_rows(kept, "dice_diff")

    def baseline() -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for r in recs:
            if r["class"] != "white":
                continue
            row = rows.setdefault(r["case"], {"case": r["case"]})
            suffix = "_b" if r["model"] == "b" else ""
            for k in ("dice", "iou", "fp", "fn", "hd95_mm", "volume_pred_ml"):
                row[k + suffix] = r[k]
        for row in rows.values():
            row["dice_diff"] = row["dice_b"] - row["dice"]
        kept = [r for r in rows.values() if r["dice"] < 0.8 and r["fp"] + r["fn"] > 1000]
        return sorted(kept, key=lambda r: r["dice_diff"])

    a, b = ours(), baseline()
    assert [r["case"] for r in a] == [r["case"] for r in b], "results differ"
    t_ours = best_of(ours, args.repeat)
    t_base = best_of(baseline, args.repeat)

    from PySide6.QtWidgets import QApplication

    from segviewer.ui.case_table import CaseTable

    app = QApplication.instance() or QApplication(sys.argv[:1])
    table = CaseTable()
    table.resize(900, 600)
    table.show()
    rows = review.pivot_cases(recs, "white")

    def refresh() -> None:
        table.set_rows(rows)
        table.set_filter(text)
        table.sort_by("dice_diff")
        app.processEvents()

    t_table = best_of(refresh, args.repeat)
    n_rows = len(rows)
    print(f"case table, {args.cases} cases x 3 classes x 2 models ({len(recs)} records)")
    print(f"  pivot + filter + sort (core.review): {t_ours * 1e3:8.1f} ms")
    print(f"  same in plain Python (baseline):     {t_base * 1e3:8.1f} ms")
    print(f"  ratio core.review / baseline:        {t_ours / t_base:8.2f}")
    print(f"  window table refresh ({n_rows} rows, filter, sort): {t_table * 1e3:8.1f} ms")
    table.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
