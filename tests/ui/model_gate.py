"""A Keras layer that lets a test hold a model run inside the model's process.

Imported by the model's process when a model holding a :class:`Gate` is opened trusted (its
module is a custom class: segviewer refuses it otherwise). tests/ui is on ``sys.path``, and the
model's process imports from the same places as the test process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="segviewer_tests")
class Gate(keras.layers.Layer):
    """Identity. Each call (one batch) leaves a file ``call-N`` in ``folder``; while
    ``folder/hold`` exists the call waits (at most 60 s), so a batch stays in the model."""

    def __init__(self, folder: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "folder": self.folder}

    def call(self, x: Any) -> Any:
        folder = Path(self.folder)

        def gate(t: Any) -> Any:
            n = len(list(folder.glob("call-*"))) + 1
            (folder / f"call-{n}").touch()
            deadline = time.monotonic() + 60
            while (folder / "hold").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            return t

        y = tf.py_function(gate, [x], tf.float32)
        y.set_shape(x.shape)
        return y


def calls(folder: Path) -> int:
    """How many batches have entered the gate."""
    return len(list(folder.glob("call-*")))
