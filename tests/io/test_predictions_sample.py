"""Opening a large memory-mapped prediction reads a few pages, not the file."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from segviewer.io import predictions
from segviewer.io.predictions import load_prediction


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("channels_last", [True, False])
def test_opening_a_large_npy_stays_small_in_memory(tmp_path: Path, channels_last: bool) -> None:
    shape = (40, 160, 160)
    c = 114  # 467 MB of float32 zeros, a sparse file (the file system stores no zeros)
    path = tmp_path / "big.npy"
    full = (*shape, c) if channels_last else (c, *shape)
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=full).flush()
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # as if written long ago
    os.close(fd)
    before = resident_mb()
    pred = load_prediction(path, shape)
    grown = resident_mb() - before
    assert isinstance(pred.data, np.memmap)
    assert pred.n_classes == c and pred.channels_first().shape == (c, *shape)
    # the sample reads a few MB; sampling 32^3 scattered voxels mapped most of the file
    assert grown < 40, f"opening mapped {grown:.0f} MB of a 467 MB file"


def test_sample_spreads_over_the_volume_with_every_channel() -> None:
    rng = np.random.default_rng(0)
    cl = rng.random((30, 40, 50, 5)).astype(np.float32)
    for view in (np.moveaxis(cl, -1, 0), np.ascontiguousarray(np.moveaxis(cl, -1, 0))):
        s = predictions._sample(view)
        assert s.shape[0] == 5 and s.shape[1] >= 1000
        # every sampled column is one voxel's full class vector
        rows = {tuple(v) for v in cl.reshape(-1, 5)}
        assert all(tuple(col) in rows for col in s.T[:50])
    lm = rng.integers(0, 9, (6, 7, 8)).astype(np.uint8)
    s = predictions._sample(lm)
    assert s.ndim == 1 and set(np.unique(s)) <= set(range(9))
    assert predictions._sample(np.zeros((2, 0, 3, 4))).size == 0
