"""Models in a child process (inference/process.py): same results and errors as in-process
runs, big outputs memory-mapped, and no child outliving its parent."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segviewer.core.progress import run_to_end
from segviewer.core.types import SegviewerError, Volume
from segviewer.inference import TrustRequired, open_model, predict
from segviewer.inference import runner as runner_module
from segviewer.inference.process import ModelProcess

pytestmark = pytest.mark.tf
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

Models = Callable[[str, str], tuple[Path, Any]]


@pytest.fixture
def process() -> Any:
    mp = ModelProcess()
    yield mp
    mp.close()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (not ended, not a zombie waiting to be reaped; Linux)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_errors_come_back_with_the_same_type_and_message(
    process: ModelProcess, keras_models: Models, anat_volume: Volume, tmp_path: Path
) -> None:
    # Opening: a refusal to run code stays a TrustRequired (the window offers to trust).
    lam = tmp_path / "with_lambda.keras"
    keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Lambda(lambda t: t * 2.0, name="double")]
    ).save(lam)
    with pytest.raises(TrustRequired) as here:
        open_model(lam)
    with pytest.raises(TrustRequired) as there:
        run_to_end(process.open(lam))
    assert str(there.value) == str(here.value)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a model")
    with pytest.raises(SegviewerError) as here_junk:
        open_model(junk)
    with pytest.raises(SegviewerError) as there_junk:
        run_to_end(process.open(junk))
    assert type(there_junk.value) is SegviewerError
    assert str(there_junk.value) == str(here_junk.value)

    # Running: the image does not fit the model (three input channels, one in the image).
    rgb, _ = keras_models("rgb2d", "keras")
    handle = run_to_end(process.open(rgb))
    assert handle.model is None and handle.input_channels == 3 and handle.rank == 2
    with pytest.raises(SegviewerError) as here_run:
        run_to_end(predict(anat_volume, rgb))
    with pytest.raises(SegviewerError) as there_run:
        run_to_end(process.predict(anat_volume))
    assert str(there_run.value) == str(here_run.value)
    assert "3 input channels" in str(there_run.value)
    # The process lives on: the same model runs with a card that fits.
    pid = process.pid
    pred, provenance = run_to_end(process.predict(anat_volume, overrides={"repeat_channels": True}))
    expected, _ = run_to_end(predict(anat_volume, rgb, overrides={"repeat_channels": True}))
    assert process.pid == pid
    np.testing.assert_allclose(pred.channels_first(), expected.channels_first(), atol=1e-6)
    assert provenance["preprocessing"]["repeat_channels"] is True
    assert process.folder is not None and list(process.folder.iterdir()) == []


def test_outputs_above_the_memmap_size_stay_mapped_and_go_with_the_prediction(
    process: ModelProcess, anat_volume: Volume, tmp_path: Path
) -> None:
    """2048 output channels on nibabel's T1 (33 x 41 x 25): 277 MB of float32, more than
    MEMMAP_BYTES, so the child writes a memory-mapped file and hands it over as it is."""
    keras.utils.set_random_seed(3)
    wide = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(2048, 1)])
    path = tmp_path / "wide.keras"
    wide.save(path)
    n = 2048 * int(np.prod(anat_volume.shape)) * 4
    assert n > runner_module.MEMMAP_BYTES
    run_to_end(process.open(path))
    pred, provenance = run_to_end(
        process.predict(anat_volume, overrides={"normalization": "zscore"})
    )
    assert provenance["output"]["storage"] == "memmap"
    base = pred.data
    while not isinstance(base, np.memmap) and isinstance(base.base, np.ndarray):
        base = base.base
    assert isinstance(base, np.memmap)
    kept = Path(str(base.filename))
    assert kept.name.startswith("segviewer-logits-") and kept.exists()
    assert process.folder is not None and list(process.folder.iterdir()) == []
    # Slice 12 (axis 2) against the model called here with the same (z-scored) input.
    data = np.asarray(anat_volume.data, np.float64)
    z = ((data - data.mean()) / data.std()).astype(np.float32)
    y = np.asarray(wide(z[None, :, :, 12, None], training=False), np.float32)[0]
    np.testing.assert_allclose(pred.channels_first()[:, :, :, 12], np.moveaxis(y, -1, 0), atol=1e-4)
    del pred, base
    gc.collect()
    assert not kept.exists()  # removed with the prediction


def test_small_outputs_are_read_into_memory(
    process: ModelProcess,
    keras_models: Models,
    anat_volume: Volume,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = keras_models("unet2d_softmax", "keras")
    run_to_end(process.open(path))
    pred, provenance = run_to_end(process.predict(anat_volume, batch_size=5))
    assert type(pred.data) is np.ndarray and provenance["output"]["storage"] == "memory"
    here, here_provenance = run_to_end(predict(anat_volume, path, batch_size=5))
    np.testing.assert_allclose(pred.channels_first(), here.channels_first(), atol=1e-6)
    assert (pred.layout, pred.kind, pred.n_classes, pred.notes, pred.source) == (
        here.layout,
        here.kind,
        here.n_classes,
        here.notes,
        here.source,
    )
    for key in ("model", "card", "preprocessing", "batch_size", "output", "card_source"):
        assert provenance[key] == here_provenance[key], key

    # A process that died while idle is started again by the next run, which says why.
    pid = process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while process.alive and time.monotonic() < deadline:  # ended, not just ending
        time.sleep(0.05)
    seen: list[str] = []
    again, _ = run_to_end(
        process.predict(anat_volume, batch_size=5), lambda p: seen.append(p.message)
    )
    assert process.pid not in (None, pid)
    assert (
        seen[0] == "restarting the model process (it was killed (SIGKILL; the system kills "
        "the largest process when memory runs out))"
    )
    np.testing.assert_array_equal(again.channels_first(), pred.channels_first())


_CHILD_SCRIPT = """
import os, signal, sys
from segviewer.core.progress import run_to_end
from segviewer.inference.process import ModelProcess
mp = ModelProcess()
run_to_end(mp.open(sys.argv[1]))
print(mp.pid, mp.folder, flush=True)
if sys.argv[2] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[2] == "closed":
    mp.close()  # returns at once; the interpreter exits right after
"""


@pytest.mark.parametrize("how", ["exits", "closed", "killed"])
def test_no_child_outlives_its_parent(keras_models: Models, how: str) -> None:
    """The parent exits normally with the model open or just closed (the atexit hook), or is
    killed outright (the child sees its standard input close): the model's process ends."""
    path, _ = keras_models("unet2d_softmax", "keras")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_SCRIPT, str(path), how],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == (-9 if how == "killed" else 0), out.stderr[-2000:]
    pid_text, folder = out.stdout.split()
    pid = int(pid_text)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    if how != "killed":
        assert not Path(folder).exists()
    else:
        # Killed outright, the parent could not remove the folder; it is empty (the child
        # wrote nothing there) and lives in the system's temporary folder.
        assert list(Path(folder).iterdir()) == []
        Path(folder).rmdir()
