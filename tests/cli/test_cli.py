"""The segviewer command: export and info, in-process (main([...])) and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from segviewer.cli import main
from segviewer.core.orientation import display_axes, take_slice
from segviewer.core.overlay import window_to_uint8
from segviewer.io.images import load_image


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, "-m", "segviewer", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def _check_manifest_complete(folder: Path) -> dict[str, Any]:
    m = _manifest(folder)
    listed = {f["path"] for f in m["files"]}
    assert listed | {"manifest.json"} == set(_files(folder))
    return m


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im).copy()


@pytest.fixture(scope="module")
def anatomical_logits(
    nibabel_anatomical: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, np.ndarray]:
    """NDHWC logits (1, 33, 41, 25, 4) from the T1's intensities, with 9 NaN voxels."""
    data = np.asarray(nib.load(nibabel_anatomical).dataobj, dtype=np.float32)
    centres = np.array([0.0, *np.percentile(data, [40, 70, 90])], np.float32)
    logits = np.ascontiguousarray(-np.abs(data[..., None] - centres)[None], dtype=np.float32)
    flat = logits.reshape(-1, 4)
    rng = np.random.default_rng(7)
    flat[rng.choice(flat.shape[0], 9, replace=False), 2] = np.nan
    path = tmp_path_factory.mktemp("pred") / "logits.npy"
    np.save(path, logits)
    return path, logits[0]


@pytest.fixture(scope="module")
def mr_small_logits(
    mr_small: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, np.ndarray]:
    """2-D NHWC logits (1, 64, 64, 3) for pydicom's MR_small.dcm."""
    import pydicom

    px = pydicom.dcmread(mr_small).pixel_array.astype(np.float32)
    lo, hi = np.percentile(px, [50, 85])
    logits = np.stack([-(px - lo) / 100, -np.abs(px - (lo + hi) / 2) / 100, (px - hi) / 100], -1)
    logits = np.ascontiguousarray(logits[None], dtype=np.float32)
    path = tmp_path_factory.mktemp("mr") / "mr_logits.npy"
    np.save(path, logits)
    return path, logits[0]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from segviewer import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"segviewer {__version__}"
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"segviewer {__version__}"


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "segviewer export IMAGE --prediction FILE --out DIR" in out
    assert "segviewer compare IMAGE --prediction FILE --reference FILE" in out
    assert "--screenshot" in out  # the window's options
    # Help must not start Qt (it is printed on machines without a display too).
    code = "import sys\nfrom segviewer.cli import main\nmain(['--help'])\nprint('PySide6' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("False")


