"""Predictions as research pipelines write them: nnU-Net, MONAI, TensorFlow, HDF5.

The image is nibabel's real T1 (anatomical.nii, 33x41x25); the predictions are computed from
its intensities and written with the library that writes each format where it is installable
(h5py, TensorFlow, pynrrd, nibabel), otherwise in the format's documented layout (nnU-Net's
``export_prediction_from_logits``: ``np.savez_compressed(case.npz, probabilities=(C, Z, Y,
X))`` and a pickle of properties beside it; MONAI's NIfTI writer: channels last, a 5-D vector
image ``(X, Y, Z, 1, C)``).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from segviewer.core.types import PredictionKind, SegviewerError
from segviewer.io.classtables import class_table_beside
from segviewer.io.images import load_image
from segviewer.io.predictions import describe_prediction, load_prediction


@pytest.fixture(scope="module")
def t1(nibabel_anatomical: Path):  # type: ignore[no-untyped-def]
    return load_image(nibabel_anatomical)


def _probs(vol, n: int = 3) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(n, X, Y, Z) float32 softmax of distances to n intensity levels of the image."""
    d = np.asarray(vol.data, dtype=np.float32)
    levels = np.quantile(d, np.linspace(0.2, 0.9, n)).astype(np.float32)
    logits = -np.abs(d[None] - levels[:, None, None, None]) / (d.std() + 1e-6) * 4
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


class _Trap:
    """Unpickling this creates a file: proof that nobody opened the .pkl."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


def _nnunet_case(folder: Path, probs_xyz: np.ndarray, marker: Path) -> Path:
    """nnU-Net v2 export_prediction_from_logits with save_probabilities=True."""
    folder.mkdir(parents=True, exist_ok=True)
    czyx = np.ascontiguousarray(np.transpose(probs_xyz, (0, 3, 2, 1)))
    np.savez_compressed(folder / "case_001.npz", probabilities=czyx)
    props = {
        "spacing": [1.0, 1.0, 1.0],
        "shape_before_cropping": czyx.shape[1:],
        "x": _Trap(marker),
    }
    with open(folder / "case_001.pkl", "wb") as f:
        pickle.dump(props, f)
    labels = {"background": 0, "grey": 1, "white": 2}
    (folder / "dataset.json").write_text(json.dumps({"labels": labels, "file_ending": ".nii.gz"}))
    return folder / "case_001.npz"


def test_nnunet_probabilities_reversed_onto_the_nifti_axes(t1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    probs = _probs(t1)
    marker = tmp_path / "unpickled"
    npz = _nnunet_case(tmp_path / "pred", probs, marker)
    pred = load_prediction(npz, t1.shape)
    assert not marker.exists(), "the .pkl was unpickled"
    assert pred.kind is PredictionKind.PROBABILITIES and pred.n_classes == 3
    np.testing.assert_array_equal(pred.channels_first(), probs)
    text = " ".join(pred.notes)
    assert "nnU-Net" in text and "case_001.pkl" in text and "not opened" in text
    assert "reversing the spatial axes" in text
    table, source, _ = class_table_beside(npz)  # type: ignore[misc]
    assert [c.name for c in table] == ["background", "grey", "white"]
    assert "nnU-Net" in source


def test_nnunet_on_a_cube_follows_the_convention(tmp_path: Path) -> None:
    """Sizes alone cannot tell (C, Z, Y, X) from (C, X, Y, Z) on a cube: nnU-Net's order wins."""
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1], size=(12, 12, 12)).transpose(3, 0, 1, 2).astype(np.float32)
    npz = _nnunet_case(tmp_path / "cube", probs, tmp_path / "m")
    pred = load_prediction(npz, (12, 12, 12))
    np.testing.assert_array_equal(pred.channels_first(), probs)
    assert pred.layout.name == "CZYX"


