"""Train the bundled demo model (resources/demo/model.keras) and measure it.

Run from the repository root::

    python scripts/train_demo_model.py [--data DIR] [--epochs N] [--seed S]
    python scripts/train_demo_model.py --evaluate

The model is a small 2-D U-Net (3 pooling levels, 8-16-32 filters, about 40 k weights, a final
softmax over three classes: background/CSF, grey matter, white matter). It learns the ICBM 2009a
tissue probabilities from the T1 template in the shared data folder (``t1_brain``, ``gm_prob``,
``wm_prob``; 1 mm). The images are downsampled 2x by block averaging exactly like
``scripts/make_demo_data.py`` does for ``resources/demo/t1.nii.gz``; the seven block-grid offsets
other than (0, 0, 0) give seven different 2 mm volumes for training, and offset (0, 0, 0) (the
bundled demo itself) is held out. Axial slices (image axis 2 of the RAS volume), z-score
normalised per volume and padded (centred, edge replication) to a multiple of 8 with
segviewer's own functions, exactly what the model card tells segviewer to do at inference time.

``--evaluate`` runs the saved model through ``segviewer.inference.predict`` on
``resources/demo/t1.nii.gz`` and reports voxel accuracy and Dice per class of the argmax against
the argmax of ``resources/demo/tissue_prob.nii.gz``, over every voxel (nothing excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"
MODEL = DEMO / "model.keras"
CARD = DEMO / "model.segviewer.json"
FACTOR = 8  # three 2x2 poolings


def block_mean(a: np.ndarray, offset: tuple[int, int, int], f: int = 2) -> np.ndarray:
    """Downsample ``a`` by ``f`` with block means, the block grid starting at ``offset``."""
    a = a[offset[0] :, offset[1] :, offset[2] :]
    s = [(n // f) * f for n in a.shape]
    a = a[: s[0], : s[1], : s[2]].astype(np.float32)
    return a.reshape(s[0] // f, f, s[1] // f, f, s[2] // f, f).mean(axis=(1, 3, 5))


def load_training_volumes(data: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(z-scored T1 (x, y, z) float32, target (x, y, z, 3) float32) for the 7 held-in offsets."""
    import nibabel as nib

    from segviewer.inference.preprocess import normalize

    def read(name: str) -> np.ndarray:
        img: Any = nib.load(data / name)  # nibabel's stubs type it as FileBasedImage
        return np.asarray(img.dataobj)

    t1, gm, wm = read("t1_brain.nii.gz"), read("gm_prob.nii.gz"), read("wm_prob.nii.gz")
    out = []
    for off in [(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)][1:]:
        # The demo T1 is stored as rounded uint8: train on the same quantisation.
        x = np.clip(np.rint(block_mean(t1, off)), 0, 255).astype(np.uint8)
        # segviewer's own normalisation, so training and inference cannot drift apart.
        x = normalize(x, "zscore")
        g = block_mean(gm, off) / 255.0
        w = block_mean(wm, off) / 255.0
        bg = np.clip(1.0 - g - w, 0.0, 1.0)
        y = np.stack([bg, g, w], axis=-1)
        y /= y.sum(axis=-1, keepdims=True)
        out.append((x.astype(np.float32), y.astype(np.float32)))
    return out


