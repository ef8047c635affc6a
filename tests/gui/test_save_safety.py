"""The app never writes one model over another: which file a model belongs to (issue 9, A1)."""

from __future__ import annotations

import functools
import hashlib

from charlstm_gui.controller.controller import State

from .helpers import load as _load
from .helpers import small_text, train


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


_train = functools.partial(train, steps=20)  # these tests' runs are 20 steps


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

    from charlstm_core.files import modelfile

    real_save = modelfile.save_model

    def slow_save(path, mf):
        time.sleep(0.5)  # the save ends after the open
        return real_save(path, mf)

    monkeypatch.setattr(modelfile, "save_model", slow_save)
    with qtbot.waitSignals([w.ctl.saved, w.ctl.model_opened], timeout=10_000):
        w.ctl.save_model(str(b))  # the new model to B, in the background ...
        w.ctl.files.set_dirty(False)
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
    from charlstm_core.files.modelfile import load_model

    assert load_model(a).train.step == 30


def _hold_lock(path):
    """Another process holding ``path``'s ModelLock (as a CLI run training into it would)."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from charlstm_core.files.modelfile import ModelLock\n"
        "ModelLock(sys.argv[1]).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _try_lock_elsewhere(path) -> str:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from charlstm_core.files.modelfile import ModelLock\n"
        "from charlstm_core.errors import ModelFileLocked\n"
        "try:\n"
        "    ModelLock(sys.argv[1]).acquire()\n"
        "except ModelFileLocked as e:\n"
        "    print(e)\n"
        "else:\n"
        "    print('free')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


def test_save_refuses_a_fifo_and_saves_through_a_symlink(qtbot, window, tmp_path):
    import os
    import stat

    from charlstm_core.files.modelfile import load_model

    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w, steps=12)
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    w.ctl.save_model(str(fifo))  # must neither block nor replace the FIFO
    assert w.last_message[0] == "The model was not saved"
    assert "FIFO" in w.last_message[1] and str(fifo) in w.last_message[1]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and w.ctl.model_path is None

    real = tmp_path / "store" / "real.npz"
    real.parent.mkdir()
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(link))
    assert link.is_symlink() and load_model(real).train.step == 12
    assert f"Saved the model to {real} (through the link {link})" in (
        w.statusBar().currentMessage()
    )


def test_a_run_holds_the_lock_on_its_model_file(qtbot, window, tmp_path):
    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w, steps=12)
    a = tmp_path / "A.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(a))
    assert _try_lock_elsewhere(a) == "free"  # no run: nobody holds it
    w.form.set_values({"duration": 1_000_000, "sample_every": 0})
    w.continue_training()
    qtbot.waitUntil(lambda: w.ctl.state is State.TRAINING, timeout=20_000)
    told = _try_lock_elsewhere(a)  # a second writer (the CLI) is told who holds it
    assert told.startswith(f"{a} is in use: process ") and "training into it" in told
    assert "in use" in _try_lock_elsewhere(w.ctl.files.autosave_lock.path)
    w.ctl.stop()
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=20_000)
    assert _try_lock_elsewhere(a) == "free"


def test_a_model_file_held_by_another_run_is_not_written(qtbot, window, tmp_path):
    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w, steps=12)
    a = tmp_path / "A.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(a))
    before = _digest(a)
    proc = _hold_lock(a)
    try:
        w.ctl.save_model(str(a))  # Ctrl+S while the CLI trains into A
        assert w.last_message[0] == "The model was not saved"
        assert f"{a} is in use: process {proc.pid}" in w.last_message[1]
        w.form.set_values({"duration": 20})
        w.continue_training()  # continuing A goes on, but not into A
        assert w.last_message[0] == "The model file is in use"
        assert "Save asks for another file" in w.last_message[1]
        qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)
        assert w.ctl.model_path is None and w.ctl.model.train.step == 20
        assert _digest(a) == before
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_model_whose_name_is_not_utf8_keeps_its_exact_path(qtbot, window, tmp_path):
    # Qt's str signals drop a file name's undecodable bytes: the path must not pass through one,
    # or the next Ctrl+S writes another file.
    import os

    w = window
    _load(qtbot, w, small_text(tmp_path / "t.txt"))
    _train(qtbot, w, steps=12)
    bad = os.fsdecode(os.fsencode(tmp_path) + b"/m\xff.npz")
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(bad)
    assert w.ctl.model_path == bad
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(bad)
    assert w.ctl.model_path == bad
    assert "m\\xff.npz" in w.windowTitle()
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.save()
    assert [n for n in os.listdir(tmp_path) if n.endswith(".npz")] == [os.path.basename(bad)]
