"""The window's read-only texts: image information, prediction details, keys, about."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from segviewer.core import orientation
from segviewer.ui.jobs import scanner_window
from segviewer.ui.state import ViewerState

__all__ = [
    "HELP_TEXT",
    "image_info_text",
    "prediction_details_text",
    "show_about",
    "show_help",
    "show_image_info",
    "show_prediction_details",
]

HELP_TEXT = (
    "Slices: mouse wheel, ↑/↓ or ←/→ (±1), PageUp/PageDown (±10), Home/End\n"
    "Zoom: Ctrl+wheel; pan: left-drag; reset zoom: Ctrl+0 or double right-click\n"
    "Window/level: right-drag (horizontal = width, vertical = level)\n"
    "Click: move the cursor (three-view: the other views follow)\n"
    "Views: Ctrl+1 axial, Ctrl+2 coronal, Ctrl+3 sagittal, Ctrl+4 three views\n"
    "Classes: A show all, N hide all, 1–9 toggle a class\n"
    "Reference: E / Shift+E next / previous slice with the most errors for the class "
    "chosen under Show > Errors vs reference\n"
    "Test set: Ctrl+N / Ctrl+P next / previous case of the case table; "
    "Ctrl+Shift+A / R / U mark the case (or slice) accept / reject / unsure\n"
    "Slice numbers are 0-based, like voxel indices and --slice: slice 47 / 93\n"
    "Views are radiological: the patient's right is on the screen's left."
)


def image_info_text(state: ViewerState) -> str:
    """What View > Image information shows: source, format, shape, spacing, orientation,
    data type, value range, frames, notes and warnings of the loaded image."""
    vol = state.volume
    if vol is None:
        return "No image is loaded."
    data = vol.data
    codes = orientation.orientation_code(vol)  # "unknown" rather than made-up letters
    sp = ", ".join(f"{v:.4g}" for v in vol.spacing)
    lines = [
        f"Source: {vol.source}",
        f"Format: {vol.format}",
        f"Shape (voxels, axes 0/1/2): {' × '.join(str(n) for n in vol.shape)}",
        f"Voxel spacing: {sp} mm",
        f"Orientation (axis codes): {codes}",
        f"Data type: {data.dtype}",
        f"Value range: {float(np.min(data)):.6g} … {float(np.max(data)):.6g}",
    ]
    meta = vol.metadata
    n_frames = meta.get("n_frames")
    if isinstance(n_frames, int) and n_frames > 1:
        lines.append(f"Frame: {meta.get('frame', 0)} of {n_frames} (0-based)")
    scanner = scanner_window(vol)
    if scanner is not None:
        lines.append(f"Scanner window (DICOM): level {scanner[0]:.6g}, width {scanner[1]:.6g}")
    for note in meta.get("notes", ()):
        lines.append(f"Note: {note}")
    warnings = list(meta.get("warnings", ()))
    lines.append("Warnings: " + ("none" if not warnings else ""))
    lines += [f"  • {w}" for w in warnings]
    if state.reference is not None:
        lines.append(f"Reference segmentation: {state.reference_source or '<array>'}")
        lines += [f"  • {n}" for n in state.reference_notes]
    return "\n".join(lines)


def prediction_details_text(state: ViewerState) -> str:
    """What View > Prediction details shows: source, kind, classes, layout, provenance."""
    p = state.prediction
    if p is None:
        return "No prediction is loaded."
    lines = [
        f"Source: {p.source}",
        f"Kind: {p.kind.value}",
        f"Classes: {p.n_classes}",
        f"Raw shape: {tuple(p.data.shape)}  layout: {getattr(p.layout, 'name', '?')}",
        *p.notes,
    ]
    if p.resampling is not None:
        lines.append(f"Resampling: {p.resampling.describe()}")
    for k, v in state.provenance.items():
        if k not in ("source", "notes", "resampling"):
            lines.append(f"{k}: {v}")
    return "\n".join(str(x) for x in lines)


def show_image_info(parent: QWidget, state: ViewerState) -> QMessageBox:
    """View > Image information (non-modal, like ITK-SNAP's Image Information)."""
    box = QMessageBox(parent)
    box.setWindowTitle("Image information")
    warn = state.volume is not None and state.volume.metadata.get("warnings")
    box.setIcon(QMessageBox.Icon.Warning if warn else QMessageBox.Icon.Information)
    box.setText(image_info_text(state))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.setModal(False)
    box.show()
    return box


def show_prediction_details(parent: QWidget, state: ViewerState) -> None:
    QMessageBox.information(parent, "Prediction details", prediction_details_text(state))


def show_help(parent: QWidget) -> None:
    QMessageBox.information(parent, "Keyboard and mouse", HELP_TEXT)


def show_about(parent: QWidget) -> None:
    from segviewer._version import __version__

    QMessageBox.about(
        parent,
        "About segviewer",
        f"segviewer {__version__}\nReview segmentation predictions on MRI.",
    )