def test_nnunet_v1_softmax_member(t1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    probs = _probs(t1)
    folder = tmp_path / "v1"
    folder.mkdir()
    np.savez_compressed(folder / "c.npz", softmax=np.transpose(probs, (0, 3, 2, 1)))
    (folder / "c.pkl").write_bytes(pickle.dumps({"spacing": (1, 1, 1)}))
    pred = load_prediction(folder / "c.npz", t1.shape)
    np.testing.assert_array_equal(pred.channels_first(), probs)


@pytest.mark.parametrize("five_d", [False, True])
def test_monai_multichannel_nifti(t1, tmp_path: Path, five_d: bool) -> None:  # type: ignore[no-untyped-def]
    probs = _probs(t1, 4)
    data = np.moveaxis(probs, 0, -1)  # (X, Y, Z, C)
    img = nib.Nifti1Image(data[:, :, :, None, :] if five_d else data, t1.affine)
    if five_d:
        img.header.set_intent("vector")
    path = tmp_path / f"seg_{int(five_d)}.nii.gz"
    nib.save(img, path)
    pred = load_prediction(path, t1.shape, image_affine=t1.affine)
    np.testing.assert_allclose(pred.channels_first(), probs)
    assert pred.kind is PredictionKind.PROBABILITIES and pred.n_classes == 4
    if five_d:
        assert any("vector image (X, Y, Z, 1, C)" in n for n in pred.notes)


def test_bids_dseg_with_tsv(t1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    labels = np.argmax(_probs(t1), axis=0).astype(np.uint8)
    path = tmp_path / "sub-01_desc-tissue_dseg.nii.gz"
    nib.save(nib.Nifti1Image(labels, t1.affine), path)
    (tmp_path / "sub-01_desc-tissue_dseg.tsv").write_text(
        "index\tname\tabbreviation\tcolor\n0\tBackground\tBG\t#000000\n1\tGray Matter\tGM\t#00ff00\n"
        "2\tWhite Matter\tWM\t#ffffff\n"
    )
    pred = load_prediction(path, t1.shape)
    np.testing.assert_array_equal(pred.channels_first(), labels)
    table, source, _ = class_table_beside(path)  # type: ignore[misc]
    assert [c.name for c in table] == ["Background", "Gray Matter", "White Matter"]
    assert table[1].color == (0, 255, 0) and "BIDS" in source


def test_slicer_seg_nrrd_segment_names(tmp_path: Path) -> None:
    import nrrd

    lab = np.zeros((8, 9, 10), np.uint8)
    lab[2:4] = 1
    lab[5:7] = 3
    header = {
        "space": "left-posterior-superior",
        "space directions": np.eye(3),
        "space origin": np.zeros(3),
        "Segment0_Name": "tumor",
        "Segment0_LabelValue": "1",
        "Segment0_Color": "1 0 0",
        "Segment0_Layer": "0",
        "Segment1_Name": "edema",
        "Segment1_LabelValue": "3",
        "Segment1_Color": "0 0.5 1",
        "Segment1_Layer": "0",
    }
    path = tmp_path / "case.seg.nrrd"
    nrrd.write(str(path), lab, header)
    table, source, warnings = class_table_beside(path)  # type: ignore[misc]
    assert [c.name for c in table][:2] == ["background", "tumor"] and table[3].name == "edema"
    assert table[1].color == (255, 0, 0) and table[3].color == (0, 128, 255)
    assert "Slicer" in source and warnings  # label 2 is a gap


def test_monai_bundle_channel_def(t1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    meta = {
        "network_data_format": {
            "outputs": {
                "pred": {"type": "image", "channel_def": {"0": "background", "1": "spleen"}}
            }
        }
    }
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    path = tmp_path / "img_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(t1.shape, np.uint8), t1.affine), path)
    table, source, _ = class_table_beside(path)  # type: ignore[misc]
    assert [c.name for c in table] == ["background", "spleen"] and "MONAI" in source


def test_npz_named_members_pick_or_ask(t1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    probs = _probs(t1)
    logits = np.log(probs + 1e-6)
    path = tmp_path / "out.npz"
    np.savez(path, logits=logits, probabilities=probs, image=np.asarray(t1.data, np.float32))
    with pytest.raises(SegviewerError) as err:
        load_prediction(path, t1.shape)
    msg = str(err.value)
    assert "'logits'" in msg and "'probabilities'" in msg and "out.npz:NAME" in msg
    pred = load_prediction(f"{path}:probabilities", t1.shape)
    np.testing.assert_array_equal(pred.channels_first(), probs)
    assert pred.kind is PredictionKind.PROBABILITIES
    with pytest.raises(SegviewerError, match="no array 'nope'.*'logits'"):
        load_prediction(f"{path}:nope", t1.shape)
    # one member fits the image: chosen, and the note says why
    other = tmp_path / "one.npz"
    np.savez(other, embedding=np.zeros((7, 5), np.float32), out=logits)
    pred = load_prediction(other, t1.shape)
    assert any("the only one of 2 whose shape fits" in n for n in pred.notes)
    assert describe_prediction(f"{path}:logits")["array"] == "logits"


def test_hdf5_one_dataset_per_case(t1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    probs = _probs(t1)
    path = tmp_path / "outputs.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("cases/sub01", data=np.moveaxis(probs, 0, -1)[None], compression="gzip")
        f.create_dataset("cases/sub02", data=np.zeros((1, 20, 20, 20, 3), np.float32))
        f.create_dataset("cases/sub03", data=np.moveaxis(probs, 0, -1)[None] * 0.5)
        f.attrs["framework"] = "tensorflow"
    with pytest.raises(SegviewerError) as err:
        load_prediction(path, t1.shape)
    assert "cases/sub01" in str(err.value) and "cases/sub03" in str(err.value)
    assert "cases/sub02" not in str(err.value)  # it does not fit: not offered
    pred = load_prediction(f"{path}:cases/sub01", t1.shape)
    np.testing.assert_array_equal(pred.channels_first(), probs)
    single = tmp_path / "single.h5"
    with h5py.File(single, "w") as f:
        f["prediction"] = np.moveaxis(probs, 0, -1)
    pred = load_prediction(single, t1.shape)
    np.testing.assert_array_equal(pred.channels_first(), probs)
    info = describe_prediction(path)
    assert info["format"] == "hdf5" and "cases/sub02" in info["arrays"]


@pytest.mark.tf
def test_keras_model_h5_is_refused(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 1)])
    path = tmp_path / "model.h5"
    model.save(path)
    with pytest.raises(SegviewerError, match="Keras model, not a prediction"):
        load_prediction(path, (1, 4, 4))


@pytest.mark.tf
def test_np_save_of_tf_tensors(t1, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tf = pytest.importorskip("tensorflow")
    x = np.asarray(t1.data, np.float32)[None, ..., None]
    x = x / x.max()
    conv = tf.keras.layers.Conv3D(3, 3, padding="same", activation="softmax")
    out = conv(tf.constant(x))  # (1, X, Y, Z, 3) tf.Tensor
    np.save(tmp_path / "out.npy", out)
    pred = load_prediction(tmp_path / "out.npy", t1.shape)
    np.testing.assert_allclose(pred.channels_first(), np.moveaxis(out.numpy()[0], -1, 0))
    assert pred.kind is PredictionKind.PROBABILITIES
    # mixed precision: bfloat16 tensors are saved as 2-byte void values
    np.save(tmp_path / "bf16.npy", tf.cast(out, tf.bfloat16))
    assert np.load(tmp_path / "bf16.npy").dtype.kind == "V"
    pred = load_prediction(tmp_path / "bf16.npy", t1.shape)
    want = tf.cast(tf.cast(out, tf.bfloat16), tf.float32).numpy()[0]
    np.testing.assert_array_equal(pred.channels_first(), np.moveaxis(want, -1, 0))
    assert any("bfloat16" in n for n in pred.notes)
