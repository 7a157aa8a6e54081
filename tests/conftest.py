"""Shared fixtures: real MRI that the dependencies ship, and the bundled demo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


class _NoTensorFlow:
    """Meta-path finder that makes ``import tensorflow`` / ``import keras`` fail.

    With ``SEGVIEWER_TEST_NO_TF=1`` the suite runs as on a machine without TensorFlow, so
    ``-m "not tf"`` proves that every test needing it carries the ``tf`` marker (CI runs it).
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            raise ModuleNotFoundError(f"No module named {name!r} (SEGVIEWER_TEST_NO_TF)")
        return None


if os.environ.get("SEGVIEWER_TEST_NO_TF") == "1":
    import importlib.util
    import sys

    sys.meta_path.insert(0, _NoTensorFlow())  # type: ignore[arg-type]
    _real_find_spec = importlib.util.find_spec

    def _find_spec_without_tf(name: str, package: str | None = None) -> object:
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"):
            return None
        return _real_find_spec(name, package)

    importlib.util.find_spec = _find_spec_without_tf  # type: ignore[assignment]

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """resources/demo: t1.nii.gz (98x116x94, 2 mm RAS), tissue_prob.nii.gz (…, 3), classes.json."""
    return DEMO


@pytest.fixture(scope="session")
def mr_small() -> Path:
    """pydicom's MR_small.dcm: one 64x64 MR slice (explicit VR little endian)."""
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("MR_small.dcm"))


@pytest.fixture(scope="session")
def nibabel_anatomical() -> Path:
    """nibabel's tests/data/anatomical.nii: a real 3-D T1 (33x41x25)."""
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"


@pytest.fixture(scope="session")
def nibabel_example4d() -> Path:
    """nibabel's tests/data/example4d.nii.gz: a real 4-D fMRI (128x96x24x2)."""
    import nibabel

    return Path(nibabel.__file__).parent / "tests" / "data" / "example4d.nii.gz"
