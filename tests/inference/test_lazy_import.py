"""Importing segviewer.inference must not import TensorFlow (about 2 s, and optional)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_inference_does_not_import_tensorflow() -> None:
    code = (
        "import sys, segviewer.inference\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'h5py'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
