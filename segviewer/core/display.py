"""The window's display settings, declared once: names, choices, ranges and defaults.

``ui.state.ViewerState`` validates against these, the window's widgets take their ranges
from them, and the command line (``segviewer IMAGE --opacity ... --outline-width ...``)
checks its flags with them, so a setting has one range everywhere (as FSLeyes declares each
display option once with its bounds). Pure Python: no Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segviewer.core.errors import SegviewerError
from segviewer.core.orientation import VIEWS

__all__ = [
    "DISPLAYS",
    "LAYOUTS",
    "MIN_CONFIDENCE",
    "MODES",
    "OPACITY",
    "OUTLINE_WIDTH",
    "THRESHOLD",
    "Bounded",
]

#: How classes are drawn: filled areas, outlines, or both.
MODES = ("fill", "outline", "both")
#: What the overlay shows: the labels, a heatmap (probability of a class, confidence,
#: entropy) or the disagreement with the reference segmentation.
DISPLAYS = ("labels", "probability", "confidence", "entropy", "errors")
#: What the canvas area shows: one plane, or the three linked planes side by side.
LAYOUTS = (*VIEWS, "three")


@dataclass(frozen=True)
class Bounded:
    """A numeric setting declared once: its name (as messages say it), range and default."""

    name: str
    minimum: float
    maximum: float
    default: float
    step: float = 1.0
    integer: bool = False

    def check(self, value: float) -> float:
        """``value`` if it is within bounds (an ``int`` for integer settings).

        Raises
        ------
        SegviewerError
            Out of range, or not a number, naming the setting and its range.
        """
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise SegviewerError(f"{self.name} must be a number, got {value!r}") from None
        if not (np.isfinite(v) and self.minimum <= v <= self.maximum):
            raise SegviewerError(
                f"{self.name} must be between {self._fmt(self.minimum)} and "
                f"{self._fmt(self.maximum)}, got {value}"
            )
        if self.integer:
            if v != int(v):
                raise SegviewerError(f"{self.name} must be a whole number, got {value}")
            return int(v)
        return v

    def _fmt(self, v: float) -> str:
        return str(int(v)) if self.integer or v == int(v) else str(v)


OPACITY = Bounded("opacity", 0.0, 1.0, 0.5, step=0.01)
OUTLINE_WIDTH = Bounded("outline width (pixels)", 1, 20, 1, integer=True)
THRESHOLD = Bounded("threshold", 0.0, 1.0, 0.5, step=0.05)
MIN_CONFIDENCE = Bounded("minimum confidence", 0.0, 1.0, 0.6, step=0.05)
