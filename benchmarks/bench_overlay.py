"""Benchmark the overlay blend (compose) against the obvious numpy ways to do it.

Slices of 256x256 and 512x512 with 4 and 32 classes (smooth anatomical-like regions with
noisy borders); baselines measured in the same run: a float32 alpha blend through fancy
indexing, and a Python loop over classes with boolean masks.

Run: ``python benchmarks/bench_overlay.py [--repeat 50]`` (or ``benchmarks/run.py``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, format_table, median_ms  # noqa: E402

from segviewer.core.classes import ClassTable  # noqa: E402
from segviewer.core.overlay import (  # noqa: E402
    build_lut,
    compose,
    heatmap_rgba,
    outline,
    window_to_uint8,
)


def _slice(n: int, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A grey slice and concentric class regions with noisy borders."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    r = np.hypot(yy - n / 2, xx - n / 2) / (n / 2)
    r += rng.normal(0, 0.02, r.shape).astype(np.float32)
    lab = np.clip((1 - r) * n_classes, 0, n_classes - 1).astype(np.uint8)
    grey = rng.normal(500, 150, (n, n)).astype(np.float32)
    return grey, lab


def float_blend(grey_u8: np.ndarray, lab: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Baseline: per-pixel float arithmetic through fancy indexing."""
    a = lut[lab, 3:4].astype(np.float32) / 255.0
    rgb = grey_u8[..., None].astype(np.float32) * (1.0 - a) + lut[lab, :3].astype(np.float32) * a
    out = np.empty((*lab.shape, 4), dtype=np.uint8)
    out[..., :3] = rgb + 0.5
    out[..., 3] = 255
    return out


def loop_blend(grey_u8: np.ndarray, lab: np.ndarray, lut: np.ndarray, n_classes: int) -> np.ndarray:
    """Baseline: a Python loop over classes with boolean masks."""
    out = np.empty((*lab.shape, 4), dtype=np.uint8)
    out[..., :3] = grey_u8[..., None]
    out[..., 3] = 255
    for k in range(1, n_classes):
        m = lab == k
        if not m.any():
            continue
        a = lut[k, 3] / 255.0
        g = grey_u8[m].astype(np.float32)[:, None]
        out[m, :3] = (g * (1 - a) + lut[k, :3] * a + 0.5).astype(np.uint8)
    return out


def run(repeat: int = 50) -> list[Row]:
    """Time everything; return the table rows."""
    rng = np.random.default_rng(0)
    rows: list[Row] = []
    for n in (256, 512):
        for n_classes in (4, 32):
            grey, lab = _slice(n, n_classes, rng)
            lut = build_lut(ClassTable.default(n_classes), None, 0.5)
            g8 = window_to_uint8(grey, 500, 600)
            out = np.empty((n, n, 4), dtype=np.uint8)
            tag = f"{n}x{n}, {n_classes} classes"
            t_float = median_ms(lambda g8=g8, lab=lab, lut=lut: float_blend(g8, lab, lut), repeat)
            t_loop = median_ms(
                lambda g8=g8, lab=lab, lut=lut, k=n_classes: loop_blend(g8, lab, lut, k), repeat
            )
            rows.append(Row("baseline", f"float blend, {tag}", t_float))
            rows.append(Row("baseline", f"loop over classes, {tag}", t_loop))
            for mode in ("fill", "outline", "both"):
                t = median_ms(
                    lambda g8=g8, lab=lab, lut=lut, out=out, mode=mode: compose(
                        g8, lab, lut, mode=mode, out=out
                    ),
                    repeat,
                )
                rows.append(Row("compose", f"compose {mode}, {tag}", t, "float blend", t / t_float))
            t = median_ms(
                lambda g8=g8, lab=lab, lut=lut, out=out: compose(g8, lab, lut, out=out), repeat
            )
            rows.append(Row("compose", f"compose fill, {tag}", t, "loop over classes", t / t_loop))
        grey, lab = _slice(n, 4, rng)
        table = ClassTable.default(4)
        counter = itertools.count()
        g8 = window_to_uint8(grey, 500, 600)

        def toggle(
            g8: np.ndarray = g8,
            lab: np.ndarray = lab,
            table: ClassTable = table,
            counter: itertools.count[int] = counter,
        ) -> np.ndarray:
            # a new opacity every call: the blend table is never in the cache
            i = next(counter)
            lut = build_lut(table, [True, True, i % 2 == 0, True], (i % 97 + 1) / 100)
            return compose(g8, lab, lut)

        t_toggle = median_ms(toggle, repeat)
        rows.append(
            Row(
                "compose",
                f"toggle/opacity change: new LUT + blend table + compose, {n}x{n}",
                t_toggle,
            )
        )
        rows.append(
            Row(
                "other",
                f"window_to_uint8 float32 {n}x{n}",
                median_ms(lambda g=grey: window_to_uint8(g, 500, 600), repeat),
            )
        )
        rows.append(
            Row(
                "other",
                f"outline width 1, {n}x{n}",
                median_ms(lambda lab=lab: outline(lab), repeat),
            )
        )
        vals = rng.random((n, n), dtype=np.float32)
        rows.append(
            Row(
                "other",
                f"heatmap_rgba {n}x{n}",
                median_ms(lambda v=vals: heatmap_rgba(v, 0, 1), repeat),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=50, help="timed runs per benchmark (median)")
    args = ap.parse_args(argv)
    print(format_table(run(args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
