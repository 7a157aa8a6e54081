"""Opening TensorFlow / Keras segmentation models, and what segviewer learns about them.

TensorFlow and Keras are imported inside functions only: importing this module is cheap, and
users who only review saved logits never need TensorFlow installed.

Formats: Keras v3 ``.keras`` archives, legacy HDF5 ``.h5`` (both through
``keras.saving.load_model(..., safe_mode=not trust, compile=False)``), and TensorFlow SavedModel
folders (``tf.saved_model.load``, ``serving_default`` signature; what ``model.export`` writes).
Models are channels-last, ``(N, H, W, C)`` for 2-D slice models and ``(N, D, H, W, C)`` for
3-D models, unless the input is recognisably channels-first (``(N, C, H, W)``,
``(N, C, D, H, W)``, e.g. converted PyTorch models): a leading axis of at most
:data:`MAX_CHANNELS_FIRST` before the spatial sizes, and a last axis that is free or larger.
Such models are run by transposing their input and output; every message names the layout.
The model card's ``input_layout`` overrides the guess.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zipfile
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segviewer.core.progress import run_to_end
from segviewer.core.types import PredictionKind, Progress, SegviewerError

__all__ = [
    "ModelHandle",
    "TrustRequired",
    "open_model",
    "iter_open_model",
    "file_sha256",
    "tf_version",
    "with_input_layout",
    "device_description",
    "MAX_CHANNELS_FIRST",
]

#: Largest leading input axis read as channels (channels-first): 1 (grey), 3 (RGB), or a few
#: neighbouring slices; a spatial axis is practically never this short.
MAX_CHANNELS_FIRST = 4

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Layers whose saved form is Python bytecode or source: loading them executes code.
_UNSAFE_CLASSES = {"Lambda"}
# Keras 2 wrapped TensorFlow ops used on symbolic tensors in these; Keras 3 has no such layers.
_KERAS2_ONLY = {"TFOpLambda", "SlicingOpLambda"}
_TRUST_HINT = (
    "only if you trust where the model came from, pass --trust-model on the command line or "
    "tick 'Trust this model file (runs code from it)' in the window"
)


class TrustRequired(SegviewerError):
    """The model file carries code (Lambda layers, custom objects) and was not trusted.

    Not a broken file: the user may decide to trust it (``--trust-model`` or the window's
    checkbox) and open it again.
    """


@dataclass(eq=False)
class ModelHandle:
    """A loaded model and the facts segviewer needs to run it.

    Attributes
    ----------
    path
        The model file or SavedModel folder.
    sha256
        Hex digest of the file (for a folder: of every file's relative path and bytes).
    format
        ``keras``, ``h5`` or ``savedmodel``.
    rank
        2 for slice models (input ``(N, H, W, C)``), 3 for volume models (``(N, D, H, W, C)``).
    input_size
        Fixed spatial input size per axis, ``None`` where the model accepts any size.
    input_channels, output_channels
        Sizes of the last (channels) axis of input and output.
    output_kind
        Detected meaning of the output (``None`` when it cannot be known before running, e.g.
        a SavedModel: decided from the values then).
    outputs_are_probabilities
        For sigmoid / multi-label outputs: whether the last activation is a sigmoid.
    downsampling
        Product of strides / pool sizes along the deepest path (free-size models are padded to
        a multiple of it); ``None`` if unknown (SavedModel: found by trying at run time).
    notes
        Sentences on how the above were decided, for ``info`` and the export manifest.
    channels_first
        The model takes ``(N, C, ...)`` inputs (see :data:`MAX_CHANNELS_FIRST`); it is run by
        transposing input and output.
    device
        Where TensorFlow runs it (:func:`device_description`), e.g. ``"CPU"``.
    """

    path: Path
    sha256: str
    format: str
    rank: int
    input_size: tuple[int | None, ...]
    input_channels: int
    output_channels: int
    output_kind: PredictionKind | None
    outputs_are_probabilities: bool | None
    downsampling: int | None
    name: str = ""
    trusted: bool = False
    input_dtype: str = "float32"
    output_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    channels_first: bool = False
    device: str = ""
    input_shape: tuple[int | None, ...] = ()
    output_shape: tuple[int | None, ...] = ()
    model: Any = field(default=None, repr=False)  # keras.Model or the SavedModel's signature
    input_key: str | None = field(default=None, repr=False)  # SavedModel input name
    owner: Any = field(default=None, repr=False)  # keeps a SavedModel's variables alive
    # Compiled calls by (input shape, output name): tracing costs ~0.1-0.5 s, so a second
    # volume of the same size (or a re-run with other settings) reuses it.
    runners: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def layout_name(self) -> str:
        """``"channels-last (N, H, W, C)"``, ``"channels-first (N, C, D, H, W)"``..."""
        spatial = "H, W" if self.rank == 2 else "D, H, W"
        if self.channels_first:
            return f"channels-first (N, C, {spatial})"
        return f"channels-last (N, {spatial}, C)"

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (for ``segviewer info`` and the export manifest)."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "format": self.format,
            "name": self.name,
            "rank": self.rank,
            "input_layout": self.layout_name,
            "device": self.device,
            "input_shape": list(self.input_shape),
            "input_size": list(self.input_size),
            "input_channels": self.input_channels,
            "output_channels": self.output_channels,
            "output_kind": None if self.output_kind is None else self.output_kind.value,
            "outputs_are_probabilities": self.outputs_are_probabilities,
            "downsampling": self.downsampling,
            "trusted": self.trusted,
            "notes": list(self.notes),
        }


def device_description() -> str:
    """The device TensorFlow runs on by default: ``"GPU:0 (NVIDIA H100 ...)"`` or ``"CPU"``.

    Imports TensorFlow. The first visible GPU is TensorFlow's default device; without one (no
    CUDA build, no driver) everything runs on the CPU.
    """
    import tensorflow as tf

    try:
        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # noqa: BLE001 - a broken CUDA setup must not stop CPU inference
        gpus = []
    if not gpus:
        return "CPU"
    try:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = str(details.get("device_name", "")) if isinstance(details, Mapping) else ""
    except Exception:  # noqa: BLE001
        name = ""
    extra = f", {len(gpus)} GPUs visible" if len(gpus) > 1 else ""
    return f"GPU:0 ({name or 'GPU'}{extra})"


def tf_version() -> str:
    """TensorFlow's version string (imports TensorFlow)."""
    import tensorflow as tf

    return str(tf.__version__)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, or of a folder (sorted relative paths and contents of its files)."""
    p = Path(path)
    h = hashlib.sha256()

    def feed(f: Path) -> None:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)

    if p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            feed(f)
    else:
        feed(p)
    return h.hexdigest()


def open_model(path: str | os.PathLike[str], *, trust: bool = False) -> ModelHandle:
    """Load a model and inspect it. See :func:`iter_open_model` (same, with progress)."""
    return run_to_end(iter_open_model(path, trust=trust))


def iter_open_model(
    path: str | os.PathLike[str], trust: bool = False
) -> Generator[Progress, None, ModelHandle]:
    """Load a Keras / SavedModel model, yielding progress (importing TensorFlow takes ~2 s).

    Parameters
    ----------
    path
        ``.keras`` file, legacy ``.h5`` file, SavedModel folder (or its ``saved_model.pb``).
    trust
        Allow loading what runs code on load: ``Lambda`` layers (stored as Python bytecode)
        and custom layer classes (their Python module is imported). Off by default.

    Returns
    -------
    ModelHandle

    Raises
    ------
    SegviewerError
        Not a model, unsupported input/output shape, or unsafe content without ``trust``.
    """
    p = Path(path).expanduser()
    if p.name == "saved_model.pb":
        p = p.parent
    if not p.exists():
        raise SegviewerError(f"model {p} does not exist; check the path")
    fmt = _sniff_format(p)
    config = _read_config(p, fmt)
    custom: dict[str, Any] = {}
    if config is not None:
        custom = _check_safety(p, config, trust)
    yield Progress(0, 3, "importing TensorFlow")
    import tensorflow as tf  # noqa: F401  (the ~2 s import happens here)

    yield Progress(1, 3, f"loading {p.name}")
    digest = file_sha256(p)
    if fmt == "savedmodel":
        handle = _load_savedmodel(p, digest)
    else:
        handle = _load_keras(p, fmt, digest, trust, custom)
    handle.trusted = trust
    handle.device = device_description()
    yield Progress(3, 3, f"loaded {p.name}")
    return handle


# --- format sniffing and safety ------------------------------------------------------------


def _sniff_format(p: Path) -> str:
    what = "segviewer runs Keras models (.keras, legacy .h5) and TensorFlow SavedModel folders"
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return "savedmodel"
        raise SegviewerError(
            f"{p} is a folder but not a TensorFlow SavedModel (no saved_model.pb inside); {what}"
        )
    try:
        with p.open("rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise SegviewerError(f"cannot read model {p}: {e.strerror or e}") from None
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(p) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile:
            raise SegviewerError(f"{p} is a damaged zip file, not a Keras model; {what}") from None
        if "config.json" not in names:
            raise SegviewerError(
                f"{p} is a zip file without config.json, so not a Keras .keras model; {what}"
            )
        return "keras"
    if head == _HDF5_MAGIC:
        return "h5"
    raise SegviewerError(f"{p} is not a model file (neither a Keras zip nor HDF5); {what}")


def _read_config(p: Path, fmt: str) -> Any:
    """The model's architecture JSON, read without Keras (None for SavedModel)."""
    from segviewer.io.common import load_json

    what = f"the architecture of model {p}"
    try:
        if fmt == "keras":
            with zipfile.ZipFile(p) as z:
                return load_json(z.read("config.json"), what)
        if fmt == "h5":
            import h5py

            with h5py.File(p, "r") as f:
                raw = f.attrs.get("model_config")
            if raw is None:
                raise SegviewerError(
                    f"{p} is an HDF5 file without a model architecture (weights only?); save "
                    "the whole model (model.save('model.keras')) and open that"
                )
            return load_json(raw.decode() if isinstance(raw, bytes) else raw, what)
    except (OSError, ValueError, KeyError) as e:
        raise SegviewerError(f"cannot read the architecture of model {p}: {e}") from None
    return None