def test_demo_export_in_process(
    tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    rc = main(
        [
            "export",
            "--demo",
            "--out",
            str(out),
            "--what",
            "labels,binary,overlays",
            "--format",
            "nifti,png",
            "--slices",
            "40:42",
            "--opacity",
            "0.7",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert (
        captured.out.count("\n") == 1
        and "exported" in captured.out
        and "grey matter" in captured.out
    )
    assert captured.err == ""  # no progress bar when stderr is not a terminal
    probs = np.asanyarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj)
    expected = np.argmax(probs, axis=-1)
    lab = nib.load(out / "labels.nii.gz")
    assert np.array_equal(np.asanyarray(lab.dataobj), expected)
    assert np.allclose(lab.affine, nib.load(demo_dir / "t1.nii.gz").affine)
    m = _check_manifest_complete(out)
    assert m["classes"][2]["name"] == "white matter"
    assert m["settings"]["slices"] == [40, 41] and m["settings"]["opacity"] == 0.7
    # Overlay: where white matter is shown, the pixel is the windowed grey blended with
    # white matter's colour (#4aa3df) at opacity 0.7; elsewhere it is plain grey.
    axes = display_axes(lab.affine, "axial")
    ov = _png(out / "overlays" / "overlay_axial_slice0041.png")
    want = take_slice(expected, axes, 41)
    # Overlays are enlarged automatically (nearest neighbour) to at least 512 px; the slice
    # lies where the manifest says (caption, orientation letters and scale bar around it).
    entry = next(f for f in m["files"] if f["path"] == "overlays/overlay_axial_slice0041.png")
    top, left, h, w = entry["image_box"]
    s = h // want.shape[0]
    assert s >= 2 and max(h, w) >= 512 and h == want.shape[0] * s and w == want.shape[1] * s
    ov = ov[top : top + h : s, left : left + w : s]
    level, width = m["settings"]["window"]
    t1 = np.asanyarray(nib.load(demo_dir / "t1.nii.gz").dataobj)
    grey = window_to_uint8(np.asarray(take_slice(t1, axes, 41)), level, width)
    a = round(255 * 0.7) / 255
    rr, cc = np.nonzero(want == 2)
    assert rr.size > 100
    blend = np.round(grey[rr, cc, None] * (1 - a) + np.array([0x4A, 0xA3, 0xDF]) * a)
    assert np.abs(ov[rr, cc].astype(int) - blend).max() <= 1
    rr, cc = np.nonzero(want == 0)
    assert np.array_equal(ov[rr, cc], np.repeat(grey[rr, cc, None], 3, axis=1))


def test_subprocess_demo_and_refuse_existing(tmp_path: Path) -> None:
    out = tmp_path / "d"
    r = _run("export", "--demo", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("exported 3 files") and r.stderr == ""
    before = _files(out)
    mtimes = {p: (out / p).stat().st_mtime_ns for p in before}
    r = _run("export", "--demo", "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.startswith("segviewer: error:") and "--force" in r.stderr
    assert r.stderr.count("\n") == 1
    assert _files(out) == before
    assert {p: (out / p).stat().st_mtime_ns for p in before} == mtimes
    r = _run("export", "--demo", "--out", str(out), "--force", "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_anatomical_logits_with_nan(
    tmp_path: Path,
    nibabel_anatomical: Path,
    anatomical_logits: tuple[Path, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pred_path, logits = anatomical_logits
    out = tmp_path / "anat"
    rc = main(
        [
            "export",
            str(nibabel_anatomical),
            "--prediction",
            str(pred_path),
            "--out",
            str(out),
            "--what",
            "labels,binary",
            "--format",
            "nifti,npy",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "9 invalid voxels" in captured.out
    assert "NaN" in captured.err  # the warning line
    labels = np.asanyarray(nib.load(out / "labels.nii.gz").dataobj)
    bad = np.isnan(logits).any(axis=-1)
    assert (labels[bad] == 255).all() and not (labels[bad] == 0).any()
    expected = np.argmax(np.nan_to_num(logits, nan=-np.inf), axis=-1)
    assert np.array_equal(labels[~bad], expected[~bad])
    assert np.allclose(nib.load(out / "labels.nii.gz").affine, nib.load(nibabel_anatomical).affine)
    for k in (1, 2, 3):
        m = np.load(out / "masks" / f"0{k}_class_{k}.npy", allow_pickle=False)
        assert np.array_equal(m, labels == k)
    man = _check_manifest_complete(out)
    assert man["n_invalid"] == 9
    assert man["sources"]["prediction"]["layout"] == "NDHWC"
    assert man["sources"]["prediction"]["kind"] == "logits"


def test_mr_small_2d_nhwc(
    tmp_path: Path, mr_small: Path, mr_small_logits: tuple[Path, np.ndarray]
) -> None:
    pred_path, logits = mr_small_logits
    out = tmp_path / "mr"
    r = _run(
        "export",
        str(mr_small),
        "--prediction",
        str(pred_path),
        "--out",
        str(out),
        "--what",
        "labels,binary",
        "--format",
        "nifti,png",
    )
    assert r.returncode == 0, r.stderr
    vol = load_image(mr_small)
    expected = np.argmax(logits, axis=-1).reshape(vol.shape)  # (1, 64, 64)
    lab = nib.load(out / "labels.nii.gz")
    assert lab.shape == vol.shape == (1, 64, 64)
    assert np.array_equal(np.asanyarray(lab.dataobj), expected)
    assert np.allclose(lab.affine, vol.affine)
    axes = display_axes(vol.affine, "axial")
    man = _check_manifest_complete(out)
    pngs = [f for f in man["files"] if f["what"] == "binary" and f["format"] == "png"]
    assert {f["class_index"] for f in pngs} == {1, 2}
    for f in pngs:
        img = _png(out / f["path"])
        assert set(np.unique(img).tolist()) <= {0, 255}
        assert np.array_equal(
            img == 255, take_slice(expected == f["class_index"], axes, f["slice_index"])
        )
    assert "PatientName" not in (out / "manifest.json").read_text()


def test_evil_class_names_and_non_ascii_out(
    tmp_path: Path, nibabel_anatomical: Path, anatomical_logits: tuple[Path, np.ndarray]
) -> None:
    table = tmp_path / "evil.json"
    table.write_text(
        json.dumps(
            {
                "classes": [
                    {"index": 0, "name": "background", "color": "#000000"},
                    {"index": 1, "name": "../../evil", "color": "#ff0000"},
                    {"index": 2, "name": "CON", "color": "#00ff00"},
                    {"index": 3, "name": "Ödem/рак", "color": "#0000ff"},
                ]
            }
        ),
        encoding="utf-8",
    )
    work = tmp_path / "work"
    work.mkdir()
    out = work / "Ergebnisse-ödem 結果"
    r = _run(
        "export",
        str(nibabel_anatomical),
        "--prediction",
        str(anatomical_logits[0]),
        "--out",
        str(out),
        "--classes",
        str(table),
        "--format",
        "nifti,png",
        "--slices",
        "10",
    )
    assert r.returncode == 0, r.stderr
    assert [p.name for p in work.iterdir()] == [out.name]
    assert not (tmp_path / "evil").exists() and not any(tmp_path.glob("evil*.nii.gz"))
    for p in out.rglob("*"):
        assert p.resolve().is_relative_to(out.resolve())
    man = _check_manifest_complete(out)
    names = {f["class_name"] for f in man["files"] if f["what"] == "binary"}
    assert names == {"../../evil", "CON", "Ödem/рак"}


def test_shape_mismatch_names_both(tmp_path: Path, nibabel_anatomical: Path) -> None:
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((1, 30, 41, 25, 4), np.float32))
    r = _run(
        "export", str(nibabel_anatomical), "--prediction", str(wrong), "--out", str(tmp_path / "o")
    )
    assert r.returncode == 2
    assert "(1, 30, 41, 25, 4)" in r.stderr and "(33, 41, 25)" in r.stderr
    assert r.stderr.startswith("segviewer: error:") and r.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_class_selection(
    tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sel"
    assert (
        main(["export", "--demo", "--out", str(out), "--class", "White Matter", "--what", "binary"])
        == 0
    )
    assert set(_files(out)) == {"masks/02_white_matter.nii.gz", "manifest.json"}
    capsys.readouterr()
    assert main(["export", "--demo", "--out", str(tmp_path / "x"), "--class", "tumour"]) == 2
    err = capsys.readouterr().err
    assert "no class has this name" in err and "'grey matter'" in err
    assert main(["export", "--demo", "--out", str(tmp_path / "x"), "--class", "7"]) == 2
    assert main(["export", "--demo", "--out", str(tmp_path / "x"), "--what", "meshes"]) == 2
    assert main(["export", "--demo", "--out", str(tmp_path / "x"), "--slices", "500"]) == 2
    assert main(["export", "--demo", "--out", str(tmp_path / "x"), "--bogus"]) == 2
    assert not (tmp_path / "x").exists()


def test_ctrl_c_leaves_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import segviewer.io.writers as writers

    real_save = writers.np.save
    calls = {"n": 0}

    def interrupted_save(fh: Any, arr: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            fh.write(b"half")
            raise KeyboardInterrupt
        real_save(fh, arr, **kw)

    monkeypatch.setattr(writers.np, "save", interrupted_save)
    out = tmp_path / "c"
    rc = main(
        [
            "export",
            "--demo",
            "--out",
            str(out),
            "--what",
            "labels,binary,probabilities",
            "--format",
            "npy",
        ]
    )
    assert rc == 130
    assert "cancelled" in capsys.readouterr().err
    assert calls["n"] == 3
    assert not out.exists()


def test_info(
    tmp_path: Path,
    mr_small: Path,
    demo_dir: Path,
    nibabel_anatomical: Path,
    anatomical_logits: tuple[Path, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["info", str(demo_dir / "t1.nii.gz"), str(demo_dir / "classes.json")]) == 0
    out = capsys.readouterr().out
    assert (
        "shape 98 x 116 x 94 (image axes 0, 1, 2), uint8, spacing 2 x 2 x 2 mm, orientation RAS"
        in out
    )
    assert (
        "class table (segviewer JSON): 3 classes: 0 background, 1 grey matter, 2 white matter"
        in out
    )

    assert main(["info", str(anatomical_logits[0])]) == 0
    out = capsys.readouterr().out
    assert "as prediction" in out and "1 x 33 x 41 x 25 x 4" in out
    assert "class axis guess: axis 4" in out

    assert (
        main(["info", str(anatomical_logits[0]), "--image", str(nibabel_anatomical), "--json"]) == 0
    )
    rep = json.loads(capsys.readouterr().out)
    against = rep[0]["prediction"]["against_image"]
    assert (
        against["layout"] == "NDHWC" and against["kind"] == "logits" and against["n_classes"] == 4
    )

    assert main(["info", str(mr_small)]) == 0
    out = capsys.readouterr().out
    assert "as image: dicom, shape 1 x 64 x 64 (image axes 0, 1, 2), int16" in out
    assert "modality=MR" in out
    assert main(["info", str(mr_small), "--json"]) == 0
    text = capsys.readouterr().out
    assert "CompressedSamples" not in text and "4MR1" not in text  # no patient name / ID

    assert main(["info", str(tmp_path / "missing.nii")]) == 2
    assert "does not exist" in capsys.readouterr().out


def test_window_is_started_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    seen: list[list[str]] = []
    fake = types.ModuleType("segviewer.ui.app")
    fake.main = lambda argv: seen.append(list(argv)) or 5  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "segviewer.ui.app", fake)
    assert main(["scan.nii.gz", "--screenshot", "x.png"]) == 5
    assert main([]) == 5
    assert seen == [["scan.nii.gz", "--screenshot", "x.png"], []]


def test_window_without_qt_is_one_clear_line(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['PySide6'] = None\n"
        "from segviewer.cli import main\n"
        "raise SystemExit(main(['--demo']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("segviewer: error: the window needs Qt")
    assert r.stderr.count("\n") == 1


@pytest.mark.tf
@pytest.mark.slow
def test_export_with_demo_model(
    tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow")
    model = demo_dir / "model.keras"
    out = tmp_path / "model"
    rc = main(
        [
            "export",
            str(demo_dir / "t1.nii.gz"),
            "--model",
            str(model),
            "--out",
            str(out),
            "--what",
            "labels",
            "--model-option",
            "batch_size=7",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    man = _check_manifest_complete(out)
    prov = man["provenance"]
    # The card beside the model was found and the flag overrode one of its settings.
    assert prov["card_source"].endswith("model.segviewer.json")
    assert prov["overrides"] == {"batch_size": 7} and prov["batch_size"] == 7
    assert len(prov["model"]["sha256"]) == 64
    # An unknown card field is one clear error line naming the known fields.
    rc = main(
        [
            "export",
            str(demo_dir / "t1.nii.gz"),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "bad"),
            "--model-option",
            "bogus=1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "bogus" in err and "normalization" in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    assert [c["name"] for c in man["classes"]] == ["background", "grey matter", "white matter"]
    labels = np.asanyarray(nib.load(out / "labels.nii.gz").dataobj)
    probs = np.asanyarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj)
    # The demo model was trained on these tissue maps: most voxels agree.
    assert np.mean(labels == np.argmax(probs, axis=-1)) > 0.8


def test_progress_bar_draws_percent_and_eta() -> None:
    import io

    from segviewer.cli.terminal import ProgressBar
    from segviewer.core.types import Progress

    stream = io.StringIO()
    bar = ProgressBar(stream, enabled=True)
    bar(Progress(0, 10, "computing labels"))
    bar.last_draw = 0.0  # skip the 10-per-second throttle
    bar(Progress(5, 10, "writing labels.nii.gz"))
    bar.finish()
    text = stream.getvalue()
    assert text.startswith("\r[") and "  0.0%" in text and "ETA --:--" in text
    assert " 50.0%" in text and "writing labels.nii.gz" in text and "ETA 0:0" in text
    assert "\n" not in text and text.endswith("\r")
    quiet = io.StringIO()
    off = ProgressBar(quiet, enabled=False)
    off(Progress(5, 10, "x"))
    off.finish()
    assert quiet.getvalue() == ""


def test_multiframe_dicom_probabilities_cdhw(tmp_path: Path) -> None:
    """A 3-D multi-frame MR (10 x 64 x 64) with channels-first probabilities, coronal PNGs."""
    from pydicom.data import get_testdata_file

    dcm = Path(get_testdata_file("emri_small.dcm"))
    vol = load_image(dcm)
    data = np.asarray(vol.data, np.float32)
    t = np.percentile(data, [50, 85])
    score = np.stack([-(data - t[0]), -np.abs(data - t.mean()), data - t[1]])
    probs = np.exp(score / data.std())
    probs = (probs / probs.sum(axis=0, keepdims=True)).astype(np.float32)  # (3, 10, 64, 64)
    pred = tmp_path / "probs.npy"
    np.save(pred, probs)
    out = tmp_path / "emri"
    r = _run(
        "export",
        str(dcm),
        "--prediction",
        str(pred),
        "--layout",
        "CDHW",
        "--out",
        str(out),
        "--what",
        "labels,binary,probabilities",
        "--format",
        "nifti,png,npy",
        "--view",
        "coronal",
        "--slices",
        "::16",
    )
    assert r.returncode == 0, r.stderr
    expected = np.argmax(probs, axis=0)
    lab = nib.load(out / "labels.nii.gz")
    assert lab.shape == vol.shape and np.allclose(lab.affine, vol.affine)
    assert np.array_equal(np.asanyarray(lab.dataobj), expected)
    assert np.allclose(np.load(out / "probabilities.npy"), probs, atol=1e-6)
    p4 = np.asanyarray(nib.load(out / "probabilities.nii.gz").dataobj)
    assert p4.shape == (*vol.shape, 3) and np.allclose(np.moveaxis(p4, -1, 0), probs, atol=1e-6)
    axes = display_axes(vol.affine, "coronal")
    man = _check_manifest_complete(out)
    slices = sorted({f["slice_index"] for f in man["files"] if f["slice_index"] is not None})
    assert slices == list(range(0, vol.shape[axes.slice_axis], 16))
    for f in man["files"]:
        if f["what"] == "labels" and f["format"] == "png":
            assert np.array_equal(
                _png(out / f["path"]), take_slice(expected, axes, f["slice_index"])
            )
    assert man["sources"]["image"]["format"] == "dicom"
    assert man["sources"]["prediction"]["layout"] == "CDHW"


def test_class_table_shorter_than_prediction(
    tmp_path: Path, demo_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table with 2 entries for a 3-class prediction: warned, class 2 still exported."""
    table = tmp_path / "two.csv"
    table.write_text("index,name,color\n0,bg,#000000\n1,gm,#ff0000\n", encoding="utf-8")
    out = tmp_path / "out"
    rc = main(
        [
            "export",
            str(demo_dir / "t1.nii.gz"),
            "--prediction",
            str(demo_dir / "tissue_prob.nii.gz"),
            "--classes",
            str(table),
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "lists 2 classes but the prediction has 3; class 2 gets default names" in captured.err
    probs = np.asanyarray(nib.load(demo_dir / "tissue_prob.nii.gz").dataobj)
    n_white = int((np.argmax(probs, axis=-1) == 2).sum())
    assert f"class 2 {n_white} voxels" in captured.out
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in m["classes"]] == ["bg", "gm", "class 2"]
    mask = nib.load(out / "masks" / "02_class_2.nii.gz")
    assert int(np.asanyarray(mask.dataobj).sum()) == n_white


# ---------------------------------------------------------------------------------------
# comparison with a reference segmentation


@pytest.fixture(scope="module")
def demo_perturbed(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A prediction that is the demo's tissue probabilities shifted by two voxels along axis 1
    (a model a little off), and the demo's argmax as the reference label map."""
    prob_img: Any = nib.load(demo_dir / "tissue_prob.nii.gz")
    probs = np.asarray(prob_img.dataobj, dtype=np.float32)
    shifted = np.roll(probs, 2, axis=1)
    folder = tmp_path_factory.mktemp("cmp")
    pred_path = folder / "shifted_probs.npy"
    np.save(pred_path, shifted)
    return {
        "pred": pred_path,
        "pred_labels": np.argmax(shifted, axis=-1).astype(np.uint8),
        "ref_labels": np.argmax(probs, axis=-1).astype(np.uint8),
    }


def test_compare_table_on_demo(
    demo_dir: Path, demo_perturbed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "compare",
            str(demo_dir / "t1.nii.gz"),
            "--prediction",
            str(demo_perturbed["pred"]),
            "--reference",
            str(demo_dir / "tissue_prob.nii.gz"),
            "--classes",
            str(demo_dir / "classes.json"),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("class"))
    assert header.split() == [
        "class", "dice", "jaccard", "sensitivity", "precision", "pred", "ml", "ref", "ml",
        "diff", "%",
    ]  # fmt: skip
    pred, ref = demo_perturbed["pred_labels"], demo_perturbed["ref_labels"]
    for k, name in ((0, "background"), (1, "grey matter"), (2, "white matter")):
        row = next(line for line in lines if line.startswith(f"{k} {name}"))
        cells = row[len(f"{k} {name}") :].split()
        a, b = pred == k, ref == k
        tp = int((a & b).sum())
        assert float(cells[0]) == pytest.approx(2 * tp / (a.sum() + b.sum()), abs=6e-5)
        assert float(cells[1]) == pytest.approx(tp / (a | b).sum(), abs=6e-5)
        assert float(cells[2]) == pytest.approx(tp / b.sum(), abs=6e-5)
        assert float(cells[3]) == pytest.approx(tp / a.sum(), abs=6e-5)
        assert float(cells[4]) == pytest.approx(a.sum() * 8 / 1000, abs=0.006)  # ml, 2 mm voxels
        assert float(cells[5]) == pytest.approx(b.sum() * 8 / 1000, abs=0.006)
    acc = next(line for line in lines if line.startswith("accuracy"))
    assert float(acc.split()[1]) == pytest.approx(float((pred == ref).mean()), abs=6e-5)
    assert f"over {pred.size} voxels" in acc


def test_compare_json_and_label_map_reference(
    tmp_path: Path,
    demo_dir: Path,
    demo_perturbed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref_path = tmp_path / "rater.nii.gz"
    img = nib.load(demo_dir / "t1.nii.gz")
    ref = demo_perturbed["ref_labels"].copy()
    ref[0, 0, :5] = 9  # five voxels with a label outside the table: left out, with a warning
    nib.save(nib.Nifti1Image(ref, img.affine), ref_path)  # type: ignore[attr-defined]
    rc = main(
        [
            "compare",
            str(demo_dir / "t1.nii.gz"),
            "--prediction",
            str(demo_perturbed["pred"]),
            "--reference",
            str(ref_path),
            "--classes",
            str(demo_dir / "classes.json"),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads(captured.out)
    assert doc["n_ignored"] == 5 and "5 reference voxels" in captured.err
    pred = demo_perturbed["pred_labels"]
    scored = ref < 3
    assert doc["n_voxels"] == int(scored.sum())
    assert doc["accuracy"] == pytest.approx(float((pred == ref)[scored].mean()))
    gm = doc["classes"][1]
    assert gm["name"] == "grey matter"
    a, b = (pred == 1) & scored, ref == 1
    assert (gm["tp"], gm["fp"], gm["fn"]) == (
        int((a & b).sum()),
        int((a & ~b).sum()),
        int((~a & b).sum()),
    )
    assert np.array(doc["confusion"]).sum() == int(scored.sum())


def test_compare_and_export_errors_refusals(
    tmp_path: Path, demo_dir: Path, demo_perturbed: dict[str, Any]
) -> None:
    image = str(demo_dir / "t1.nii.gz")
    pred = str(demo_perturbed["pred"])
    small = tmp_path / "small_ref.npy"
    np.save(small, np.zeros((98, 116, 90), dtype=np.uint8))
    r = _run("compare", image, "--prediction", pred, "--reference", str(small))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "(98, 116, 90)" in r.stderr and "(98, 116, 94)" in r.stderr
    assert "reference" in r.stderr
    r = _run("compare", image, "--prediction", pred)
    assert r.returncode == 2 and "--reference" in r.stderr and r.stderr.count("\n") == 1
    out = tmp_path / "noref"
    r = _run("export", image, "--prediction", pred, "--what", "errors", "--out", str(out))
    assert r.returncode == 2 and "--reference" in r.stderr and r.stderr.count("\n") == 1
    assert not out.exists()


def test_export_with_reference_writes_errors(
    tmp_path: Path,
    demo_dir: Path,
    demo_perturbed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "errs"
    rc = main(
        [
            "export",
            str(demo_dir / "t1.nii.gz"),
            "--prediction",
            str(demo_perturbed["pred"]),
            "--reference",
            str(demo_dir / "tissue_prob.nii.gz"),
            "--what",
            "labels,errors",
            "--format",
            "nifti,png",
            "--slices",
            "45",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "accuracy" in captured.out
    m = _check_manifest_complete(out)
    pred, ref = demo_perturbed["pred_labels"], demo_perturbed["ref_labels"]
    assert m["comparison"]["reference"]["path"] == "tissue_prob.nii.gz"  # name only (privacy)
    assert m["comparison"]["accuracy"] == pytest.approx(float((pred == ref).mean()))
    err_img: Any = nib.load(out / "errors.nii.gz")
    volume = load_image(demo_dir / "t1.nii.gz")
    assert np.allclose(err_img.affine, volume.affine)
    np.testing.assert_array_equal(np.asanyarray(err_img.dataobj), (pred != ref) * 2)
    png = _png(out / "errors" / "errors_axial_slice0045.png")
    axes = display_axes(volume.affine, "axial")
    assert set(np.unique(png).tolist()) == {0, 255}
    np.testing.assert_array_equal(png == 255, take_slice(pred != ref, axes, 45))


@pytest.mark.tf
def test_compare_demo_runs_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tensorflow")
    rc = main(["compare", "--demo"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    acc = next(line for line in lines if line.startswith("accuracy"))
    # README ("The demo model"): voxel accuracy 0.990; Dice background 0.997, grey matter
    # 0.960, white matter 0.956. A tolerance a real regression would break.
    assert float(acc.split()[1]) == pytest.approx(0.990, abs=0.003)
    dice = {
        name: float(next(line for line in lines if line.startswith(name)).split()[-7])
        for name in ("0 background", "1 grey matter", "2 white matter")
    }
    assert dice["0 background"] == pytest.approx(0.997, abs=0.002)
    assert dice["1 grey matter"] == pytest.approx(0.960, abs=0.006)
    assert dice["2 white matter"] == pytest.approx(0.956, abs=0.006)


def test_compare_demo_without_tensorflow_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def no_tf(name: str, *args: Any) -> Any:
        return None if name == "tensorflow" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", no_tf)
    assert main(["compare", "--demo"]) == 2
    err = capsys.readouterr().err
    assert "needs TensorFlow" in err and err.count("\n") == 1


def test_compare_warns_about_a_mirrored_reference(
    tmp_path: Path,
    demo_dir: Path,
    demo_perturbed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    img: Any = nib.load(demo_dir / "t1.nii.gz")
    flipped = img.affine.copy()
    flipped[0] *= -1  # first axis points Left: the file says it is mirrored against the image
    ref_path = tmp_path / "mirrored.nii.gz"
    nib.save(nib.Nifti1Image(demo_perturbed["ref_labels"], flipped), ref_path)
    rc = main(
        [
            "compare",
            str(demo_dir / "t1.nii.gz"),
            "--prediction",
            str(demo_perturbed["pred"]),
            "--reference",
            str(ref_path),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    assert "segviewer: warning: the reference's voxel axes point LAS" in captured.err
    assert "RAS" in captured.err and "meaningless" in captured.err


def test_window_errors_follow_the_one_convention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The window's command reports errors like every subcommand: one line, exit 2."""
    assert main(["--model-option", "normalization=zscore"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segviewer: error: ") and "only apply with --model" in err
    assert err.count("\n") == 1


def test_options_are_declared_once() -> None:
    """The window and the subcommands share each flag's declaration (same help text)."""
    from segviewer.cli.options import compare_parser, export_parser, window_parser

    def helps(parser: Any) -> dict[str, str]:
        return {s: a.help for a in parser._actions for s in a.option_strings if s.startswith("--")}

    window, export, compare = (
        helps(window_parser()),
        helps(export_parser()),
        helps(compare_parser()),
    )
    for flag in ("--prediction", "--model", "--classes", "--layout", "--kind", "--resample",
                 "--series", "--frame", "--trust-model", "--model-card", "--model-option"):  # fmt: skip
        assert window[flag] == export[flag] == compare[flag], flag
