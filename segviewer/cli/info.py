"""``segviewer info FILE...``: what a file is, as an image (shape in image axes 0/1/2, dtype,
spacing, orientation), as a prediction (kind, layout; detected against ``--image`` if given)
and as a class table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segviewer.cli.options import info_parser, series_arg
from segviewer.cli.terminal import one_line, parse
from segviewer.core.classes import rgb_to_hex
from segviewer.core.types import SegviewerError
from segviewer.io.sniff import NUMPY_SUFFIXES, is_class_table

__all__ = ["run"]

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


def run(argv: Sequence[str]) -> int:
    ns = parse(info_parser(), argv)
    if isinstance(ns, int):
        return ns
    from segviewer.io.images import describe_image, load_image

    image = None
    if ns.image:
        image = load_image(ns.image, frame=ns.frame, series=series_arg(ns.series))
    image_shape = image.shape if image is not None else None
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
        if is_class_table(path) and path.is_file():
            try:
                report["class_table"] = _describe_table(path, ns.classes_offset)
            except SegviewerError as exc:
                errors["class_table"] = str(exc)
        if "class_table" not in report:
            try:
                report["image"] = describe_image(path, frame=ns.frame, series=series_arg(ns.series))
            except SegviewerError as exc:
                errors["image"] = str(exc)
            # NumPy files are predictions by their nature; others only against an image, when
            # they cannot be read as an image, or when they hold several volumes.
            as_prediction = (
                path.name.lower().endswith(NUMPY_SUFFIXES)
                or image_shape is not None
                or "image" not in report
                or int(report.get("image", {}).get("n_frames", 1)) > 1
            )
            if as_prediction and path.is_file():
                try:
                    report["prediction"] = _describe_prediction(
                        path, image, ns.layout, ns.kind, ns.resample
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


def _describe_table(path: Path, offset: int = 0) -> dict[str, Any]:
    from segviewer.io.classtables import read_class_table

    table, warnings = read_class_table(path, offset=offset)
    shift = table.shift_warning()
    if shift:
        warnings.insert(0, shift)
    return {
        "format": _table_format(path),
        "n_classes": len(table),
        "classes": [
            {"index": c.index, "name": c.name, "color": rgb_to_hex(c.color)} for c in table
        ],
        "warnings": list(warnings),
    }


def _table_format(path: Path) -> str:
    # The reader decides the format from the content; ask the same function it uses.
    from segviewer.io.classtables import table_format

    names = {
        "json": "segviewer JSON",
        "csv": "CSV",
        "itksnap": "ITK-SNAP label description",
        "lut": "FreeSurfer / 3D Slicer colour table",
    }
    kind = table_format(path)
    return names.get(kind, kind)


def _describe_prediction(
    path: Path, image: Any, layout: str | None, kind: str | None, resample: bool = False
) -> dict[str, Any]:
    from segviewer.core.orientation import orientation_known
    from segviewer.io.predictions import describe_prediction, load_prediction

    image_shape = None if image is None else image.shape
    info: dict[str, Any] = dict(describe_prediction(path))
    if image_shape is None:
        guess = _class_axis_guess(info.get("shape"), str(info.get("values", "")))
        if guess:
            info["class_axis_guess"] = guess
    if image_shape is not None:
        pred = load_prediction(
            path,
            image_shape,
            layout=layout,
            kind=kind,
            resample=resample,
            image_affine=image.affine,
            image_geometry=orientation_known(image),
            image_metadata=image.metadata,
        )
        rec = pred.resampling
        info["against_image"] = {
            "image_shape": list(image_shape),
            "kind": pred.kind.value,
            "n_classes": int(pred.n_classes),
            "layout": getattr(pred.layout, "name", None),
            "layout_note": getattr(pred.layout, "note", None),
            "class_axis": getattr(pred.layout, "class_axis", None),
            "spatial_shape": list(pred.spatial_shape),
            "notes": [n for n in pred.notes if rec is None or n != rec.describe()],
            "resampling": None if rec is None else rec.as_dict(),
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
        print(f"  error: {one_line(report['error'])}")
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
            print(f"    note: {one_line(str(line))}")
    pred = report.get("prediction")
    if pred is not None:
        against = pred.pop("against_image", None)
        print(
            "  as prediction: "
            + one_line(
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
            print(f"    note: {one_line(str(line))}")
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
            if against.get("resampling"):
                print(f"      resampled: {one_line(against['resampling']['description'])}")
            for line in against.get("notes", []):
                print(f"      note: {one_line(str(line))}")
    table = report.get("class_table")
    if table is not None:
        names = ", ".join(f"{c['index']} {c['name']}" for c in table["classes"][:12])
        more = f", ... ({table['n_classes'] - 12} more)" if table["n_classes"] > 12 else ""
        first = [w for w in table["warnings"] if "off by one" in w]
        for w in first:  # said before the names it puts in doubt
            print(f"  warning: {one_line(w)}")
        print(f"  class table ({table['format']}): {table['n_classes']} classes: {names}{more}")
        for w in table["warnings"]:
            if w not in first:
                print(f"    note: {one_line(w)}")
    for k, v in (report.get("not_readable_as") or {}).items():
        if k != "class_table":
            print(f"  cannot be read as {k.replace('_', ' ')}: {one_line(v)}")
