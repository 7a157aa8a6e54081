"""The errors every layer raises: a leaf module with no imports from segviewer.

``core.types``, ``core.layout`` and ``core.orientation`` all raise these; keeping them here
(and not in ``core.types``) lets ``core.types`` import ``Layout`` and ``axis_codes`` at module
level without an import cycle.
"""

from __future__ import annotations

__all__ = ["SegviewerError", "ShapeMismatch"]


class SegviewerError(Exception):
    """An error the user can act on.

    The message is one or two sentences: what is wrong (naming the file, shapes, values) and
    what to do about it. The command line prints it as one line and exits with status 2
    (``segviewer: error: ...``); the window shows it in a dialog. Anything else that escapes
    is a bug.
    """


class ShapeMismatch(SegviewerError):
    """The prediction's spatial size is not the image's.

    ``resample_possible`` is True when no reading fits the image exactly but some axis order
    matches it up to scale, so resampling onto the image grid (``--resample``; the window
    offers it) would make it fit. ``fitting_layouts`` names the ``--layout`` strings that fit
    the image's size exactly (then resampling is never offered).
    """

    def __init__(
        self, message: str, resample_possible: bool, fitting_layouts: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.resample_possible = resample_possible
        #: ``--layout`` strings whose sizes equal the image's (any kind); when there are some,
        #: ``resample_possible`` is False: the right reading needs no resampling
        self.fitting_layouts = fitting_layouts
