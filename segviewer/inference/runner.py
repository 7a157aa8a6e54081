"""Running a model on a volume: preprocessing, batching, padding/resizing, raw outputs.

The result is a :class:`~segviewer.core.types.Prediction` over float32 channels-first raw
outputs ``(C, axis0, axis1, axis2)`` (in memory, or a memory-mapped temporary ``.npy`` for big
volumes) plus a provenance dict for the export manifest. Masks, confidence and entropy are then
computed by ``core.masks`` exactly as for a prediction loaded from a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import weakref
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.core.types import Prediction, PredictionKind, Progress, SegviewerError, Volume
from segviewer.inference.card import ModelCard, find_card, load_card
from segviewer.inference.model import (
    ModelHandle,
    device_description,
    iter_open_model,
    with_input_layout,
)
from segviewer.inference.preprocess import (
    crop_spatial,
    normalize,
    pad_amounts,
    pad_spatial,
    resize_spatial,
)

__all__ = [
    "predict",
    "save_logits",
    "diagnose_output",
    "device_description",
    "MEMMAP_BYTES",
    "DEFAULT_MAX_BATCH",
]

#: Raw outputs larger than this go to a memory-mapped temporary file instead of RAM.
MEMMAP_BYTES = 256 * 1024**2
#: Upper bound of the automatic batch size for 2-D models.
DEFAULT_MAX_BATCH = 16
# Downsampling factors tried, in order, when a SavedModel does not say (no layer information).
_FACTOR_TRIALS = (1, 2, 4, 8, 16, 32, 64)


class _Runner:
    """One compiled call of the model for one input shape ``(N?, *spatial, C)``.

    A ``tf.function`` with a fixed input signature (batch size free) is traced once per volume;
    calling ``model.predict`` per batch instead costs about 3x for single slices.
    """

    def __init__(self, handle: ModelHandle, spatial: tuple[int, ...], output_name: str | None):
        import tensorflow as tf

        self.handle = handle
        spec = tf.TensorSpec((None, *spatial, handle.input_channels), tf.float32)
        rank = len(spatial)
        # channels-first models: (N, *S, C) -> (N, C, *S) in, (N, C, *S) -> (N, *S, C) out
        to_cf = [0, rank + 1, *range(1, rank + 1)]
        from_cf = [0, *range(2, rank + 2), 1]
        cf = handle.channels_first
        in_dtype = tf.as_dtype(handle.input_dtype) if handle.input_dtype else tf.float32
        if handle.format == "savedmodel":
            sig = handle.model
            key = str(handle.input_key)
            out_key = output_name or handle.output_names[0]
            if out_key not in handle.output_names:
                raise SegviewerError(
                    f"model {handle.path.name} has no output {out_key!r} (it has "
                    f"{', '.join(handle.output_names)}); fix output_name in the card"
                )

            def call(t: Any) -> Any:
                if cf:
                    t = tf.transpose(t, to_cf)
                y = tf.cast(sig(**{key: tf.cast(t, in_dtype)})[out_key], tf.float32)
                return tf.transpose(y, from_cf) if cf else y

        else:
            model = handle.model
            index = 0
            if output_name is not None:
                if output_name not in handle.output_names:
                    raise SegviewerError(
                        f"model {handle.path.name} has no output {output_name!r} (it has "
                        f"{', '.join(handle.output_names) or 'unnamed outputs'}); fix "
                        "output_name in the card"
                    )
                index = handle.output_names.index(output_name)

            def call(t: Any) -> Any:
                if cf:
                    t = tf.transpose(t, to_cf)
                y = model(tf.cast(t, in_dtype), training=False)
                if isinstance(y, Mapping):
                    y = y[output_name] if output_name else next(iter(y.values()))
                elif isinstance(y, (list, tuple)):
                    y = y[index]
                y = tf.cast(y, tf.float32)
                return tf.transpose(y, from_cf) if cf else y

        self._fn = tf.function(call, input_signature=[spec])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run one batch ``(N, *spatial, C)`` float32; returns ``(N, *spatial', C_out)`` float32."""
        return np.asarray(self._fn(x).numpy(), dtype=np.float32)


