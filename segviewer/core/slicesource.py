"""What a slice view asks for: one displayed slice's labels or statistic, served fast.

A :class:`SliceSource` wraps one prediction and its mask settings. A view asks it for the
labels (or a heatmap statistic) of the slice it shows:

* once the whole-volume map exists (computed in the background by :meth:`labels_job` /
  :meth:`stat_job` and handed back with :meth:`set_labels` / :meth:`set_stat` in the GUI
  thread), the slice is a zero-copy view of it: a switch costs a lookup, whatever the number
  of classes or the file size;
* before that, the slice alone is computed from the prediction (:func:`~segviewer.core.masks.
  slice_labels`: each voxel's class values read once, only that slice of a memory map) and
  kept in a small most-recently-used cache, so scrolling back and forth is free.

The jobs are plain progress generators (run them on a worker thread); a result made for
settings that have changed since is refused by :meth:`set_labels`, so a stale background job
can never show old labels. Everything here is called from one thread (the GUI's); only the
generators run elsewhere, and they touch nothing of the source.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Generator, Hashable

import numpy as np

from segviewer.core import masks
from segviewer.core.orientation import DisplayAxes, take_slice
from segviewer.core.overlay import window_to_uint8
from segviewer.core.types import (
    MaskSettings,
    Prediction,
    Progress,
    SegviewerError,
    label_dtype,
)

__all__ = ["GreySource", "SliceSource", "StatKey"]

#: A statistic map's identity: ``(stat, class_index, normalised)``.
StatKey = tuple[str, int | None, bool]


class SliceSource:
    """Labels and statistics of displayed slices of one prediction.

    Parameters
    ----------
    prediction
        The prediction (any layout, possibly memory-mapped).
    settings
        Threshold / minimum confidence of the labels.
    cache_slices
        Per-slice results kept until the whole-volume maps exist (labels and statistics
        each).
    max_stat_volumes
        Whole-volume statistic maps kept (float32, the image's size each); the least
        recently used is dropped beyond it.
    """

    def __init__(
        self,
        prediction: Prediction,
        settings: MaskSettings | None = None,
        *,
        cache_slices: int = 16,
        max_stat_volumes: int = 3,
    ) -> None:
        self.prediction = prediction
        self._settings = settings if settings is not None else MaskSettings()
        self._cache_slices = max(1, int(cache_slices))
        self._max_stat_volumes = max(1, int(max_stat_volumes))
        self._labels: np.ndarray | None = None
        self._stats: OrderedDict[StatKey, np.ndarray] = OrderedDict()
        self._label_slices: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._stat_slices: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    # -- settings --------------------------------------------------------------------------
    @property
    def settings(self) -> MaskSettings:
        return self._settings

    def set_settings(self, settings: MaskSettings) -> bool:
        """Use other mask settings; drops the labels made with the old ones (statistics do
        not depend on them). Returns whether anything changed."""
        if settings == self._settings:
            return False
        self._settings = settings
        self._labels = None
        self._label_slices.clear()
        return True

    # -- labels ----------------------------------------------------------------------------
    @property
    def has_labels(self) -> bool:
        """Whether the whole-volume label map is in (slices are then lookups)."""
        return self._labels is not None

    @property
    def volume_labels(self) -> np.ndarray | None:
        """The whole-volume label map ``(a0, a1, a2)`` once set, else None."""
        return self._labels

    def labels_job(
        self, settings: MaskSettings | None = None, workers: int | None = None
    ) -> Generator[Progress, None, masks.LabelResult]:
        """Compute the whole-volume labels (a generator function: run it on a worker, e.g.
        through ``JobRunner.start``; give its result and the same settings to
        :meth:`set_labels`). ``settings`` default to the source's when the job starts."""
        use = self._settings if settings is None else settings
        return (yield from masks.iter_labels(self.prediction, use, workers=workers))

    def set_labels(
        self, labels: masks.LabelResult | np.ndarray, settings: MaskSettings | None = None
    ) -> bool:
        """Adopt a whole-volume label map computed with ``settings`` (default: the current
        ones). Returns False, changing nothing, when those settings are no longer current."""
        if settings is not None and settings != self._settings:
            return False
        lab = labels.labels if isinstance(labels, masks.LabelResult) else labels
        shape = self.prediction.spatial_shape
        dt = label_dtype(self.prediction.n_classes)
        if tuple(lab.shape) != tuple(shape) or lab.dtype != dt:
            raise SegviewerError(
                f"internal: labels must be {dt} {tuple(shape)} for this prediction, got "
                f"{lab.dtype} {lab.shape}"
            )
        self._labels = lab
        self._label_slices.clear()  # lookups from now on
        return True

    def labels(self, axes: DisplayAxes, index: int) -> np.ndarray:
        """``(rows, cols)`` labels of one displayed slice, in screen order.

        A zero-copy view of the whole-volume map once it exists (do not write to it), else
        computed from the prediction for this slice alone and cached.
        """
        if self._labels is not None:
            return take_slice(self._labels, axes, index)
        key = (axes, int(index))
        hit = self._label_slices.get(key)
        if hit is None:
            hit = masks.slice_labels(self.prediction, axes, int(index), self._settings)
            _remember(self._label_slices, key, hit, self._cache_slices)
        else:
            self._label_slices.move_to_end(key)
        return hit

    # -- statistics ------------------------------------------------------------------------
    def _stat_key(self, stat: str, class_index: int | None, normalised: bool) -> StatKey:
        masks._check_stat(stat, class_index, self.prediction.kind, self.prediction.n_classes)
        return (stat, class_index if stat == "probability" else None, bool(normalised))

    def has_stat(self, stat: str, class_index: int | None = None, normalised: bool = True) -> bool:
        """Whether the whole-volume map of this statistic is in."""
        return self._stat_key(stat, class_index, normalised) in self._stats

    def stat_job(
        self,
        stat: str,
        class_index: int | None = None,
        normalised: bool = True,
        workers: int | None = None,
    ) -> Generator[Progress, None, np.ndarray]:
        """Compute a whole-volume statistic map (a generator function: run it on a worker;
        give its result to :meth:`set_stat` with the same arguments)."""
        key = self._stat_key(stat, class_index, normalised)
        return (
            yield from masks.iter_stat(
                self.prediction, key[0], key[1], normalised=key[2], workers=workers
            )
        )

    def set_stat(
        self, stat: str, class_index: int | None, normalised: bool, volume: np.ndarray
    ) -> None:
        """Adopt a whole-volume statistic map from :meth:`stat_job`."""
        key = self._stat_key(stat, class_index, normalised)
        shape = tuple(self.prediction.spatial_shape)
        if tuple(volume.shape) != shape or volume.dtype != np.float32:
            raise SegviewerError(
                f"internal: a statistic map must be float32 {shape}, got {volume.dtype} "
                f"{volume.shape}"
            )
        self._stats[key] = volume
        self._stats.move_to_end(key)
        while len(self._stats) > self._max_stat_volumes:
            self._stats.popitem(last=False)
        for k in [k for k in self._stat_slices if k[0] == key]:  # type: ignore[index]
            del self._stat_slices[k]

    def stat(
        self,
        axes: DisplayAxes,
        index: int,
        stat: str,
        class_index: int | None = None,
        normalised: bool = True,
    ) -> np.ndarray:
        """``(rows, cols)`` float32 statistic of one displayed slice (see
        :func:`~segviewer.core.masks.stats_from_block`), in screen order; a view of the
        whole-volume map once it exists, else computed for this slice alone and cached."""
        key = self._stat_key(stat, class_index, normalised)
        vol = self._stats.get(key)
        if vol is not None:
            self._stats.move_to_end(key)
            return take_slice(vol, axes, index)
        skey = (key, axes, int(index))
        hit = self._stat_slices.get(skey)
        if hit is None:
            hit = masks.slice_stat(
                self.prediction, axes, int(index), key[0], key[1], normalised=key[2]
            )
            _remember(self._stat_slices, skey, hit, self._cache_slices)
        else:
            self._stat_slices.move_to_end(skey)
        return hit


class GreySource:
    """Windowed uint8 grey slices of an image, served like :class:`SliceSource`'s labels.

    Once the whole volume has been windowed for the current level and width (:meth:`window_job`
    on a worker, handed back with :meth:`set_windowed`), a slice's grey levels are a zero-copy
    lookup; before that, and for any other window (while the user drags it), the slice alone
    is windowed (:func:`~segviewer.core.overlay.window_to_uint8`).

    Parameters
    ----------
    data
        The image ``(a0, a1, a2)`` (``Volume.data``; possibly memory-mapped).
    max_voxels
        Images larger than this are never windowed whole (the copy costs one byte a voxel):
        :attr:`wants_volume` is False for them.
    """

    def __init__(self, data: np.ndarray, *, max_voxels: int = 1 << 28) -> None:
        if data.ndim != 3:
            raise SegviewerError(f"internal: an image must be 3-D, got shape {data.shape}")
        self.data = data
        self.wants_volume = int(data.size) <= max_voxels
        self._windowed: np.ndarray | None = None
        self._window: tuple[float, float] | None = None

    def has_window(self, level: float, width: float) -> bool:
        """Whether the whole volume is windowed for exactly this level and width."""
        return self._windowed is not None and self._window == (float(level), float(width))

    def grey(self, axes: DisplayAxes, index: int, level: float, width: float) -> np.ndarray:
        """``(rows, cols)`` uint8 grey levels of one displayed slice, in screen order (a view
        of the windowed volume when it matches this window; do not write to it)."""
        if self._windowed is not None and self._window == (float(level), float(width)):
            return take_slice(self._windowed, axes, index)
        return window_to_uint8(take_slice(self.data, axes, index), level, width)

    def window_job(
        self, level: float, width: float, chunk_voxels: int = 1 << 22
    ) -> Generator[Progress, None, np.ndarray]:
        """A generator windowing the whole image (run it on a worker; give its result and
        the same window to :meth:`set_windowed`). Streams along the outermost axis."""
        out = np.empty(self.data.shape, dtype=np.uint8)
        per = max(1, int(np.prod(self.data.shape[1:])))
        step = max(1, chunk_voxels // per)
        n = self.data.shape[0]
        for a in range(0, n, step):
            b = min(a + step, n)
            window_to_uint8(self.data[a:b], level, width, out=out[a:b])
            yield Progress(b, n, f"windowing the image ({b}/{n} slices)")
        return out

    def set_windowed(self, level: float, width: float, volume: np.ndarray) -> None:
        """Adopt the whole windowed image from :meth:`window_job` (for this window only)."""
        if volume.shape != self.data.shape or volume.dtype != np.uint8:
            raise SegviewerError(
                f"internal: a windowed image must be uint8 {self.data.shape}, got "
                f"{volume.dtype} {volume.shape}"
            )
        self._windowed = volume
        self._window = (float(level), float(width))


def _remember(
    cache: OrderedDict[Hashable, np.ndarray], key: Hashable, value: np.ndarray, limit: int
) -> None:
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)
