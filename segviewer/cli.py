"""The ``segviewer`` command.

``segviewer info FILE...``
    What a file is: as an image (shape in image axes 0/1/2, dtype, spacing, orientation), as
    a prediction (kind, layout; detected against ``--image`` if given) and as a class table.
``segviewer export IMAGE (--prediction FILE | --model MODEL) --out DIR [...]``
    Headless export through :func:`segviewer.io.export.run_export`, the same code path the
    window uses. ``segviewer export --demo --out DIR`` exports the bundled demo.
    ``--reference FILE`` adds a comparison to the manifest and allows ``--what errors``.
``segviewer compare IMAGE (--prediction FILE | --model MODEL) --reference FILE [...]``
    Where the model is wrong: per-class Dice, Jaccard, sensitivity, precision and volumes
    against a reference segmentation (:mod:`segviewer.core.compare`), as a table or JSON.
    ``segviewer compare --demo`` runs the bundled model against the demo's tissue map.
anything else (no arguments, an image path, ``--demo``, ``--screenshot``...)
    Opens the window (:func:`segviewer.ui.app.main`); Qt is imported only then.

Exit status: 0 success, 2 a problem the user can fix (one line ``segviewer: error: ...`` on
stderr), 130 cancelled with Ctrl-C (nothing half-written is left behind).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

from segviewer.core.types import Progress, SegviewerError

__all__ = ["main"]

T = TypeVar("T")

_SUBCOMMANDS = ("info", "export", "compare")
_WHATS = ("binary", "labels", "probabilities", "overlays", "errors")
_FORMATS = ("nifti", "png", "npy")
_KINDS = ("logits", "probabilities", "sigmoid", "multilabel", "labels")
_CLASS_TABLE_SUFFIXES = (".json", ".csv", ".tsv", ".txt", ".ctbl", ".lut", ".label", ".labels")
_PREDICTION_SUFFIXES = (".npy", ".npz")
#: Acquisition facts worth a line in ``info`` (readers never store patient fields).
_INFO_METADATA = (
    "modality",
    "series_description",
    "series_number",
    "manufacturer",
    "field_strength_T",
    "echo_time_ms",
    "repetition_time_ms",
    "slice_thickness_mm",
    "transfer_syntax",
)

_TOP_HELP = """\
usage: segviewer [IMAGE] [window options]   open the viewer window
       segviewer info FILE... [--image IMAGE] [--json]
       segviewer export IMAGE --prediction FILE --out DIR [options]
       segviewer export IMAGE --model MODEL --out DIR [options]
       segviewer export --demo --out DIR
       segviewer export IMAGE --prediction FILE --reference FILE --what errors --out DIR
       segviewer compare IMAGE --prediction FILE --reference FILE [--classes FILE] [--json]
       segviewer compare IMAGE --model MODEL --reference FILE
       segviewer compare --demo
       segviewer --version

