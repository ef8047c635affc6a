"""The run store: every training run, its settings and its curves, in one SQLite database.

One file (``runs.sqlite`` in the user's data folder, see ``default_db_path``) shared by the
command line and the app. Tables (schema version ``SCHEMA_VERSION``):

- ``runs``: one row per training session (id, editable name, text name and fingerprint, the
  settings as JSON ``{"model": {...}, "train": {...}}``, start and end time, status, progress,
  best and final validation loss, model path, the recording process's pid/host/lock token);
- ``points``: the curves, in chunks. A chunk is one batch of points of one series of one run
  (``kind`` 0 = training loss per step, 1 = validation loss per evaluation) stored as four
  little-endian blobs of n values each: step (int64), characters seen (int64), training wall time
  in seconds (float64) and loss in nats per character (float64). A recorder writes one chunk per
  series per batch (one transaction), and merges a run's chunks into one per series when the run
  ends, so loading 1,000 runs with their curves is one query and a ``np.frombuffer`` per blob
  (``benchmarks/bench_runs.py`` measures it);
- ``schema_version``: the version of the layout, upgraded by ``_MIGRATIONS`` when an older
  database is opened.

The database runs in WAL mode: the app can list runs while a command-line run writes its points.

A run that is recording holds an exclusive lock on a small file named by its ``lock`` token
(``<db>.locks/<token>.lock``). A run still marked "running" whose lock can be taken (its process
died, e.g. ``kill -9``) is marked "crashed" the next time the store is opened or listed; its curve
is there up to the last batch written.

``RunRecorder`` turns the trainer's events into rows. It never raises into the training loop: a
database that is corrupt, locked or read-only becomes one warning (``RunRecorder.warning``, and
the ``on_warning`` callback) and recording stops while training goes on.

Use, the same from the command line and the app (where the events are fed on the worker thread,
never the GUI thread)::

    recorder = RunRecorder.for_trainer(path_or_store, trainer, source="app", on_warning=warn)
    summary = yield from recorded(trainer.run(), recorder)   # or recorder(event) per event,
                                                             # then recorder.finish(summary=...)
    with RunStore.open(path) as store:
        runs = store.list_runs()                       # newest first, dead runs marked crashed
        curves = store.curves([r.id for r in runs])    # {id: Curves(train=Curve, val=Curve)}
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CharLSTMError, RunNotFoundError, RunStoreError, TrainingDiverged
from .events import EvalEvent, StepEvent, TrainSummary

SCHEMA_VERSION = 2
DB_NAME = "runs.sqlite"
HOME_ENV = "CHARLSTM_HOME"  # a folder: the run store is $CHARLSTM_HOME/runs.sqlite
STATUSES = ("running", "finished", "stopped", "diverged", "crashed")
KIND_TRAIN, KIND_VAL = 0, 1
FLUSH_INTERVAL_S = 2.0  # a recorder writes a batch at least this often while points arrive...
FLUSH_POINTS = 500  # ...or as soon as this many are waiting
BUSY_TIMEOUT_S = 2.0  # how long a write waits for another writer before it fails
_HOST = socket.gethostname()


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


# ---------------------------------------------------------------------------------------------
# Records


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
    chars_per_sec: float | None  # mean training throughput of the session
    elapsed_s: float  # training seconds in the model's life (as in StepEvent.elapsed_s)
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

    @property
    def duration_s(self) -> float | None:
        """Wall-clock seconds from start to end (None while running)."""
        return None if self.ended is None else max(0.0, self.ended - self.started)

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


def differing_settings(runs: list[Run]) -> dict[str, list[Any]]:
    """The settings whose values differ between ``runs``: ``{"train.lr": [0.002, 0.004], ...}``
    (one value per run, in the order given; a setting a run lacks is None). Sorted by name."""
    flats = [r.flat_settings() for r in runs]
    keys = sorted(set().union(*flats)) if flats else []
    out = {}
    for key in keys:
        values = [f.get(key) for f in flats]
        if any(v != values[0] for v in values[1:]):
            out[key] = values
    return out


# ---------------------------------------------------------------------------------------------
# Schema and migrations

# Version 1, kept here to test the migration: one row per point, fewer run columns.
SCHEMA_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    text_name TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    settings TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,
    steps INTEGER NOT NULL DEFAULT 0,
    best_val_loss REAL,
    model_path TEXT,
    pid INTEGER
);
CREATE TABLE points (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    step INTEGER NOT NULL,
    loss REAL NOT NULL
);
CREATE INDEX points_run ON points(run_id);
"""

