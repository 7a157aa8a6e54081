"""Running TensorFlow/Keras models from the window: open, inspect, run, cancel, trust, save.

Tiny Keras models are built here (seeded, a few dozen weights) and run on nibabel's real T1
``anatomical.nii`` (33 x 41 x 25, 25 axial slices along image axis 2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox
from ui_helpers import wait_idle

from segviewer.core.types import Prediction, PredictionKind, SegviewerError, Volume

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

TIMEOUT = 120_000  # ms; the first model open imports TensorFlow (seconds on a busy machine)


@pytest.fixture(scope="module")
def anat(nibabel_anatomical: Path) -> Volume:
    img: Any = nib.load(nibabel_anatomical)
    return Volume(
        np.asarray(img.dataobj), img.affine, source=str(nibabel_anatomical), format="nifti"
    )


def _softmax_model() -> Any:
    from keras import layers

    keras.utils.set_random_seed(11)
    return keras.Sequential(
        [
            keras.Input((None, None, 1)),
            layers.Conv2D(4, 3, padding="same", activation="tanh"),
            layers.Conv2D(3, 3, padding="same", activation="softmax"),
        ],
        name="tiny_softmax",
    )


@pytest.fixture(scope="module")
def softmax_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    _softmax_model().save(path)
    return path


@pytest.fixture(scope="module")
def lambda_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from keras import layers

    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input((None, None, 1)),
            layers.Lambda(lambda t: t * 0.01, name="scale"),
            layers.Conv2D(2, 3, padding="same"),
        ]
    )
    path = tmp_path_factory.mktemp("models") / "with_lambda.keras"
    model.save(path)
    return path


def _zscore(data: np.ndarray) -> np.ndarray:
    d = data.astype(np.float64)
    return ((d - d.mean()) / d.std()).astype(np.float32)


def _direct_outputs(model_path: Path, volume: Volume, *, safe: bool = True) -> np.ndarray:
    """The model called directly on z-scored axial slices: ``(C, a0, a1, a2)`` float32."""
    model = keras.saving.load_model(model_path, compile=False, safe_mode=safe)
    x = np.moveaxis(_zscore(volume.data), 2, 0)[..., None]  # (a2, a0, a1, 1)
    y = np.asarray(model(x, training=False), np.float32)  # (a2, a0, a1, C)
    return np.moveaxis(y, (0, 3), (3, 0))  # (C, a0, a1, a2)


def _open(window: Any, qtbot: Any, path: Path, **kw: Any) -> Any:
    with qtbot.waitSignal(window.model_dialog(False).model_opened, timeout=TIMEOUT):
        window.open_model(path, **kw)
    return window.model_dialog(False)


def _run(dlg: Any, qtbot: Any) -> tuple[Prediction, dict[str, Any]]:
    with qtbot.waitSignal(dlg.run_finished, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    result: tuple[Prediction, dict[str, Any]] = blocker.args[0]
    return result


def test_open_run_progress_and_result_equals_the_model(
    window: Any, qtbot: Any, anat: Volume, softmax_model: Path, tmp_path: Path
) -> None:
    window.set_image(anat)
    dlg = _open(window, qtbot, softmax_model)
    assert dlg.isVisible()
    assert dlg.facts["rank"].text().startswith("2-D")
    assert dlg.facts["input"].text() == "any × any"
    assert dlg.facts["channels"].text() == "1 → 3"
    assert "softmax" in dlg.facts["kind"].text().lower()
    assert dlg.facts["classes"].text() == "3"
    assert dlg.facts["downsampling"].text().startswith("1")
    assert dlg.class_names() == ["background", "class 1", "class 2"]
    # The slice axis names the view its slices make (anatomical.nii axis 2 is axial).
    assert "axial" in dlg.slice_axis_combo.currentText()
    dlg.norm_combo.setCurrentIndex(dlg.norm_combo.findData("zscore"))
    dlg.batch_spin.setValue(4)

    seen: list[tuple[int, int, str, str]] = []

    def record(job: Any) -> None:
        if job.channel == "inference" and job.progress is not None:
            p = job.progress
            seen.append((p.done, p.total, p.message, window.job_label.text()))

    window.runner.progress.connect(record)
    prediction, provenance = _run(dlg, qtbot)
    wait_idle(qtbot, window)
    # Progress in the status bar: slices done of 25 in batches of 4, with an ETA.
    batches = [s for s in seen if s[1] == 25]
    assert [s[0] for s in batches][-1] == 25
    assert {4, 8, 24} <= {s[0] for s in batches}
    assert any("slices 8/25" in s[2] and "left" in s[2] for s in batches)
    assert any(s[3].startswith("Running tiny.keras: slices") for s in batches)
    assert "tiny.keras" in window.statusBar().currentMessage()

    # The overlay is the argmax of the model called directly with the same preprocessing.
    expected = _direct_outputs(softmax_model, anat)
    shown = window.state.prediction
    assert shown is prediction and shown.kind is PredictionKind.PROBABILITIES
    np.testing.assert_allclose(shown.channels_first(), expected, atol=2e-5)
    # It ran in the model's process, and gives what the same run in this process gives.
    assert window.controller.model.process.pid not in (None, os.getpid())
    assert dlg.handle.model is None  # the window holds no Keras model
    from segviewer.core.progress import run_to_end
    from segviewer.inference import predict

    here, here_provenance = run_to_end(
        predict(anat, softmax_model, overrides={"normalization": "zscore", "batch_size": 4})
    )
    np.testing.assert_allclose(shown.channels_first(), here.channels_first(), atol=1e-6)
    assert (shown.layout, shown.kind, shown.n_classes) == (here.layout, here.kind, here.n_classes)
    assert shown.notes == here.notes
    assert provenance["preprocessing"] == here_provenance["preprocessing"]
    labels = window.label_result.labels
    mismatch = np.count_nonzero(labels != np.argmax(expected, axis=0))
    assert mismatch <= labels.size * 1e-4
    idx = window.canvas.index
    axes = window.canvas.axes
    assert axes is not None and axes.slice_axis == 2
    for ijk in [(16, 20, idx), (5, 30, idx), (28, 8, idx)]:
        assert window.canvas.label_at(ijk) == labels[ijk]

    # Provenance reaches the export manifest; the dialog's change shows as an override.
    assert provenance["overrides"] == {"normalization": "zscore", "batch_size": 4}
    assert window.state.provenance["model"]["sha256"] == provenance["model"]["sha256"]
    from segviewer.io.export import ExportRequest

    done: list[Any] = []
    window.run_export(
        ExportRequest(out_dir=tmp_path / "out", what=frozenset({"labels"})),
        on_done=done.append,
    )
    wait_idle(qtbot, window)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    # the manifest names sources by file name unless the export asks for full paths
    assert manifest["provenance"]["model"]["path"] == softmax_model.name
    assert manifest["provenance"]["preprocessing"]["normalization"] == "zscore"
    exported = np.asarray(nib.load(tmp_path / "out" / "labels.nii.gz").dataobj)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(exported, labels)


@pytest.fixture
def gated_model(tmp_path: Path) -> tuple[Path, Path]:
    """The tiny softmax model behind a :class:`model_gate.Gate` (a custom layer: opened
    trusted), and the gate's folder: a batch waits inside the model's process while
    ``folder/hold`` exists."""
    from model_gate import Gate

    folder = tmp_path / "gate"
    folder.mkdir()
    inp = keras.Input((None, None, 1))
    model = keras.Model(inp, _softmax_model()(Gate(str(folder))(inp)))
    path = tmp_path / "gated.keras"
    model.save(path)
    return path, folder


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (not ended, not a zombie waiting to be reaped; Linux)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cancel_mid_run_keeps_the_previous_prediction_then_runs_again(
    window: Any,
    qtbot: Any,
    anat: Volume,
    gated_model: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from model_gate import calls

    import segviewer.inference.process as process

    path, gate = gated_model
    window.set_image(anat)
    dlg = _open(window, qtbot, path, trust=True)
    first, _ = _run(dlg, qtbot)
    wait_idle(qtbot, window)
    assert window.state.prediction is first
    session = window.controller.model
    pid, folder = session.process.pid, session.process.folder
    assert pid is not None and pid != os.getpid() and folder is not None

    # A batch held inside the model's process: cancel stops the run after that batch.
    monkeypatch.setattr(process, "CANCEL_GRACE_S", 30.0)
    sent: list[dict[str, Any]] = []
    send = process._Channel.send

    def record(chan: Any, message: dict[str, Any]) -> None:
        sent.append(dict(message))
        send(chan, message)

    monkeypatch.setattr(process._Channel, "send", record)
    (gate / "hold").touch()
    before = calls(gate)
    dlg.batch_spin.setValue(1)
    dlg.norm_combo.setCurrentIndex(dlg.norm_combo.findData("minmax"))
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: calls(gate) == before + 1, timeout=TIMEOUT)
    assert window.cancel_button.isVisible() and window.cancel_button.isEnabled()
    assert not dlg.run_button.isEnabled() and dlg.cancel_button.isEnabled()
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    # The window stays usable while the batch finishes: slices change, nothing replaced.
    window.canvas.set_slice(3)
    assert window.canvas.index == 3
    assert "Cancelled" in dlg.progress_label.text()
    assert dlg.run_button.isEnabled()
    # the cancel is on its way to the model's process before the batch is let go
    qtbot.waitUntil(lambda: any(m.get("op") == "cancel" for m in sent), timeout=10_000)
    (gate / "hold").unlink()
    wait_idle(qtbot, window)
    assert window.state.prediction is first
    assert calls(gate) == before + 1  # stopped after the batch that was running
    # The process stopped its run but lives on with the model open; no file is left.
    assert session.process.pid == pid and _alive(pid)
    assert list(folder.iterdir()) == []

    # A batch that does not end within the grace: the process is killed, and the next run
    # starts a new one (the model is opened again there).
    monkeypatch.setattr(process, "CANCEL_GRACE_S", 0.5)
    (gate / "hold").touch()
    before = calls(gate)
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: calls(gate) == before + 1, timeout=TIMEOUT)
    qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not _alive(pid), timeout=10_000)
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: not folder.exists(), timeout=10_000)
    assert window.state.prediction is first
    (gate / "hold").unlink()
    second, provenance = _run(dlg, qtbot)
    wait_idle(qtbot, window)
    assert window.state.prediction is second and second is not first
    assert provenance["preprocessing"]["normalization"] == "minmax"
    assert provenance["batch_size"] == 1
    assert session.process.pid not in (None, pid)


def test_model_process_killed_mid_run_is_reported_and_the_window_stays_usable(
    window: Any,
    qtbot: Any,
    anat: Volume,
    gated_model: tuple[Path, Path],
    softmax_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from model_gate import calls

    shown: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "critical", staticmethod(lambda parent, title, text: shown.append(text))
    )
    path, gate = gated_model
    window.set_image(anat)
    before = window.state.prediction
    dlg = _open(window, qtbot, path, trust=True)
    session = window.controller.model
    pid, folder = session.process.pid, session.process.folder
    (gate / "hold").touch()
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: calls(gate) == 1, timeout=TIMEOUT)
    # As the system does when memory runs out.
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT):
        os.kill(pid, signal.SIGKILL)
    assert len(shown) == 1 and "\n" not in shown[0]
    assert shown[0].startswith("the model's process was killed (SIGKILL")
    assert "run the model again" in shown[0]
    wait_idle(qtbot, window)
    assert window.state.prediction is before
    assert not folder.exists()  # its files went with it
    window.canvas.set_slice(4)
    assert window.canvas.index == 4
    assert dlg.run_button.isEnabled() and not dlg.cancel_button.isEnabled()

    # Run again: a new process opens the model and runs it.
    (gate / "hold").unlink()
    prediction, _ = _run(dlg, qtbot)
    wait_idle(qtbot, window)
    assert window.state.prediction is prediction
    new_pid = session.process.pid
    assert new_pid is not None and new_pid != pid and _alive(new_pid)
    # Another model replaces it: its process ends, the new model gets its own.
    replaced_folder = session.process.folder
    _open(window, qtbot, softmax_model)
    qtbot.waitUntil(lambda: not _alive(new_pid), timeout=10_000)
    qtbot.waitUntil(lambda: not replaced_folder.exists(), timeout=10_000)
    new_pid = session.process.pid
    assert new_pid is not None and _alive(new_pid)
    # Closing the window ends the model's process and removes its folder.
    new_folder = session.process.folder
    window.close()
    qtbot.waitUntil(lambda: not _alive(new_pid), timeout=10_000)
    qtbot.waitUntil(lambda: not new_folder.exists(), timeout=10_000)


def test_the_window_process_never_imports_tensorflow(
    softmax_model: Path, nibabel_anatomical: Path, tmp_path: Path
) -> None:
    """A window that opens and runs a model: TensorFlow and Keras are imported only in the
    model's process (their import holds the interpreter lock for seconds)."""
    code = f"""
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from segviewer.ui.main_window import MainWindow
win = MainWindow()
shown = []
win.model_prediction_shown.connect(lambda *a: shown.append(1))
win.open_files({str(nibabel_anatomical)!r}, model={str(softmax_model)!r})
from PySide6.QtCore import QElapsedTimer
t = QElapsedTimer(); t.start()
while not shown and t.elapsed() < 120_000:
    app.processEvents()
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"tensorflow", "keras"}})
print("shown" if shown else "not shown", heavy, win.controller.model.process.pid)
win.close()
"""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", SEGVIEWER_SETTINGS=str(tmp_path / "s.ini"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    words = out.stdout.split()
    assert words[:2] == ["shown", "[]"], out.stdout + out.stderr[-2000:]
    assert int(words[2]) > 0


