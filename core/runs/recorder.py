"""Recording a run: :class:`RunRecorder` turns the trainer's events into rows of the run
store, buffered and written one batch per transaction, and never raises into the training
loop (a store that cannot be written becomes one warning). When the run ends it checks that the
run is really in the store's file: one deleted, replaced or damaged during the run is a warning
too, not a run id that points at nothing. The training session (charlstm_core.training.session)
is what feeds and finishes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import CharLSTMError, RunStoreError, TrainingDiverged
from ..events import EvalEvent, StepEvent, TrainSummary
from .naming import default_name
from .records import (
    BUSY_TIMEOUT_S,
    FLUSH_INTERVAL_S,
    FLUSH_POINTS,
    HOST,
    KIND_TRAIN,
    KIND_VAL,
    STATUSES,
)
from .store import RunLock, RunStore, describe


def _as_dict(config: Any) -> dict:
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    return dict(config)


def status_of(summary: TrainSummary | None = None, error: BaseException | None = None) -> str:
    """The status a run ends with: "finished" (completed), "stopped" (asked to stop, Ctrl-C),
    "diverged" (``TrainingDiverged``) or "crashed" (any other exception)."""
    if error is not None:
        if isinstance(error, TrainingDiverged):
            return "diverged"
        if isinstance(error, (KeyboardInterrupt, GeneratorExit)):
            return "stopped"
        return "crashed"
    if summary is not None and summary.reason == "stopped":
        return "stopped"
    return "finished"


class RunRecorder:
    """Records one training session into a ``RunStore`` from the trainer's events.

    Create it before the first step, hand it every event (``recorder(event)``), then call
    ``finish(summary=...)`` or ``finish(error=...)``. Points are buffered and written one batch
    per transaction, every ``flush_interval_s`` or ``flush_points`` points, from the thread that
    feeds the events (the trainer's thread in the app). No method raises: when the database
    cannot be written, ``warning`` holds one sentence saying so (also passed once to
    ``on_warning``), recording stops and training goes on.

    ``store`` is a ``RunStore``, a path (opened here, closed by ``finish``) or None for
    ``default_db_path()``.
    """

    def __init__(
        self,
        store: RunStore | str | os.PathLike | None,
        *,
        text: dict,
        model_config: Any,
        train_config: Any,
        model_path: str | None = None,
        name: str | None = None,
        source: str = "cli",
        sweep: str | None = None,
        start_step: int = 0,
        start_elapsed_s: float = 0.0,
        on_warning: Callable[[str], None] | None = None,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        flush_points: int = FLUSH_POINTS,
    ) -> None:
        self.warning: str | None = None
        self.run_id: int | None = None
        self.finished = False
        self._on_warning = on_warning
        self._flush_interval_s = flush_interval_s
        self._flush_points = max(1, flush_points)
        self._store: RunStore | None = None
        self._owns_store = not isinstance(store, RunStore)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the store's file
        self._lock: RunLock | None = None
        self._mutex = threading.Lock()
        self._train: list[tuple[int, int, float, float]] = []
        self._val: list[tuple[int, int, float, float]] = []
        self._seq = {KIND_TRAIN: 0, KIND_VAL: 0}
        self._last_flush = time.monotonic()
        self._steps = start_step
        self._chars = 0
        self._elapsed = start_elapsed_s
        self._duration = 0.0  # the run's duration so far (charlstm_core.training.measures)
        self._cps: float | None = None  # the run's chars/s so far (idem)
        self._best: float | None = None
        self._final: float | None = None
        self._model_path = os.path.abspath(model_path) if model_path else None
        mc, tc = _as_dict(model_config), _as_dict(train_config)
        self._per_step = int(tc.get("batch_size", 0)) * int(tc.get("seq_len", 0))
        self._chars = start_step * self._per_step
        if name is None:
            name = default_name(str(text.get("name", "text")), mc)
        doing = "open"
        try:
            self._store = store if isinstance(store, RunStore) else RunStore.open(store)
            self._identity = _identity(self._store.path)
            doing = "write to"
            folder = self._store.locks_folder
            self._lock = RunLock(folder) if folder is not None else None
            self.run_id = self._store._create_run(
                {
                    "name": name,
                    "text_name": str(text.get("name", "")),
                    "text_sha256": str(text.get("sha256", "")),
                    "text_size": text.get("size"),
                    "text_encoding": text.get("encoding"),
                    "settings": json.dumps({"model": mc, "train": tc}),
                    "started": time.time(),
                    "status": "running",
                    "start_step": start_step,
                    "steps": start_step,
                    "chars_seen": self._chars,
                    "elapsed_s": start_elapsed_s,
                    "duration_s": 0.0,
                    "model_path": self._model_path,
                    "source": source,
                    "sweep": sweep,
                    "pid": os.getpid(),
                    "host": HOST,
                    "lock": self._lock.token if self._lock is not None else None,
                }
            )
        except Exception as e:  # noqa: BLE001 - never into the training loop
            self._fail(doing, e)

    @classmethod
    def for_trainer(
        cls,
        store: RunStore | str | os.PathLike | None,
        trainer: Any,
        *,
        model_path: str | None = None,
        **kwargs: Any,
    ) -> RunRecorder:
        """A recorder for ``trainer`` (a ``charlstm_core.training.trainer.Trainer``): text,
        settings and
        starting step taken from it; ``model_path`` defaults to its checkpoint path."""
        return cls(
            store,
            text=trainer.corpus.fingerprint,
            model_config=trainer.model_config,
            train_config=trainer.train_config,
            model_path=model_path or trainer.checkpoint_path,
            start_step=trainer.step,
            start_elapsed_s=trainer.elapsed_s,
            **kwargs,
        )

    @property
    def active(self) -> bool:
        """True while events are being recorded (False after a failure or ``finish``)."""
        return self.run_id is not None and self.warning is None and not self.finished

    @property
    def recorded_id(self) -> int | None:
        """The run's id when it is (being) recorded without trouble, else None."""
        return self.run_id if self.warning is None else None

    @property
    def chars_per_sec(self) -> float | None:
        """The run's chars/s at the last step seen (None before the first)."""
        return self._cps

    # ------------------------------------------------------------------ events

    def __call__(self, event: Any) -> None:
        """Record one trainer event (steps and evaluations; others are ignored). Never raises."""
        if not self.active:
            return
        if isinstance(event, StepEvent):
            self._train.append((event.step, event.chars_seen, event.elapsed_s, event.loss))
            self._steps, self._chars, self._elapsed = event.step, event.chars_seen, event.elapsed_s
            self._duration = event.duration_s
            if math.isfinite(event.chars_per_sec):
                self._cps = event.chars_per_sec
        elif isinstance(event, EvalEvent):
            chars = event.step * self._per_step
            self._val.append((event.step, chars, event.elapsed_s, event.val_loss))
            self._best, self._final = event.best_val_loss, event.val_loss
        else:
            return
        if (
            len(self._train) + len(self._val) >= self._flush_points
            or time.monotonic() - self._last_flush >= self._flush_interval_s
        ):
            self.flush()

    record = __call__

    def flush(self, *, finish: dict[str, Any] | None = None) -> None:
        """Write the waiting points (and, with ``finish``, the final columns) in one
        transaction. Never raises."""
        if self.run_id is None or self.warning is not None or self._store is None:
            return
        with self._mutex:
            chunks = []
            for kind, pending in ((KIND_TRAIN, self._train), (KIND_VAL, self._val)):
                if pending:
                    a = np.array(pending, dtype=np.float64)  # (n, 4) step, chars, time, loss
                    arrays = (
                        a[:, 0].astype(np.int64),
                        a[:, 1].astype(np.int64),
                        a[:, 2],
                        a[:, 3],
                    )
                    chunks.append((kind, self._seq[kind], arrays))
            progress: dict[str, Any] = {
                "steps": self._steps,
                "chars_seen": self._chars,
                "elapsed_s": self._elapsed,
                "duration_s": self._duration,
                "chars_per_sec": self._cps,
                "best_val_loss": self._best,
                "final_val_loss": self._final,
            }
            if finish:
                progress.update(finish)
            try:
                self._store._append(self.run_id, chunks, progress, finish=bool(finish))
            except Exception as e:  # noqa: BLE001 - never into the training loop
                self._fail("write to", e)
                return
            for kind, _, _ in chunks:
                self._seq[kind] += 1
            self._train.clear()
            self._val.clear()
            self._last_flush = time.monotonic()

    def finish(
        self,
        *,
        summary: TrainSummary | None = None,
        error: BaseException | None = None,
        status: str | None = None,
        model_path: str | None = None,
        message: str | None = None,
        duration_s: float | None = None,
        chars_per_sec: float | None = None,
    ) -> None:
        """End the run: write what is waiting, the status (``status_of(summary, error)`` unless
        given), end time, model path, ``message`` (by default the error's, for a run that
        diverged or crashed) and the run's final duration and chars/s (by default the
        summary's, else the last step's), in one transaction; then check that the run is in the
        store's file (``warning`` says when not). Idempotent; never raises."""
        if self.finished:
            return
        status = status or status_of(summary, error)
        if status not in STATUSES:
            status = "crashed"
        if summary is not None:
            self._steps = summary.steps
            self._best = summary.best_val_loss if summary.best_val_loss is not None else self._best
            model_path = model_path or summary.checkpoint_path
            if duration_s is None and summary.duration_s:
                duration_s, chars_per_sec = summary.duration_s, summary.chars_per_sec
        if duration_s is not None:
            self._duration = float(duration_s)
            self._cps = chars_per_sec if chars_per_sec is not None else self._cps
        if model_path:
            self._model_path = os.path.abspath(model_path)
        if message is None and error is not None and status in ("diverged", "crashed"):
            message = (
                str(error)
                if isinstance(error, CharLSTMError)
                else (f"{type(error).__name__}: {error}")
            )
        self.flush(
            finish={
                "status": status,
                "ended": time.time(),
                "model_path": self._model_path,
                "message": message,
            }
        )
        self.finished = True
        if self._lock is not None:
            self._lock.release()
        if self._owns_store and self._store is not None:
            self._store.close()  # its write-ahead log goes into the file: read that back
        self._check_kept(status)

    def close(self) -> None:
        """``finish(status="stopped")`` if the run was not finished (a safety net)."""
        if not self.finished:
            self.finish(status="stopped")

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not self.finished:
            self.finish(error=exc, status=None if exc is not None else "stopped")

    def _check_kept(self, status: str) -> None:
        """After the last write (and the store closed): is the run in the file the store was
        opened from? Read back through a new connection, so that a file deleted (written on
        unseen), replaced or damaged during the run is noticed."""
        if self.run_id is None or self.warning is not None or self._store is None:
            return
        path = self._store.path
        if path == ":memory:":
            return
        where = f"The runs database {path}"
        if _identity(path) is None:
            self._lost(f"{where} was deleted during this run.")
            return
        if self._identity is not None and _identity(path) != self._identity:
            self._lost(f"{where} was replaced by another file during this run.")
            return
        try:
            uri = f"file:{urllib.parse.quote(path)}?mode=rw"  # never creates a new file
            con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
            try:
                row = con.execute("SELECT status FROM runs WHERE id = ?", (self.run_id,)).fetchone()
            finally:
                con.close()
        except sqlite3.Error as e:
            self._lost(
                f"{where} cannot be read back ({describe(e)}): it was damaged during this run."
            )
            return
        if row is None or row[0] != status:
            self._lost(
                f"{where} no longer holds run {self.run_id}: it was changed during this run."
            )

    def _lost(self, what: str) -> None:
        self.warning = (
            f"{what} This run is not recorded (its model is saved as usual); check the file, or "
            "use another with --runs-db or CHARLSTM_HOME."
        )
        if self._on_warning is not None:
            with contextlib.suppress(Exception):
                self._on_warning(self.warning)

    # ------------------------------------------------------------------ failure

    def _fail(self, doing: str, e: BaseException) -> None:
        if self.warning is not None:
            return
        if isinstance(e, RunStoreError):
            what = str(e)
        elif isinstance(e, sqlite3.Error) and self._store is not None:
            what = str(self._store._error(doing, e))
        else:
            where = self._store.path if self._store is not None else "the runs database"
            what = f"Cannot {doing} {where}: {describe(e)}."
        self.warning = (
            f"{what} This run is not recorded; training goes on and the model is saved as usual."
        )
        if self._lock is not None:
            self._lock.release()
        if self._on_warning is not None:
            with contextlib.suppress(Exception):
                self._on_warning(self.warning)


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
