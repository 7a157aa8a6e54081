"""The ``segviewer`` command.

``segviewer info FILE...``
    What a file is (:mod:`segviewer.cli.info`).
``segviewer export IMAGE (--prediction FILE | --model MODEL) --out DIR [...]``
    Headless export, the same code path the window uses (:mod:`segviewer.cli.export`).
``segviewer compare IMAGE (--prediction FILE | --model MODEL) --reference FILE [...]``
    Where the model is wrong, per class, as a table or JSON (:mod:`segviewer.cli.compare`).
anything else (no arguments, an image path, ``--demo``, ``--screenshot``...)
    Opens the window (:mod:`segviewer.cli.window`); Qt is imported only then.

Every option is declared once in :mod:`segviewer.cli.options`; the progress bar, tables and
the error guard are in :mod:`segviewer.cli.terminal`. Subcommand modules are imported only
when they run, so ``segviewer --version`` stays quick.

Exit status: 0 success, 2 a problem the user can fix (one line ``segviewer: error: ...`` on
stderr, the window's command too), 130 cancelled with Ctrl-C (nothing half-written is left
behind).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from segviewer.cli.terminal import guarded

__all__ = ["main"]

SUBCOMMANDS = ("info", "export", "compare")

_TOP_HELP = """\
usage: segviewer [IMAGE] [window options]   open the viewer window
       segviewer info FILE... [--image IMAGE] [--json]
       segviewer export IMAGE --prediction FILE --out DIR [options]
       segviewer export IMAGE --model MODEL --out DIR [options]
       segviewer export --demo --out DIR
       segviewer export IMAGE --prediction FILE --reference FILE --what errors --out DIR
       segviewer compare IMAGE --prediction FILE --reference FILE [--classes FILE] [--json]
       segviewer compare IMAGE --model MODEL --reference FILE
       segviewer compare --demo
       segviewer --version

Review what a semantic-segmentation model predicts on MRI, and where it is wrong
against a reference segmentation.
Run 'segviewer info --help', 'segviewer export --help' or 'segviewer compare --help' for
their options.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``segviewer`` command; returns the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads ``sys.argv[1:]``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["--version"], ["-V"]):
        from segviewer import __version__

        print(f"segviewer {__version__}")
        return 0
    if args[:1] in (["-h"], ["--help"]):
        return guarded(_top_help)
    if args and args[0] in SUBCOMMANDS:
        run = _subcommand(args[0])
        return guarded(lambda: run(args[1:]))
    from segviewer.cli.window import run as run_window

    return run_window(args)


def _subcommand(name: str) -> Callable[[Sequence[str]], int]:
    """The ``run`` function of a subcommand, imported only now."""
    if name == "info":
        from segviewer.cli import info

        return info.run
    if name == "export":
        from segviewer.cli import export

        return export.run
    from segviewer.cli import compare

    return compare.run


def _top_help() -> int:
    from segviewer.cli.options import window_parser

    print(_TOP_HELP, end="")
    print("\nOpening the window:\n" + window_parser().format_help(), end="")
    sys.stdout.flush()  # a closed pipe shows up here, inside the guard
    return 0