def test_lambda_model_is_refused_with_the_message_then_runs_when_trusted(
    window: Any, qtbot: Any, anat: Volume, lambda_model: Path
) -> None:
    window.set_image(anat)
    dlg = window.model_dialog(False)
    with qtbot.waitSignal(dlg.model_refused, timeout=TIMEOUT) as refused:
        window.open_model(lambda_model, show=False)
    text = refused.args[0]
    assert "Lambda" in text and "with_lambda.keras" in text
    # The dialog comes up with the refusal and the trust checkbox (unticked).
    assert dlg.isVisible()
    assert dlg.trust_box.isVisible() and dlg.trust_check.isVisible()
    assert dlg.refusal_label.text() == text
    assert dlg.trust_check.text() == "Trust this model file (runs code from it)"
    assert not dlg.trust_check.isChecked()
    assert "code" in dlg.trust_warning.text()
    assert dlg.handle is None and not dlg.run_button.isEnabled()
    assert "Lambda" in window.statusBar().currentMessage()
    assert window.controller.model.process is None  # refused: no process kept for it

    with qtbot.waitSignal(dlg.model_opened, timeout=TIMEOUT):
        dlg.trust_check.setChecked(True)
    assert dlg.handle is not None and dlg.handle.trusted
    prediction, provenance = _run(dlg, qtbot)
    assert provenance["model"]["trusted"] is True
    raw = keras.saving.load_model(lambda_model, compile=False, safe_mode=False)(
        np.moveaxis(np.asarray(anat.data, np.float32), 2, 0)[..., None], training=False
    )
    expected = np.moveaxis(np.asarray(raw, np.float32), (0, 3), (3, 0))
    np.testing.assert_allclose(prediction.channels_first(), expected, rtol=1e-5, atol=1e-5)
    assert prediction.kind is PredictionKind.LOGITS


