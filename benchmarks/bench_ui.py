"""Window speed: launch to first shown slice, and slice switching with the overlay on.

    python benchmarks/bench_ui.py [--launches 5] [--switches 400]

Runs offscreen (QT_QPA_PLATFORM=offscreen). "Launch" is a fresh ``python -m segviewer --demo
--screenshot`` process: time from process start to the first slice on screen (printed by the
window with SEGVIEWER_TIMING=1), and to the finished screenshot (all background work done).
"Switch" is one slice change in the demo's axial view, measured in-process: cursor change,
label slice (cache miss: a new slice every time), blend, ImageItem update and a synchronous
repaint of the view.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def bench_launch(n: int) -> tuple[list[float], list[float]]:
    first, total = [], []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SEGVIEWER_TIMING="1", SEGVIEWER_SETTINGS=str(Path(tmp) / "s.ini"))
        for i in range(n):
            t0 = time.time()
            out = subprocess.run(
                [sys.executable, "-m", "segviewer", "--demo", "--screenshot", str(Path(tmp) / f"{i}.png")],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            total.append(time.time() - t0)
            m = re.search(r"epoch ([0-9.]+)", out.stderr)
            if m is None:
                raise SystemExit(f"no timing line in:\n{out.stderr}")
            first.append(float(m.group(1)) - t0)
    return first, total


def bench_switch(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SEGVIEWER_SETTINGS"] = str(Path(tmp) / "s.ini")
        from segviewer.ui.api import view
        from segviewer.ui.app import demo_paths

        v = view(*demo_paths())
        win = v.window
        win.resize(1400, 900)
        v.wait_idle()
        canvas = win.canvas
        vp = canvas.graphics.viewport()
        n_slices = canvas.n_slices()
        results = {}
        for mode, display in (("fill", "labels"), ("both", "labels"), ("fill", "entropy")):
            v.set_mode(mode)
            v.set_display(display)
            times = []
            for k in range(n):
                idx = 10 + (k * 37) % (n_slices - 20)  # jump around: label cache misses
                t0 = time.perf_counter()
                canvas.set_slice(idx)
                vp.repaint()
                times.append(time.perf_counter() - t0)
            results[f"{display}/{mode}"] = statistics.median(times) * 1e3
        # A class toggle (LUT only) on the current slice.
        times = []
        for k in range(n):
            t0 = time.perf_counter()
            win.state.set_visible(1, k % 2 == 0)
            vp.repaint()
            times.append(time.perf_counter() - t0)
        results["class toggle"] = statistics.median(times) * 1e3
        # The legend that follows the slice, on and off in the same run (its cost is the
        # difference), with the demo's 3 classes and a 114-class atlas-like label map.
        v.set_mode("fill")
        v.set_display("labels")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
        from make_screenshots import many_class_case

        for tag in ("3 classes", "114 classes"):
            if tag == "114 classes":
                pred, table = many_class_case(win.label_result.labels)
                win.set_prediction(pred, table=table)
                v.wait_idle()
            for legend in (True, False):
                win.state.set_options(legend=legend)
                times = []
                for k in range(n):
                    idx = 10 + (k * 37) % (n_slices - 20)
                    t0 = time.perf_counter()
                    canvas.set_slice(idx)
                    vp.repaint()
                    times.append(time.perf_counter() - t0)
                results[f"{tag}, legend {'on' if legend else 'off'}"] = (
                    statistics.median(times) * 1e3
                )
        v.close()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--launches", type=int, default=5)
    p.add_argument("--switches", type=int, default=400)
    a = p.parse_args()
    first, total = bench_launch(a.launches)
    print(
        f"launch -> first slice: median {statistics.median(first):.2f} s (min {min(first):.2f}, n={len(first)})"
    )
    print(f"launch -> screenshot done: median {statistics.median(total):.2f} s")
    for name, ms in bench_switch(a.switches).items():
        print(f"{name:>24}: median {ms:.2f} ms per switch (n={a.switches})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
