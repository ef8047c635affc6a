"""Issue 20 points 1-2 in the window: a run's one duration and chars/s in the status bar and the
Runs tab (as in the run store and the command line), and the Text tab's estimate measured under
the load there is, said when the machine is busy, a time budget's steps as "about N", measured
again when the load changes. Widgets are clicked and typed into as a person would.
"""

from __future__ import annotations

import pytest
from charlstm_core.runs import RunStore
from charlstm_core.runs.store import default_db_path
from charlstm_core.training import measures, plan
from charlstm_core.training.load import MachineLoad
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolBar

from charlstm_gui.controller.controller import State
from charlstm_gui.help import guide_text
from charlstm_gui.views.runs_table import COLUMNS
from charlstm_gui.widgets import fmt

from .helpers import load, small_text


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def click_action(qtbot, w, name: str) -> None:
    """Click the toolbar button of action ``name``."""
    toolbar = w.findChild(QToolBar, "main_toolbar")
    button = toolbar.widgetForAction(w.actions[name])
    assert button is not None and button.isEnabled(), name
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_the_status_bar_and_the_runs_tab_show_the_runs_one_duration(
    home, qtbot, window, tmp_path, monkeypatch
):
    """The run's clock advances 0.37 s a reading, so its duration (tens of seconds) is far from
    the real time the run takes, and from the time between its start and end in the store."""
    now = {"t": 1000.0}

    def fake_now() -> float:
        now["t"] += 0.37
        return now["t"]

    monkeypatch.setattr(measures, "now", fake_now)
    window.show()
    qtbot.waitExposed(window)
    load(qtbot, window, small_text(tmp_path / "t.txt"))
    window.form.set_values({"duration_unit": "steps", "duration": 24})
    click_action(qtbot, window, "train")
    qtbot.waitUntil(lambda: window.ctl.state is State.IDLE, timeout=30_000)
    with RunStore.open(default_db_path()) as store:
        (run,) = store.list_runs()
    duration = measures.duration_text(run.duration_s)
    assert run.status == "finished" and run.duration_s > 5  # the fake clock's, not the wall's
    assert window.status["elapsed"].text() == duration
    assert window.status["speed"].text() == f"{fmt.count(run.chars_per_sec)} chars/s"
    assert window.status["step"].text() == "step 24 / 24"
    assert f"after {duration}" in window.statusBar().currentMessage()
    tab_bar = window.tabs.tabBar()
    index = window.tabs.indexOf(window.runs_panel)
    qtbot.mouseClick(tab_bar, Qt.MouseButton.LeftButton, pos=tab_bar.tabRect(index).center())
    assert window.tabs.currentWidget() is window.runs_panel
    row = {c.header: window.runs_panel.proxy.index(0, i).data() for i, c in enumerate(COLUMNS)}
    assert row["Duration"] == duration
    assert row["Chars/s"] == fmt.count(run.chars_per_sec)


def test_the_guide_says_the_duration_rule():
    guide = " ".join(guide_text().split())  # as it reads, not as it is wrapped
    assert "first step to the end of its final save" in guide
    assert "about" in guide and "busy" in guide


def timing(step_s: float, others: float | None):
    load = None if others is None else MachineLoad(2, others, ("python3",) if others else ())
    return plan.Timing(step_s=step_s, eval_char_s=1e-7, sample_char_s=1e-5, load=load)


class FakeMeter:
    """The settings check's load readings: ``others`` cores used by other programs."""

    def __init__(self, others: float) -> None:
        self.others = others

    def start(self) -> None:
        pass

    def load(self, *, restart: bool = False) -> MachineLoad:
        return MachineLoad(2, self.others)


def test_the_text_tab_says_a_busy_machine_and_a_time_budgets_steps_as_about_n(
    qtbot, window, tmp_path, monkeypatch
):
    """The Text tab said "about 22 ms per step; 2,704 steps ≈ 1 min" on a machine busy with
    another training (the run made 497 steps). Its estimate is now measured under the load there
    is (the run's thread policy, under_load), says that the machine is busy, shows a time
    budget's total as "about N", and is measured again when the load changes."""
    calls = []
    measured = [timing(0.12, 1.8)]  # busy: another program keeps 1.8 of the 2 cores busy

    def measure_timing(*args, **kwargs):
        calls.append(kwargs)
        return measured[0]

    monkeypatch.setattr(plan, "measure_timing", measure_timing)
    meter = FakeMeter(1.8)
    window.check.meter = meter
    window.show()
    qtbot.waitExposed(window)
    load(qtbot, window, small_text(tmp_path / "t.txt"))
    form, panel = window.form, window.text_panel
    form.unit.setFocus()
    form.set_values({"eval_every": 0, "sample_every": 0})  # the step alone: 0.12 s
    qtbot.keyClicks(form.unit, "minutes")  # the "Train for" unit, typed into its box
    assert form.values()["duration_unit"] == "minutes"
    spin = form._spins["duration"]
    spin.selectAll()
    qtbot.keyClicks(spin, "2")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    run_label = panel.labels["run"]
    expected = f"about {measures.about(120 / 0.12):,} steps in 0:02:00"
    qtbot.waitUntil(lambda: run_label.text().startswith(expected), timeout=5000)
    assert calls and calls[-1]["under_load"] is True
    assert calls[-1]["policy"] == window.ctl.thread_policy()  # as the run will start
    assert panel.busy_note.isVisible()
    assert "busy" in panel.busy_note.text() and "python3" in panel.busy_note.text()
    assert "1.8 of its 2 cores" in panel.busy_note.text()
    assert "while the machine was busy" in panel.labels["speed"].text()

    # the other training ends: after two polls in a row the estimate is measured again
    meter.others = 0.0
    measured[0] = timing(0.024, 0.0)
    n = len(calls)
    window._poll_load()  # what the window's load timer calls
    assert len(calls) == n  # a single quiet reading is not enough
    window._poll_load()
    qtbot.waitUntil(lambda: len(calls) > n, timeout=5000)
    expected = f"about {measures.about(120 / 0.024):,} steps in 0:02:00"
    qtbot.waitUntil(lambda: run_label.text().startswith(expected), timeout=5000)
    assert not panel.busy_note.isVisible()
    assert "busy" not in panel.labels["speed"].text()

    # a run of steps has an exact total
    qtbot.keyClick(form.unit, Qt.Key.Key_Home)  # the first unit: steps
    assert form.values()["duration_unit"] == "steps"
    form.set_values({"duration": 300})
    qtbot.waitUntil(lambda: run_label.text().startswith("300 steps ≈ 0:00:07"), timeout=5000)