def test_not_a_model_file_shows_an_error_dialog(
    window: Any, qtbot: Any, anat: Volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    monkeypatch.setattr(
        QMessageBox, "critical", staticmethod(lambda parent, title, text: shown.append(text))
    )
    window.set_image(anat)
    junk = tmp_path / "weights.keras"
    junk.write_bytes(b"this is not a model at all")
    with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT):
        window.open_model(junk)
    assert len(shown) == 1
    assert "weights.keras" in shown[0] and "not a model file" in shown[0]
    dlg = window.model_dialog(False)
    assert dlg.handle is None and not dlg.run_button.isEnabled()
    assert not dlg.trust_box.isVisible()  # a broken file is not a trust question


def test_save_logits_and_model_card(
    window: Any,
    qtbot: Any,
    anat: Volume,
    softmax_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from segviewer.inference import load_card

    window.set_image(anat)
    # A prediction from an array is not a model's: nothing to save as logits.
    window.set_prediction(_array_prediction(anat))
    assert not window.save_logits_action.isEnabled()
    model = tmp_path / "seg.keras"
    model.write_bytes(softmax_model.read_bytes())
    dlg = _open(window, qtbot, model)
    assert dlg.facts["card"].text().startswith("none")
    prediction, _ = _run(dlg, qtbot)
    wait_idle(qtbot, window)
    assert window.save_logits_action.isEnabled()

    out = tmp_path / "logits.npy"
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "NumPy (*.npy)"))
    )
    window.save_logits_action.trigger()
    wait_idle(qtbot, window)
    saved = np.load(out, allow_pickle=False)
    assert saved.dtype == np.float32 and saved.shape == (3, *anat.shape)
    np.testing.assert_array_equal(saved, prediction.channels_first())
    assert not list(tmp_path.glob(".*partial*"))  # atomic: no temporary left
    # NIfTI keeps the image geometry, classes last.
    window.save_logits(tmp_path / "logits.nii.gz")
    wait_idle(qtbot, window)
    img: Any = nib.load(tmp_path / "logits.nii.gz")
    np.testing.assert_allclose(img.affine, anat.affine, atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(img.dataobj), np.moveaxis(prediction.channels_first(), 0, -1)
    )

    # Save model card: the dialog's settings, next to the model, read back identically.
    dlg.norm_combo.setCurrentIndex(dlg.norm_combo.findData("percentile"))
    dlg.pct_low.setValue(1.0)
    dlg.slice_axis_combo.setCurrentIndex(0)
    dlg.classes_edit.setPlainText("background\ncsf\ntissue")
    qtbot.mouseClick(dlg.save_card_button, Qt.MouseButton.LeftButton)
    card_file = tmp_path / "seg.segviewer.json"
    card = load_card(card_file)
    assert card == dlg.card()
    assert (card.normalization, card.percentile_low, card.slice_axis) == ("percentile", 1.0, 0)
    assert card.class_names == ("background", "csf", "tissue")
    assert card.class_colors is not None and len(card.class_colors) == 3
    assert str(card_file) in window.statusBar().currentMessage()

    # Reopened, the model finds its card; a run uses it and names the classes.
    dlg = _open(window, qtbot, model)
    assert dlg.facts["card"].text() == str(card_file)
    assert dlg.norm_combo.currentData() == "percentile"
    _, provenance = _run(dlg, qtbot)
    wait_idle(qtbot, window)
    assert provenance["card_source"] == str(card_file)
    assert provenance["preprocessing"]["slice_axis"] == 0
    assert window.state.table is not None
    assert window.state.table.names == ("background", "csf", "tissue")


