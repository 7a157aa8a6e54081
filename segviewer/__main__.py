"""``python -m segviewer`` is the same as the ``segviewer`` command."""

from segviewer.cli import main

raise SystemExit(main())
