"""Helpers shared by the window tests (imported as a plain module: tests/ui is on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import Prediction, PredictionKind


def demo_prediction(demo_dir: Path, image_shape: tuple[int, int, int]) -> Prediction:
    """tissue_prob.nii.gz as a Prediction (through io.predictions when it is available)."""
    try:
        from segviewer.io.predictions import load_prediction
    except ImportError:  # io.predictions lands in parallel; same result via the core pieces
        import nibabel

        from segviewer.core.layout import detect_layout

        data = np.asarray(nibabel.load(demo_dir / "tissue_prob.nii.gz").dataobj, np.float32)  # type: ignore[attr-defined]
        layout = detect_layout(data.shape, image_shape)
        return Prediction(
            data,
            PredictionKind.PROBABILITIES,
            layout,
            3,
            source=str(demo_dir / "tissue_prob.nii.gz"),
        )
    return load_prediction(demo_dir / "tissue_prob.nii.gz", image_shape)


def wait_idle(qtbot: Any, win: Any, timeout: int = 30_000) -> None:
    qtbot.waitUntil(win.is_idle, timeout=timeout)