Review what a semantic-segmentation model predicts on MRI, and where it is wrong
against a reference segmentation.
Run 'segviewer info --help', 'segviewer export --help' or 'segviewer compare --help' for
their options.
"""


# ----------------------------------------------------------------------------------------
# entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``segviewer`` command; returns the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-V"]):
        from segviewer import __version__

        print(f"segviewer {__version__}")
        return 0
    if args[:1] in (["-h"], ["--help"]):
        return _guarded(_top_help)
    if args and args[0] in _SUBCOMMANDS:
        command = {"info": _info, "export": _export, "compare": _compare}[args[0]]
        return _guarded(lambda: command(args[1:]))
    return _open_window(args)


def _top_help() -> int:
    print(_TOP_HELP, end="")
    try:
        # The window's own options; ui.app imports Qt only when the window starts.
        from segviewer.ui.app import build_parser
    except ImportError:
        return 0
    print("\nOpening the window:\n" + build_parser().format_help(), end="")
    sys.stdout.flush()  # a closed pipe shows up here, inside the guard
    return 0


def _guarded(func: Callable[[], int]) -> int:
    """Turn the errors a user can act on into one line and an exit status."""
    try:
        return func()
    except SegviewerError as exc:
        _err(f"segviewer: error: {_one_line(str(exc))}")
        return 2
    except KeyboardInterrupt:
        _err("\ncancelled")
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _open_window(args: list[str]) -> int:
    try:
        # Load Qt first (the window module imports it lazily): a missing binding or missing
        # system libraries (libEGL, libxkbcommon...) must give one clear line, not a traceback.
        import PySide6.QtWidgets  # noqa: F401
    except ImportError as exc:
        _err(
            "segviewer: error: the window needs Qt, which cannot be loaded "
            f"({_one_line(str(exc))}); install PySide6-Essentials==6.11.3 (and the system's "
            "OpenGL/EGL libraries), or use 'segviewer info' / 'segviewer export', which need no "
            "window"
        )
        return 2
    from segviewer.ui.app import main as app_main

    return _guarded(lambda: int(app_main(args)))


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace | int:
    """argparse exits on errors and --help; in-process callers get the status instead."""
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 2)


# ----------------------------------------------------------------------------------------
# progress on the terminal


class _ProgressBar:
    """One ``\\r`` line on stderr with percent, ETA and the current step (TTYs only)."""

    def __init__(self, stream: TextIO, enabled: bool, label: str = "") -> None:
        self.stream = stream
        self.enabled = enabled
        self.label = label
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.width = 0

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        frac = p.fraction
        if now - self.last_draw < 0.1 and frac < 1.0:
            return  # at most 10 redraws a second
        self.last_draw = now
        elapsed = now - self.start
        eta = "--:--" if frac <= 0.01 else _clock(elapsed * (1 - frac) / frac)
        cols = _terminal_columns()
        bar_w = 24 if cols >= 80 else 8  # keep percent and ETA visible on narrow terminals
        filled = int(bar_w * frac)
        msg = p.message or self.label
        line = f"[{'#' * filled}{'.' * (bar_w - filled)}] {frac * 100:5.1f}%  ETA {eta}  {msg}"
        line = line[: cols - 1]
        pad = max(0, self.width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.width = len(line)

    def finish(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def _terminal_columns() -> int:
    try:
        return max(40, os.get_terminal_size(sys.stderr.fileno()).columns)
    except (OSError, ValueError):
        return 100


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def _drive(gen: Generator[Progress, None, T], bar: _ProgressBar) -> T:
    """Run a progress generator; on Ctrl-C or error close it so it cleans up at once."""
    try:
        while True:
            try:
                p = next(gen)
            except StopIteration as stop:
                return stop.value
            bar(p)
    finally:
        gen.close()  # GeneratorExit inside it: atomic writers and the export roll back
        bar.finish()


# ----------------------------------------------------------------------------------------
# segviewer info


def _add_image_options(p: argparse.ArgumentParser) -> None:
    """Which image of a DICOM folder or 4-D file: the same flags for every subcommand."""
    p.add_argument("--series", metavar="UID_OR_N", help="DICOM series of a folder (UID or number)")
    p.add_argument(
        "--frame", type=int, default=0, metavar="N", help="volume of a 4-D image (0-based)"
    )


def _info_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer info",
        description="Describe images, predictions and class tables: shape in image axes 0/1/2, "
        "dtype, spacing, orientation; a prediction's kind and layout; a table's classes.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="files or DICOM folders")
    p.add_argument(
        "--image",
        metavar="IMAGE",
        help="detect each prediction's layout against this image's shape",
    )
    _add_image_options(p)
    p.add_argument("--layout", help="explicit prediction layout, e.g. NDHWC, CDHW, HWC")
    p.add_argument("--kind", choices=_KINDS, help="what the prediction's values are")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    return p


def _series_arg(text: str | None) -> str | int | None:
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def _info(argv: Sequence[str]) -> int:
    ns = _parse(_info_parser(), argv)
    if isinstance(ns, int):
        return ns
    from segviewer.io.images import describe_image, load_image

    image_shape: tuple[int, int, int] | None = None
    if ns.image:
        image_shape = load_image(ns.image, frame=ns.frame, series=_series_arg(ns.series)).shape
    reports: list[dict[str, Any]] = []
    failed = 0
    for name in ns.files:
        path = Path(name)
        report: dict[str, Any] = {"path": str(path)}
        errors: dict[str, str] = {}
        if not path.exists():
            report["error"] = f"{path} does not exist; check the path"
            reports.append(report)
            failed += 1
            continue
        suffix = path.suffix.lower()
        if suffix in _CLASS_TABLE_SUFFIXES and path.is_file():
            try:
                report["class_table"] = _describe_table(path)
            except SegviewerError as exc:
                errors["class_table"] = str(exc)
        if "class_table" not in report:
            try:
                report["image"] = describe_image(
                    path, frame=ns.frame, series=_series_arg(ns.series)
                )
            except SegviewerError as exc:
                errors["image"] = str(exc)
            as_prediction = (
                suffix in _PREDICTION_SUFFIXES
                or image_shape is not None
                or "image" not in report
                or int(report.get("image", {}).get("n_frames", 1)) > 1
            )
            if as_prediction and path.is_file():
                try:
                    report["prediction"] = _describe_prediction(
                        path, image_shape, ns.layout, ns.kind
                    )
                except SegviewerError as exc:
                    errors["prediction"] = str(exc)
        if not any(k in report for k in ("image", "prediction", "class_table")):
            report["error"] = "; ".join(f"as {k.replace('_', ' ')}: {v}" for k, v in errors.items())
            failed += 1
        elif errors:
            report["not_readable_as"] = errors
        reports.append(report)
    if ns.json:
        print(json.dumps(reports, indent=2, default=str, ensure_ascii=False))
    else:
        for report in reports:
            _print_report(report)
    return 2 if failed else 0


def _describe_table(path: Path) -> dict[str, Any]:
    from segviewer.io.classtables import read_class_table

    table, warnings = read_class_table(path)
    return {
        "format": _table_format(path),
        "n_classes": len(table),
        "classes": [
            {"index": c.index, "name": c.name, "color": "#{:02x}{:02x}{:02x}".format(*c.color)}
            for c in table
        ],
        "warnings": list(warnings),
    }


def _table_format(path: Path) -> str:
    # The reader decides the format from the content; ask the same function it uses.
    from segviewer.io.classtables import _detect

    names = {
        "json": "segviewer JSON",
        "csv": "CSV",
        "itksnap": "ITK-SNAP label description",
        "lut": "FreeSurfer / 3D Slicer colour table",
    }
    kind = _detect(path.read_text(encoding="utf-8-sig", errors="replace"), path)
    return names.get(kind, kind)


def _describe_prediction(
    path: Path, image_shape: tuple[int, int, int] | None, layout: str | None, kind: str | None
) -> dict[str, Any]:
    from segviewer.io.predictions import describe_prediction, load_prediction

    info: dict[str, Any] = dict(describe_prediction(path))
    if image_shape is None:
        guess = _class_axis_guess(info.get("shape"), str(info.get("values", "")))
        if guess:
            info["class_axis_guess"] = guess
    if image_shape is not None:
        pred = load_prediction(path, image_shape, layout=layout, kind=kind)
        info["against_image"] = {
            "image_shape": list(image_shape),
            "kind": pred.kind.value,
            "n_classes": int(pred.n_classes),
            "layout": getattr(pred.layout, "name", None),
            "layout_note": getattr(pred.layout, "note", None),
            "class_axis": getattr(pred.layout, "class_axis", None),
            "spatial_shape": list(pred.spatial_shape),
            "notes": list(pred.notes),
        }
    return info


def _class_axis_guess(shape: Any, values: str) -> str | None:
    """A hint without an image: which raw axis looks like the class axis."""
    if not isinstance(shape, (list, tuple)) or not shape:
        return None
    if values.startswith("integer"):
        return "none (integer values: a label map)"
    dims = [int(d) for d in shape]
    small = [a for a, d in enumerate(dims) if 1 < d <= 64]
    if len(dims) < 3 or not small:
        return None
    axis = len(dims) - 1 if (len(dims) - 1) in small else small[0]
    return (
        f"axis {axis} ({dims[axis]} classes?); give --image IMAGE to detect the layout "
        "against the image"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float)) for v in value)
    ):
        return " x ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return str(value)


def _print_report(report: dict[str, Any]) -> None:
    print(report["path"])
    if "error" in report:
        print(f"  error: {_one_line(report['error'])}")
        return
    img = report.get("image")
    if img is not None:
        if "shape" in img:
            print(
                f"  as image: {img['format']}, shape {_fmt(img['shape'])} (image axes 0, 1, 2), "
                f"{img['dtype']}, spacing {_fmt(img['spacing_mm'])} mm, "
                f"orientation {img['orientation']}"
            )
            if img.get("value_range") is not None:
                print(f"    values {_fmt(img['value_range'][0])} .. {_fmt(img['value_range'][1])}")
            shown = {
                k: v
                for k, v in (img.get("metadata") or {}).items()
                if k in _INFO_METADATA and v not in (None, "", [])
            }
            if shown:
                print(f"    {_fmt(shown)}")
            if int(img.get("n_frames", 1)) > 1:
                print(
                    f"    {img['n_frames']} frames (volumes); showing frame {img.get('frame', 0)} (--frame N)"
                )
        else:
            print(f"  as image: {img.get('format')}")
        for s in img.get("series", []) or []:
            print(f"    series {_fmt(s)}")
        for line in list(img.get("notes", [])) + list(img.get("warnings", [])):
            print(f"    note: {_one_line(str(line))}")
    pred = report.get("prediction")
    if pred is not None:
        against = pred.pop("against_image", None)
        print(
            "  as prediction: "
            + _one_line(
                ", ".join(
                    f"{k} {_fmt(v)}"
                    for k, v in pred.items()
                    if k not in ("path", "notes", "affine", "class_axis_guess")
                )
            )
        )
        if pred.get("class_axis_guess"):
            print(f"    class axis guess: {pred['class_axis_guess']}")
        for line in pred.get("notes", []) or []:
            print(f"    note: {_one_line(str(line))}")
        if against is not None:
            print(
                f"    against image {_fmt(against['image_shape'])}: {against['kind']}, "
                f"{against['n_classes']} classes, layout {against['layout']}"
                + (
                    f" ({against['layout_note']})"
                    if against.get("layout_note") and against["layout_note"] not in against["notes"]
                    else ""
                )
            )
            for line in against.get("notes", []):
                print(f"      note: {_one_line(str(line))}")
    table = report.get("class_table")
    if table is not None:
        names = ", ".join(f"{c['index']} {c['name']}" for c in table["classes"][:12])
        more = f", ... ({table['n_classes'] - 12} more)" if table["n_classes"] > 12 else ""
        print(f"  class table ({table['format']}): {table['n_classes']} classes: {names}{more}")
        for w in table["warnings"]:
            print(f"    note: {_one_line(w)}")
    for k, v in (report.get("not_readable_as") or {}).items():
        if k != "class_table":
            print(f"  cannot be read as {k.replace('_', ' ')}: {_one_line(v)}")


# ----------------------------------------------------------------------------------------
# segviewer export


def _export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer export",
        description="Export masks, label maps, probabilities and annotated slices from a "
        "prediction (or a model run on the image), with a manifest.json describing them.",
        epilog="NIfTI outputs keep the image's shape and affine, so they open aligned in "
        "ITK-SNAP, 3D Slicer and FSLeyes. PNG slices are oriented as the window shows them "
        "(radiological convention unless --neurological).",
    )
    _add_source_options(p, "use the bundled demo image, prediction and classes")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument(
        "--reference",
        metavar="FILE",
        help="reference segmentation (label map, or probabilities: their argmax) on the image "
        "grid: adds a comparison to the manifest and allows --what errors",
    )
    p.add_argument(
        "--what",
        default="binary,labels",
        help=f"comma list of {','.join(_WHATS)} (default binary,labels; errors needs --reference)",
    )
    p.add_argument(
        "--format", default="nifti", help=f"comma list of {','.join(_FORMATS)} (default nifti)"
    )
    p.add_argument(
        "--class",
        dest="class_",
        action="append",
        metavar="NAME_OR_INDEX",
        help="export only this class (repeatable; default: all but background)",
    )
    p.add_argument(
        "--view",
        choices=("axial", "coronal", "sagittal"),
        default="axial",
        help="slicing of PNG outputs (default axial)",
    )
    p.add_argument("--neurological", action="store_true", help="patient left on picture left")
    p.add_argument(
        "--slices", metavar="SEL", help="PNG slices: 10:20, 5, 0,4,8, ::10 (default all)"
    )
    p.add_argument("--opacity", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    p.add_argument(
        "--outline", action="store_true", help="draw class outlines instead of filled areas"
    )
    p.add_argument("--mode", choices=("fill", "outline", "both"), help="overlay drawing mode")
    p.add_argument("--outline-width", type=int, default=1, metavar="PX")
    p.add_argument(
        "--window", metavar="LEVEL,WIDTH", help="grey window for overlays (default automatic)"
    )
    p.add_argument("--no-legend", action="store_true", help="no legend on overlays")
    p.add_argument(
        "--scale",
        type=int,
        default=0,
        metavar="N",
        help="enlarge overlays N times (default 0 = automatic: at least 512 px)",
    )
    _add_mask_options(p)
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    return p


def _add_source_options(p: argparse.ArgumentParser, demo_help: str) -> None:
    """Image, prediction or model, class table, layout and kind: shared by export and compare."""
    p.add_argument("image", nargs="?", metavar="IMAGE", help="the MRI (file or DICOM folder)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prediction", metavar="FILE", help="logits/probabilities/label map file")
    src.add_argument("--model", metavar="MODEL", help="TensorFlow/Keras model to run on the image")
    p.add_argument("--demo", action="store_true", help=demo_help)
    p.add_argument(
        "--classes",
        metavar="FILE",
        help="class table (JSON, CSV, ITK-SNAP, FreeSurfer LUT, Slicer)",
    )
    p.add_argument("--layout", help="prediction layout, e.g. NDHWC, CDHW, HWC (default: detected)")
    p.add_argument("--kind", choices=_KINDS, help="what the values are (default: detected)")


def _add_mask_options(p: argparse.ArgumentParser) -> None:
    """Label-map settings, image selection and model options: shared by export and compare."""
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="sigmoid/multi-label threshold (default: the model card's, else 0.5)",
    )
    p.add_argument(
        "--min-confidence",
        type=float,
        metavar="P",
        help="mark voxels whose top probability is below P as uncertain",
    )
    p.add_argument(
        "--resample", action="store_true", help="resample a prediction of another size to the image"
    )
    _add_image_options(p)
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="allow a model file that can run arbitrary code (Keras lambda layers)",
    )
    p.add_argument("--model-card", metavar="FILE", help="the model's card (<model>.segviewer.json)")
    p.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one model-card setting, e.g. normalization=zscore, slice_axis=0, "
        "batch_size=8 (repeatable; see docs/model_card.md)",
    )


def _csv(text: str, allowed: Sequence[str], what: str) -> frozenset[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    items = ["overlays" if t == "overlay" else t for t in items]
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        raise SegviewerError(
            f"unknown {what} {', '.join(bad) or repr(text)}; choose from {', '.join(allowed)}"
        )
    return frozenset(items)


def _resolve_classes(specs: Sequence[str] | None, table: Any) -> tuple[int, ...] | None:
    if not specs:
        return None
    out: list[int] = []
    by_name = {c.name.casefold(): c.index for c in table}
    for spec in specs:
        s = spec.strip()
        if s.lstrip("-").isdigit():
            k = int(s)
            if not 0 <= k < len(table):
                raise SegviewerError(
                    f"--class {s}: there is no class {k}; the classes are 0..{len(table) - 1}"
                )
            out.append(k)
        elif s.casefold() in by_name:
            out.append(by_name[s.casefold()])
        else:
            names = ", ".join(repr(c.name) for c in table)
            raise SegviewerError(f"--class {s!r}: no class has this name; the classes are {names}")
    return tuple(dict.fromkeys(out))


def _window_arg(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        level, width = (float(v) for v in text.replace(":", ",").split(","))
    except ValueError:
        raise SegviewerError(
            f"--window {text!r}: write LEVEL,WIDTH, e.g. --window 300,600"
        ) from None
    if not (math.isfinite(level) and math.isfinite(width) and width > 0):
        raise SegviewerError(f"--window {text!r}: the width must be a positive number")
    return level, width


def _table_from_card(names: Sequence[str], colors: Sequence[str] | None) -> Any:
    """Class table from a model card's ``class_names`` / ``class_colors`` (``#rrggbb``)."""
    from segviewer.core.classes import ClassTable

    table = ClassTable.default(len(names))
    for i, name in enumerate(names):
        table = table.with_name(i, str(name))
        if colors is not None:
            h = str(colors[i]).lstrip("#")
            table = table.with_color(i, (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)))
    return table


