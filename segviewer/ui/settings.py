"""Persistent preferences (QSettings): last folder, recent files, geometry, display options.

Stored as an INI file under the user's configuration folder (organisation ``segviewer``,
application ``segviewer``). Tests point it elsewhere with
``QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp_path)``, or
by setting ``SEGVIEWER_SETTINGS`` to an INI file path.
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

    def __init__(self) -> None:
        path = os.environ.get("SEGVIEWER_SETTINGS")
        if path:
            self.qs = QSettings(path, QSettings.Format.IniFormat)
        else:
            self.qs = QSettings(
                QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION
            )

    def get(self, key: str, default: Any = None) -> Any:
        return self.qs.value(key, default)

    def get_float(self, key: str, default: float) -> float:
        try:
            return float(self.qs.value(key, default))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return default

    def get_bool(self, key: str, default: bool) -> bool:
        v = self.qs.value(key, default)
        if isinstance(v, str):
            return v.lower() in ("1", "true", "yes")
        return bool(v)

    def set(self, key: str, value: Any) -> None:
        self.qs.setValue(key, value)

    def last_folder(self) -> str:
        folder = str(self.qs.value("paths/last_folder", "") or "")
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def remember_folder(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.qs.setValue("paths/last_folder", str(p if p.is_dir() else p.parent))

    def recent(self) -> list[tuple[str, str]]:
        """Recent files, newest first, as ``(kind, path)``; kind is image, prediction,
        reference or classes."""
        raw: Any = self.qs.value("paths/recent", []) or []
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
        self.qs.setValue("paths/recent", [f"{k}|{p}" for k, p in items[:MAX_RECENT]])

    def sync(self) -> None:
        self.qs.sync()
