"""The report's inline SVG plots: where the boxes and dots land, and round axis ticks."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from segviewer.io.report import _nice_ticks, distribution_svg

_NS = "{http://www.w3.org/2000/svg}"


def test_dots_and_median_sit_at_their_values() -> None:
    svg = distribution_svg("dice", [("grey (A)", "a", [0.0, 0.5, 1.0]), ("grey (B)", "b", [])])
    root = ET.fromstring(svg)  # well-formed XML
    width = float(root.get("width") or 0)
    left, right = 150.0, width - 16.0  # the plot area of distribution_svg
    xs = sorted(float(c.get("cx") or 0) for c in root.iter(f"{_NS}circle"))
    assert xs == pytest.approx([left, (left + right) / 2, right], abs=0.06)
    medians = [
        float(ln.get("x1") or 0)
        for ln in root.iter(f"{_NS}line")
        if ln.get("stroke-width") == "2.5"
    ]
    assert medians == pytest.approx([(left + right) / 2], abs=0.06)
    texts = [t.text for t in root.iter(f"{_NS}text")]
    assert "Dice (higher is better)" in texts and "no defined values" in texts
    assert [t for t in texts if t and re.fullmatch(r"[\d.]+", t)] == [
        "0",
        "0.25",
        "0.5",
        "0.75",
        "1",
    ]


def test_nice_ticks() -> None:
    assert _nice_ticks(-0.3, 6.6, non_negative=True) == [0, 2, 4, 6, 8]
    assert _nice_ticks(-151, 70.4, non_negative=False) == [-200, -100, 0, 100]
    assert _nice_ticks(0.001, 0.004, non_negative=False) == pytest.approx(
        [0.001, 0.002, 0.003, 0.004]
    )
    t = _nice_ticks(3.0, 3.0, non_negative=True)
    assert t[0] <= 3.0 <= t[-1] and t[0] >= 0
