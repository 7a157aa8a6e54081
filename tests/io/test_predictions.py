"""load_prediction on real data: the demo tissue probabilities in every layout and format."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import tifffile
from PIL import Image

from segviewer.core.types import PredictionKind, SegviewerError
from segviewer.io.predictions import describe_prediction, load_prediction, prediction_from_array

IMG = (98, 116, 94)  # demo t1.nii.gz, image axes (X, Y, Z)


@pytest.fixture(scope="module")
def probs_ref(demo_dir: Path) -> np.ndarray:
    """Demo probabilities channels first (3, 98, 116, 94) float32, as the loader scales them."""
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    raw = np.asarray(img.dataobj.get_unscaled()).astype(np.float32)
    raw *= np.float32(img.dataobj.slope)
    return np.ascontiguousarray(np.moveaxis(raw, -1, 0))


@pytest.fixture(scope="module")
def logits_ref(probs_ref: np.ndarray) -> np.ndarray:
    """Logits whose softmax is the (clipped) demo probabilities, channels first."""
    return np.log(np.clip(probs_ref, 1e-4, None)).astype(np.float32)


def test_demo_probabilities_nifti(demo_dir: Path, probs_ref: np.ndarray) -> None:
    pred = load_prediction(demo_dir / "tissue_prob.nii.gz", IMG)
    assert pred.kind is PredictionKind.PROBABILITIES
    assert pred.values_are_probabilities
    assert pred.n_classes == 3
    assert pred.layout.name == "DHWC"
    assert pred.spatial_shape == IMG
    assert np.array_equal(pred.channels_first(), probs_ref)
    assert any("summing to 1" in n for n in pred.notes)
    assert any("scaling applied" in n for n in pred.notes)


# layout name -> raw array from channels-first (C, X, Y, Z)
LAYOUTS = {
    "NZXYC": lambda a: a.transpose(3, 1, 2, 0)[None],  # 2-D model over nibabel slices (NHWC stack)
    "ZXYC": lambda a: a.transpose(3, 1, 2, 0),
    "NCDHW": lambda a: a[None],
    "CDHW": lambda a: a,
    "DHWC": lambda a: np.moveaxis(a, 0, -1),
    "NDHWC": lambda a: np.moveaxis(a, 0, -1)[None],
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_logits_npy_every_layout(tmp_path: Path, logits_ref: np.ndarray, name: str) -> None:
    path = tmp_path / f"logits_{name}.npy"
    np.save(path, np.ascontiguousarray(LAYOUTS[name](logits_ref)))
    pred = load_prediction(path, IMG)
    assert pred.kind is PredictionKind.LOGITS and not pred.values_are_probabilities
    assert pred.n_classes == 3
    assert pred.layout.name == name
    view = pred.channels_first()
    assert np.array_equal(view, logits_ref)
    # memory map all the way: no copy of the file's data
    assert isinstance(pred.data, np.memmap)
    assert np.shares_memory(view, pred.data)
    assert not view.flags.writeable
    assert any("logits" in n for n in pred.notes)


def test_npz_and_nrrd_and_uncompressed_nifti(tmp_path: Path, logits_ref: np.ndarray) -> None:
    dhwc = np.ascontiguousarray(np.moveaxis(logits_ref, 0, -1))
    np.savez(tmp_path / "p.npz", image=np.zeros(3), logits=dhwc)
    pred = load_prediction(tmp_path / "p.npz", IMG)
    assert np.array_equal(pred.channels_first(), logits_ref)
    assert any("'logits'" in n for n in pred.notes)

    nrrd.write(str(tmp_path / "p.nrrd"), np.ascontiguousarray(logits_ref), index_order="F")
    pred = load_prediction(tmp_path / "p.nrrd", IMG)
    assert pred.layout.name == "CDHW"
    assert np.array_equal(pred.channels_first(), logits_ref)

    nib.save(nib.Nifti1Image(dhwc, np.eye(4)), tmp_path / "p.nii")
    pred = load_prediction(tmp_path / "p.nii", IMG)
    assert isinstance(pred.data, np.memmap)
    assert np.array_equal(pred.channels_first(), logits_ref)


def test_npz_with_unknown_names_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "p.npz", a=np.zeros(IMG), b=np.zeros(IMG))
    with pytest.raises(SegviewerError, match="2 of them fit the image.*p.npz:NAME"):
        load_prediction(tmp_path / "p.npz", IMG)
    np.savez(tmp_path / "q.npz", a=np.zeros((3, 4)), b=np.zeros((5, 6)))
    with pytest.raises(SegviewerError, match="none is named logits, probabilities"):
        load_prediction(tmp_path / "q.npz", IMG)


def test_square_slices_are_ambiguous(tmp_path: Path, logits_ref: np.ndarray) -> None:
    # a (64, 64, 40) image and a stacked-slices (40, 64, 64, 3) prediction: X and Y may swap
    ref = np.ascontiguousarray(logits_ref[:, :64, :64, :40])
    path = tmp_path / "square.npy"
    np.save(path, ref.transpose(3, 1, 2, 0))
    pred = load_prediction(path, (64, 64, 40))
    assert pred.layout.name == "ZXYC"
    assert np.array_equal(pred.channels_first(), ref)
    note = next(n for n in pred.notes if "Layout" in n)
    assert "ambiguous" in note and "--layout ZYXC" in note
    swapped = load_prediction(path, (64, 64, 40), layout="ZYXC")
    assert np.array_equal(swapped.channels_first(), ref.transpose(0, 2, 1, 3))


def test_class_count_equal_to_a_dimension(tmp_path: Path, probs_ref: np.ndarray) -> None:
    # image (3, 116, 94) with 3 classes: channels-last reading is preferred, explicit wins
    ref = np.ascontiguousarray(probs_ref[:, 40:43])
    path = tmp_path / "p.npy"
    np.save(path, np.moveaxis(ref, 0, -1))
    pred = load_prediction(path, (3, 116, 94))
    assert pred.layout.name == "DHWC"
    assert np.array_equal(pred.channels_first(), ref)
    assert any("ambiguous" in n for n in pred.notes)
    note = next(n for n in pred.notes if "Layout" in n)
    assert "--layout CYZX" in note
    raw = np.load(path)
    forced = load_prediction(path, (3, 116, 94), layout="CYZX", kind="logits")
    assert forced.layout.class_axis == 0 and forced.kind is PredictionKind.LOGITS
    assert np.array_equal(forced.channels_first(), raw.transpose(0, 3, 1, 2))


def test_label_png_on_mr_small_image(tmp_path: Path, mr_small: Path) -> None:
    import pydicom

    mr = pydicom.dcmread(mr_small).pixel_array
    labels = np.digitize(mr, np.percentile(mr, [50, 80])).astype(np.uint8)  # 3 real classes
    path = tmp_path / "labels.png"
    Image.fromarray(labels, mode="L").save(path)
    pred = load_prediction(path, (1, *mr.shape))
    assert pred.kind is PredictionKind.LABELS and pred.n_classes == 3
    view = pred.channels_first()
    assert view.shape == (1, 64, 64)
    assert np.array_equal(view[0], labels)
    assert pred.spatial_shape == (1, 64, 64)
    assert not any("ambiguous" in n for n in pred.notes)
    hinted = load_prediction(path, (1, 64, 64), n_classes_hint=5)
    assert hinted.n_classes == 5


def test_multipage_tiff_label_stack(tmp_path: Path, probs_ref: np.ndarray) -> None:
    labels = probs_ref.argmax(axis=0).astype(np.uint16)[:, :, 30:40].transpose(2, 0, 1)
    tifffile.imwrite(tmp_path / "l.tif", labels)
    pred = load_prediction(tmp_path / "l.tif", labels.shape)
    assert pred.kind is PredictionKind.LABELS and pred.n_classes == 3
    assert np.array_equal(pred.channels_first(), labels)


def test_float_label_map_and_single_sigmoid_map(tmp_path: Path, probs_ref: np.ndarray) -> None:
    labels = probs_ref.argmax(axis=0).astype(np.float32)
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "l.nii.gz")
    pred = load_prediction(tmp_path / "l.nii.gz", IMG)
    assert pred.kind is PredictionKind.LABELS and pred.data.dtype == np.uint8
    assert np.array_equal(pred.channels_first(), labels.astype(np.uint8))

    wm = probs_ref[2]
    np.save(tmp_path / "wm.npy", wm)
    pred = load_prediction(tmp_path / "wm.npy", IMG)
    assert pred.kind is PredictionKind.SIGMOID and pred.values_are_probabilities
    assert pred.n_classes == 2
    assert np.array_equal(pred.channels_first()[0], wm)
    assert np.shares_memory(pred.channels_first(), pred.data)

    # mostly empty: the strided sample sees only 0 and 1, the whole-array check sees 0.7
    sparse = (probs_ref.argmax(axis=0) == 2).astype(np.float32)
    sparse[1, 1, 1] = 0.7
    np.save(tmp_path / "sparse.npy", sparse)
    pred = load_prediction(tmp_path / "sparse.npy", IMG)
    assert pred.kind is PredictionKind.SIGMOID and pred.values_are_probabilities


def test_sigmoid_channel_logits_and_multilabel(tmp_path: Path, logits_ref: np.ndarray) -> None:
    np.save(tmp_path / "s.npy", logits_ref[1:2])  # (1, X, Y, Z) one channel of logits
    pred = load_prediction(tmp_path / "s.npy", IMG)
    assert pred.kind is PredictionKind.SIGMOID and not pred.values_are_probabilities
    np.save(tmp_path / "m.npy", np.moveaxis(logits_ref[1:], 0, -1))
    pred = load_prediction(tmp_path / "m.npy", IMG, kind="multilabel")
    assert pred.kind is PredictionKind.MULTILABEL and pred.n_classes == 3
    with pytest.raises(
        SegviewerError, match="'sigmoid' needs one channel but the prediction has 2"
    ):
        load_prediction(tmp_path / "m.npy", IMG, kind="sigmoid")
    with pytest.raises(SegviewerError, match="unknown prediction kind 'softmax'"):
        load_prediction(tmp_path / "m.npy", IMG, kind="softmax")


def test_nonfinite_values_are_noted(tmp_path: Path, logits_ref: np.ndarray) -> None:
    bad = logits_ref.copy()
    bad[:, ::8, ::8, ::8] = np.nan
    np.save(tmp_path / "x.npy", bad)
    pred = load_prediction(tmp_path / "x.npy", IMG)
    assert any("NaN or infinite" in n for n in pred.notes)


def test_pickled_npy_refused(tmp_path: Path) -> None:
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = {"a": 1}, [2]
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(SegviewerError, match="refuses pickled data"):
        load_prediction(tmp_path / "obj.npy", IMG)
    (tmp_path / "p.npy").write_bytes(pickle.dumps(np.zeros(3)))
    with pytest.raises(SegviewerError, match="not a NumPy .npy array"):
        load_prediction(tmp_path / "p.npy", IMG)


def test_shape_mismatch_names_both_shapes(tmp_path: Path, logits_ref: np.ndarray) -> None:
    np.save(tmp_path / "crop.npy", logits_ref[:, :90])
    with pytest.raises(SegviewerError) as err:
        load_prediction(tmp_path / "crop.npy", IMG)
    msg = str(err.value)
    assert "crop.npy" in msg
    assert "prediction (3, 90, 116, 94) does not match image (98, 116, 94)" in msg


def test_half_resolution_suggests_then_does_resample(tmp_path: Path, probs_ref: np.ndarray) -> None:
    half = np.ascontiguousarray(probs_ref[:, ::2, ::2, ::2])  # (3, 49, 58, 47)
    np.save(tmp_path / "half.npy", np.moveaxis(half, 0, -1)[None])
    with pytest.raises(SegviewerError, match=re.escape("0.50x the image's; use --resample")):
        load_prediction(tmp_path / "half.npy", IMG)
    pred = load_prediction(tmp_path / "half.npy", IMG, resample=True)
    assert pred.spatial_shape == IMG and pred.kind is PredictionKind.PROBABILITIES
    cf = pred.channels_first()
    assert cf.shape == (3, *IMG) and cf.dtype == np.float32
    # linear resampling of probabilities keeps them summing to 1 and close to the original
    assert np.allclose(cf.sum(axis=0), 1.0, atol=0.02)
    agree = np.mean(cf.argmax(axis=0) == probs_ref.argmax(axis=0))
    assert agree > 0.9
    rec = pred.resampling
    assert rec is not None and rec.geometry == "shape" and rec.method == "linear per class"
    assert rec.from_shape == (49, 58, 47) and rec.to_shape == IMG and rec.coverage == 1.0
    assert any(
        n.startswith("Resampled from 49x58x47") and "by shape" in n and "no geometry" in n
        for n in pred.notes
    )

    labels = half.argmax(axis=0).astype(np.uint8)
    np.save(tmp_path / "lab.npy", labels)
    lab = load_prediction(tmp_path / "lab.npy", IMG, resample=True)
    out = lab.channels_first()
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1, 2}
    assert np.array_equal(out[::2, ::2, ::2], labels)  # nearest neighbour hits each source voxel


def test_label_errors(tmp_path: Path) -> None:
    neg = np.zeros(IMG, np.int16)
    neg[1, 2, 3] = -1
    np.save(tmp_path / "neg.npy", neg)
    with pytest.raises(SegviewerError, match="negative values"):
        load_prediction(tmp_path / "neg.npy", IMG)
    big = np.zeros(IMG, np.int32)
    big[0, 0, 0] = 70000
    np.save(tmp_path / "big.npy", big)
    with pytest.raises(SegviewerError, match="largest label is 70000"):
        load_prediction(tmp_path / "big.npy", IMG)
    frac = np.full(IMG, 0.5, np.float32)
    np.save(tmp_path / "frac.npy", frac)
    with pytest.raises(SegviewerError, match="needs finite whole numbers"):
        load_prediction(tmp_path / "frac.npy", IMG, kind="labels")


def test_unsupported_and_describe(tmp_path: Path, demo_dir: Path) -> None:
    (tmp_path / "p.mha").write_bytes(b"x")
    with pytest.raises(SegviewerError, match="unsupported prediction format '.mha'"):
        load_prediction(tmp_path / "p.mha", IMG)
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "c.png")
    with pytest.raises(SegviewerError, match="colour RGB image is not a label map"):
        load_prediction(tmp_path / "c.png", (1, 8, 8))
    arr = np.zeros((2, 3, 4), np.float32)
    np.save(tmp_path / "d.npy", arr)
    info = describe_prediction(tmp_path / "d.npy")
    assert info["shape"] == (2, 3, 4) and info["dtype"] == "float32" and info["memory_mapped"]
    info = describe_prediction(demo_dir / "tissue_prob.nii.gz")
    assert info["shape"] == (98, 116, 94, 3) and info["scaled"] and info["stored_dtype"] == "uint8"


def test_prediction_from_array_keeps_views(probs_ref: np.ndarray) -> None:
    raw = np.moveaxis(probs_ref, 0, -1)  # a non-contiguous view
    pred = prediction_from_array(raw, IMG, source="model output")
    assert pred.kind is PredictionKind.PROBABILITIES
    assert np.shares_memory(pred.channels_first(), probs_ref)
    assert np.array_equal(pred.channels_first(), probs_ref)


def test_nifti_geometry_differences_are_reported(tmp_path: Path, demo_dir: Path) -> None:
    src = nib.load(demo_dir / "tissue_prob.nii.gz")
    t1_affine = nib.load(demo_dir / "t1.nii.gz").affine
    same = load_prediction(demo_dir / "tissue_prob.nii.gz", IMG, image_affine=t1_affine)
    assert not any("affine" in n for n in same.notes)
    data = np.asarray(src.dataobj.get_unscaled()).astype(np.float32) / 255
    flipped = t1_affine @ np.diag([-1.0, 1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(data, flipped), tmp_path / "flip.nii.gz")
    pred = load_prediction(tmp_path / "flip.nii.gz", IMG, image_affine=t1_affine)
    assert any("point LAS but the image's point RAS" in n for n in pred.notes)
    shifted = t1_affine.copy()
    shifted[:3, 3] += (3.0, 4.0, 0.0)
    nib.save(nib.Nifti1Image(data, shifted), tmp_path / "shift.nii.gz")
    pred = load_prediction(tmp_path / "shift.nii.gz", IMG, image_affine=t1_affine)
    assert any("origins 5.0 mm apart" in n for n in pred.notes)


def test_multi_gigabyte_npy_is_memory_mapped_not_read(tmp_path: Path) -> None:
    # a 2 GiB float32 (1, 256, 512, 512, 8) logits file, sparse on disk: opening it, detecting
    # layout and kind and taking a slice must not read it whole
    import resource

    shape = (1, 256, 512, 512, 8)
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    big[0, 100, 200, 300] = np.arange(8, dtype=np.float32)
    del big
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    pred = load_prediction(path, (256, 512, 512))
    view = pred.channels_first()
    assert view.shape == (8, 256, 512, 512)
    assert isinstance(pred.data, np.memmap) and np.shares_memory(view, pred.data)
    assert pred.kind is PredictionKind.LOGITS and pred.layout.name == "NDHWC"
    assert view[:, 100, 200, 300].tolist() == list(range(8))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 512, f"peak memory grew by {grown_mib:.0f} MiB for a 2 GiB file"


def test_one_hot_integer_channels(tmp_path: Path, probs_ref: np.ndarray) -> None:
    labels = probs_ref.argmax(axis=0)
    one_hot = (labels[..., None] == np.arange(3)).astype(np.uint8)  # (X, Y, Z, 3)
    nib.save(nib.Nifti1Image(one_hot, np.eye(4)), tmp_path / "onehot.nii.gz")
    pred = load_prediction(tmp_path / "onehot.nii.gz", IMG)
    assert pred.kind is PredictionKind.PROBABILITIES and pred.n_classes == 3
    cf = pred.channels_first()
    assert cf.dtype == np.float32
    assert np.array_equal(cf.argmax(axis=0), labels)
    assert any("one-hot" in n for n in pred.notes)
    with pytest.raises(SegviewerError) as err:
        load_prediction(tmp_path / "onehot.nii.gz", (98, 116, 95))
    assert "prediction (98, 116, 94, 3) does not match image (98, 116, 95)" in str(err.value)
    assert "differs by a few voxels" in str(err.value)
    # overlapping integer channels are multi-label only when asked
    multi = load_prediction(tmp_path / "onehot.nii.gz", IMG, kind="multilabel")
    assert multi.kind is PredictionKind.MULTILABEL and multi.n_classes == 4
    assert multi.values_are_probabilities
    assert np.array_equal(multi.channels_first(), np.moveaxis(one_hot, -1, 0).astype(np.float32))


def test_quantised_probabilities_and_byte_order(
    tmp_path: Path, demo_dir: Path, probs_ref: np.ndarray
) -> None:
    # the demo's uint8 probabilities saved without their NIfTI scale factor
    stored = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj.get_unscaled())
    np.save(tmp_path / "u8.npy", stored)
    pred = load_prediction(tmp_path / "u8.npy", IMG)
    assert pred.kind is PredictionKind.PROBABILITIES
    assert np.allclose(pred.channels_first(), probs_ref, atol=1e-6)
    assert any("scaled by 1/255" in n for n in pred.notes)

    big_endian = np.moveaxis(probs_ref, 0, -1).astype(">f4")
    np.save(tmp_path / "be.npy", big_endian)
    pred = load_prediction(tmp_path / "be.npy", IMG)
    assert pred.data.dtype == np.dtype("=f4")
    assert np.array_equal(pred.channels_first(), probs_ref)
    assert any("byte order" in n for n in pred.notes)


def test_image_loaded_as_labels_is_flagged(demo_dir: Path) -> None:
    pred = load_prediction(demo_dir / "t1.nii.gz", IMG)  # the T1 itself, uint8 intensities
    assert pred.kind is PredictionKind.LABELS
    assert any("rather than a segmentation" in n for n in pred.notes)
    labels = load_prediction(demo_dir / "tissue_prob.nii.gz", IMG)
    assert not any("rather than a segmentation" in n for n in labels.notes)
