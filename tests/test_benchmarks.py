"""The benchmarks run end to end (each case once, on tiny data), so they never rot.

Timings are not checked here (they depend on the machine); benchmarks/README.md holds them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_benchmark_runs_once_on_tiny_data(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        SEGVIEWER_SETTINGS=str(tmp_path / "settings.ini"),
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--data-dir",
         str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for case in ("volume", "switch", "heatmap", "window", "open", "gap", "startup"):
        assert f"\n{case} " in text, f"no {case} line in:\n{text}"
    assert "bare ImageItem floor" in text and "np.max" in text
    assert "first slice with overlay" in text and "launch -> first slice" in text
    # the kernels' table too (benchmarks/bench_masks.py, bench_overlay.py)
    assert "iter_labels" in text and "compose" in text


@pytest.mark.tf
def test_the_gap_benchmark_runs_with_the_model(tmp_path: Path) -> None:
    """``--model``: the demo model opens and runs in its process while the window's jobs run."""
    pytest.importorskip("tensorflow")
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="offscreen",
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--only", "gap",
         "--model", "--data-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "demo model (open and run in its process)" in out.stdout, out.stdout
