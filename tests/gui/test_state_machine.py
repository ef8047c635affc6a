"""The app's state machine (charlstm_gui.controller.state) and the controller that follows it,
without a window: every transition of the table taken by the controller itself (a fake trainer,
a fake view deriving the actions' enablement), an illegal one refused, and services alone."""

from __future__ import annotations

import logging
import traceback
from collections import defaultdict
from pathlib import Path

import pytest
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import CorpusMismatchError, ModelFileError
from charlstm_core.files.text import load_corpus
from charlstm_core.training import trainer as trainer_module

from charlstm_gui.actions import update_actions
from charlstm_gui.controller.controller import Controller
from charlstm_gui.controller.files import Files, ModelIO
from charlstm_gui.controller.state import (
    STRICT_ENV,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    StateMachine,
    strict_default,
)
from charlstm_gui.controller.sweeps import Sweeps
from charlstm_gui.controller.tasks import Feedback

from .fakes import FakeModel, FakeTrainer
from .helpers import small_text

# ---------------------------------------------------------------------------- the table alone


@pytest.mark.parametrize(("move", "target"), sorted(TRANSITIONS.items(), key=str))
def test_each_move_of_the_table_lands_where_it_says(move, target):
    state, event = move
    changes: list[State] = []
    machine = StateMachine(changes.append, strict=True)
    machine.state = state
    assert machine.allows(event) and machine.fire(event)
    assert machine.state is target
    assert changes == ([] if target is state else [target])  # a stay says nothing


