"""The recently used texts and models, kept in QSettings, and the two File menus that list them.

A path is kept only when QSettings can hold it: a file name whose bytes are not UTF-8 is held by
Python as lone surrogates, which Qt would silently drop, naming another file (``storable``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from charlstm_core.files.text import display_path
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

MAX_RECENT = 8
KINDS = ("texts", "models")


def storable(path: str) -> bool:
    """Whether ``path`` survives QSettings (see the module's docstring)."""
    return display_path(path) == path


class RecentFiles:
    """The newest first, at most ``MAX_RECENT`` of each kind ("texts", "models")."""

    def __init__(self, settings: QSettings) -> None:
        self.settings = settings

    def paths(self, kind: str) -> list[str]:
        value = self.settings.value(f"recent/{kind}", [], type=list)
        return [str(p) for p in value if p]

    def add(self, kind: str, path: str) -> None:
        if not storable(path):
            return
        items = [p for p in self.paths(kind) if p != path]
        self.settings.setValue(f"recent/{kind}", [path, *items][:MAX_RECENT])

    def fill_menu(
        self,
        menu: QMenu,
        kind: str,
        *,
        enabled: bool,
        open_path: Callable[[str], None],
        missing: Callable[[str], None],
    ) -> None:
        """List the paths of ``kind`` in ``menu`` (numbered, with the full path as status tip);
        choosing one calls ``open_path(path)``, or ``missing(path)`` when it is gone."""
        menu.clear()
        paths = self.paths(kind)
        for i, path in enumerate(paths, 1):
            act = menu.addAction(f"&{i} {Path(path).name}")
            act.setStatusTip(path)
            act.setEnabled(enabled)
            act.triggered.connect(
                lambda _=False, p=path: open_path(p) if os.path.exists(p) else missing(p)
            )
        if not paths:
            menu.addAction("(none)").setEnabled(False)
