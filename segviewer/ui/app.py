"""Start the window: argument parsing for ``segviewer [IMAGE] ...``, the QApplication, theme."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from segviewer.io.bundled import demo_model_path, demo_paths, icon_path

__all__ = [
    "build_parser",
    "demo_model_path",
    "demo_paths",
    "ensure_app",
    "main",
    "model_options",
    "run_app",
]


def build_parser() -> argparse.ArgumentParser:
    """Options of the window command, declared in :mod:`segviewer.cli.options`."""
    from segviewer.cli.options import window_parser

    return window_parser()


def model_options(items: Sequence[str]) -> dict[str, Any]:
    """``--model-option KEY=VALUE`` strings to model-card overrides, exactly as
    ``segviewer export`` reads them (:func:`segviewer.inference.card.parse_overrides`)."""
    from segviewer.inference.card import parse_overrides

    return parse_overrides(items)


def ensure_app() -> object:
    """The running QApplication, created (with segviewer's names and theme) if needed."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setOrganizationName("segviewer")
        app.setApplicationName("segviewer")
        app.setDesktopFileName("segviewer")  # Wayland: match --install-desktop-entry's file
        from PySide6.QtGui import QIcon

        from segviewer.core.types import SegviewerError

        # an installation without the icon still opens the window
        with contextlib.suppress(SegviewerError):
            app.setWindowIcon(QIcon(str(icon_path(".png"))))
        apply_theme(app)
    return app


def apply_theme(app: object) -> None:
    """Fusion style with a dark palette (image viewers are read in dim rooms; grey on white
    dazzles) and a readable default font."""
    from PySide6.QtGui import QColor, QFont, QPalette
    from PySide6.QtWidgets import QApplication

    assert isinstance(app, QApplication)
    app.setStyle("Fusion")
    pal = QPalette()
    dark, mid, text = QColor(45, 45, 48), QColor(30, 30, 32), QColor(225, 225, 225)
    pal.setColor(QPalette.ColorRole.Window, dark)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, mid)
    pal.setColor(QPalette.ColorRole.AlternateBase, dark)
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor(60, 60, 64))
    pal.setColor(QPalette.ColorRole.ToolTipText, text)
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor(58, 58, 62))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.Highlight, QColor(42, 130, 218))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 120))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 120))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor(120, 120, 120))
    app.setPalette(pal)
    font = QFont("DejaVu Sans")
    font.setPointSize(10)
    app.setFont(font)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the window; returns the exit code.

    ``--screenshot FILE.png`` opens everything, waits until every background job has
    finished, saves the window to ``FILE.png`` and exits 0 (works with
    ``QT_QPA_PLATFORM=offscreen``). Errors while loading are shown in a dialog (or, with
    ``--screenshot``, printed as ``segviewer: error: ...`` and the exit code is 2).
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    t0 = time.perf_counter()
    from segviewer.core.types import SegviewerError

    try:
        overrides = model_options(args.model_option)
    except SegviewerError as e:
        return _fail(str(e))
    if (args.model_card or overrides or args.trust_model) and not (args.model or args.demo):
        return _fail("--model-card, --model-option and --trust-model only apply with --model")
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    owns_app = QApplication.instance() is None
    app = ensure_app()

    from segviewer.ui.main_window import MainWindow

    assert isinstance(app, QApplication)
    image, prediction, classes = args.image, args.prediction, args.classes
    model, model_optional = args.model, False
    reference = args.reference
    if args.demo:
        image, prediction, demo_classes = (str(p) for p in demo_paths())
        classes = classes or demo_classes
        if model is None:
            # The reference probabilities show at once; the model's prediction replaces them
            # when it arrives (or, without TensorFlow, a status-bar note says why not, and
            # the queue, with the reference below, stops there).
            model, model_optional = str(demo_model_path()), True
            # After the model ran, the tissue probabilities become its reference: the demo
            # shows a real comparison (Dice per class, errors display).
            reference = reference or prediction
    from segviewer.ui.settings import Settings

    # A headless picture never depends on (or changes) what this user saved: same command,
    # same picture on every machine.
    win = MainWindow(settings=Settings(persistent=not args.screenshot))
    status = {"code": 0}
    try:
        pending_display = _apply_display_args(win, args)
    except SegviewerError as e:
        win.close()
        return _fail(str(e))
    if args.screenshot:
        # Headless: report errors on stderr instead of a modal dialog nobody can close.
        def report(text: str) -> None:
            status["code"] = _fail(text)

        win.error_shown.connect(report)
        win.show_dialogs = False
    if args.view == "three":
        win.set_three_view(True)
    elif args.view:
        win.set_view(args.view)

    def first_image(_: object) -> None:
        if args.slice is not None:
            win.canvas.set_slice(args.slice)
        if os.environ.get("SEGVIEWER_TIMING"):
            # epoch time too, so a launcher can measure from process start (benchmarks/)
            print(
                f"first slice shown after {time.perf_counter() - t0:.3f} s in main() "
                f"(epoch {time.time():.3f})",
                file=sys.stderr,
            )

    def first_model_prediction(_: object) -> None:
        if os.environ.get("SEGVIEWER_TIMING"):
            print(
                f"model prediction shown after {time.perf_counter() - t0:.3f} s in main() "
                f"(epoch {time.time():.3f})",
                file=sys.stderr,
            )

    win.image_loaded.connect(first_image)
    win.model_prediction_shown.connect(first_model_prediction)
    win.show()
    if model is not None and image is None:
        win.close()
        return _fail(
            "--model runs the model on an image; give the image too: segviewer IMAGE --model MODEL"
        )
    if reference is not None and image is None:
        win.close()
        return _fail(
            "--reference is compared with a prediction on an image; give the image "
            "too: segviewer IMAGE --prediction P --reference R"
        )
    if args.classes_offset:
        try:
            win.controller.set_classes_offset(args.classes_offset)
        except SegviewerError as e:
            win.close()
            return _fail(str(e))
        from superqt.utils import signals_blocked

        with signals_blocked(win.classes_offset_action):
            win.classes_offset_action.setChecked(args.classes_offset == 1)
    from segviewer.ui.testset_session import is_test_set

    if args.evaluation is not None or (image is not None and is_test_set(image)):
        # a test set (CSV, folder, glob) and / or an 'evaluate' folder: the case table opens
        # the first case itself
        if prediction or reference or model or args.demo:
            win.close()
            return _fail(
                "a test set brings its own predictions and references; give only the test "
                "set (and --evaluation DIR): segviewer CASES [--evaluation DIR]"
            )
        opened = win.testset.open_test_set(image, evaluation=args.evaluation)
        if not opened and args.screenshot:
            win.close()
            return int(status["code"]) or 2
        image = None
    if image or prediction or classes:
        win.open_files(
            image,
            prediction,
            classes,
            layout=args.layout,
            kind=args.kind,
            frame=args.frame,
            series=args.series,
            model=model,
            trust_model=args.trust_model,
            model_card=args.model_card,
            model_options=overrides,
            model_optional=model_optional,
            reference=reference,
            resample=args.resample,
        )
    if args.screenshot:
        out = Path(args.screenshot)

        def shoot() -> None:
            from segviewer.io.writers import write_png
            from segviewer.ui.canvas import qimage_to_array

            if pending_display() and status["code"] == 0:
                status["code"] = _fail(
                    f"--display {args.display} needs "
                    + ("--reference" if args.display == "errors" else "a prediction")
                )

            try:
                # atomic (no partial PNG); the user named this file, so it is replaced
                write_png(qimage_to_array(win.grab().toImage()), out, force=True)
            except (SegviewerError, OSError) as exc:
                status["code"] = _fail(f"could not write {out}: {exc}")
            win.close()

        win.when_idle(shoot)
    elif image is None:
        win.statusBar().showMessage("Open an image (File > Open image, or drop a file here)")
    if owns_app:
        app.exec()
    else:
        # Inside a running program (tests, a notebook's Qt loop): run a local loop until the
        # window closes instead of app.exec()/quit(), which would end the host's loops too.
        loop = QEventLoop()
        win.closed.connect(loop.quit)
        if win.isVisible():
            loop.exec()
    return status["code"]