def _walk_objects(cfg: Any) -> Iterator[dict[str, Any]]:
    if isinstance(cfg, dict):
        if "class_name" in cfg:
            yield cfg
        for v in cfg.values():
            yield from _walk_objects(v)
    elif isinstance(cfg, list):
        for v in cfg:
            yield from _walk_objects(v)


def _check_safety(p: Path, config: Any, trust: bool) -> dict[str, Any]:
    """Refuse code-carrying content without trust; with trust, import custom classes.

    Returns the ``custom_objects`` mapping to give Keras.
    """
    unsafe: list[str] = []
    custom: dict[str, tuple[str, str]] = {}
    for obj in _walk_objects(config):
        cls = obj.get("class_name")
        if not isinstance(cls, str):
            continue
        if cls in _KERAS2_ONLY:
            raise SegviewerError(
                f"model {p.name} was saved by Keras 2 with TensorFlow operations in its graph "
                f"({cls}), which Keras 3 cannot rebuild; with Keras 2, save it as a SavedModel "
                "(tf.saved_model.save(model, folder)) and open the folder"
            )
        if cls in _UNSAFE_CLASSES or cls == "__lambda__":
            name = (
                obj.get("config", {}).get("name") if isinstance(obj.get("config"), dict) else None
            )
            unsafe.append(f"{cls} layer {name!r}" if name else cls)
        module = obj.get("module")
        if (
            isinstance(module, str)
            and module
            and module.split(".")[0]
            not in (
                "keras",
                "builtins",
                "keras_hub",
                "keras_cv",
                "keras_nlp",
            )
        ):
            key = obj.get("registered_name") or cls
            custom[str(key)] = (module, cls)
    if unsafe and not trust:
        raise TrustRequired(
            f"model {p.name} contains {', '.join(sorted(set(unsafe)))}: loading it runs Python "
            f"code stored in the file, so segviewer refuses by default; {_TRUST_HINT}"
        )
    if custom and not trust:
        names = ", ".join(f"{c} (module {m})" for m, c in sorted(set(custom.values())))
        raise TrustRequired(
            f"model {p.name} needs custom code: {names}; loading it imports and runs that "
            f"module, so segviewer refuses by default; {_TRUST_HINT} (the module must be "
            "installed), or export the model as a SavedModel (model.export), which needs no code"
        )
    objects: dict[str, Any] = {}
    if custom:
        import importlib

        for key, (module, cls) in custom.items():
            try:
                objects[key] = getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError) as e:
                raise SegviewerError(
                    f"model {p.name} needs the custom class {cls} from Python module {module}, "
                    f"which cannot be imported ({e}); install the package that defines it, or "
                    "export the model as a SavedModel (model.export)"
                ) from None
            objects[cls] = objects[key]
    return objects


