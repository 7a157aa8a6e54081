"""Tiny Keras models saved in every format segviewer opens, and a real MRI volume to run them on.

Each model is built once per test session (seeded, a few hundred weights) so the whole
inference suite stays well under a minute or two on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.types import Volume


@pytest.fixture(scope="session")
def anat_volume(nibabel_anatomical: Path) -> Volume:
    """nibabel's anatomical.nii, a real T1 (33, 41, 25): odd sizes, so padding is exercised."""
    img = nib.load(nibabel_anatomical)
    return Volume(
        np.asarray(img.dataobj), img.affine, source=str(nibabel_anatomical), format="nifti"
    )


def _build(kind: str) -> Any:
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    if kind == "unet2d_softmax":  # free size, two poolings: downsampling factor 4
        inp = keras.Input((None, None, 1))
        a = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
        b = layers.Conv2D(6, 3, padding="same", activation="relu")(layers.MaxPooling2D(2)(a))
        c = layers.Conv2D(6, 3, padding="same", activation="relu")(layers.MaxPooling2D(2)(b))
        u = layers.Concatenate()([layers.UpSampling2D(2)(c), b])
        u = layers.Conv2D(4, 3, padding="same", activation="relu")(u)
        u = layers.Concatenate()([layers.UpSampling2D(2)(u), a])
        out = layers.Conv2D(3, 1, activation="softmax")(u)
        return keras.Model(inp, out)
    if kind == "fixed2d_logits":  # fixed 32 x 32 input, no final activation
        inp = keras.Input((32, 32, 1))
        a = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
        return keras.Model(inp, layers.Conv2D(2, 3, padding="same")(a))
    if kind == "sigmoid2d":
        return keras.Sequential(
            [
                keras.Input((None, None, 1)),
                layers.Conv2D(3, 3, padding="same", activation="tanh"),
                layers.Conv2D(1, 1, activation="sigmoid"),
            ]
        )
    if kind == "multilabel2d":
        return keras.Sequential(
            [
                keras.Input((None, None, 1)),
                layers.Conv2D(3, 3, padding="same", activation="tanh"),
                layers.Conv2D(3, 1, activation="sigmoid"),
            ]
        )
    if kind == "rgb2d":  # expects three input channels
        return keras.Sequential([keras.Input((None, None, 3)), layers.Conv2D(2, 3, padding="same")])
    if kind == "unet3d":  # free size 3-D, factor 2
        inp = keras.Input((None, None, None, 1))
        a = layers.Conv3D(3, 3, padding="same", activation="relu")(inp)
        b = layers.Conv3D(3, 3, padding="same", activation="relu")(layers.MaxPooling3D(2)(a))
        u = layers.Concatenate()([layers.UpSampling3D(2)(b), a])
        return keras.Model(inp, layers.Conv3D(2, 1)(u))
    if kind in (
        "pointwise2d_fixed16",
        "pointwise2d_free",
        "pointwise3d_fixed8",
        "pointwise3d_free",
    ):
        # Per-voxel models (1x1 convolutions): tiled and whole-image runs must agree exactly.
        # The fixed-size and free-size 2-D variants share their weights (same seed, same shapes).
        conv = layers.Conv3D if kind.startswith("pointwise3d") else layers.Conv2D
        shape = {
            "pointwise2d_fixed16": (16, 16, 1),
            "pointwise2d_free": (None, None, 1),
            "pointwise3d_free": (None, None, None, 1),
        }.get(kind, (8, 8, 8, 1))
        keras.utils.set_random_seed(11)
        return keras.Sequential(
            [keras.Input(shape), conv(4, 1, activation="tanh"), conv(2, 1, activation="softmax")]
        )
    if kind == "nan2d":  # exp overflows to inf on bright voxels, then 0 * inf = NaN
        m = keras.Sequential(
            [
                keras.Input((None, None, 1)),
                layers.Conv2D(1, 1, activation="exponential"),
                layers.Conv2D(2, 1),
            ]
        )
        m.layers[0].set_weights([np.full((1, 1, 1, 1), 200.0, np.float32), np.zeros(1, np.float32)])
        m.layers[1].set_weights([np.array([[[[0.0, 1.0]]]], np.float32), np.zeros(2, np.float32)])
        return m
    raise AssertionError(kind)


@pytest.fixture(scope="session")
def keras_models(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str, str], tuple[Path, Any]]:
    """``get(kind, fmt) -> (saved path, in-memory keras model)``; fmt ``keras``, ``h5``, ``savedmodel``."""
    pytest.importorskip("tensorflow")
    folder = tmp_path_factory.mktemp("models")
    built: dict[str, Any] = {}
    saved: dict[tuple[str, str], Path] = {}

    def get(kind: str, fmt: str = "keras") -> tuple[Path, Any]:
        if kind not in built:
            built[kind] = _build(kind)
        model = built[kind]
        if (kind, fmt) not in saved:
            if fmt == "keras":
                path = folder / f"{kind}.keras"
                model.save(path)
            elif fmt == "h5":
                path = folder / f"{kind}.h5"
                model.save(path)
            else:
                path = folder / f"{kind}_savedmodel"
                model.export(path, verbose=False)
            saved[(kind, fmt)] = path
        return saved[(kind, fmt)], model

    return get
