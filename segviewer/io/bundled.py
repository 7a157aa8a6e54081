"""Where the files segviewer ships live: the demo (image, tissue probabilities, class table,
model) and the application icon. Installed as the package ``segviewer.resources`` (the
repository's ``resources/`` folder), found through :mod:`importlib.resources` in any install
mode. A missing file means a broken installation and says so."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from segviewer.core.types import SegviewerError

__all__ = ["demo_model_path", "demo_paths", "icon_path"]


def _bundled(*parts: str, what: str) -> Path:
    path = Path(str(importlib.resources.files("segviewer.resources").joinpath(*parts)))
    if not path.exists():
        raise SegviewerError(f"the bundled {what} {path} is missing; reinstall segviewer")
    return path


def demo_paths() -> tuple[Path, Path, Path]:
    """The bundled demo: ``(t1.nii.gz, tissue_prob.nii.gz, classes.json)``."""
    return (
        _bundled("demo", "t1.nii.gz", what="demo file"),
        _bundled("demo", "tissue_prob.nii.gz", what="demo file"),
        _bundled("demo", "classes.json", what="demo file"),
    )


def demo_model_path() -> Path:
    """The bundled demo model (a small 2-D U-Net for the demo T1; card next to it)."""
    return _bundled("demo", "model.keras", what="demo model")


def icon_path(suffix: str = ".png") -> Path:
    """The application icon: ``.png`` (256 px) or ``.svg`` (``scripts/make_icon.py``)."""
    return _bundled("icons", f"segviewer{suffix}", what="icon")
