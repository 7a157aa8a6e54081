"""Benchmark: ``segviewer evaluate`` cases per second, in this process and on 1, 2... Dask workers.

Run from the repository root::

    python benchmarks/bench_evaluate.py                       # the demo (2 mm, 98x116x94)
    python benchmarks/bench_evaluate.py --t1 T1.nii.gz --gm GM.nii.gz --wm WM.nii.gz \\
        --cases 8 --workers 0,1,2

It builds a test set from one real T1 and its grey / white matter probability maps (any
NIfTI, e.g. the ICBM152 template at 1 mm): the reference is the arg-max of (background, grey,
white); each case gets float32 logits (channels last, ``.npy``, memory-mapped when read) of
a known quality, cycling through: perfect, shifted by 1 and by 3 voxels, white matter eroded,
noisy, unsure (flattened softmax), a block with grey and white swapped, a block missed.
Then it runs :func:`segviewer.io.evaluate.run_evaluation` once per worker count on the same
files and prints wall time, worker start-up, cases per second and the speed-up against one
worker measured in the same run. All metrics are on (per-slice HD95 / ASSD too) unless
``--no-slice-distances``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"
QUALITIES = ("perfect", "shift1", "shift3", "eroded", "noisy", "unsure", "swapped", "missed")


def _load_probs(args: argparse.Namespace) -> tuple[object, np.ndarray]:
    import nibabel as nib

    t1 = nib.load(args.t1)
    if args.gm and args.wm:
        gm = np.asarray(nib.load(args.gm).dataobj, dtype=np.float32)
        wm = np.asarray(nib.load(args.wm).dataobj, dtype=np.float32)
        scale = 255.0 if max(gm.max(), wm.max()) > 1.5 else 1.0
        gm, wm = gm / scale, wm / scale
        bg = np.clip(1.0 - gm - wm, 0.0, 1.0)
        probs = np.stack([bg, gm, wm], axis=-1)
    else:
        probs = np.asarray(nib.load(DEMO / "tissue_prob.nii.gz").dataobj, dtype=np.float32)
    return t1, probs


def build(root: Path, args: argparse.Namespace) -> int:
    """Write images/, predictions/, references/ under root; returns the bytes of logits."""
    import nibabel as nib
    from scipy import ndimage

    t1, probs = _load_probs(args)
    ref = np.argmax(probs, axis=-1).astype(np.uint8)
    logp = np.log(np.clip(probs, 1e-4, 1.0)).astype(np.float32)
    rng = np.random.default_rng(0)
    for sub in ("images", "predictions", "references"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shape = ref.shape
    block = tuple(slice(s // 3, s // 3 + s // 4) for s in shape)
    n_bytes = 0
    for i in range(args.cases):
        q = QUALITIES[i % len(QUALITIES)]
        cid = f"case{i:03d}_{q}"
        lg = logp.copy()
        if q == "shift1":
            lg = np.roll(lg, 1, axis=1)
        elif q == "shift3":
            lg = np.roll(lg, 3, axis=1)
        elif q == "eroded":
            wm = ndimage.binary_erosion(ref == 2, iterations=2)
            lg[(ref == 2) & ~wm, 2] -= 6.0
        elif q == "noisy":
            lg += rng.normal(0.0, 1.0, lg.shape).astype(np.float32)
        elif q == "unsure":
            lg = (lg + rng.normal(0.0, 0.5, lg.shape).astype(np.float32)) * 0.3
        elif q == "swapped":
            lg[block] = lg[block][..., [0, 2, 1]]
        elif q == "missed":
            lg[block + (0,)] += 8.0
        nib.save(t1, root / "images" / f"{cid}.nii.gz")
        nib.save(nib.Nifti1Image(ref, t1.affine), root / "references" / f"{cid}.nii.gz")
        np.save(root / "predictions" / f"{cid}.npy", lg)
        n_bytes += lg.nbytes
    return n_bytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--t1", default=str(DEMO / "t1.nii.gz"), help="T1 image (NIfTI)")
    ap.add_argument("--gm", help="grey matter probabilities (NIfTI, 0..1 or 0..255)")
    ap.add_argument("--wm", help="white matter probabilities (NIfTI)")
    ap.add_argument("--cases", type=int, default=8)
    ap.add_argument(
        "--workers", default="0,1,2", help="comma list of worker counts (0: in process)"
    )
    ap.add_argument("--no-slice-distances", action="store_true")
    ap.add_argument("--dir", help="build the test set here (default: a temporary folder)")
    args = ap.parse_args(argv)

    from segviewer import __version__
    from segviewer.core.progress import run_to_end
    from segviewer.io.evaluate import EvaluateOptions, run_evaluation

    tmp = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="segviewer-bench-eval-"))
    try:
        t0 = time.perf_counter()
        n_bytes = build(tmp / "set", args)
        import nibabel as nib

        shape = nib.load(
            tmp
            / "set"
            / "references"
            / sorted(p.name for p in (tmp / "set" / "references").iterdir())[0]
        ).shape
        print(
            f"segviewer {__version__}: {args.cases} cases of {shape} voxels, 3 classes, "
            f"{n_bytes / 1e6:.0f} MB of float32 logits, built in {time.perf_counter() - t0:.1f} s"
        )
        opts = EvaluateOptions(slice_distances=not args.no_slice_distances)
        rows = []
        for w in (int(x) for x in args.workers.split(",")):
            out = tmp / f"out{w}"
            shutil.rmtree(out, ignore_errors=True)
            t1 = time.perf_counter()
            res = run_to_end(run_evaluation(tmp / "set", out, opts, workers=w))
            wall = time.perf_counter() - t1
            if res.failed:
                print(f"  workers={w}: FAILED {res.failed}", file=sys.stderr)
                return 1
            timing = res.summary["timing"]
            start = timing.get("startup_seconds", 0.0)
            cpu = timing.get("cpu_seconds_per_case", float("nan"))
            rows.append((w, wall, start, res.seconds, res.cases_per_second, cpu))
        base = next((r[4] for r in rows if r[0] == 1), None)
        print(
            f"{'workers':>8} {'wall s':>8} {'start s':>8} {'cases s':>8} {'cases/s':>8} "
            f"{'vs 1':>6} {'CPU s/case':>10}"
        )
        for w, wall, start, sec, cps, cpu in rows:
            rel = f"{cps / base:.2f}x" if base else ""
            name = str(w) if w else "in-proc"
            print(f"{name:>8} {wall:8.1f} {start:8.1f} {sec:8.1f} {cps:8.3f} {rel:>6} {cpu:10.2f}")
        print(
            f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the end; on "
            "a busy machine wall-clock speed-ups are capped, CPU s/case is the load-independent "
            "cost of one case"
        )
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