def _demo_paths() -> tuple[Path, Path, Path]:
    import importlib.resources

    demo = importlib.resources.files("segviewer.resources") / "demo"
    paths = tuple(Path(str(demo / n)) for n in ("t1.nii.gz", "tissue_prob.nii.gz", "classes.json"))
    for p in paths:
        if not p.is_file():
            raise SegviewerError(f"the bundled demo file {p} is missing; reinstall segviewer")
    return paths  # type: ignore[return-value]


class _Inputs:
    """What export and compare load the same way: image, prediction, table, mask settings."""

    def __init__(
        self,
        volume: Any,
        prediction: Any,
        table: Any,
        settings: Any,
        provenance: dict[str, Any] | None,
        warnings: list[str],
    ) -> None:
        self.volume = volume
        self.prediction = prediction
        self.table = table
        self.settings = settings
        self.provenance = provenance
        self.warnings = warnings


def _load_inputs(
    ns: argparse.Namespace,
    show: bool,
    image_path: str | None,
    prediction_path: str | None,
    classes_path: str | None,
    command: str,
) -> _Inputs:
    """Load the image, then the prediction file or run the model; class table and settings."""
    from segviewer.core.classes import ClassTable
    from segviewer.core.types import MaskSettings
    from segviewer.io.images import load_image

    if not image_path:
        raise SegviewerError(
            f"no image given; run 'segviewer {command} IMAGE --prediction FILE ...'"
        )
    if not prediction_path and not ns.model:
        raise SegviewerError("no prediction given; add --prediction FILE or --model MODEL")
    if (ns.model_card or ns.model_option) and not ns.model:
        raise SegviewerError("--model-card and --model-option only apply with --model")
    overrides: dict[str, Any] = {}
    if ns.model_option:
        from segviewer.inference.card import parse_overrides

        overrides = parse_overrides(ns.model_option)
    warnings: list[str] = []
    threshold: float | None = ns.threshold
    table: Any = None
    if classes_path:
        from segviewer.io.classtables import read_class_table

        table, table_warnings = read_class_table(classes_path)
        warnings += table_warnings

    volume = load_image(image_path, frame=ns.frame, series=_series_arg(ns.series))
    warnings += [str(w) for w in volume.metadata.get("warnings", ())]
    provenance: dict[str, Any] | None = None
    if ns.model:
        from segviewer.inference import card_for_model, load_card, predict

        # An explicit --model-card is passed on; otherwise predict() finds the card beside
        # the model itself and records its path in the provenance.
        given = load_card(ns.model_card) if ns.model_card else None
        card = given if given is not None else card_for_model(ns.model)
        if card is not None and overrides:
            card = card.with_overrides(overrides)
        if table is None and card is not None and card.class_names:
            table = _table_from_card(card.class_names, card.class_colors)
        if threshold is None and "threshold" in overrides:
            threshold = float(overrides["threshold"])
        elif threshold is None and card is not None:
            threshold = card.threshold
        bar = _ProgressBar(sys.stderr, show, "running the model")
        prediction, provenance = _drive(
            predict(
                volume, ns.model, trust=ns.trust_model, card=given, overrides=overrides or None
            ),
            bar,
        )
    else:
        from segviewer.io.predictions import load_prediction

        prediction = load_prediction(
            str(prediction_path),
            volume.shape,
            layout=ns.layout,
            kind=ns.kind,
            n_classes_hint=len(table) if table is not None else None,
            resample=ns.resample,
        )
    if table is None:
        table = ClassTable.default(int(prediction.n_classes))
    settings = MaskSettings(
        threshold=0.5 if threshold is None else threshold, min_confidence=ns.min_confidence
    )
    return _Inputs(volume, prediction, table, settings, provenance, warnings)


