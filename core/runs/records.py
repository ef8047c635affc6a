"""The run store's records: a run (:class:`Run`, one row of ``runs``), its curves
(:class:`Curve`, :class:`Curves`), where the store lives (:func:`default_db_path`) and the
settings that differ between runs. Pure data: no SQL here (that is charlstm_core.runs.schema/store).
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DB_NAME = "runs.sqlite"
HOME_ENV = "CHARLSTM_HOME"  # a folder: the run store is $CHARLSTM_HOME/runs.sqlite
STATUSES = ("running", "finished", "stopped", "diverged", "crashed")
KIND_TRAIN, KIND_VAL = 0, 1
FLUSH_INTERVAL_S = 2.0  # a recorder writes a batch at least this often while points arrive...
FLUSH_POINTS = 500  # ...or as soon as this many are waiting
BUSY_TIMEOUT_S = 2.0  # how long a write waits for another writer before it fails
HOST = socket.gethostname()  # runs of other hosts are never marked crashed


def default_db_path() -> Path:
    """Where the run store lives when no path is given.

    ``$CHARLSTM_HOME/runs.sqlite`` if ``CHARLSTM_HOME`` is set; otherwise the user's data folder:
    ``$XDG_DATA_HOME/charlstm`` (default ``~/.local/share/charlstm``) on Linux and other Unixes,
    ``%LOCALAPPDATA%\\charlstm`` on Windows, ``~/Library/Application Support/charlstm`` on macOS.
    The app and the command line both use this function, so they see the same runs.
    """
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / DB_NAME
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "charlstm" / DB_NAME


@dataclass(frozen=True)
class Run:
    """One row of the ``runs`` table."""

    id: int
    name: str  # editable label
    text_name: str  # the training text's file name
    text_sha256: str  # its fingerprint (with text_size and text_encoding)
    text_size: int | None  # bytes
    text_encoding: str | None
    settings: dict  # {"model": asdict(ModelConfig), "train": asdict(TrainConfig)}
    started: float  # Unix time the run began
    ended: float | None  # Unix time it ended (None while running)
    status: str  # one of STATUSES
    start_step: int  # the model's step when this session began (0 for a new model)
    steps: int  # the model's step at the last batch written
    chars_seen: int  # training characters consumed in the model's life
    chars_per_sec: float | None  # the run's chars/s (charlstm_core.training.measures)
    elapsed_s: float  # the model's training time at the last step (as StepEvent.elapsed_s)
    duration_s: float | None  # the run's duration (charlstm_core.training.measures; so far
    # while it runs; None: unknown, a run still recorded by an older version)
    best_val_loss: float | None  # nats per character
    final_val_loss: float | None
    model_path: str | None  # where the model was saved
    source: str  # "cli", "app" or "sweep"
    sweep: str | None  # label shared by the points of one sweep
    message: str | None  # why a run diverged or crashed
    pid: int | None
    host: str | None

    @property
    def model(self) -> dict:
        """The model settings (``ModelConfig`` fields)."""
        return self.settings.get("model", {})

    @property
    def train(self) -> dict:
        """The training settings (``TrainConfig`` fields)."""
        return self.settings.get("train", {})

    def flat_settings(self) -> dict[str, Any]:
        """``{"model.hidden_size": 512, "train.lr": 0.008, ...}``: for comparing runs."""
        return {f"{group}.{k}": v for group, d in self.settings.items() for k, v in d.items()}

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict of every field (what ``charlstm runs --json`` prints)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)  # holds arrays
class Curve:
    """One series of a run, each array (n,) in step order."""

    step: np.ndarray  # int64 optimizer step
    chars: np.ndarray  # int64 training characters seen
    time: np.ndarray  # float64 training seconds (elapsed_s)
    loss: np.ndarray  # float64 nats per character

    def __len__(self) -> int:
        return int(self.step.size)

    @staticmethod
    def empty() -> Curve:
        i, f = np.zeros(0, np.int64), np.zeros(0, np.float64)
        return Curve(i, i.copy(), f, f.copy())

    def thinned(self, max_points: int | None) -> Curve:
        """At most about ``max_points`` points: every k-th one, the last always kept."""
        n = len(self)
        if max_points is None or n <= max_points or max_points < 2:
            return self
        k = math.ceil(n / max_points)
        idx = np.arange(0, n, k)
        if idx[-1] != n - 1:
            idx = np.append(idx, n - 1)
        return Curve(self.step[idx], self.chars[idx], self.time[idx], self.loss[idx])


@dataclass(frozen=True, eq=False)
class Curves:
    """A run's training curve (a point per step) and validation curve (a point per eval)."""

    train: Curve
    val: Curve


@dataclass(frozen=True, eq=False)
class RunCopy:
    """A run and its curves taken out of one store to be added to another
    (``RunStore.export_run`` / ``RunStore.import_run``); picklable, so it can cross processes."""

    run: Run
    curves: Curves


def differing_keys(settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys whose values are not the same in every one of ``settings`` (a key one lacks
    counts as None), in the order they are first seen."""
    keys = dict.fromkeys(k for s in settings for k in s)
    return [k for k in keys if any(s.get(k) != settings[0].get(k) for s in settings[1:])]


def differing_settings(runs: list[Run]) -> dict[str, list[Any]]:
    """The settings whose values differ between ``runs``: ``{"train.lr": [0.002, 0.004], ...}``
    (one value per run, in the order given; a setting a run lacks is None). Sorted by name."""
    flats = [r.flat_settings() for r in runs]
    return {k: [f.get(k) for f in flats] for k in sorted(differing_keys(flats))}
