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

__all__ = ["GreySource", "SliceSource", "StatKey", "iter_slice_class_counts"]

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
        # per-slice class counts along each image axis, of the whole-volume labels
        self._slice_counts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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
        self._slice_counts = None
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
        if lab is not self._labels:
            self._slice_counts = None  # counted on other labels
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

    # -- class counts per slice (the legend) -----------------------------------------------
    @property
    def has_slice_counts(self) -> bool:
        """Whether every slice's class counts are in (:meth:`class_counts` is a lookup)."""
        return self._slice_counts is not None

    @property
    def wants_slice_counts(self) -> bool:
        """Whether :meth:`slice_counts_job` should run: uint8 whole-volume labels are in and
        not yet counted."""
        lab = self._labels
        return lab is not None and lab.dtype == np.uint8 and self._slice_counts is None

    def slice_counts_job(self) -> Generator[Progress, None, tuple[np.ndarray, ...]]:
        """Count the classes of every slice along each axis in the whole-volume labels (a
        generator function: run it on a worker once :meth:`set_labels` has the labels; give
        the same labels and the result to :meth:`set_slice_counts`)."""
        if self._labels is None or self._labels.dtype != np.uint8:
            raise SegviewerError("internal: slice counts need whole-volume uint8 labels first")
        return (yield from iter_slice_class_counts(self._labels))

    def set_slice_counts(self, labels: np.ndarray, counts: tuple[np.ndarray, ...]) -> bool:
        """Adopt :meth:`slice_counts_job`'s result, counted on ``labels``; refused (False)
        when those are no longer the source's labels."""
        if labels is not self._labels:
            return False
        shape = labels.shape
        if len(counts) != 3 or any(
            c.ndim != 2 or c.shape[0] != n for c, n in zip(counts, shape, strict=True)
        ):
            raise SegviewerError(
                f"internal: slice counts must be (n_slices, values) per axis of {shape}"
            )
        self._slice_counts = (counts[0], counts[1], counts[2])
        return True

    def class_counts(self, axes: DisplayAxes, index: int) -> np.ndarray:
        """``(n_classes,)`` int64 voxels of each class on one displayed slice (reserved
        values not counted): a row of the per-slice table once :meth:`set_slice_counts` has
        it, else counted on the slice's labels."""
        n = self.prediction.n_classes
        if self._slice_counts is not None:
            row = self._slice_counts[axes.slice_axis][int(index)]
            out = np.zeros(n, np.int64)
            k = min(n, row.size)
            out[:k] = row[:k]
            return out
        labels = self.labels(axes, index)
        return np.bincount(labels.ravel(), minlength=n)[:n]

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


def iter_slice_class_counts(
    labels: np.ndarray, chunk_voxels: int = 1 << 20
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Voxels of each label value in every slice along each image axis.

    Parameters
    ----------
    labels
        ``(a0, a1, a2)`` uint8 label map (whole-volume labels of up to 254 classes; larger
        tables' slices are counted one by one when shown).
    chunk_voxels
        Voxels counted between two yields (the counting holds the GIL; small steps keep the
        GUI thread responsive).

    Returns
    -------
    tuple of three ndarray
        ``counts_k`` is ``(a_k, m)`` int64, ``m`` = the largest label present + 1: row ``i``
        counts each label value in slice ``i`` across axis ``k``. One pass over the labels,
        streamed along axis 0; yields :class:`Progress`.
    """
    if labels.ndim != 3 or labels.dtype != np.uint8:
        raise SegviewerError(f"internal: labels must be 3-D uint8, got {labels.dtype}")
    a0, a1, a2 = labels.shape
    m = int(labels.max()) + 1 if labels.size else 1
    c0 = np.zeros((a0, m), np.int64)
    c1 = np.zeros(a1 * m, np.int64)
    c2 = np.zeros(a2 * m, np.int64)
    rows = (np.arange(a1, dtype=np.intp) * m)[:, None]  # label + m * position along axis 1
    cols = (np.arange(a2, dtype=np.intp) * m)[None, :]  # along axis 2
    step = max(1, chunk_voxels // max(1, a1 * a2))
    for s in range(0, a0, step):
        e = min(s + step, a0)
        for i in range(s, e):
            sl = labels[i]
            by_row = np.bincount((sl + rows).ravel(), minlength=a1 * m)
            c1 += by_row
            c0[i] = by_row.reshape(a1, m).sum(axis=0)
            c2 += np.bincount((sl + cols).ravel(), minlength=a2 * m)
        yield Progress(e, a0, f"counting classes per slice ({e}/{a0})")
    return c0, c1.reshape(a1, m), c2.reshape(a2, m)


def _remember(
    cache: OrderedDict[Hashable, np.ndarray], key: Hashable, value: np.ndarray, limit: int
) -> None:
    cache[key] = value
    while len(cache) > limit:
        cache.popitem(last=False)
