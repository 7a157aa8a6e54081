"""``segviewer compare IMAGE (--prediction FILE | --model MODEL) --reference FILE [...]``.

Where the model is wrong: per-class Dice, Jaccard, sensitivity, precision and volumes
against a reference segmentation (:mod:`segviewer.core.compare`), as a table or JSON.
``segviewer compare --demo`` runs the bundled model against the demo's tissue map.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from segviewer.cli.inputs import demo_model_path, demo_paths, load_inputs, load_reference
from segviewer.cli.options import compare_parser
from segviewer.cli.terminal import ProgressBar, comparison_table, drive, parse, warn
from segviewer.core.types import SegviewerError

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    ns = parse(compare_parser(), argv)
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
        demo_image, demo_tissue, demo_classes = demo_paths()
        image_path = str(demo_image)
        reference_path = str(demo_tissue)
        classes_path = classes_path or str(demo_classes)
        ns.model = str(demo_model_path())
    if not reference_path:
        raise SegviewerError(
            "no reference segmentation given; add --reference FILE (a label map or "
            "probabilities on the image grid)"
        )
    inputs = load_inputs(ns, show, image_path, ns.prediction, classes_path, "compare")
    volume, prediction, table = inputs.volume, inputs.prediction, inputs.table
    warnings = list(inputs.warnings)
    n = max(len(table), int(prediction.n_classes))
    if len(table) < n:
        table, fit_warnings = table.fitted(n)
        warnings += list(fit_warnings)
    reference = load_reference(
        reference_path, volume, n, warnings, ns.reference_layout, resample=ns.resample
    )
    labels = drive(iter_labels(prediction, inputs.settings), ProgressBar(sys.stderr, show))
    vox_mm3 = float(abs(np.linalg.det(volume.affine[:3, :3])))
    comparison = drive(
        iter_compare(labels.labels, reference, n, vox_mm3),
        ProgressBar(sys.stderr, show, "comparing"),
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
        warn(w)
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
        print(comparison_table(comparison, names))
    return 0
