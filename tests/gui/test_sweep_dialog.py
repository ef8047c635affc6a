"""Sweeps in the app: the dialog's checks, the controller running every point and ranking them,
the window overlaying and offering the best, and Cancel keeping what finished."""

from __future__ import annotations

import pytest
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.files.text import load_corpus
from charlstm_core.runs import RunStore, default_db_path
from PySide6.QtCore import Qt

from charlstm_gui.controller.controller import Controller, State
from charlstm_gui.views.sweep_dialog import SweepDialog, SweepSpec, parse_values

from .helpers import TINY, small_text


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def stored_runs() -> list:
    with RunStore.open(default_db_path()) as store:
        return store.list_runs()


def test_values_are_checked_against_the_settings_ranges():
    assert parse_values("lr", "2e-3, 4e-3 8e-3") == [0.002, 0.004, 0.008]
    assert parse_values("hidden_size", "256,512,256") == [256, 512]
    with pytest.raises(ValueError, match="whole numbers"):
        parse_values("hidden_size", "256.5")
    with pytest.raises(ValueError, match="between 8 and 2048"):
        parse_values("hidden_size", "4096")
    with pytest.raises(ValueError, match="not a number"):
        parse_values("lr", "fast")
    with pytest.raises(ValueError, match="at least one value"):
        parse_values("lr", " , ")


def test_the_dialog_describes_the_grid_and_refuses_bad_values(qtbot):
    dialog = SweepDialog({"lr": 0.004, "hidden_size": 256})
    qtbot.addWidget(dialog)
    start = dialog.buttons.buttons()[0]
    assert dialog.values[0].text() == "0.002, 0.004, 0.008"  # around the current value
    dialog.set_grid({"lr": "2e-3, 4e-3, 8e-3", "hidden_size": "256, 512"}, "minutes", 2)
    spec = dialog.spec()
    assert spec == SweepSpec({"lr": [0.002, 0.004, 0.008], "hidden_size": [256, 512]}, "minutes", 2)
    assert len(spec.points()) == 6 and spec.points()[1] == {"lr": 0.002, "hidden_size": 512}
    assert "6 runs" in dialog.summary.text() and start.isEnabled()
    dialog.values[1].setText("256, 5000")
    assert not start.isEnabled() and "between 8 and 2048" in dialog.summary.text()
    dialog.set_grid({"lr": "2e-3"}, "steps", 100)
    assert not start.isEnabled() and "at least two" in dialog.summary.text()


def configs(corpus) -> tuple[ModelConfig, TrainConfig]:
    mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=16, num_layers=1, dropout=0.0)
    tc = TrainConfig(
        seq_len=16, batch_size=4, lr=0.01, warmup_steps=0, eval_every=5, sample_every=0,
        checkpoint_every=0, steps=10,
    )  # fmt: skip
    return mc, tc


def test_the_controller_runs_four_points_records_each_and_marks_the_best(qtbot, tmp_path, home):
    ctl = Controller()
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    ended = []
    ctl.sweep_finished.connect(ended.append)
    grid = {"lr": [0.003, 0.03], "hidden_size": [8, 16]}
    assert ctl.start_sweep(*configs(ctl.corpus), grid, unit="steps", budget=8,
                           autosave_dir=str(tmp_path / "auto"))  # fmt: skip
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    sweep = ended[0]
    assert [p.status for p in sweep.points] == ["finished"] * 4
    runs = {r.id: r for r in stored_runs()}
    assert len(runs) == 4 and {r.sweep for r in runs.values()} == {sweep.label}
    for p in sweep.points:
        run = runs[p.run_id]
        assert run.name == p.label and run.steps == 8 and run.status == "finished"
        assert run.model["hidden_size"] == p.point.changes["hidden_size"]
        assert run.best_val_loss == pytest.approx(p.best_val)
    best = min(sweep.points, key=lambda p: p.best_val)
    assert sweep.points[sweep.best] is best
    assert best.model_path and (tmp_path / "auto").exists()
    assert not ctl.sweeping and ctl.state is State.IDLE
    ctl.shutdown()


def test_a_bad_point_stops_the_sweep_before_it_starts(qtbot, tmp_path, home):
    ctl = Controller()
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    messages = []
    ctl.message.connect(lambda title, text: messages.append(text))
    grid = {"seq_len": [16, 100_000]}  # longer than the text
    assert not ctl.start_sweep(*configs(ctl.corpus), grid, budget=5, autosave_dir=str(tmp_path))
    assert messages and not ctl.sweeping and ctl.state is State.IDLE
    assert not ctl.start_sweep(*configs(ctl.corpus), {"lr": [0.01, 0.02]}, autosave_dir="")
    assert "autosave folder" in messages[-1]