# --- Keras ---------------------------------------------------------------------------------


def _load_keras(p: Path, fmt: str, digest: str, trust: bool, custom: dict[str, Any]) -> ModelHandle:
    import keras

    try:
        model = keras.saving.load_model(
            p, custom_objects=custom or None, compile=False, safe_mode=not trust
        )
    except SegviewerError:
        raise
    except Exception as e:  # Keras raises ValueError / TypeError / OSError with long texts
        text = str(e)
        msg = text.split("\n")[0][:300]
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
        if missing:
            raise SegviewerError(
                f"model {p.name} needs the custom Python object {missing.group(1)!r}, which "
                "segviewer cannot find (Keras stores only its name); install the package that "
                "registers it, or export the model as a SavedModel (model.export)"
            ) from None
        if not trust and ("safe_mode" in text or "lambda" in text.lower()):
            raise TrustRequired(
                f"model {p.name} needs unsafe deserialisation ({msg}); {_TRUST_HINT}"
            ) from None
        raise SegviewerError(f"cannot load model {p}: {msg}") from None
    if not isinstance(model, keras.Model):
        raise SegviewerError(f"{p} holds a {type(model).__name__}, not a Keras model")
    inputs = model.inputs
    if len(inputs) != 1:
        raise SegviewerError(
            f"model {p.name} has {len(inputs)} inputs; segviewer runs single-input models"
        )
    in_shape = tuple(inputs[0].shape)
    outputs = model.outputs
    out_shape = tuple(outputs[0].shape)
    notes: list[str] = []
    rank = _rank_of(p, in_shape, "input")
    if len(out_shape) != len(in_shape):
        raise SegviewerError(
            f"model {p.name} maps input {_fmt_shape(in_shape)} to output {_fmt_shape(out_shape)}; "
            "segviewer needs a dense segmentation output with the input's spatial axes"
        )
    if len(outputs) > 1:
        notes.append(
            f"the model has {len(outputs)} outputs; the first is used unless the card names one"
        )
    cf, lwhy = _guess_channels_first(in_shape)
    if lwhy:
        notes.append(lwhy)
    size, cin, cout = _axes(p, in_shape, out_shape, cf, rank)
    kind, probs, why = _kind_from_layers(model, cout)
    notes.append(why)
    factor, fwhy = _downsampling_from_layers(model)
    notes.append(fwhy)
    return ModelHandle(
        path=p,
        sha256=digest,
        format=fmt,
        rank=rank,
        input_size=size,
        input_channels=cin,
        output_channels=cout,
        channels_first=cf,
        input_shape=_shape_of(in_shape),
        output_shape=_shape_of(out_shape),
        output_kind=kind,
        outputs_are_probabilities=probs,
        downsampling=factor,
        name=str(model.name),
        input_dtype=str(getattr(inputs[0], "dtype", "float32")),
        output_names=tuple(str(n) for n in getattr(model, "output_names", []) or []),
        notes=tuple(notes),
        model=model,
    )