_RUNS_V2 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    text_name TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    text_size INTEGER,
    text_encoding TEXT,
    settings TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,
    start_step INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    chars_seen INTEGER NOT NULL DEFAULT 0,
    chars_per_sec REAL,
    elapsed_s REAL NOT NULL DEFAULT 0,
    best_val_loss REAL,
    final_val_loss REAL,
    model_path TEXT,
    source TEXT NOT NULL DEFAULT 'cli',
    sweep TEXT,
    message TEXT,
    pid INTEGER,
    host TEXT,
    lock TEXT
);
"""

_POINTS_V2 = """
CREATE TABLE points (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    n INTEGER NOT NULL,
    step BLOB NOT NULL,
    chars BLOB NOT NULL,
    time BLOB NOT NULL,
    loss BLOB NOT NULL,
    PRIMARY KEY (run_id, kind, seq)
) WITHOUT ROWID;
"""

_SCHEMA_V2 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    + _RUNS_V2
    + _POINTS_V2
    + "CREATE INDEX runs_status ON runs(status);"
)

# how each blob of a chunk is stored, and the array type it is read into
_POINT_DTYPES = (("<i8", np.int64), ("<i8", np.int64), ("<f8", np.float64), ("<f8", np.float64))
_COLUMNS = [f.name for f in dataclasses.fields(Run)]
_SELECT_RUNS = f"SELECT {', '.join(_COLUMNS)} FROM runs"


def _migrate_1_to_2(con: sqlite3.Connection) -> None:
    """Version 1 kept one row per point and no throughput, chars seen or host. The runs keep
    their ids; the points become one chunk per series (characters seen = step x batch x length
    from the run's settings, wall time unknown: NaN)."""
    con.execute("ALTER TABLE runs RENAME TO runs_v1")
    con.execute("ALTER TABLE points RENAME TO points_v1")
    con.execute("DROP INDEX IF EXISTS points_run")
    for stmt in _statements(_RUNS_V2 + _POINTS_V2 + "CREATE INDEX runs_status ON runs(status)"):
        con.execute(stmt)  # not executescript: it would commit the migration half done
    con.execute(
        "INSERT INTO runs (id, name, text_name, text_sha256, settings, started, ended, status, "
        "steps, best_val_loss, model_path, pid, source) "
        "SELECT id, name, text_name, text_sha256, settings, started, ended, status, steps, "
        "best_val_loss, model_path, pid, 'cli' FROM runs_v1"
    )
    for run_id, settings in con.execute("SELECT id, settings FROM runs").fetchall():
        train = _loads(settings).get("train", {})
        per_step = int(train.get("batch_size", 0) or 0) * int(train.get("seq_len", 0) or 0)
        last_val = None
        for kind_name, kind in (("train", KIND_TRAIN), ("val", KIND_VAL)):
            rows = con.execute(
                "SELECT step, loss FROM points_v1 WHERE run_id = ? AND kind = ? ORDER BY rowid",
                (run_id, kind_name),
            ).fetchall()
            if not rows:
                continue
            step = np.array([r[0] for r in rows], np.int64)
            loss = np.array([r[1] for r in rows], np.float64)
            _insert_chunk(
                con, run_id, kind, 0, step, step * per_step, np.full(step.size, np.nan), loss
            )
            if kind == KIND_VAL:
                last_val = float(loss[-1])
        steps = con.execute("SELECT steps FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        con.execute(
            "UPDATE runs SET chars_seen = ?, final_val_loss = ? WHERE id = ?",
            (int(steps) * per_step, last_val, run_id),
        )
    con.execute("DROP TABLE points_v1")
    con.execute("DROP TABLE runs_v1")


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_1_to_2}


