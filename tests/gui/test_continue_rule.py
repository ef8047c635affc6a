"""The app's Continue follows charlstm_core.training.policy.plan_resume, as `charlstm train
--resume` does:
"Train for" in steps or epochs is the model's total, so a total already reached trains nothing."""

from __future__ import annotations

from charlstm_core.training.policy import steps_for_epochs, text_batches_per_epoch

from charlstm_gui.controller.state import State

from .helpers import small_text


def _run(qtbot, w, **values) -> None:
    w.form.set_values(values)
    (w.continue_training if w.ctl.model is not None else w.train_new)()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)


def test_continue_counts_epochs_as_the_models_total(qtbot, window, tmp_path):
    w = window
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "t.txt")))
    _run(qtbot, w, duration_unit="steps", duration=12, sample_every=0)
    assert w.ctl.model.train.step == 12
    # 0.01 epochs is one step in total: reached already, so nothing starts
    w.form.set_values({"duration_unit": "epochs", "duration": 0.01})
    w.continue_training()
    assert w.last_message[0] == "Nothing left to train"
    assert "0.01 epochs (1 steps)" in w.last_message[1] and w.ctl.state is State.IDLE
    assert w.ctl.model.train.step == 12
    # one epoch in total: the run ends where one pass over this text ends
    w.last_message = None
    _run(qtbot, w, duration_unit="epochs", duration=1.0)
    tc = w.ctl.model.train.config
    one_pass = steps_for_epochs(1.0, text_batches_per_epoch(w.ctl.corpus.n_chars, tc))
    assert w.last_message is None and w.ctl.model.train.step == one_pass > 12
