"""Speed at every class count and file size: the targets of the speed issue, each printed as
a ratio to a baseline measured in the same run.

    python benchmarks/bench_speed.py            # everything (generates ~4.5 GB of test files)
    python benchmarks/bench_speed.py --smoke    # each case once on tiny data (the test suite)
    python benchmarks/bench_speed.py --only switch,volume

Cases (``--only`` names):

switch
    One slice switch with the overlay on, 512 x 512, 4 and 114 classes, channels-first and
    channels-last, memory-mapped ``.npy``: labels of the new slice, grey windowing, blend,
    ``ImageItem.setImage`` and a synchronous repaint of an 800 x 800 view. Baseline: the bare
    pyqtgraph floor, the same ``ImageItem`` showing precomputed RGBA frames of the same size,
    timed interleaved with it. Measured once the whole-volume labels exist (a lookup) and,
    for reference, before (the per-slice path, one contiguous pass over the slice).
window
    The same switch through the real window (``canvas.set_slice``: the cursor change reaches
    every listener, then the canvas draws), once the background work is done.
heatmap
    The same switch showing normalised entropy at 114 classes, from the whole-volume map
    (computed once in the background) and, for reference, per slice.
volume
    Whole-volume labels and entropy, 143 MB float32 (4 classes x 136 x 256 x 256) in both
    layouts, and the 2 GB 114-class file, on 1, 2 and all threads. Baseline: single-threaded
    ``np.max`` over the same array (one read of the data).
open
    A 2 GB 114-class channels-last ``.npy`` chosen cold (pages dropped from the page cache):
    time from the call to the first slice on screen with its overlay, in a fresh process,
    and the resident memory then; the whole-volume labels then stream in the background.
gap
    The longest gap between ticks of a 2 ms ``QTimer`` while whole-volume labels, entropy and
    a comparison with a reference run on worker threads (``--model``: and the demo model).
startup
    ``python -m segviewer`` to the first slice on screen, the demo image and prediction
    without a model, and ``--demo`` (the bundled model queued; TensorFlow is imported only
    after the first slice).

Timings depend on the machine and its load; compare the ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import drop_from_page_cache  # noqa: E402

from segviewer.core import kernels, overlay  # noqa: E402
from segviewer.core.classes import ClassTable  # noqa: E402
from segviewer.core.layout import detect_layout  # noqa: E402
from segviewer.core.masks import (  # noqa: E402
    default_workers,
    iter_labels,
    iter_stat,
    prepare_labels_kernel,
)
from segviewer.core.orientation import display_axes, take_slice  # noqa: E402
from segviewer.core.progress import run_to_end  # noqa: E402
from segviewer.core.slicesource import GreySource, SliceSource  # noqa: E402
from segviewer.core.types import (  # noqa: E402
    STACK_AFFINE,
    MaskSettings,
    Prediction,
    PredictionKind,
)

HEAT_CMAP = "magma"  # the window's entropy colour map
CASES = ("switch", "heatmap", "window", "volume", "open", "gap", "startup")


@dataclass
class Line:
    """One printed line: a case, its median / p95 and the ratio to its baseline."""

    case: str
    name: str
    median_ms: float
    p95_ms: float | None = None
    baseline: str = ""
    ratio: float | None = None
    ratio_p95: float | None = None
    target: str = ""


@dataclass
class Sizes:
    slices: int  # slices of the 512 x 512 switch volumes
    side: int  # 512 (full) or 64 (smoke)
    vol: tuple[int, int, int]  # the 143 MB volume's shape
    atlas: tuple[int, int, int]  # the 2 GB 114-class file's shape
    switches: int
    repeat: int
    launches: int


FULL = Sizes(6, 512, (136, 256, 256), (120, 192, 192), 200, 5, 5)
SMOKE = Sizes(3, 64, (8, 32, 32), (6, 24, 24), 1, 1, 1)


def q95(times: list[float]) -> float:
    if len(times) < 2:
        return times[0]
    return float(np.percentile(times, 95))


def ms(times: list[float]) -> tuple[float, float]:
    return statistics.median(times) * 1e3, q95(times) * 1e3


# --- data ------------------------------------------------------------------------------------


def _logits_file(path: Path, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A float32 ``.npy`` of random logits (reused when already there), memory-mapped."""
    if path.exists():
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        if mm.shape == shape and mm.dtype == np.float32:
            return mm
    tmp = path.with_suffix(".part.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(seed)
    for i in range(shape[0]):
        out[i] = rng.standard_normal(shape[1:], dtype=np.float32) * np.float32(3.0)
    out.flush()
    del out
    tmp.replace(path)
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _pred(raw: np.ndarray, shape: tuple[int, int, int], layout: str, n: int) -> Prediction:
    return Prediction(
        raw, PredictionKind.LOGITS, detect_layout(raw.shape, shape, explicit=layout), n
    )


def _image(shape: tuple[int, int, int]) -> np.ndarray:
    """An int16 'MRI' (a smooth blob plus noise), the usual dtype of scanner data."""
    rng = np.random.default_rng(1)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    r = ((y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2) / (shape[1] * shape[2] / 8)
    img = 1000 * np.exp(-r) + 30 * z + rng.normal(0, 20, shape)
    return img.astype(np.int16)


# --- Qt ----------------------------------------------------------------------------------------


def _view() -> tuple[object, object, object]:
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
    gv = pg.GraphicsView()
    gv.resize(800, 800)
    vb = pg.ViewBox(lockAspect=True, invertY=True)
    gv.setCentralItem(vb)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)
    gv.show()
    app.processEvents()
    return app, gv, item


def _switch_lines(
    case: str,
    name: str,
    n: int,
    slices: int,
    frames: list[np.ndarray],
    ours: Callable[[int], np.ndarray],
    item: object,
    vp: object,
    target: str,
) -> list[Line]:
    """Time ``ours(i)`` + setImage + repaint against setImage(frames[i]) + repaint,
    interleaved, cycling through the slices (every switch shows another slice)."""
    set_image = item.setImage  # type: ignore[attr-defined]
    repaint = vp.repaint  # type: ignore[attr-defined]
    for i in range(min(slices, 3)):  # warm-up: first paint, tables, caches of the floor
        set_image(frames[i], autoLevels=False)
        repaint()
        set_image(ours(i), autoLevels=False)
        repaint()
    floor: list[float] = []
    mine: list[float] = []
    cpu_floor: list[float] = []
    cpu_mine: list[float] = []
    gc.collect()
    for k in range(n):
        i = k % slices
        c0, t0 = time.thread_time(), time.perf_counter()
        set_image(frames[i], autoLevels=False)
        repaint()
        c1, t1 = time.thread_time(), time.perf_counter()
        set_image(ours((i + 1) % slices), autoLevels=False)
        repaint()
        c2, t2 = time.thread_time(), time.perf_counter()
        floor.append(t1 - t0)
        mine.append(t2 - t1)
        cpu_floor.append(c1 - c0)
        cpu_mine.append(c2 - c1)
    fm, fp = ms(floor)
    om, op = ms(mine)
    # each switch is timed right after a floor switch: the median of those pairs' ratios
    # follows the load of the moment; the p95s are compared as they are. The processor
    # time of the GUI thread (offscreen painting runs in it) is given as well: on a shared
    # machine the wall time also counts the waits for a core.
    paired = statistics.median(b / a for a, b in zip(floor, mine, strict=True))
    cf = statistics.median(cpu_floor) * 1e3
    cm = statistics.median(cpu_mine) * 1e3
    return [
        Line(case, f"bare ImageItem floor (precomputed RGBA) (cpu {cf:.2f} ms)", fm, fp),
        Line(case, f"{name} (cpu {cm:.2f} ms, {cm / max(cf, 1e-9):.2f}x floor)", om, op,
             "floor", paired, op / fp, target),
    ]  # fmt: skip


def bench_switch(sz: Sizes, data: Path, heat: bool) -> list[Line]:
    app, gv, item = _view()
    vp = gv.viewport()  # type: ignore[attr-defined]
    shape = (sz.slices, sz.side, sz.side)
    img = _image(shape)
    level, width = overlay.auto_window(img)
    greys = GreySource(img)
    greys.set_windowed(level, width, run_to_end(greys.window_job(level, width)))
    axes = display_axes(STACK_AFFINE, "axial")
    lines: list[Line] = []
    classes = (114,) if heat else (4, 114)
    for c in classes:
        table = ClassTable.default(c)
        lut = overlay.build_lut(table, opacity=0.5)
        for layout in ("DHWC", "CDHW"):
            full = (*shape, c) if layout == "DHWC" else (c, *shape)
            raw = _logits_file(data / f"switch_{layout}_{c}_{sz.side}_{sz.slices}.npy", full, c)
            pred = _pred(raw, shape, layout, c)
            grey = [
                overlay.window_to_uint8(take_slice(img, axes, i), level, width)
                for i in range(sz.slices)
            ]
            tag = f"{c} classes {layout} mmap"

            def grey_of(i: int) -> np.ndarray:
                # the slice alone (a new image, or a window being dragged)
                return overlay.window_to_uint8(take_slice(img, axes, i), level, width)

            def grey_looked_up(i: int) -> np.ndarray:
                # the image windowed whole in the background for the current window
                return greys.grey(axes, i, level, width)

            if not heat:
                src = SliceSource(pred)
                src.set_labels(run_to_end(src.labels_job()), src.settings)
                frames = [
                    overlay.compose(grey[i], src.labels(axes, i), lut) for i in range(sz.slices)
                ]

                def after(i: int, src: SliceSource = src, lut: np.ndarray = lut) -> np.ndarray:
                    return overlay.compose(grey_looked_up(i), src.labels(axes, i), lut)

                cold = SliceSource(pred, cache_slices=1)

                def before(i: int, cold: SliceSource = cold, lut: np.ndarray = lut) -> np.ndarray:
                    return overlay.compose(grey_of(i), cold.labels(axes, i), lut)

                lines += _switch_lines(
                    "switch", f"{tag}: labels looked up", sz.switches, sz.slices, frames,
                    after, item, vp, "median <= 2x, p95 <= 4x floor",
                )  # fmt: skip
                lines += _switch_lines(
                    "switch", f"{tag}: per-slice path (before labels)",
                    max(1, sz.switches // 10), sz.slices, frames, before, item, vp, "",
                )[1:]  # fmt: skip
            else:
                src = SliceSource(pred)
                t0 = time.perf_counter()
                src.set_stat("entropy", None, True, run_to_end(src.stat_job("entropy")))
                t_vol = (time.perf_counter() - t0) * 1e3

                def hot(i: int, src: SliceSource = src) -> np.ndarray:
                    values = src.stat(axes, i, "entropy")
                    return overlay.compose_heatmap(
                        grey_looked_up(i), values, 0.0, 1.0, HEAT_CMAP, opacity=0.5
                    )

                frames = [hot(i) for i in range(sz.slices)]
                cold = SliceSource(pred, cache_slices=1)

                def hot_before(i: int, cold: SliceSource = cold) -> np.ndarray:
                    values = cold.stat(axes, i, "entropy")
                    return overlay.compose_heatmap(
                        grey_of(i), values, 0.0, 1.0, HEAT_CMAP, opacity=0.5
                    )

                sw = _switch_lines(
                    "heatmap", f"entropy {tag}: map looked up", sz.switches, sz.slices, frames,
                    hot, item, vp, "median <= 16 ms",
                )  # fmt: skip
                lines += sw
                lines += _switch_lines(
                    "heatmap", f"entropy {tag}: per-slice path (before the map)",
                    max(1, sz.switches // 10), sz.slices, frames, hot_before, item, vp, "",
                )[1:]  # fmt: skip
                lines.append(
                    Line("heatmap", f"entropy {tag}: whole-volume map (background, once)", t_vol)
                )
            del raw, pred
    gv.close()  # type: ignore[attr-defined]
    app.processEvents()  # type: ignore[attr-defined]
    return lines


def bench_window(sz: Sizes, data: Path) -> list[Line]:
    """The real window: ``canvas.set_slice`` (cursor change, every listener, the canvas's
    labels / grey / blend, setImage) and a repaint of its view, after the background work
    (whole-volume labels, windowed image) is done, against the bare floor in its own view."""
    from segviewer.ui.api import view

    app, gv, item = _view()
    floor_vp = gv.viewport()  # type: ignore[attr-defined]
    shape = (sz.slices, sz.side, sz.side)
    img = _image(shape)
    lines: list[Line] = []
    for c, layout in ((4, "DHWC"), (114, "DHWC"), (114, "CDHW")):
        full = (*shape, c) if layout == "DHWC" else (c, *shape)
        path = data / f"switch_{layout}_{c}_{sz.side}_{sz.slices}.npy"
        _logits_file(path, full, c)
        v = view(img, str(path), layout=layout, kind="logits")
        v.window.resize(1400, 900)
        v.wait_idle()
        # the steady state of a review: the window loads its compiled kernels (frame
        # blending, and labels up to kernels.MAX_CLASSES) in its first quiet moment
        end = time.perf_counter() + 30.0
        while kernels.available() and not kernels.lookup_ready() and time.perf_counter() < end:
            app.processEvents()  # type: ignore[attr-defined]
            time.sleep(0.01)
        v.wait_idle()
        compiled = "compiled blend" if kernels.lookup_ready() else "numpy blend"
        canvas = v.window.canvas
        vp = canvas.graphics.viewport()
        gv.resize(canvas.graphics.size())  # type: ignore[attr-defined]  # the same pixels to fill
        app.processEvents()  # type: ignore[attr-defined]
        frames = []
        for i in range(sz.slices):
            canvas.set_slice(i)
            frames.append(np.array(canvas.frame()))
        set_image = item.setImage  # type: ignore[attr-defined]
        floor: list[float] = []
        mine: list[float] = []
        # processor time too: the GUI thread's, and all threads' (Qt converts the floor's
        # RGBA frames to its own pixel format on worker threads, which the wall time of a
        # busy machine hides or inflates)
        cpu: dict[str, list[float]] = {"floor": [], "floor all": [], "mine": [], "mine all": []}
        for k in range(sz.switches + 3):
            i = k % sz.slices
            p0, c0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
            set_image(frames[i], autoLevels=False)
            floor_vp.repaint()
            p1, c1, t1 = time.process_time(), time.thread_time(), time.perf_counter()
            canvas.set_slice((i + 1) % sz.slices)
            vp.repaint()
            p2, c2, t2 = time.process_time(), time.thread_time(), time.perf_counter()
            if k >= 3:
                floor.append(t1 - t0)
                mine.append(t2 - t1)
                for key, d in (("floor", c1 - c0), ("floor all", p1 - p0)):
                    cpu[key].append(d)
                for key, d in (("mine", c2 - c1), ("mine all", p2 - p1)):
                    cpu[key].append(d)
        fm, fp = ms(floor)
        om, op = ms(mine)
        cm = {key: statistics.mean(v) * 1e3 for key, v in cpu.items()}
        paired = statistics.median(b / a for a, b in zip(floor, mine, strict=True))
        size = canvas.graphics.size()
        lines.append(
            Line("window", f"bare ImageItem floor, {size.width()}x{size.height()} px view "
                 f"(cpu {cm['floor']:.2f} ms GUI thread, {cm['floor all']:.2f} all threads)",
                 fm, fp)
        )  # fmt: skip
        lines.append(
            Line("window", f"canvas.set_slice, {c} classes {layout} mmap, labels looked up, "
                 f"{compiled} "
                 f"(cpu {cm['mine']:.2f} ms GUI thread, {cm['mine all']:.2f} all threads)",
                 om, op, "floor", paired, op / fp, "median <= 2x, p95 <= 4x floor")
        )  # fmt: skip
        v.close()
        app.processEvents()  # type: ignore[attr-defined]
    gv.close()  # type: ignore[attr-defined]
    return lines


# --- whole volume ------------------------------------------------------------------------------


def _paired(
    base: Callable[[], object], cases: dict[str, Callable[[], object]], repeat: int
) -> tuple[tuple[float, float], dict[str, tuple[float, float, float, float]]]:
    """Run the baseline and every case in turn, ``repeat`` rounds (one warm-up round).

    Returns the baseline's median (wall ms, thread CPU ms) and per case (median wall ms,
    median of the per-round ratios wall / baseline wall, median thread CPU ms, median of the
    per-round CPU ratios). A ratio of one round compares runs made seconds apart, so a load
    that comes and goes on a shared machine moves both; the CPU time of the calling thread is
    what a single-threaded run costs when it is not descheduled (for several threads it
    only counts the calling one, so it is given for 1 thread).
    """

    def once(fn: Callable[[], object]) -> tuple[float, float]:
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        return time.perf_counter() - t0, time.thread_time() - c0

    rounds: list[tuple[tuple[float, float], dict[str, tuple[float, float]]]] = []
    for r in range(repeat + 1):
        b = once(base)
        got = {k: once(fn) for k, fn in cases.items()}
        if r:
            rounds.append((b, got))
    bw = statistics.median(x[0][0] for x in rounds)
    bc = statistics.median(x[0][1] for x in rounds)
    out = {}
    for k in cases:
        out[k] = (
            statistics.median(x[1][k][0] for x in rounds) * 1e3,
            statistics.median(x[1][k][0] / x[0][0] for x in rounds),
            statistics.median(x[1][k][1] for x in rounds) * 1e3,
            statistics.median(x[1][k][1] / max(x[0][1], 1e-9) for x in rounds),
        )
    return (bw * 1e3, bc * 1e3), out


def _volume_lines(
    what: str,
    base: Callable[[], object],
    cases: dict[str, Callable[[], object]],
    repeat: int,
    target_key: str,
) -> list[Line]:
    (bw, bc), res = _paired(base, cases, repeat)
    lines = [Line("volume", f"{what}: np.max, 1 thread (cpu {bc:.1f} ms)", bw)]
    for k, (w, ratio, c, cratio) in res.items():
        cpu = f" (cpu {c:.0f} ms, {cratio:.2f}x np.max cpu)" if k.endswith(", 1 thread") else ""
        lines.append(
            Line("volume", f"{what}: {k}{cpu}", w, None, "np.max", ratio, None,
                 "<= 1.25x np.max" if k == target_key else "")
        )  # fmt: skip
    return lines


def _numpy_labels(pred: Prediction, settings: MaskSettings) -> object:
    with kernels.suspended():
        return run_to_end(iter_labels(pred, settings, workers=1))


def _kernel_start_s() -> float:
    """Seconds a fresh process needs to make a labels kernel ready (numba import, cached
    kernel load): what the window spends once, in the background."""
    code = (
        "import time, numpy as np\n"
        "from segviewer.core import kernels\n"
        "b = np.zeros((4, 2, 8, 8), np.float32)\n"
        "t = time.perf_counter(); ok = kernels.warm_up(b)\n"
        "print(time.perf_counter() - t if ok else -1)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(), check=True)  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def bench_volume(sz: Sizes, data: Path) -> list[Line]:
    lines: list[Line] = []
    rng = np.random.default_rng(0)
    shape = sz.vol
    cf = rng.standard_normal((4, *shape), dtype=np.float32) * np.float32(3.0)
    cl = np.ascontiguousarray(np.moveaxis(cf, 0, -1))
    settings = MaskSettings()
    counts = sorted({1, 2, default_workers()})
    mb = cf.nbytes / 1e6

    def threads(n: int) -> str:
        return f"{n} thread" + ("s" if n > 1 else "")

    for raw, layout in ((cf, "CDHW"), (cl, "DHWC")):
        pred = _pred(raw, shape, layout, 4)
        compiled = prepare_labels_kernel(pred)  # what the window does after its first labels
        cases: dict[str, Callable[[], object]] = {}
        if compiled:
            cases["labels numpy (no compiled kernel), 1 thread"] = lambda p=pred: _numpy_labels(
                p, settings
            )
        for w in counts:
            cases[f"labels, {threads(w)}"] = lambda w=w, p=pred: run_to_end(
                iter_labels(p, settings, workers=w)
            )
        for w in sorted({1, counts[-1]}):
            cases[f"entropy, {threads(w)}"] = lambda w=w, p=pred: run_to_end(
                iter_stat(p, "entropy", workers=w)
            )
        lines += _volume_lines(
            f"{mb:.0f} MB 4 classes {layout}", lambda raw=raw: np.max(raw), cases, sz.repeat,
            f"labels, {threads(counts[-1])}",
        )  # fmt: skip
    del cf, cl
    atlas = _logits_file(
        data / f"atlas_{'x'.join(map(str, sz.atlas))}_114.npy", (*sz.atlas, 114), 114
    )
    pred = _pred(atlas, sz.atlas, "DHWC", 114)
    prepare_labels_kernel(pred)  # no kernel beyond kernels.MAX_CLASSES: numpy's wide path
    cases = {
        f"labels, {threads(w)}": lambda w=w: run_to_end(iter_labels(pred, settings, workers=w))
        for w in counts
    }
    cases[f"entropy, {threads(counts[-1])}"] = lambda: run_to_end(iter_stat(pred, "entropy"))
    lines += _volume_lines(
        f"{atlas.nbytes / 1e9:.2f} GB 114 classes DHWC mmap (warm)", lambda: np.max(atlas),
        cases, max(1, sz.repeat // 2), f"labels, {threads(counts[-1])}",
    )  # fmt: skip
    start = _kernel_start_s()
    if start >= 0:
        lines.append(
            Line(
                "volume",
                "compiled kernel ready in a fresh process (numba import "
                "+ cached kernel; once per session, in the background)",
                start * 1e3,
            )
        )
    return lines


# --- cold open ---------------------------------------------------------------------------------

_OPEN_CHILD = r"""
import os, sys, time, json
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QApplication
from segviewer.core import overlay
from segviewer.core.classes import ClassTable
from segviewer.core.orientation import display_axes, take_slice
from segviewer.core.slicesource import SliceSource
from segviewer.core.types import STACK_AFFINE
from segviewer.io.predictions import load_prediction

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

path, shape = sys.argv[1], tuple(int(v) for v in sys.argv[2].split("x"))
app = QApplication([])
pg.setConfigOptions(imageAxisOrder="row-major")
gv = pg.GraphicsView(); gv.resize(800, 800); vb = pg.ViewBox(lockAspect=True, invertY=True)
gv.setCentralItem(vb); item = pg.ImageItem(axisOrder="row-major"); vb.addItem(item); gv.show()
app.processEvents()
img = np.zeros(shape, np.int16)
axes = display_axes(STACK_AFFINE, "axial")
r0 = rss()
t0 = time.perf_counter()
pred = load_prediction(path, shape)                       # the file is chosen
src = SliceSource(pred)
i = shape[0] // 2
lab = src.labels(axes, i)                                 # its slice, one pass
lut = overlay.build_lut(ClassTable.default(pred.n_classes))
grey = overlay.window_to_uint8(take_slice(img, axes, i), 0, 100)
item.setImage(overlay.compose(grey, lab, lut), autoLevels=False)
gv.viewport().repaint()                                   # first slice with overlay shown
t1 = time.perf_counter()
r1 = rss()
gen = src.labels_job()                                    # then the background stream
n = 0
for p in gen:
    n += 1
t2 = time.perf_counter()
print(json.dumps({"first": t1 - t0, "rss0": r0, "rss1": r1, "stream": t2 - t1, "reports": n,
                  "size": os.path.getsize(path) / 1e6}))
"""


def bench_open(sz: Sizes, data: Path) -> list[Line]:
    import json

    path = data / f"atlas_{'x'.join(map(str, sz.atlas))}_114.npy"
    _logits_file(path, (*sz.atlas, 114), 114)
    runs = []
    for _ in range(max(1, sz.repeat // 2)):
        drop_from_page_cache(path)
        out = subprocess.run(
            [sys.executable, "-c", _OPEN_CHILD, str(path), "x".join(map(str, sz.atlas))],
            capture_output=True, text=True, check=True, env=_env(),
        )  # fmt: skip
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = statistics.median(r["first"] for r in runs) * 1e3
    grow = statistics.median(r["rss1"] - r["rss0"] for r in runs)
    total = statistics.median(r["rss1"] for r in runs)
    size = runs[0]["size"]
    return [
        Line("open", f"{size / 1e3:.2f} GB 114-class .npy, cold: first slice with overlay", first,
             target="<= 300 ms"),
        Line("open", f"  resident memory grown by opening it (MB; process total {total:.0f} MB)",
             grow, baseline="file size", ratio=grow / size, target="< 10% of the file"),
        Line("open", "  whole-volume labels streamed after it (background, ms)",
             statistics.median(r["stream"] for r in runs) * 1e3),
    ]  # fmt: skip


# --- event-loop gaps -----------------------------------------------------------------------------


def bench_gap(sz: Sizes, with_model: bool) -> list[Line]:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from segviewer.core.compare import iter_compare

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(2)
    shape = sz.vol
    cl = rng.standard_normal((*shape, 4), dtype=np.float32)
    pred = _pred(cl, shape, "DHWC", 4)
    labels = run_to_end(iter_labels(pred, MaskSettings())).labels
    ref = labels.copy()
    ref[::3] = 0

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(2)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))

    def probe(jobs: list[Callable[[], object]], quiet_s: float) -> tuple[float, float]:
        ticks.clear()
        ticks.append(time.perf_counter())
        done = threading.Event()
        threads = [threading.Thread(target=j, daemon=True) for j in jobs]
        t_start = time.perf_counter()
        timer.start()
        for t in threads:
            t.start()
        while True:
            app.processEvents()  # type: ignore[attr-defined]
            time.sleep(0.0005)
            alive = any(t.is_alive() for t in threads)
            if not alive and time.perf_counter() - t_start > quiet_s:
                break
        timer.stop()
        ticks.append(time.perf_counter())
        done.set()
        gaps = np.diff(ticks) * 1e3 if len(ticks) > 1 else np.array([0.0])
        return float(gaps.max()), (time.perf_counter() - t_start) * 1e3

    # the event loop of a real window: QTimer ticks while workers run; processEvents here is
    # the loop itself (the benchmark owns no widget), not a call from a widget
    quiet, _ = probe([], 0.3 if sz is SMOKE else 1.0)
    jobs: list[Callable[[], object]] = [
        lambda: run_to_end(iter_labels(pred, MaskSettings())),
        lambda: run_to_end(iter_stat(pred, "entropy")),
        lambda: run_to_end(iter_compare(labels, ref, 4)),
    ]
    what = "labels + entropy + comparison"
    process = None
    if with_model:
        # What the window does (ui.model_session): open the model in its own process, run it
        # there, read its outputs back; this process waits on a pipe in a worker thread.
        from segviewer.inference.process import ModelProcess
        from segviewer.io.images import load_image
        from segviewer.ui.app import demo_model_path, demo_paths

        vol = load_image(demo_paths()[0])
        process = ModelProcess()
        failed: list[BaseException] = []

        def model_job() -> None:
            try:
                run_to_end(process.open(demo_model_path()))
                ran, _ = run_to_end(process.predict(vol))
                assert ran.spatial_shape == vol.shape
            except BaseException as e:  # a thread's error would only be printed
                failed.append(e)

        jobs.append(model_job)
        what += " + demo model (open and run in its process)"
    try:
        busy, dur = probe(jobs, 0.0)
    finally:
        if process is not None:
            process.close()
    if with_model and failed:
        raise failed[0]
    lines = [
        Line("gap", "longest event-loop gap, idle", quiet),
        Line("gap", f"longest event-loop gap during {what} ({dur:.0f} ms of work)", busy,
             target="< 50 ms"),
    ]  # fmt: skip
    if not kernels.ready(4, True):
        # what the window does once its other jobs are done after the first label map:
        # numba imported (unless it already is), the compiled kernels loaded (or compiled)
        # in a worker
        from segviewer.ui.jobs import prepare_kernel_job

        fresh = " (numba imported)" if "numba" not in sys.modules else ""
        ready: list[bool] = []
        prep, dur = probe([lambda: ready.append(prepare_kernel_job(pred))], 0.0)
        if ready == [True]:
            lines.append(Line("gap", f"longest event-loop gap during the kernel preparation"
                              f"{fresh} ({dur:.0f} ms; the window runs it in a quiet moment: no job, "
                              "no input for 1.5 s)", prep, target="< 50 ms"))  # fmt: skip
    return lines


# --- start-up ----------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    pp = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=root + (os.pathsep + pp if pp else ""))


def _cpu_s(pid: int) -> float:
    """Processor seconds (user + system) a running process has used so far (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _first_slice_s(args: list[str], settings: Path) -> tuple[float, float]:
    """Launch the window; seconds from before the process starts to the first slice shown
    (the window prints it with SEGVIEWER_TIMING=1), and the processor seconds the process had
    used by then (what the wall time would be on an idle machine); the process is then
    ended."""
    env = dict(_env(), SEGVIEWER_TIMING="1", SEGVIEWER_SETTINGS=str(settings))
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, "-m", "segviewer", *args], env=env, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "first slice shown" in line and "epoch" in line:
                cpu = _cpu_s(proc.pid)
                return float(line.rsplit("epoch", 1)[1].strip(" )\n")) - t0, cpu
        raise SystemExit(f"segviewer exited ({proc.wait()}) without showing a slice")
    finally:
        proc.kill()
        proc.wait()


def bench_startup(sz: Sizes) -> list[Line]:
    from segviewer.ui.app import demo_paths

    image, pred, classes = (str(p) for p in demo_paths())
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        shot = str(Path(tmp) / "s.png")
        for name, args in (
            ("image + prediction, no model", [image, "--prediction", pred, "--classes", classes,
                                              "--screenshot", shot]),
            ("--demo (bundled model queued)", ["--demo", "--screenshot", shot]),
        ):  # fmt: skip
            runs = [_first_slice_s(args, Path(tmp) / "s.ini") for _ in range(sz.launches)]
            m, p = ms([r[0] for r in runs])
            cpu = statistics.median(r[1] for r in runs) * 1e3
            lines.append(
                Line("startup", f"launch -> first slice, {name} (cpu {cpu:.0f} ms)", m, p,
                     target="< 1500 ms")
            )  # fmt: skip
    return lines


# --- table -------------------------------------------------------------------------------------


def format_lines(lines: list[Line]) -> str:
    head = (
        "case",
        "benchmark",
        "median ms",
        "p95 ms",
        "baseline",
        "median ratio",
        "p95 ratio",
        "target",
    )
    body = [
        (
            ln.case, ln.name, f"{ln.median_ms:.2f}", "" if ln.p95_ms is None else f"{ln.p95_ms:.2f}",
            ln.baseline, "" if ln.ratio is None else f"{ln.ratio:.2f}x",
            "" if ln.ratio_p95 is None else f"{ln.ratio_p95:.2f}x", ln.target,
        )
        for ln in lines
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs ({default_workers()} usable), numpy {np.__version__}, "
        f"Python {platform.python_version()}, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def run(cases: list[str], smoke: bool, data: Path, with_model: bool = False) -> list[Line]:
    sz = SMOKE if smoke else FULL
    data.mkdir(parents=True, exist_ok=True)
    lines: list[Line] = []
    for case in cases:
        if case == "switch":
            lines += bench_switch(sz, data, heat=False)
        elif case == "heatmap":
            lines += bench_switch(sz, data, heat=True)
        elif case == "window":
            lines += bench_window(sz, data)
        elif case == "volume":
            lines += bench_volume(sz, data)
        elif case == "open":
            lines += bench_open(sz, data)
        elif case == "gap":
            lines += bench_gap(sz, with_model)
        elif case == "startup":
            lines += bench_startup(sz)
        if not smoke:
            print(f"... {case} done", flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="segviewer speed targets (ratios in one run)")
    ap.add_argument("--smoke", action="store_true", help="each case once on tiny data")
    ap.add_argument("--only", help=f"comma-separated cases: {', '.join(CASES)}")
    ap.add_argument("--model", action="store_true", help="gap: also run the demo model")
    ap.add_argument(
        "--data-dir",
        default=str(Path(tempfile.gettempdir()) / "segviewer-bench"),
        help="where the generated test files are kept (reused between runs)",
    )
    a = ap.parse_args(argv)
    cases = list(CASES) if not a.only else [c.strip() for c in a.only.split(",")]
    bad = [c for c in cases if c not in CASES]
    if bad:
        ap.error(f"unknown case(s) {', '.join(bad)}; choose from {', '.join(CASES)}")
    data = Path(a.data_dir) / ("smoke" if a.smoke else "full")
    print(machine(), flush=True)
    lines = run(cases, a.smoke, data, a.model)
    print(format_lines(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
