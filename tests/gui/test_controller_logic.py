"""The Controller alone, without a window, with a fake trainer (Mu's tests/test_logic.py style):
its state machine, who owns a save, background tasks and their callbacks, and how a failure
reaches the user."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import (
    ConfigError,
    CorpusMismatchError,
    ModelFileError,
    TextTooShortError,
    TrainingDiverged,
)
from charlstm_core.files import modelfile
from charlstm_core.training import trainer as trainer_module

from charlstm_gui.controller.controller import Controller, State, failure_title

from .fakes import FakeModel, FakeTrainer

TEXT = SimpleNamespace(name="t.txt", n_chars=10_000, fingerprint={}, vocab=SimpleNamespace())


class Recorder:
    """Everything the controller says, in order (its signals are emitted on this thread)."""

    def __init__(self, ctl: Controller) -> None:
        self.states: list[State] = []
        self.messages: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.saved: list[str] = []
        ctl.state_changed.connect(self.states.append)
        ctl.message.connect(lambda title, text: self.messages.append((title, text)))
        ctl.internal_error.connect(self.errors.append)
        ctl.saved.connect(self.saved.append)


@pytest.fixture
def ctl(qtbot, monkeypatch):
    """A controller with a text, no run store, and a fake trainer (``ctl.fake`` says which)."""
    c = Controller(blas_threads=1)
    c.runs.record_runs = False
    c.corpus = TEXT
    c.fake = lambda: FakeTrainer(steps=40, step_s=0.002)
    monkeypatch.setattr(trainer_module, "Trainer", lambda *args, **kw: c.fake())
    yield c
    c.shutdown()


def train(qtbot, ctl: Controller, **kw) -> None:
    assert ctl.start_training(ModelConfig(vocab_size=20), TrainConfig(steps=40), **kw)
    qtbot.waitUntil(lambda: ctl.state is State.IDLE, timeout=10_000)


def test_a_run_goes_through_every_state_and_emits_the_enum(qtbot, ctl):
    said = Recorder(ctl)
    ctl.fake = lambda: FakeTrainer(steps=100_000, step_s=0.002)
    assert ctl.start_training(ModelConfig(vocab_size=20), TrainConfig(steps=100_000))
    assert ctl.state is State.STARTING and ctl.training
    assert not ctl.start_training(ModelConfig(vocab_size=20), TrainConfig())  # one run at a time
    qtbot.waitUntil(lambda: ctl.state is State.TRAINING, timeout=5000)
    ctl.pause()
    qtbot.waitUntil(lambda: ctl.state is State.PAUSED, timeout=5000)
    ctl.resume()
    qtbot.waitUntil(lambda: ctl.state is State.TRAINING, timeout=5000)
    ctl.stop()
    assert ctl.state is State.STOPPING
    qtbot.waitUntil(lambda: ctl.state is State.IDLE, timeout=5000)
    assert said.states == [
        State.STARTING,
        State.TRAINING,
        State.PAUSED,
        State.TRAINING,
        State.STOPPING,
        State.IDLE,
    ]
    assert all(isinstance(s, State) for s in said.states)
    assert ctl.model == FakeModel(ctl.last_step.step) and ctl.dirty
    assert said.messages == [] and said.errors == []


def test_without_a_text_nothing_starts(qtbot, ctl):
    said = Recorder(ctl)
    ctl.corpus = None
    assert not ctl.start_training(ModelConfig(vocab_size=20), TrainConfig())
    assert ctl.state is State.IDLE and said.states == []
    assert said.messages == [("No text", "Open a text file (or use the built-in text) first.")]
    assert ctl.trainable_problem(TrainConfig()) == said.messages[0][1]


def test_the_eta_is_the_trainers_own(ctl):
    """The app shows the time left the trainer measured (charlstm_core.training.measures), the
    one the command line's progress line shows, not one of its own."""
    ctl.train_config = TrainConfig(batch_size=4, seq_len=10)
    ev = SimpleNamespace(step=10, total_steps=110, chars_per_sec=400.0, eta_s=12.5)
    assert ctl.eta_seconds(ev) == 12.5
    assert ctl.eta_seconds(SimpleNamespace(step=1, total_steps=2, eta_s=None)) is None


def test_run_task_calls_its_own_callback_with_the_result(qtbot, ctl):
    got: list = []
    ctl.run_task(lambda: 6 * 7, got.append)
    ctl.run_task(lambda: "second", got.append)
    qtbot.waitUntil(lambda: len(got) == 2, timeout=5000)
    assert sorted(map(str, got)) == ["42", "second"]


def test_a_failed_task_says_the_engines_message_or_reports_a_bug(qtbot, ctl):
    said = Recorder(ctl)
    ctl.run_task(lambda: (_ for _ in ()).throw(ConfigError("hidden size too big")), print)
    qtbot.waitUntil(lambda: bool(said.messages), timeout=5000)
    assert said.messages == [("Problem", "hidden size too big")]
    ctl.run_task(lambda: 1 / 0, print)
    qtbot.waitUntil(lambda: bool(said.errors), timeout=5000)
    assert "ZeroDivisionError" in said.errors[0]
    failures: list = []
    ctl.run_task(lambda: 1 / 0, print, failed=lambda exc, tb: failures.append(type(exc)))
    qtbot.waitUntil(lambda: bool(failures), timeout=5000)
    assert failures == [ZeroDivisionError] and len(said.errors) == 1