def _loads(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _blob(a: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()


def _insert_chunk(
    con: sqlite3.Connection,
    run_id: int,
    kind: int,
    seq: int,
    step: np.ndarray,
    chars: np.ndarray,
    time_s: np.ndarray,
    loss: np.ndarray,
) -> None:
    con.execute(
        "INSERT INTO points (run_id, kind, seq, n, step, chars, time, loss) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run_id,
            kind,
            seq,
            int(np.size(step)),
            _blob(step, "<i8"),
            _blob(chars, "<i8"),
            _blob(time_s, "<f8"),
            _blob(loss, "<f8"),
        ),
    )


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


# ---------------------------------------------------------------------------------------------
# Locks that tell a live run from a dead one


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting; False if it is held."""
    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


class _RunLock:
    """The lock file a recording run holds until it ends (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.token = uuid.uuid4().hex
        self.path = folder / f"{self.token}.lock"
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(self.fd):  # a fresh random name: nobody else can hold it
            os.close(self.fd)
            raise OSError(f"cannot lock {self.path}")

    def release(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # first, so that nobody mistakes the file for a dead run's
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = -1


# ---------------------------------------------------------------------------------------------
# The store


class RunStore:
    """The runs database. Thread-safe: one connection, used under a lock.

    Open it with ``RunStore.open(path)`` (``None``: ``default_db_path()``); errors are
    ``RunStoreError`` with a message that names the file and what to do.
    """

    def __init__(self, con: sqlite3.Connection, path: str) -> None:
        self._con = con
        self.path = path
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls, path: str | os.PathLike | None = None, *, timeout_s: float = BUSY_TIMEOUT_S
    ) -> RunStore:
        """Open (creating it and its folder if needed) the store at ``path``, upgrade an older
        schema, and mark dead "running" runs as "crashed". ``":memory:"`` gives a private one."""
        target = str(default_db_path() if path is None else os.fspath(path))
        if target != ":memory:":
            folder = Path(target).expanduser().resolve().parent
            target = str(Path(target).expanduser().resolve())
            if Path(target).is_dir():
                raise RunStoreError(
                    f"The runs database {target} is a folder; give a file name such as runs.sqlite."
                )
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise RunStoreError(
                    f"Cannot create the folder {folder} for the runs database: "
                    f"{e.strerror or e}. Set {HOME_ENV} or pass --runs-db to use another place."
                ) from None
        try:
            con = sqlite3.connect(
                target, timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise RunStoreError(
                f"Cannot open the runs database {target}: {_describe(e)}. Check the path and "
                f"its permissions, or use another with --runs-db or {HOME_ENV}."
            ) from None
        store = cls(con, target)
        try:
            store._prepare()
        except RunStoreError:
            con.close()
            raise
        except sqlite3.Error as e:
            con.close()
            raise store._error("open", e) from None
        with contextlib.suppress(sqlite3.Error):
            store.reconcile()  # a read-only store can still be listed
        return store

    def _error(self, doing: str, e: BaseException) -> RunStoreError:
        """A RunStoreError saying what went wrong with this file in words a user can act on."""
        msg = _describe(e)
        low = msg.lower()
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            hint = (
                "The file is damaged: move it aside (or delete it) to start a new one, or use "
                f"another with --runs-db or {HOME_ENV}."
            )
        elif "locked" in low or "busy" in low:
            hint = "Another program is writing to it; try again in a moment."
        elif "readonly" in low or "read-only" in low or "permission" in low:
            hint = (
                f"It is read-only; make it writable, or use another with --runs-db or {HOME_ENV}."
            )
        elif "disk" in low or "full" in low:
            hint = "Free some disk space."
        else:
            hint = f"Use another database with --runs-db or {HOME_ENV}."
        return RunStoreError(f"Cannot {doing} the runs database {self.path}: {msg}. {hint}")

    def _prepare(self) -> None:
        con = self._con
        con.execute("PRAGMA foreign_keys = ON")
        con.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
        version = self._version()
        if version == 0:
            with contextlib.suppress(sqlite3.Error):  # read-only files keep their journal mode
                con.execute("PRAGMA journal_mode = WAL")
            with self._transaction():
                if self._version() == 0:  # another process may have created it meanwhile
                    for stmt in _statements(_SCHEMA_V2):
                        con.execute(stmt)
                    con.execute(
                        "INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,)
                    )
            return
        if version > SCHEMA_VERSION:
            raise RunStoreError(
                f"The runs database {self.path} was written by a newer CharLSTM Studio (schema "
                f"{version}, this one reads up to {SCHEMA_VERSION}). Update the program, or use "
                f"another database with --runs-db or {HOME_ENV}."
            )
        with contextlib.suppress(sqlite3.Error):
            con.execute("PRAGMA journal_mode = WAL")
        if version < SCHEMA_VERSION:
            with self._transaction():
                v = self._version()
                while v < SCHEMA_VERSION:
                    _MIGRATIONS[v](con)
                    v += 1
                con.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _version(self) -> int:
        con = self._con
        has = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()[0]
        if not has:
            tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise RunStoreError(
                    f"{self.path} is an SQLite database but not a runs database; use another "
                    f"file with --runs-db or {HOME_ENV}."
                )
            return 0
        row = con.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: waits for other writers up front)."""
        with self._lock:
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._con.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def locks_folder(self) -> Path | None:
        """Where recording runs keep their lock files (None for an in-memory store)."""
        if self.path == ":memory:":
            return None
        return Path(self.path + ".locks")

    # ------------------------------------------------------------------ reading

    def list_runs(
        self,
        *,
        text_sha256: str | None = None,
        status: str | None = None,
        sweep: str | None = None,
    ) -> list[Run]:
        """Every run, newest first (optionally only those of one text, status or sweep).

        Dead "running" runs are marked "crashed" first (``reconcile``)."""
        with contextlib.suppress(sqlite3.Error):
            self.reconcile()
        where, args = [], []
        for column, value in (("text_sha256", text_sha256), ("status", status), ("sweep", sweep)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = (
            _SELECT_RUNS + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        )
        return [self._run(row) for row in self._read(sql, args)]

    def get(self, run_id: int) -> Run:
        """The run ``run_id``; ``RunNotFoundError`` if there is none."""
        with contextlib.suppress(sqlite3.Error):
            self.reconcile()
        rows = self._read(_SELECT_RUNS + " WHERE id = ?", (int(run_id),))
        if not rows:
            raise RunNotFoundError(
                f"There is no run {run_id} in {self.path}; 'charlstm runs' lists them."
            )
        return self._run(rows[0])

    def curves(
        self, run_ids: Iterable[int] | None = None, *, max_points: int | None = None
    ) -> dict[int, Curves]:
        """The curves of the given runs (all runs when None), by run id, in one query.

        ``max_points`` thins each series to about that many points (every k-th, last kept).
        """
        if run_ids is None:
            rows = self._read(
                "SELECT run_id, kind, n, step, chars, time, loss FROM points "
                "ORDER BY run_id, kind, seq"
            )
            ids: list[int] = sorted({r[0] for r in rows})
        else:
            ids = [int(i) for i in run_ids]
            rows = []
            for start in range(0, len(ids), 500):  # SQLite limits the number of parameters
                part = ids[start : start + 500]
                rows += self._read(
                    "SELECT run_id, kind, n, step, chars, time, loss FROM points WHERE run_id IN "
                    f"({', '.join('?' * len(part))}) ORDER BY run_id, kind, seq",
                    part,
                )
        parts: dict[tuple[int, int], list[tuple]] = {}
        for run_id, kind, _n, step, chars, t, loss in rows:
            parts.setdefault((run_id, kind), []).append((step, chars, t, loss))
        out: dict[int, Curves] = {}
        for run_id in ids:
            series = []
            for kind in (KIND_TRAIN, KIND_VAL):
                chunks = parts.get((run_id, kind))
                curve = _curve_from_chunks(chunks) if chunks else Curve.empty()
                series.append(curve.thinned(max_points))
            out[run_id] = Curves(train=series[0], val=series[1])
        return out

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._con.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as e:
                raise self._error("read", e) from None

    @staticmethod
    def _run(row: tuple) -> Run:
        d = dict(zip(_COLUMNS, row, strict=True))
        d["settings"] = _loads(d["settings"])
        d["source"] = d["source"] or "cli"
        return Run(**d)

    # ------------------------------------------------------------------ changing

    def rename(self, run_id: int, name: str) -> None:
        """Give run ``run_id`` a new name (stripped; not empty)."""
        name = name.strip()
        if not name:
            raise RunStoreError("A run's name cannot be empty.")
        self.get(run_id)
        self._write("rename a run in", "UPDATE runs SET name = ? WHERE id = ?", (name, int(run_id)))

    def delete(self, run_id: int, *, with_model: bool = False) -> str | None:
        """Remove run ``run_id`` and its curves. The model file stays unless ``with_model``;
        returns the path of the model file removed, if one was. A running run cannot be
        deleted (stop it first)."""
        run = self.get(run_id)
        if run.status == "running":
            raise RunStoreError(
                f"Run {run_id} ({run.name}) is still training; stop it before deleting it."
            )
        self._write("delete a run from", "DELETE FROM runs WHERE id = ?", (int(run_id),))
        if with_model and run.model_path and os.path.isfile(run.model_path):
            try:
                os.unlink(run.model_path)
            except OSError as e:
                raise RunStoreError(
                    f"Run {run_id} was deleted but its model {run.model_path} could not be: "
                    f"{e.strerror or e}."
                ) from None
            return run.model_path
        return None

    def _write(self, doing: str, sql: str, args: tuple) -> None:
        try:
            with self._transaction() as con:
                con.execute(sql, args)
        except sqlite3.Error as e:
            raise self._error(doing, e) from None

    def reconcile(self) -> list[int]:
        """Mark "running" runs whose process is gone as "crashed"; returns their ids.

        A run recorded on this host is alive while its lock file is locked (or, without a lock
        token, while its pid exists). Runs of other hosts are left alone: there is no telling.
        """
        rows = self._read("SELECT id, pid, host, lock FROM runs WHERE status = 'running'")
        dead: list[int] = []
        for run_id, pid, host, token in rows:
            if host != _HOST:
                continue
            if token and self.locks_folder is not None:
                if not self._lock_is_dead(self.locks_folder / f"{token}.lock"):
                    continue
            elif pid is not None and _pid_alive(int(pid)):
                continue
            dead.append(run_id)
        if not dead:
            return []
        with self._transaction() as con:
            for run_id in dead:
                con.execute(
                    "UPDATE runs SET status = 'crashed', ended = coalesce(ended, ?), "
                    "message = coalesce(message, ?) WHERE id = ? AND status = 'running'",
                    (time.time(), "The process recording this run ended without finishing it "
                     "(killed, or the computer stopped).", run_id),
                )  # fmt: skip
        return dead

    @staticmethod
    def _lock_is_dead(path: Path) -> bool:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return True
        except OSError:
            return False  # cannot tell
        try:
            if not _try_lock(fd):
                return False
            with contextlib.suppress(OSError):
                os.unlink(path)
            return True
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ used by RunRecorder

    def _create_run(self, fields: dict[str, Any]) -> int:
        cols = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        with self._transaction() as con:
            cur = con.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(fields.values()))
            return int(cur.lastrowid)

    def _append(
        self,
        run_id: int,
        chunks: list[tuple[int, int, tuple[np.ndarray, ...]]],
        progress: dict[str, Any],
        finish: bool = False,
    ) -> None:
        """One transaction: the new chunks, the run's progress columns and, when ``finish``,
        the run's chunks merged into one per series."""
        with self._transaction() as con:
            for kind, seq, arrays in chunks:
                _insert_chunk(con, run_id, kind, seq, *arrays)
            if progress:
                sets = ", ".join(f"{k} = ?" for k in progress)
                con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*progress.values(), run_id))
            if finish:
                _compact(con, run_id)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _curve_from_chunks(chunks: list[tuple]) -> Curve:
    """A Curve from chunk rows (step, chars, time, loss blobs); arrays may be read-only."""
    cols = []
    for i, (stored, native) in enumerate(_POINT_DTYPES):
        arrays = [np.frombuffer(c[i], dtype=stored) for c in chunks]
        a = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        cols.append(a.astype(native, copy=False))
    return Curve(*cols)