def _array_prediction(volume: Volume) -> Prediction:
    from segviewer.io.predictions import prediction_from_array

    rng = np.random.default_rng(0)
    raw = rng.normal(size=(*volume.shape, 3)).astype(np.float32)
    return prediction_from_array(raw, volume.shape, layout="DHWC", kind="logits")


def test_demo_model_replaces_the_reference_probabilities(
    window: Any, qtbot: Any, demo_dir: Path
) -> None:
    from segviewer.ui.app import demo_model_path, demo_paths

    t1, prob, classes = demo_paths()
    shown: list[str] = []
    window.prediction_loaded.connect(lambda p: shown.append(p.source))
    with qtbot.waitSignal(window.model_prediction_shown, timeout=TIMEOUT):
        window.open_files(t1, prob, classes, model=demo_model_path(), model_optional=True)
    wait_idle(qtbot, window)
    assert shown[0].endswith("tissue_prob.nii.gz")  # the reference first ...
    assert shown[-1] == "model.keras on " + str(t1)  # ... then the model's
    assert "model.keras" in window.statusBar().currentMessage()
    assert window.state.table is not None
    assert window.state.table.names == ("background", "grey matter", "white matter")
    # The bundled model reproduces the reference tissue classes closely (Dice > 0.9).
    from segviewer.core.stats import dice_per_class
    from segviewer.io.predictions import load_prediction

    ref = np.argmax(load_prediction(prob, window.state.volume.shape).channels_first(), axis=0)
    dice = dice_per_class(window.label_result.labels, ref, 3)
    assert min(dice[1:]) > 0.9
    assert window.state.provenance["card_source"].endswith("model.segviewer.json")


