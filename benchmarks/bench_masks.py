"""Benchmark the mask hot path against numpy baselines measured in the same run.

A float32 logits volume of 4 classes x 136 x 256 x 256 (142.6 MB) in channels-first (CDHW)
and channels-last (DHWC) layouts: whole-volume labels, one slice's labels, confidence /
entropy, and a memory-mapped ``.npy`` (NDHWC) read cold and warm. Baselines: ``np.max`` over
the array (one read of the data: the memory-speed limit) and ``np.argmax``.

Run: ``python benchmarks/bench_masks.py [--repeat 7] [--small]`` (or ``benchmarks/run.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, drop_from_page_cache, format_table, median_ms  # noqa: E402

from segviewer.core.layout import detect_layout  # noqa: E402
from segviewer.core.masks import (  # noqa: E402
    iter_labels,
    iter_stat,
    slice_labels,
    slice_stat,
)
from segviewer.core.orientation import display_axes  # noqa: E402
from segviewer.core.progress import run_to_end  # noqa: E402
from segviewer.core.types import MaskSettings, Prediction, PredictionKind  # noqa: E402

# Image axes (slice, row, col) with the RAS-less stack affine: axial = axis 0.
FULL = (136, 256, 256)
SMALL = (34, 128, 128)
N_CLASSES = 4


def _pred(raw: np.ndarray, shape: tuple[int, int, int], layout: str) -> Prediction:
    lay = detect_layout(raw.shape, shape, explicit=layout)
    return Prediction(raw, PredictionKind.LOGITS, lay, N_CLASSES)


def run(repeat: int = 7, small: bool = False) -> list[Row]:
    """Time everything; return the table rows."""
    shape = SMALL if small else FULL
    rng = np.random.default_rng(0)
    cf = (rng.standard_normal((N_CLASSES, *shape), dtype=np.float32) * 3).astype(np.float32)
    cl = np.ascontiguousarray(np.moveaxis(cf, 0, -1))
    mb = cf.nbytes / 1e6
    rows: list[Row] = []
    settings = MaskSettings()
    from segviewer.core.types import STACK_AFFINE

    axial = display_axes(STACK_AFFINE, "axial")
    mid = shape[0] // 2

    t_max = median_ms(lambda: np.max(cf), repeat)
    rows.append(Row("baseline", f"np.max, {mb:.0f} MB float32 (memory-speed limit)", t_max))
    t_am_cf = median_ms(lambda: np.argmax(cf, axis=0), repeat)
    rows.append(
        Row("baseline", "np.argmax over the class axis, CDHW", t_am_cf, "np.max", t_am_cf / t_max)
    )
    t_am_cl = median_ms(lambda: np.argmax(cl, axis=-1), repeat)
    rows.append(
        Row("baseline", "np.argmax over the class axis, DHWC", t_am_cl, "np.max", t_am_cl / t_max)
    )

    for layout, raw in (("CDHW", cf), ("DHWC", cl)):
        pred = _pred(raw, shape, layout)
        t = median_ms(lambda pred=pred: run_to_end(iter_labels(pred, settings)), repeat)
        rows.append(Row("labels", f"iter_labels whole volume, {layout}", t, "np.max", t / t_max))
        t_am = t_am_cf if layout == "CDHW" else t_am_cl
        rows.append(Row("labels", f"iter_labels whole volume, {layout}", t, "np.argmax", t / t_am))
        ts = median_ms(lambda pred=pred: slice_labels(pred, axial, mid, settings), repeat * 5)
        sl = raw[:, mid] if layout == "CDHW" else raw[mid]
        ax = 0 if layout == "CDHW" else -1
        ts_am = median_ms(lambda sl=sl, ax=ax: np.argmax(sl, axis=ax), repeat * 5)
        rows.append(
            Row(
                "labels",
                f"slice_labels axial {shape[1]}x{shape[2]}, {layout}",
                ts,
                "np.argmax slice",
                ts / ts_am,
            )
        )

    pred_cf = _pred(cf, shape, "CDHW")
    pred_cl = _pred(cl, shape, "DHWC")

    def naive_confidence() -> np.ndarray:
        e = np.exp(cf - cf.max(axis=0))
        return np.asarray((e / e.sum(axis=0)).max(axis=0))

    t_naive = median_ms(naive_confidence, max(1, repeat // 3), warmup=0)
    rows.append(
        Row(
            "stats",
            "naive softmax then max (float32, whole volume)",
            t_naive,
            "np.max",
            t_naive / t_max,
        )
    )
    for stat in ("confidence", "entropy", "margin"):
        t = median_ms(lambda stat=stat: run_to_end(iter_stat(pred_cf, stat)), repeat)
        rows.append(Row("stats", f"iter_stat {stat}, CDHW", t, "naive softmax", t / t_naive))
    t = median_ms(lambda: run_to_end(iter_stat(pred_cl, "entropy")), repeat)
    rows.append(Row("stats", "iter_stat entropy, DHWC", t, "naive softmax", t / t_naive))
    t = median_ms(lambda: slice_stat(pred_cf, axial, mid, "entropy", normalised=True), repeat * 5)
    rows.append(
        Row(
            "stats", f"slice_stat entropy axial {shape[1]}x{shape[2]}, CDHW", t, "np.max", t / t_max
        )
    )

    with tempfile.TemporaryDirectory(prefix="segviewer-bench-") as tmp:
        path = Path(tmp) / "logits.npy"
        np.save(path, cl[None])  # NDHWC as TensorFlow writes it
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        pred_mm = Prediction(
            mm, PredictionKind.LOGITS, detect_layout(mm.shape, shape, explicit="NDHWC"), N_CLASSES
        )
        colds = []
        for i in range(max(3, repeat // 2)):
            dropped = drop_from_page_cache(path)
            colds.append(
                median_ms(
                    lambda i=i: slice_labels(pred_mm, axial, (mid + 7 * i) % shape[0], settings),
                    1,
                    warmup=0,
                )
            )
        cold = float(np.median(colds))
        label = "cold" if dropped else "cold-ish (page cache not dropped)"
        rows.append(Row("memmap", f"slice_labels axial from .npy memmap, {label}", cold))
        warm = median_ms(lambda: slice_labels(pred_mm, axial, mid, settings), repeat * 5)
        rows.append(
            Row("memmap", "slice_labels axial from .npy memmap, warm", warm, "cold", warm / cold)
        )
        drop_from_page_cache(path)
        t_cold = median_ms(lambda: run_to_end(iter_labels(pred_mm, settings)), 1, warmup=0)
        rows.append(
            Row(
                "memmap",
                "iter_labels whole volume from .npy memmap, cold",
                t_cold,
                "np.max in RAM",
                t_cold / t_max,
            )
        )
        t_warm = median_ms(lambda: run_to_end(iter_labels(pred_mm, settings)), repeat)
        rows.append(
            Row(
                "memmap",
                "iter_labels whole volume from .npy memmap, warm",
                t_warm,
                "np.max in RAM",
                t_warm / t_max,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per benchmark (median)")
    ap.add_argument("--small", action="store_true", help="a 9 MB volume, for a quick check")
    args = ap.parse_args(argv)
    print(format_table(run(args.repeat, args.small)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
