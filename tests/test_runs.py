"""The run store: recording from the trainer and the CLI, crashes, migration, broken databases.

Each test gets a private ``CHARLSTM_HOME`` (tests/conftest.py) and makes its own tiny text.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from charlstm_core import runs
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import RunNotFoundError, RunStoreError
from charlstm_core.events import EvalEvent, StepEvent
from charlstm_core.files.modelfile import load_model
from charlstm_core.files.text import corpus_from_text
from charlstm_core.runs import RunRecorder, RunStore, default_db_path
from charlstm_core.training.trainer import Trainer
from helpers import TINY, make_text, nan_loss_at_call
from helpers import run_cli as cli_run

ROOT = Path(__file__).resolve().parents[1]


def tiny_trainer(tmp_path: Path, steps: int = 30, **train) -> Trainer:
    corpus = corpus_from_text(make_text(), name="words.txt")
    tc = TrainConfig(seq_len=16, batch_size=4, steps=steps, eval_every=10, sample_every=0)
    tc = tc.replace(**train)
    mc = ModelConfig(vocab_size=1, hidden_size=16)
    return Trainer(corpus, mc, tc, checkpoint_path=str(tmp_path / "m.npz"))


def drive(trainer: Trainer, recorder: RunRecorder):
    """Every event to the recorder, then finish it: what a training session does."""
    events = trainer.run()
    try:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                recorder.finish(summary=stop.value)
                return stop.value
            recorder(event)
    except BaseException as e:
        recorder.finish(error=e)
        raise


# ---------------------------------------------------------------------------------------------
# The store


def test_default_path_follows_charlstm_home_then_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path / "home"))
    assert default_db_path() == tmp_path / "home" / "runs.sqlite"
    monkeypatch.delenv("CHARLSTM_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform not in ("win32", "darwin"):
        assert default_db_path() == tmp_path / "xdg" / "charlstm" / "runs.sqlite"


def test_a_recorded_run_has_its_settings_results_and_curves(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=30)
    db = tmp_path / "runs.sqlite"
    recorder = RunRecorder.for_trainer(db, trainer, name="first")
    summary = drive(trainer, recorder)
    assert recorder.warning is None and recorder.finished
    with RunStore.open(db) as store:
        (run,) = store.list_runs()
        assert run.id == recorder.run_id and run.name == "first" and run.status == "finished"
        assert run.text_name == "words.txt" and run.text_sha256 == trainer.corpus.sha256
        assert run.model["hidden_size"] == 16 and run.train["steps"] == 30
        assert run.steps == 30 and run.chars_seen == 30 * 4 * 16
        assert run.best_val_loss == pytest.approx(summary.best_val_loss)
        assert run.final_val_loss == pytest.approx(trainer.history["val_loss"][-1])
        assert run.chars_per_sec > 0 and run.ended >= run.started
        assert run.model_path == str(tmp_path / "m.npz") and run.pid == os.getpid()
        curves = store.curves()[run.id]
    history = trainer.history
    np.testing.assert_array_equal(curves.train.step, np.arange(1, 31))
    np.testing.assert_allclose(curves.train.loss, history["train_loss"])
    np.testing.assert_array_equal(curves.train.chars, np.arange(1, 31) * 64)
    assert np.all(np.diff(curves.train.time) >= 0)
    np.testing.assert_array_equal(curves.val.step, [10, 20, 30])
    np.testing.assert_allclose(curves.val.loss, history["val_loss"])


def test_points_are_written_in_batches_then_merged(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=60)
    db = tmp_path / "runs.sqlite"
    recorder = RunRecorder.for_trainer(db, trainer, flush_points=25, flush_interval_s=1e9)
    gen = trainer.run()
    seen = []
    with RunStore.open(db) as store:

        def chunks() -> int:
            return store._read("SELECT count(*) FROM points")[0][0]

        for event in gen:
            recorder(event)
            if isinstance(event, StepEvent):
                seen.append(chunks())
            if isinstance(event, StepEvent) and event.step == 10:
                # nothing is written per step: 10 points are still waiting
                assert chunks() == 0 and store.get(recorder.run_id).steps == 0
        assert max(seen) >= 2  # several batches written while training
        recorder.finish(status="finished")
        # one chunk per series once the run is over, and the curve is whole
        assert chunks() == 2
        assert len(store.curves([recorder.run_id])[recorder.run_id].train) == 60


def test_rename_delete_and_a_missing_run(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=5)
    db = tmp_path / "runs.sqlite"
    drive(trainer, RunRecorder.for_trainer(db, trainer))
    model = tmp_path / "m.npz"
    assert model.exists()
    with RunStore.open(db) as store:
        (run,) = store.list_runs()
        store.rename(run.id, "  better name ")
        assert store.get(run.id).name == "better name"
        with pytest.raises(RunStoreError, match="empty"):
            store.rename(run.id, "  ")
        assert store.delete(run.id) is None
        assert model.exists()  # deleting a run never deletes its model unless asked
        assert store.list_runs() == [] and store.curves([run.id])[run.id].train.step.size == 0
        with pytest.raises(RunNotFoundError, match="no run"):
            store.get(run.id)


def test_delete_with_model_removes_the_file(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=5)
    db = tmp_path / "runs.sqlite"
    recorder = RunRecorder.for_trainer(db, trainer)
    drive(trainer, recorder)
    with RunStore.open(db) as store:
        assert store.delete(recorder.run_id, with_model=True) == str(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_curves_can_be_thinned_keeping_the_last_point(tmp_path):
    trainer = tiny_trainer(tmp_path, steps=50)
    db = tmp_path / "runs.sqlite"
    recorder = RunRecorder.for_trainer(db, trainer)
    drive(trainer, recorder)
    with RunStore.open(db) as store:
        curve = store.curves([recorder.run_id], max_points=10)[recorder.run_id].train
    assert 10 <= len(curve) <= 11 and curve.step[0] == 1 and curve.step[-1] == 50


def test_a_live_run_is_not_taken_for_a_crashed_one(tmp_path):
    db = tmp_path / "runs.sqlite"
    trainer = tiny_trainer(tmp_path, steps=5)
    recorder = RunRecorder.for_trainer(db, trainer)
    with RunStore.open(db) as other:  # another window listing the runs meanwhile
        assert other.get(recorder.run_id).status == "running"
        with pytest.raises(RunStoreError, match="still training"):
            other.delete(recorder.run_id)
    recorder.finish(status="stopped")
    with RunStore.open(db) as store:
        assert store.get(recorder.run_id).status == "stopped"


_CRASHING_RUN = """
import sys
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.files.text import corpus_from_text
from charlstm_core.runs import RunRecorder
from charlstm_core.training.trainer import Trainer

