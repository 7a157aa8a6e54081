"""``segviewer export IMAGE (--prediction FILE | --model MODEL) --out DIR [...]``.

Headless export through :func:`segviewer.io.export.run_export`, the same code path the
window uses. ``segviewer export --demo --out DIR`` exports the bundled demo.
``--reference FILE`` adds a comparison to the manifest and allows ``--what errors``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from segviewer.cli.inputs import demo_paths, load_inputs, load_reference
from segviewer.cli.options import FORMATS, WHATS, csv_choice, export_parser, window_arg
from segviewer.cli.terminal import ProgressBar, comparison_table, drive, parse, warn
from segviewer.core.classes import ClassTable
from segviewer.core.types import SegviewerError, Volume

if TYPE_CHECKING:
    from segviewer.io.export import ExportResult

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    ns = parse(export_parser(), argv)
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
        demo_image, demo_pred, demo_classes = demo_paths()
        image_path = image_path or str(demo_image)
        prediction_path = prediction_path or str(demo_pred)
        classes_path = classes_path or str(demo_classes)
    what = csv_choice(ns.what, WHATS, "export content")
    if "errors" in what and not ns.reference:
        raise SegviewerError(
            "--what errors shows where the prediction disagrees with a reference "
            "segmentation; add --reference FILE or leave out errors"
        )
    formats = csv_choice(ns.format, FORMATS, "format")
    mode = ns.mode or ("outline" if ns.outline else "fill")
    window = window_arg(ns.window)
    if ns.scale < 0:
        raise SegviewerError(f"--scale {ns.scale}: give 1 or more, or 0 for automatic")

    inputs = load_inputs(ns, show, image_path, prediction_path, classes_path, "export")
    volume, table = inputs.volume, inputs.table
    reference = None
    if ns.reference:
        n = max(len(table), int(inputs.prediction.n_classes))
        reference = load_reference(ns.reference, volume, n, inputs.warnings, resample=ns.resample)
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
        annotate=not ns.no_annotate,
        force=ns.force,
        settings=inputs.settings,
        radiological=not ns.neurological,
        scale=None if ns.scale == 0 else ns.scale,
        allow_identifiers=ns.allow_identifiers,
        full_paths=ns.full_paths,
        free_text=ns.free_text,
    )
    bar = ProgressBar(sys.stderr, show, "exporting")
    result = drive(
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
        warn(w)
    if not ns.quiet:
        print(_summary(result, table, volume))
        if result.comparison is not None:
            names = {c.index: c.name for c in table}
            print(comparison_table(result.comparison, names))
    return 0


def _resolve_classes(specs: Sequence[str] | None, table: ClassTable) -> tuple[int, ...] | None:
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


def _summary(result: ExportResult, table: ClassTable, volume: Volume) -> str:
    import numpy as np

    vox_ml = float(abs(np.linalg.det(volume.affine[:3, :3]))) / 1000.0
    parts = []
    # The export fitted the table to the prediction: classes beyond the table's entries are
    # counted too, under their default names.
    names = {c.index: c.name for c in table}
    for k in range(1, len(result.counts)):
        n = int(result.counts[k])
        if n == 0 and names.get(k, f"class {k}") == f"class {k}":
            continue  # an unnamed class no voxel holds (a stray label makes thousands)
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
