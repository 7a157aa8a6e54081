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


def many_class_case(labels: np.ndarray, n_classes: int = 114) -> tuple[Prediction, Any]:
    """A ``n_classes``-class label prediction and class table (long names) made from the demo
    tissue labels by splitting each tissue class into regions (38 blocks of the volume), as
    an atlas of many structures looks: many small classes per slice."""
    from segviewer.core.classes import ClassTable
    from segviewer.core.layout import detect_layout

    per = -(-(n_classes - 1) // 3)  # regions per tissue class
    i0 = np.arange(labels.shape[0])[:, None, None] * 2 // labels.shape[0]
    i1 = np.arange(labels.shape[1])[None, :, None] * (-(-per // 2)) // labels.shape[1]
    region = (i0 * (-(-per // 2)) + i1) % per
    tissue = labels.astype(np.int64)
    out = np.where(
        (tissue > 0) & (tissue < 4), 1 + ((tissue - 1) * per + region) % (n_classes - 1), 0
    ).astype(np.uint8)
    sides = ("Left", "Right")
    names = [
        f"{sides[k % 2]} {('cortical grey matter', 'cerebral white matter', 'cerebrospinal fluid')[(k - 1) // per % 3]} region {k} (long atlas name)"
        for k in range(1, n_classes)
    ]
    table, _ = ClassTable.from_entries(
        [(0, "background", (0, 0, 0))]
        + [(k, names[k - 1], _default_color(k)) for k in range(1, n_classes)]
    )
    layout = detect_layout(out.shape, labels.shape, has_class_axis=False)
    pred = Prediction(out, PredictionKind.LABELS, layout, n_classes, source="<many classes>")
    return pred, table


def _default_color(k: int) -> tuple[int, int, int]:
    from segviewer.core.classes import default_color

    return default_color(k)
