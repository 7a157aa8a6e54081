"""Model cards: ``<model>.segviewer.json``, how to feed a model and read its output.

A card sits next to the model (``unet.keras`` -> ``unet.segviewer.json``; a SavedModel folder
``unet/`` -> ``unet.segviewer.json`` beside it or ``unet/segviewer.json`` inside it). Every field
is optional; ``docs/model_card.md`` documents them. Command-line flags and the window's settings
override card fields through :meth:`ModelCard.with_overrides`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segviewer.core.types import SegviewerError

__all__ = [
    "parse_overrides",
    "CARD_SUFFIX",
    "NORMALIZATIONS",
    "OUTPUT_KINDS",
    "ModelCard",
    "card_path_for",
    "card_for_model",
    "load_card",
    "save_card",
]

CARD_SUFFIX = ".segviewer.json"
FORMAT_VERSION = 1
NORMALIZATIONS = ("none", "zscore", "minmax", "max", "percentile")
SCOPES = ("volume", "slice")
OUTPUT_KINDS = ("auto", "probabilities", "logits", "sigmoid", "multilabel")
SIZE_POLICIES = ("pad", "resize", "tile")
INPUT_LAYOUTS = ("auto", "channels_last", "channels_first")
PAD_MODES = ("edge", "constant", "reflect")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class ModelCard:
    """How segviewer runs a model. Defaults describe a plain channels-last Keras model.

    Parameters
    ----------
    class_names, class_colors
        One name / ``"#rrggbb"`` colour per class, class 0 first (``None``: defaults).
    output_kind
        ``auto`` (decided from the model's last activation, or from the output values for a
        SavedModel), ``probabilities`` (softmax), ``logits``, ``sigmoid`` (one channel),
        ``multilabel`` (independent sigmoid channels).
    outputs_are_probabilities
        For ``sigmoid`` / ``multilabel``: whether values are already in [0, 1] (``None``:
        decided from the model).
    output_name
        Which output of a multi-output model (Keras output name or SavedModel signature key);
        ``None`` takes the first.
    normalization, normalization_scope, percentile_low, percentile_high, nonzero
        Intensity normalisation (see ``docs/model_card.md``), computed over the whole volume or
        each 2-D slice, optionally over non-zero voxels only (skull-stripped images).
    slice_axis
        Image axis (0, 1, 2) that becomes the batch axis for 2-D models.
    transpose, flip_rows, flip_cols
        In-plane order for 2-D models: a slice's rows are the lower remaining image axis and its
        columns the higher one; ``transpose`` swaps them, then the flips reverse rows / columns.
    size_policy, pad_mode, pad_value, tile_overlap
        Models with a fixed input size: ``pad`` (centred pad, error if the image is larger),
        ``resize`` (linear interpolation in, and back out) or ``tile`` (sliding window: tiles of
        the model's size overlapping by ``tile_overlap``, outputs blended with Gaussian weights).
        Free-size models are always padded (centred) to a multiple of the downsampling factor
        and cropped back.
    resize_to
        The spatial size the model was trained at, e.g. ``[128, 128, 128]`` (3-D models) or
        ``[256, 256]`` (2-D models: each slice): every item is resized to it (linear
        interpolation) and the output resized back, for fixed-size and free-size models
        alike. Must match a fixed input size where the model has one.
    input_layout
        ``auto`` (channels-last unless the input is recognisably channels-first: a leading
        axis of 1..4 channels before the spatial sizes), ``channels_last`` or
        ``channels_first`` (``(N, C, H, W)`` / ``(N, C, D, H, W)``, e.g. converted PyTorch
        models); channels-first models are run by transposing input and output.
    downsampling
        Overrides the downsampling factor found from the model's layers.
    repeat_channels
        Feed the single-channel image to every input channel of a multi-channel model.
    context_slices
        2.5-D models: the input channels are the slice and ``context_slices`` neighbours on
        each side along ``slice_axis`` (``2 k + 1`` channels, increasing index; the end
        slices repeat at the volume's edges).
    batch_size, threshold
        Slices per model call (``None``: automatic); default threshold for sigmoid outputs.
    description
        Free text shown to the user (what the model is, what it is not for).
    """

    class_names: tuple[str, ...] | None = None
    class_colors: tuple[str, ...] | None = None
    output_kind: str = "auto"
    outputs_are_probabilities: bool | None = None
    output_name: str | None = None
    normalization: str = "none"
    normalization_scope: str = "volume"
    percentile_low: float = 0.5
    percentile_high: float = 99.5
    nonzero: bool = False
    slice_axis: int = 2
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    size_policy: str = "pad"
    pad_mode: str = "edge"
    pad_value: float = 0.0
    tile_overlap: float = 0.5
    downsampling: int | None = None
    resize_to: tuple[int, ...] | None = None
    input_layout: str = "auto"
    repeat_channels: bool = False
    context_slices: int = 0
    batch_size: int | None = None
    threshold: float = 0.5
    description: str = ""

    def __post_init__(self) -> None:
        def choice(name: str, allowed: tuple[str, ...]) -> None:
            v = getattr(self, name)
            if v not in allowed:
                raise SegviewerError(
                    f"model card: {name} must be one of {', '.join(allowed)}, got {v!r}"
                )

        choice("output_kind", OUTPUT_KINDS)
        choice("normalization", NORMALIZATIONS)
        choice("normalization_scope", SCOPES)
        choice("size_policy", SIZE_POLICIES)
        choice("pad_mode", PAD_MODES)
        choice("input_layout", INPUT_LAYOUTS)
        if self.resize_to is not None and (
            len(self.resize_to) not in (2, 3)
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.resize_to)
        ):
            raise SegviewerError(
                "model card: resize_to must be 2 (slice models) or 3 (volume models) positive "
                f"whole numbers, e.g. [128, 128, 128]; got {list(self.resize_to)!r}"
            )
        if self.slice_axis not in (0, 1, 2):
            raise SegviewerError(
                f"model card: slice_axis must be the image axis 0, 1 or 2, got {self.slice_axis!r}"
            )
        if not 0.0 <= self.percentile_low < self.percentile_high <= 100.0:
            raise SegviewerError(
                "model card: need 0 <= percentile_low < percentile_high <= 100, got "
                f"{self.percentile_low} and {self.percentile_high}"
            )
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise SegviewerError(
                f"model card: batch_size must be a positive integer, got {self.batch_size!r}"
            )
        if not isinstance(self.context_slices, int) or self.context_slices < 0:
            raise SegviewerError(
                f"model card: context_slices must be a whole number >= 0, got {self.context_slices!r}"
            )
        if self.downsampling is not None and (
            not isinstance(self.downsampling, int) or self.downsampling < 1
        ):
            raise SegviewerError(
                f"model card: downsampling must be a positive integer, got {self.downsampling!r}"
            )
        if not 0.0 <= self.tile_overlap < 1.0:
            raise SegviewerError(
                f"model card: tile_overlap must be in [0, 1), got {self.tile_overlap}"
            )
        if not 0.0 <= self.threshold <= 1.0:
            raise SegviewerError(f"model card: threshold must be in [0, 1], got {self.threshold}")
        if self.class_colors is not None:
            bad = [c for c in self.class_colors if not _HEX.match(str(c))]
            if bad:
                raise SegviewerError(
                    f"model card: class colours must be '#rrggbb', got {', '.join(map(str, bad))}"
                )
            if self.class_names is not None and len(self.class_colors) != len(self.class_names):
                raise SegviewerError(
                    f"model card: {len(self.class_names)} class names but "
                    f"{len(self.class_colors)} colours; give one colour per class"
                )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (lists instead of tuples), with ``format_version``."""
        d: dict[str, Any] = {"format_version": FORMAT_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model card") -> ModelCard:
        """Build a card from parsed JSON; unknown keys are an error (they are usually typos)."""
        if not isinstance(data, Mapping):
            raise SegviewerError(f"{source}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        version = data.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise SegviewerError(
                f"{source}: format_version {version!r} is not supported (this segviewer reads "
                f"{FORMAT_VERSION}); update segviewer"
            )
        # A card may carry the class table in the classes.json form segviewer writes.
        classes = data.pop("classes", None)
        if classes is not None:
            try:
                ordered = sorted(classes, key=lambda c: int(c["index"]))
                data.setdefault("class_names", [str(c["name"]) for c in ordered])
                if all("color" in c for c in ordered):
                    data.setdefault("class_colors", [str(c["color"]) for c in ordered])
            except (TypeError, KeyError, ValueError) as e:
                raise SegviewerError(
                    f"{source}: 'classes' must be a list of {{index, name, color}} objects ({e})"
                ) from None
        return _build(cls(), data, source)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> ModelCard:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        if not overrides:
            return self
        return _build(self, {k: v for k, v in overrides.items() if v is not None}, "override")


def _build(base: ModelCard, data: Mapping[str, Any], source: str) -> ModelCard:
    names = {f.name: f for f in dataclasses.fields(ModelCard)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SegviewerError(
            f"{source}: unknown field(s) {', '.join(unknown)}; known fields are "
            f"{', '.join(names)} (see docs/model_card.md)"
        )
    values: dict[str, Any] = {}
    for k, v in data.items():
        if v is None and names[k].default is None:
            values[k] = None
            continue
        if k in ("class_names", "class_colors"):
            if isinstance(v, str) or not isinstance(v, (list, tuple)):
                raise SegviewerError(f"{source}: {k} must be a list, got {v!r}")
            v = tuple(str(x) for x in v)
        elif k == "resize_to":
            if isinstance(v, str) or not isinstance(v, (list, tuple)):
                raise SegviewerError(
                    f"{source}: resize_to must be a list of sizes, e.g. [128, 128, 128], got {v!r}"
                )
            v = tuple(v)
        elif k in ("percentile_low", "percentile_high", "pad_value", "threshold", "tile_overlap"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SegviewerError(f"{source}: {k} must be a number, got {v!r}")
            v = float(v)
        elif k in ("nonzero", "transpose", "flip_rows", "flip_cols", "repeat_channels"):
            if not isinstance(v, bool):
                raise SegviewerError(f"{source}: {k} must be true or false, got {v!r}")
        elif k == "outputs_are_probabilities":
            if v is not None and not isinstance(v, bool):
                raise SegviewerError(f"{source}: {k} must be true, false or null, got {v!r}")
        elif k in ("slice_axis", "batch_size", "downsampling", "context_slices"):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise SegviewerError(f"{source}: {k} must be an integer, got {v!r}")
        elif k in ("output_name",):
            v = None if v is None else str(v)
        elif not isinstance(v, str):
            raise SegviewerError(f"{source}: {k} must be a string, got {v!r}")
        values[k] = v
    try:
        return dataclasses.replace(base, **values)
    except SegviewerError as e:
        raise SegviewerError(f"{source}: {e}") from None


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read a model card (JSON) and validate every field.

    Raises
    ------
    SegviewerError
        Unreadable file, invalid JSON, unknown field or invalid value, naming the file.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SegviewerError(f"cannot read model card {p}: {e.strerror or e}") from None
    from segviewer.io.common import load_json

    data = load_json(text, f"model card {p}")  # hostile nesting / huge numbers: one line
    return ModelCard.from_dict(data, source=f"model card {p}")


def save_card(card: ModelCard, path: str | os.PathLike[str]) -> None:
    """Write a card as indented JSON, atomically (the one atomic writer, ``io.atomic``);
    an existing card is replaced (saving a card is an explicit user action)."""
    from segviewer.io.atomic import atomic_path

    text = json.dumps(card.to_dict(), indent=2) + "\n"
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--model-option``) to model-card overrides.

    Values are read as JSON when they parse (numbers, ``true``/``false``, ``null``, lists),
    else kept as text; :meth:`ModelCard.with_overrides` then checks names and types.

    Raises
    ------
    SegviewerError
        An item without ``=`` or without a key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SegviewerError(
                f"--model-option {item!r}: write KEY=VALUE, e.g. --model-option normalization=zscore"
            )
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


def card_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Where a model's card lives: ``unet.keras`` -> ``unet.segviewer.json`` (same folder)."""
    p = Path(model_path)
    if p.name == "saved_model.pb":
        p = p.parent
    base = p.name[: -len(p.suffix)] if p.suffix and not p.is_dir() else p.name
    return p.parent / (base + CARD_SUFFIX)


def find_card(model_path: str | os.PathLike[str]) -> Path | None:
    """Path of the card next to a model (or ``segviewer.json`` inside a SavedModel folder)."""
    p = Path(model_path)
    if p.name == "saved_model.pb":
        p = p.parent
    candidates = [card_path_for(p)]
    if p.is_dir():
        candidates.append(p / "segviewer.json")
    return next((c for c in candidates if c.is_file()), None)


def card_for_model(model_path: str | os.PathLike[str]) -> ModelCard | None:
    """The card next to a model (or ``segviewer.json`` inside a SavedModel folder), else None."""
    found = find_card(model_path)
    return None if found is None else load_card(found)
