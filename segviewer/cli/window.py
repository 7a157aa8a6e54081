"""``segviewer [IMAGE] [window options]``: open the viewer window.

Qt is imported only here and only when the window starts; a missing binding or missing
system libraries give one ``segviewer: error:`` line, not a traceback. The window's options
are declared in :func:`segviewer.cli.options.window_parser`.
"""

from __future__ import annotations

from collections.abc import Sequence

from segviewer.cli.terminal import fail, guarded, one_line

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    args = list(argv)
    try:
        # Load Qt first (the window module imports it lazily): a missing binding or missing
        # system libraries (libEGL, libxkbcommon...) must give one clear line, not a traceback.
        import PySide6.QtWidgets  # noqa: F401
    except ImportError as exc:
        return fail(
            "the window needs Qt, which cannot be loaded "
            f"({one_line(str(exc))}); install PySide6-Essentials==6.11.3 (and the system's "
            "OpenGL/EGL libraries), or use 'segviewer info' / 'segviewer export', which need no "
            "window"
        )
    from segviewer.ui.app import main as app_main

    return guarded(lambda: int(app_main(args)))
