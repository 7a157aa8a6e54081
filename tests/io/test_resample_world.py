"""Resampling a prediction onto the image grid in world space, on real files.

Images: nibabel's anatomical.nii (2 mm, LAS) and the bundled demo T1 / tissue probabilities,
pydicom's MR_small.dcm. Predictions are generated from them on other grids (other origins,
spacings, flips) with nibabel, saved as NIfTI (sform or qform only) or NRRD (LPS space), and
compared with an independent resampling (nibabel.processing.resample_from_to, or an analytic
function of world position) after segviewer reads them back with ``resample=True``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.processing import resample_from_to

from segviewer.core.types import PredictionKind, SegviewerError
from segviewer.io.images import load_image
from segviewer.io.predictions import load_prediction, load_reference


def _tissue_labels(demo_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(demo_dir / "tissue_prob.nii.gz")
    probs = np.asarray(img.dataobj, dtype=np.float32)
    return probs.argmax(axis=-1).astype(np.uint8), img.affine


def _inside_nibabel(
    src_shape: tuple[int, ...], m: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """Image voxels whose centre maps within [0, n - 1] of the source (nibabel's inside)."""
    g = np.indices(shape).reshape(3, -1).astype(np.float64)
    c = m[:3, :3] @ g + m[:3, 3:]
    hi = np.array(src_shape[:3], dtype=np.float64)[:, None] - 1
    return np.all((c >= 0) & (c <= hi), axis=0).reshape(shape)


def _other_grid(
    affine: np.ndarray, zoom: tuple[float, ...], shift: tuple[float, ...]
) -> np.ndarray:
    out = affine @ np.diag([*zoom, 1.0])
    out[:3, 3] += shift
    return out


def test_label_map_on_another_grid_matches_nibabel(
    tmp_path: Path, nibabel_anatomical: Path
) -> None:
    anat = nib.load(nibabel_anatomical)
    data = np.asarray(anat.dataobj, dtype=np.float32)
    lab = np.digitize(data, np.percentile(data, [50, 75, 90])).astype(np.uint8)
    # prediction grid: coarser, first axis flipped, shifted origin (no half-voxel ties)
    aff = _other_grid(anat.affine, (1.61, 1.33, 1.42), (7.3, -5.2, 3.1))
    aff = aff @ np.array([[-1, 0, 0, 40], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    pred_img = resample_from_to(nib.Nifti1Image(lab, anat.affine), ((41, 50, 15), aff), order=0)
    nib.save(pred_img, tmp_path / "lab.nii.gz")
    image = load_image(nibabel_anatomical)

    pred = load_prediction(
        tmp_path / "lab.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    got = pred.channels_first()
    assert got.shape == anat.shape and pred.kind is PredictionKind.LABELS
    expected = np.asarray(resample_from_to(pred_img, anat, order=0).dataobj)
    m = np.linalg.inv(aff) @ anat.affine
    inside = _inside_nibabel(pred_img.shape, m, anat.shape)
    assert inside.mean() > 0.5
    assert np.array_equal(got[inside], expected[inside])
    rec = pred.resampling
    assert rec is not None and rec.geometry == "world" and rec.method == "nearest neighbour"
    assert rec.from_shape == (41, 50, 15) and rec.to_shape == anat.shape
    assert 0.5 < rec.coverage < 1.0 and rec.outside > 0.1
    text = rec.describe()
    assert "in world space through both affines" in text and "% of the image" in text
    assert json.loads(json.dumps(rec.as_dict()))["image_covered"] == pytest.approx(rec.coverage)


@pytest.mark.parametrize("which", ["sform", "qform"])
def test_probabilities_linear_per_class_match_nibabel(
    tmp_path: Path, demo_dir: Path, which: str
) -> None:
    src = nib.load(demo_dir / "tissue_prob.nii.gz")
    probs = np.asarray(src.dataobj, dtype=np.float32)
    aff = _other_grid(src.affine, (0.77, 0.77, 0.83), (3.3, -2.9, 1.7))  # 1.5-1.7 mm
    shape = (120, 140, 110)
    chans = [
        np.asarray(
            resample_from_to(
                nib.Nifti1Image(probs[..., c], src.affine),
                (shape, aff),
                order=1,
                cval=1.0 if c == 0 else 0.0,  # outside the demo's box: background
            ).dataobj
        )
        for c in range(3)
    ]
    pred_data = np.stack(chans, axis=-1).astype(np.float32)
    out = nib.Nifti1Image(pred_data, aff)
    if which == "qform":
        out.set_qform(aff, code=1)
        out.set_sform(None, code=0)
    nib.save(out, tmp_path / "p.nii.gz")
    saved = nib.load(tmp_path / "p.nii.gz")
    assert int(saved.header["sform_code"]) == (0 if which == "qform" else 2)
    image = load_image(demo_dir / "t1.nii.gz")

    pred = load_prediction(
        tmp_path / "p.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    cf = pred.channels_first()
    assert cf.shape == (3, *image.shape) and pred.kind is PredictionKind.PROBABILITIES
    m = np.linalg.inv(saved.affine) @ image.affine
    inside = _inside_nibabel(shape, m, image.shape)
    for c in range(3):
        ref = resample_from_to(
            nib.Nifti1Image(pred_data[..., c], saved.affine), (image.shape, image.affine), order=1
        )
        np.testing.assert_allclose(cf[c][inside], np.asarray(ref.dataobj)[inside], atol=1e-4)
    # there and back again: the argmax agrees with the original labels almost everywhere
    assert np.mean(cf.argmax(axis=0) == probs.argmax(axis=-1)) > 0.97
    assert pred.resampling is not None and pred.resampling.method == "linear per class"


def test_nrrd_lps_prediction_lands_where_the_nifti_one_does(tmp_path: Path, demo_dir: Path) -> None:
    nrrd = pytest.importorskip("nrrd")
    labels, aff = _tissue_labels(demo_dir)
    grid = _other_grid(aff, (1.5, 1.5, 1.5), (2.1, -3.7, 4.3))
    shape = (64, 80, 62)
    pred_img = resample_from_to(nib.Nifti1Image(labels, aff), (shape, grid), order=0)
    nib.save(pred_img, tmp_path / "p.nii.gz")
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ grid  # RAS -> LPS
    nrrd.write(
        str(tmp_path / "p.nrrd"),
        np.asarray(pred_img.dataobj),
        {
            "space": "left-posterior-superior",
            "space directions": lps[:3, :3].T,
            "space origin": lps[:3, 3],
        },
    )
    image = load_image(demo_dir / "t1.nii.gz")
    a = load_prediction(
        tmp_path / "p.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    b = load_prediction(tmp_path / "p.nrrd", image.shape, image_affine=image.affine, resample=True)
    assert b.resampling is not None and b.resampling.geometry == "world"
    assert np.array_equal(a.channels_first(), b.channels_first())
    assert np.mean(a.channels_first() == labels) > 0.9


def test_dicom_image_and_world_function(tmp_path: Path, mr_small: Path) -> None:
    # a label map defined by world position (x > x0, y > y0) on a coarse oblique-free grid
    # around pydicom's MR_small slice; after resampling, every image pixel's label is the
    # function at its own world position, except within one prediction voxel of the edges
    image = load_image(mr_small)
    centre = image.affine @ np.array([0.0, 31.5, 31.5, 1.0])
    grid = np.diag([2.3, 2.3, 2.3, 1.0])
    grid[:3, 3] = centre[:3] - 2.3 * np.array([20.0, 20.0, 5.0])
    shape = (40, 40, 10)
    ijk = np.indices(shape).reshape(3, -1)
    xyz = grid[:3, :3] @ ijk + grid[:3, 3:]

    def f(p: np.ndarray) -> np.ndarray:
        return (p[0] > centre[0]).astype(np.uint8) + 2 * (p[1] > centre[1] + 5)

    nib.save(nib.Nifti1Image(f(xyz).reshape(shape).astype(np.uint8), grid), tmp_path / "w.nii.gz")
    pred = load_prediction(
        tmp_path / "w.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    got = pred.channels_first()
    vox = np.indices(image.shape).reshape(3, -1)
    world = image.affine[:3, :3] @ vox + image.affine[:3, 3:]
    want = f(world).reshape(image.shape)
    near_edge = (np.abs(world[0] - centre[0]) < 2.3) | (np.abs(world[1] - centre[1] - 5) < 2.3)
    far = ~near_edge.reshape(image.shape)
    assert far.mean() > 0.5
    assert np.array_equal(got[far], want[far])
    assert set(np.unique(got)) == {0, 1, 2, 3}


def test_atlas_on_template_class_volumes(tmp_path: Path, demo_dir: Path) -> None:
    """The issue's case in small: an atlas cropped to its own box and origin, and a coarser copy.

    Read by shape they would be stretched over the template; in world space each class keeps
    its volume in mm^3 (exactly for the aligned crop, within partial-volume error for 3 mm).
    """
    labels, aff = _tissue_labels(demo_dir)
    image = load_image(demo_dir / "t1.nii.gz")
    vox_mm3 = abs(np.linalg.det(aff[:3, :3]))
    # (a) a sub-box with its own origin (the template's spacing): like an atlas's own grid
    box = labels[10:87, 12:100, 8:85]
    crop_aff = aff.copy()
    crop_aff[:3, 3] = (aff @ [10, 12, 8, 1])[:3]
    nib.save(nib.Nifti1Image(box, crop_aff), tmp_path / "atlas.nii.gz")
    pred = load_prediction(
        tmp_path / "atlas.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    got = pred.channels_first()
    assert np.array_equal(got[10:87, 12:100, 8:85], box)
    for c in (1, 2):
        assert np.count_nonzero(got == c) == np.count_nonzero(box == c)
    stretched = load_prediction(tmp_path / "atlas.nii.gz", image.shape, resample=True)
    assert stretched.resampling is not None and stretched.resampling.geometry == "shape"
    grow = np.count_nonzero(stretched.channels_first() == 2) / np.count_nonzero(box == 2)
    assert grow > 1.2  # what stretching did: every class grows with the box-to-image ratio

    # (b) 3 mm copy with another origin: class volumes within partial-volume error
    coarse_aff = _other_grid(aff, (1.5, 1.5, 1.5), (1.3, -0.7, 2.2))
    coarse = resample_from_to(nib.Nifti1Image(labels, aff), ((66, 78, 63), coarse_aff), order=0)
    nib.save(coarse, tmp_path / "coarse.nii.gz")
    pred = load_prediction(
        tmp_path / "coarse.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    got = pred.channels_first()
    c_mm3 = abs(np.linalg.det(coarse_aff[:3, :3]))
    cdata = np.asarray(coarse.dataobj)
    for c in (1, 2):
        before = np.count_nonzero(cdata == c) * c_mm3
        after = np.count_nonzero(got == c) * vox_mm3
        assert after == pytest.approx(before, rel=0.05), (c, before, after)


def test_without_geometry_scales_by_shape_and_says_so(tmp_path: Path, demo_dir: Path) -> None:
    labels, _aff = _tissue_labels(demo_dir)
    np.save(tmp_path / "half.npy", np.ascontiguousarray(labels[::2, ::2, ::2]))
    image = load_image(demo_dir / "t1.nii.gz")
    pred = load_prediction(
        tmp_path / "half.npy", image.shape, image_affine=image.affine, resample=True
    )
    rec = pred.resampling
    assert rec is not None and rec.geometry == "shape"
    assert "the prediction file (npy) carries no geometry" in rec.describe()
    # a NIfTI whose header has neither sform nor qform has no geometry either
    img = nib.Nifti1Image(np.ascontiguousarray(labels[::2, ::2, ::2]), np.eye(4) * 4)
    img.set_sform(None, code=0)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "nogeo.nii")
    pred = load_prediction(
        tmp_path / "nogeo.nii", image.shape, image_affine=image.affine, resample=True
    )
    assert pred.resampling is not None and pred.resampling.geometry == "shape"
    assert "neither sform nor qform" in pred.resampling.describe()


def test_grids_that_do_not_overlap_are_refused(tmp_path: Path, demo_dir: Path) -> None:
    labels, aff = _tissue_labels(demo_dir)
    far = aff.copy()
    far[:3, 3] += 1000.0
    nib.save(
        nib.Nifti1Image(labels[::2, ::2, ::2], far @ np.diag([2, 2, 2, 1.0])),
        tmp_path / "far.nii.gz",
    )
    image = load_image(demo_dir / "t1.nii.gz")
    with pytest.raises(
        SegviewerError, match=r"far\.nii\.gz: the prediction's grid does not overlap"
    ):
        load_prediction(
            tmp_path / "far.nii.gz", image.shape, image_affine=image.affine, resample=True
        )


def test_same_shape_shifted_grid_is_moved_only_with_resample(
    tmp_path: Path, demo_dir: Path
) -> None:
    labels, aff = _tissue_labels(demo_dir)
    moved = aff.copy()
    moved[:3, 3] += aff[:3, :3] @ [3, 0, 0]  # same shape, origin 3 voxels further
    nib.save(nib.Nifti1Image(labels, moved), tmp_path / "moved.nii.gz")
    image = load_image(demo_dir / "t1.nii.gz")
    plain = load_prediction(tmp_path / "moved.nii.gz", image.shape, image_affine=image.affine)
    assert plain.resampling is None and any("origins" in n for n in plain.notes)
    pred = load_prediction(
        tmp_path / "moved.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    got = pred.channels_first()
    assert np.array_equal(got[3:], labels[:-3]) and not got[:3].any()
    ref = load_reference(
        tmp_path / "moved.nii.gz", image.shape, image_affine=image.affine, resample=True
    )
    assert np.array_equal(ref, got)


def test_window_choices_for_a_slice_stacked_prediction(tmp_path: Path, demo_dir: Path) -> None:
    from segviewer.io.predictions import prediction_choices

    probs = np.asarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj, dtype=np.float32)
    np.save(tmp_path / "zcxy.npy", np.ascontiguousarray(probs.transpose(2, 3, 0, 1)))
    image = load_image(demo_dir / "t1.nii.gz")
    ch = prediction_choices(tmp_path / "zcxy.npy", image.shape)
    assert ch.layout == "ZCXY" and ch.kind == "probabilities" and not ch.error
    assert (
        ch.layout_words == "image axis 2 (94), classes (3), image axis 0 (98), image axis 1 (116)"
    )
    assert ch.layouts == (("ZCXY", ch.layout_words),)
    assert not ch.resample_possible and not ch.geometry
    # the user says label map: nothing fits that way, the fitting layout is named, no resampling
    wrong = prediction_choices(tmp_path / "zcxy.npy", image.shape, kind="labels")
    assert wrong.layout is None and "--layout ZCXY" in wrong.error
    assert not wrong.resample_possible
    # a NIfTI on a coarser grid: nothing fits exactly, resampling offered, in world space
    half = nib.Nifti1Image(probs[::2, ::2, ::2], nib.load(demo_dir / "t1.nii.gz").affine)
    nib.save(half, tmp_path / "half.nii.gz")
    ch = prediction_choices(tmp_path / "half.nii.gz", image.shape)
    assert ch.layout is None and ch.resample_possible and ch.geometry and ch.layouts == ()


def test_large_result_lives_in_a_temporary_memory_map(
    tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segviewer.io.predictions as predictions

    src = nib.load(demo_dir / "tissue_prob.nii.gz")
    probs = np.asarray(src.dataobj, dtype=np.float32)
    moved = src.affine.copy()
    moved[:3, 3] += [2.0, 0.0, 0.0]
    nib.save(nib.Nifti1Image(probs, moved), tmp_path / "moved.nii")
    image = load_image(demo_dir / "t1.nii.gz")
    in_memory = load_prediction(
        tmp_path / "moved.nii", image.shape, image_affine=image.affine, resample=True
    )
    monkeypatch.setattr(predictions, "_RESAMPLE_IN_MEMORY_BYTES", 1024)
    mapped = load_prediction(
        tmp_path / "moved.nii", image.shape, image_affine=image.affine, resample=True
    )
    assert isinstance(mapped.data, np.memmap) and not isinstance(in_memory.data, np.memmap)
    assert np.array_equal(mapped.channels_first(), in_memory.channels_first())
    # shifted by one voxel along axis 0: voxel i of the image is voxel i - 1 of the prediction
    np.testing.assert_allclose(in_memory.channels_first()[:, 1:], np.moveaxis(probs, -1, 0)[:, :-1])