def _load_reference(
    path: str, volume: Any, n_classes: int, warnings: list[str], layout: str | None = None
) -> Any:
    """The reference label map on the image grid; geometry warnings go to ``warnings``."""
    from segviewer.io.predictions import load_reference

    notes: list[str] = []
    reference = load_reference(
        path,
        volume.shape,
        layout=layout,
        n_classes_hint=n_classes,
        image_affine=volume.affine,
        notes=notes,
    )
    # only what the user must act on: a reference mirrored or shifted against the image
    warnings += [n.removeprefix("Warning: ") for n in notes if n.startswith("Warning")]
    return reference


def _export(argv: Sequence[str]) -> int:
    ns = _parse(_export_parser(), argv)
    if isinstance(ns, int):
        return ns
    from segviewer.core.export_plan import parse_slices
    from segviewer.core.orientation import display_axes
    from segviewer.io.export import ExportRequest, run_export

    show = not ns.quiet and sys.stderr.isatty()
    image_path = ns.image
    prediction_path = ns.prediction
    classes_path = ns.classes
    if ns.demo:
        if ns.model or (ns.image and ns.prediction):
            raise SegviewerError(
                "--demo brings its own image and prediction; drop IMAGE/--prediction/--model"
            )
        demo_image, demo_pred, demo_classes = _demo_paths()
        image_path = image_path or str(demo_image)
        prediction_path = prediction_path or str(demo_pred)
        classes_path = classes_path or str(demo_classes)
    what = _csv(ns.what, _WHATS, "export content")
    if "errors" in what and not ns.reference:
        raise SegviewerError(
            "--what errors shows where the prediction disagrees with a reference "
            "segmentation; add --reference FILE or leave out errors"
        )
    formats = _csv(ns.format, _FORMATS, "format")
    mode = ns.mode or ("outline" if ns.outline else "fill")
    window = _window_arg(ns.window)
    if ns.scale < 0:
        raise SegviewerError(f"--scale {ns.scale}: give 1 or more, or 0 for automatic")

    inputs = _load_inputs(ns, show, image_path, prediction_path, classes_path, "export")
    volume, table = inputs.volume, inputs.table
    reference = None
    if ns.reference:
        n = max(len(table), int(inputs.prediction.n_classes))
        reference = _load_reference(ns.reference, volume, n, inputs.warnings)
    classes = _resolve_classes(ns.class_, table)
    axes = display_axes(volume.affine, ns.view, not ns.neurological)
    slices = parse_slices(ns.slices, volume.shape[axes.slice_axis]) if ns.slices else None
    request = ExportRequest(
        out_dir=Path(ns.out),
        what=what,
        formats=formats,
        classes=classes,
        view=ns.view,
        slices=slices,
        opacity=ns.opacity,
        mode=mode,
        outline_width=ns.outline_width,
        window=window,
        legend=not ns.no_legend,
        force=ns.force,
        settings=inputs.settings,
        radiological=not ns.neurological,
        scale=None if ns.scale == 0 else ns.scale,
    )
    bar = _ProgressBar(sys.stderr, show, "exporting")
    result = _drive(
        run_export(
            volume,
            inputs.prediction,
            table,
            request,
            provenance=inputs.provenance,
            reference=reference,
            reference_source=ns.reference,
        ),
        bar,
    )
    for w in dict.fromkeys([*inputs.warnings, *result.warnings]):
        _err(f"segviewer: warning: {_one_line(w)}")
    if not ns.quiet:
        print(_summary(result, table, volume))
        if result.comparison is not None:
            names = {c.index: c.name for c in table}
            print(_comparison_table(result.comparison, names))
    return 0


