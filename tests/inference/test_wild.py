"""Models from the wild: trained at a fixed size, fed raw intensities, channels-first.

The volume is nibabel's real T1 ``anatomical.nii`` (33 x 41 x 25). The models are tiny Keras
models built here (seeded), shaped like the ones that stumbled: a free-size 3-D U-Net trained
on volumes resized to a cube with input / max and one sigmoid logit out; a converted
channels-first 2-D model with a fixed ``(1, 32, 32)`` input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segviewer.core.progress import run_to_end
from segviewer.core.types import Prediction, SegviewerError, Volume
from segviewer.inference import ModelCard, open_model, predict
from segviewer.inference.preprocess import resize_spatial
from segviewer.inference.runner import device_description

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")


def run(volume: Volume, model: Any, **kw: Any) -> tuple[Prediction, dict[str, Any]]:
    return run_to_end(predict(volume, model, **kw))


@pytest.fixture(scope="module")
def brain3d(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Free-size 3-D U-Net (factor 2), one sigmoid logit; 'trained' on input / max."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    inp = keras.Input((None, None, None, 1))
    a = layers.Conv3D(3, 3, padding="same", activation="relu")(inp)
    b = layers.Conv3D(3, 3, padding="same", activation="relu")(layers.MaxPooling3D(2)(a))
    u = layers.Concatenate()([layers.UpSampling3D(2)(b), a, inp])
    head = layers.Conv3D(1, 1, activation="sigmoid")
    model = keras.Model(inp, head(u))
    # a bright-tissue detector on input / max: logit = 12 * x - 4 (+ small learned terms)
    w, bias = head.get_weights()
    w[:] = 0.0
    w[..., -1, 0] = 12.0
    w[..., :-1, 0] = 0.05
    head.set_weights([w, np.array([-4.0], np.float32)])
    path = tmp_path_factory.mktemp("wild") / "brain3d.keras"
    model.save(path)
    return path, model


def _own_pipeline(model: Any, vol: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """What the model's authors do: resize to the training size, divide by the maximum,
    predict, resize the probability back, threshold at 0.5."""
    x = vol.astype(np.float32) / float(vol.max())
    small = resize_spatial(x[None], size)[0]
    y = np.asarray(model(small[None, ..., None], training=False))[0, ..., 0]
    back = resize_spatial(y[None, ..., None], vol.shape)[0, ..., 0]
    return back >= 0.5


def test_resize_to_runs_a_free_size_model_at_its_training_size(
    brain3d: tuple[Path, Any], anat_volume: Volume
) -> None:
    path, model = brain3d
    card = ModelCard(normalization="max", resize_to=(16, 16, 16), output_kind="sigmoid")
    pred, prov = run(anat_volume, path, card=card)
    pre = prov["preprocessing"]
    assert pre["resized_to"] == [16, 16, 16] and pre["model_input_shape"] == [16, 16, 16]
    ours = np.asarray(pred.channels_first()[0]) >= 0.5
    theirs = _own_pipeline(model, np.asarray(anat_volume.data), (16, 16, 16))
    dice = 2 * np.sum(ours & theirs) / (ours.sum() + theirs.sum())
    assert 0.05 < theirs.mean() < 0.95  # a real segmentation, not empty or full
    assert dice == pytest.approx(1.0, abs=1e-3)
    assert prov["diagnosis"] == []


def test_inapplicable_card_settings_are_refused(
    brain3d: tuple[Path, Any], anat_volume: Volume
) -> None:
    path, _ = brain3d
    with pytest.raises(SegviewerError, match=r"size_policy 'resize'.*set resize_to"):
        run(anat_volume, path, card=ModelCard(size_policy="resize"))
    with pytest.raises(SegviewerError, match=r"resize_to \[64, 64\] has 2 sizes.*3-D model"):
        run(anat_volume, path, card=ModelCard(resize_to=(64, 64)))
    with pytest.raises(SegviewerError, match="transpose orders the rows.*3-D model"):
        run(anat_volume, path, card=ModelCard(transpose=True))
    with pytest.raises(SegviewerError, match="pad_value is used with pad_mode 'constant'"):
        run(anat_volume, path, card=ModelCard(pad_value=-1.0))
    with pytest.raises(SegviewerError, match="unknown field.*resize_too"):
        ModelCard.from_dict({"resize_too": [128, 128, 128]})
    with pytest.raises(SegviewerError, match="resize_to must be"):
        ModelCard.from_dict({"resize_to": [128, -1, 128]})


def test_raw_intensities_are_diagnosed(brain3d: tuple[Path, Any], anat_volume: Volume) -> None:
    path, _ = brain3d
    pred, prov = run(anat_volume, path, card=ModelCard(resize_to=(16, 16, 16)))
    (warning,) = prov["diagnosis"]
    assert "predicts foreground everywhere" in warning
    assert "normalization 'none'" in warning and "normalization:" in warning
    assert "resize_to" in warning and "channels-last (N, D, H, W, C)" in warning
    assert warning in pred.notes
    hi = float(np.asarray(anat_volume.data).max())
    assert f"{hi:.3g}" in warning  # the range that was fed


def test_empty_output_is_diagnosed(anat_volume: Volume, tmp_path: Path) -> None:
    import keras

    conv = keras.layers.Conv3D(1, 1, activation="sigmoid")
    model = keras.Sequential([keras.Input((None, None, None, 1)), conv])
    conv.set_weights([np.full((1, 1, 1, 1, 1), -12.0, np.float32), np.array([4.0], np.float32)])
    path = tmp_path / "dark.keras"
    model.save(path)
    # the T1 shifted to positive values (as many scanners store it): raw input -> empty
    data = np.asarray(anat_volume.data, np.float32)
    positive = Volume(data - data.min() + 1.0, anat_volume.affine)
    pred, prov = run(positive, path)
    assert "predicts no foreground voxel anywhere" in prov["diagnosis"][0]
    assert int((np.asarray(pred.channels_first()) >= 0.5).sum()) == 0
    # as stored (a few negative voxels): 0.1 % foreground, the rest saturated at 0
    _, prov = run(anat_volume, path)
    assert "saturated (0 or 1) almost everywhere" in prov["diagnosis"][0]
    _, prov = run(positive, path, card=ModelCard(normalization="max"))
    assert prov["diagnosis"] == []


def _cf_models(tmp_path: Path) -> tuple[Path, Any]:
    """A channels-first (1, 32, 32) -> (2, 32, 32) model (a converted PyTorch model: Permute
    layers around channels-last convolutions) and the same weights channels-last."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(5)
    conv = layers.Conv2D(2, 3, padding="same")
    inp = keras.Input((1, 32, 32))
    out = layers.Permute((3, 1, 2))(conv(layers.Permute((2, 3, 1))(inp)))
    cf = keras.Model(inp, out)
    inp2 = keras.Input((32, 32, 1))
    conv2 = layers.Conv2D(2, 3, padding="same")
    cl = keras.Model(inp2, conv2(inp2))
    conv2.set_weights(conv.get_weights())
    p_cf, p_cl = tmp_path / "cf.keras", tmp_path / "cl.keras"
    cf.save(p_cf)
    cl.save(p_cl)
    return p_cf, p_cl


