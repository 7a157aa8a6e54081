"""Export planning (core.export_plan) and the one export path (io.export.run_export)."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from segviewer.core.classes import ClassInfo, ClassTable
from segviewer.core.export_plan import parse_slices, plan_export, safe_component
from segviewer.core.layout import detect_layout
from segviewer.core.orientation import display_axes, take_slice
from segviewer.core.overlay import window_to_uint8
from segviewer.core.progress import run_to_end
from segviewer.core.types import MaskSettings, Prediction, PredictionKind, SegviewerError, Volume
from segviewer.io.classtables import load_class_table
from segviewer.io.export import ExportRequest, run_export


def _table(*names: str) -> ClassTable:
    colours = [(0, 0, 0), (230, 30, 30), (30, 200, 30), (30, 30, 230), (200, 200, 0), (0, 200, 200)]
    return ClassTable(tuple(ClassInfo(i, n, colours[i]) for i, n in enumerate(names)))


def _files_on_disk(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


# ---------------------------------------------------------------------------------------
# planning


def test_plan_names_are_safe_and_unique() -> None:
    table = _table("background", "../../evil", "CON", "a/b", "a_b")
    plan = plan_export(
        table, classes=None, what={"binary", "labels"}, formats={"nifti", "png"}, n_slices=3
    )
    paths = plan.paths()
    assert len(paths) == len(set(p.casefold() for p in paths))
    for p in paths:
        parts = p.split("/")
        assert ".." not in parts and not p.startswith("/") and "\\" not in p
        assert all(part.split(".")[0].upper() not in {"CON", "NUL", "PRN"} for part in parts)
    masks = [f for f in plan.files if f.what == "binary" and f.format == "nifti"]
    assert [f.class_index for f in masks] == [1, 2, 3, 4]
    assert masks[0].class_name == "../../evil"
    pngs = [f for f in plan.files if f.what == "binary" and f.format == "png"]
    assert len(pngs) == 4 * 3
    assert pngs[0].path.endswith("_axial_slice0000.png")
    assert "labels.nii.gz" in paths and "labels/labels_axial_slice0002.png" in paths


def test_plan_choices_and_errors() -> None:
    table = _table("background", "tumour", "oedema")
    plan = plan_export(
        table,
        classes=[2],
        what={"probabilities", "overlays"},
        formats={"png", "npy"},
        n_slices=120,
        view="coronal",
        slices=[5, 119],
    )
    assert plan.paths() == [
        "probabilities.npy",
        "overlays/overlay_coronal_slice0005.png",
        "overlays/overlay_coronal_slice0119.png",
    ]
    assert any("not written as PNG" in w for w in plan.warnings)
    with pytest.raises(SegviewerError, match="class 3 does not exist"):
        plan_export(table, classes=[3], what={"binary"}, formats={"nifti"}, n_slices=4)
    with pytest.raises(SegviewerError, match="slice 4 is outside 0..3"):
        plan_export(table, classes=None, what={"overlays"}, formats=set(), n_slices=4, slices=[4])
    with pytest.raises(SegviewerError, match="unknown export content"):
        plan_export(table, classes=None, what={"meshes"}, formats={"nifti"}, n_slices=4)
    with pytest.raises(SegviewerError, match="unknown format"):
        plan_export(table, classes=None, what={"labels"}, formats={"jpeg"}, n_slices=4)
    with pytest.raises(SegviewerError, match="no file"):
        plan_export(table, classes=None, what={"probabilities"}, formats={"png"}, n_slices=4)


def test_safe_component() -> None:
    assert safe_component("../../x", 3) == "x"
    assert safe_component("..", 2) == "class2"
    assert safe_component("CON", 4) == "CON_4"
    assert safe_component("Hippocampus (left)", 1) == "Hippocampus_left"
    assert safe_component("Ödem", 1) == "Ödem"


def test_parse_slices() -> None:
    assert parse_slices("10:13", 94) == (10, 11, 12)
    assert parse_slices("5", 94) == (5,)
    assert parse_slices("0,4,8", 94) == (0, 4, 8)
    assert parse_slices("::40", 94) == (0, 40, 80)
    assert parse_slices("-1", 94) == (93,)
    assert parse_slices("93", 94) == (93,)  # the last slice, by its own number
    assert parse_slices("90:", 94) == (90, 91, 92, 93)
    assert parse_slices("all", 3) == (0, 1, 2)
    with pytest.raises(SegviewerError, match="cannot read the slice selection"):
        parse_slices("a:b", 94)
    with pytest.raises(SegviewerError, match="outside 0..93"):
        parse_slices("94", 94)
    with pytest.raises(SegviewerError, match="selects no slice"):
        parse_slices("200:300", 94)


# ---------------------------------------------------------------------------------------
# run_export on real data


@pytest.fixture(scope="module")
def demo(demo_dir: Path) -> tuple[Volume, Prediction, ClassTable, np.ndarray]:
    img = nib.load(demo_dir / "t1.nii.gz")
    vol = Volume(np.asanyarray(img.dataobj), img.affine, str(demo_dir / "t1.nii.gz"), "nifti")
    probs = np.asanyarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj).astype(np.float32)
    layout = detect_layout(probs.shape, vol.shape, has_class_axis=True)
    pred = Prediction(probs, PredictionKind.PROBABILITIES, layout, 3, "tissue_prob.nii.gz")
    table = load_class_table(demo_dir / "classes.json")
    return vol, pred, table, probs


def _anatomical_logits(path: Path, nan_voxels: int = 0) -> tuple[Volume, Prediction, np.ndarray]:
    img = nib.load(path)
    vol = Volume(np.asanyarray(img.dataobj), img.affine, str(path), "nifti")
    data = np.asarray(vol.data, dtype=np.float32)
    # Logits that depend on intensity, so classes form real anatomical regions.
    q = np.percentile(data, [40, 70, 90])
    centres = np.array([0.0, *q], np.float32)
    logits = -np.abs(data[..., None] - centres) / (data.std() + 1e-6)
    logits = np.ascontiguousarray(logits[None], dtype=np.float32)  # (1, a0, a1, a2, 4): NDHWC
    if nan_voxels:
        flat = logits.reshape(-1, 4)
        rng = np.random.default_rng(3)
        idx = rng.choice(flat.shape[0], nan_voxels, replace=False)
        flat[idx, rng.integers(0, 4, nan_voxels)] = np.nan
    layout = detect_layout(logits.shape, vol.shape, explicit="NDHWC")
    pred = Prediction(logits, PredictionKind.LOGITS, layout, 4, "<generated logits>")
    return vol, pred, logits[0]


def test_demo_full_export(
    tmp_path: Path, demo: tuple[Volume, Prediction, ClassTable, np.ndarray]
) -> None:
    vol, pred, table, probs = demo
    out = tmp_path / "out"
    request = ExportRequest(
        out_dir=out,
        what=frozenset({"labels", "binary", "probabilities", "overlays"}),
        formats=frozenset({"nifti", "png", "npy"}),
        slices=(30, 47),
        opacity=0.6,
        window=(80.0, 160.0),
        scale=1,  # one picture pixel per voxel, so pixels can be compared below
    )
    progress: list[float] = []
    result = run_to_end(
        run_export(vol, pred, table, request), lambda p: progress.append(p.fraction)
    )
    assert progress[-1] == 1.0 and progress == sorted(progress)
    expected = np.argmax(probs, axis=-1).astype(np.uint8)

    lab_img = nib.load(out / "labels.nii.gz")
    assert np.array_equal(np.asanyarray(lab_img.dataobj), expected)
    assert np.allclose(lab_img.affine, vol.affine)
    assert np.array_equal(np.load(out / "labels.npy", allow_pickle=False), expected)
    for k, name in ((1, "01_grey_matter"), (2, "02_white_matter")):
        m = nib.load(out / "masks" / f"{name}.nii.gz")
        assert m.shape == vol.shape and np.allclose(m.affine, vol.affine)
        assert np.array_equal(np.asanyarray(m.dataobj), (expected == k).astype(np.uint8))
        assert np.array_equal(np.load(out / "masks" / f"{name}.npy"), expected == k)
    p_nii = np.asanyarray(nib.load(out / "probabilities.nii.gz").dataobj)
    assert p_nii.shape == (*vol.shape, 3) and p_nii.dtype == np.float32
    # The stored probabilities are 8-bit quantised (sums 0.996..1.004); exports renormalise.
    normalised = probs / probs.sum(axis=-1, keepdims=True)
    assert np.allclose(p_nii, normalised, atol=1e-6)
    p_npy = np.load(out / "probabilities.npy")
    assert p_npy.shape == (3, *vol.shape) and np.allclose(
        np.moveaxis(p_npy, 0, -1), normalised, atol=1e-6
    )

    axes = display_axes(vol.affine, "axial")
    for s in (30, 47):
        want = take_slice(expected, axes, s)
        lab_png = _png(out / "labels" / f"labels_axial_slice{s:04d}.png")
        assert np.array_equal(lab_png, want)
        for k, name in ((1, "01_grey_matter"), (2, "02_white_matter")):
            b = _png(out / "masks" / name / f"{name}_axial_slice{s:04d}.png")
            assert set(np.unique(b).tolist()) == {0, 255}
            assert np.array_equal(b == 255, want == k)
        # Overlay pixels of class k are grey blended with class k's colour at opacity 0.6.
        ov = _png(out / "overlays" / f"overlay_axial_slice{s:04d}.png")
        rows, cols = want.shape
        assert ov.shape[0] >= rows and ov.shape[1] > cols  # legend panel to the right
        # the slice lies where the manifest says (caption, letters, scale bar around it)
        box = _overlay_box(out, s)
        assert box[2:] == [rows, cols]
        ov = ov[box[0] : box[0] + rows, box[1] : box[1] + cols]
        grey = window_to_uint8(np.asarray(take_slice(vol.data, axes, s)), 80.0, 160.0)
        a = round(255 * 0.6) / 255
        for k in (1, 2):
            rr, cc = np.nonzero(want == k)
            blend = np.round(grey[rr, cc, None] * (1 - a) + np.array(table[k].color) * a)
            assert np.abs(ov[rr, cc].astype(int) - blend).max() <= 1
        rr, cc = np.nonzero(want == 0)
        assert np.array_equal(ov[rr, cc, 0], grey[rr, cc])

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"] for f in manifest["files"]}
    assert listed | {"manifest.json"} == _files_on_disk(out)
    assert {Path(p).relative_to(out).as_posix() for p in result.files} == listed
    for f in manifest["files"]:
        assert (out / f["path"]).is_file()
    entry = next(f for f in manifest["files"] if f["path"] == "probabilities.npy")
    assert entry["shape"] == [3, *vol.shape] and entry["dtype"] == "float32"
    assert manifest["schema_version"] == 1 and manifest["created"].endswith("Z")
    assert manifest["sources"]["image"]["shape"] == list(vol.shape)
    assert np.allclose(manifest["sources"]["image"]["affine"], vol.affine)
    assert manifest["sources"]["prediction"]["kind"] == "probabilities"
    assert (
        manifest["settings"]["window"] == [80.0, 160.0] and manifest["settings"]["opacity"] == 0.6
    )
    counts = np.bincount(expected.ravel(), minlength=3)
    for c in manifest["classes"]:
        assert c["voxels"] == counts[c["index"]]
        assert c["volume_mm3"] == pytest.approx(counts[c["index"]] * 8.0)  # 2 mm isotropic
    assert manifest["classes"][1]["color"] == "#e6a23c"
    assert manifest["n_invalid"] == 0 and manifest["provenance"] is None
    assert list(result.counts) == counts.tolist()


def test_nan_logits_are_invalid_not_background(tmp_path: Path, nibabel_anatomical: Path) -> None:
    vol, pred, logits = _anatomical_logits(nibabel_anatomical, nan_voxels=17)
    out = tmp_path / "nan"
    result = run_to_end(
        run_export(vol, pred, ClassTable.default(4), ExportRequest(out, what=frozenset({"labels"})))
    )
    labels = np.asanyarray(nib.load(out / "labels.nii.gz").dataobj)
    bad = np.isnan(logits).any(axis=-1)
    assert int(bad.sum()) == 17 == result.n_invalid
    assert (labels[bad] == 255).all()
    with np.errstate(invalid="ignore"):
        expected = np.argmax(np.where(np.isnan(logits), -np.inf, logits), axis=-1)
    assert np.array_equal(labels[~bad], expected[~bad])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_invalid"] == 17
    assert manifest["label_values"]["invalid"] == 255
    assert any("NaN" in w for w in result.warnings)


def test_existing_output_refused_before_writing(tmp_path: Path, nibabel_anatomical: Path) -> None:
    vol, pred, _ = _anatomical_logits(nibabel_anatomical)
    out = tmp_path / "o"
    req = ExportRequest(out, what=frozenset({"labels", "binary"}), formats=frozenset({"nifti"}))
    run_to_end(run_export(vol, pred, ClassTable.default(4), req))
    before = {p: (out / p).read_bytes() for p in _files_on_disk(out)}
    (out / "labels.nii.gz").unlink()  # only *some* outputs exist: still refused, nothing written
    with pytest.raises(SegviewerError, match="already holds .*use --force"):
        run_to_end(run_export(vol, pred, ClassTable.default(4), req))
    assert not (out / "labels.nii.gz").exists()
    assert {p: (out / p).read_bytes() for p in _files_on_disk(out)} == {
        p: b for p, b in before.items() if p != "labels.nii.gz"
    }
    forced = ExportRequest(out, what=req.what, formats=req.formats, force=True)
    run_to_end(run_export(vol, pred, ClassTable.default(4), forced))
    assert _files_on_disk(out) == set(before)


def test_evil_class_names_and_non_ascii_folder(tmp_path: Path, nibabel_anatomical: Path) -> None:
    vol, pred, _ = _anatomical_logits(nibabel_anatomical)
    table = _table("background", "../../evil", "CON", "/etc/passwd")
    out = tmp_path / "résultats 脳 MRT"
    run_to_end(
        run_export(
            vol,
            pred,
            table,
            ExportRequest(
                out, what=frozenset({"binary"}), formats=frozenset({"nifti", "png"}), slices=(3,)
            ),
        )
    )
    outside = {p.name for p in tmp_path.iterdir()}
    assert outside == {out.name}
    files = _files_on_disk(out)
    assert len([f for f in files if f.endswith(".nii.gz")]) == 3
    for f in files:
        assert (out / f).resolve().is_relative_to(out.resolve())
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert {f["class_name"] for f in manifest["files"]} == {"../../evil", "CON", "/etc/passwd"}


def test_shape_mismatch_names_both_shapes(tmp_path: Path, nibabel_anatomical: Path) -> None:
    vol, _, _ = _anatomical_logits(nibabel_anatomical)
    other = np.zeros((1, 30, 41, 25, 2), np.float32)
    layout = detect_layout(other.shape, (30, 41, 25), explicit="NDHWC")
    pred = Prediction(other, PredictionKind.LOGITS, layout, 2)
    with pytest.raises(SegviewerError, match=r"\(30, 41, 25\).*\(33, 41, 25\)"):
        run_to_end(run_export(vol, pred, ClassTable.default(2), ExportRequest(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


def test_cancel_leaves_no_files(
    tmp_path: Path, demo: tuple[Volume, Prediction, ClassTable, np.ndarray]
) -> None:
    vol, pred, table, _ = demo
    out = tmp_path / "cancel"
    gen = run_export(vol, pred, table, ExportRequest(out, formats=frozenset({"nifti", "png"})))
    seen: list[str] = []
    for p in gen:
        seen.append(p.message)
        if sum(m.startswith("writing") for m in seen) == 5:  # a few files already written
            break
    assert out.exists() and _files_on_disk(out)
    gen.close()
    assert not out.exists()


def test_cancelled_forced_export_keeps_previous_export(
    tmp_path: Path, demo: tuple[Volume, Prediction, ClassTable, np.ndarray]
) -> None:
    """A --force export cancelled half-way leaves the previous export as it was (issue 13.6)."""
    vol, pred, table, _ = demo
    out = tmp_path / "again"
    run_to_end(run_export(vol, pred, table, ExportRequest(out)))
    before = _files_on_disk(out)
    entries = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    contents = {p: (out / p).read_bytes() for p in before}
    gen = run_export(vol, pred, table, ExportRequest(out, force=True))
    seen = []
    for p in gen:
        seen.append(p.message)
        if p.message.startswith("writing masks/"):  # labels.nii.gz already written (staged)
            break
    gen.close()
    assert any(m.startswith("writing labels") for m in seen)
    assert {p.relative_to(out).as_posix() for p in out.rglob("*")} == entries  # no staging left
    assert {p: (out / p).read_bytes() for p in before} == contents


def test_disk_full_rolls_back(
    tmp_path: Path, nibabel_anatomical: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol, pred, _ = _anatomical_logits(nibabel_anatomical)
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    import segviewer.io.writers as writers

    real_save = writers.np.save
    calls = {"n": 0}

    def failing_save(fh: Any, arr: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(fh, arr, **kw)

    monkeypatch.setattr(writers.np, "save", failing_save)
    req = ExportRequest(out, what=frozenset({"labels", "binary"}), formats=frozenset({"npy"}))
    with pytest.raises(SegviewerError, match="the disk is full"):
        run_to_end(run_export(vol, pred, ClassTable.default(4), req))
    assert _files_on_disk(out) == {"keep.txt"}
    assert calls["n"] == 2


def test_multilabel_masks_overlap(tmp_path: Path, nibabel_anatomical: Path) -> None:
    img = nib.load(nibabel_anatomical)
    vol = Volume(np.asanyarray(img.dataobj), img.affine, "anatomical.nii", "nifti")
    data = np.asarray(vol.data, np.float32)
    p1 = (data > np.percentile(data, 50)).astype(np.float32) * 0.9
    p2 = (data > np.percentile(data, 80)).astype(np.float32) * 0.8
    raw = np.stack([p1, p2])  # CDHW, probabilities
    layout = detect_layout(raw.shape, vol.shape, explicit="CDHW")
    pred = Prediction(raw, PredictionKind.MULTILABEL, layout, 3, values_are_probabilities=True)
    out = tmp_path / "ml"
    run_to_end(
        run_export(
            vol,
            pred,
            ClassTable.default(3),
            ExportRequest(out, what=frozenset({"binary"}), settings=MaskSettings(threshold=0.5)),
        )
    )
    m1 = np.asanyarray(nib.load(out / "masks" / "01_class_1.nii.gz").dataobj)
    m2 = np.asanyarray(nib.load(out / "masks" / "02_class_2.nii.gz").dataobj)
    assert np.array_equal(m1, p1 >= 0.5) and np.array_equal(m2, p2 >= 0.5)
    assert np.count_nonzero(m1 & m2) == np.count_nonzero(m2) > 0  # overlapping classes


def test_label_map_has_no_probabilities(tmp_path: Path, nibabel_anatomical: Path) -> None:
    img = nib.load(nibabel_anatomical)
    vol = Volume(np.asanyarray(img.dataobj), img.affine, "anatomical.nii", "nifti")
    lab = (np.asarray(vol.data) > np.percentile(vol.data, 60)).astype(np.uint8)
    layout = detect_layout(lab.shape, vol.shape, has_class_axis=False)
    pred = Prediction(lab, PredictionKind.LABELS, layout, 2)
    out = tmp_path / "lm"
    result = run_to_end(
        run_export(
            vol,
            pred,
            ClassTable.default(2),
            ExportRequest(out, what=frozenset({"labels", "probabilities"})),
        )
    )
    assert _files_on_disk(out) == {"labels.nii.gz", "manifest.json"}
    assert any("no probabilities" in w for w in result.warnings)
    assert np.array_equal(np.asanyarray(nib.load(out / "labels.nii.gz").dataobj), lab)


# ---------------------------------------------------------------------------------------
# comparison with a reference segmentation


def test_plan_errors_needs_a_reference() -> None:
    table = _table("background", "a")
    with pytest.raises(SegviewerError, match="reference"):
        plan_export(table, classes=None, what={"errors"}, formats={"nifti"}, n_slices=4)
    plan = plan_export(
        table,
        classes=None,
        what={"errors"},
        formats={"nifti", "npy", "png"},
        n_slices=3,
        reference=True,
    )
    assert plan.paths() == [
        "errors.nii.gz",
        "errors/errors_axial_slice0000.png",
        "errors/errors_axial_slice0001.png",
        "errors/errors_axial_slice0002.png",
        "errors.npy",
    ]


def test_load_reference_label_map_and_probabilities(
    tmp_path: Path, demo_dir: Path, demo: tuple[Volume, Prediction, ClassTable, np.ndarray]
) -> None:
    from segviewer.io.predictions import load_reference

    vol, _, _, probs = demo
    expected = np.argmax(probs, axis=-1).astype(np.uint8)
    # probabilities (a0, a1, a2, C) -> their argmax
    ref = load_reference(demo_dir / "tissue_prob.nii.gz", vol.shape)
    assert ref.dtype == np.uint8 and ref.shape == vol.shape
    np.testing.assert_array_equal(ref, expected)
    # a label map stored as int16 NIfTI stays as it is, converted to the label dtype
    path = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(expected.astype(np.int16), vol.affine), path)
    ref2 = load_reference(path, vol.shape, n_classes_hint=3)
    assert ref2.dtype == np.uint8
    np.testing.assert_array_equal(ref2, expected)
    notes: list[str] = []
    load_reference(path, vol.shape, image_affine=vol.affine, notes=notes)
    assert not any(n.startswith("Warning") for n in notes)  # same affine: no warning
    mirrored = vol.affine.copy()
    mirrored[1] *= -1
    nib.save(nib.Nifti1Image(expected, mirrored), tmp_path / "mirrored.nii.gz")
    load_reference(tmp_path / "mirrored.nii.gz", vol.shape, image_affine=vol.affine, notes=notes)
    assert any(n.startswith("Warning: the reference's voxel axes point RPS") for n in notes)
    bad = tmp_path / "small.npy"
    np.save(bad, np.zeros((10, 11, 12), dtype=np.uint8))
    with pytest.raises(SegviewerError, match=r"reference.*\(10, 11, 12\).*\(98, 116, 94\)"):
        load_reference(bad, vol.shape)


def _shifted_reference(probs: np.ndarray) -> np.ndarray:
    """The demo's argmax shifted by one voxel along axis 0: a plausible 'other rater'."""
    return np.roll(np.argmax(probs, axis=-1).astype(np.uint8), 1, axis=0)


