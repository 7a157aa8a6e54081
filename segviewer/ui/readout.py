"""The hover readout: what the voxel under the mouse is, as one line of text."""

from __future__ import annotations

import numpy as np

from segviewer.core import masks, orientation
from segviewer.core.types import label_dtype, reserved_labels
from segviewer.ui.state import ViewerState

__all__ = ["readout_text"]


def readout_text(state: ViewerState, ijk: tuple[int, int, int] | None, label: int | None) -> str:
    """Text for voxel ``ijk``: voxel, world mm, intensity, class, reference class (when a
    reference is loaded), top-3 probabilities. ``label`` is the predicted label there as
    the canvas shows it (None without a prediction)."""
    st = state
    if ijk is None or st.volume is None:
        return ""
    x, y, z = orientation.voxel_to_world(st.volume.affine, ijk)
    value = st.volume.data[ijk]
    parts = [
        f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})",
        f"{x:.1f}, {y:.1f}, {z:.1f} mm (RAS)",
        f"value {float(value):.6g}",
    ]
    pred, table = st.prediction, st.table
    if pred is None or table is None:
        label = None
    if label is not None and pred is not None and table is not None:
        uncertain, invalid = reserved_labels(label_dtype(pred.n_classes))
        if label == uncertain:
            name = "uncertain (below minimum confidence)"
        elif label == invalid:
            name = "invalid (NaN/inf in the prediction)"
        elif label < len(table):
            name = table[label].name
        else:
            name = f"label {label}"
        parts.append(f"class: {name}")
    if st.reference is not None:
        ref = int(st.reference[ijk])
        scored = table is not None and 0 <= ref < len(table)
        ref_name = table[ref].name if table is not None and scored else f"label {ref} (not scored)"
        if label is not None and scored:
            ref_name += " (agrees)" if label == ref else " (disagrees)"
        parts.append(f"reference: {ref_name}")
    if pred is not None and table is not None and pred.kind.value != "labels":
        probs = np.asarray(masks.slice_probabilities(pred, ijk), np.float64)
        order = np.argsort(-probs, kind="stable")[:3]
        top = ", ".join(
            f"{table[int(k)].name if int(k) < len(table) else int(k)} {probs[k]:.2f}" for k in order
        )
        parts.append(f"P: {top}")
    return "   ".join(parts)