def to_slices(vols: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Axial slices (N, H, W, 1) / (N, H, W, 3), edge-padded to a multiple of FACTOR."""
    from segviewer.inference.preprocess import pad_amounts, pad_spatial

    xs, ys = [], []
    for x, y in vols:
        h, w = x.shape[:2]
        # Centred edge padding, exactly as segviewer pads free-size models at inference.
        pads = pad_amounts((h, w), (-(-h // FACTOR) * FACTOR, -(-w // FACTOR) * FACTOR))
        xs.append(pad_spatial(np.moveaxis(x, 2, 0), pads, "edge")[..., None])
        ys.append(pad_spatial(np.moveaxis(y, 2, 0), [*pads, (0, 0)], "edge"))
    return np.concatenate(xs), np.concatenate(ys)


def build_model() -> Any:
    """Small 2-D U-Net: 8-16-32 filters, 3 poolings, 32-filter bottleneck, softmax output."""
    import keras
    from keras import layers

    def block(t: Any, n: int, name: str) -> Any:
        t = layers.Conv2D(n, 3, padding="same", activation="relu", name=f"{name}_conv1")(t)
        return layers.Conv2D(n, 3, padding="same", activation="relu", name=f"{name}_conv2")(t)

    inp = keras.Input((None, None, 1), name="t1")
    e1 = block(inp, 8, "enc1")
    e2 = block(layers.MaxPooling2D(2, name="pool1")(e1), 16, "enc2")
    e3 = block(layers.MaxPooling2D(2, name="pool2")(e2), 32, "enc3")
    b = block(layers.MaxPooling2D(2, name="pool3")(e3), 32, "bottleneck")
    d3 = block(
        layers.Concatenate(name="skip3")([layers.UpSampling2D(2, name="up3")(b), e3]), 32, "dec3"
    )
    d2 = block(
        layers.Concatenate(name="skip2")([layers.UpSampling2D(2, name="up2")(d3), e2]), 16, "dec2"
    )
    d1 = block(
        layers.Concatenate(name="skip1")([layers.UpSampling2D(2, name="up1")(d2), e1]), 8, "dec1"
    )
    out = layers.Conv2D(3, 1, activation="softmax", name="tissue")(d1)
    return keras.Model(inp, out, name="demo_tissue_unet")


def write_card() -> None:
    """resources/demo/model.segviewer.json, class names and colours from classes.json."""
    from segviewer.inference.card import ModelCard, save_card

    classes = json.loads((DEMO / "classes.json").read_text(encoding="utf-8"))["classes"]
    card = ModelCard(
        class_names=tuple(c["name"] for c in classes),
        class_colors=tuple(c["color"] for c in classes),
        output_kind="probabilities",
        normalization="zscore",
        normalization_scope="volume",
        slice_axis=2,
        size_policy="pad",
        pad_mode="edge",
        batch_size=16,
        description=(
            "Demo 2-D U-Net (8-16-32 filters) trained on axial 2 mm slices of the ICBM 2009a "
            "T1 template to predict background/CSF, grey matter and white matter. For "
            "demonstrating segviewer only; not for clinical or research use."
        ),
    )
    save_card(card, CARD)


def save_without_optimizer(model: Any) -> None:
    """Save only architecture and weights: the optimizer state would triple the file size."""
    clean = build_model()
    clean.set_weights(model.get_weights())
    clean.save(MODEL)


def train(data: Path, epochs: int, seed: int) -> None:
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.threading.set_intra_op_parallelism_threads(2)
    t0 = time.perf_counter()
    x, y = to_slices(load_training_volumes(data))
    # Slices that are all background teach little: keep 1 in 4 of them.
    fg = (y[..., 1:].sum(axis=-1) > 0.05).any(axis=(1, 2))
    rng = np.random.default_rng(seed)
    keep = fg | (rng.random(len(fg)) < 0.25)
    x, y = x[keep], y[keep]
    # Left-right flip of half the slices: the brain is roughly symmetric, so this adds
    # variety at no cost in training time.
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip, ::-1]
    y[flip] = y[flip, ::-1]
    print(f"training on {len(x)} slices {x.shape[1:3]} ({time.perf_counter() - t0:.1f} s to load)")
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.CategoricalCrossentropy(),
        metrics=["categorical_accuracy"],
    )
    print(f"{model.count_params()} weights")
    sched = keras.callbacks.ReduceLROnPlateau("loss", factor=0.5, patience=3, min_lr=1e-4)
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=True, verbose=2, callbacks=[sched])
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    save_without_optimizer(model)
    write_card()
    print(
        f"saved {MODEL} ({MODEL.stat().st_size / 1024:.0f} KiB) and {CARD.name} "
        f"in {time.perf_counter() - t0:.0f} s"
    )


def evaluate() -> dict[str, float]:
    """Voxel accuracy and Dice per class on the demo volume, through segviewer's predict."""
    import nibabel as nib

    from segviewer.core.progress import run_to_end
    from segviewer.core.types import Volume
    from segviewer.inference import predict

    img: Any = nib.load(DEMO / "t1.nii.gz")
    vol = Volume(
        np.asarray(img.dataobj), img.affine, source=str(DEMO / "t1.nii.gz"), format="nifti"
    )
    pred, prov = run_to_end(predict(vol, MODEL))
    pr = np.argmax(np.asarray(pred.channels_first()), axis=0)
    prob: Any = nib.load(DEMO / "tissue_prob.nii.gz")
    ref = np.argmax(np.asarray(prob.dataobj), axis=-1)
    names = json.loads((DEMO / "classes.json").read_text(encoding="utf-8"))["classes"]
    res = {"voxel_accuracy": float((pr == ref).mean())}
    for c in names:
        a, b = pr == c["index"], ref == c["index"]
        res[f"dice {c['name']}"] = float(2 * (a & b).sum() / max(1, a.sum() + b.sum()))
    print(
        f"demo volume {vol.shape}, {pr.size} voxels, model {MODEL.name}, "
        f"normalisation {prov['preprocessing']['normalization']}"
    )
    for k, v in res.items():
        print(f"  {k:>20}: {v:.4f}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "icbm152")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--evaluate", action="store_true", help="measure the saved model, no training")
    ap.add_argument("--card-only", action="store_true", help="rewrite the model card only")
    a = ap.parse_args(argv)
    if a.evaluate:
        evaluate()
    elif a.card_only:
        write_card()
    else:
        if not (a.data / "t1_brain.nii.gz").exists():
            print(f"ICBM152 data not found in {a.data} (use --data)", file=sys.stderr)
            return 2
        train(a.data, a.epochs, a.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
