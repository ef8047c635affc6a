"""The whole flow in the real window: load, train, pause/resume/stop, generate, save, reopen,
continue, close while training. Tiny settings (H=16, L=1, B=4, T=16) keep it fast."""

from __future__ import annotations

from charlstm_core.config import GenerationConfig

from charlstm_gui.controller.controller import State
from charlstm_gui.window import MainWindow

from .helpers import TINY, load, small_text, train


def test_train_generate_save_reopen_continue(qtbot, window, tmp_path):
    w = window
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    assert w.text_panel.labels["chars"].text() == f"{w.ctl.corpus.n_chars:,}"
    assert "the quick" in w.text_panel.preview.toPlainText()
    train(qtbot, w, steps=30)
    assert w.last_message is None
    assert w.ctl.history.train.n == 30 and w.ctl.history.val.n >= 3
    assert w.samples.count == 3 and "step 10" in w.samples.toPlainText()
    assert w.status["step"].text() == "step 30 / 30"
    assert w.ctl.dirty and w.isWindowModified()
    assert w.ctl.autosave_file and (tmp_path / "autosave").exists()

    with qtbot.waitSignal(w.ctl.generation_finished, timeout=20_000) as done:
        w.generate(GenerationConfig(prime="the ", length=40, temperature=0.5, seed=3))
    assert done.args == [True]
    assert w.gen.text().startswith("the ") and len(w.gen.text()) == 44

    model = tmp_path / "m.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(model))
    assert not w.ctl.dirty and model.exists()

    w.form.set_values({"hidden_size": 32})  # the opened model's settings must come back
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(str(model))
    assert w.form.values()["hidden_size"] == 16
    assert w.ctl.history.train.n == 30  # the loss curve is restored from the checkpoint
    assert w.actions["continue"].isEnabled()
    train(qtbot, w, resume=True, steps=45)
    assert w.last_message is None
    assert list(w.ctl.history.train.step[-16:]) == list(range(30, 46))
    assert w.ctl.model.train.step == 45


def test_pause_generate_resume_stop(qtbot, window, tmp_path):
    w = window
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    w.form.set_values({"duration": 1_000_000, "sample_every": 0})
    w.train_new()
    qtbot.waitUntil(lambda: w.ctl.history.train.n >= 5, timeout=20_000)
    with qtbot.waitSignal(w.ctl.state_changed, timeout=10_000):
        w.actions["pause"].trigger()
    assert w.ctl.state is State.PAUSED
    assert w.actions["resume"].isEnabled() and not w.actions["pause"].isEnabled()
    parked = w.ctl.last_step.step
    with qtbot.waitSignal(w.ctl.generation_finished, timeout=20_000):
        w.generate(GenerationConfig(length=30, seed=1))  # from a snapshot, while paused
    assert len(w.gen.text()) == 30
    assert w.ctl.last_step.step == parked and w.ctl.state is State.PAUSED
    w.actions["resume"].trigger()
    qtbot.waitUntil(lambda: w.ctl.last_step.step > parked + 3, timeout=20_000)
    w.actions["stop"].trigger()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=20_000)
    assert w.ctl.model.train.step == w.ctl.last_step.step
    assert w.last_message is None


def test_close_during_training_asks_then_stops_cleanly(qtbot, tmp_path, monkeypatch):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.form.set_values({**TINY, "duration": 1_000_000, "autosave_dir": str(tmp_path / "a")})
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    w.train_new()
    qtbot.waitUntil(lambda: w.ctl.history.train.n >= 3, timeout=20_000)
    asked: list[str] = []
    monkeypatch.setattr(w, "ask_unsaved", lambda context: asked.append(context) or "cancel")
    assert not w.close()  # cancelled: still open, still training
    assert asked == ["closing"] and w.ctl.training
    saved = tmp_path / "on-close.npz"
    monkeypatch.setattr(w, "ask_unsaved", lambda context: "save")
    monkeypatch.setattr(w, "ask_save_path", lambda: str(saved))
    assert w.close()
    # shutdown() stopped the training thread before the save, and the save holds the run's weights
    assert not any(thread.isRunning() for thread in w.ctl.tasks.threads)
    assert saved.exists() and w.ctl.model is not None and w.ctl.model.train.step >= 3


def test_settings_and_layout_are_remembered(qtbot, tmp_path):
    w = MainWindow()
    qtbot.addWidget(w)
    w.form.set_values(
        {
            "hidden_size": 96,
            "duration_unit": "minutes",
            "duration": 7.5,
            "autosave_dir": str(tmp_path / "x"),
        }
    )
    w.plot.set_log_scale(True)
    w.save_settings()
    w2 = MainWindow()
    qtbot.addWidget(w2)
    v = w2.form.values()
    assert (v["hidden_size"], v["duration_unit"], v["duration"]) == (96, "minutes", 7.5)
    assert v["autosave_dir"] == str(tmp_path / "x")
    assert w2.plot.log_box.isChecked() and w2.actions["log_scale"].isChecked()


def test_text_panel_rows_grow_with_late_long_values(qtbot, window):
    # The estimate arrives after the panel is laid out; its wrapped values must not be drawn
    # over the rows below (QFormLayout alone kept the old row heights).
    from charlstm_core.training.plan import Estimate, param_parts

    from charlstm_gui.views.text import TextPanel

    window.resize(1100, 700)
    window.show()
    qtbot.waitExposed(window)
    panel = window.findChildren(TextPanel)[0]
    parts = param_parts(98, 128, 2)
    size = dict(vocab=98, params=sum(parts.values()), parts=parts, memory=12_700_000)
    early = Estimate(**size, seconds_per_step=None, step_s=None)
    panel.show_estimate(early, train_chars=3_600_000, run_steps=1000)
    qtbot.wait(50)  # laid out with the short "measuring…"
    est = Estimate(**size, seconds_per_step=0.053, step_s=0.031)
    panel.show_estimate(est, train_chars=3_600_000, run_steps=1000)

    def fitted() -> bool:
        labels = [*panel.labels.values(), panel.verdict]
        return all(lab.height() >= lab.heightForWidth(lab.width()) for lab in labels)

    qtbot.waitUntil(fitted, timeout=2000)
    assert panel.labels["speed"].height() > panel.labels["params"].height()  # it did wrap


def test_the_estimated_run_says_how_many_passes_over_the_text_it_makes(qtbot, window, tmp_path):
    w = window
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    w.form.set_values({"duration_unit": "steps", "duration": 100})
    label = w.text_panel.labels["run"]
    qtbot.waitUntil(lambda: "passes" in label.text(), timeout=20_000)
    v = w.form.values()
    train_chars = int(w.ctl.corpus.n_chars * (1 - v["val_fraction"]))
    passes = 100 * v["batch_size"] * v["seq_len"] / train_chars
    assert label.text().startswith("100 steps ≈ ")
    assert label.text().endswith(f", {passes:,.1f} passes over the training text")