corpus = corpus_from_text("the cat sat on the mat. " * 400, name="cats.txt")
tc = TrainConfig(seq_len=16, batch_size=4, steps=10**9, eval_every=0, sample_every=0)
trainer = Trainer(corpus, ModelConfig(vocab_size=1, hidden_size=16), tc)
recorder = RunRecorder.for_trainer(sys.argv[1], trainer, flush_points=20, flush_interval_s=1e9)
for event in trainer.run():
    recorder(event)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is a POSIX signal")
def test_kill_9_leaves_a_crashed_run_with_its_points(tmp_path):
    db = tmp_path / "runs.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_RUN, str(db)],
        cwd=ROOT,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},  # steady on a busy machine
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        written = 0
        while written < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
            assert proc.poll() is None, proc.stderr.read().decode()
            if db.exists():
                with sqlite3.connect(db) as con:
                    try:
                        written = con.execute("SELECT coalesce(sum(n), 0) FROM points").fetchone()[
                            0
                        ]
                    except sqlite3.Error:
                        written = 0
        assert written >= 40
        with RunStore.open(db) as store:  # still alive: still running
            assert store.list_runs()[0].status == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    with RunStore.open(db) as store:
        (run,) = store.list_runs()
        assert run.status == "crashed" and run.ended is not None and "ended" in run.message
        curve = store.curves([run.id])[run.id].train
        assert len(curve) >= 40 and len(curve) % 20 == 0  # every batch written, and only those
        np.testing.assert_array_equal(curve.step, np.arange(1, len(curve) + 1))
        assert run.steps == len(curve)