# ----------------------------------------------------------------------------------------
# segviewer compare


def _compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="segviewer compare",
        description="Where is the model wrong: compare a prediction (file or model run on the "
        "image) with a reference segmentation, voxel by voxel, and print per-class Dice, "
        "Jaccard, sensitivity, precision and volumes, and the overall accuracy.",
        epilog="The reference must be on the image's grid (same shape). Reference voxels with "
        "no class of the table are left out; prediction voxels marked uncertain or invalid "
        "count as wrong for every class. 'segviewer export ... --reference FILE --what errors' "
        "writes the error maps.",
    )
    _add_source_options(
        p,
        "run the bundled demo model on the demo image and compare it with the demo's tissue "
        "map (needs TensorFlow)",
    )
    p.add_argument(
        "--reference",
        metavar="FILE",
        help="reference segmentation: a label map, or probabilities/logits (their argmax)",
    )
    p.add_argument(
        "--reference-layout",
        metavar="L",
        help="layout of a reference with a class axis, e.g. DHWC (default: detected)",
    )
    _add_mask_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _demo_model_path() -> Path:
    import importlib.resources

    path = Path(str(importlib.resources.files("segviewer.resources") / "demo" / "model.keras"))
    if not path.is_file():
        raise SegviewerError(f"the bundled demo model {path} is missing; reinstall segviewer")
    return path