def test_a_save_claims_the_file_only_for_the_model_it_was_started_for(
    qtbot, ctl, monkeypatch, tmp_path
):
    said = Recorder(ctl)
    release = threading.Event()

    def slow_save(path, mf):
        release.wait(10)
        Path(path).write_text(f"step {mf.step}")
        return Path(path)

    monkeypatch.setattr(modelfile, "save_model", slow_save)
    train(qtbot, ctl)
    first = ctl.model
    assert ctl.dirty and ctl.model_path is None
    out = tmp_path / "m.npz"
    ctl.save_model(str(out))
    assert ctl.busy.startswith("Saving")
    train(qtbot, ctl)  # a new model while the first one is being saved
    assert ctl.model is not first and ctl.dirty
    release.set()
    qtbot.waitUntil(lambda: str(out) in said.saved, timeout=5000)
    assert out.read_text() == "step 40"  # the first model's weights
    assert ctl.model_path is None and ctl.dirty  # the new model did not get that file
    assert ctl.busy == ""

    again = out.with_name("n.npz")
    ctl.save_model(str(again))
    qtbot.waitUntil(lambda: str(again) in said.saved, timeout=5000)
    assert ctl.model_path == str(again) and not ctl.dirty


def test_a_save_to_a_folder_is_refused_at_once(qtbot, ctl, tmp_path):
    said = Recorder(ctl)
    ctl.files.model = FakeModel(3)
    ctl.save_model(str(tmp_path))
    assert said.messages and said.messages[0][0] == "The model was not saved"
    assert ctl.busy == "" and said.saved == []


def test_opening_a_model_clears_busy_and_makes_it_current(qtbot, ctl, monkeypatch, tmp_path):
    opened = SimpleNamespace(config=ModelConfig(vocab_size=20), train=None)
    monkeypatch.setattr(modelfile, "load_model", lambda path: opened)
    seen: list = []
    ctl.model_opened.connect(lambda mf, path: seen.append((mf, path)))
    ctl.open_model(str(tmp_path / "m.npz"))
    assert ctl.busy.startswith("Opening")
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen == [(opened, str(tmp_path / "m.npz"))]
    assert ctl.model is opened and ctl.model_path == str(tmp_path / "m.npz")
    assert ctl.busy == "" and not ctl.dirty


def test_a_model_that_cannot_be_read_is_a_message_not_a_crash(qtbot, ctl, tmp_path):
    said = Recorder(ctl)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a model")
    ctl.open_model(str(bad))
    qtbot.waitUntil(lambda: bool(said.messages), timeout=5000)
    assert said.messages[0][0] == "Cannot open this model" and ctl.busy == ""
    assert said.errors == [] and ctl.model is None


@pytest.mark.parametrize(
    ("exc", "title"),
    [
        (TrainingDiverged("the loss is NaN", step=3), "Training diverged"),
        (CorpusMismatchError("no 'é'"), "The model does not fit this text"),
        (TextTooShortError("short", minimum=9, actual=1), "The text is too short"),
        (ConfigError("bad"), "Check the settings"),
        (ModelFileError("disk"), "Training stopped"),
        (MemoryError(), "Out of memory"),
    ],
)
def test_a_failed_run_is_titled_by_the_errors_type(qtbot, ctl, exc, title):
    said = Recorder(ctl)
    ctl.fake = lambda: FakeTrainer(steps=40, fail_at=3, exc=exc)
    train(qtbot, ctl)
    assert [t for t, _ in said.messages] == [title]
    assert said.errors == [] and ctl.model == FakeModel(3)  # the last good weights are kept


def test_a_bug_in_a_run_is_an_error_report(qtbot, ctl):
    said = Recorder(ctl)
    ctl.fake = lambda: FakeTrainer(steps=40, fail_at=2, exc=KeyError("oops"))
    train(qtbot, ctl)
    assert said.messages == [] and "KeyError" in said.errors[0]


def test_failure_titles_match_subclasses_by_type():
    class Sharper(TrainingDiverged):
        pass

    assert failure_title(Sharper("x", step=1)) == "Training diverged"
    assert failure_title(RuntimeError()) == "Training stopped"


def test_training_runs_the_core_session_on_the_generic_worker(qtbot, ctl, monkeypatch):
    """The app trains through charlstm_core.training.session (the one the command line and
    sweeps run), pulled on the worker's thread, with the app's thread and priority policy."""
    from charlstm_core.training.session import Session
    from charlstm_core.training.threads import thread_policy

    seen: list = []
    real = Session.run

    def spied(self):
        seen.append((self.request.source, self.request.threads, threading.current_thread()))
        return (yield from real(self))

    monkeypatch.setattr(Session, "run", spied)
    train(qtbot, ctl)
    ((source, policy, thread),) = seen
    assert source == "app" and policy == thread_policy("app", measured=1)
    assert thread is not threading.main_thread()
    assert ctl.model == FakeModel(40)