# ---------------------------------------------------------------------------------------------
# Migration and broken databases


def test_an_older_schema_is_migrated(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript(runs.SCHEMA_V1)
    settings = {
        "model": {"hidden_size": 32, "num_layers": 1},
        "train": {"batch_size": 4, "seq_len": 10},
    }
    con.execute("INSERT INTO schema_version VALUES (1)")
    con.execute(
        "INSERT INTO runs (id, name, text_name, text_sha256, settings, started, ended, status, "
        "steps, best_val_loss, model_path, pid) VALUES (7, 'old run', 'a.txt', 'abc', ?, 100.0, "
        "160.0, 'finished', 3, 1.5, '/m.npz', 1)",
        (json.dumps(settings),),
    )
    con.executemany(
        "INSERT INTO points VALUES (7, ?, ?, ?)",
        [("train", 1, 3.0), ("train", 2, 2.5), ("train", 3, 2.0), ("val", 3, 1.5)],
    )
    con.commit()
    con.close()
    with RunStore.open(db) as store:
        assert store._read("SELECT version FROM schema_version") == [(runs.SCHEMA_VERSION,)]
        run = store.get(7)
        assert (run.name, run.status, run.steps, run.best_val_loss) == (
            "old run",
            "finished",
            3,
            1.5,
        )
        assert run.chars_seen == 3 * 40 and run.final_val_loss == 1.5 and run.source == "cli"
        assert run.duration_s == 60.0 and run.model["hidden_size"] == 32
        curves = store.curves([7])[7]
        np.testing.assert_array_equal(curves.train.step, [1, 2, 3])
        np.testing.assert_array_equal(curves.train.chars, [40, 80, 120])
        np.testing.assert_allclose(curves.train.loss, [3.0, 2.5, 2.0])
        assert np.isnan(curves.train.time).all()
        np.testing.assert_allclose(curves.val.loss, [1.5])
    # and new runs go on from there
    trainer = tiny_trainer(tmp_path, steps=3)
    recorder = RunRecorder.for_trainer(db, trainer)
    drive(trainer, recorder)
    assert recorder.run_id == 8 and recorder.warning is None


def test_a_newer_schema_is_refused_clearly(tmp_path):
    db = tmp_path / "new.sqlite"
    RunStore.open(db).close()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE schema_version SET version = 99")
    con.close()
    with pytest.raises(RunStoreError, match="newer CharLSTM Studio"):
        RunStore.open(db)


def test_a_corrupt_database_is_reported_and_training_still_saves(text, capsys, monkeypatch):
    db = text.parent / "runs.sqlite"
    # a store damaged past its header (a file that is not SQLite at all is refused before the
    # run: tests/test_faults.py::test_runs_db_is_never_a_model_or_another_file)
    db.write_bytes(b"SQLite format 3\x00" + b"this is not an SQLite database, just bytes " * 100)
    with pytest.raises(RunStoreError, match="damaged"):
        RunStore.open(db)
    code, _, err = cli_run(capsys, "train", text, *TINY, "--steps", 12, "--runs-db", db)
    assert code == 0 and load_model(text.with_suffix(".npz")).train.step == 12
    warnings = [line for line in err.splitlines() if "warning" in line and "run" in line]
    assert len(warnings) == 1 and "runs.sqlite" in warnings[0] and "damaged" in warnings[0]
    assert "not recorded" in warnings[0]
    code, _, err = cli_run(capsys, "runs", "--runs-db", db)
    assert code == 1 and "damaged" in err and len(err.strip().splitlines()) == 1


def test_a_read_only_database_is_reported_and_training_still_saves(text, capsys, monkeypatch):
    db = text.parent / "runs.sqlite"
    RunStore.open(db).close()
    connect = sqlite3.connect

    def read_only(target, *args, **kwargs):  # as for a file on a read-only disk (also as root)
        kwargs["uri"] = True
        return connect(f"file:{target}?mode=ro", *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only)
    code, _, err = cli_run(capsys, "train", text, *TINY, "--steps", 12, "--runs-db", db)
    assert code == 0 and load_model(text.with_suffix(".npz")).train.step == 12
    warnings = [line for line in err.splitlines() if "warning" in line and "run" in line]
    assert len(warnings) == 1 and "read-only" in warnings[0] and "not recorded" in warnings[0]
    monkeypatch.setattr(sqlite3, "connect", connect)
    with RunStore.open(db) as store:
        assert store.list_runs() == []


def test_a_locked_database_gives_one_warning_and_training_goes_on(tmp_path):
    db = tmp_path / "runs.sqlite"
    trainer = tiny_trainer(tmp_path, steps=30)
    store = RunStore.open(db, timeout_s=0.05)
    warnings: list[str] = []
    recorder = RunRecorder.for_trainer(store, trainer, flush_points=5, on_warning=warnings.append)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another program holding the write lock
    try:
        summary = drive(trainer, recorder)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert summary.steps == 30 and (tmp_path / "m.npz").exists()
    assert len(warnings) == 1 and "locked" in warnings[0] and recorder.warning == warnings[0]
    store.close()


def test_the_recorder_never_raises_into_training(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path, steps=10)
    recorder = RunRecorder.for_trainer(tmp_path / "runs.sqlite", trainer, flush_points=1)

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(RunStore, "_append", broken)
    summary = drive(trainer, recorder)
    assert summary.steps == 10 and "disk on fire" in recorder.warning


def test_a_diverged_run_is_recorded_as_diverged(text, capsys, monkeypatch):
    nan_loss_at_call(monkeypatch, 4)
    code, _, _ = cli_run(
        capsys, "train", text, *TINY, "--steps", 20, "--out", "m.npz", "--on-divergence", "stop"
    )
    assert code == 1
    with RunStore.open() as store:
        (run,) = store.list_runs()
    assert run.status == "diverged" and run.steps == 3 and "diverged" in run.message
    assert run.model_path == str(text.parent / "m.npz")


# ---------------------------------------------------------------------------------------------
# The command line


def test_a_cli_run_is_recorded_and_listed(text, capsys):
    code, _, err = cli_run(capsys, "train", text, *TINY, "--steps", 20, "--name", "my run")
    assert code == 0 and "(run 1)" in err
    with RunStore.open() as store:  # the default store: $CHARLSTM_HOME/runs.sqlite
        (run,) = store.list_runs()
        assert run.name == "my run" and run.status == "finished" and run.steps == 20
        assert run.model_path == str(text.with_suffix(".npz")) and run.source == "cli"
        assert len(store.curves([run.id])[run.id].train) == 20
    code, out, _ = cli_run(capsys, "runs")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:3] == ["id", "name", "text"] and row.startswith("1 ")
    assert "my run" in row and "words.txt" in row and "1x16" in row and "finished" in row
    code, out, _ = cli_run(capsys, "runs", "--json")
    (record,) = json.loads(out)
    assert record["id"] == 1 and record["settings"]["train"]["steps"] == 20
    code, out, _ = cli_run(capsys, "runs", "show", "1")
    assert code == 0 and "my run" in out and "hidden_size=16" in out and "20 training points" in out
    code, out, _ = cli_run(capsys, "runs", "show", "1", "--json")
    assert len(json.loads(out)["curves"]["train"]["loss"]) == 20


