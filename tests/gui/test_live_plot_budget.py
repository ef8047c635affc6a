"""Watching costs the training little: while a run is live the loss plot looks for new points
``LIVE_HZ`` times a second and redraws only when its data changed, the validation points
only when an evaluation came, the view grows in steps instead of fitting every point, and the
status bar shows a step at the same rate, the last one always. Behaviour only, never a wall time:
the throttle's clock is a fake one (``benchmarks/bench_app_vs_cli.py`` measures the real cost)."""

from __future__ import annotations

import pytest
from charlstm_core.events import StepEvent

from charlstm_gui.controller.history import LossHistory
from charlstm_gui.views.plot import REFRESH_MS, LossPlot
from charlstm_gui.widgets.axes import stepped_range
from charlstm_gui.widgets.throttle import LIVE_HZ, Throttle

from .helpers import load, small_text


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def live_plot(qtbot) -> tuple[LossPlot, LossHistory]:
    history = LossHistory()
    plot = LossPlot(history)
    qtbot.addWidget(plot)
    plot.resize(600, 400)
    plot.set_live(True)
    plot.timer.stop()  # the test calls refresh() itself, as the timer would
    return plot, history


def loss_at(step: int) -> float:
    return 1.5 + 3.5 / (1 + step / 50)  # falls from 5 toward 1.5, as a run's does


def test_stepped_range_keeps_the_view_while_the_data_fit_and_grows_it_with_room():
    assert stepped_range((0.0, 100.0), (0.0, 80.0)) == (0.0, 100.0)  # fits: kept
    assert stepped_range((0.0, 100.0), (0.0, 120.0)) == (0.0, 150.0)  # left on the right
    assert stepped_range((1.0, 5.0), (0.6, 4.8)) == pytest.approx((0.6 - 0.25 * 4.2, 5.0))
    assert stepped_range((0.0, 100.0), (0.0, 20.0)) == (0.0, 20.0)  # far smaller: fits again
    assert stepped_range((0.0, 1.0), (1.3, 5.2)) == (1.3, 5.2)  # a new picture: fitted exactly
    assert stepped_range((0.0, 1.0), (3.0, 3.0)) == (3.0, 3.0)  # no span: as asked
    # pyqtgraph pads the data by a share of their span, which grows with them: the data decide
    pad = 0.02
    assert stepped_range((-2.0, 150.0), (1 - pad * 159, 160 + pad * 159), pad) == pytest.approx(
        (-2.0, 160 + 0.25 * 159)
    )


def test_live_the_plot_looks_for_points_a_few_times_a_second_and_redraws_only_changes(qtbot):
    plot, history = live_plot(qtbot)
    assert plot.timer.interval() == 1000 / LIVE_HZ  # not the idle 25 Hz
    history.add_train(1, 64, loss_at(1))
    plot.refresh()
    assert plot.redraws == 1
    for step in range(2, 40):  # batches of events between two looks: one redraw
        history.add_train(step, step * 64, loss_at(step))
    plot.refresh()
    plot.refresh()  # nothing new: nothing drawn
    assert plot.redraws == 2 and plot.raw.xData[-1] == 39
    plot.set_live(False)
    assert plot.timer.interval() == REFRESH_MS


def test_a_change_the_user_makes_is_drawn_at_once_even_while_live(qtbot):
    plot, history = live_plot(qtbot)
    for step in range(1, 20):
        history.add_train(step, step * 64, loss_at(step))
    plot.refresh()
    drawn = plot.redraws
    plot.set_log_scale(True)  # drawn without waiting for the live timer (stopped here)
    qtbot.waitUntil(lambda: plot.redraws == drawn + 1, timeout=2000)
    history.add_train(20, 20 * 64, loss_at(20))
    plot.set_live(False)  # the run ended: what arrived since is drawn at once
    assert plot.redraws == drawn + 2 and plot.raw.xData[-1] == 20


def test_the_validation_points_are_set_only_when_an_evaluation_came(qtbot, monkeypatch):
    plot, history = live_plot(qtbot)
    calls = []
    set_data = plot.val.setData
    monkeypatch.setattr(plot.val, "setData", lambda *a, **k: (calls.append(1), set_data(*a, **k)))
    for step in range(1, 301):
        history.add_train(step, step * 64, loss_at(step))
        if step % 100 == 0:
            history.add_val(step, step * 64, loss_at(step) + 0.1)
        plot.refresh()
    assert plot.redraws == 300
    assert len(calls) == 4  # the empty curve, then the three evaluations
    assert list(plot.val.xData) == [100, 200, 300]


def test_the_live_view_grows_in_steps_and_always_shows_the_data(qtbot):
    plot, history = live_plot(qtbot)
    vb = plot.view_box
    changes = []
    vb.sigRangeChanged.connect(lambda *_: changes.append(vb.viewRange()))
    for step in range(1, 3001):
        history.add_train(step, step * 64, loss_at(step))
        if step % 5 == 0:  # a redraw every 5 steps: 600 frames
            plot.refresh()
            vb.prepareForPaint()  # what a repaint does first
            (x0, x1), (y0, y1) = vb.viewRange()
            assert x0 <= 1 and step <= x1 and y0 <= loss_at(step) and loss_at(1) <= y1
    assert plot.redraws == 600
    assert len(changes) < 60  # not one per frame: a few per doubling of the run's length

    plot.set_live(False)  # the run ended: the view fits the data exactly again
    (x0, x1), _ = vb.viewRange()
    assert x1 < 3000 * 1.1