def test_a_sweep_in_the_window_overlays_each_run_and_offers_the_best(qtbot, window, tmp_path, home):
    w = window
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "t.txt")))
    w.form.set_values({**TINY, "autosave_dir": str(tmp_path / "auto")})
    w.ask_sweep = lambda: SweepSpec({"lr": [0.003, 0.01, 0.03]}, "steps", 10)
    offered = []
    w.ask_open_best = lambda best, lines: offered.append((best, lines)) or True
    with qtbot.waitSignal(w.ctl.sweep_finished, timeout=60_000) as done:
        w.actions["sweep"].trigger()
        assert w.actions["cancel_sweep"].isEnabled() and not w.actions["sweep"].isEnabled()
    sweep = done.args[0]
    best = sweep.points[sweep.best]
    assert offered and offered[0][0] is best and len(offered[0][1]) == 3
    qtbot.waitUntil(lambda: w.ctl.model_path == best.model_path, timeout=10_000)  # opened
    model = w.runs_panel.model
    assert sorted(model.checked) == sorted(p.run_id for p in sweep.points)
    qtbot.waitUntil(lambda: len(w.plot.overlay_keys) == 3, timeout=10_000)
    assert model.best == best.run_id
    row = next(i for i, r in enumerate(model.runs) if r.id == best.run_id)
    assert model.index(row, 0).data(Qt.ItemDataRole.FontRole).bold()  # the best row stands out
    assert not w.actions["cancel_sweep"].isEnabled()


def test_cancel_stops_the_current_run_skips_the_rest_and_keeps_what_finished(qtbot, tmp_path, home):
    ctl = Controller()
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    ended = []
    ctl.sweep_finished.connect(ended.append)

    def cancel_once_the_second_runs(sweep) -> None:
        if sweep.current == 1 and ctl.history.train.n >= 2 and not sweep.cancelled:
            ctl.cancel_sweep()

    ctl.train_events.connect(lambda _batch: ctl.sweep and cancel_once_the_second_runs(ctl.sweep))
    mc, tc = configs(ctl.corpus)
    grid = {"seed": [1, 2, 3]}
    assert ctl.start_sweep(mc, tc, grid, budget=400, autosave_dir=str(tmp_path / "auto"))
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    sweep = ended[0]
    assert sweep.cancelled
    assert [p.status for p in sweep.points] == ["finished", "stopped", "skipped"]
    runs = {r.id: r for r in stored_runs()}
    assert sorted(runs) == sorted(p.run_id for p in sweep.points[:2])
    first, second = (runs[p.run_id] for p in sweep.points[:2])
    assert first.status == "finished" and first.steps == 400
    assert second.status == "stopped" and 2 <= second.steps < 400
    assert sweep.points[sweep.best] is sweep.points[0]  # 400 steps beat a run cut short
    ctl.shutdown()


def test_the_dialog_offers_timed_steps_only_for_a_budget_in_minutes(qtbot):
    dialog = SweepDialog({"lr": 0.004, "hidden_size": 256})
    qtbot.addWidget(dialog)
    dialog.set_grid({"hidden_size": "128, 256"}, "steps", 100, same_steps=True)
    assert not dialog.same_steps.isEnabled() and not dialog.spec().same_steps
    dialog.set_grid({"hidden_size": "128, 256"}, "minutes", 2, same_steps=True)
    assert dialog.same_steps.isEnabled() and dialog.spec().same_steps
    assert "timed first" in dialog.summary.text()
    dialog.same_steps.setChecked(False)
    assert not dialog.spec().same_steps and "timed first" not in dialog.summary.text()


class FakeTimer:
    """``measure_timing``'s stand-in: a step costs ``per_unit`` x the hidden size; ``gate``, when
    given, holds every timing until it is set."""

    def __init__(self, per_unit: float = 1e-3, gate=None):
        self.per_unit, self.gate, self.calls = per_unit, gate, 0

    def __call__(self, vocab, hidden, layers, batch, seq_len, *, dropout, threads):
        from charlstm_core.training.plan import Timing

        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        return Timing(self.per_unit * hidden, 0.0, 0.0)