def test_no_record_and_runs_db(text, capsys, tmp_path):
    assert cli_run(capsys, "train", text, *TINY, "--steps", 5, "--no-record")[0] == 0
    with RunStore.open() as store:
        assert store.list_runs() == []
    other = tmp_path / "elsewhere" / "mine.sqlite"
    assert cli_run(capsys, "train", text, *TINY, "--steps", 5, "--runs-db", other)[0] == 0
    with RunStore.open(other) as store:
        assert len(store.list_runs()) == 1
    code, out, _ = cli_run(capsys, "runs", "--runs-db", other, "--json")
    assert len(json.loads(out)) == 1
    # options given before the action still count
    code, out, _ = cli_run(capsys, "runs", "--runs-db", other, "--json", "show", "1")
    assert code == 0 and json.loads(out)["id"] == 1


def test_runs_rm_asks_keeps_the_model_and_deletes_it_with_model(text, capsys, monkeypatch):
    for name in ("a", "b"):
        cli_run(capsys, "train", text, *TINY, "--steps", 5, "--out", f"{name}.npz")
    # not on a terminal and no --yes: refuse
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    code, _, err = cli_run(capsys, "runs", "rm", "1")
    assert code == 2 and "--yes" in err
    # on a terminal: ask; "n" keeps it
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert cli_run(capsys, "runs", "rm", "1")[0] == 0
    with RunStore.open() as store:
        assert len(store.list_runs()) == 2
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    code, _, err = cli_run(capsys, "runs", "rm", "1")
    assert code == 0 and "deleted run 1" in err and "kept" in err and Path("a.npz").exists()
    code, _, err = cli_run(capsys, "runs", "rm", "2", "--yes", "--with-model")
    assert code == 0 and not Path("b.npz").exists()
    code, _, err = cli_run(capsys, "runs", "show", "2")
    assert code == 1 and "no run 2" in err
    code, _, err = cli_run(capsys, "runs", "rename", "9", "x")
    assert code == 1 and "no run 9" in err