def test_export_with_reference_writes_comparison_and_error_maps(
    tmp_path: Path, demo: tuple[Volume, Prediction, ClassTable, np.ndarray]
) -> None:
    vol, pred, table, probs = demo
    labels = np.argmax(probs, axis=-1).astype(np.uint8)
    reference = _shifted_reference(probs)
    out = tmp_path / "cmp"
    request = ExportRequest(
        out,
        what=frozenset({"labels", "errors"}),
        formats=frozenset({"nifti", "npy", "png"}),
        slices=(40, 47),
    )
    result = run_to_end(
        run_export(vol, pred, table, request, reference=reference, reference_source="rater2.nii")
    )
    disagree = labels != reference
    err_img: Any = nib.load(out / "errors.nii.gz")
    assert np.allclose(err_img.affine, vol.affine) and err_img.shape == vol.shape
    err = np.asanyarray(err_img.dataobj)
    assert set(np.unique(err).tolist()) == {0, 2}
    np.testing.assert_array_equal(err == 2, disagree)
    np.testing.assert_array_equal(np.load(out / "errors.npy", allow_pickle=False), err)
    axes = display_axes(vol.affine, "axial")
    for s in (40, 47):
        png = _png(out / "errors" / f"errors_axial_slice{s:04d}.png")
        assert set(np.unique(png).tolist()) == {0, 255}
        np.testing.assert_array_equal(png == 255, take_slice(disagree, axes, s))

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    cmp = manifest["comparison"]
    assert cmp["reference"] == {"path": "rater2.nii", "shape": list(vol.shape), "dtype": "uint8"}
    assert cmp["accuracy"] == pytest.approx(1 - disagree.mean())
    assert cmp["n_voxels"] == labels.size and cmp["n_ignored"] == 0
    for c in cmp["classes"]:
        k = c["index"]
        a, b = labels == k, reference == k
        tp, fp, fn = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
        assert (c["tp"], c["fp"], c["fn"]) == (tp, fp, fn)
        assert c["dice"] == pytest.approx(2 * tp / (a.sum() + b.sum()))
        assert c["jaccard"] == pytest.approx(tp / (tp + fp + fn))
        assert c["sensitivity"] == pytest.approx(tp / b.sum())
        assert c["precision"] == pytest.approx(tp / a.sum())
        assert c["volume_pred_mm3"] == pytest.approx(a.sum() * 8.0)
        assert c["volume_ref_mm3"] == pytest.approx(b.sum() * 8.0)
        assert c["name"] == table[k].name
    assert 0.5 < cmp["classes"][1]["dice"] < 0.95
    entry = next(f for f in manifest["files"] if f["path"] == "errors.nii.gz")
    assert entry["what"] == "errors" and entry["voxels"] == int(disagree.sum())
    assert result.comparison is not None
    assert result.comparison.per_class[2].tp == cmp["classes"][2]["tp"]