def _compact(con: sqlite3.Connection, run_id: int) -> None:
    """Merge a run's chunks into one per series (fast loading of finished runs)."""
    for kind in (KIND_TRAIN, KIND_VAL):
        rows = con.execute(
            "SELECT step, chars, time, loss FROM points WHERE run_id = ? AND kind = ? ORDER BY seq",
            (run_id, kind),
        ).fetchall()
        if len(rows) < 2:
            continue
        c = _curve_from_chunks(rows)
        con.execute("DELETE FROM points WHERE run_id = ? AND kind = ?", (run_id, kind))
        _insert_chunk(con, run_id, kind, 0, c.step, c.chars, c.time, c.loss)


# ---------------------------------------------------------------------------------------------
# Recording a run


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
        self._lock: _RunLock | None = None
        self._mutex = threading.Lock()
        self._train: list[tuple[int, int, float, float]] = []
        self._val: list[tuple[int, int, float, float]] = []
        self._seq = {KIND_TRAIN: 0, KIND_VAL: 0}
        self._last_flush = time.monotonic()
        self._steps = start_step
        self._chars = 0
        self._elapsed = start_elapsed_s
        self._cps_sum = 0.0
        self._cps_n = 0
        self._best: float | None = None
        self._final: float | None = None
        self._model_path = os.path.abspath(model_path) if model_path else None
        mc, tc = _as_dict(model_config), _as_dict(train_config)
        self._per_step = int(tc.get("batch_size", 0)) * int(tc.get("seq_len", 0))
        self._chars = start_step * self._per_step
        if name is None:
            stem = Path(str(text.get("name", "text"))).stem or "text"
            name = f"{stem} {mc.get('num_layers', '?')}x{mc.get('hidden_size', '?')}"
        doing = "open"
        try:
            self._store = store if isinstance(store, RunStore) else RunStore.open(store)
            doing = "write to"
            folder = self._store.locks_folder
            self._lock = _RunLock(folder) if folder is not None else None
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
                    "model_path": self._model_path,
                    "source": source,
                    "sweep": sweep,
                    "pid": os.getpid(),
                    "host": _HOST,
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
        """A recorder for ``trainer`` (a ``core.trainer.Trainer``): text, settings and starting
        step taken from it; ``model_path`` defaults to its checkpoint path."""
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
    def mean_chars_per_sec(self) -> float | None:
        """Mean training throughput of the steps seen so far (None before the first)."""
        return self._cps_sum / self._cps_n if self._cps_n else None

    @property
    def store_path(self) -> str | None:
        return self._store.path if self._store is not None else None

    # ------------------------------------------------------------------ events

    def __call__(self, event: Any) -> None:
        """Record one trainer event (steps and evaluations; others are ignored). Never raises."""
        if not self.active:
            return
        if isinstance(event, StepEvent):
            self._train.append((event.step, event.chars_seen, event.elapsed_s, event.loss))
            self._steps, self._chars, self._elapsed = event.step, event.chars_seen, event.elapsed_s
            if math.isfinite(event.chars_per_sec):
                self._cps_sum += event.chars_per_sec
                self._cps_n += 1
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
                "chars_per_sec": self.mean_chars_per_sec,
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
    ) -> None:
        """End the run: write what is waiting, the status (``status_of(summary, error)`` unless
        given), end time and model path, in one transaction. Idempotent; never raises."""
        if self.finished:
            return
        status = status or status_of(summary, error)
        if status not in STATUSES:
            status = "crashed"
        if summary is not None:
            self._steps = summary.steps
            self._best = summary.best_val_loss if summary.best_val_loss is not None else self._best
            model_path = model_path or summary.checkpoint_path
        if model_path:
            self._model_path = os.path.abspath(model_path)
        message = None
        if error is not None and status in ("diverged", "crashed"):
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
            self._store.close()

    def close(self) -> None:
        """``finish(status="stopped")`` if the run was not finished (a safety net)."""
        if not self.finished:
            self.finish(status="stopped")

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if not self.finished:
            self.finish(error=exc, status=None if exc is not None else "stopped")

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
            what = f"Cannot {doing} {where}: {_describe(e)}."
        self.warning = (
            f"{what} This run is not recorded; training goes on and the model is saved as usual."
        )
        if self._lock is not None:
            self._lock.release()
        if self._on_warning is not None:
            with contextlib.suppress(Exception):
                self._on_warning(self.warning)


def recorded(
    events: Generator[Any, None, TrainSummary], recorder: RunRecorder
) -> Generator[Any, None, TrainSummary]:
    """``trainer.run()`` with every event passed to ``recorder`` on the way, and the recorder
    finished when the run returns (its summary), raises (diverged, crashed, Ctrl-C) or is
    closed (stopped). Yields the same events and returns the same summary."""
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                recorder.finish(summary=stop.value)
                return stop.value
            recorder(event)
            yield event
    except BaseException as e:
        recorder.finish(error=e)
        raise
