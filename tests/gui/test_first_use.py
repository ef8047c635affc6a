"""What a first-time user tripped over (issue 9, B): stale status, the Generate tab's message,
Continue on a text the model cannot represent, the Samples history of an opened model, and the
notice when a run finishes."""

from __future__ import annotations

import functools

from PySide6.QtGui import QKeySequence

from charlstm_gui.controller.controller import State

from .helpers import load as _load
from .helpers import shown_tip, small_text, train

_train = functools.partial(train, steps=20)  # these tests' runs are 20 steps


def test_best_val_of_the_previous_model_is_not_shown_during_a_new_run(qtbot, window, tmp_path):
    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w, steps=20)
    assert w.status["best"].text().startswith("best val ")
    w.form.set_values({"duration": 1_000_000, "eval_every": 100_000, "sample_every": 0})
    w.train_new()
    qtbot.waitUntil(lambda: w.ctl.history.train.n >= 3, timeout=20_000)
    assert w.status["best"].text() == "—"  # no evaluation of the new model yet
    assert w.ctl.best_val is None
    w.ctl.stop()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=20_000)


def test_generate_tab_names_the_model_being_trained(qtbot, window, tmp_path):
    w = window
    assert "No model yet" in w.gen.source.text()
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    w.form.set_values({"duration": 1_000_000, "sample_every": 0})
    w.train_new()
    qtbot.waitUntil(lambda: w.ctl.history.train.n >= 2, timeout=20_000)
    assert "No model yet" not in w.gen.source.text()
    assert "being trained" in w.gen.source.text()
    assert w.gen.go.isEnabled()
    w.ctl.stop()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=20_000)
    assert w.gen.source.text() == "Model: the model just trained"


def test_continue_is_disabled_with_the_reason_when_the_model_cannot_read_the_text(
    qtbot, window, tmp_path, monkeypatch
):
    w = window
    own = small_text(tmp_path / "own.txt")
    _load(qtbot, w, own)
    _train(qtbot, w, steps=12)
    assert w.actions["continue"].isEnabled()
    model = tmp_path / "models" / "m.npz"
    model.parent.mkdir()
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(model))
    _load(qtbot, w, small_text(tmp_path / "other.txt", extra=" grüße ärger"))
    cont = w.actions["continue"]
    assert not cont.isEnabled()
    tip = shown_tip(cont.toolTip())  # plain text, escaped for the tooltip (widgets.plain)
    assert "cannot represent 3 character(s)" in tip
    # the one message for characters a model cannot represent (charlstm_core.errors.unrepresentable)
    assert "'ß', 'ä', 'ü'" in tip and "own.txt" in tip
    assert cont.statusTip() == tip
    assert w.actions["open_model_text"].isEnabled()
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.actions["open_model_text"].trigger()  # found among the recent texts
    assert w.ctl.corpus.path == str(own)
    assert cont.isEnabled() and "cannot represent" not in cont.toolTip()
    assert not w.actions["open_model_text"].isEnabled()  # it is the loaded text now

    # Opening the model while the other text is loaded offers to open the model's own text.
    _load(qtbot, w, tmp_path / "other.txt")
    offered: list[str] = []
    monkeypatch.setattr(w, "offer_model_text", lambda text, path: offered.append(path))
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(str(model))
    assert offered == [str(own)]
    assert not cont.isEnabled()


def test_a_finished_run_is_announced_and_asks_for_attention_in_the_background(
    qtbot, window, tmp_path, monkeypatch
):
    w = window
    alerts: list[bool] = []
    monkeypatch.setattr(w, "alert", lambda: alerts.append(True))
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    assert not w.isActiveWindow()  # never shown: as if another window had the focus
    _train(qtbot, w, steps=12)
    qtbot.waitUntil(lambda: bool(alerts), timeout=5000)
    msg = w.statusBar().currentMessage()
    assert msg.startswith("Training finished at step 12 after ") and "best validation" in msg


def test_f1_opens_the_user_guide_and_about_stays_apart(qtbot, window):
    w = window
    help_action = w.actions["help"]
    assert help_action.shortcut() == QKeySequence("F1")
    assert w.actions["about"].shortcut().isEmpty()
    help_action.trigger()
    guide = w._help
    qtbot.waitUntil(guide.isVisible, timeout=5000)
    text = guide.browser.toPlainText()
    assert "CharLSTM Studio guide" in text and "Continue Training" in text
    assert "Keyboard shortcuts" in text  # the whole guide, rendered (no Markdown marks left)
    assert "**" not in text and "## " not in text
    help_action.trigger()
    assert w._help is guide  # one window, raised again
    guide.close()


def test_open_model_brings_back_the_samples_history(qtbot, window, tmp_path):
    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w, steps=30)  # samples at steps 10, 20, 30
    shown = w.samples.toPlainText()
    assert w.samples.count == 3
    model = tmp_path / "m.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(model))
    w.samples.clear_samples()
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(str(model))
    assert w.samples.count == 3
    assert w.samples.toPlainText() == shown  # same heads (step, validation loss) and texts
