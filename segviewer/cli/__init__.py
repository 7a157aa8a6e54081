"""The ``segviewer`` command.

``segviewer info FILE...``
    What a file is (:mod:`segviewer.cli.info`).
``segviewer export IMAGE (--prediction FILE | --model MODEL) --out DIR [...]``
    Headless export, the same code path the window uses (:mod:`segviewer.cli.export`).
``segviewer compare IMAGE (--prediction FILE | --model MODEL) --reference FILE [...]``
    Where the model is wrong, per class, as a table or JSON (:mod:`segviewer.cli.compare`).
``segviewer doctor``
    What this installation has and lacks (:mod:`segviewer.cli.doctor`).
``segviewer --install-desktop-entry`` / ``--uninstall-desktop-entry``
    A launcher with the icon for the desktop's menu (:mod:`segviewer.cli.desktop`).
``segviewer evaluate CASES --out DIR [...]``
    Score a whole test set, per case, class and slice, on Dask (:mod:`segviewer.cli.evaluate`).
anything else (no arguments, an image path, ``--demo``, ``--screenshot``...)
    Opens the window (:mod:`segviewer.cli.window`); Qt is imported only then.

Every option is declared once in :mod:`segviewer.cli.options`; the progress bar, tables and
the error guard are in :mod:`segviewer.cli.terminal`. Subcommand modules are imported only
when they run, so ``segviewer --version`` stays quick.

Exit status: 0 success, 1 ``evaluate`` finished but some cases failed, 2 a problem the user
can fix (one line ``segviewer: error: ...`` on stderr, the window's command too), 130
cancelled with Ctrl-C, 143 / 129 stopped by SIGTERM / SIGHUP (nothing half-written is left
behind). Library warnings and log lines appear only with ``--verbose``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from segviewer.cli.terminal import guarded, survive_sigbus

__all__ = ["main"]

SUBCOMMANDS = ("info", "export", "compare", "doctor", "evaluate")

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
       segviewer doctor [--json]        what this installation has and lacks
       segviewer --install-desktop-entry  (--uninstall-desktop-entry)
       segviewer evaluate CASES --out DIR [--classes FILE] [--workers N | --scheduler ADDR]
                          [--resume] [--model MODEL]
       segviewer --version

Review what a semantic-segmentation model predicts on MRI, and where it is wrong
against a reference segmentation.
Run 'segviewer info --help', 'segviewer export --help', 'segviewer compare --help',
'segviewer doctor --help' or 'segviewer evaluate --help' for their options.
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
    if args[:1] in (["--install-desktop-entry"], ["--uninstall-desktop-entry"]):
        return guarded(lambda: _desktop_entry(args))
    if args and args[0] in SUBCOMMANDS:
        run = _subcommand(args[0])
        verbose = "--verbose" in args
        if args[0] == "export":
            # a memory-mapped input truncated mid-export (SIGBUS) gets one line, no leftovers
            return survive_sigbus(
                lambda: guarded(lambda: run(args[1:]), verbose=verbose), _out_arg(args)
            )
        return guarded(lambda: run(args[1:]), verbose=verbose)
    from segviewer.cli.window import run as run_window

    return run_window(args)


def _out_arg(args: Sequence[str]) -> str | None:
    """The value of ``--out`` in an export's arguments (``--out DIR`` or ``--out=DIR``)."""
    for i, a in enumerate(args):
        if a == "--out" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--out="):
            return a.split("=", 1)[1]
    return None


def _subcommand(name: str) -> Callable[[Sequence[str]], int]:
    """The ``run`` function of a subcommand, imported only now."""
    if name == "info":
        from segviewer.cli import info

        return info.run
    if name == "export":
        from segviewer.cli import export

        return export.run
    if name == "doctor":
        from segviewer.cli import doctor

        return doctor.run
    if name == "evaluate":
        from segviewer.cli import evaluate

        return evaluate.run
    from segviewer.cli import compare

    return compare.run


def _desktop_entry(args: list[str]) -> int:
    from segviewer.cli import desktop
    from segviewer.cli.terminal import fail

    if len(args) > 1:
        return fail(f"{args[0]} takes no other arguments; drop {' '.join(args[1:])}")
    if args[0] == "--install-desktop-entry":
        result = desktop.install()
        for path in result.written:
            print(f"wrote {path}")
    else:
        result = desktop.uninstall()
        for path in result.removed:
            print(f"removed {path}")
        if not result.removed:
            print("no segviewer launcher was installed")
    for note in result.notes:
        print(f"note: {note}")
    return 0


def _top_help() -> int:
    from segviewer.cli.options import window_parser

    print(_TOP_HELP, end="")
    print("\nOpening the window:\n" + window_parser().format_help(), end="")
    sys.stdout.flush()  # a closed pipe shows up here, inside the guard
    return 0
