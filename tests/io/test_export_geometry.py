"""Exports keep the source's geometry: stored shape (trailing singleton axes), affine,
sform/qform codes and units; the manifest records the resampling and the orientation."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from segviewer.core.classes import ClassTable
from segviewer.core.progress import run_to_end
from segviewer.io.export import ExportRequest, run_export
from segviewer.io.images import load_image
from segviewer.io.predictions import load_prediction


def _source(
    tmp: Path, anatomical: Path, shape_tail: tuple[int, ...], codes: tuple[int, int]
) -> Path:
    img = nib.load(anatomical)
    data = np.asarray(img.dataobj)
    out = nib.Nifti1Image(data.reshape(data.shape + shape_tail), img.affine)
    out.set_sform(img.affine, code=codes[0])
    out.set_qform(img.affine, code=codes[1])
    out.header.set_xyzt_units(xyz="mm", t="msec")
    path = tmp / f"src{len(shape_tail)}_{codes[0]}{codes[1]}.nii.gz"
    nib.save(out, path)
    return path


@pytest.mark.parametrize(("tail", "codes"), [((1,), (0, 1)), ((), (4, 1)), ((1, 1), (2, 0))])
def test_exported_masks_keep_the_source_shape_and_header(
    tmp_path: Path, nibabel_anatomical: Path, tail: tuple[int, ...], codes: tuple[int, int]
) -> None:
    src = _source(tmp_path, nibabel_anatomical, tail, codes)
    vol = load_image(src)
    assert vol.shape == (33, 41, 25)
    data = np.asarray(vol.data, dtype=np.float32)
    lab = np.digitize(data, np.percentile(data, [50, 80])).astype(np.uint8)
    np.save(tmp_path / "lab.npy", lab)
    pred = load_prediction(tmp_path / "lab.npy", vol.shape)
    out = tmp_path / "out"
    req = ExportRequest(out, what=frozenset({"labels", "binary"}), formats=frozenset({"nifti"}))
    run_to_end(run_export(vol, pred, ClassTable.default(3), req))
    source = nib.load(src)
    assert len(list((out / "masks").glob("*.nii.gz"))) == 2
    for path in [out / "labels.nii.gz", *sorted((out / "masks").glob("*.nii.gz"))]:
        got = nib.load(path)
        assert got.shape == source.shape, (path.name, got.shape, source.shape)
        assert int(got.header["sform_code"]) == codes[0]
        assert int(got.header["qform_code"]) == codes[1]
        assert got.header.get_xyzt_units() == source.header.get_xyzt_units()
        np.testing.assert_allclose(got.affine, source.affine, atol=1e-5)
    labels = np.asarray(nib.load(out / "labels.nii.gz").dataobj).reshape(lab.shape)
    assert np.array_equal(labels, lab)


def test_manifest_records_the_resampling(tmp_path: Path, demo_dir: Path) -> None:
    vol = load_image(demo_dir / "t1.nii.gz")
    src = nib.load(demo_dir / "tissue_prob.nii.gz")
    lab = np.asarray(src.dataobj).argmax(axis=-1).astype(np.uint8)[::2, ::2, ::2]
    aff = src.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(lab, aff), tmp_path / "half.nii.gz")
    pred = load_prediction(
        tmp_path / "half.nii.gz", vol.shape, image_affine=vol.affine, resample=True
    )
    out = tmp_path / "out"
    run_to_end(
        run_export(vol, pred, ClassTable.default(3), ExportRequest(out, what=frozenset({"labels"})))
    )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    rec = manifest["sources"]["prediction"]["resampling"]
    assert rec["geometry"] == "world" and rec["method"] == "nearest neighbour"
    assert rec["from_shape"] == [49, 58, 47] and rec["to_shape"] == [98, 116, 94]
    assert rec["from_spacing_mm"] == [4.0, 4.0, 4.0]
    assert "in world space" in rec["description"]
    assert manifest["sources"]["image"]["orientation"] == "RAS"