def test_demo_without_tensorflow_keeps_the_reference_with_a_note(
    window: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segviewer.io.sniff as sniff
    from segviewer.ui.app import demo_model_path, demo_paths

    monkeypatch.setattr(sniff, "tensorflow_available", lambda: False)
    t1, prob, classes = demo_paths()
    # as segviewer --demo queues it: the reference only after the model ran
    window.open_files(
        t1, prob, classes, model=demo_model_path(), model_optional=True, reference=prob
    )
    wait_idle(qtbot, window)
    assert window.state.reference is None  # no model, so nothing to compare with
    assert window.state.prediction is not None
    assert window.state.prediction.source.endswith("tissue_prob.nii.gz")
    assert "TensorFlow is not installed" in window.statusBar().currentMessage()
    assert "model" not in window.state.provenance


def test_command_line_model_refused_then_trusted(
    qtbot: Any, tmp_path: Path, capsys: Any, nibabel_anatomical: Path, lambda_model: Path
) -> None:
    from segviewer.ui.app import main

    shot = tmp_path / "shot.png"
    assert (
        main([str(nibabel_anatomical), "--model", str(lambda_model), "--screenshot", str(shot)])
        == 2
    )
    assert "Lambda" in capsys.readouterr().err
    code = main(
        [str(nibabel_anatomical), "--model", str(lambda_model), "--trust-model",
         "--screenshot", str(shot)]
    )  # fmt: skip
    assert code == 0 and shot.stat().st_size > 0
    assert main(["--model", str(lambda_model)]) == 2
    assert "give the image too" in capsys.readouterr().err


def test_viewer_run_model(
    qtbot: Any, anat: Volume, softmax_model: Path, lambda_model: Path, tmp_path: Path
) -> None:
    from segviewer.ui.api import view

    v = view(anat, show=False)
    try:
        pred = v.run_model(softmax_model, overrides={"normalization": "zscore"})
        np.testing.assert_allclose(
            pred.channels_first(), _direct_outputs(softmax_model, anat), atol=2e-5
        )
        result = v.export(tmp_path / "out", what=frozenset({"labels"}), formats=frozenset({"npy"}))
        manifest = json.loads(Path(result.manifest).read_text())
        assert manifest["provenance"]["overrides"] == {"normalization": "zscore"}
        with pytest.raises(SegviewerError, match="Lambda"):
            v.run_model(lambda_model)
        with pytest.raises(SegviewerError, match="does not exist"):
            v.run_model(tmp_path / "missing.keras")
        assert v.window.state.prediction is pred  # failures leave the prediction shown
    finally:
        v.close()


def _menu_action(window: Any, text: str) -> Any:
    from PySide6.QtGui import QAction

    found = [a for a in window.findChildren(QAction) if a.text().replace("&", "") == text]
    assert len(found) == 1, text
    return found[0]


def test_menu_opens_a_file_and_a_savedmodel_folder(
    window: Any,
    qtbot: Any,
    anat: Volume,
    softmax_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window.set_image(anat)
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(softmax_model), ""))
    )
    dlg = window.model_dialog(False)
    with qtbot.waitSignal(dlg.model_opened, timeout=TIMEOUT):
        _menu_action(window, "Open model…").trigger()
    assert dlg.isVisible() and dlg.path_edit.text() == str(softmax_model)

    folder = tmp_path / "exported"
    keras.saving.load_model(softmax_model, compile=False).export(folder, verbose=False)
    monkeypatch.setattr(
        QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder))
    )
    with qtbot.waitSignal(dlg.model_opened, timeout=TIMEOUT):
        qtbot.mouseClick(dlg.folder_button, Qt.MouseButton.LeftButton)
    assert dlg.facts["format"].text().startswith("TensorFlow SavedModel")
    assert dlg.facts["kind"].text() == "decided from the values on the first batch"
    prediction, provenance = _run(dlg, qtbot)
    assert provenance["model"]["format"] == "savedmodel"
    assert prediction.kind is PredictionKind.PROBABILITIES  # softmax values, found from them
    raw = keras.saving.load_model(softmax_model, compile=False)(
        np.moveaxis(np.asarray(anat.data, np.float32), 2, 0)[..., None], training=False
    )
    expected = np.moveaxis(np.asarray(raw, np.float32), (0, 3), (3, 0))
    np.testing.assert_allclose(prediction.channels_first(), expected, atol=2e-5)