def test_channels_first_input_is_recognised_and_run(anat_volume: Volume, tmp_path: Path) -> None:
    p_cf, p_cl = _cf_models(tmp_path)
    handle = open_model(p_cf)
    assert handle.channels_first and handle.layout_name == "channels-first (N, C, H, W)"
    assert (handle.input_size, handle.input_channels, handle.output_channels) == ((32, 32), 1, 2)
    assert any("read as channels-first" in n for n in handle.notes)
    small = Volume(np.asarray(anat_volume.data)[:20, :24, :6], anat_volume.affine)
    card = ModelCard(normalization="zscore")
    pred_cf, prov = run(small, handle, card=card)
    pred_cl, _ = run(small, p_cl, card=card)
    np.testing.assert_allclose(
        np.asarray(pred_cf.channels_first()), np.asarray(pred_cl.channels_first()), atol=1e-5
    )
    assert prov["model"]["input_layout"] == "channels-first (N, C, H, W)"
    assert "channels-first" in pred_cf.notes[0]


def test_channels_first_messages_name_the_layout(anat_volume: Volume, tmp_path: Path) -> None:
    p_cf, _ = _cf_models(tmp_path)
    # slices of 33 x 41 do not fit a fixed 32 x 32 input
    with pytest.raises(SegviewerError, match=r"cf.keras \(channels-first \(N, C, H, W\)\)"):
        run(anat_volume, p_cf, card=ModelCard(normalization="zscore"))
    # forcing the other reading: a 32-channel model, and the message says which layout it used
    with pytest.raises(
        SegviewerError, match=r"channels-last \(N, H, W, C\)\) expects 32 input channels"
    ):
        run(anat_volume, p_cf, card=ModelCard(input_layout="channels_last"))


def test_device_is_recorded(brain3d: tuple[Path, Any], anat_volume: Volume) -> None:
    path, _ = brain3d
    _, prov = run(anat_volume, path, card=ModelCard(normalization="max", resize_to=(8, 8, 8)))
    gpus = tf.config.list_physical_devices("GPU")
    assert prov["device"] == device_description()
    if gpus:
        assert prov["device"].startswith("GPU:0")
    else:
        assert prov["device"] == "CPU"
    assert prov["notes"][0].endswith(f"on {prov['device']}")
    assert open_model(path).device == prov["device"] == prov["model"]["device"]
