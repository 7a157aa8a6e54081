"""Run all benchmarks and print their tables.

Usage::

    python benchmarks/run.py                  # everything, default repeats
    python benchmarks/run.py --only masks     # kernels: masks, overlay, resample
    python benchmarks/run.py --only switch,open   # speed targets: switch, heatmap, volume,
                                              # open, gap, startup (bench_speed.py)
    python benchmarks/run.py --small          # kernels on a 9 MB logits volume
    python benchmarks/run.py --smoke          # every benchmark once on tiny data (tests/)

Not part of the timed test suite: timings depend on the machine and its load. The smoke run
is (tests/test_benchmarks.py), so the benchmarks keep working.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from _common import Row, format_table  # noqa: E402

KERNELS = ("masks", "overlay", "resample")


def main(argv: list[str] | None = None) -> int:
    import bench_speed

    ap = argparse.ArgumentParser(description="segviewer benchmarks")
    ap.add_argument(
        "--only",
        help="comma-separated: " + ", ".join(KERNELS + bench_speed.CASES) + " (default: all)",
    )
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per kernel line")
    ap.add_argument("--small", action="store_true", help="small logits volume (masks)")
    ap.add_argument("--smoke", action="store_true", help="everything once on tiny data")
    ap.add_argument("--model", action="store_true", help="gap: also run the demo model")
    ap.add_argument(
        "--data-dir",
        default=str(Path(tempfile.gettempdir()) / "segviewer-bench"),
        help="where generated test files are kept (reused between runs)",
    )
    args = ap.parse_args(argv)
    names = list(KERNELS + bench_speed.CASES)
    if args.only:
        names = [n.strip() for n in args.only.split(",")]
        bad = [n for n in names if n not in KERNELS + bench_speed.CASES]
        if bad:
            ap.error(f"unknown benchmark(s): {', '.join(bad)}")

    print(bench_speed.machine(), flush=True)
    rows: list[Row] = []
    if "masks" in names:
        import bench_masks

        rows += bench_masks.run(1 if args.smoke else args.repeat or 7, args.small or args.smoke)
    if "overlay" in names:
        import bench_overlay

        rows += bench_overlay.run(1 if args.smoke else args.repeat or 50)
    if "resample" in names:
        import bench_resample

        rows += bench_resample.run(1 if args.smoke else args.repeat or 5, args.small or args.smoke)
    if rows:
        print(format_table(rows), flush=True)
    cases = [n for n in names if n in bench_speed.CASES]
    if cases:
        data = Path(args.data_dir) / ("smoke" if args.smoke else "full")
        lines = bench_speed.run(cases, args.smoke, data, args.model)
        print(bench_speed.format_lines(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
