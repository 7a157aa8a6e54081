"""predict(): segviewer's result equals calling the model directly with the same preprocessing.

The volume is nibabel's real T1 ``anatomical.nii`` (33 x 41 x 25), whose odd sizes exercise
padding to the downsampling factor, resizing to a fixed input and cropping back.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

import segviewer.inference.runner as predict_mod
from segviewer.core.masks import labels_from_block
from segviewer.core.progress import run_to_end
from segviewer.core.types import (
    MaskSettings,
    Prediction,
    PredictionKind,
    Progress,
    SegviewerError,
    Volume,
    reserved_labels,
)
from segviewer.inference import ModelCard, open_model, predict, save_logits

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")

Models = Callable[[str, str], tuple[Path, Any]]
ZSCORE = ModelCard(normalization="zscore")


def zscore(v: np.ndarray) -> np.ndarray:
    x = v.astype(np.float64)
    return ((x - x.mean()) / x.std()).astype(np.float32)


def run_direct(model: Any, items: np.ndarray) -> np.ndarray:
    """The model called directly on a ready ``(N, *spatial)`` batch -> ``(N, *spatial, C)``."""
    return np.asarray(model(items[..., None].astype(np.float32), training=False))


def slices_to_volume(y: np.ndarray, axis: int) -> np.ndarray:
    """``(S, A, B, C)`` outputs of slices along ``axis`` -> ``(C, a0, a1, a2)``."""
    return np.moveaxis(np.moveaxis(y, -1, 0), 1, axis + 1)


def run(volume: Volume, model: Any, **kw: Any) -> tuple[Prediction, dict[str, Any]]:
    return run_to_end(predict(volume, model, **kw))


def close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(np.asarray(a), b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["keras", "h5", "savedmodel"])
def test_free_size_unet_padded_to_factor_4_and_cropped(
    keras_models: Models, anat_volume: Volume, fmt: str
) -> None:
    path, model = keras_models("unet2d_softmax", fmt)
    pred, prov = run(anat_volume, path, card=ZSCORE, batch_size=8)
    items = np.moveaxis(zscore(anat_volume.data), 2, 0)  # (25, 33, 41) axial slices
    padded = np.pad(items, [(0, 0), (1, 2), (1, 2)], mode="edge")  # centred, to 36 x 44
    expect = slices_to_volume(run_direct(model, padded)[:, 1:-2, 1:-2], 2)
    # Stored slice-major (one contiguous write per batch), read through the layout.
    assert pred.data.shape == (3, 25, 33, 41) and pred.data.dtype == np.float32
    assert pred.layout.name == "CZXY" and prov["output"]["raw_layout"] == "CZXY"
    close(pred.channels_first(), expect)
    assert pred.kind is PredictionKind.PROBABILITIES and pred.n_classes == 3
    assert pred.values_are_probabilities
    pre = prov["preprocessing"]
    assert (pre["model_input_shape"], pre["padding"], pre["downsampling"]) == (
        [36, 44],
        [[1, 2], [1, 2]],
        4,
    )
    assert prov["model"]["format"] == fmt and prov["batch_size"] == 8
    assert prov["tensorflow"] == tf.__version__ and pre["normalization"] == "zscore"


def test_slice_axis_transpose_and_flips(keras_models: Models, anat_volume: Volume) -> None:
    path, model = keras_models("sigmoid2d", "keras")
    card = ModelCard(normalization="minmax", slice_axis=0, transpose=True, flip_rows=True)
    pred, prov = run(anat_volume, path, card=card)
    x = anat_volume.data.astype(np.float64)
    x = ((x - x.min()) / (x.max() - x.min())).astype(np.float32)
    items = x.swapaxes(1, 2)[:, ::-1]  # (33, 25, 41): rows = axis 2 reversed, cols = axis 1
    y = run_direct(model, np.ascontiguousarray(items))[:, ::-1].swapaxes(1, 2)
    close(pred.channels_first(), slices_to_volume(y, 0))
    assert pred.kind is PredictionKind.SIGMOID and pred.n_classes == 2
    assert pred.values_are_probabilities
    assert prov["preprocessing"]["slice_axis"] == 0 and prov["preprocessing"]["transpose"]


def test_fixed_size_model_resized_in_and_out(keras_models: Models, anat_volume: Volume) -> None:
    path, model = keras_models("fixed2d_logits", "keras")
    pred, prov = run(anat_volume, path, card=ZSCORE, overrides={"size_policy": "resize"})
    items = np.moveaxis(zscore(anat_volume.data), 2, 0)
    small = ndimage.zoom(items, (1, 32 / 33, 32 / 41), order=1, mode="nearest")
    y = run_direct(model, small)
    back = ndimage.zoom(y, (1, 33 / 32, 41 / 32, 1), order=1, mode="nearest")
    close(pred.channels_first(), slices_to_volume(back, 2))
    assert pred.kind is PredictionKind.LOGITS and not pred.values_are_probabilities
    assert prov["preprocessing"]["resized_to"] == [32, 32]


def test_fixed_size_model_pads_smaller_images_and_refuses_larger(
    keras_models: Models, anat_volume: Volume
) -> None:
    path, model = keras_models("fixed2d_logits", "keras")
    small = Volume(np.ascontiguousarray(anat_volume.data[:30, :20]), anat_volume.affine)
    pred, _ = run(small, path, card=ZSCORE)
    items = np.moveaxis(zscore(small.data), 2, 0)
    y = run_direct(model, np.pad(items, [(0, 0), (1, 1), (6, 6)], mode="edge"))
    close(pred.channels_first(), slices_to_volume(y[:, 1:-1, 6:-6], 2))
    with pytest.raises(SegviewerError) as e:
        run(anat_volume, path, card=ZSCORE)
    assert "32 x 32" in str(e.value) and "33 x 41" in str(e.value) and "resize" in str(e.value)


def test_3d_model_on_the_volume(keras_models: Models, anat_volume: Volume) -> None:
    path, model = keras_models("unet3d", "keras")
    pred, prov = run(anat_volume, path, card=ZSCORE)
    x = np.pad(zscore(anat_volume.data), [(0, 1), (0, 1), (0, 1)], mode="edge")[None]
    y = run_direct(model, x)[0, :33, :41, :25]
    close(pred.channels_first(), np.moveaxis(y, -1, 0))
    assert prov["preprocessing"]["model_input_shape"] == [34, 42, 26]
    assert pred.kind is PredictionKind.LOGITS and prov["batch_size"] == 1


def test_multilabel_with_per_slice_percentile(keras_models: Models, anat_volume: Volume) -> None:
    path, model = keras_models("multilabel2d", "h5")
    card = ModelCard(normalization="percentile", normalization_scope="slice")
    pred, prov = run(anat_volume, path, card=card, batch_size=5)
    items = np.moveaxis(anat_volume.data, 2, 0).astype(np.float64)
    norm = []
    for s in items:
        lo, hi = np.percentile(s, [0.5, 99.5])
        norm.append((np.clip(s, lo, hi) - lo) / (hi - lo))
    close(pred.channels_first(), slices_to_volume(run_direct(model, np.stack(norm)), 2))
    assert pred.kind is PredictionKind.MULTILABEL and pred.n_classes == 4
    assert prov["preprocessing"]["normalization_scope"] == "slice"


def test_channel_mismatch_names_both_and_repeat_fixes_it(
    keras_models: Models, anat_volume: Volume
) -> None:
    path, model = keras_models("rgb2d", "keras")
    with pytest.raises(SegviewerError) as e:
        run(anat_volume, path)
    assert "expects 3 input channels" in str(e.value) and "has 1" in str(e.value)
    pred, _ = run(anat_volume, path, overrides={"repeat_channels": True})
    items = np.moveaxis(anat_volume.data, 2, 0).astype(np.float32)[..., None]
    y = np.asarray(model(np.repeat(items, 3, axis=-1), training=False))
    close(pred.channels_first(), slices_to_volume(y, 2))


def test_context_slices_feed_neighbours_as_channels(
    keras_models: Models, anat_volume: Volume
) -> None:
    path, model = keras_models("rgb2d", "keras")
    pred, prov = run(anat_volume, path, card=ZSCORE, overrides={"context_slices": 1})
    items = np.moveaxis(zscore(anat_volume.data), 2, 0)  # (25, 33, 41)
    idx = np.arange(25)
    x = np.stack([items[np.clip(idx + d, 0, 24)] for d in (-1, 0, 1)], axis=-1)
    close(pred.channels_first(), slices_to_volume(np.asarray(model(x, training=False)), 2))
    assert prov["preprocessing"]["context_slices"] == 1
    with pytest.raises(SegviewerError) as e:
        run(anat_volume, path, overrides={"context_slices": 2})
    assert "feeds 5 slices" in str(e.value) and "expects 3" in str(e.value)
    assert "set context_slices to 1" in str(e.value)


def test_nan_image_voxels_do_not_reach_the_model(keras_models: Models, anat_volume: Volume) -> None:
    path, model = keras_models("sigmoid2d", "keras")
    data = anat_volume.data.astype(np.float32)
    data[:4, :, 10] = np.nan  # e.g. a masked-out region of a float NIfTI
    pred, _ = run(Volume(data, anat_volume.affine), path, card=ZSCORE)
    finite = np.isfinite(data)
    x = np.zeros_like(data)
    v = data[finite].astype(np.float64)
    x[finite] = (v - v.mean()) / v.std()
    close(pred.channels_first(), slices_to_volume(run_direct(model, np.moveaxis(x, 2, 0)), 2))
    assert np.isfinite(pred.data).all()
    assert any(f"{4 * 41} NaN/inf voxels" in n for n in pred.notes)


def test_nan_outputs_are_kept_noted_and_become_invalid_voxels(
    keras_models: Models, anat_volume: Volume
) -> None:
    path, _ = keras_models("nan2d", "keras")
    pred, prov = run(anat_volume, path, card=ZSCORE)
    cf = np.asarray(pred.channels_first())
    bad = ~np.isfinite(cf).all(axis=0)
    assert 0 < bad.sum() < bad.size  # bright voxels overflow, dark ones do not
    assert prov["output"]["non_finite_values"] == int((~np.isfinite(cf)).sum())
    assert any("non-finite" in n for n in pred.notes)
    labels = labels_from_block(cf, pred.kind, pred.n_classes, MaskSettings())
    invalid = reserved_labels(labels.dtype)[1]
    np.testing.assert_array_equal(labels == invalid, np.isnan(cf).any(axis=0))


def test_cancel_mid_run_leaves_no_temp_file(
    keras_models: Models, anat_volume: Volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predict_mod, "MEMMAP_BYTES", 0)  # force the memory-mapped output
    path, _ = keras_models("unet2d_softmax", "keras")
    work = tmp_path / "work"
    work.mkdir()
    gen = predict(anat_volume, path, card=ZSCORE, batch_size=2, workdir=work)
    seen: list[Progress] = []
    while not (seen and seen[-1].message.startswith("slices")):
        seen.append(next(gen))
    assert seen[-1].done == 2 and seen[-1].total == 25 and "left" in seen[-1].message
    assert len(list(work.iterdir())) == 1  # the output file exists while running
    gen.close()
    assert list(work.iterdir()) == []
    with pytest.raises(StopIteration):
        next(gen)


def test_big_outputs_are_memory_mapped_and_cleaned_up(
    keras_models: Models, anat_volume: Volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = keras_models("sigmoid2d", "keras")
    in_memory, _ = run(anat_volume, path, card=ZSCORE)
    monkeypatch.setattr(predict_mod, "MEMMAP_BYTES", 0)
    mapped, prov = run(anat_volume, path, card=ZSCORE, workdir=tmp_path)
    assert isinstance(mapped.data, np.memmap) and prov["output"]["storage"] == "memmap"
    assert len(list(tmp_path.glob("segviewer-logits-*.npy"))) == 1
    np.testing.assert_array_equal(np.asarray(mapped.data), in_memory.data)
    del mapped
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_out_of_memory_halves_the_batch(
    keras_models: Models, anat_volume: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = keras_models("unet2d_softmax", "keras")
    handle = open_model(path)
    expect, _ = run(anat_volume, handle, card=ZSCORE, batch_size=25)
    real_call = predict_mod._Runner.__call__
    sizes: list[int] = []

    def limited(self: Any, x: np.ndarray) -> np.ndarray:
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real_call(self, x)

    monkeypatch.setattr(predict_mod._Runner, "__call__", limited)
    pred, prov = run(anat_volume, handle, card=ZSCORE, batch_size=8)
    assert sizes[:3] == [8, 4, 2] and prov["batch_size"] == 2 and prov["batch_size_first"] == 8
    assert any("batch size reduced to 2" in n for n in pred.notes)
    close(pred.channels_first(), expect.channels_first())

    def never(self: Any, x: np.ndarray) -> np.ndarray:
        raise MemoryError

    monkeypatch.setattr(predict_mod._Runner, "__call__", never)
    with pytest.raises(SegviewerError, match="out of memory even on one slice of 36 x 44"):
        run(anat_volume, handle, card=ZSCORE, batch_size=4)


def test_save_logits_npy_and_nifti(
    keras_models: Models, anat_volume: Volume, tmp_path: Path
) -> None:
    path, _ = keras_models("multilabel2d", "keras")
    pred, _ = run(anat_volume, path)
    out = save_logits(pred, tmp_path / "logits.npy")
    back = np.load(out, allow_pickle=False)
    assert back.shape == (3, 33, 41, 25) and back.dtype == np.float32
    np.testing.assert_array_equal(back, pred.channels_first())
    with pytest.raises(SegviewerError, match="needs the image's affine"):
        save_logits(pred, tmp_path / "logits.nii.gz")
    nii = save_logits(pred, tmp_path / "logits.nii.gz", affine=anat_volume.affine)
    img = nib.load(nii)
    assert img.shape == (33, 41, 25, 3)
    np.testing.assert_allclose(img.affine, anat_volume.affine)
    np.testing.assert_allclose(np.asarray(img.dataobj)[..., 1], back[1], rtol=1e-6)
    with pytest.raises(SegviewerError, match=r"\.npy, \.nii or \.nii\.gz"):
        save_logits(pred, tmp_path / "logits.csv")


def test_demo_model_segments_the_demo_brain(demo_dir: Path) -> None:
    img = nib.load(demo_dir / "t1.nii.gz")
    vol = Volume(np.asarray(img.dataobj), img.affine, source="t1.nii.gz", format="nifti")
    progress: list[Progress] = []
    pred, prov = run_to_end(predict(vol, demo_dir / "model.keras"), progress.append)
    assert prov["card_source"].endswith("model.segviewer.json")
    assert prov["preprocessing"]["model_input_shape"] == [104, 120]  # padded to 8
    assert pred.kind is PredictionKind.PROBABILITIES and pred.n_classes == 3
    ref = np.argmax(np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj), axis=-1)
    labels = np.argmax(np.asarray(pred.channels_first()), axis=0)
    assert (labels == ref).mean() > 0.98  # measured 0.990
    fractions = [p.fraction for p in progress if p.message.startswith("slices")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_sliding_window_tiles_fixed_size_2d_model(
    keras_models: Models, anat_volume: Volume
) -> None:
    path, _ = keras_models("pointwise2d_fixed16", "keras")
    _, free = keras_models("pointwise2d_free", "keras")
    pred, prov = run(anat_volume, path, card=ZSCORE, overrides={"size_policy": "tile"})
    items = np.moveaxis(zscore(anat_volume.data), 2, 0)
    close(pred.channels_first(), slices_to_volume(run_direct(free, items), 2))
    pre = prov["preprocessing"]
    # 33 x 41 with 16 x 16 tiles overlapping by half: starts 0,6,11,17 x 0,6,12,19,25
    assert (pre["model_input_shape"], pre["tiles_per_item"], pre["tile_overlap"]) == (
        [16, 16],
        20,
        0.5,
    )


def test_sliding_window_3d_reports_tiles_and_cancels(
    keras_models: Models, anat_volume: Volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, model = keras_models("pointwise3d_fixed8", "keras")
    card = ModelCard(normalization="zscore", size_policy="tile", tile_overlap=0.25)
    progress: list[Progress] = []
    pred, prov = run_to_end(predict(anat_volume, path, card=card, batch_size=16), progress.append)
    # A per-voxel model: apply its two layers' weights by hand to every voxel.
    (w1, b1), (w2, b2) = (layer.get_weights() for layer in model.layers)
    z = zscore(anat_volume.data)[..., None].astype(np.float64)
    h = np.tanh(z @ w1.reshape(1, 4) + b1) @ w2.reshape(4, 2) + b2
    p = np.exp(h - h.max(axis=-1, keepdims=True))
    close(pred.channels_first(), np.moveaxis(p / p.sum(axis=-1, keepdims=True), -1, 0))
    n_tiles = prov["preprocessing"]["tiles_per_item"]
    assert n_tiles == 6 * 7 * 4  # step 6: 33 -> 6 starts, 41 -> 7, 25 -> 4
    steps = [q for q in progress if q.message.startswith("volume")]
    assert len(steps) == -(-n_tiles // 16) and steps[-1].fraction == 1.0
    assert "tile 16/168" in steps[0].message

    monkeypatch.setattr(predict_mod, "MEMMAP_BYTES", 0)
    gen = predict(anat_volume, path, card=card, batch_size=16, workdir=tmp_path)
    while not next(gen).message.startswith("volume"):
        pass
    gen.close()  # cancelled inside the volume, between two batches of tiles
    assert list(tmp_path.iterdir()) == []


def test_3d_out_of_memory_falls_back_to_tiles(
    keras_models: Models, anat_volume: Volume, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, model = keras_models("pointwise3d_free", "keras")
    handle = open_model(path)
    expect, _ = run(anat_volume, handle, card=ZSCORE)
    monkeypatch.setattr(predict_mod, "MIN_TILE", 8)
    real_call = predict_mod._Runner.__call__
    shapes: list[tuple[int, ...]] = []

    def limited(self: Any, x: np.ndarray) -> np.ndarray:
        shapes.append(x.shape[1:4])
        if np.prod(x.shape[1:4]) > 20**3:  # "memory" for 8000 voxels per call
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real_call(self, x)

    monkeypatch.setattr(predict_mod._Runner, "__call__", limited)
    pred, prov = run(anat_volume, handle, card=ZSCORE)
    assert shapes[0] == (33, 41, 25) and shapes[1] == (16, 20, 12)
    assert prov["preprocessing"]["model_input_shape"] == [16, 20, 12]
    assert prov["preprocessing"]["tiles_per_item"] > 1
    assert any("switched to tiles of 16 x 20 x 12" in n for n in pred.notes)
    close(pred.channels_first(), expect.channels_first())