def test_throttle_makes_the_newest_call_at_most_once_an_interval(qtbot):
    shown = []
    throttle = Throttle(shown.append, hz=5, parent=None)
    clock = Clock()
    throttle.clock = clock
    throttle(1)  # the first is shown at once
    for value in range(2, 10):  # inside the interval: only the newest is kept
        clock.t += 0.01
        throttle(value)
    assert shown == [1] and throttle.waiting
    qtbot.waitUntil(lambda: shown == [1, 9], timeout=2000)  # and lands when the interval ends
    throttle(10)
    throttle.flush()
    assert shown == [1, 9, 10] and not throttle.waiting
    throttle(11)
    throttle.cancel()
    qtbot.wait(300)
    assert shown == [1, 9, 10]


def test_the_status_bar_shows_the_newest_step_and_the_last_one_at_the_end(qtbot, window):
    bar = window.status_bar
    clock = Clock()
    bar.step_shown.clock = clock
    step = window.status["step"]
    for i in range(1, 31):
        bar.show_step(
            StepEvent(
                step=i, total_steps=30, loss=2.0, lr=1e-3, grad_norm=1.0, chars_seen=i * 64,
                epoch=0.1, chars_per_sec=1000.0, elapsed_s=float(i),
            ),
            eta_s=30.0 - i,
        )  # fmt: skip
        clock.t += 0.001
    assert step.text() == "step 1 / 30"  # the rest waits for the interval
    bar.flush()  # the run ended
    assert step.text() == "step 30 / 30"


def test_live_samples_are_appended_together_at_most_once_an_interval_and_none_is_lost(qtbot):
    from charlstm_gui.views.samples import SamplesPane

    pane = SamplesPane()
    qtbot.addWidget(pane)
    clock = Clock()
    pane._shown.clock = clock
    added = []
    pane.sample_added.connect(lambda start, text: added.append(text))
    for i in range(1, 21):  # a small model sampling every few steps: 20 within an interval
        pane.add_live_sample(i * 5, 2.0, 0.8, f"sample {i}")
        clock.t += 0.001
    assert added == ["sample 1"] and pane._shown.calls == 1  # the first at once, the rest wait
    pane.flush()  # the run ended
    assert added == [f"sample {i}" for i in range(1, 21)] and pane._shown.calls == 2
    assert pane.count == 20 and pane.toPlainText().endswith("sample 20")
    pane.add_live_sample(200, 2.0, 0.8, "dropped")
    pane.clear_samples()  # a new run: what waited for the old one is not shown
    pane.flush()
    assert pane.count == 0 and "dropped" not in pane.toPlainText()


def test_a_window_training_draws_live_at_the_live_rate_and_shows_the_end(qtbot, window, tmp_path):
    w = window
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    lives = []
    w.ctl.state_changed.connect(lambda _state: lives.append(w.plot.live))
    w.form.set_values({"duration": 300, "eval_every": 0, "sample_every": 0})
    w.plot.timer.stop()  # no redraw by time while it trains: only at the end
    w.plot.timer.timeout.disconnect()
    w.train_new()
    qtbot.waitUntil(lambda: not w.ctl.training, timeout=30_000)
    assert lives[0] is True and lives[-1] is False  # live from the start, not after the end
    # the end is drawn at once, whatever the timer did: the last point and the last step
    assert w.plot.raw.xData[-1] == 300 and w.status["step"].text() == "step 300 / 300"
    # no redraw but the timer's while live: the new run's empty plot, the end (and at most one
    # change the user would make), never one per batch of events
    assert w.plot.redraws <= 4


def test_a_step_still_waiting_never_overwrites_the_run_s_end(qtbot, window):
    from types import SimpleNamespace

    bar = window.status_bar
    bar.step_shown.clock = Clock()  # frozen: every step after the first waits
    for i in (1, 2):
        bar.show_step(
            StepEvent(
                step=i, total_steps=30, loss=2.0, lr=1e-3, grad_norm=1.0, chars_seen=i * 64,
                epoch=0.5, chars_per_sec=1000.0, elapsed_s=float(i), duration_s=float(i),
            ),
            eta_s=10.0,
        )  # fmt: skip
    assert bar.step_shown.waiting
    end = SimpleNamespace(chars_per_sec=900.0, duration_s=3.0, reason="completed", steps=2)
    bar.show_end(end)
    qtbot.wait(400)  # the interval a waiting step would have landed in
    assert window.status["step"].text() == "step 2 / 2" and window.status["eta"].text() == "—"
    assert window.status["epoch"].text() == "epoch 0.50"  # the last step's, shown first
