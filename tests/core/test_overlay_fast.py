"""The table-lookup paths of core.overlay against the float arithmetic they replace."""

from __future__ import annotations

import numpy as np
import pytest

from segviewer.core.overlay import colormap_lut, compose_heatmap, heatmap_rgba, window_to_uint8
from segviewer.core.types import SegviewerError


def float_window(x: np.ndarray, level: float, width: float) -> np.ndarray:
    """The float formula of window_to_uint8, written out independently (float64)."""
    lo = level - width / 2.0
    g = np.floor((x.astype(np.float64) - lo) * (255.0 / width) + 0.5)
    return np.clip(np.nan_to_num(g, nan=0.0), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16, ">i2"])
def test_integer_window_lookup_equals_float_window(dtype: str) -> None:
    info = np.iinfo(np.dtype(dtype))
    rng = np.random.default_rng(0)
    x = rng.integers(info.min, int(info.max) + 1, (64, 80)).astype(dtype)
    x[0, :2] = (info.min, info.max)
    for level, width in ((0.0, 100.0), (float(info.max) / 3, float(info.max) / 2), (7.3, 0.0)):
        got = window_to_uint8(x, level, width)
        want = window_to_uint8(x.astype(np.float32), level, width)  # the float path
        np.testing.assert_array_equal(got, want)
        if width > 0:
            assert np.abs(got.astype(int) - float_window(x, level, width)).max() <= 1
    # a strided (flipped, transposed) view of a memory-map-like read-only array
    x.setflags(write=False)
    v = x.T[::-1]
    np.testing.assert_array_equal(
        window_to_uint8(v, 10, 300), window_to_uint8(v.astype(float), 10, 300)
    )


def test_compose_heatmap_equals_the_float_blend() -> None:
    rng = np.random.default_rng(1)
    values = rng.random((40, 50)).astype(np.float32)
    values[3, 4] = np.nan
    values[5, 6] = 1.5  # clipped to the top
    values[7, 8] = -1.0  # clipped to the bottom
    grey = rng.integers(0, 256, (40, 50)).astype(np.uint8)
    for cmap, opacity in (("inferno", 0.6), ("viridis", 1.0), ("magma", 0.0)):
        got = compose_heatmap(grey, values, 0.0, 1.0, cmap, opacity=opacity)
        heat = heatmap_rgba(values, 0.0, 1.0, cmap)
        a = heat[..., 3:4].astype(np.float32) / 255.0 * np.float32(opacity)
        want = (grey[..., None] * (1.0 - a) + heat[..., :3] * a + 0.5).astype(np.uint8)
        np.testing.assert_array_equal(got[..., :3], want)
        assert (got[..., 3] == 255).all()
        assert tuple(got[3, 4, :3]) == (grey[3, 4],) * 3  # NaN: the anatomy alone
    top = colormap_lut("inferno")[255, :3]
    np.testing.assert_array_equal(
        compose_heatmap(grey, values, 0.0, 1.0, "inferno", opacity=1.0)[5, 6, :3], top
    )
    with pytest.raises(SegviewerError, match="vmax"):
        compose_heatmap(grey, values, 1.0, 1.0)
    with pytest.raises(SegviewerError, match="opacity"):
        compose_heatmap(grey, values, 0.0, 1.0, opacity=2.0)
