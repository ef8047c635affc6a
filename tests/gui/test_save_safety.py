"""The app never writes one model over another: which file a model belongs to (issue 9, A1)."""

from __future__ import annotations

import hashlib

from charlstm_gui.controller import State

from .helpers import small_text


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(qtbot, w, path) -> None:
    with qtbot.waitSignal(w.ctl.corpus_changed, timeout=10_000):
        w.open_text(str(path))


def _train(qtbot, w, steps: int = 20) -> None:
    w.form.set_values({"duration": steps})
    w.train_new()
    assert w.ctl.state is State.STARTING, w.last_message
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)


def test_saving_before_a_new_model_does_not_make_the_new_run_own_that_file(
    qtbot, window, tmp_path, monkeypatch
):
    # The sequence: train without saving -> Train New Model -> "Save it first?" -> Save
    # as B.npz -> the new run must not take B.npz as its file -> Stop -> Ctrl+S must ask.
    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w)
    assert w.ctl.dirty and w.ctl.model_path is None
    b = tmp_path / "B.npz"
    asked: list[str] = []

    def ask_path() -> str | None:
        asked.append("path")
        return str(b) if len(asked) == 1 else None

    monkeypatch.setattr(w, "ask_unsaved", lambda context: "save")
    monkeypatch.setattr(w, "ask_save_path", ask_path)
    w.form.set_values({"duration": 1_000_000, "sample_every": 0})
    w.train_new()
    assert w.ctl.training
    qtbot.waitUntil(b.exists, timeout=10_000)
    saved_first = _digest(b)
    qtbot.waitUntil(lambda: w.ctl.history.train.n >= 3, timeout=20_000)
    qtbot.wait(100)  # any late "saved" answer has arrived by now
    assert w.ctl.model_path is None
    assert "B.npz" not in w.windowTitle()
    w.actions["stop"].trigger()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=20_000)
    w.actions["save"].trigger()  # Ctrl+S on the new, never saved model
    assert asked == ["path", "path"]  # it asked where (the test then cancels)
    qtbot.wait(100)
    assert _digest(b) == saved_first
    assert w.ctl.model_path is None and w.ctl.dirty


def test_a_late_save_of_the_old_model_does_not_claim_the_opened_one(
    qtbot, window, tmp_path, monkeypatch
):
    # A save still running when another model is opened must not make that model's file the
    # opened model's file (the next Ctrl+S would overwrite it).
    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w)
    a = tmp_path / "A.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(a))
    _train(qtbot, w, steps=15)
    b = tmp_path / "B.npz"
    import time

    from core import modelfile

    real_save = modelfile.save_model

    def slow_save(path, mf):
        time.sleep(0.5)  # the save ends after the open
        return real_save(path, mf)

    monkeypatch.setattr(modelfile, "save_model", slow_save)
    with qtbot.waitSignals([w.ctl.saved, w.ctl.model_opened], timeout=10_000):
        w.ctl.save_model(str(b))  # the new model to B, in the background ...
        w.ctl._set_dirty(False)
        w.ctl.open_model(str(a))  # ... while A opens
    qtbot.wait(100)
    assert w.ctl.model_path == str(a)
    assert w.ctl.model.train.step == 20


def test_continuing_an_opened_model_keeps_its_file(qtbot, window, tmp_path):
    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w)
    a = tmp_path / "A.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(a))
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(str(a))
    w.form.set_values({"duration": 30})
    w.continue_training()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)
    assert w.ctl.model_path == str(a) and "A.npz" in w.windowTitle()
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.save()
    from core.modelfile import load_model

    assert load_model(a).train.step == 30
