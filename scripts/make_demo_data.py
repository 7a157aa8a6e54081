"""Build the bundled demo (resources/demo) from the ICBM 2009a template (a folder holding
``t1_brain.nii.gz`` and the tissue maps, given as the argument).

Run from the repository root: ``python scripts/make_demo_data.py ICBM152_DIR``.
The template is downsampled 2x (2 mm voxels) by block averaging to keep the package small.
Outputs:
  t1.nii.gz          T1 brain, uint8, 2 mm, the template's RAS affine scaled by 2
  tissue_prob.nii.gz reference soft segmentation, 4-D (x, y, z, class) probabilities stored as
                     uint8 with scl_slope 1/255: class 0 background/CSF, 1 grey matter, 2 white
  classes.json       names and colours of the three classes
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nibabel as nib
import numpy as np


def block_mean(a: np.ndarray, f: int = 2) -> np.ndarray:
    s = [(n // f) * f for n in a.shape]
    a = a[: s[0], : s[1], : s[2]].astype(np.float32)
    return a.reshape(s[0] // f, f, s[1] // f, f, s[2] // f, f).mean(axis=(1, 3, 5))


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/make_demo_data.py ICBM152_DIR")
    src = Path(sys.argv[1])
    out = Path("resources/demo")
    out.mkdir(parents=True, exist_ok=True)
    t1 = nib.load(src / "t1_brain.nii.gz")
    aff = t1.affine.copy()
    aff[:3, :3] *= 2.0
    t1d = np.clip(np.rint(block_mean(np.asarray(t1.dataobj))), 0, 255).astype(np.uint8)
    img = nib.Nifti1Image(t1d, aff)
    img.header.set_xyzt_units("mm")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    nib.save(img, out / "t1.nii.gz")

    gm = block_mean(np.asarray(nib.load(src / "gm_prob.nii.gz").dataobj)) / 255.0
    wm = block_mean(np.asarray(nib.load(src / "wm_prob.nii.gz").dataobj)) / 255.0
    bg = np.clip(1.0 - gm - wm, 0.0, 1.0)
    prob = np.stack([bg, gm, wm], axis=-1)
    prob /= prob.sum(axis=-1, keepdims=True)
    q = np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)
    pimg = nib.Nifti1Image(q, aff)
    pimg.header.set_slope_inter(1.0 / 255.0, 0.0)
    pimg.header.set_xyzt_units("mm")
    pimg.set_qform(aff, code=1)
    pimg.set_sform(aff, code=1)
    nib.save(pimg, out / "tissue_prob.nii.gz")

    classes = {
        "classes": [
            {"index": 0, "name": "background", "color": "#000000"},
            {"index": 1, "name": "grey matter", "color": "#e6a23c"},
            {"index": 2, "name": "white matter", "color": "#4aa3df"},
        ]
    }
    (out / "classes.json").write_text(json.dumps(classes, indent=2) + "\n", encoding="utf-8")
    shutil.copy(src / "LICENSE.txt", out / "LICENSE-ICBM152.txt")
    print("wrote", sorted(p.name for p in out.iterdir()), t1d.shape)


if __name__ == "__main__":
    main()
