"""Self-healing in the app: a rollback is marked on the loss plot, with its story in a tooltip,
the undone part of the curve is dropped, the mark survives save and reopen, and the setting is
in the form."""

from __future__ import annotations

import pyqtgraph as pg
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.events import RollbackEvent
from PySide6.QtCore import QPointF, QSettings

from charlstm_gui.controller.controller import State
from charlstm_gui.controller.history import LossHistory
from charlstm_gui.views.plot import LossPlot
from charlstm_gui.views.settings_form import SettingsForm

from .helpers import small_text

EVENT = RollbackEvent(
    from_step=1260,
    to_step=1200,
    lr_before=8e-3,
    lr_after=4e-3,
    lr_scale=0.5,
    reason="the loss jumped to 53.10 nats/char (smoothed 2.10, a uniform guess 4.17)",
    loss=53.1,
)


def test_a_rollback_draws_a_marker_with_its_tooltip(qtbot):
    history = LossHistory()
    plot = LossPlot(history)
    qtbot.addWidget(plot)
    for step in range(1, 1261):
        history.add_train(step, step * 64, 2.0 if step <= 1200 else 50.0)
    history.add_val(1000, 1000 * 64, 2.1)
    history.add_val(1250, 1250 * 64, 40.0)
    plot.refresh_now()
    assert plot.rollback_lines == []

    history.add_rollback(EVENT, 64)
    for step in range(1201, 1271):  # training goes on from the restored step, past 1260
        history.add_train(step, step * 64, 1.9)
    plot.refresh_now()
    (line,) = plot.rollback_lines
    assert isinstance(line, pg.InfiniteLine) and line in plot.plot.items
    assert line.value() == 1200
    assert "rolled back to step 1,200; learning rate 8e-3 → 4e-3" in line.toolTip()
    assert "step 1,260" in line.toolTip() and "53.10 nats/char" in line.toolTip()
    # the undone part of the curve is gone, and the smoothed curve is that of the new rows
    assert history.train.n == 1270 and history.train.loss.max() == 2.0
    assert list(history.val.step) == [1000]
    assert plot.smoothed().max() < 2.0 + 1e-9

    plot.resize(600, 400)
    on_line = plot.plot.vb.mapViewToScene(QPointF(1200, 2.0))
    assert plot.rollback_line_at(on_line + QPointF(2, 0)) is line  # hovering shows it
    assert plot.rollback_line_at(on_line + QPointF(40, 0)) is None

    plot.set_x_axis("chars")
    plot.refresh_now()
    assert plot.rollback_lines[0].value() == 1200 * 64
    history.clear()
    plot.refresh_now()
    assert plot.rollback_lines == [] and line not in plot.plot.items


def test_a_healing_run_in_the_window_marks_the_plot_and_keeps_it_in_the_file(
    qtbot, window, tmp_path, monkeypatch
):
    """A real run whose loss blows up (20x at the 13th-15th steps) heals; the marker appears,
    and reopening the saved model shows it again."""
    real = CpuEngine.loss_and_grads
    calls = {"n": 0}

    def blowing_up(*args, **kwargs):
        calls["n"] += 1
        loss, grads, state = real(*args, **kwargs)
        return (loss * 20 if 13 <= calls["n"] <= 15 else loss), grads, state

    monkeypatch.setattr(CpuEngine, "loss_and_grads", blowing_up)
    w = window
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "t.txt")))
    w.form.set_values({"duration": 30})
    w.train_new()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)
    assert w.last_message is None
    ((to_step, _, event),) = w.ctl.history.rollbacks
    assert (event.from_step, to_step) == (15, 10)
    assert list(w.ctl.history.train.step) == list(range(1, 31))  # no step twice
    w.plot.refresh_now()
    (line,) = w.plot.rollback_lines
    assert "rolled back to step 10; learning rate" in line.toolTip()

    model = tmp_path / "m.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(model))
    w.ctl.history.clear()
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(str(model))
    w.plot.refresh_now()
    assert [r[0] for r in w.ctl.history.rollbacks] == [10]
    assert w.plot.rollback_lines[0].toolTip() == line.toolTip()


def test_the_form_sets_what_to_do_on_divergence(qtbot):
    form = SettingsForm()
    qtbot.addWidget(form)
    assert form.configs(10)[1].on_divergence == "heal"  # the default
    form.set_values({"on_divergence": "stop"})
    model, train = form.configs(10)
    assert train.on_divergence == "stop"
    settings = QSettings()
    form.save_settings(settings)
    other = SettingsForm()
    qtbot.addWidget(other)
    other.restore_settings(settings, "")
    assert other.configs(10)[1].on_divergence == "stop"
    other.set_from_configs(model, train.replace(on_divergence="heal"))
    assert other.values()["on_divergence"] == "heal"
    assert "Heal" in other.on_divergence.toolTip()
