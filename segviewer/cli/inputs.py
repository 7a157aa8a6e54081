"""What ``export`` and ``compare`` load the same way: image, prediction (file or model run),
class table, mask settings and reference; and the bundled demo's files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segviewer.cli.options import series_arg
from segviewer.cli.terminal import ProgressBar, drive
from segviewer.core.classes import ClassTable
from segviewer.core.orientation import orientation_known
from segviewer.core.types import MaskSettings, Prediction, SegviewerError, Volume
from segviewer.io.bundled import demo_model_path, demo_paths

__all__ = ["Inputs", "demo_model_path", "demo_paths", "load_inputs", "load_reference"]


@dataclass
class Inputs:
    """The loaded inputs of ``export`` and ``compare``."""

    volume: Volume
    prediction: Prediction
    table: ClassTable
    settings: MaskSettings
    #: how a model run made the prediction (``None`` for a prediction file)
    provenance: dict[str, Any] | None = None
    #: what the user should hear about (one line each, printed as warnings)
    warnings: list[str] = field(default_factory=list)


def load_inputs(
    ns: argparse.Namespace,
    show: bool,
    image_path: str | None,
    prediction_path: str | None,
    classes_path: str | None,
    command: str,
) -> Inputs:
    """Load the image, then the prediction file or run the model; class table and settings."""
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
    table: ClassTable | None = None
    if classes_path:
        from segviewer.io.classtables import read_class_table

        table, table_warnings = read_class_table(
            classes_path, offset=getattr(ns, "classes_offset", 0) or 0
        )
        warnings += table_warnings

    if prediction_path and not ns.model and not ns.resample:
        _check_shapes_from_headers(image_path, str(prediction_path), ns.layout)
    volume = load_image(image_path, frame=ns.frame, series=series_arg(ns.series))
    warnings += [str(w) for w in volume.metadata.get("warnings", ())]
    provenance: dict[str, Any] | None = None
    prediction: Prediction
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
        bar = ProgressBar(sys.stderr, show, "running the model")
        prediction, provenance = drive(
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
            image_affine=volume.affine,
            image_geometry=orientation_known(volume),
            image_metadata=volume.metadata,
        )
        if table is None:
            from segviewer.io.classtables import class_table_beside

            beside = class_table_beside(str(prediction_path))
            if beside is not None:
                table, source, table_warnings = beside
                warnings += [f"class names from {source}", *table_warnings]
    if prediction.resampling is not None:
        warnings.append(prediction.resampling.describe())
    if table is None:
        table = ClassTable.default(int(prediction.n_classes))
    else:
        shift = table.shift_warning(int(prediction.n_classes))
        if shift and len(table) + 1 == int(prediction.n_classes):
            warnings.insert(0, shift)
    settings = MaskSettings(
        threshold=0.5 if threshold is None else threshold, min_confidence=ns.min_confidence
    )
    return Inputs(volume, prediction, table, settings, provenance, warnings)


def _check_shapes_from_headers(image_path: str, prediction_path: str, layout: str | None) -> None:
    """Refuse a prediction that cannot fit the image from both headers, before the (possibly
    gigabytes of) image data is read. Formats without a cheap header are checked later, by
    the readers, with the same message."""
    from segviewer.core.layout import ShapeMismatch, detect_layout
    from segviewer.io.images import header_shape
    from segviewer.io.predictions import describe_prediction

    try:
        image_shape = header_shape(image_path)
        if image_shape is None or Path(prediction_path).suffix.lower() not in (
            ".npy",
            ".nii",
            ".gz",
        ):
            return
        raw_shape = tuple(int(d) for d in describe_prediction(prediction_path)["shape"])
    except (SegviewerError, KeyError, TypeError, ValueError):
        return  # the full readers report what is wrong with either file
    try:
        detect_layout(raw_shape, image_shape, explicit=layout)
    except ShapeMismatch as exc:  # the message load_prediction gives, earlier
        raise ShapeMismatch(
            f"{prediction_path}: {exc}", exc.resample_possible, exc.fitting_layouts
        ) from None
    except SegviewerError as exc:
        raise SegviewerError(f"{prediction_path}: {exc}") from None


def load_reference(
    path: str,
    volume: Volume,
    n_classes: int,
    warnings: list[str],
    layout: str | None = None,
    resample: bool = False,
) -> np.ndarray:
    """The reference label map on the image grid; geometry warnings go to ``warnings``.

    With ``resample`` a reference on another grid is resampled (nearest neighbour for a label
    map, in world space when both files carry geometry) and a line says how.
    """
    from segviewer.io.predictions import load_reference as read_reference

    notes: list[str] = []
    reference = read_reference(
        path,
        volume.shape,
        layout=layout,
        n_classes_hint=n_classes,
        image_affine=volume.affine,
        notes=notes,
        resample=resample,
        image_metadata=volume.metadata,
    )
    # only what the user must act on: a reference mirrored or shifted against the image, or
    # resampled onto it
    warnings += [
        n.removeprefix("Warning: ")
        for n in notes
        if n.startswith("Warning") or n.startswith("Resampled")
    ]
    return reference


def _table_from_card(names: Sequence[str], colors: Sequence[str] | None) -> ClassTable:
    """Class table from a model card's ``class_names`` / ``class_colors`` (``#rrggbb``)."""
    return ClassTable.from_names(names, colors)