def _compare(argv: Sequence[str]) -> int:
    ns = _parse(_compare_parser(), argv)
    if isinstance(ns, int):
        return ns
    import importlib.util

    import numpy as np

    from segviewer.core.compare import iter_compare
    from segviewer.core.masks import iter_labels
    from segviewer.io.common import jsonable

    show = not ns.quiet and not ns.json and sys.stderr.isatty()
    image_path = ns.image
    classes_path = ns.classes
    reference_path = ns.reference
    if ns.demo:
        if ns.image or ns.prediction or ns.model or ns.reference:
            raise SegviewerError(
                "--demo brings its own image, model and reference; drop IMAGE/--prediction/"
                "--model/--reference"
            )
        if importlib.util.find_spec("tensorflow") is None:
            raise SegviewerError(
                "'segviewer compare --demo' runs the bundled demo model, which needs "
                "TensorFlow (pip install tensorflow-cpu); without it, compare your own files: "
                "segviewer compare IMAGE --prediction FILE --reference FILE"
            )
        demo_image, demo_tissue, demo_classes = _demo_paths()
        image_path = str(demo_image)
        reference_path = str(demo_tissue)
        classes_path = classes_path or str(demo_classes)
        ns.model = str(_demo_model_path())
    if not reference_path:
        raise SegviewerError(
            "no reference segmentation given; add --reference FILE (a label map or "
            "probabilities on the image grid)"
        )
    inputs = _load_inputs(ns, show, image_path, ns.prediction, classes_path, "compare")
    volume, prediction, table = inputs.volume, inputs.prediction, inputs.table
    warnings = list(inputs.warnings)
    n = max(len(table), int(prediction.n_classes))
    if len(table) < n:
        table, fit_warnings = table.fitted(n)
        warnings += list(fit_warnings)
    reference = _load_reference(reference_path, volume, n, warnings, ns.reference_layout)
    labels = _drive(iter_labels(prediction, inputs.settings), _ProgressBar(sys.stderr, show))
    vox_mm3 = float(abs(np.linalg.det(volume.affine[:3, :3])))
    comparison = _drive(
        iter_compare(labels.labels, reference, n, vox_mm3),
        _ProgressBar(sys.stderr, show, "comparing"),
    )
    if labels.n_invalid:
        warnings.append(
            f"{labels.n_invalid} prediction voxels have NaN or infinite values; they count as "
            "wrong for every class"
        )
    if labels.n_uncertain:
        warnings.append(
            f"{labels.n_uncertain} prediction voxels are below the minimum confidence; they "
            "count as wrong for every class"
        )
    if comparison.n_ignored:
        warnings.append(
            f"{comparison.n_ignored} reference voxels have no class of the table (0..{n - 1}) "
            "and were left out of the comparison"
        )
    for w in dict.fromkeys(warnings):
        _err(f"segviewer: warning: {_one_line(w)}")
    names = {c.index: c.name for c in table}
    if ns.json:
        doc = {
            "image": str(volume.source),
            "prediction": str(prediction.source),
            "reference": str(reference_path),
            "threshold": inputs.settings.threshold,
            "min_confidence": inputs.settings.min_confidence,
            "provenance": inputs.provenance or None,
            "warnings": list(dict.fromkeys(warnings)),
            **comparison.as_dict(),
        }
        for c in doc["classes"]:
            c["name"] = names[c["index"]]
        print(json.dumps(jsonable(doc), indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(f"prediction {prediction.source} against reference {reference_path}")
        print(_comparison_table(comparison, names))
    return 0


def _ratio_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def _comparison_table(comparison: Any, names: dict[int, str]) -> str:
    """Per-class agreement as aligned text columns, then the overall accuracy."""
    head = ("class", "dice", "jaccard", "sensitivity", "precision", "pred ml", "ref ml", "diff %")
    rows = []
    for c in comparison.per_class:
        diff = c.volume_diff_percent
        rows.append(
            (
                f"{c.index} {names.get(c.index, f'class {c.index}')}",
                _ratio_text(c.dice),
                _ratio_text(c.jaccard),
                _ratio_text(c.sensitivity),
                _ratio_text(c.precision),
                f"{c.volume_pred_mm3 / 1000:.2f}",
                f"{c.volume_ref_mm3 / 1000:.2f}",
                "n/a" if math.isnan(diff) else f"{diff:+.1f}",
            )
            + (("(absent in both)",) if c.absent_in_both else ())
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = []
    for r in [head, *rows]:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(head))]
        lines.append("  ".join(cells + list(r[len(head) :])).rstrip())
    mean = comparison.mean_dice()
    lines.append(
        f"accuracy {_ratio_text(comparison.accuracy)} over {comparison.n_voxels} voxels"
        + (f" ({comparison.n_ignored} reference voxels left out)" if comparison.n_ignored else "")
        + (f"; mean foreground Dice {mean:.4f}" if not math.isnan(mean) else "")
    )
    return "\n".join(lines)


def _summary(result: Any, table: Any, volume: Any) -> str:
    import numpy as np

    vox_ml = float(abs(np.linalg.det(volume.affine[:3, :3]))) / 1000.0
    parts = []
    # The export fitted the table to the prediction: classes beyond the table's entries are
    # counted too, under their default names.
    names = {c.index: c.name for c in table}
    for k in range(1, len(result.counts)):
        n = int(result.counts[k])
        parts.append(f"{names.get(k, f'class {k}')} {n} voxels ({n * vox_ml:.1f} ml)")
    extra = ""
    if result.n_invalid:
        extra += f"; {result.n_invalid} invalid voxels (NaN/inf in the prediction)"
    if result.n_uncertain:
        extra += f"; {result.n_uncertain} uncertain voxels"
    return (
        f"exported {len(result.files)} files to {result.out_dir}: "
        + ("; ".join(parts) or "no classes")
        + extra
        + f"; manifest {result.manifest}"
    )
