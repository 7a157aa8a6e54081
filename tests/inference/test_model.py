"""Opening models: formats, what segviewer finds out about them, and refusals."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segviewer.core.types import PredictionKind, Progress, SegviewerError
from segviewer.inference import TrustRequired, iter_open_model, open_model

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")

Models = Callable[[str, str], tuple[Path, Any]]


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_keras_unet_facts(keras_models: Models, fmt: str) -> None:
    path, _ = keras_models("unet2d_softmax", fmt)
    h = open_model(path)
    assert (h.format, h.rank, h.input_size) == (fmt, 2, (None, None))
    assert (h.input_channels, h.output_channels) == (1, 3)
    assert h.output_kind is PredictionKind.PROBABILITIES and h.outputs_are_probabilities
    assert h.downsampling == 4  # two 2x2 poolings, whatever the upsampling path does
    assert len(h.sha256) == 64 and h.describe()["sha256"] == h.sha256


@pytest.mark.parametrize(
    ("kind", "expect", "probs", "rank", "size", "factor"),
    [
        ("fixed2d_logits", PredictionKind.LOGITS, False, 2, (32, 32), 1),
        ("sigmoid2d", PredictionKind.SIGMOID, True, 2, (None, None), 1),
        ("multilabel2d", PredictionKind.MULTILABEL, True, 2, (None, None), 1),
        ("unet3d", PredictionKind.LOGITS, False, 3, (None, None, None), 2),
    ],
)
def test_output_kind_rank_size_and_factor(
    keras_models: Models,
    kind: str,
    expect: PredictionKind,
    probs: bool,
    rank: int,
    size: tuple[int | None, ...],
    factor: int,
) -> None:
    h = open_model(keras_models(kind, "keras")[0])
    assert (h.output_kind, h.outputs_are_probabilities) == (expect, probs)
    assert (h.rank, h.input_size, h.downsampling) == (rank, size, factor)


def test_savedmodel_facts_and_progress(keras_models: Models) -> None:
    path, _ = keras_models("unet2d_softmax", "savedmodel")
    gen = iter_open_model(path / "saved_model.pb")
    steps: list[Progress] = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            h = stop.value
            break
    assert [p.message for p in steps][0] == "importing TensorFlow" and steps[-1].fraction == 1.0
    assert (h.format, h.rank, h.input_channels, h.output_channels) == ("savedmodel", 2, 1, 3)
    assert h.output_kind is None and h.downsampling is None  # decided when it runs
    assert h.path == path


def _lambda_model(folder: Path, suffix: str = ".keras") -> Path:
    import keras

    # A Python lambda is stored as marshalled bytecode: loading it executes that code.
    m = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            keras.layers.Lambda(lambda t: t * 2.0),
            keras.layers.Conv2D(2, 1),
        ]
    )
    path = folder / f"with_lambda{suffix}"
    m.save(path)
    return path


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_refused_without_trust_accepted_with(tmp_path: Path, suffix: str) -> None:
    path = _lambda_model(tmp_path, suffix)
    with pytest.raises(TrustRequired) as e:  # a SegviewerError the window offers to trust
        open_model(path)
    msg = str(e.value)
    assert "Lambda" in msg and "runs Python code" in msg and "--trust-model" in msg
    assert "Trust this model file (runs code from it)" in msg  # the window's checkbox text
    h = open_model(path, trust=True)
    assert h.trusted and h.output_channels == 2
    x = np.ones((1, 4, 4, 1), np.float32)
    conv = h.model.layers[-1]
    w, b = conv.get_weights()
    np.testing.assert_allclose(np.asarray(h.model(x)), 2.0 * x @ w.reshape(1, 2) + b, rtol=1e-6)


def _rewrite_config(path: Path, out: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Copy a .keras archive with its config.json edited (as another Keras would write it)."""
    import json

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as z:
        cfg = json.loads(src.read("config.json"))
        edit(cfg)
        for name in src.namelist():
            z.writestr(name, json.dumps(cfg) if name == "config.json" else src.read(name))
    return out


def test_keras2_tf_op_layers_get_a_way_out(tmp_path: Path) -> None:
    def to_tfop(cfg: dict[str, Any]) -> None:
        cfg["config"]["layers"][1]["class_name"] = "TFOpLambda"

    path = _rewrite_config(_lambda_model(tmp_path), tmp_path / "k2.keras", to_tfop)
    with pytest.raises(SegviewerError, match=r"Keras 2 .*TFOpLambda.*SavedModel"):
        open_model(path, trust=True)


def test_custom_layer_refused_and_explained(tmp_path: Path) -> None:
    import json

    path, _ = _lambda_model(tmp_path), None
    # Rewrite the archive's config so one layer claims to come from an outside package.
    src = zipfile.ZipFile(path)
    cfg = json.loads(src.read("config.json"))
    layer = cfg["config"]["layers"][-1]
    layer["module"], layer["class_name"], layer["registered_name"] = (
        "acme_seg.layers",
        "FancyConv",
        "acme>FancyConv",
    )
    cfg["config"]["layers"] = [cfg["config"]["layers"][0], layer]
    out = tmp_path / "custom.keras"
    with zipfile.ZipFile(out, "w") as z:
        for name in src.namelist():
            z.writestr(name, json.dumps(cfg) if name == "config.json" else src.read(name))
    src.close()
    with pytest.raises(SegviewerError, match=r"custom code: FancyConv \(module acme_seg.layers\)"):
        open_model(out)
    with pytest.raises(SegviewerError, match="cannot be imported"):
        open_model(out, trust=True)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_text("not a model") and p, ["not a model file"]),
        (lambda p: p.mkdir() or p, ["not a TensorFlow SavedModel", "saved_model.pb"]),
        (lambda p: p, ["does not exist"]),
    ],
)
def test_not_a_model(tmp_path: Path, make: Callable[[Path], Path], words: list[str]) -> None:
    p = tmp_path / "model.keras"
    make(p)
    with pytest.raises(SegviewerError) as e:
        open_model(p)
    for w in words:
        assert w in str(e.value)


def test_zip_without_config_and_weights_only_h5(tmp_path: Path, keras_models: Models) -> None:
    z = tmp_path / "notes.keras"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("readme.txt", "hello")
    with pytest.raises(SegviewerError, match="without config.json"):
        open_model(z)
    _, model = keras_models("sigmoid2d", "keras")
    w = tmp_path / "only.weights.h5"
    model.save_weights(w)
    with pytest.raises(SegviewerError, match="weights only"):
        open_model(w)