def test_model_options_reach_the_dialog_and_every_run(
    window: Any, qtbot: Any, anat: Volume, softmax_model: Path, nibabel_anatomical: Path
) -> None:
    from segviewer.ui.app import model_options

    opts = model_options(["normalization=zscore", "batch_size=5", "transpose=true"])
    assert opts == {"normalization": "zscore", "batch_size": 5, "transpose": True}
    with pytest.raises(SegviewerError, match="KEY=VALUE"):
        model_options(["normalization"])
    dlg = window.model_dialog(False)
    with qtbot.waitSignal(dlg.run_finished, timeout=TIMEOUT) as done:
        window.open_files(nibabel_anatomical, model=softmax_model, model_options=opts)
    provenance = done.args[0][1]
    assert provenance["overrides"] == opts
    assert provenance["preprocessing"]["transpose"] is True  # a field the dialog has no widget for
    assert dlg.norm_combo.currentData() == "zscore" and dlg.batch_spin.value() == 5
    # A later Run from the dialog keeps them.
    _, again = _run(dlg, qtbot)
    assert again["overrides"] == opts
    # transpose: each axial slice reaches the model as (axis 1, axis 0), and back.
    model = keras.saving.load_model(softmax_model, compile=False)
    x = np.transpose(_zscore(anat.data), (2, 1, 0))[..., None]  # (a2, a1, a0, 1)
    y = np.asarray(model(x, training=False), np.float32)  # (a2, a1, a0, C)
    expected = np.transpose(y, (3, 2, 1, 0))  # (C, a0, a1, a2)
    np.testing.assert_allclose(window.state.prediction.channels_first(), expected, atol=2e-5)


def test_command_line_model_option_errors(
    qtbot: Any, tmp_path: Path, capsys: Any, nibabel_anatomical: Path, softmax_model: Path
) -> None:
    from segviewer.ui.app import main

    shot = str(tmp_path / "shot.png")
    image = str(nibabel_anatomical)
    assert (
        main(
            [
                image,
                "--model",
                str(softmax_model),
                "--model-option",
                "bogus=1",
                "--screenshot",
                shot,
            ]
        )
        == 2
    )
    assert "unknown field(s) bogus" in capsys.readouterr().err
    assert main([image, "--model-option", "normalization=zscore"]) == 2
    assert "only apply with --model" in capsys.readouterr().err
