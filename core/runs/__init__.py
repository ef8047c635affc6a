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
- ``schema_version``: the version of the layout, upgraded by ``schema.MIGRATIONS`` when an older
  database is opened.

The database runs in WAL mode: the app can list runs while a command-line run writes its points.

A run that is recording holds an exclusive lock on a small file named by its ``lock`` token
(``<db>.locks/<token>.lock``). A run still marked "running" whose lock can be taken (its process
died, e.g. ``kill -9``) is marked "crashed" the next time the store is opened or listed; its curve
is there up to the last batch written.

``RunRecorder`` turns the trainer's events into rows. It never raises into the training loop: a
database that is corrupt, locked or read-only becomes one warning (``RunRecorder.warning``, and
the ``on_warning`` callback) and recording stops while training goes on; one deleted, replaced or
damaged during the run is found when it ends (the run is read back) and is a warning too.

The training session (charlstm_core.training.session) records every run, from the command line,
a sweep or the app (where the events are fed on the worker thread, never the GUI thread)::

    recorder = RunRecorder.for_trainer(path_or_store, trainer, source="app", on_warning=warn)
    for event in trainer.run():  # (the session's loop)
        recorder(event)
    recorder.finish(summary=...)                       # or finish(error=...), once
    with RunStore.open(path) as store:
        runs = store.list_runs()                       # newest first, dead runs marked crashed
        curves = store.curves([r.id for r in runs])    # {id: Curves(train=Curve, val=Curve)}

Who owns what: ``records`` the Run and Curve records and the store's location; ``schema`` the
tables, migrations and chunk format; ``store`` the RunStore (queries, rename, delete, crashed
runs); ``recorder`` the RunRecorder. A run moves between stores (a sweep point trained on a
cluster worker comes home) as a ``RunCopy``: ``export_run`` and ``import_run``.
"""

from .recorder import RunRecorder
from .records import (
    DB_NAME,
    HOME_ENV,
    KIND_TRAIN,
    KIND_VAL,
    Curve,
    Curves,
    Run,
    RunCopy,
    default_db_path,
    differing_keys,
    differing_settings,
)
from .schema import SCHEMA_V1, SCHEMA_VERSION
from .store import RunStore

__all__ = [
    "DB_NAME",
    "HOME_ENV",
    "KIND_TRAIN",
    "KIND_VAL",
    "SCHEMA_V1",
    "SCHEMA_VERSION",
    "Curve",
    "Curves",
    "Run",
    "RunCopy",
    "RunRecorder",
    "RunStore",
    "default_db_path",
    "differing_keys",
    "differing_settings",
]