def _is_oom(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    import tensorflow as tf

    return isinstance(e, tf.errors.ResourceExhaustedError)


def _tf_message(e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e)
    lines = [ln for ln in str(msg).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:300]


class _Geometry:
    """How one item (a slice ``(H, W)`` or a volume ``(D, H, W)``) becomes a model input."""

    def __init__(
        self,
        shape: tuple[int, ...],
        fixed: tuple[int | None, ...],
        factor: int,
        card: ModelCard,
        model_name: str,
        tile_override: tuple[int, ...] | None = None,
    ) -> None:
        self.shape = shape
        resized = list(shape)
        target = list(shape)
        tile = list(shape)
        for i, (n, t) in enumerate(zip(shape, fixed, strict=True)):
            if card.resize_to is not None:
                # the training size (checked against fixed sizes by _check_card); free axes
                # are padded up to the downsampling multiple
                r = int(card.resize_to[i])
                resized[i] = r
                target[i] = tile[i] = r if t is not None else -(-r // factor) * factor
            elif t is None:
                target[i] = tile[i] = -(-n // factor) * factor
            elif card.size_policy == "resize":
                resized[i] = target[i] = tile[i] = t
            elif card.size_policy == "tile":
                target[i], tile[i] = max(n, t), t
            elif n > t:
                raise SegviewerError(
                    f"model {model_name} takes a fixed input of "
                    f"{' x '.join('any' if f is None else str(f) for f in fixed)} but the image's "
                    f"{'slices are' if len(shape) == 2 else 'volume is'} "
                    f"{' x '.join(map(str, shape))}, larger along axis {i}; set size_policy to "
                    "'tile' (sliding window) or 'resize' (resample to the model's size)"
                )
            else:
                target[i] = tile[i] = t
        if tile_override is not None:
            # Out-of-memory fallback: smaller tiles along the free axes.
            for i, t in enumerate(tile_override):
                if fixed[i] is None:
                    tile[i] = t
                    target[i] = max(target[i], t)
        self.factor = factor
        self.resized = tuple(resized)
        self.padded_shape = tuple(target)
        # What one model input holds: the padded item, or one tile of it.
        self.model_shape = tuple(tile)
        self.tiles = _tile_grid(self.padded_shape, self.model_shape, card.tile_overlap)
        self.pads = pad_amounts(self.resized, self.padded_shape)
        self.mode = card.pad_mode
        self.value = card.pad_value
        self.overlap = card.tile_overlap

    def forward(self, items: np.ndarray) -> np.ndarray:
        """``(N, *shape)`` float32 -> ``(N, *padded_shape)``."""
        x = resize_spatial(items, self.resized) if self.resized != self.shape else items
        return pad_spatial(x, self.pads, self.mode, self.value)

    def backward(self, y: np.ndarray) -> np.ndarray:
        """``(N, *padded_shape, C)`` -> ``(N, *shape, C)`` (crop, then resize back)."""
        y = crop_spatial(y, self.pads)
        if self.resized != self.shape:
            y = resize_spatial(np.ascontiguousarray(y), self.shape)
        return y

    def describe(self) -> dict[str, Any]:
        return {
            "item_shape": list(self.shape),
            "resized_to": None if self.resized == self.shape else list(self.resized),
            "model_input_shape": list(self.model_shape),
            "tiles_per_item": len(self.tiles),
            "tile_overlap": self.overlap if len(self.tiles) > 1 else None,
            "padding": [list(p) for p in self.pads],
            "pad_mode": self.mode,
            "pad_value": self.value if self.mode == "constant" else None,
        }


def _tile_grid(
    shape: tuple[int, ...], tile: tuple[int, ...], overlap: float
) -> list[tuple[slice, ...]]:
    """Sliding-window tiles covering ``shape``: evenly spaced starts, neighbours overlapping by
    at least ``overlap`` of a tile (a single tile when ``tile == shape``)."""
    per_axis = []
    for n, t in zip(shape, tile, strict=True):
        if n <= t:
            per_axis.append([0])
            continue
        step = max(1, int(t * (1.0 - overlap)))
        k = -(-(n - t) // step) + 1
        per_axis.append(sorted({round(j * (n - t) / (k - 1)) for j in range(k)}))
    grid: list[tuple[slice, ...]] = [()]
    for starts, t in zip(per_axis, tile, strict=True):
        grid = [(*g, slice(s, s + t)) for g in grid for s in starts]
    return grid


#: Smallest tile edge the out-of-memory fallback goes down to (in voxels).
MIN_TILE = 32


def _smaller_tile(geo: _Geometry, fixed: tuple[int | None, ...]) -> tuple[int, ...] | None:
    """Half the current tile along the free axes (a multiple of the downsampling factor, at
    least MIN_TILE), or None when it cannot shrink further."""
    f = geo.factor
    floor = -(-MIN_TILE // f) * f
    new = []
    for t, fx in zip(geo.model_shape, fixed, strict=True):
        half = -(-(t // 2) // f) * f
        new.append(t if fx is not None or half < floor else half)
    return tuple(new) if tuple(new) != geo.model_shape else None


def _gaussian_weights(tile: tuple[int, ...]) -> np.ndarray:
    """Blending weights for overlapping tiles: a Gaussian (sigma = tile / 8) peaking at the
    centre, floored so the border still counts. Predictions near a tile's border see less
    context and are less reliable (as nnU-Net does)."""
    w = np.ones((), dtype=np.float64)
    for t in tile:
        c = (t - 1) / 2.0
        g = np.exp(-((np.arange(t) - c) ** 2) / (2.0 * (t / 8.0) ** 2))
        w = np.multiply.outer(w, g)
    w /= w.max()
    return np.maximum(w, 1e-3).astype(np.float32)


def _alloc_output(
    shape: tuple[int, ...], workdir: str | os.PathLike[str] | None
) -> tuple[np.ndarray, Path | None]:
    nbytes = int(np.prod(shape)) * 4
    if nbytes <= MEMMAP_BYTES:
        return np.zeros(shape, dtype=np.float32), None
    folder = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
    try:
        fd, name = tempfile.mkstemp(prefix="segviewer-logits-", suffix=".npy", dir=folder)
        os.close(fd)
        out = np.lib.format.open_memmap(name, mode="w+", dtype=np.float32, shape=shape)
    except OSError as e:
        raise SegviewerError(
            f"cannot create a {nbytes / 1024**3:.1f} GiB temporary file for the model's output in "
            f"{folder}: {e.strerror or e}; free disk space or set TMPDIR to a larger disk"
        ) from None
    return out, Path(name)


def _remove(path: Path) -> None:
    # Already gone, or still mapped on Windows: the OS temp cleanup takes it then.
    with contextlib.suppress(OSError):
        path.unlink()


def _resolve_kind(
    handle: ModelHandle, card: ModelCard, out: np.ndarray
) -> tuple[PredictionKind, bool, str]:
    channels = out.shape[0]
    if card.output_kind != "auto":
        kind = PredictionKind(card.output_kind)
        if kind is PredictionKind.SIGMOID and channels != 1:
            raise SegviewerError(
                f"the model card says output_kind 'sigmoid' (one channel) but the model outputs "
                f"{channels} channels; use 'multilabel' or 'logits'"
            )
        if kind in (PredictionKind.PROBABILITIES, PredictionKind.LOGITS) and channels == 1:
            raise SegviewerError(
                f"the model card says output_kind {card.output_kind!r} but the model outputs one "
                "channel; use 'sigmoid'"
            )
        probs = card.outputs_are_probabilities
        if probs is None:
            probs = (
                handle.outputs_are_probabilities
                if handle.outputs_are_probabilities is not None
                else _values_in_unit_interval(out)
            )
        probs = probs or kind is PredictionKind.PROBABILITIES
        return kind, bool(probs), f"output kind {kind.value} from the model card"
    if handle.output_kind is not None:
        probs = handle.outputs_are_probabilities
        if card.outputs_are_probabilities is not None:
            probs = card.outputs_are_probabilities
        return (
            handle.output_kind,
            bool(probs),
            f"output kind {handle.output_kind.value} from the model's layers",
        )
    # SavedModel without a card: decide from the values, as io.predictions does for files.
    in01 = _values_in_unit_interval(out)
    if card.outputs_are_probabilities is not None:
        in01 = card.outputs_are_probabilities
    if channels == 1:
        return PredictionKind.SIGMOID, in01, "output kind sigmoid: one channel (from the values)"
    if in01 and _sums_to_one(out):
        return (
            PredictionKind.PROBABILITIES,
            True,
            (
                "output kind probabilities: values in [0, 1] summing to 1 over channels (from the values)"
            ),
        )
    if in01:
        return (
            PredictionKind.MULTILABEL,
            True,
            ("output kind multilabel: values in [0, 1] not summing to 1 (from the values)"),
        )
    return (
        PredictionKind.LOGITS,
        False,
        "output kind logits: values outside [0, 1] (from the values)",
    )


def _sample(out: np.ndarray) -> np.ndarray:
    flat = out.reshape(out.shape[0], -1)
    step = max(1, flat.shape[1] // 200_000)
    s = np.asarray(flat[:, ::step])
    return s[:, np.isfinite(s).all(axis=0)]


def _values_in_unit_interval(out: np.ndarray) -> bool:
    s = _sample(out)
    return bool(s.size == 0 or (s.min() >= 0.0 and s.max() <= 1.0))


def _sums_to_one(out: np.ndarray) -> bool:
    s = _sample(out)
    return bool(s.size == 0 or np.allclose(s.sum(axis=0), 1.0, atol=1e-3))


def _auto_batch(rank: int, model_shape: tuple[int, ...]) -> int:
    if rank == 3:
        return 1
    # ~4 M input pixels per call keeps activations of typical 2-D U-Nets well under a GB.
    pixels = int(np.prod(model_shape))
    return int(max(1, min(DEFAULT_MAX_BATCH, (1 << 22) // max(1, pixels))))


def _as_fed(shape: tuple[int, ...], handle: ModelHandle) -> str:
    """A batch shape as the model sees it (channels moved first for channels-first models)."""
    dims = [int(d) for d in shape]
    if handle.channels_first and len(dims) >= 3:
        dims = [dims[0], dims[-1], *dims[1:-1]]
    return "(" + ", ".join(map(str, dims)) + ")"


def _check_card(handle: ModelHandle, card: ModelCard) -> None:
    """Refuse card settings that do not apply to this model instead of ignoring them."""
    name = f"{handle.path.name} ({handle.layout_name}, input size "
    name += " x ".join("any" if d is None else str(d) for d in handle.input_size) + ")"
    item = "slice" if handle.rank == 2 else "volume"
    problems: list[str] = []
    free = all(d is None for d in handle.input_size)
    if card.size_policy in ("resize", "tile") and free and card.resize_to is None:
        example = ", ".join(["128"] * handle.rank)
        problems.append(
            f"size_policy {card.size_policy!r} applies to models with a fixed input size and "
            f"this one takes any size; to resize every {item} to the size the model was "
            f"trained at, set resize_to (e.g. [{example}])"
        )
    if card.resize_to is not None:
        rt = list(card.resize_to)
        if len(rt) != handle.rank:
            problems.append(
                f"resize_to {rt} has {len(rt)} sizes but this is a {handle.rank}-D model: give "
                f"{handle.rank} ({'rows, columns of each slice' if handle.rank == 2 else 'the volume size'})"
            )
        else:
            for i, (r, f) in enumerate(zip(rt, handle.input_size, strict=True)):
                if f is not None and r != f:
                    problems.append(
                        f"resize_to {rt} differs from the model's fixed input size along axis "
                        f"{i} ({r} vs {f}); leave resize_to out or make it match"
                    )
        if card.size_policy == "tile":
            problems.append(
                "resize_to and size_policy 'tile' contradict each other (resize the whole "
                f"{item}, or slide a window over it); choose one"
            )
    if handle.rank == 3:
        for key in ("transpose", "flip_rows", "flip_cols"):
            if getattr(card, key):
                problems.append(
                    f"{key} orders the rows and columns of 2-D slices; this is a 3-D model"
                )
    if card.pad_mode != "constant" and card.pad_value != 0.0:
        problems.append(
            f"pad_value is used with pad_mode 'constant' only (the card says {card.pad_mode!r})"
        )
    if card.normalization != "percentile" and (card.percentile_low, card.percentile_high) != (
        0.5,
        99.5,
    ):
        problems.append(
            "percentile_low / percentile_high apply to normalization 'percentile' only (the "
            f"card says {card.normalization!r})"
        )
    if problems:
        raise SegviewerError(f"model card does not fit model {name}: " + "; ".join(problems))


def _input_range(norm: np.ndarray, card: ModelCard) -> tuple[float, float] | None:
    """Range of the values fed to the model (after volume normalisation), on a sample."""
    if card.normalization_scope == "slice":
        return None
    flat = np.asarray(norm).reshape(-1)
    sample = np.asarray(flat[:: max(1, flat.size // 200_000)], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return None
    return float(sample.min()), float(sample.max())


def diagnose_output(
    out: np.ndarray,
    kind: PredictionKind,
    probs: bool,
    card: ModelCard,
    handle: ModelHandle,
    input_range: tuple[float, float] | None,
) -> list[str]:
    """Warnings when the raw output is empty, constant or saturated everywhere.

    Such an output almost always means the model was fed differently from its training:
    intensities not normalised, slices in another orientation, or the output read along the
    wrong class axis. Each warning names the likely causes and the card fields that set them.

    Parameters
    ----------
    out
        Raw outputs ``(C, ...)`` float32.
    kind, probs
        What the outputs are (see :func:`_resolve_kind`).
    input_range
        ``(min, max)`` of what was fed to the model, or None.
    """
    flat = out.reshape(out.shape[0], -1)
    step = max(1, flat.shape[1] // 200_000)
    s = np.asarray(flat[:, ::step], dtype=np.float64)
    s = s[:, np.isfinite(s).all(axis=0)]
    if s.size == 0:
        return []
    if kind in (PredictionKind.SIGMOID, PredictionKind.MULTILABEL):
        p = s if probs else 1.0 / (1.0 + np.exp(-np.clip(s, -60, 60)))
        fg = p >= card.threshold
        share = float(fg.mean())
        saturated = float(np.mean((p < 1e-3) | (p > 1 - 1e-3)))
        if share == 0.0:
            what = "predicts no foreground voxel anywhere (an empty segmentation)"
        elif share == 1.0:
            what = "predicts foreground everywhere"
        elif saturated > 0.999 and (share < 0.001 or share > 0.999):
            what = f"is saturated (0 or 1) almost everywhere ({share:.1%} foreground)"
        else:
            return []
    else:
        top = np.argmax(s, axis=0)
        spread = float(np.ptp(s, axis=1).max())
        if spread < 1e-6:
            what = "is the same value everywhere (constant output)"
        elif np.all(top == top[0]):
            what = f"gives class {int(top[0])} everywhere"
        else:
            return []
    fed = ""
    if input_range is not None:
        fed = f"; it was fed values {input_range[0]:.3g} .. {input_range[1]:.3g}"
        fed += f" (normalization {card.normalization!r})"
    causes = [
        "intensities scaled differently from training (card field normalization: "
        "zscore, minmax, max or percentile)",
    ]
    if handle.rank == 2:
        causes.append("slices in another orientation (slice_axis, transpose, flip_rows, flip_cols)")
    else:
        causes.append("another orientation or training size (resize_to, e.g. [128, 128, 128])")
    causes.append(
        f"the class axis read wrongly (the model is run as {handle.layout_name}: set "
        "input_layout; output_kind for the output's meaning)"
    )
    return [
        f"Warning: model {handle.path.name}'s output {what}{fed}. If the image should show "
        "what the model segments, the likely causes are: " + "; ".join(causes) + "."
    ]


def _fmt_eta(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


def predict(
    volume: Volume,
    model: ModelHandle | str | os.PathLike[str],
    *,
    trust: bool = False,
    card: ModelCard | None = None,
    overrides: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> Generator[Progress, None, tuple[Prediction, dict[str, Any]]]:
    """Run a segmentation model on a volume, yielding progress per batch.

    Parameters
    ----------
    volume
        The image, 3-D, image axes 0, 1, 2 (see ``core.types``); any numeric dtype.
    model
        An opened :class:`ModelHandle`, or a model path (opened here with ``trust``).
    trust
        Allow models that run code on load (see :func:`~segviewer.inference.model.open_model`).
    card
        How to feed the model; ``None`` reads ``<model>.segviewer.json`` if present, else uses
        the defaults of :class:`ModelCard`.
    overrides
        Card fields to replace (command-line flags, window settings); ``None`` values ignored.
    batch_size
        Slices per model call; overrides the card. ``None``: the card's, else automatic. Halved
        automatically (down to 1) when TensorFlow runs out of memory.
    workdir
        Folder for the memory-mapped output of big volumes (default: the system temp folder).

    Yields
    ------
    Progress
        While opening the model, then per batch (slices done of total, with an ETA). Closing
        the generator cancels within one batch and removes any temporary file.

    Returns
    -------
    (Prediction, dict)
        Raw outputs float32 with kind, layout and notes: ``channels_first()`` is the
        ``(C, axis0, axis1, axis2)`` view; ``data`` itself is stored slice-major for 2-D models
        (``(C, slice, ...)``, layout e.g. ``CZXY`` for ``slice_axis`` 2; ``CXYZ`` for 3-D); and provenance (model, sha256, card, every preprocessing setting, versions,
        batch size) for the export manifest. Non-finite outputs are kept (``core`` marks those
        voxels invalid) and mentioned in the notes.

    Raises
    ------
    SegviewerError
        Model cannot be opened, image does not fit the model (channels, fixed size), the model
        fails, or it runs out of memory even one slice at a time.
    """
    t_start = time.perf_counter()
    if isinstance(model, ModelHandle):
        handle = model
    else:
        handle = yield from iter_open_model(model, trust=trust)
    card_source = "given"
    if card is None:
        found = find_card(handle.path)
        card = load_card(found) if found is not None else ModelCard()
        card_source = str(found) if found is not None else "defaults"
    card = card.with_overrides(overrides)
    import keras
    import tensorflow as tf

    handle = with_input_layout(handle, card.input_layout)
    _check_card(handle, card)
    label = f"{handle.path.name} ({handle.layout_name})"
    device = device_description()
    notes: list[str] = [
        f"model {handle.path.name} ({handle.format}, {handle.layout_name}, sha256 "
        f"{handle.sha256[:12]}) on {device}"
    ]
    cin = handle.input_channels
    ctx = card.context_slices
    if ctx and handle.rank != 2:
        raise SegviewerError(
            f"context_slices is for 2-D slice models; model {handle.path.name} is 3-D, so set "
            "context_slices to 0"
        )
    if ctx and cin != 2 * ctx + 1:
        raise SegviewerError(
            f"context_slices {ctx} feeds {2 * ctx + 1} slices as channels but model "
            f"{handle.path.name} expects {cin} input channels; set context_slices to "
            f"{(cin - 1) // 2 if cin % 2 else 0}"
            + ("" if cin % 2 else " (an even channel count cannot hold a centred slice stack)")
        )
    if cin != 1 and not card.repeat_channels and not ctx:
        raise SegviewerError(
            f"model {label} expects {cin} input channels but the image "
            f"{volume.source} has 1 (a single 3-D volume {volume.shape}); if the model wants the "
            "same image in every channel, set repeat_channels in the model card; if it wants "
            "neighbouring slices, set context_slices"
        )
    if handle.output_channels < 1:
        raise SegviewerError(f"model {handle.path.name} has no output channels")

    # Intensity normalisation: whole volume once, or per slice inside the loop.
    per_slice = card.normalization_scope == "slice" and handle.rank == 2
    norm_args = {
        "percentile_low": card.percentile_low,
        "percentile_high": card.percentile_high,
        "nonzero": card.nonzero,
    }
    if per_slice:
        norm = np.asarray(volume.data)
    else:
        norm = normalize(volume.data, card.normalization, **norm_args)  # type: ignore[arg-type]
    if np.issubdtype(volume.data.dtype, np.floating):
        n_bad_in = int(np.count_nonzero(~np.isfinite(volume.data)))
        if n_bad_in:
            notes.append(
                f"the image has {n_bad_in} NaN/inf voxels; they were left out of the "
                "normalisation statistics and fed to the model as 0"
            )
    if handle.rank == 3 and card.normalization_scope == "slice":
        notes.append("3-D model: normalisation computed over the whole volume, not per slice")

    # Items fed to the model: slices along slice_axis for 2-D models, the volume for 3-D.
    # Raw outputs are stored slice-major for 2-D models, (C, slice, other axes in order), so
    # each batch is one contiguous write (a memory-mapped file is written front to back) and
    # the model's own slice direction reads contiguously; the layout records the order, and
    # channels_first() gives the (C, a0, a1, a2) view.
    k = card.slice_axis if handle.rank == 2 else 0
    order = (k, *[a for a in range(3) if a != k])
    raw_layout = "C" + "".join("XYZ"[a] for a in order)
    out_shape = (handle.output_channels, *[volume.shape[a] for a in order])
    out, tmp_path = _alloc_output(out_shape, workdir)
    try:
        if handle.rank == 2:
            items = np.moveaxis(norm, k, 0)
            target = out  # (C, S, A, B), slice-major
            if card.transpose:
                items, target = items.swapaxes(1, 2), target.swapaxes(2, 3)
            if card.flip_rows:
                items, target = items[:, ::-1], target[:, :, ::-1]
            if card.flip_cols:
                items, target = items[:, :, ::-1], target[:, :, :, ::-1]
        else:
            items = norm[None]
            target = out[:, None]
        n_items = items.shape[0]
        item_shape = tuple(int(s) for s in items.shape[1:])
        if card.downsampling is not None:
            factors: tuple[int, ...] = (card.downsampling,)
            notes.append(f"downsampling factor {card.downsampling} from the model card")
        elif handle.downsampling is not None:
            factors = (handle.downsampling,)
        else:
            factors = _FACTOR_TRIALS
        geo = _Geometry(item_shape, handle.input_size, factors[0], card, label)
        requested = batch_size if batch_size is not None else card.batch_size
        batch = requested if requested is not None else _auto_batch(handle.rank, geo.model_shape)
        # With tiling, a batch is several tiles of one item; otherwise several items.
        batch = max(1, min(int(batch), n_items if len(geo.tiles) == 1 else len(geo.tiles)))
        first_batch = batch

        def prepare(i: int, n: int) -> np.ndarray:
            """Items ``i .. i+n`` as model input ``(n, *padded_shape, cin)`` float32."""
            if ctx:  # the neighbours too, the volume's end slices repeated at its edges
                idx = np.clip(np.arange(i - ctx, i + n + ctx), 0, n_items - 1)
                chunk = np.asarray(items[idx], dtype=np.float32)
            else:
                chunk = np.asarray(items[i : i + n], dtype=np.float32)
            if per_slice:
                chunk = np.stack(
                    [normalize(s, card.normalization, **norm_args) for s in chunk]  # type: ignore[arg-type]
                )
            x = geo.forward(chunk)
            if ctx:
                # (n + 2 ctx, H, W) -> (n, H, W, 2 ctx + 1): window k is slice i - ctx + k.
                x = np.lib.stride_tricks.sliding_window_view(x, 2 * ctx + 1, axis=0)
            else:
                x = x[..., None]
                if cin != 1:
                    x = np.repeat(x, cin, axis=-1)
            return np.ascontiguousarray(x, dtype=np.float32)

        unit = "slices" if handle.rank == 2 else "volume"
        yield Progress(
            0, n_items, f"running {handle.path.name} on {n_items} {unit} ({volume.shape})"
        )
        runner: _Runner | None = None
        factor_index = 0
        done = 0  # items finished
        tile_pos = 0  # tiles of the current item finished (tiling only)
        x_item: np.ndarray | None = None
        acc = wsum = weights = np.zeros(0, np.float32)
        t_loop = time.perf_counter()
        n_nonfinite = 0
        co = handle.output_channels
        while done < n_items:
            n_tiles = len(geo.tiles)
            if runner is None:
                key = (geo.model_shape, card.output_name)
                runner = handle.runners.get(key)
                if runner is None:
                    runner = _Runner(handle, geo.model_shape, card.output_name)
            if n_tiles > 1:
                if x_item is None:
                    x_item = prepare(done, 1)[0]
                    acc = np.zeros((*geo.padded_shape, co), np.float32)
                    wsum = np.zeros(geo.padded_shape, np.float32)
                    weights = _gaussian_weights(geo.model_shape)
                n = min(batch, n_tiles - tile_pos)
                x = np.stack([x_item[geo.tiles[j]] for j in range(tile_pos, tile_pos + n)])
            else:
                n = min(batch, n_items - done)
                x = prepare(done, n)
            try:
                y = runner(x)
            except Exception as e:
                if _is_oom(e):
                    smaller = _smaller_tile(geo, handle.input_size) if batch == 1 else None
                    if smaller is not None:
                        geo = _Geometry(
                            item_shape,
                            handle.input_size,
                            geo.factor,
                            card,
                            label,
                            tile_override=smaller,
                        )
                        notes.append(
                            "out of memory on one "
                            f"{'slice' if handle.rank == 2 else 'volume'}: switched to tiles of "
                            f"{' x '.join(map(str, geo.model_shape))} ({len(geo.tiles)} per "
                            f"{'slice' if handle.rank == 2 else 'volume'})"
                        )
                        runner, x_item, tile_pos = None, None, 0
                        continue
                    if batch == 1:
                        what = "tile" if n_tiles > 1 else "slice" if handle.rank == 2 else "volume"
                        raise SegviewerError(
                            f"model {handle.path.name} runs out of memory even on one {what} of "
                            f"{' x '.join(map(str, geo.model_shape))}; close other programs, use a "
                            "machine with more memory, or resize the image smaller"
                        ) from None
                    batch = max(1, batch // 2)
                    notes.append(f"out of memory: batch size reduced to {batch}")
                    continue
                failure: str | None = (
                    f"model {label} failed on input {_as_fed(x.shape, handle)}: {_tf_message(e)}"
                )
            else:
                want = (n, *geo.model_shape)
                failure = (
                    None
                    if tuple(y.shape[:-1]) == want and y.shape[-1] == co
                    else f"model {label} turned input {_as_fed(x.shape, handle)} into "
                    f"{_as_fed(y.shape, handle)}; segviewer needs a dense output with the "
                    "input's spatial size (a segmentation model)"
                )
            if failure is not None:
                # Only the first batch may fail this way: it tries the candidate padding
                # multiples in turn (a SavedModel has no layers to read the factor from).
                if done == 0 and factor_index + 1 < len(factors):
                    factor_index += 1
                    geo = _Geometry(
                        item_shape, handle.input_size, factors[factor_index], card, label
                    )
                    runner, x_item, tile_pos = None, None, 0
                    continue
                raise SegviewerError(failure)
            handle.runners[(geo.model_shape, card.output_name)] = runner
            finished = 0
            if n_tiles > 1:
                for k in range(n):
                    sl = geo.tiles[tile_pos + k]
                    acc[sl] += y[k] * weights[..., None]
                    wsum[sl] += weights
                tile_pos += n
                if tile_pos == n_tiles:
                    y = (acc / wsum[..., None])[None]
                    finished, tile_pos, x_item = 1, 0, None
            else:
                finished = n
            if finished:
                y = geo.backward(y)
                n_nonfinite += int(np.count_nonzero(~np.isfinite(y)))
                target[:, done : done + finished] = np.moveaxis(y, -1, 0)
                done += finished
            units = done * n_tiles + tile_pos
            elapsed = time.perf_counter() - t_loop
            eta = elapsed / units * (n_items * n_tiles - units)
            where = f" (tile {tile_pos}/{n_tiles})" if tile_pos else ""
            yield Progress(
                units,
                n_items * n_tiles,
                f"{unit} {done}/{n_items}{where}, about {_fmt_eta(eta)} left",
            )
        if handle.downsampling is None and card.downsampling is None and len(factors) > 1:
            notes.append(f"downsampling factor {factors[factor_index]} found by trying sizes")
            # Remember it: the next volume does not need to try again.
            handle.downsampling = factors[factor_index]
        if isinstance(out, np.memmap):
            out.flush()
    except BaseException:
        # Cancelled (GeneratorExit), failed, or interrupted: leave no temporary file behind.
        if tmp_path is not None:
            del out
            _remove(tmp_path)
        raise

    kind, probs, why = _resolve_kind(handle, card, out)
    notes.append(why)
    diagnosis = diagnose_output(out, kind, probs, card, handle, _input_range(norm, card))
    notes.extend(diagnosis)
    if n_nonfinite:
        notes.append(
            f"the model produced {n_nonfinite} non-finite output values (NaN or inf); those "
            "voxels are marked invalid"
        )
    if card.class_names is not None:
        expect = {
            PredictionKind.SIGMOID: 2,
            PredictionKind.MULTILABEL: handle.output_channels + 1,
        }.get(kind, handle.output_channels)
        if len(card.class_names) != expect:
            notes.append(
                f"the card names {len(card.class_names)} classes but the output has {expect}"
            )
    from segviewer.core.layout import detect_layout

    layout = detect_layout(out.shape, volume.shape, explicit=raw_layout, has_class_axis=True)
    if tmp_path is not None:
        # The mapping stays valid after the file is gone on POSIX; elsewhere remove at exit.
        weakref.finalize(out, _remove, tmp_path)
        notes.append("raw outputs kept in a memory-mapped temporary file")
    n_classes = {
        PredictionKind.SIGMOID: 2,
        PredictionKind.MULTILABEL: handle.output_channels + 1,
    }.get(kind, handle.output_channels)
    prediction = Prediction(
        data=out,
        kind=kind,
        layout=layout,
        n_classes=n_classes,
        source=f"{handle.path.name} on {volume.source}",
        values_are_probabilities=probs,
        notes=tuple(notes),
    )
    provenance: dict[str, Any] = {
        "model": handle.describe(),
        "card_source": card_source,
        "card": card.to_dict(),
        "overrides": {k: v for k, v in (overrides or {}).items() if v is not None},
        "preprocessing": {
            "normalization": card.normalization,
            "normalization_scope": "slice" if per_slice else "volume",
            "percentile_low": card.percentile_low if card.normalization == "percentile" else None,
            "percentile_high": card.percentile_high if card.normalization == "percentile" else None,
            "nonzero": card.nonzero,
            "slice_axis": card.slice_axis if handle.rank == 2 else None,
            "transpose": card.transpose,
            "flip_rows": card.flip_rows,
            "flip_cols": card.flip_cols,
            "size_policy": card.size_policy,
            "downsampling": factors[factor_index],
            "repeat_channels": card.repeat_channels,
            "context_slices": card.context_slices if handle.rank == 2 else None,
            **geo.describe(),
        },
        "batch_size": batch,
        "batch_size_first": first_batch,
        "output": {
            "kind": kind.value,
            "channels": handle.output_channels,
            "values_are_probabilities": probs,
            "non_finite_values": n_nonfinite,
            "storage": "memmap" if tmp_path is not None else "memory",
            "raw_layout": raw_layout,
        },
        "diagnosis": diagnosis,
        "device": device,
        "tensorflow": str(tf.__version__),
        "keras": str(keras.__version__),
        "seconds": round(time.perf_counter() - t_start, 3),
        "notes": list(notes),
    }
    return prediction, provenance


def save_logits(
    prediction: Prediction,
    path: str | os.PathLike[str],
    *,
    affine: np.ndarray | None = None,
    force: bool = False,
) -> Path:
    """Save a prediction's raw values, so they can be reopened without the model.

    Parameters
    ----------
    prediction
        Any prediction with a class axis.
    path
        ``.npy``: float32 channels-first ``(C, axis0, axis1, axis2)`` (reopened as ``CDHW``).
        ``.nii`` / ``.nii.gz``: 4-D ``(axis0, axis1, axis2, C)`` with ``affine``.
    affine
        The image's affine; required for NIfTI.
    force
        Overwrite an existing file.

    Returns
    -------
    pathlib.Path
        The written file (written atomically).
    """
    from segviewer.io.writers import write_nifti, write_npy

    cf = prediction.channels_first()
    if cf.ndim != 4:
        raise SegviewerError("a label map has no logits to save; export it as a mask instead")
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".npy"):
        return write_npy(np.asarray(cf, dtype=np.float32), p, force=force)
    if name.endswith((".nii", ".nii.gz")):
        if affine is None:
            raise SegviewerError(
                f"{p}: saving logits as NIfTI needs the image's affine; pass the volume's affine"
            )
        return write_nifti(
            np.moveaxis(np.asarray(cf, dtype=np.float32), 0, -1),
            affine,
            p,
            force=force,
            description="segviewer raw model outputs",
        )
    raise SegviewerError(f"{p}: logits are saved as .npy, .nii or .nii.gz; change the file name")
