"""The run store's SQLite layout (schema version ``SCHEMA_VERSION``), its migrations from older
versions, and the chunk format of the curves: four little-endian blobs per chunk (step int64,
characters seen int64, wall time float64, loss float64; ``POINT_DTYPES``).

Version 3 added a run's duration (``duration_s``, charlstm_core.training.measures) and made its
``chars_per_sec`` the characters it trained over that duration.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable

import numpy as np

from .records import KIND_TRAIN, KIND_VAL, Curve, Run

SCHEMA_VERSION = 3

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

SCHEMA_V2 = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    + _RUNS_V2
    + _POINTS_V2
    + "CREATE INDEX runs_status ON runs(status);"
)
_ADD_DURATION = "ALTER TABLE runs ADD COLUMN duration_s REAL"
SCHEMA = SCHEMA_V2 + _ADD_DURATION + ";"  # what a new store is made with

# how each blob of a chunk is stored, and the array type it is read into
POINT_DTYPES = (("<i8", np.int64), ("<i8", np.int64), ("<f8", np.float64), ("<f8", np.float64))
COLUMNS = [f.name for f in dataclasses.fields(Run)]
SELECT_RUNS = f"SELECT {', '.join(COLUMNS)} FROM runs"


def _migrate_1_to_2(con: sqlite3.Connection) -> None:
    """Version 1 kept one row per point and no throughput, chars seen or host. The runs keep
    their ids; the points become one chunk per series (characters seen = step x batch x length
    from the run's settings, wall time unknown: NaN)."""
    con.execute("ALTER TABLE runs RENAME TO runs_v1")
    con.execute("ALTER TABLE points RENAME TO points_v1")
    con.execute("DROP INDEX IF EXISTS points_run")
    for stmt in statements(_RUNS_V2 + _POINTS_V2 + "CREATE INDEX runs_status ON runs(status)"):
        con.execute(stmt)  # not executescript: it would commit the migration half done
    con.execute(
        "INSERT INTO runs (id, name, text_name, text_sha256, settings, started, ended, status, "
        "steps, best_val_loss, model_path, pid, source) "
        "SELECT id, name, text_name, text_sha256, settings, started, ended, status, steps, "
        "best_val_loss, model_path, pid, 'cli' FROM runs_v1"
    )
    for run_id, settings in con.execute("SELECT id, settings FROM runs").fetchall():
        train = loads(settings).get("train", {})
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
            insert_chunk(
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


def _migrate_2_to_3(con: sqlite3.Connection) -> None:
    """Version 2 kept no run duration, and a chars/s that was the mean of the recent steps'
    speeds. A run that ended gets the time from its start to its end as its duration (its
    pauses in the app, unknown, included), and its chars/s becomes the characters it trained
    (from its first step to its last: B x T a step) over that duration, as a new run's is
    (charlstm_core.training.measures). A run still recording keeps no duration (None) until it
    ends."""
    from ..training import measures

    con.execute(_ADD_DURATION)
    rows = con.execute(
        "SELECT id, settings, started, ended, start_step, steps FROM runs WHERE ended IS NOT NULL"
    ).fetchall()
    for run_id, settings, started, ended, start_step, steps in rows:
        try:
            duration = max(0.0, float(ended) - float(started))
            train = loads(settings).get("train", {})
            per_step = int(train.get("batch_size", 0) or 0) * int(train.get("seq_len", 0) or 0)
            chars = max(int(steps) - int(start_step or 0), 0) * per_step
        except (TypeError, ValueError):  # a damaged row is said when it is read, not here
            continue
        con.execute(
            "UPDATE runs SET duration_s = ?, chars_per_sec = ? WHERE id = ?",
            (duration, measures.chars_per_sec(chars, duration), run_id),
        )


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
}


def loads(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def insert_chunk(
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
            *(
                np.ascontiguousarray(a, dtype=stored).tobytes()
                for a, (stored, _) in zip((step, chars, time_s, loss), POINT_DTYPES, strict=True)
            ),
        ),
    )


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def curve_from_chunks(chunks: list[tuple]) -> Curve:
    """A Curve from chunk rows (step, chars, time, loss blobs); arrays may be read-only."""
    cols = []
    for i, (stored, native) in enumerate(POINT_DTYPES):
        arrays = [np.frombuffer(c[i], dtype=stored) for c in chunks]
        a = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
        cols.append(a.astype(native, copy=False))
    return Curve(*cols)


def compact(con: sqlite3.Connection, run_id: int) -> None:
    """Merge a run's chunks into one per series (fast loading of finished runs)."""
    for kind in (KIND_TRAIN, KIND_VAL):
        rows = con.execute(
            "SELECT step, chars, time, loss FROM points WHERE run_id = ? AND kind = ? ORDER BY seq",
            (run_id, kind),
        ).fetchall()
        if len(rows) < 2:
            continue
        c = curve_from_chunks(rows)
        con.execute("DELETE FROM points WHERE run_id = ? AND kind = ?", (run_id, kind))
        insert_chunk(con, run_id, kind, 0, c.step, c.chars, c.time, c.loss)
