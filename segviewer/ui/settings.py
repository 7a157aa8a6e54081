"""Persistent preferences (QSettings): last folder, recent files, geometry, display options.

Stored as an INI file under the user's configuration folder (organisation ``segviewer``,
application ``segviewer``). Tests point it elsewhere with
``QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp_path)``, or
by setting ``SEGVIEWER_SETTINGS`` to an INI file path.

``Settings(persistent=False)`` keeps everything in memory and never reads or writes the
file: scripted and headless runs (``--screenshot``, ``segviewer.view``) use it, so the same
command gives the same picture on every machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

__all__ = ["MAX_RECENT", "Settings"]

ORGANISATION = "segviewer"
APPLICATION = "segviewer"
MAX_RECENT = 10


class Settings:
    """Typed access to the few preferences the window keeps."""

    def __init__(self, *, persistent: bool = True) -> None:
        self.persistent = persistent
        self.qs: QSettings | None = None
        self._memory: dict[str, Any] = {}
        if not persistent:
            return
        path = os.environ.get("SEGVIEWER_SETTINGS")
        if path:
            self.qs = QSettings(path, QSettings.Format.IniFormat)
        else:
            self.qs = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
            )

    def get(self, key: str, default: Any = None) -> Any:
        if self.qs is None:
            return self._memory.get(key, default)
        return self.qs.value(key, default)

    def get_float(self, key: str, default: float) -> float:
        try:
            return float(self.get(key, default))
        except (TypeError, ValueError):
            return default

    def get_bool(self, key: str, default: bool) -> bool:
        v = self.get(key, default)
        if isinstance(v, str):
            return v.lower() in ("1", "true", "yes")
        return bool(v)

    def set(self, key: str, value: Any) -> None:
        if self.qs is None:
            self._memory[key] = value
        else:
            self.qs.setValue(key, value)

    def last_folder(self) -> str:
        folder = str(self.get("paths/last_folder", "") or "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def remember_folder(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.set("paths/last_folder", str(p if p.is_dir() else p.parent))

    def recent(self) -> list[tuple[str, str]]:
        """Recent files, newest first, as ``(kind, path)``; kind is image, prediction,
        reference or classes."""
        raw: Any = self.get("paths/recent", []) or []
        if isinstance(raw, str):
            raw = [raw]
        out: list[tuple[str, str]] = []
        for entry in raw:
            kind, _, path = str(entry).partition("|")
            if path and kind in ("image", "prediction", "reference", "classes"):
                out.append((kind, path))
        return out

    def add_recent(self, kind: str, path: str | os.PathLike[str]) -> None:
        entry = (kind, str(Path(path).resolve()))
        items = [e for e in self.recent() if e != entry]
        items.insert(0, entry)
        self.set("paths/recent", [f"{k}|{p}" for k, p in items[:MAX_RECENT]])

    def sync(self) -> None:
        if self.qs is not None:
            self.qs.sync()
