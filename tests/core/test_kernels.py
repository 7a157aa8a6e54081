"""The compiled labels kernels (core.kernels) against np.argmax and against the numpy path:
every class count they cover, both layouts, threads, memory maps, ties and invalid voxels;
the cache on disk; and that they are never used where they do not apply."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_fast_paths import ref_labels

from segviewer.core import kernels, masks
from segviewer.core.layout import detect_layout
from segviewer.core.masks import iter_labels, labels_from_block, prepare_labels_kernel
from segviewer.core.progress import run_to_end
from segviewer.core.types import MaskSettings, Prediction, PredictionKind, reserved_labels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")

REPO = Path(__file__).resolve().parents[2]
INV8 = reserved_labels(np.uint8)[1]


@pytest.fixture(autouse=True, scope="module")
def _restore_kernels() -> Iterator[None]:
    """Kernels made ready here do not leak into other test files (they test numpy)."""
    saved = dict(kernels._KERNELS)
    yield
    kernels._KERNELS.clear()
    kernels._KERNELS.update(saved)


def logits(shape: tuple[int, int, int], c: int, seed: int) -> np.ndarray:
    """Channels-last float32 logits: exact ties (small integers), NaN, +inf, all -inf,
    partly -inf, and a +0.0 / -0.0 tie, which np.argmax gives to the lower class."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((*shape, c)) * 3).astype(np.float32)
    flat = x.reshape(-1, c)
    flat[1, [0, c - 1]] = flat[1].max() + 1  # exact tie at the top: the lower class wins
    flat[2, 1] = np.nan
    flat[3, 0] = np.inf
    flat[4, :] = -np.inf
    flat[5, :-1] = -np.inf  # log-probabilities with zeros: the last class, legal
    flat[6, 0] = np.nan
    flat[6, 1] = np.inf
    flat[8, c - 1] = np.nan  # NaN in the last class only
    ties = flat[10 : len(flat) // 2]
    ties[:] = rng.integers(-2, 3, size=ties.shape).astype(np.float32)  # many exact ties
    flat[7, :] = -1.0
    flat[7, 0] = -0.0
    flat[7, 1 % c] = 0.0
    return x


def pred_of(raw: np.ndarray, shape: tuple[int, int, int], layout: str, c: int,
            kind: PredictionKind = PredictionKind.LOGITS) -> Prediction:  # fmt: skip
    return Prediction(raw, kind, detect_layout(raw.shape, shape, explicit=layout), c)


def both_paths(pred: Prediction, workers: int) -> tuple[masks.LabelResult, masks.LabelResult]:
    assert prepare_labels_kernel(pred)
    fast = run_to_end(iter_labels(pred, MaskSettings(), workers=workers))
    with kernels.suspended():
        slow = run_to_end(iter_labels(pred, MaskSettings(), workers=workers))
    return fast, slow


@pytest.mark.parametrize("c", [2, 3, 4, 7, kernels.MAX_CLASSES])
@pytest.mark.parametrize("layout", ["DHWC", "CDHW", "NDHWC", "NCDHW"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_kernel_labels_equal_argmax_and_the_numpy_path(
    c: int, layout: str, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(masks, "_CHUNK_VOXELS", 700)  # many chunks: the thread pool is used
    shape = (9, 13, 11)
    cl = logits(shape, c, c)
    raw = np.ascontiguousarray(np.moveaxis(cl, -1, 0)) if "C" in layout[:2] else cl
    raw = raw[None] if layout.startswith("N") else raw
    # Fortran order: NIfTI as nibabel reads it (the class planes contiguous either way)
    raw = np.asfortranarray(raw) if order == "F" else raw
    pred = pred_of(raw, shape, layout, c)
    ref = ref_labels(cl)
    valid = ref[ref != INV8]
    for workers in (1, 2):
        fast, slow = both_paths(pred, workers)
        np.testing.assert_array_equal(fast.labels, ref)
        np.testing.assert_array_equal(slow.labels, ref)
        np.testing.assert_array_equal(fast.counts, np.bincount(valid, minlength=c)[:c])
        np.testing.assert_array_equal(fast.counts, slow.counts)
        assert fast.n_invalid == slow.n_invalid == int((ref == INV8).sum()) >= 4
        assert fast.invalid_examples == slow.invalid_examples
    assert kernels.ready(c, channels_last="C" not in layout[:2] and order == "C")


def test_kernel_on_a_memory_mapped_file_and_probabilities(tmp_path: Path) -> None:
    shape = (12, 10, 14)
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(5), size=shape).astype(np.float32)
    p.reshape(-1, 5)[:50] = np.round(p.reshape(-1, 5)[:50], 1)  # ties
    np.save(tmp_path / "p.npy", p)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r", allow_pickle=False)
    pred = pred_of(mm, shape, "DHWC", 5, PredictionKind.PROBABILITIES)
    fast, slow = both_paths(pred, 2)
    np.testing.assert_array_equal(fast.labels, np.argmax(p, axis=-1))
    np.testing.assert_array_equal(fast.labels, slow.labels)
    np.testing.assert_array_equal(fast.counts, slow.counts)


def test_a_ready_kernel_serves_the_slice_path_too() -> None:
    cl = logits((6, 20, 24), 4, 5)
    cf = np.ascontiguousarray(np.moveaxis(cl, -1, 0))
    assert prepare_labels_kernel(pred_of(cf, (6, 20, 24), "CDHW", 4))
    block = cf[:, 2]  # one axial slice, class planes contiguous
    out = np.empty((20, 24), np.uint8)
    assert kernels.argmax_into(block, out, INV8, None) is not None  # the kernel ran
    np.testing.assert_array_equal(out, ref_labels(cl[2]))
    np.testing.assert_array_equal(
        labels_from_block(block, "logits", 4, MaskSettings()), ref_labels(cl[2])
    )


def test_kernels_stay_out_where_they_do_not_apply() -> None:
    shape = (5, 6, 7)
    cl = logits(shape, 4, 9)
    assert prepare_labels_kernel(pred_of(cl, shape, "DHWC", 4))
    lab = np.empty(shape, np.uint8)
    cf = np.moveaxis(cl, -1, 0)
    # float64, too many classes, a strided block, labels not contiguous: numpy (None)
    assert kernels.argmax_into(cf.astype(np.float64), lab, INV8, None) is None
    wide = np.moveaxis(logits(shape, kernels.MAX_CLASSES + 1, 9), -1, 0)
    assert kernels.argmax_into(wide, lab, INV8, None) is None
    assert kernels.argmax_into(cf[:, :, ::2], lab[:, ::2], INV8, None) is None
    # labels in another memory order than the data: written through a scratch buffer
    other = np.empty(shape[::-1], np.uint8).T
    assert kernels.argmax_into(cf, other, INV8, None) == 5
    np.testing.assert_array_equal(other, ref_labels(cl))
    with kernels.suspended():
        assert kernels.argmax_into(cf, lab, INV8, None) is None
    ref = ref_labels(cl)
    assert kernels.argmax_into(cf, lab, INV8, None) == int((ref == INV8).sum())
    np.testing.assert_array_equal(lab, ref)
    # a minimum confidence needs the soft maximum: the numpy path, same labels as before
    pred = pred_of(cl, shape, "DHWC", 4)
    s = MaskSettings(min_confidence=0.6)
    with_kernel = run_to_end(iter_labels(pred, s))
    with kernels.suspended():
        np.testing.assert_array_equal(run_to_end(iter_labels(pred, s)).labels, with_kernel.labels)
    assert with_kernel.n_uncertain > 0
    # sigmoid / multi-label / label maps have other rules and are never sent to a kernel
    assert not prepare_labels_kernel(pred_of(cl, shape, "DHWC", 5, PredictionKind.MULTILABEL))


def _child(code: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), **env}, check=True,
    )  # fmt: skip
    return out.stdout.strip()


_WARM = (
    "import numpy as np\n"
    "from segviewer.core import kernels\n"
    "b = np.zeros((3, 2, 4, 4), np.float32)\n"
    "print(kernels.available(), kernels.warm_up(b))\n"
)


def test_kernels_are_cached_on_disk_and_optional(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert _child(_WARM, {"XDG_CACHE_HOME": str(cache)}) == "True True"
    folder = cache / "segviewer" / "kernels"
    sources = list(folder.glob("argmax_cf3_*.py"))
    assert len(sources) == 1 and "generated by segviewer" in sources[0].read_text()
    machine_code = list((folder / "__pycache__").glob("argmax_cf3_*.nbi"))
    assert machine_code, "numba did not cache the compiled kernel"
    stamp = sources[0].stat().st_mtime_ns
    assert _child(_WARM, {"XDG_CACHE_HOME": str(cache)}) == "True True"
    assert sources[0].stat().st_mtime_ns == stamp  # reused, not rewritten
    # a cache that cannot be written: compiled in memory, still correct
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would go")
    assert _child(_WARM, {"XDG_CACHE_HOME": str(blocked)}) == "True True"
    # turned off: numpy everywhere
    assert _child(_WARM, {"SEGVIEWER_NO_NUMBA": "1"}) == "False False"


def test_numba_is_not_imported_by_the_window_or_the_first_labels() -> None:
    code = (
        "import sys, numpy as np\n"
        "from segviewer.core.layout import detect_layout\n"
        "from segviewer.core.masks import iter_labels\n"
        "from segviewer.core.progress import run_to_end\n"
        "from segviewer.core.types import MaskSettings, Prediction\n"
        "import segviewer.ui.main_window\n"
        "x = np.zeros((4, 3, 5, 6), np.float32)\n"
        "p = Prediction(x, 'logits', detect_layout(x.shape, (3, 5, 6)), 4)\n"
        "run_to_end(iter_labels(p, MaskSettings()))\n"
        "print('numba' in sys.modules)\n"
    )
    assert _child(code, {}) == "False"