def test_export_without_reference_has_null_comparison_and_refuses_errors(
    tmp_path: Path, demo: tuple[Volume, Prediction, ClassTable, np.ndarray]
) -> None:
    vol, pred, table, probs = demo
    out = tmp_path / "plain"
    run_to_end(run_export(vol, pred, table, ExportRequest(out, what=frozenset({"labels"}))))
    assert json.loads((out / "manifest.json").read_text())["comparison"] is None
    with pytest.raises(SegviewerError, match="reference"):
        run_to_end(
            run_export(vol, pred, table, ExportRequest(tmp_path / "e", what=frozenset({"errors"})))
        )
    assert not (tmp_path / "e").exists()
    with pytest.raises(SegviewerError, match=r"\(98, 116, 93\).*\(98, 116, 94\)"):
        run_to_end(
            run_export(
                vol,
                pred,
                table,
                ExportRequest(tmp_path / "s", what=frozenset({"labels"})),
                reference=np.zeros((98, 116, 93), dtype=np.uint8),
            )
        )
    assert not (tmp_path / "s").exists()


def _overlay_box(out: Path, s: int) -> list[int]:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    name = f"overlays/overlay_axial_slice{s:04d}.png"
    return next(f["image_box"] for f in manifest["files"] if f["path"] == name)


