"""Fault injection: hostile model files, special output paths, non-UTF-8 names, signals and
kill -9 during training and saving, a full disk, two writers. Each test states the guarantee it
checks (README, "Your work is safe")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core.config import ModelConfig, TrainConfig
from core.data import corpus_from_text
from core.errors import ModelFileError, ModelFileLocked
from core.modelfile import (
    ModelLock,
    check_not_locked,
    load_model,
    lock_path,
    save_model,
)
from core.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CHARLSTM_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def checkpoint():
    """A small trained checkpoint (ModelFile with training state)."""
    corpus = corpus_from_text(TEXT, name="fox.txt")
    mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=8)
    tc = TrainConfig(steps=3, batch_size=4, seq_len=8, eval_every=0, sample_every=0)
    trainer = Trainer(corpus, mc, tc)
    for _ in trainer.run():
        pass
    return trainer.snapshot()


# ---------------------------------------------------------------------------------------------
# Two writers: a ModelLock per file


def test_lock_refuses_a_second_holder_in_this_process(tmp_path):
    path = tmp_path / "m.npz"
    with ModelLock(path) as lock:
        assert lock.held and os.path.exists(lock_path(path))
        with pytest.raises(ModelFileLocked, match="m.npz is in use"):
            ModelLock(path).acquire()
    assert not lock.held
    assert not os.path.exists(lock_path(path))  # the sidecar goes with the lock
    ModelLock(path).acquire().release()  # free again


def test_lock_refuses_another_process_and_its_saves(tmp_path, checkpoint):
    path = tmp_path / "m.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from core.modelfile import ModelLock
            lock = ModelLock({str(path)!r}).acquire()
            print("held", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ModelFileLocked) as info:
            ModelLock(path).acquire()
        assert info.value.pid == holder.pid and str(holder.pid) in str(info.value)
        with pytest.raises(ModelFileLocked):
            save_model(path, checkpoint)
        assert not path.exists()
    finally:
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()
    # The holder is gone: the kernel dropped its lock; a save works and clears the stale sidecar.
    save_model(path, checkpoint)
    assert not os.path.exists(lock_path(path))
    load_model(path)


def test_lock_of_a_killed_holder_is_free(tmp_path):
    path = tmp_path / "m.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from core.modelfile import ModelLock; "
         f"ModelLock({str(path)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    with holder:
        assert holder.stdout.readline().strip() == "held"
        holder.kill()
    assert os.path.exists(lock_path(path))  # left behind by kill -9, but not held
    check_not_locked(path)
    with ModelLock(path):
        pass


def test_lock_is_shared_by_a_symlink_and_its_target(tmp_path):
    target = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    with ModelLock(target), pytest.raises(ModelFileLocked):
        ModelLock(link).acquire()


def test_save_target_errors_are_model_file_errors(tmp_path, checkpoint):
    with pytest.raises(ModelFileError, match="folder"):
        save_model(tmp_path, checkpoint)
    with pytest.raises(ModelFileError, match="does not exist"):
        save_model(tmp_path / "nope" / "m.npz", checkpoint)
    assert not np.any([p.name.endswith(".tmp") for p in tmp_path.iterdir()])