def test_every_state_is_reachable_from_idle_and_leads_back_to_it():
    succ: dict[State, set[State]] = defaultdict(set)
    for (state, _event), target in TRANSITIONS.items():
        succ[state].add(target)

    def reach(start: State) -> set[State]:
        seen, todo = {start}, [start]
        while todo:
            for nxt in succ[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    assert reach(State.IDLE) == set(State)
    assert all(State.IDLE in reach(s) for s in State)


def test_an_illegal_move_raises_in_development_and_is_logged_and_ignored_in_the_field(caplog):
    assert (State.IDLE, Event.PAUSED) not in TRANSITIONS
    changes: list[State] = []
    strict = StateMachine(changes.append, strict=True)
    with pytest.raises(IllegalTransition, match="“paused” while idle") as raised:
        strict.fire(Event.PAUSED)
    assert raised.value.state is State.IDLE and raised.value.event is Event.PAUSED
    field = StateMachine(changes.append, strict=False)
    with caplog.at_level(logging.WARNING, logger="charlstm_gui.controller.state"):
        assert not field.fire(Event.PAUSED)
    assert field.state is State.IDLE and changes == []
    assert "“paused” while idle" in caplog.text


def test_development_is_the_environment_variable_or_python_dev_mode(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    assert strict_default()
    monkeypatch.setenv(STRICT_ENV, "0")
    assert strict_default() is bool(__import__("sys").flags.dev_mode)


# ---------------------------------------------------------------------------- the controller


class FakeAction:
    def __init__(self) -> None:
        self.enabled = False

    def setEnabled(self, on: bool) -> None:  # noqa: N802 (QAction's name)
        self.enabled = on

    def setToolTip(self, text: str) -> None:  # noqa: N802
        pass

    def setStatusTip(self, text: str) -> None:  # noqa: N802
        pass


class FakeView:
    """What the window does with the controller, with no window: at every state it derives its
    actions' enablement (``actions.update_actions``), and it keeps what the controller says."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.actions: dict[str, FakeAction] = defaultdict(FakeAction)
        self.enabled: dict[State, set[str]] = {}  # by state, as last rendered
        self.states: list[State] = []
        self.messages: list[tuple[str, str]] = []
        self.errors: list[str] = []
        ctl.state_changed.connect(self.render)
        ctl.message.connect(lambda title, text: self.messages.append((title, text)))
        ctl.internal_error.connect(self.errors.append)

    def render(self, state: State) -> None:
        self.states.append(state)
        update_actions(self.actions, self.ctl, ("", ""), lambda: [])
        self.enabled[state] = {name for name, a in self.actions.items() if a.enabled}


class SnapshotFails(FakeTrainer):
    """Training that cannot copy its weights (a copy asked while parked ends the run)."""

    def snapshot(self):
        raise MemoryError("no room for a copy")


def failing_build():
    raise CorpusMismatchError("The text has 'é', which the model cannot represent.")


@pytest.fixture
def ctl(qtbot, monkeypatch, tmp_path):
    """A strict controller on a small real text, no run store, a fake trainer (``ctl.fake``
    makes it), and every move it makes kept in ``ctl.moves`` as (state, event)."""
    c = Controller(blas_threads=1, strict=True)
    c.runs.record_runs = False
    c.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    c.fake = lambda: FakeTrainer(steps=40, step_s=0.002)
    monkeypatch.setattr(trainer_module, "Trainer", lambda *args, **kw: c.fake())
    c.moves = []
    fire = c.machine.fire

    def recorded(event: Event) -> bool:
        c.moves.append((c.machine.state, event))
        return fire(event)

    c.machine.fire = recorded
    yield c
    c.shutdown()


S, E = State, Event
CONFIGS = (ModelConfig(vocab_size=20), TrainConfig(steps=40))


def idle(qtbot, ctl: Controller) -> None:
    qtbot.waitUntil(lambda: ctl.state is State.IDLE and not ctl.tasks.threads, timeout=10_000)


def run_completes(qtbot, ctl):
    assert ctl.start_training(*CONFIGS)
    idle(qtbot, ctl)


def pause_resume_stop(qtbot, ctl):
    ctl.fake = lambda: FakeTrainer(steps=100_000, step_s=0.002)
    assert ctl.start_training(*CONFIGS)
    qtbot.waitUntil(lambda: ctl.state is State.TRAINING, timeout=5000)
    ctl.pause()
    qtbot.waitUntil(lambda: ctl.state is State.PAUSED, timeout=5000)
    ctl.resume()
    qtbot.waitUntil(lambda: ctl.state is State.TRAINING, timeout=5000)
    ctl.stop()
    idle(qtbot, ctl)


def stop_before_it_starts(qtbot, ctl):
    """The session's start is still on its way when Stop is pressed: it changes nothing."""
    assert ctl.start_training(*CONFIGS)
    ctl.stop()
    assert ctl.state is State.STOPPING
    idle(qtbot, ctl)


def the_text_does_not_fit(qtbot, ctl):
    ctl.fake = failing_build
    assert ctl.start_training(*CONFIGS)
    idle(qtbot, ctl)


def stop_while_paused(qtbot, ctl):
    """Stop unparks the worker: its "resumed" arrives after the stop and changes nothing; so
    does a "paused" that a stop overtook (sent here as the worker sends it)."""
    ctl.fake = lambda: FakeTrainer(steps=100_000, step_s=0.002)
    assert ctl.start_training(*CONFIGS)
    qtbot.waitUntil(lambda: ctl.state is State.TRAINING, timeout=5000)
    ctl.pause()
    qtbot.waitUntil(lambda: ctl.state is State.PAUSED, timeout=5000)
    ctl.stop()
    ctl._train_worker.paused.emit()  # late news, delivered at once (this thread)
    idle(qtbot, ctl)


def a_copy_fails_while_paused(qtbot, ctl):
    ctl.fake = lambda: SnapshotFails(steps=100_000, step_s=0.002)
    assert ctl.start_training(*CONFIGS)
    qtbot.waitUntil(lambda: ctl.state is State.TRAINING, timeout=5000)
    ctl.pause()
    qtbot.waitUntil(lambda: ctl.state is State.PAUSED, timeout=5000)
    assert ctl.request_inspect_snapshot()
    idle(qtbot, ctl)


def sweep(qtbot, ctl, **kw):
    ended = []
    ctl.sweep_finished.connect(ended.append)
    assert ctl.start_sweep(*CONFIGS, {"seed": [1, 2]}, budget=40, **kw)
    qtbot.waitUntil(lambda: bool(ended), timeout=20_000)
    idle(qtbot, ctl)
    return ended[0]


def sweep_of_two(qtbot, ctl, tmp_path):
    done = sweep(qtbot, ctl, autosave_dir=str(tmp_path / "auto"))
    assert [p.status for p in done.points] == ["finished", "finished"]


def sweep_whose_points_do_not_fit(qtbot, ctl, tmp_path):
    ctl.fake = failing_build
    done = sweep(qtbot, ctl, autosave_dir=str(tmp_path / "auto"))
    assert [p.status for p in done.points] == ["failed", "failed"]


def sweep_cancelled_during_a_run(qtbot, ctl, tmp_path):
    ctl.fake = lambda: FakeTrainer(steps=100_000, step_s=0.002)
    ctl.train_events.connect(lambda batch: ctl.sweeping and ctl.cancel_sweep())
    done = sweep(qtbot, ctl, autosave_dir=str(tmp_path / "auto"))
    assert done.cancelled and [p.status for p in done.points] == ["stopped", "skipped"]


def sweep_whose_copy_fails_while_paused(qtbot, ctl, tmp_path):
    ctl.fake = lambda: SnapshotFails(steps=100_000, step_s=0.002)
    ctl.state_changed.connect(lambda st: st is State.TRAINING and ctl.pause())
    ctl.state_changed.connect(lambda st: st is State.PAUSED and ctl.request_inspect_snapshot())
    done = sweep(qtbot, ctl, autosave_dir=str(tmp_path / "auto"))
    assert [p.status for p in done.points] == ["failed", "failed"]


SCENARIOS = {
    run_completes: [(S.IDLE, E.START), (S.STARTING, E.STARTED), (S.TRAINING, E.ENDED)],
    pause_resume_stop: [
        (S.IDLE, E.START), (S.STARTING, E.STARTED), (S.TRAINING, E.PAUSED),
        (S.PAUSED, E.RESUMED), (S.TRAINING, E.STOP), (S.STOPPING, E.ENDED),
    ],
    stop_before_it_starts: [
        (S.IDLE, E.START), (S.STARTING, E.STOP), (S.STOPPING, E.STARTED), (S.STOPPING, E.ENDED),
    ],
    the_text_does_not_fit: [(S.IDLE, E.START), (S.STARTING, E.ENDED)],
    stop_while_paused: [
        (S.IDLE, E.START), (S.STARTING, E.STARTED), (S.TRAINING, E.PAUSED), (S.PAUSED, E.STOP),
        (S.STOPPING, E.PAUSED), (S.STOPPING, E.RESUMED), (S.STOPPING, E.ENDED),
    ],
    a_copy_fails_while_paused: [
        (S.IDLE, E.START), (S.STARTING, E.STARTED), (S.TRAINING, E.PAUSED), (S.PAUSED, E.ENDED),
    ],
    sweep_of_two: [
        (S.IDLE, E.SWEEP),
        *[(S.SWEEPING, E.START_POINT), (S.STARTING, E.STARTED), (S.TRAINING, E.POINT_ENDED)] * 2,
        (S.SWEEPING, E.SWEEP_ENDED),
    ],
    sweep_whose_points_do_not_fit: [
        (S.IDLE, E.SWEEP),
        *[(S.SWEEPING, E.START_POINT), (S.STARTING, E.POINT_ENDED)] * 2,
        (S.SWEEPING, E.SWEEP_ENDED),
    ],
    sweep_cancelled_during_a_run: [
        (S.IDLE, E.SWEEP), (S.SWEEPING, E.START_POINT), (S.STARTING, E.STARTED),
        (S.TRAINING, E.STOP), (S.STOPPING, E.POINT_ENDED), (S.SWEEPING, E.SWEEP_ENDED),
    ],
    sweep_whose_copy_fails_while_paused: [
        (S.IDLE, E.SWEEP),
        *[
            (S.SWEEPING, E.START_POINT), (S.STARTING, E.STARTED), (S.TRAINING, E.PAUSED),
            (S.PAUSED, E.POINT_ENDED),
        ] * 2,
        (S.SWEEPING, E.SWEEP_ENDED),
    ],
}  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_the_controller_moves_as_the_table_says(qtbot, ctl, tmp_path, scenario):
    args = (qtbot, ctl, tmp_path) if "sweep" in scenario.__name__ else (qtbot, ctl)
    scenario(*args)
    assert ctl.moves == SCENARIOS[scenario]


def test_the_scenarios_take_every_transition_of_the_table():
    taken = {move for moves in SCENARIOS.values() for move in moves}
    assert taken == set(TRANSITIONS)


def test_the_actions_follow_the_state(qtbot, ctl):
    view = FakeView(ctl)
    pause_resume_stop(qtbot, ctl)
    on = view.enabled
    assert [s for s in State if s in on] == [
        S.IDLE, S.STARTING, S.TRAINING, S.PAUSED, S.STOPPING,
    ]  # fmt: skip
    for state, enabled in on.items():
        assert ("pause" in enabled) == (state is S.TRAINING), state
        assert ("resume" in enabled) == (state is S.PAUSED), state
        assert ("stop" in enabled) == (state in (S.STARTING, S.TRAINING, S.PAUSED)), state
        assert ("train" in enabled) == (state is S.IDLE), state
        assert ("open_text" in enabled) == (state is S.IDLE), state
        assert ("save" in enabled) == (state is not S.STOPPING), state
    assert view.messages == [] and view.errors == []


def test_while_sweeping_only_cancel_is_offered_and_the_text_cannot_change(
    qtbot, ctl, tmp_path, monkeypatch
):
    """Between two points the app is not idle: opening a text or a model then would change what
    the next point trains on, or the model it is about to replace."""
    import threading

    from charlstm_core.sweep import calibration

    gate = threading.Event()
    monkeypatch.setattr(calibration, "measure_timing", lambda *a, **kw: gate.wait(10) and None)
    view = FakeView(ctl)
    assert ctl.start_sweep(*CONFIGS, {"seed": [1, 2]}, unit="minutes", budget=1,
                           autosave_dir=str(tmp_path / "auto"), same_steps=True)  # fmt: skip
    assert ctl.state is State.SWEEPING and ctl.sweep.timing
    assert view.enabled[State.SWEEPING] == {"cancel_sweep"}
    ctl.open_text(str(tmp_path / "t.txt"))
    ctl.open_model(str(tmp_path / "m.npz"))
    assert not ctl.start_training(*CONFIGS) and ctl.busy == ""
    assert [t for t, _ in view.messages] == ["A sweep is running"] * 2
    assert "Cancel Sweep" in view.messages[0][1]
    ctl.cancel_sweep()
    gate.set()
    idle(qtbot, ctl)
    assert view.states == [State.SWEEPING, State.IDLE]


def test_the_field_logs_an_illegal_transition_and_keeps_its_state(qtbot, caplog):
    said: list[State] = []
    field = Controller(strict=False)
    field.state_changed.connect(said.append)
    with caplog.at_level(logging.WARNING, logger="charlstm_gui.controller.state"):
        assert not field._set_state(Event.RESUMED)
    assert field.state is State.IDLE and said == [] and "“resumed” while idle" in caplog.text
    with pytest.raises(IllegalTransition):
        Controller(strict=True)._set_state(Event.RESUMED)
    field.shutdown()


def test_closing_while_generating_ends_the_generation(qtbot, ctl, monkeypatch):
    """Shutdown stops the generation's worker (it used to call a method the worker lacks)."""
    from charlstm_core.config import GenerationConfig

    from charlstm_gui.controller import generate

    def endless(mf, request, *, beside_training):
        while True:
            yield "a"

    monkeypatch.setattr(generate, "characters", endless)
    run_completes(qtbot, ctl)
    assert ctl.generate(GenerationConfig(length=10)) and ctl.generating
    assert ctl.shutdown(10_000)
    assert not any(t.isRunning() for t in ctl.tasks.threads)


# ---------------------------------------------------------------------------- services alone


class Deferred:
    """``run_task``'s stand-in: each task waits until the test finishes it, in any order."""

    def __init__(self) -> None:
        self.tasks: list = []

    def __call__(self, fn, done, *, failed=None) -> None:
        self.tasks.append((fn, done, failed))

    def finish(self, i: int = 0) -> None:
        fn, done, failed = self.tasks.pop(i)
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - handed on, as Tasks does
            failed(exc, "".join(traceback.format_exception(exc)))
        else:
            done(result)


class FakeLocks:
    """``ModelLock``'s stand-in: paths in ``busy`` are held by another run."""

    def __init__(self, busy: tuple[str, ...] = ()) -> None:
        self.busy, self.held = set(busy), set()

    def __call__(self, path: str):
        if path in self.busy:
            raise ModelFileError(f"{path} is in use by another run.")
        locks = self

        class Lock:
            real = path

            def release(self) -> None:
                locks.held.discard(path)

        self.held.add(path)
        return Lock()


def files_alone(tmp_path, locks: FakeLocks | None = None):
    """A ``Files`` with fake saves and locks, tasks run when the test says, and what it says."""
    said: dict[str, list] = defaultdict(list)
    written: list[tuple[str, int]] = []

    def save(path, mf):
        written.append((path, mf.step))
        return Path(path)

    tasks = Deferred()
    feedback = Feedback(
        lambda title, text: said["message"].append((title, text)),
        said["error"].append,
        said["busy"].append,
    )
    files = Files(
        tasks, feedback,
        text_loaded=said["text"].append,
        undecodable=lambda path, message: said["undecodable"].append(path),
        model_loaded=lambda mf, path: said["model"].append(path),
        saved=said["saved"].append,
        filed=said["filed"].append,
        dirty_changed=said["dirty"].append,
        protected=lambda: {"the training text": str(tmp_path / "t.txt")},
        io=ModelIO(save=save, lock=locks or FakeLocks()),
    )  # fmt: skip
    return files, tasks, said, written


def test_files_a_save_claims_the_file_only_for_the_model_it_began_for(tmp_path):
    files, tasks, said, written = files_alone(tmp_path)
    files.trained_to(7)
    assert files.dirty and said["dirty"] == [True]
    files.save(FakeModel(7), str(tmp_path / "a.npz"))
    assert said["busy"] == ["Saving a.npz…"]
    files.forget()  # a new run begins while the save is on its way
    files.trained_to(3)
    tasks.finish()
    assert written == [(str(tmp_path / "a.npz"), 7)] and said["saved"] == [str(tmp_path / "a.npz")]
    assert files.model_path is None and files.dirty and said["filed"] == []
    files.model = FakeModel(3)
    files.save_current(str(tmp_path / "b.npz"))
    tasks.finish()
    assert files.model_path == str(tmp_path / "b.npz") and not files.dirty
    assert said["filed"] == [str(tmp_path / "b.npz")] and said["busy"][-1] == ""


def test_files_refuses_the_training_text_and_a_folder_at_once(tmp_path):
    files, tasks, said, _ = files_alone(tmp_path)
    small_text(tmp_path / "t.txt")
    assert not files.check_target(str(tmp_path / "t.txt"))
    assert not files.check_target(str(tmp_path))
    assert [t for t, _ in said["message"]] == ["The model was not saved"] * 2
    assert tasks.tasks == [] and said["busy"] == []
    files.save_current(str(tmp_path / "c.npz"))
    assert said["message"][-1] == ("Nothing to save", "Train a model or open one first.")


def test_files_locks_of_a_run(tmp_path):
    model, ckpt = str(tmp_path / "m.npz"), str(tmp_path / "auto.npz")
    locks = FakeLocks(busy=(model,))
    files, tasks, said, _ = files_alone(tmp_path, locks)
    problem = files.lock_run(model, ckpt)  # the model file is another run's: this one goes on
    assert "in use" in problem and locks.held == {ckpt}
    files.model = FakeModel(5)
    files.save_current(str(tmp_path / "mine.npz"))
    tasks.finish()  # saved while running: that file is the run's now
    assert locks.held == {ckpt, str(tmp_path / "mine.npz")}
    files.release_locks()
    assert locks.held == set()
    locks.busy.add(ckpt)
    assert files.lock_run(None, ckpt) is None  # no autosave file: the run must not start
    assert said["message"][-1][0] == "Cannot autosave" and locks.held == set()


def test_files_a_failed_open_says_what_went_wrong_and_clears_busy(tmp_path):
    files, tasks, said, _ = files_alone(tmp_path)
    files.open_model(str(tmp_path / "missing.npz"))
    assert said["busy"] == ["Opening missing.npz…"]
    tasks.finish()
    assert said["busy"] == ["Opening missing.npz…", ""] and said["model"] == []
    assert said["message"][0][0] in ("Cannot open this model", "File problem")
    assert said["error"] == []


def test_sweeps_alone_go_on_past_a_point_that_cannot_start_and_rank_what_ended(tmp_path):
    corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    started, stopped, ended, begun = [], [], [], []
    can_start = iter([False, True, True])

    class NoJobs:
        def stop(self, now: bool = False) -> bool:
            return False

    sweeps = Sweeps(
        Deferred(), Feedback(print, print), NoJobs(),
        begin=lambda: begun.append(True),
        start_point=lambda mc, tc, folder: started.append(tc.seed) or next(can_start),
        stop_run=lambda: stopped.append(True) or True,
        changed=lambda sweep: None,
        ended=ended.append,
    )  # fmt: skip
    assert sweeps.naming() is None
    assert sweeps.start(corpus, *CONFIGS, {"seed": [1, 2, 3]}, budget=5, autosave_dir="auto")
    assert begun == [True] and started == [1, 2] and sweeps.in_progress
    label, name = sweeps.naming()
    assert label == sweeps.sweep.label and name == "seed=2"
    sweeps.point_ended(("finished", ""), 1.2, "auto/2.npz")  # the second point's run ended
    assert started == [1, 2, 3] and ended == []
    sweeps.cancel()  # during the third: its run is asked to stop, and comes back stopped
    assert stopped == [True] and ended == []
    sweeps.point_ended(("stopped", ""), 1.5, "auto/3.npz")
    (done,) = ended
    assert [p.status for p in done.points] == ["failed", "finished", "stopped"]
    assert done.cancelled and done.best == 1 and not sweeps.in_progress
    assert started == [1, 2, 3]  # nothing started after the cancel