def _fmt_shape(shape: tuple[Any, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _rank_of(p: Path, shape: tuple[Any, ...], what: str) -> int:
    if len(shape) == 4:
        return 2
    if len(shape) == 5:
        return 3
    raise SegviewerError(
        f"model {p.name} has {what} shape {_fmt_shape(shape)}; segviewer runs 2-D slice models "
        "(N, H, W, C) and 3-D volume models (N, D, H, W, C), channels last"
    )


def _channels(p: Path, shape: tuple[Any, ...], what: str, channels_first: bool = False) -> int:
    c = shape[1] if channels_first else shape[-1]
    if c is None:
        layout = "channels-first" if channels_first else "channels-last"
        raise SegviewerError(
            f"model {p.name}'s {what} {_fmt_shape(shape)} read as {layout} has no fixed "
            "channel count; segviewer needs a known number of channels (set input_layout in "
            "the model card if the layout is wrong)"
        )
    return int(c)


def _shape_of(shape: tuple[Any, ...]) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in shape)


def _guess_channels_first(shape: tuple[Any, ...]) -> tuple[bool, str]:
    """Whether an input shape ``(N, ...)`` is channels-first, and a note when it is."""
    lead, last = shape[1], shape[-1]
    if (
        lead is not None
        and int(lead) <= MAX_CHANNELS_FIRST
        and (last is None or int(last) > MAX_CHANNELS_FIRST)
    ):
        spatial = "H, W" if len(shape) == 4 else "D, H, W"
        return True, (
            f"input {_fmt_shape(shape)} read as channels-first (N, C, {spatial}): a leading "
            f"axis of {lead} before the spatial sizes is the channel axis; the model is run by "
            "transposing input and output (set input_layout in the model card if this is wrong)"
        )
    return False, ""


def _axes(
    p: Path, in_shape: tuple[Any, ...], out_shape: tuple[Any, ...], cf: bool, rank: int
) -> tuple[tuple[int | None, ...], int, int]:
    """(spatial input size, input channels, output channels) for a layout."""
    spatial = in_shape[2:] if cf else in_shape[1:-1]
    size = tuple(None if d is None else int(d) for d in spatial)
    return size, _channels(p, in_shape, "input", cf), _channels(p, out_shape, "output", cf)


def with_input_layout(handle: ModelHandle, layout: str) -> ModelHandle:
    """The handle re-read as ``channels_last`` / ``channels_first`` (a model card's
    ``input_layout``); ``auto`` or the layout it already has returns it unchanged."""
    import dataclasses

    if layout == "auto" or not handle.input_shape:
        return handle
    cf = layout == "channels_first"
    if cf == handle.channels_first:
        return handle
    size, cin, cout = _axes(handle.path, handle.input_shape, handle.output_shape, cf, handle.rank)
    new = dataclasses.replace(
        handle,
        input_size=size,
        input_channels=cin,
        output_channels=cout,
        channels_first=cf,
        runners={},
        notes=(*handle.notes, f"input layout {layout} from the model card"),
    )
    return new


def _activation_name(layer: Any) -> str | None:
    cls = type(layer).__name__
    if cls == "Softmax":
        return "softmax"
    if cls in ("Activation",) or hasattr(layer, "activation"):
        act = getattr(layer, "activation", None)
        name = getattr(act, "__name__", None) if act is not None else None
        return None if name is None else str(name)
    return None


def _output_layer(model: Any) -> Any:
    """The layer that produces the model's first output (descending into nested models)."""
    import keras

    layer: Any
    try:
        layer = model.outputs[0]._keras_history.operation
    except (AttributeError, IndexError):
        layer = model.layers[-1]
    while isinstance(layer, keras.Model):
        layer = _output_layer(layer)
    # Cast / identity-like layers do not change the meaning; look through one of them.
    if type(layer).__name__ in ("Identity", "Reshape", "Cropping2D", "Cropping3D", "ZeroPadding2D"):
        try:
            parent = layer._inbound_nodes[0].parent_nodes[0].operation
            layer = parent
        except (AttributeError, IndexError):
            pass
    return layer


def _kind_from_layers(model: Any, channels: int) -> tuple[PredictionKind, bool, str]:
    layer = _output_layer(model)
    act = _activation_name(layer)
    where = f"last layer {layer.name!r} ({type(layer).__name__}, activation {act or 'none'})"
    if act == "softmax" and channels > 1:
        return PredictionKind.PROBABILITIES, True, f"output: softmax probabilities ({where})"
    if channels == 1:
        probs = act == "sigmoid"
        what = "probability" if probs else "logit"
        return PredictionKind.SIGMOID, probs, f"output: one channel, sigmoid {what} ({where})"
    if act == "sigmoid":
        return PredictionKind.MULTILABEL, True, f"output: independent sigmoid channels ({where})"
    return PredictionKind.LOGITS, False, f"output: logits ({where})"


def _layer_factor(layer: Any) -> float:
    """How much a layer shrinks its input (>1 downsamples, <1 upsamples)."""
    cls = type(layer).__name__
    if "Global" in cls:
        return 1.0
    if cls.startswith("UpSampling"):
        size = layer.size
        return 1.0 / float(max(size) if isinstance(size, (tuple, list)) else size)
    strides = getattr(layer, "strides", None)
    if strides is None:
        return 1.0
    s = float(max(strides) if isinstance(strides, (tuple, list)) else strides)
    return 1.0 / s if "Transpose" in cls else s


def _net_and_peak(model: Any) -> tuple[float, float]:
    """(overall factor, largest factor reached inside) over the model's graph."""
    import keras

    def one(layer: Any, f_in: float) -> tuple[float, float]:
        if isinstance(layer, keras.Model):
            net, peak = _net_and_peak(layer)
            return f_in * net, f_in * peak
        f = f_in * _layer_factor(layer)
        return f, max(f_in, f)

    by_depth = getattr(model, "_nodes_by_depth", None)
    if not by_depth:  # Sequential: a chain
        f = peak = 1.0
        for layer in model.layers:
            f, pk = one(layer, f)
            peak = max(peak, pk)
        return f, peak
    factor: dict[int, float] = {}
    peak = 1.0
    last = 1.0
    for depth in sorted(by_depth, reverse=True):  # inputs have the largest depth
        for node in by_depth[depth]:
            parents = [factor.get(id(n), 1.0) for n in node.parent_nodes]
            f_in = max(parents) if parents else 1.0
            f, pk = one(node.operation, f_in)
            factor[id(node)] = f
            peak = max(peak, pk)
            last = f
    return last, peak


def _downsampling_from_layers(model: Any) -> tuple[int, str]:
    try:
        _, peak = _net_and_peak(model)
    except (AttributeError, TypeError, ValueError):
        # An unusual graph: count every downsampling layer (an upper bound, still correct
        # for padding, only pads a little more than needed).
        peak = 1.0
        for layer in getattr(model, "layers", []):
            peak *= max(1.0, _layer_factor(layer))
    f = max(1, int(round(peak)))
    if 2 ** int(math.log2(f)) != f:
        f = 2 ** math.ceil(math.log2(f))
    return f, f"downsampling factor {f} (product of strides / pool sizes along the deepest path)"


# --- SavedModel ----------------------------------------------------------------------------


def _load_savedmodel(p: Path, digest: str) -> ModelHandle:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(p))
    except Exception as e:  # TF raises OSError / ValueError / its own errors
        raise SegviewerError(
            f"cannot load SavedModel {p}: {str(e).splitlines()[0][:300]}"
        ) from None
    sigs = getattr(loaded, "signatures", {})
    if "serving_default" not in sigs:
        raise SegviewerError(
            f"SavedModel {p} has no 'serving_default' signature (it has "
            f"{', '.join(sigs) or 'none'}); export it with model.export(path)"
        )
    sig = sigs["serving_default"]
    _, kwargs = sig.structured_input_signature
    if len(kwargs) != 1:
        raise SegviewerError(
            f"SavedModel {p.name} takes {len(kwargs)} inputs ({', '.join(kwargs)}); segviewer "
            "runs single-input models"
        )
    input_key, spec = next(iter(kwargs.items()))
    in_shape = tuple(spec.shape.as_list())
    outs = sig.structured_outputs
    out_names = tuple(sorted(outs))
    out_shape = tuple(outs[out_names[0]].shape.as_list())
    rank = _rank_of(p, in_shape, "input")
    if len(out_shape) != len(in_shape):
        raise SegviewerError(
            f"SavedModel {p.name} maps input {_fmt_shape(in_shape)} to output "
            f"{_fmt_shape(out_shape)}; segviewer needs a dense segmentation output"
        )
    notes = [
        "SavedModel: output kind is decided from the output values unless the card says",
        "SavedModel: downsampling factor found by trying padded sizes on the first batch",
    ]
    if len(out_names) > 1:
        notes.append(f"the signature has outputs {', '.join(out_names)}; {out_names[0]} is used")
    cf, lwhy = _guess_channels_first(in_shape)
    if lwhy:
        notes.append(lwhy)
    size, cin, cout = _axes(p, in_shape, out_shape, cf, rank)
    return ModelHandle(
        path=p,
        sha256=digest,
        format="savedmodel",
        rank=rank,
        input_size=size,
        input_channels=cin,
        output_channels=cout,
        channels_first=cf,
        input_shape=_shape_of(in_shape),
        output_shape=_shape_of(out_shape),
        output_kind=None,
        outputs_are_probabilities=None,
        downsampling=None,
        name=p.name,
        input_dtype=spec.dtype.name,
        output_names=out_names,
        notes=tuple(notes),
        model=sig,
        input_key=input_key,
        owner=loaded,
    )
