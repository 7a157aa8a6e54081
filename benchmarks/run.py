"""Run all benchmarks and print one table.

Usage::

    python benchmarks/run.py                 # everything, default repeats
    python benchmarks/run.py --only masks    # or: overlay
    python benchmarks/run.py --small         # a 9 MB logits volume: a quick smoke run

Not part of the test suite: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import Row, format_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="segviewer benchmarks")
    ap.add_argument("--only", choices=("masks", "overlay"), help="run one benchmark file")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per line (median)")
    ap.add_argument("--small", action="store_true", help="small logits volume (masks)")
    args = ap.parse_args(argv)

    print(
        f"numpy {np.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    rows: list[Row] = []
    if args.only in (None, "masks"):
        import bench_masks

        rows += bench_masks.run(args.repeat or 7, args.small)
    if args.only in (None, "overlay"):
        import bench_overlay

        rows += bench_overlay.run(args.repeat or 50)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
