"""benchmarks/bench_evaluate.py runs end to end on the demo (tiny: 2 cases, in process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_evaluate_runs_once(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_evaluate.py"), "--cases", "2",
         "--workers", "0", "--no-slice-distances", "--dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 cases of (98, 116, 94) voxels" in out.stdout
    assert "in-proc" in out.stdout and "CPU s/case" in out.stdout
