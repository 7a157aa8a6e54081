"""Default class colours and error colours, measured in CIELAB (CIE76 ΔE).

Bounds stated here are what the README promises: neighbouring classes are told apart at a
glance (ΔE >= 30 up to 20 classes, >= 15 at 114), the first eight classes also by red-green
colour-blind readers (simulated), and the errors view's colours never coincide with a class
colour or a reserved one.
"""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.classes import PALETTE, ClassTable, default_color
from segviewer.core.colours import (
    DEUTERANOPIA,
    PROTANOPIA,
    RESERVED,
    delta_e,
    error_colors,
    min_distance,
    rgb_to_lab,
)


def test_lab_conversion_matches_reference_values() -> None:
    # CIELAB of sRGB primaries and white (D65), as published (e.g. Lindbloom's calculator)
    lab = rgb_to_lab(np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]))
    expected = [[53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [32.30, 79.19, -107.86], [100, 0, 0]]
    np.testing.assert_allclose(lab, expected, atol=0.05)
    assert delta_e((0, 0, 0), (255, 255, 255)) == pytest.approx(100.0, abs=0.01)


@pytest.mark.parametrize(("n", "bound"), [(4, 60.0), (20, 30.0), (114, 15.0)])
def test_default_colours_are_perceptually_distinct(n: int, bound: float) -> None:
    colors = ClassTable.default(n + 1).colors[1:]
    assert min_distance(colors) >= bound
    # the old cycled palette failed this: 114 classes had pairs 5 ΔE apart
    assert len({tuple(c) for c in colors}) == n


def test_first_classes_stay_apart_for_colour_blind_readers() -> None:
    first = PALETTE[:8]
    assert min_distance(first, DEUTERANOPIA) >= 25.0
    assert min_distance(first, PROTANOPIA) >= 25.0
    # blue and orange first, as before
    assert PALETTE[0] == (0, 130, 200) and PALETTE[1] == (245, 130, 48)


def test_colours_are_stable_when_classes_are_added() -> None:
    small, large = ClassTable.default(5), ClassTable.default(115)
    np.testing.assert_array_equal(small.colors, large.colors[:5])
    assert [default_color(k) for k in range(1, 5)] == [tuple(c) for c in small.colors[1:5]]


def test_class_colours_keep_away_from_reserved_colours() -> None:
    for c in PALETTE:
        assert min(delta_e(c, r) for r in RESERVED) >= 15.0, c


@pytest.mark.parametrize(("n", "bound"), [(4, 60.0), (20, 30.0), (114, 15.0)])
def test_error_colours_never_coincide_with_class_colours(n: int, bound: float) -> None:
    colors = [tuple(c) for c in ClassTable.default(n + 1).colors[1:]]
    fp, fn = error_colors(colors)
    assert min(delta_e(fp, c) for c in colors) >= bound
    assert min(delta_e(fn, c) for c in colors) >= bound
    assert delta_e(fp, fn) >= 20.0
    for r in RESERVED:
        assert delta_e(fp, r) >= 15.0 and delta_e(fn, r) >= 15.0


def test_error_colours_avoid_a_red_lesion_and_a_blue_class() -> None:
    # the case the old fixed red-orange / blue error colours got wrong
    colors = [(0, 0, 255), (255, 0, 0), (230, 60, 30)]
    fp, fn = error_colors(colors)
    assert min(delta_e(fp, c) for c in colors) >= 50.0
    assert min(delta_e(fn, c) for c in colors) >= 50.0
    assert error_colors(colors) == (fp, fn)  # deterministic
