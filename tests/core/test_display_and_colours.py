"""Settings declared once (core.display), hex colours and card tables (core.classes), and the
one list of file suffixes (io.sniff) agreeing with the readers."""

from __future__ import annotations

from pathlib import Path

import pytest

from segviewer.core.classes import ClassTable, hex_to_rgb, rgb_to_hex
from segviewer.core.display import MIN_CONFIDENCE, OPACITY, OUTLINE_WIDTH, THRESHOLD
from segviewer.core.errors import SegviewerError


def test_bounded_settings_accept_their_range_and_name_it_when_refusing() -> None:
    assert OPACITY.check(0.0) == 0.0 and OPACITY.check(1) == 1.0
    assert OUTLINE_WIDTH.check(20) == 20 and isinstance(OUTLINE_WIDTH.check(3.0), int)
    with pytest.raises(SegviewerError, match=r"outline width \(pixels\) must be between 1 and 20"):
        OUTLINE_WIDTH.check(21)
    with pytest.raises(SegviewerError, match="whole number"):
        OUTLINE_WIDTH.check(2.5)
    with pytest.raises(SegviewerError, match="threshold must be between 0 and 1"):
        THRESHOLD.check(float("nan"))
    with pytest.raises(SegviewerError, match="minimum confidence must be a number"):
        MIN_CONFIDENCE.check("high")  # type: ignore[arg-type]


def test_hex_colours_round_trip() -> None:
    assert hex_to_rgb("#ff8800") == (255, 136, 0)
    assert hex_to_rgb("FF8800") == (255, 136, 0)
    assert hex_to_rgb("#f80") == (255, 136, 0)
    assert rgb_to_hex((255, 136, 0)) == "#ff8800"
    for rgb in [(0, 0, 0), (1, 2, 3), (255, 255, 255)]:
        assert hex_to_rgb(rgb_to_hex(rgb)) == rgb
    with pytest.raises(SegviewerError, match="#rrggbb"):
        hex_to_rgb("#12345")


def test_table_from_card_names_colours_and_fallback() -> None:
    shown = ClassTable.default(3).with_color(2, (10, 20, 30))
    t = ClassTable.from_names(("bg", "lesion", "oedema"), None, shown)
    assert t.names == ("bg", "lesion", "oedema")
    assert t[2].color == (10, 20, 30)  # kept from the table shown
    t2 = ClassTable.from_names(("bg", "lesion"), ("#000000", "#ff0000"))
    assert t2[1].color == (255, 0, 0)


def test_every_prediction_suffix_is_one_the_reader_takes(tmp_path: Path) -> None:
    from segviewer.io import sniff
    from segviewer.io.predictions import _format_of

    for suffix in sniff.PREDICTION_SUFFIXES:
        assert _format_of(tmp_path / f"p{suffix}")  # no "unsupported format"
    for suffix in sniff.PREDICTION_SUFFIXES:
        assert f"*{suffix}" in sniff.PREDICTION_FILTER
    assert sniff.classify_path("labels.json", True) == "classes"
    assert sniff.classify_path("t1.nii.gz", False) == "image"
    assert sniff.classify_path("probs.npy", True) == "prediction"
    assert sniff.classify_path("case_gt.nii.gz", True, have_prediction=True) == "reference"
