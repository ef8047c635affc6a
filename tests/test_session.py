"""The training session every front end runs (charlstm_core.training.session): what it yields and
returns, stopping (a request, an event, signals), the fallback save, recording problems, the
thread and priority policy, and that the command line and a sweep's point run it (the app's
worker: tests/gui/test_controller_logic.py)."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time

import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine import parallel
from charlstm_core.errors import CorpusError, ModelFileError, ModelFileLocked
from charlstm_core.events import (
    CheckpointEvent,
    RecordingProblem,
    SavedElsewhere,
    SessionStarted,
    StepEvent,
    ThreadsChosen,
    TrainSummary,
)
from charlstm_core.files.modelfile import ModelLock, load_model, lock_path
from charlstm_core.files.text import corpus_from_text
from charlstm_core.runs import RunStore
from charlstm_core.training import saving
from charlstm_core.training import trainer as trainer_module
from charlstm_core.training.session import Session, SessionRequest, drive
from charlstm_core.training.threads import ThreadPolicy, split_cores, thread_policy
from charlstm_core.training.trainer import Trainer
from helpers import CLOCKED, TINY, drain, make_text, small_train_config
from helpers import run_cli as cli_run

MC = ModelConfig(vocab_size=1, hidden_size=16)


def request(tmp_path, **kw) -> SessionRequest:
    """20 steps of a tiny model, autosaved every 5, recorded in a store of its own."""
    fields = dict(
        text=corpus_from_text(make_text(), name="words.txt"),
        model_config=MC,
        train_config=small_train_config(steps=20, checkpoint_every=5),
        out=str(tmp_path / "m.npz"),
        runs_db=str(tmp_path / "runs.sqlite"),
        fallback_dir=str(tmp_path / "autosave"),
    )
    fields.update(kw)
    return SessionRequest(**fields)


def at_step(n: int, action):
    """An ``on_event`` that calls ``action()`` once the run has shown step ``n``."""

    def on_event(event):
        if isinstance(event, StepEvent) and event.step == n:
            action()

    return on_event


def untimed(event) -> tuple:
    """An event without its clock readings (elapsed time, chars/s): what must be identical."""
    fields = dataclasses.asdict(event)
    return (event.kind, *(v for k, v in fields.items() if k not in CLOCKED))


def the_run(tmp_path, run_id: int):
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        return store.get(run_id)


# ---------------------------------------------------------------------------------------------
# Events and the summary


def test_it_yields_the_trainers_own_events_and_returns_what_it_left(tmp_path):
    req = request(tmp_path)
    events, summary = drain(Session(req).run())
    started = events[0]
    assert isinstance(started, SessionStarted)
    assert (started.step, started.total_steps, started.run_id) == (0, 20, 1)
    assert started.model_path == req.out and started.device == "CPU"
    # the same events, losses and samples as the trainer alone: the session only passes them on
    alone, _ = drain(Trainer(req.text, MC, req.train_config).run())
    ours = [e for e in events[1:] if not isinstance(e, CheckpointEvent)]
    assert [untimed(e) for e in ours] == [untimed(e) for e in alone]
    assert [e.step for e in events if isinstance(e, CheckpointEvent)] == [5, 10, 15, 20]
    assert (summary.ended, summary.steps, summary.run_id) == ("finished", 20, 1)
    assert summary.record_problem is None
    assert summary.model_path == req.out and summary.saved_step == 20
    assert summary.save_problem is None and summary.error is None
    assert (summary.train.steps, summary.train.checkpoint_path) == (20, req.out)
    assert summary.final_val_loss == load_model(req.out).train.history["val_loss"][-1]
    assert load_model(req.out).train.step == 20
    run = the_run(tmp_path, 1)
    assert run.status == "finished" and run.steps == 20 and run.model_path == req.out
    assert not os.path.exists(lock_path(req.out))  # the model file's lock went with the run


def test_errors_before_training_are_raised_and_nothing_is_recorded(tmp_path):
    with pytest.raises(CorpusError, match="nope.txt"):
        drain(Session(request(tmp_path, text=str(tmp_path / "nope.txt"))).run())
    with ModelLock(tmp_path / "m.npz"), pytest.raises(ModelFileLocked, match="in use"):
        drain(Session(request(tmp_path)).run())
    with RunStore.open(tmp_path / "runs.sqlite") as store:
        assert store.list_runs() == []


# ---------------------------------------------------------------------------------------------
# Stopping


def test_a_stop_asked_from_another_thread_ends_after_the_step_saved_and_recorded(tmp_path):
    session = Session(request(tmp_path, train_config=small_train_config(steps=10**6)))

    def from_elsewhere():
        t = threading.Thread(target=session.request_stop)
        t.start()
        t.join()

    summary = drive(session.run(), at_step(7, from_elsewhere))
    assert summary.ended == "stopped" and summary.steps == 7 and not summary.quit_sooner
    assert load_model(summary.model_path).train.step == 7
    assert the_run(tmp_path, summary.run_id).status == "stopped"


def test_a_stop_event_ends_it_too(tmp_path):
    stop = threading.Event()
    endless = request(tmp_path, train_config=small_train_config(steps=10**6))
    session = Session(endless, stop_events=[stop])
    summary = drive(session.run(), at_step(3, stop.set))
    assert summary.ended == "stopped" and summary.steps == 3


def test_a_stop_before_the_first_step_trains_and_saves_nothing(tmp_path):
    session = Session(request(tmp_path))
    session.request_stop()
    summary = drive(session.run(), lambda event: None)
    assert (summary.ended, summary.steps, summary.model_path) == ("stopped", 0, None)
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_signal_stops_after_the_step_and_a_second_quits_sooner(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    said: list[int] = []
    endless = small_train_config(steps=10**6)
    session = Session(request(tmp_path, train_config=endless, signals=True), on_signal=said.append)
    kill = lambda: os.kill(os.getpid(), signal.SIGTERM)  # noqa: E731
    summary = drive(session.run(), at_step(5, kill))
    assert (summary.ended, summary.signal, summary.quit_sooner) == (
        "stopped",
        signal.SIGTERM,
        False,
    )
    assert summary.steps == 5 and load_model(summary.model_path).train.step == 5
    assert said == [signal.SIGTERM] and signal.getsignal(signal.SIGTERM) is before

    def twice():  # the second lands while the event is shown: the session saves what there is
        kill()
        kill()

    session = Session(
        request(tmp_path, train_config=endless, signals=True, out=str(tmp_path / "q.npz"))
    )
    summary = drive(session.run(), at_step(9, twice))
    assert (summary.ended, summary.quit_sooner, summary.steps) == ("stopped", True, 9)
    assert load_model(tmp_path / "q.npz").train.step == 9
    assert the_run(tmp_path, summary.run_id).status == "stopped"
    assert signal.getsignal(signal.SIGTERM) is before


def test_quitting_sooner_during_a_save_abandons_it_and_keeps_the_file(tmp_path, monkeypatch):
    real = saving.save_model

    def interrupted_at_the_end(path, model):
        if model.train.step == 20:  # the final save: a second signal lands in it
            raise KeyboardInterrupt
        return real(path, model)

    monkeypatch.setattr(saving, "save_model", interrupted_at_the_end)
    summary = drive(Session(request(tmp_path)).run(), lambda event: None)
    assert summary.quit_sooner and summary.model_path is None
    assert summary.save_problem == "interrupted while saving"
    assert load_model(tmp_path / "m.npz").train.step == 15  # the previous autosave, intact


# ---------------------------------------------------------------------------------------------
# Saving: the fallback folder


def test_a_save_that_cannot_reach_out_goes_to_the_fallback_folder(tmp_path):
    out = tmp_path / "m.npz"

    def folder_instead():
        out.unlink()
        out.mkdir()

    events: list = []

    def on_event(event):
        events.append(event)
        at_step(7, folder_instead)(event)

    summary = drive(Session(request(tmp_path)).run(), on_event)
    elsewhere = [e for e in events if isinstance(e, SavedElsewhere)]
    assert len(elsewhere) == 1  # said once; later saves go to the same file
    (saved,) = os.listdir(tmp_path / "autosave")
    path = str(tmp_path / "autosave" / saved)
    assert elsewhere[0].step == 10 and elsewhere[0].path == path and elsewhere[0].target == str(out)
    assert summary.ended == "finished" and summary.fell_back and summary.model_path == path
    assert "folder" in summary.save_problem.lower() and str(out) in summary.save_problem
    assert load_model(path).train.step == 20 and saved.startswith("m-")
    run = the_run(tmp_path, summary.run_id)
    assert run.status == "finished" and run.model_path == path and str(out) in run.message


def test_when_the_fallback_fails_too_the_error_names_both_files(tmp_path, monkeypatch):
    def full(path, model):
        raise ModelFileError(f"Cannot save the model to {path}: No space left on device.")

    monkeypatch.setattr(saving, "save_model", full)
    summary = drive(Session(request(tmp_path)).run(), lambda event: None)
    assert summary.ended == "crashed" and isinstance(summary.error, ModelFileError)
    message = str(summary.error)
    assert str(tmp_path / "m.npz") in message and str(tmp_path / "autosave") in message
    assert "keeps its previous contents" in message
    assert the_run(tmp_path, summary.run_id).status == "crashed"


# ---------------------------------------------------------------------------------------------
# Recording


def test_a_run_store_that_cannot_be_used_is_reported_and_training_goes_on(tmp_path):
    folder = tmp_path / "a folder"
    folder.mkdir()
    events, summary = drain(Session(request(tmp_path, runs_db=str(folder))).run())
    problems = [e for e in events if isinstance(e, RecordingProblem)]
    assert len(problems) == 1 and "folder" in problems[0].message
    assert events[0].run_id is None and summary.run_id is None
    assert summary.record_problem == problems[0].message
    assert summary.ended == "finished" and load_model(summary.model_path).train.step == 20


def test_not_recorded_when_asked(tmp_path):
    events, summary = drain(Session(request(tmp_path, record=False)).run())
    assert summary.run_id is None and summary.record_problem is None
    assert not (tmp_path / "runs.sqlite").exists()


# ---------------------------------------------------------------------------------------------
# Threads and priority (charlstm_core.training.threads)


def test_the_thread_policy_of_each_front_end(monkeypatch):
    monkeypatch.setattr("charlstm_core.training.threads.usable_cores", lambda: 8)
    assert thread_policy("cli") == ThreadPolicy()  # BLAS as it is
    assert thread_policy("sweep", jobs=1) == ThreadPolicy()
    assert thread_policy("sweep", jobs=3) == ThreadPolicy(threads=split_cores(3, 8))
    assert split_cores(3, 8) == 2
    app = thread_policy("app")
    assert (app.threads, app.measure, app.nice) == (2, True, parallel.TRAINING_NICE)
    assert thread_policy("app", measured=1) == ThreadPolicy(threads=1, nice=parallel.TRAINING_NICE)
    monkeypatch.setattr("charlstm_core.training.threads.usable_cores", lambda: 1)
    assert thread_policy("app") == ThreadPolicy(threads=1, nice=parallel.TRAINING_NICE)


class SlowTrainer:
    """What a session needs of a trainer, with steps of ``step_s`` seconds; it notes the nice
    value of the thread it trains on."""

    def __init__(self, *args, steps: int = 200, step_s: float = 0.01, **kwargs) -> None:
        self.step, self.total_steps, self.step_s = 0, steps, step_s
        self.device_label, self.best_val_loss, self.last_val_loss = "CPU", None, None
        self.elapsed_s, self.lr_scale = 0.0, 1.0
        self.duration_s, self.chars_per_sec = 0.0, None
        self.nice: int | None = None
        self._stop = threading.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def snapshot(self):
        return None

    def save(self, path: str) -> str:
        return path

    def run(self):
        self.nice = parallel.thread_nice()
        while self.step < self.total_steps and not self._stop.is_set():
            time.sleep(self.step_s)
            self.step += 1
            yield StepEvent(self.step, self.total_steps, 0.0, self.step * 64, 1.0, 1e-3, 1.0,
                            1e4, self.step * self.step_s)  # fmt: skip
        return TrainSummary(self.step, "completed", None, 1.0, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_session_runs_its_thread_nicer_and_measures_the_threads(tmp_path, monkeypatch):
    made: list[SlowTrainer] = []

    def make(*args, **kwargs) -> SlowTrainer:
        made.append(SlowTrainer())
        return made[-1]

    monkeypatch.setattr(trainer_module, "Trainer", make)
    policy = ThreadPolicy(threads=2, measure=True, nice=3)
    req = request(tmp_path, threads=policy, record=False, out=None)
    got: list = []
    before = parallel.thread_nice()
    # on a thread of its own: a thread cannot be made less nice again
    worker = threading.Thread(target=lambda: got.extend(drain(Session(req).run())[0]))
    worker.start()
    worker.join(60)
    chosen = [e for e in got if isinstance(e, ThreadsChosen)]
    assert made[0].nice == min(19, before + 3) and parallel.thread_nice() == before
    assert len(chosen) == 1 and chosen[0].threads in (1, 2) and "chars/s" in chosen[0].explanation


# ---------------------------------------------------------------------------------------------
# Every front end runs it


def test_the_command_line_and_a_sweep_point_run_the_session(text, tmp_path, capsys, monkeypatch):
    from charlstm_core import sweep

    sources: list[str] = []
    real = Session.run

    def spied(self):
        sources.append(self.request.source)
        return (yield from real(self))

    monkeypatch.setattr(Session, "run", spied)
    assert cli_run(capsys, "train", text, *TINY, "--steps", 3)[0] == 0
    tc, out_dir = small_train_config(steps=3), str(tmp_path / "sw")
    spec = sweep.SweepSpec(str(text), None, MC, tc, out_dir, runs_db=None, sweep_label="label")
    os.makedirs(spec.out_dir)
    (point,) = sweep.grid_points(sweep.parse_grid(["lr=1e-2"]), MC, spec.base_train)
    assert sweep.run_point(spec, point).status == "finished"
    assert sources == ["cli", "sweep"]