def test_same_steps_times_each_point_then_trains_it_for_its_own_steps(
    qtbot, tmp_path, home, monkeypatch
):
    from charlstm_core.sweep import calibration

    monkeypatch.setattr(calibration, "measure_timing", FakeTimer(per_unit=1e-3))
    ctl = Controller()
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    seen, ended = [], []
    ctl.sweep_changed.connect(lambda s: seen.append((s.timing, s.current)))
    ctl.sweep_finished.connect(ended.append)
    mc, tc = configs(ctl.corpus)
    assert not ctl.start_sweep(mc, tc, {"hidden_size": [8, 16]}, unit="steps", budget=5,
                               autosave_dir=str(tmp_path / "auto"), same_steps=True)  # fmt: skip
    assert ctl.start_sweep(mc, tc, {"hidden_size": [8, 16]}, unit="minutes", budget=0.01,
                           autosave_dir=str(tmp_path / "auto"), same_steps=True)  # fmt: skip
    assert seen[0] == (True, -1) and ctl.sweeping  # timing first, no run yet
    qtbot.waitUntil(lambda: bool(ended), timeout=60_000)
    sweep = ended[0]
    steps = [p.point.steps for p in sweep.points]
    # 0.6 s less the final save: a step of hidden 8 costs 8 ms, of hidden 16 twice that
    assert steps[0] == pytest.approx(2 * steps[1], abs=1) and 30 <= steps[1] <= 37
    runs = {r.id: r for r in stored_runs()}
    assert [runs[p.run_id].steps for p in sweep.points] == steps
    assert [p.status for p in sweep.points] == ["finished", "finished"]
    assert not sweep.timing and sweep.best is not None
    ctl.shutdown()


def test_cancel_while_timing_ends_the_sweep_before_any_run(qtbot, tmp_path, home, monkeypatch):
    import threading

    from charlstm_core.sweep import calibration

    gate = threading.Event()
    timer = FakeTimer(gate=gate)
    monkeypatch.setattr(calibration, "measure_timing", timer)
    ctl = Controller()
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    ended = []
    ctl.sweep_finished.connect(ended.append)
    mc, tc = configs(ctl.corpus)
    grid = {"lr": [0.01, 0.02], "hidden_size": [8, 16]}
    assert ctl.start_sweep(mc, tc, grid, unit="minutes", budget=1,
                           autosave_dir=str(tmp_path / "auto"), same_steps=True)  # fmt: skip
    qtbot.waitUntil(lambda: timer.calls == 1, timeout=10_000)
    ctl.cancel_sweep()
    assert ended and ended[0].cancelled and not ctl.sweeping
    assert [p.status for p in ended[0].points] == ["skipped"] * 4
    gate.set()  # the timing thread sees the stop before its next measurement
    qtbot.waitUntil(lambda: not ctl.tasks.threads, timeout=10_000)
    assert timer.calls == 1 and ctl.state is State.IDLE and not ctl.training
    assert stored_runs() == []
    ctl.shutdown()


def test_a_point_that_cannot_be_timed_ends_the_sweep_with_a_message(
    qtbot, tmp_path, home, monkeypatch
):
    from charlstm_core.errors import ConfigError
    from charlstm_core.sweep import calibration

    def no_memory(*args, **kwargs):
        raise ConfigError("This machine has not the memory for a training step of this model.")

    monkeypatch.setattr(calibration, "measure_timing", no_memory)
    ctl = Controller()
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    messages, ended = [], []
    ctl.message.connect(lambda title, text: messages.append((title, text)))
    ctl.sweep_finished.connect(ended.append)
    mc, tc = configs(ctl.corpus)
    assert ctl.start_sweep(mc, tc, {"hidden_size": [8, 16]}, unit="minutes", budget=1,
                           autosave_dir=str(tmp_path / "auto"), same_steps=True)  # fmt: skip
    qtbot.waitUntil(lambda: bool(ended), timeout=10_000)
    assert messages == [("Cannot time the settings", "This machine has not the memory for a "
                         "training step of this model.")]  # fmt: skip
    assert [p.status for p in ended[0].points] == ["skipped", "skipped"]
    assert ended[0].best is None and not ctl.sweeping and stored_runs() == []
    ctl.shutdown()


def test_the_window_shows_the_timing_then_each_run_of_a_sweep(
    qtbot, window, tmp_path, home, monkeypatch
):
    import threading

    from charlstm_core.sweep import calibration

    gate = threading.Event()
    monkeypatch.setattr(calibration, "measure_timing", FakeTimer(per_unit=1e-4, gate=gate))
    w = window
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "t.txt")))
    w.form.set_values({**TINY, "autosave_dir": str(tmp_path / "auto")})
    w.ask_sweep = lambda: SweepSpec({"lr": [0.003, 0.01]}, "minutes", 0.005, True)
    w.ask_open_best = lambda best, lines: False
    state = w.status_bar.labels["state"]
    w.actions["sweep"].trigger()
    assert state.text() == "Sweep: timing 2 settings…"
    assert not w.form.isEnabled() and not w.actions["train"].isEnabled()
    assert w.actions["cancel_sweep"].isEnabled()
    seen = set()
    w.ctl.sweep_changed.connect(lambda _s: seen.add(state.text()))
    with qtbot.waitSignal(w.ctl.sweep_finished, timeout=60_000):
        gate.set()
    assert any(t.startswith("Sweep 1/2 (lr=0.003): ") for t in seen)
    assert any(t.startswith("Sweep 2/2 (lr=0.01): ") for t in seen)
    assert w.form.isEnabled() and not state.text().startswith("Sweep")
