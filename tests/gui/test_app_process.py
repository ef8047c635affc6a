"""The app as a process (issue 9, A4 and A5): a file name that is not UTF-8 on the command line,
and SIGTERM / SIGHUP saving unsaved training before the app quits. Each test runs the app
offscreen in a subprocess for a few seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from .helpers import TINY, small_text

BAD = b"bad\xffname"  # legal in a Linux file name, not UTF-8


def _env(tmp_path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    return env


def _bad_path(tmp_path, suffix: bytes) -> str:
    return os.fsdecode(os.fsencode(tmp_path) + b"/" + BAD + suffix)


# The real main(), with one hook: when a text has loaded, say so and ask the app to quit.
OPEN_TEXT = """
import os, signal, sys
from charlstm_gui import app
from charlstm_gui.views import reports as controller_view
shown = controller_view.ControllerView.on_corpus
def on_corpus(self, corpus):
    shown(self, corpus)
    print("loaded", corpus.name, corpus.n_chars, corpus.path == sys.argv[1], flush=True)
    print("title", self.win.windowTitle().encode("unicode_escape").decode(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
controller_view.ControllerView.on_corpus = on_corpus
sys.exit(app.main(sys.argv))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names may hold any bytes")
def test_a_text_whose_name_is_not_utf8_opens_from_the_command_line(tmp_path):
    text = _bad_path(tmp_path, b".txt")
    small_text(tmp_path / "t.txt")
    os.rename(tmp_path / "t.txt", text)
    out = subprocess.run(
        [sys.executable, "-c", OPEN_TEXT, os.fsencode(text)],
        env=_env(tmp_path),
        capture_output=True,
        timeout=120,
    )
    stdout = out.stdout.decode()
    assert out.returncode == 128 + signal.SIGTERM, out.stderr.decode()[-2000:]
    assert "loaded bad\\xffname.txt" in stdout and " True" in stdout  # the very file
    assert "bad\\\\xffname.txt" in stdout  # the title shows the name, escaped


@pytest.mark.skipif(sys.platform != "linux", reason="Linux file names may hold any bytes")
def test_a_model_whose_name_is_not_utf8_opens_from_the_command_line(tmp_path):
    from charlstm_core.config import ModelConfig, TrainConfig
    from charlstm_core.files.modelfile import save_model
    from charlstm_core.files.text import load_corpus
    from charlstm_core.training.trainer import Trainer

    corpus = load_corpus(small_text(tmp_path / "t.txt"))
    trainer = Trainer(
        corpus,
        ModelConfig(vocab_size=corpus.vocab.size, hidden_size=8),
        TrainConfig(seq_len=8, batch_size=2, steps=2, eval_every=0, sample_every=0),
    )
    for _ in trainer.run():
        pass
    model = _bad_path(tmp_path, b".npz")
    save_model(model, trainer.snapshot())
    out = subprocess.run(
        [sys.executable, "-m", "charlstm_gui", "--self-test", os.fsencode(model)],
        env=_env(tmp_path),
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().startswith("self-test ok: bad\\xffname.npz: 1 x 8 LSTM")


# Train until step 5, say so, then wait for the signal the test sends.
TRAIN = """
import json, sys
from charlstm_gui import app
from charlstm_gui.window import MainWindow
qapp = app.create_app(sys.argv[:1])
w = MainWindow()
w.show()
app.install_quit_signals(qapp, w.save_and_quit)
w.form.set_values(json.loads(sys.argv[2]))
w.ctl.corpus_changed.connect(lambda corpus: w.train_new())
said = []
def events(batch):
    if not said and w.ctl.last_step is not None and w.ctl.last_step.step >= 5:
        said.append(1)
        print("training", flush=True)
w.ctl.train_events.connect(events)
w.open_text(sys.argv[1])
sys.exit(qapp.exec())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_quit_signal_saves_unsaved_training_and_quits_cleanly(tmp_path, signum):
    from charlstm_core.files.modelfile import load_model

    autosave = tmp_path / "autosave"
    settings = {
        **TINY,
        "duration": 1_000_000,
        "sample_every": 0,
        "checkpoint_every": 0,
        "autosave_dir": str(autosave),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN, str(small_text(tmp_path / "t.txt")), json.dumps(settings)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "training"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signum, err[-2000:]
    name = signal.Signals(signum).name
    line = [s for s in err.splitlines() if s.startswith(f"charlstm-gui: {name}: ")]
    assert line and "saved the unsaved model to " in line[0], err[-2000:]
    path = line[0].split("saved the unsaved model to ", 1)[1]
    assert os.path.dirname(path) == str(autosave)
    assert load_model(path).train.step >= 5
    assert sorted(p.name for p in autosave.iterdir()) == [os.path.basename(path)]  # no lock
