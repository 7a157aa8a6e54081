"""Atlas-on-template check: class volumes before and after resampling onto a template grid.

Builds an "atlas" label map (0 background, 1 grey matter, 2 white matter; a voxel is a tissue
where its probability is at least 0.5) from a template's tissue probability maps, saves it
on grids of its own, the way atlases are distributed:

* ``crop``: a 151 x 194 x 159 box of the template's 1 mm grid with its own origin (as the
  Harvard-Oxford atlas on the MNI152 template);
* ``2mm``: 2 mm voxels, another origin;
* ``oblique``: 1.5 mm voxels, first axis flipped, rotated 10 degrees about z;

then reads each back with ``load_prediction(..., resample=True)`` onto the template grid, in
world space, and (for comparison) by shape with the geometry withheld, which is what
``--resample`` did before. Prints each class's volume in mm^3 before (on the atlas's grid)
and after (on the template's grid), the relative difference, the coverage, the time and the
peak traced memory.

Usage::

    python scripts/atlas_on_template.py T1.nii.gz GM_PROB.nii.gz WM_PROB.nii.gz
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to

from segviewer.io.images import load_image
from segviewer.io.predictions import load_prediction


def _grids(affine: np.ndarray) -> dict[str, tuple[tuple[int, int, int], np.ndarray]]:
    crop = affine.copy()
    crop[:3, 3] = (affine @ [23, 19, 14, 1])[:3]
    two = affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    two[:3, 3] += [-3.0, 4.0, 1.0]
    t = np.deg2rad(10.0)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])
    obl = np.eye(4)
    obl[:3, :3] = rot @ np.diag([-1.5, 1.5, 1.5])
    obl[:3, 3] = (affine @ [200, -10, -5, 1])[:3]
    return {
        "crop": ((151, 194, 159), crop),
        "2mm": ((99, 117, 95), two),
        "oblique": ((140, 170, 130), obl),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("t1")
    ap.add_argument("gm")
    ap.add_argument("wm")
    args = ap.parse_args()
    t1 = nib.load(args.t1)
    gm = np.asarray(nib.load(args.gm).dataobj, dtype=np.float32)
    wm = np.asarray(nib.load(args.wm).dataobj, dtype=np.float32)
    scale = 255.0 if gm.max() > 1.5 else 1.0
    labels = np.zeros(t1.shape, np.uint8)
    labels[gm / scale >= 0.5] = 1
    labels[wm / scale >= 0.5] = 2
    image = load_image(args.t1)
    tvox = abs(np.linalg.det(t1.affine[:3, :3]))
    print(f"template {image.shape}, {tvox:.3g} mm^3 voxels")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (shape, aff) in _grids(t1.affine).items():
            atlas = resample_from_to(nib.Nifti1Image(labels, t1.affine), (shape, aff), order=0)
            path = Path(tmp) / f"atlas_{name}.nii.gz"
            nib.save(atlas, path)
            adata = np.asarray(atlas.dataobj)
            avox = abs(np.linalg.det(aff[:3, :3]))
            for how in ("world", "shape"):
                tracemalloc.start()
                t0 = time.perf_counter()
                pred = load_prediction(
                    path,
                    image.shape,
                    image_affine=image.affine if how == "world" else None,
                    resample=True,
                )
                dt = time.perf_counter() - t0
                _now, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                got = np.asarray(pred.channels_first())
                rec = pred.resampling
                assert rec is not None
                parts = []
                for c, cname in ((1, "GM"), (2, "WM")):
                    before = np.count_nonzero(adata == c) * avox / 1000.0
                    after = np.count_nonzero(got == c) * tvox / 1000.0
                    parts.append(
                        f"{cname} {before:8.1f} -> {after:8.1f} cm^3 ({100 * (after / before - 1):+5.1f} %)"
                    )
                agree = float(np.mean(got == labels))
                print(
                    f"{name:8s} {tuple(shape)} {how:5s}: {'; '.join(parts)}; "
                    f"{100 * agree:5.1f} % of voxels equal the template's labels; covers "
                    f"{100 * rec.coverage:5.1f} % of the image; {dt:5.2f} s; peak "
                    f"{peak / 1024**2:6.1f} MB"
                )

        # probabilities at 2 mm: linear per class on the template grid, then the argmax
        shape, aff = _grids(t1.affine)["2mm"]
        bg = np.clip(1.0 - gm / scale - wm / scale, 0.0, 1.0)
        chans = [
            np.asarray(
                resample_from_to(
                    nib.Nifti1Image(ch.astype(np.float32), t1.affine),
                    (shape, aff),
                    order=1,
                    cval=1.0 if k == 0 else 0.0,
                ).dataobj
            )
            for k, ch in enumerate((bg, gm / scale, wm / scale))
        ]
        probs = np.stack(chans, axis=-1).astype(np.float32)
        probs /= np.maximum(probs.sum(axis=-1, keepdims=True), 1e-6)
        path = Path(tmp) / "probs_2mm.nii.gz"
        nib.save(nib.Nifti1Image(probs, aff), path)
        tracemalloc.start()
        t0 = time.perf_counter()
        pred = load_prediction(path, image.shape, image_affine=image.affine, resample=True)
        dt = time.perf_counter() - t0
        _now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        lab = np.asarray(pred.channels_first()).argmax(axis=0)
        ref = np.stack([bg, gm / scale, wm / scale]).argmax(axis=0)
        avox = abs(np.linalg.det(aff[:3, :3]))
        parts = []
        for c, cname in ((1, "GM"), (2, "WM")):
            before = np.count_nonzero(probs.argmax(axis=-1) == c) * avox / 1000.0
            after = np.count_nonzero(lab == c) * tvox / 1000.0
            parts.append(
                f"{cname} {before:8.1f} -> {after:8.1f} cm^3 ({100 * (after / before - 1):+5.1f} %)"
            )
        print(
            f"probs 2mm {tuple(shape)} world, linear per class then argmax: {'; '.join(parts)}; "
            f"{100 * float(np.mean(lab == ref)):5.1f} % of voxels equal the 1 mm argmax; "
            f"{dt:5.2f} s; peak {peak / 1024**2:6.1f} MB"
        )


if __name__ == "__main__":
    main()
