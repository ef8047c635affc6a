"""The run store (:class:`RunStore`): opening (creating, upgrading, WAL mode), queries,
renaming and deleting runs, and marking dead "running" runs "crashed" (their liveness lock,
:class:`RunLock`, can be taken). Errors are RunStoreError in words a user can act on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CharLSTMError, RunNotFoundError, RunStoreError
from ..files import writer
from ..files.proclock import pid_alive, try_lock
from ..files.text import display_path, inert
from .naming import is_automatic, model_file_name
from .records import (
    BUSY_TIMEOUT_S,
    HOME_ENV,
    HOST,
    KIND_TRAIN,
    KIND_VAL,
    STATUSES,
    Curve,
    Curves,
    Run,
    RunCopy,
    default_db_path,
)
from .schema import (
    COLUMNS,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    SELECT_RUNS,
    compact,
    curve_from_chunks,
    insert_chunk,
    loads,
    statements,
)


def describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1  # SQLite's INTEGER
_NUMBER = (int, float)
_TYPE_OK = {  # what each column of a row may hold, checked before it becomes a Run
    f.name: {
        "int": lambda v: isinstance(v, int),
        "int | None": lambda v: v is None or isinstance(v, int),
        "float": lambda v: isinstance(v, _NUMBER),
        "float | None": lambda v: v is None or isinstance(v, _NUMBER),
        "str": lambda v: isinstance(v, str),
        "str | None": lambda v: v is None or isinstance(v, str),
        "dict": lambda v: v is None or isinstance(v, str),  # settings: JSON text
    }[str(f.type)]
    for f in dataclasses.fields(Run)
}


class DamagedRow(RunStoreError):
    """A row of ``runs`` whose column ``column`` holds a value of the wrong type."""

    def __init__(self, run_id: Any, column: str, value: Any) -> None:
        shown = inert(repr(value))
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        super().__init__(
            f"The record of run {inert(str(run_id))} is damaged: its {column} is {shown} "
            f"({type(value).__name__}), which a run never has"
        )
        self.run_id = run_id
        self.column = column


def _check_store_file(target: str) -> None:
    """The one guarded writer's rule for the run store (``writer.Kind.RUN_STORE``): an SQLite
    file, an empty file or a new name; never a model, a text, a device (a link to /dev/null)."""
    try:
        writer.check_target(target, writer.Kind.RUN_STORE)
    except RunStoreError as e:
        if os.path.isfile(target):  # not SQLite: another file, or a store damaged past its header
            raise RunStoreError(
                f"{e} It is left as it is. If it was your runs database, it is damaged: move it "
                f"aside (or delete it) to start a new one; or use another with --runs-db or "
                f"{HOME_ENV}."
            ) from None
        raise


class RunLock:
    """The lock file a recording run holds until it ends (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.token = uuid.uuid4().hex
        self.path = folder / f"{self.token}.lock"
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not try_lock(self.fd, unsupported=False):  # a fresh random name: nobody else can hold it
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


class RunStore:
    """The runs database. Thread-safe: one connection, used under a lock.

    Open it with ``RunStore.open(path)`` (``None``: ``default_db_path()``); errors are
    ``RunStoreError`` with a message that names the file and what to do.
    """

    def __init__(self, con: sqlite3.Connection, path: str) -> None:
        self._con = con
        self.path = path
        self.damaged: list[DamagedRow] = []  # rows the last list_runs skipped
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
            _check_store_file(target)
        try:
            con = sqlite3.connect(
                target, timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise RunStoreError(
                f"Cannot open the runs database {target}: {describe(e)}. Check the path and "
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
        msg = describe(e)
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
                    for stmt in statements(SCHEMA):
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
                    MIGRATIONS[v](con)
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
        sql = SELECT_RUNS + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        runs, self.damaged = [], []
        for row in self._read(sql, args):
            try:
                runs.append(self._run(row))
            except DamagedRow as e:
                self.damaged.append(e)
        return runs

    def get(self, run_id: int) -> Run:
        """The run ``run_id``; ``RunNotFoundError`` if there is none."""
        with contextlib.suppress(sqlite3.Error):
            self.reconcile()
        rows = [] if not _ID_MIN <= int(run_id) <= _ID_MAX else (
            self._read(SELECT_RUNS + " WHERE id = ?", (int(run_id),))
        )  # fmt: skip
        if not rows:
            raise RunNotFoundError(
                f"There is no run {run_id} in {self.path}; 'charlstm runs' lists them."
            )
        try:
            return self._run(rows[0])
        except DamagedRow as e:
            raise RunStoreError(f"{e} in {self.path}.") from None

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
                curve = curve_from_chunks(chunks) if chunks else Curve.empty()
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
        """The Run of one row; DamagedRow naming the first column whose value has the wrong type
        (a file edited by hand or by another program)."""
        d = dict(zip(COLUMNS, row, strict=True))
        for name, value in d.items():
            if not _TYPE_OK[name](value) or (name == "status" and value not in STATUSES):
                raise DamagedRow(d.get("id"), name, value)
        d["settings"] = loads(d["settings"])
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

    def model_saved(self, run_id: int, path: str | os.PathLike) -> Run:
        """Run ``run_id``'s model was saved to ``path``: that file is now its model file, and
        a run whose name is still automatic takes the file's name (``naming``). Returns the
        run as it now is."""
        run = self.get(run_id)
        model_path: str | None = os.path.abspath(os.fspath(path))
        name = run.name
        if is_automatic(run.name, run.text_name, run.model, run.model_path):
            name = model_file_name(display_path(model_path))
        try:
            model_path.encode("utf-8")
        except UnicodeEncodeError:  # a Linux name that is not UTF-8: SQLite cannot keep it
            model_path = run.model_path
        self._write(
            "record a saved model in",
            "UPDATE runs SET model_path = ?, name = ? WHERE id = ?",
            (model_path, name, int(run_id)),
        )
        return self.get(run_id)

    def delete(
        self, run_id: int, *, with_model: bool = False, along: Iterable[int] = ()
    ) -> str | None:
        """Remove run ``run_id`` and its curves. The model file stays unless ``with_model``;
        returns the path of the model file removed, if one was. A running run cannot be
        deleted (stop it first); with ``with_model`` nothing is deleted unless the model file may
        go (:meth:`model_problem`; ``along``: the ids of runs deleted together with this one)."""
        run = self.get(run_id)
        if run.status == "running":
            raise RunStoreError(
                f"Run {run_id} ({inert(run.name)}) is still training; stop it before deleting it."
            )
        problem = self.model_problem(run, along) if with_model else None
        if problem:
            raise RunStoreError(problem)
        self._write("delete a run from", "DELETE FROM runs WHERE id = ?", (int(run_id),))
        if with_model and run.model_path and os.path.lexists(run.model_path):
            try:
                return writer.remove(run.model_path, writer.Kind.MODEL)
            except CharLSTMError as e:
                raise RunStoreError(
                    f"Run {run_id} was deleted but its model was not: {e}"
                ) from None
        return None

    def model_problem(self, run: Run, along: Iterable[int] = ()) -> str | None:
        """Why the model file of ``run`` must not be deleted with it (None: it may, or there is
        none): another run, not among ``along``, names the same file (a ``--resume`` or another
        run saved to it later and owns it now), it is no longer a model, or a process holds it."""
        path = run.model_path
        if not path or not os.path.lexists(path):
            return None
        skip = {run.id, *map(int, along)}
        real = os.path.realpath(path)
        rows = self._read("SELECT id, name, status, model_path FROM runs")
        users = [
            (i, n, st)
            for i, n, st, p in rows
            if i not in skip and isinstance(p, str) and os.path.realpath(p) == real
        ]
        if users:
            i, name, status = users[0]
            more = f" and {len(users) - 1} other run(s)" if len(users) > 1 else ""
            live = ", which is still training" if status == "running" else ""
            return (
                f"Run {run.id}'s model {display_path(path)} is also the model of run {i} "
                f"({inert(name)}){more}{live}; deleting the file would take it from that run. "
                f"Delete run {run.id} without its model, or delete run {i} with it."
            )
        try:
            writer.remove(path, writer.Kind.MODEL, check_only=True)
        except CharLSTMError as e:
            return f"Run {run.id}'s model is not deleted: {e}"
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
            if host != HOST:
                continue
            if token and self.locks_folder is not None:
                if not self._lock_is_dead(self.locks_folder / f"{token}.lock"):
                    continue
            elif pid is not None and pid_alive(int(pid)):
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
            if not try_lock(fd, unsupported=False):
                return False
            with contextlib.suppress(OSError):
                os.unlink(path)
            return True
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ moving runs between stores

    def export_run(self, run_id: int) -> RunCopy:
        """Run ``run_id`` and its whole curves, to be added to another store (``import_run``):
        how a sweep point trained on a cluster worker reaches the run store of the computer that
        started the sweep."""
        run = self.get(run_id)
        return RunCopy(run=run, curves=self.curves([run.id])[run.id])

    def import_run(self, copy: RunCopy, **changes: Any) -> int:
        """Add ``copy`` (from ``export_run`` of another store) as a new run of this one, with
        ``changes`` to its fields (say ``model_path`` where its model is kept here, ``message``);
        returns its id here. Its host and process stay those that trained it, so a run still
        "running" elsewhere is never marked crashed here; an unfinished one is refused."""
        fields = {k: v for k, v in copy.run.to_json().items() if k != "id"}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"not run fields: {sorted(unknown)}")
        fields.update(changes, lock=None)
        if fields["status"] == "running":
            raise RunStoreError(f"Run {copy.run.name!r} is still training; it cannot be copied.")
        fields["settings"] = json.dumps(fields["settings"])
        cols = ", ".join(fields)
        try:
            with self._transaction() as con:
                cur = con.execute(
                    f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(fields))})",
                    tuple(fields.values()),
                )
                run_id = int(cur.lastrowid)
                for kind, curve in ((KIND_TRAIN, copy.curves.train), (KIND_VAL, copy.curves.val)):
                    if len(curve):
                        insert_chunk(
                            con, run_id, kind, 0, curve.step, curve.chars, curve.time, curve.loss
                        )
        except sqlite3.Error as e:
            raise self._error("add a run to", e) from None
        return run_id

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
                insert_chunk(con, run_id, kind, seq, *arrays)
            if progress:
                sets = ", ".join(f"{k} = ?" for k in progress)
                con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*progress.values(), run_id))
            if finish:
                compact(con, run_id)
