"""Benchmark world-space resampling (core.resample.iter_resample) against one whole-volume
``scipy.ndimage.affine_transform`` per channel (the unstreamed way), in time and memory.

Float32 logits, 4 classes x 160^3 in a memory-mapped ``.npy`` (``--small``: 48^3), resampled onto a grid of 1.37 mm
voxels shifted by a few mm from the 2 mm source (linear per class), and the argmax label map
(nearest neighbour). The streamed version works slab by slab with a 64 MB budget and reads
only the source box each slab needs; the peak traced memory beyond the preallocated output is
printed in brackets. Here the channels are contiguous float32, so the baseline works on the
map without a copy; for channels-last or float16 files it needs a whole-channel copy, while
the streamed one stays within its slab budget (32 MB) whatever the file's size or layout.

Run: ``python benchmarks/bench_resample.py [--repeat 5] [--small]`` (or ``benchmarks/run.py``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Row, format_table, median_ms  # noqa: E402

from segviewer.core.progress import run_to_end  # noqa: E402
from segviewer.core.resample import iter_resample, world_matrix  # noqa: E402


def _peak_mb(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    fn()
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024**2


def run(repeat: int, small: bool) -> list[Row]:
    from scipy import ndimage

    n = 48 if small else 160
    rng = np.random.default_rng(0)
    tmp = tempfile.TemporaryDirectory()
    path = Path(tmp.name) / "logits.npy"
    np.save(path, rng.standard_normal((4, n, n, n), dtype=np.float32))
    src = np.load(path, mmap_mode="r")  # memory-mapped, as segviewer opens a .npy
    labels = np.asarray(src).argmax(axis=0).astype(np.uint8)
    src_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    img_aff = np.diag([1.37, 1.37, 1.37, 1.0])
    img_aff[:3, 3] = [3.1, -2.3, 1.7]
    shape = tuple(int(n * 2 / 1.37) for _ in range(3))
    m = world_matrix(src_aff, img_aff)
    out = np.empty((4, *shape), np.float32)
    out_lab = np.empty(shape, np.uint8)

    def whole_linear() -> None:
        for c in range(4):
            ndimage.affine_transform(
                src[c], m[:3, :3], m[:3, 3], output_shape=shape, output=out[c], order=1,
                mode="nearest",
            )  # fmt: skip

    def streamed_linear() -> None:
        run_to_end(iter_resample(src, m, out, labels=False))

    def whole_nearest() -> None:
        ndimage.affine_transform(
            labels, m[:3, :3], m[:3, 3], output_shape=shape, output=out_lab, order=0,
            mode="nearest",
        )  # fmt: skip

    def streamed_nearest() -> None:
        run_to_end(iter_resample(labels, m, out_lab, labels=True))

    group = f"resample {n}^3 -> {shape[0]}^3"
    rows = []
    for what, whole, streamed in (
        ("linear x4 classes", whole_linear, streamed_linear),
        ("nearest labels", whole_nearest, streamed_nearest),
    ):
        # the file's pages are cached after the first run: both read from memory
        base = median_ms(whole, repeat)
        t = median_ms(streamed, repeat)
        base_mb, mb = _peak_mb(whole), _peak_mb(streamed)
        rows.append(Row(group, f"affine_transform whole volume, {what} ({base_mb:.0f} MB)", base))
        rows.append(
            Row(
                group,
                f"iter_resample slab by slab, {what} ({mb:.0f} MB)",
                t,
                "affine_transform",
                t / base,
            )
        )
    tmp.cleanup()  # the map keeps its own handle; the file's name is gone
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    print(format_table(run(args.repeat, args.small)))


if __name__ == "__main__":
    main()
