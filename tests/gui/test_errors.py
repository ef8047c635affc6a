"""Every error a user can cause is a clear message in the window; bugs open the error report."""

from __future__ import annotations

import sys

import charlstm_core.training.trainer
from charlstm_core.errors import TrainingDiverged

from charlstm_gui.controller.controller import State
from charlstm_gui.widgets import dialogs

from .fakes import FakeModel, FakeTrainer
from .helpers import small_text


def test_binary_file_is_refused(qtbot, window, tmp_path):
    bad = tmp_path / "image.bin"
    bad.write_bytes(b"GIF89a\x00\x01\x02" * 10)
    with qtbot.waitSignal(window.ctl.message, timeout=10_000) as msg:
        window.open_text(str(bad))
    assert msg.args[0] == "Cannot use this text"
    assert window.last_message is not None and window.ctl.corpus is None


def test_missing_file_is_a_message(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.ctl.message, timeout=10_000):
        window.open_text(str(tmp_path / "nope.txt"))
    assert "nope.txt" in window.last_message[1]


def test_not_utf8_offers_another_encoding(qtbot, window, tmp_path, monkeypatch):
    path = tmp_path / "latin.txt"
    path.write_bytes("café au lait, crème brûlée\n".encode("latin-1") * 200)
    asked = []
    monkeypatch.setattr(window, "ask_encoding", lambda p, m: asked.append((p, m)) or "latin-1")
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=10_000):
        window.open_text(str(path))
    assert asked and asked[0][0] == str(path) and "utf-8" in asked[0][1]
    assert window.ctl.corpus.encoding == "latin-1"
    assert window.text_panel.labels["encoding"].text() == "latin-1"


def test_text_too_short_for_settings(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=10_000):
        window.open_text(str(small_text(tmp_path / "t.txt")))
    window.form.set_values({"batch_size": 4000, "seq_len": 1000})
    window.train_new()
    assert window.ctl.state is State.IDLE
    title, text = window.last_message
    assert title == "Check the settings" and "too short" in text
    assert window.form.problem.isVisibleTo(window.form)


def test_corrupt_model_file(qtbot, window, tmp_path):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a real zip")
    with qtbot.waitSignal(window.ctl.message, timeout=10_000) as msg:
        window.open_model(str(bad))
    assert msg.args[0] == "Cannot open this model"
    assert window.ctl.model is None


def test_model_vocabulary_does_not_fit_text(qtbot, window, tmp_path):
    w = window
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "a.txt")))
    w.form.set_values({"duration": 5})
    w.train_new()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=20_000)
    model = tmp_path / "a.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(model))
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "b.txt", extra="Ωmega ½")))
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(str(model))
    w.form.set_values({"duration": 20})
    with qtbot.waitSignal(w.ctl.message, timeout=20_000) as msg:
        w.continue_training()
    assert msg.args[0] == "The model does not fit this text"
    assert "Ω" in msg.args[1]
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=10_000)
    assert model.exists()  # nothing already saved is lost


def test_divergence_is_reported_and_last_good_model_kept(qtbot, window, tmp_path, monkeypatch):
    w = window
    exc = TrainingDiverged("Training diverged at step 4: the loss became NaN.", step=4)
    monkeypatch.setattr(
        charlstm_core.training.trainer,
        "Trainer",
        lambda *a, **k: FakeTrainer(steps=50, fail_at=4, exc=exc),
    )
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "t.txt")))
    with qtbot.waitSignal(w.ctl.message, timeout=10_000) as msg:
        w.train_new()
    assert msg.args == ["Training diverged", str(exc)]
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=10_000)
    assert w.ctl.model == FakeModel(4)
    assert w.actions["train"].isEnabled()


def test_unexpected_worker_error_opens_report(qtbot, window, tmp_path, monkeypatch):
    w = window
    monkeypatch.setattr(
        charlstm_core.training.trainer,
        "Trainer",
        lambda *a, **k: FakeTrainer(fail_at=2, exc=ZeroDivisionError("bug")),
    )
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(small_text(tmp_path / "t.txt")))
    # the fake's model has no weights: the Inspect view may report its own failure to read it
    # first (a second report), so wait for the one about the trainer's bug
    with qtbot.waitSignal(
        w.ctl.internal_error, timeout=10_000, check_params_cb=lambda tb: "ZeroDivisionError" in tb
    ) as err:
        w.train_new()
    assert "ZeroDivisionError: bug" in err.args[0]
    qtbot.waitUntil(
        lambda: any("ZeroDivisionError" in d.details.toPlainText() for d in dialogs._open_dialogs),
        timeout=5000,
    )
    dialog = next(
        d for d in dialogs._open_dialogs if "ZeroDivisionError" in d.details.toPlainText()
    )
    assert "ZeroDivisionError" in dialog.details.toPlainText()
    dialog.copy()
    for d in list(dialogs._open_dialogs):
        d.reject()


def test_excepthook_shows_copyable_traceback(qtbot, qapp):
    try:
        raise KeyError("surprise")
    except KeyError:
        dialogs.excepthook(*sys.exc_info())
    dialog = dialogs._open_dialogs[-1]
    assert "KeyError: 'surprise'" in dialog.details.toPlainText()
    dialog.copy()
    assert "surprise" in qapp.clipboard().text()
    dialog.reject()