def test_runs_on_an_empty_store(capsys):
    code, out, err = cli_run(capsys, "runs")
    assert code == 0 and out == "" and "no runs recorded yet" in err
    assert json.loads(cli_run(capsys, "runs", "--json")[1]) == []


def test_the_recorded_best_matches_the_summary_for_a_resumed_run(text, capsys):
    cli_run(capsys, "train", text, *TINY, "--steps", 10, "--out", "m.npz")
    cli_run(capsys, "train", "--resume", "m.npz", text, "--steps", 20, "-q")
    with RunStore.open() as store:
        second, first = store.list_runs()
        curve = store.curves([second.id])[second.id].train
    assert (first.start_step, first.steps, second.start_step, second.steps) == (0, 10, 10, 20)
    np.testing.assert_array_equal(curve.step, np.arange(11, 21))
    assert second.best_val_loss <= first.best_val_loss or math.isclose(
        second.best_val_loss, first.best_val_loss
    )


def test_eval_events_without_steps_still_count(tmp_path):
    """Only steps and evaluations are points; other events are ignored without error."""
    store = RunStore.open(":memory:")
    recorder = RunRecorder(
        store,
        text={"name": "t", "sha256": "x"},
        model_config={"hidden_size": 8, "num_layers": 1},
        train_config={"batch_size": 2, "seq_len": 3},
    )
    recorder(EvalEvent(step=0, val_loss=2.0, best_val_loss=2.0, elapsed_s=0.0))
    recorder("not an event")
    recorder.finish(status="stopped")
    run = store.get(recorder.run_id)
    assert run.status == "stopped" and run.best_val_loss == 2.0 and run.name == "t 1x8"
    assert len(store.curves()[run.id].val) == 1


def test_differing_settings_lists_only_what_changed(tmp_path):
    db = tmp_path / "runs.sqlite"
    for lr, hidden in ((2e-3, 16), (4e-3, 16), (4e-3, 24)):
        trainer = tiny_trainer(tmp_path, steps=2, lr=lr)
        recorder = RunRecorder(
            db,
            text=trainer.corpus.fingerprint,
            model_config=ModelConfig(vocab_size=10, hidden_size=hidden),
            train_config=trainer.train_config,
        )
        recorder.finish(status="stopped")
    with RunStore.open(db) as store:
        a, b, c = reversed(store.list_runs())
    assert runs.differing_settings([a, b, c]) == {
        "model.hidden_size": [16, 16, 24],
        "train.lr": [2e-3, 4e-3, 4e-3],
    }
    assert runs.differing_settings([b, c]) == {"model.hidden_size": [16, 24]}
    assert runs.differing_settings([a]) == {} and runs.differing_settings([]) == {}
    # in the order first seen, a key one lacks counted as None
    assert runs.differing_keys([{"x": 1, "y": 2}, {"x": 1, "y": 3, "z": 4}]) == ["y", "z"]
    assert runs.differing_keys([{"x": None}, {}]) == [] and runs.differing_keys([]) == []
