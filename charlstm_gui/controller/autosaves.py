"""The autosave folder: which files are the app's autosaves, keeping the newest few, its size.

Each run writes one autosave, ``<text>-<YYYYmmdd-HHMMSS>.npz`` (``controller.autosave_path``),
overwritten at every checkpoint of that run; a big model's file is tens of MB, so they pile up
run after run. ``prune`` keeps the newest ``keep`` of them and never touches another file (a
model the user saved into that folder under any other name stays), the current run's file or
the model that is open.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from charlstm_core.errors import CharLSTMError
from charlstm_core.files import writer

from ..widgets import fmt

NAME = re.compile(r".+-\d{8}-\d{6}(-\d+)?\.npz")  # the names controller.autosave_path gives
DEFAULT_KEEP = 3


def autosaves(folder: str | os.PathLike[str]) -> list[Path]:
    """The app's autosave files in ``folder``, newest first (by modification time)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for e in entries:
        try:
            if NAME.fullmatch(e.name) and e.is_file(follow_symlinks=False):
                found.append((e.stat().st_mtime, Path(e.path)))
        except OSError:
            continue
    return [p for _, p in sorted(found, key=lambda t: t[0], reverse=True)]


def prune(
    folder: str | os.PathLike[str], keep: int, protect: tuple[str | None, ...] = ()
) -> list[Path]:
    """Delete all but the newest ``keep`` autosaves of ``folder`` (0: keep every one); the
    files in ``protect`` are always kept and count toward ``keep``. Returns what was deleted."""
    if keep <= 0:
        return []
    kept = {os.path.realpath(p) for p in protect if p}
    files = autosaves(folder)
    room = keep - sum(1 for p in files if os.path.realpath(p) in kept)
    removed = []
    for p in files:
        if os.path.realpath(p) in kept:
            continue
        if room > 0:
            room -= 1
            continue
        try:  # the one guarded writer's rule: still a model, and no run holds it
            writer.remove(p, writer.Kind.MODEL)
            removed.append(p)
        except (CharLSTMError, OSError):
            pass  # in use, no longer a model, or read-only: left for the next time
    return removed


@dataclass(frozen=True)
class FolderSize:
    files: int  # autosaves
    bytes: int  # their total size

    def describe(self) -> str:
        if self.files == 0:
            return "no autosaves"
        return f"{self.files} autosave{'s' if self.files != 1 else ''}, {fmt.size(self.bytes)}"


def folder_size(folder: str | os.PathLike[str]) -> FolderSize:
    """How many autosaves ``folder`` holds and their size (other files are not the app's)."""
    files = autosaves(folder)
    total = 0
    for p in files:
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return FolderSize(len(files), total)
