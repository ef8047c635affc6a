"""Where a training session's model goes: its file, or, when that file cannot be written, a new
file in the autosave folder.

A run's model file can stop being writable while it trains: replaced by a folder, its disk full,
its folder removed or made read-only. A save that fails there (``save_model`` is atomic, so the
file keeps its previous contents) is made again to one new file in the fallback folder, named
like the app's autosaves (``autosave_path``), and the session says where (``SavedElsewhere``, its
summary). Later saves try the model file first again. When the fallback fails too, the error
names both files.

``default_autosave_dir`` is the folder the command line and sweeps fall back to: ``autosave``
beside the run store (``$CHARLSTM_HOME/autosave`` when ``CHARLSTM_HOME`` is set).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..errors import ModelFileError
from ..files.modelfile import ModelFile, save_model
from ..runs import default_db_path


def default_autosave_dir() -> Path:
    """The autosave folder of the command line and sweeps: beside the run store."""
    return default_db_path().parent / "autosave"


def autosave_path(folder: str | os.PathLike[str], name: str) -> str:
    """A new autosave file in ``folder`` for a model of ``name`` (a text's or a model file's):
    ``<stem>-<YYYYmmdd-HHMMSS>.npz``, with ``-2``, ``-3``… after the stem when taken."""
    stem = Path(name).stem or "model"
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)[:40]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(folder) / f"{stem}-{stamp}.npz"
    n = 2
    while path.exists():
        path = Path(folder) / f"{stem}-{n}-{stamp}.npz"
        n += 1
    return str(path)


class Saver:
    """Saves a session's model to ``target``, or to one fallback file when ``target`` fails.

    State: the fallback file once used, why the last save missed the target, a save in progress."""

    def __init__(self, target: str | None, fallback_dir: str | os.PathLike[str] | None) -> None:
        self.target = target
        self.fallback_dir = fallback_dir
        self.fallback: str | None = None  # the fallback file, once a save went there
        self.problem: str | None = None  # why the last save did not reach the target
        self.last: str | None = None  # the file the last save wrote
        self.saved_step: int | None = None  # the model's step in it
        self.saving = False  # a save is in progress (a second stop signal abandons it)
        self.fell_back = 0  # saves that went to the fallback file

    def write(self, path: str, model: ModelFile) -> str:
        """Save ``model`` to ``path``; when ``path`` is the target and cannot be written, to the
        fallback file. Returns the file written; ModelFileError when nothing could be."""
        self.saving = True  # stays True when a KeyboardInterrupt abandons the save
        try:
            out = save_model(path, model)
        except ModelFileError as e:
            if path != self.target or self.fallback_dir is None:
                self.saving = False
                raise
            try:
                out = self._fall_back(model, e)
            except ModelFileError:
                self.saving = False
                raise
        else:
            if path == self.target:
                self.problem = None
        self.saving = False
        self.last = out
        self.saved_step = model.train.step if model.train is not None else None
        return out

    def _fall_back(self, model: ModelFile, error: ModelFileError) -> str:
        reason = str(error)
        assert self.target is not None and self.fallback_dir is not None
        try:
            os.makedirs(self.fallback_dir, exist_ok=True)
            path = self.fallback or autosave_path(self.fallback_dir, self.target)
            out = save_model(path, model)
        except (ModelFileError, OSError) as e:
            why = str(e) if isinstance(e, ModelFileError) else (e.strerror or str(e))
            raise ModelFileError(
                f"{reason} Saving it to the autosave folder {self.fallback_dir} failed too: "
                f"{why} {self.target} keeps its previous contents."
            ) from None
        self.fallback, self.problem = out, reason
        self.fell_back += 1
        return out