def _apply_display_args(win: Any, args: argparse.Namespace) -> Callable[[], bool]:
    """The display flags (``cli.options.add_window_display_options``) on the window's state.

    Settings that need no data apply now; ``--window`` applies to the first image, and
    ``--display`` once the data it needs is there (a prediction; for ``errors`` a reference).
    Returns a function that says whether ``--display`` is still waiting."""
    from segviewer.cli.options import window_arg
    from segviewer.ui.state import Change

    st = win.state
    if args.window_size is not None:
        win.resize(*args.window_size)
    if args.opacity is not None:
        st.set_opacity(args.opacity)
    if args.mode is not None or args.outline_width is not None:
        st.set_mode(args.mode or st.mode, args.outline_width)
    if args.threshold is not None:
        st.set_threshold(args.threshold)
    if args.min_confidence is not None:
        st.set_min_confidence(args.min_confidence)
    if args.no_legend or args.crosshair:
        st.set_options(legend=False if args.no_legend else None, crosshair=args.crosshair or None)
    if args.neurological:
        st.set_radiological(False)
    level_width = window_arg(args.window)
    if level_width is not None:
        win.image_loaded.connect(lambda _v: st.set_window(*level_width))
    wanted = {"display": args.display}

    def try_display(what: object = None) -> None:
        display = wanted["display"]
        if display is None or what not in (Change.DATA, Change.REFERENCE, Change.LABEL_RESULT):
            return
        if st.prediction is None or (display == "errors" and st.reference is None):
            return
        wanted["display"] = None
        index = args.display_class
        if display == "errors":
            st.set_display("errors")
            st.set_error_class(index)  # None: every class
        else:
            st.set_display(display, index)

    if wanted["display"] not in (None, "labels"):
        st.changed.connect(lambda what: _reported(win, try_display, what))
    return lambda: wanted["display"] not in (None, "labels")


def _reported(win: Any, func: Callable[[object], None], arg: object) -> None:
    """Call ``func(arg)``; a refused setting becomes the window's error report."""
    from segviewer.core.types import SegviewerError

    try:
        func(arg)
    except SegviewerError as e:
        win.controller.report(str(e), error=True)


def _fail(message: str) -> int:
    """The command line's one error convention: ``segviewer: error: ...``, exit status 2."""
    from segviewer.cli.terminal import fail

    return fail(message)


#: design.md calls the entry point ``run_app``; both names work.
run_app = main
