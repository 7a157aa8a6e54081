"""segviewer: review what a semantic-segmentation model predicts on MRI."""

from __future__ import annotations

from typing import Any

from segviewer._version import __version__

__all__ = ["__version__", "view"]


def view(*args: Any, **kwargs: Any) -> Any:
    """Open the viewer window from a script or notebook; see :func:`segviewer.ui.api.view`."""
    from segviewer.ui.api import view as _view

    return _view(*args, **kwargs)
