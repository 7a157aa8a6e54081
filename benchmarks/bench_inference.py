"""Benchmark: segviewer's predict() on the demo vs calling the model directly, same process.

Run from the repository root: ``python benchmarks/bench_inference.py [--repeats N]``.

1. Time to first prediction, cold (this process has not imported TensorFlow yet): from calling
   ``predict(volume, "resources/demo/model.keras")`` to the first batch of slices done, and to
   the whole volume done (import, load, trace and run included).
2. Warm: ``predict`` with an opened model (normalisation, padding, batching, cropping, writing
   channels-first float32 output, progress) against the model alone: a ``tf.function`` with a
   fixed input signature on the same already-preprocessed, padded slices, at the best of
   several batch sizes. Medians of ``--repeats`` runs; prints the ratio (target <= ~1.10).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    assert "tensorflow" not in sys.modules
    import nibabel as nib

    from segviewer.core.progress import run_to_end
    from segviewer.core.types import Volume
    from segviewer.inference import open_model, predict
    from segviewer.inference.preprocess import normalize

    img: Any = nib.load(DEMO / "t1.nii.gz")
    vol = Volume(np.asarray(img.dataobj), img.affine, source="t1.nii.gz", format="nifti")

    t0 = time.perf_counter()
    first = None
    stages: list[tuple[str, float]] = []
    gen = predict(vol, DEMO / "model.keras")
    try:
        while True:
            p = next(gen)
            stages.append((p.message, time.perf_counter() - t0))
            if first is None and p.message.startswith("slices"):
                first = time.perf_counter() - t0
    except StopIteration as stop:
        _, prov = stop.value
    total = time.perf_counter() - t0
    print(
        f"demo volume {vol.shape}, slices {prov['preprocessing']['model_input_shape']}, "
        f"batch {prov['batch_size']}"
    )
    print(
        f"cold: first batch of slices after {first:.2f} s, whole volume after {total:.2f} s "
        "(TensorFlow import, model load, tracing included)"
    )

    for (msg, t), (_, t_next) in zip(stages[:4], stages[1:5], strict=False):
        print(f"  {t:6.2f} s  {msg} (next step after {t_next - t:.2f} s)")

    import tensorflow as tf

    handle = open_model(DEMO / "model.keras")
    run_to_end(predict(vol, handle))  # trace once, as a reviewer re-running would have it

    # The same preprocessed input, prepared outside the timing: z-score, axial, edge pad.
    x = normalize(vol.data, "zscore")
    items = np.moveaxis(x, 2, 0)
    pads = [(0, 0), *[(p[0], p[1]) for p in prov["preprocessing"]["padding"]]]
    batch_in = np.ascontiguousarray(np.pad(items, pads, mode="edge")[..., None])
    model = handle.model
    spec = tf.TensorSpec((None, *batch_in.shape[1:]), tf.float32)
    fn = tf.function(lambda t: model(t, training=False), input_signature=[spec])

    def direct(bs: int) -> float:
        t = time.perf_counter()
        n = sum(len(fn(batch_in[i : i + bs]).numpy()) for i in range(0, len(batch_in), bs))
        assert n == len(batch_in)
        return time.perf_counter() - t

    sizes = (8, 16, 32, len(batch_in))
    for bs in sizes:
        direct(bs)  # warm-up (tracing for the last, smaller batch)
    # Interleave the runs so that load from other processes hits both sides alike.
    seg: list[float] = []
    dir_t: dict[int, list[float]] = {bs: [] for bs in sizes}
    for _ in range(args.repeats):
        t = time.perf_counter()
        run_to_end(predict(vol, handle))
        seg.append(time.perf_counter() - t)
        for bs in sizes:
            dir_t[bs].append(direct(bs))
    med = {bs: statistics.median(v) for bs, v in dir_t.items()}
    best = min(med, key=med.__getitem__)
    for bs in sizes:
        print(
            f"direct tf.function, batch {bs:3d}: median {med[bs] * 1000:7.1f} ms, "
            f"min {min(dir_t[bs]) * 1000:7.1f} ms"
        )
    print(
        f"segviewer predict, batch {prov['batch_size']:3d}: median {statistics.median(seg) * 1000:7.1f}"
        f" ms, min {min(seg) * 1000:7.1f} ms"
    )
    pair = statistics.median(s / d for s, d in zip(seg, dir_t[best], strict=True))
    print(
        f"ratio segviewer / best direct (batch {best}): median of paired runs {pair:.3f}, "
        f"of minima {min(seg) / min(min(v) for v in dir_t.values()):.3f} (the minima are the "
        "least disturbed by other load)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