def test_overlay_pictures_with_and_without_annotations(
    tmp_path: Path, demo: tuple[Volume, Prediction, ClassTable, np.ndarray]
) -> None:
    """Annotated (the default): caption, letters and scale bar around the slice, which the
    manifest locates; without: the slice at the picture's top-left, as the overlay alone."""
    vol, pred, table, _ = demo
    shapes = {}
    for annotate in (True, False):
        out = tmp_path / f"a{int(annotate)}"
        request = ExportRequest(
            out_dir=out,
            what=frozenset({"overlays"}),
            formats=frozenset({"png"}),
            slices=(47,),
            window=(80.0, 160.0),
            scale=2,
            annotate=annotate,
            legend=False,
        )
        run_to_end(run_export(vol, pred, table, request))
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        entry = manifest["files"][0]
        assert manifest["settings"]["annotate"] is annotate
        pic = _png(out / entry["path"])
        shapes[annotate] = pic
        if annotate:
            top, left, h, w = entry["image_box"]
            assert top > 0 and left > 0 and pic.shape[0] > top + h
        else:
            assert entry["image_box"] == [0, 0, *pic.shape[:2]]
    a, b = shapes[True], shapes[False]
    assert a.shape[0] > b.shape[0] and a.shape[1] > b.shape[1]
    # the slice itself is the same picture in both
    manifest = json.loads((tmp_path / "a1" / "manifest.json").read_text(encoding="utf-8"))
    t, lft, h, w = manifest["files"][0]["image_box"]
    assert np.array_equal(a[t : t + h, lft : lft + w], b)
