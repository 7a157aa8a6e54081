"""Open the viewer from Python (scripts, notebooks): ``segviewer.view(image, prediction)``.

Example
-------
>>> import segviewer
>>> v = segviewer.view("t1.nii.gz", "probs.npy", "classes.json")   # doctest: +SKIP
>>> v.set_view("coronal"); v.set_slice(60); v.set_opacity(0.4)      # doctest: +SKIP
>>> v.screenshot("coronal.png")                                      # doctest: +SKIP
>>> v.export("out/", formats=("nifti",))                             # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segviewer.core.classes import ClassTable, hex_to_rgb
from segviewer.core.types import STACK_AFFINE, Prediction, PredictionKind, SegviewerError, Volume

if TYPE_CHECKING:
    from segviewer.ui.controller import ViewerController
    from segviewer.ui.state import ViewerState

__all__ = ["Viewer", "view"]

PathOrArray = str | os.PathLike[str] | np.ndarray


class Viewer:
    """A handle on an open viewer window (returned by :func:`view`).

    All setters act immediately on the window (GUI thread); background work (whole-volume
    counts, exports) runs in workers — call :meth:`wait_idle` before reading results.
    """

    def __init__(self, window: Any, app: Any) -> None:
        self.window = window
        self._app = app

    @property
    def state(self) -> ViewerState:
        """What the window shows (``segviewer.ui.state.ViewerState``)."""
        return self.window.state

    @property
    def controller(self) -> ViewerController:
        """What loads and computes (``segviewer.ui.controller.ViewerController``)."""
        return self.window.controller

    # -- navigation ---------------------------------------------------------------------------
    def set_view(self, view: str) -> None:
        """``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"three"`` (linked three-view)."""
        self.state.set_layout(view)

    def set_slice(self, index: int) -> None:
        """Show slice ``index`` (voxel index along the view's slice axis) in the main view."""
        self.window.canvas.set_slice(int(index))

    @property
    def slice(self) -> int:
        return int(self.window.canvas.index)

    # -- classes and overlay ------------------------------------------------------------------
    # Every setter changes the state; the window's widgets follow it (they are bound to it).
    def set_class_visible(self, index: int, visible: bool) -> None:
        self.state.set_visible(int(index), bool(visible))

    def toggle_class(self, index: int) -> None:
        self.state.toggle_visible(int(index))

    def set_class_color(self, index: int, color: tuple[int, int, int] | str) -> None:
        """``color`` as ``(r, g, b)`` 0..255 or ``"#rrggbb"``."""
        rgb = hex_to_rgb(color) if isinstance(color, str) else color
        self.state.set_color(int(index), (int(rgb[0]), int(rgb[1]), int(rgb[2])))

    def set_opacity(self, opacity: float) -> None:
        """Overlay opacity 0..1."""
        self.state.set_opacity(float(opacity))

    def set_mode(self, mode: str, outline_width: int | None = None) -> None:
        """``"fill"``, ``"outline"`` or ``"both"``; ``outline_width`` in pixels (1..20)."""
        self.state.set_mode(mode, outline_width)

    def set_display(self, display: str, class_index: int | None = None) -> None:
        """``"labels"``, ``"confidence"``, ``"entropy"``, ``"probability"`` (of ``class_index``)
        or ``"errors"`` (against the reference, for ``class_index``; see
        :meth:`set_error_class` for all classes)."""
        self.state.set_display(display, class_index)

    def set_error_class(self, index: int | None) -> None:
        """Class of the "errors" display; None marks every disagreement with the reference."""
        self.state.set_error_class(None if index is None else int(index))

    def set_window(self, level: float, width: float) -> None:
        """Grey-level window (image intensity units)."""
        self.state.set_window(level, width)

    def set_threshold(self, threshold: float) -> None:
        """Foreground threshold of sigmoid / multi-label predictions (0..1)."""
        self.state.set_threshold(threshold)

    def set_min_confidence(self, value: float | None) -> None:
        """Mark voxels whose top probability is below ``value`` as uncertain (None: off)."""
        self.state.set_min_confidence(value)

    # -- waiting, pictures, export ------------------------------------------------------------
    def wait_idle(self, timeout: float = 60.0) -> None:
        """Process events until no background job is running; SegviewerError on timeout."""
        import time

        from PySide6.QtCore import QCoreApplication, QEventLoop

        # A blocking call for scripts, so it pumps the event loop itself (never used inside
        # widgets). Not a nested QEventLoop: after a QApplication.quit() those return at once.
        end = time.monotonic() + timeout
        while True:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
            if self.window.is_idle():
                QCoreApplication.processEvents()  # deliver the last results and repaints
                if self.window.is_idle():
                    return
            if time.monotonic() > end:
                raise SegviewerError(f"the viewer is still busy after {timeout} s")
            time.sleep(0.002)

    def screenshot(
        self, path: str | os.PathLike[str] | None = None, *, window: bool = False
    ) -> np.ndarray:
        """The canvas (or the whole window) as an ``(H, W, 4)`` uint8 RGBA array; also saved
        to ``path`` (PNG) when given."""
        from segviewer.ui.canvas import qimage_to_array

        self.wait_idle()
        image = self.window.grab().toImage() if window else self.window.grab_canvas()
        rgba = qimage_to_array(image)
        if path is not None:
            from segviewer.io.writers import write_png

            # atomic; a script naming the file means to (re)write it
            write_png(rgba, path, force=True)
        return rgba

    def picture(
        self,
        kind: str = "slice",
        path: str | os.PathLike[str] | None = None,
        *,
        dpi: float = 150.0,
        **options: Any,
    ) -> np.ndarray:
        """A report picture as shown now (``ViewerController.report_picture``): ``"slice"``,
        ``"three"`` (views at the crosshair), ``"lightbox"`` (``every=N``) or ``"worst"``
        (``worst=K``, needs a reference); ``view=``, ``width=`` pixels. Saved to ``path``
        (PNG or PDF by suffix, at ``dpi``) when given; returns the RGB array."""
        from segviewer.io.render import write_picture

        self.wait_idle()
        rgb = self.window.controller.report_picture(kind, **options)
        if path is not None:
            write_picture(rgb, Path(path), dpi=dpi, force=True)
        return rgb

    # -- reference segmentation ---------------------------------------------------------------
    def set_reference(self, reference: PathOrArray | None, *, layout: str | None = None) -> Any:
        """Compare the prediction with a reference segmentation (ground truth); blocks until
        it is loaded and compared.

        Parameters
        ----------
        reference
            A file (label map, or probabilities / logits: their argmax) on the image grid,
            an array (an integer ``(a0, a1, a2)`` label map in image-axis order, or class
            scores in any layout ``prediction_from_array`` reads, e.g. ``(a0, a1, a2, C)``),
            or None to close the reference.
        layout
            Explicit layout of the file or array (as ``--layout``).

        Returns
        -------
        segviewer.core.compare.Comparison or None
            Dice, sensitivity, precision per class (None when closing or without a
            prediction to compare).

        Raises
        ------
        SegviewerError
            Unreadable file, or a reference not on the image grid (the window keeps the
            reference it had).
        """
        win = self.window
        self.wait_idle()
        if reference is None:
            win.set_reference(None)
            return None
        if win.state.volume is None:
            raise SegviewerError("open an image before a reference segmentation")
        shape = win.state.volume.shape
        if isinstance(reference, np.ndarray):
            win.set_reference(
                _reference_labels(reference, shape, layout, win.state.n_classes()),
                source="<array>",
            )
        else:
            errors: list[str] = []
            win.error_shown.connect(errors.append)
            dialogs = win.show_dialogs
            win.show_dialogs = False
            try:
                if layout is None:
                    win.open_reference(reference)
                else:
                    from segviewer.io.predictions import load_reference

                    win.set_reference(
                        load_reference(
                            reference, shape, layout=layout, n_classes_hint=win.state.n_classes()
                        ),
                        source=str(reference),
                    )
                self.wait_idle()
            finally:
                win.error_shown.disconnect(errors.append)
                win.show_dialogs = dialogs
            if errors:
                raise SegviewerError(errors[-1])
        self.wait_idle()
        return win.state.comparison

    def export(self, out_dir: str | os.PathLike[str], **request: Any) -> Any:
        """Export with the window's data; keyword arguments are ``io.export.ExportRequest``
        fields (``out_dir`` is set for you). Blocks until done and returns the ExportResult."""
        from segviewer.io.export import ExportRequest

        self.wait_idle()
        req = ExportRequest(out_dir=Path(out_dir), **request)
        box: dict[str, Any] = {}
        errors: list[str] = []
        self.window.error_shown.connect(errors.append)
        try:
            self.window.run_export(req, on_done=lambda r: box.setdefault("result", r))
            self.wait_idle(timeout=3600)
        finally:
            self.window.error_shown.disconnect(errors.append)
        if errors:
            raise SegviewerError(errors[-1])
        if "result" not in box:
            raise SegviewerError("the export was cancelled")
        return box["result"]

    # -- models -------------------------------------------------------------------------------
    def run_model(
        self,
        path: str | os.PathLike[str],
        *,
        trust: bool = False,
        card: Any = None,
        overrides: dict[str, Any] | None = None,
        timeout: float = 3600.0,
    ) -> Prediction:
        """Run a TensorFlow/Keras model on the image and show its prediction; blocks until done.

        Parameters
        ----------
        path
            ``.keras`` / ``.h5`` file or SavedModel folder.
        trust
            Allow a model that runs code when loaded (Lambda layers, custom classes).
        card
            ``inference.ModelCard`` or a card file; default ``<model>.segviewer.json`` next
            to the model, else the defaults.
        overrides
            Card fields to replace, e.g. ``{"slice_axis": 0, "normalization": "zscore"}``.

        Returns
        -------
        Prediction
            Raw outputs float32 ``(C, axis0, axis1, axis2)``; the window keeps its provenance
            for exports (``viewer.window.state.provenance``).

        Raises
        ------
        SegviewerError
            Refused (untrusted code), unreadable model, the model does not fit the image, or
            the run was cancelled.
        """
        self.wait_idle()
        win = self.window
        errors: list[str] = []
        win.error_shown.connect(errors.append)
        dialogs = win.show_dialogs
        win.show_dialogs = False
        before = win.state.prediction
        try:
            if (
                win.open_model(
                    path, trust=trust, card=card, run=True, overrides=overrides, show=False
                )
                is None
                and not errors
            ):
                raise SegviewerError(f"could not open model {path}")
            self.wait_idle(timeout=timeout)
        finally:
            win.error_shown.disconnect(errors.append)
            win.show_dialogs = dialogs
        if errors:
            raise SegviewerError(errors[-1])
        pred = win.state.prediction
        if pred is None or pred is before or "model" not in win.state.provenance:
            raise SegviewerError("the model run was cancelled; the previous prediction is shown")
        return pred

    def close(self) -> None:
        self.window.close()


def _reference_labels(
    array: np.ndarray, image_shape: tuple[int, int, int], layout: str | None, n_classes: int
) -> np.ndarray:
    """An in-memory reference as an ``(a0, a1, a2)`` label map (argmax of class scores)."""
    if array.dtype.kind in "iu" and array.shape == tuple(image_shape) and layout is None:
        return np.array(array, copy=True)  # the caller may change theirs later
    from segviewer.core.masks import iter_labels
    from segviewer.core.progress import run_to_end
    from segviewer.core.types import MaskSettings
    from segviewer.io.predictions import prediction_from_array

    try:
        pred = prediction_from_array(
            array, image_shape, layout=layout, n_classes_hint=n_classes or None, source="reference"
        )
    except SegviewerError as exc:
        raise SegviewerError(f"reference segmentation: {exc}") from None
    return np.asarray(run_to_end(iter_labels(pred, MaskSettings())).labels)


def _as_volume(image: PathOrArray | Volume) -> Volume | str:
    if isinstance(image, Volume):
        return image
    if isinstance(image, np.ndarray):
        data = image
        if data.ndim == 2:
            data = data[None]
        if data.ndim != 3:
            raise SegviewerError(f"an image array must be 2-D or 3-D, got shape {image.shape}")
        return Volume(np.ascontiguousarray(data), STACK_AFFINE, source="<array>", format="array")
    return str(image)


def _as_prediction(
    pred: np.ndarray | Prediction,
    image_shape: tuple[int, int, int],
    layout: str | None,
    kind: str | None,
    resample: bool = False,
) -> Prediction:
    if isinstance(pred, Prediction):
        return pred
    from segviewer.io.predictions import prediction_from_array

    # an array has no geometry: resampling scales it by shape (and says so)
    return prediction_from_array(pred, image_shape, layout=layout, kind=kind, resample=resample)


def view(
    image: PathOrArray | Volume,
    prediction: PathOrArray | Prediction | None = None,
    classes: str | os.PathLike[str] | ClassTable | None = None,
    *,
    layout: str | None = None,
    kind: str | PredictionKind | None = None,
    show: bool = True,
    reference: PathOrArray | None = None,
    remember_settings: bool = False,
    resample: bool = False,
) -> Viewer:
    """Open a viewer window on an image and (optionally) a prediction.

    Parameters
    ----------
    image
        A file path (any format segviewer reads), a 3-D array ``(slice, row, col)`` or 2-D
        ``(row, col)`` (shown with the "stack" geometry, 1 mm), or a :class:`Volume`.
    prediction
        A file path, an array in any layout (detected, or ``layout=`` e.g. ``"NHWC"``), or a
        :class:`Prediction`.
    classes
        Class table file or :class:`ClassTable` (default: "background", "class 1", ...).
    layout, kind
        As for ``segviewer --layout/--kind``.
    show
        Show the window (False: keep it hidden, e.g. to export or screenshot only).
    reference
        Reference segmentation (ground truth) to compare the prediction with, as for
        :meth:`Viewer.set_reference`.
    resample
        Put a prediction of another grid onto the image grid, as ``--resample``: in world
        space for files with geometry (NIfTI, NRRD), by shape for arrays.
    remember_settings
        Read and write the user's saved settings (window size, opacity, recent files) as
        the interactive window does. Off by default: a script gives the same picture on
        every machine.

    Returns
    -------
    Viewer
        Files are loaded before this returns (it waits for the loaders).
    """
    from segviewer.ui.app import ensure_app
    from segviewer.ui.main_window import MainWindow
    from segviewer.ui.settings import Settings

    app = ensure_app()
    win = MainWindow(settings=Settings(persistent=remember_settings))
    viewer = Viewer(win, app)
    kind_s = kind.value if isinstance(kind, PredictionKind) else kind
    errors: list[str] = []
    win.error_shown.connect(errors.append)
    win.show_dialogs = False  # the caller gets exceptions, not modal dialogs
    if show:
        win.show()
    vol = _as_volume(image)
    if isinstance(vol, Volume):
        win.set_image(vol)
    else:
        win.open_image(vol)
    viewer.wait_idle()
    if errors:
        raise SegviewerError(errors[-1])
    if isinstance(classes, ClassTable):
        win.set_class_table(classes)
    elif classes is not None:
        win.open_class_table(classes)
        viewer.wait_idle()
    if prediction is not None:
        if isinstance(prediction, (np.ndarray, Prediction)):
            if win.state.volume is None:
                raise SegviewerError("the image did not load")
            shape = win.state.volume.shape
            win.set_prediction(
                _as_prediction(prediction, shape, layout, kind_s, resample),
                {"source": "<array>"},
            )
        else:
            win.open_prediction(prediction, layout=layout, kind=kind_s, resample=resample)
        viewer.wait_idle()
    win.error_shown.disconnect(errors.append)
    win.show_dialogs = True
    if errors:
        raise SegviewerError(errors[-1])
    if reference is not None:
        viewer.set_reference(reference)
    return viewer
