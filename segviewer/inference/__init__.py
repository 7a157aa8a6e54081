"""Running TensorFlow/Keras models. TensorFlow is imported inside functions only.

Public API (see ``docs/design.md``): :func:`open_model` / :func:`iter_open_model` ->
:class:`ModelHandle`; :func:`predict` (generator of progress, returns ``(Prediction,
provenance)``); :func:`save_logits`; model cards :class:`ModelCard`, :func:`load_card`,
:func:`save_card`, :func:`card_for_model`. Importing this package does not import TensorFlow.
"""

import os

# TensorFlow's C++ start-up chatter (CPU instruction sets, oneDNN notices) is noise on a
# reviewer's terminal; a user who wants it sets TF_CPP_MIN_LOG_LEVEL themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from segviewer.inference.card import (  # noqa: E402
    ModelCard,
    card_for_model,
    card_path_for,
    find_card,
    load_card,
    parse_overrides,
    save_card,
)
from segviewer.inference.model import (  # noqa: E402
    ModelHandle,
    TrustRequired,
    device_description,
    iter_open_model,
    open_model,
)
from segviewer.inference.runner import predict, save_logits

__all__ = [
    "ModelCard",
    "ModelHandle",
    "card_for_model",
    "card_path_for",
    "device_description",
    "find_card",
    "iter_open_model",
    "load_card",
    "open_model",
    "parse_overrides",
    "predict",
    "save_card",
    "save_logits",
    "TrustRequired",
]
