"""Helpers shared by the engine and command-line tests: a tiny text, tiny settings, the CLI run
in-process, and a generator drained to its events. Test files import them (``from helpers import
...``: pytest puts ``tests/`` on the import path); the ``text`` fixture is in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from charlstm_core.cli import parser as cli
from charlstm_core.config import TrainConfig

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]

# `charlstm train` options for a model that trains in a blink: H=16, one layer, B=4, T=16.
TINY = ["--hidden", "16", "--layers", "1", "--seq-len", "16", "--batch-size", "4"]
TINY += ["--eval-every", "10", "--sample-every", "0"]


def make_text(n: int = 4000, seed: int = 0) -> str:
    """``n`` characters of words from a ten-word vocabulary in random order, then a newline."""
    rng = np.random.default_rng(seed)
    return " ".join(str(w) for w in rng.choice(WORDS, size=n // 3))[:n] + "\n"


def small_train_config(**kw: Any) -> TrainConfig:
    """Settings for a 30-step run at T=16, B=4 with no samples or checkpoints; ``kw`` overrides."""
    base: dict[str, Any] = dict(
        seq_len=16,
        batch_size=4,
        lr=1e-2,
        warmup_steps=5,
        eval_every=10,
        sample_every=0,
        checkpoint_every=0,
        steps=30,
        seed=7,
    )
    base.update(kw)
    return TrainConfig(**base)


def drain(gen: Generator) -> tuple[list, Any]:
    """Every event a trainer's generator yields, and the value it returns."""
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def run_cli(capsys: Any, *argv: Any) -> tuple[int, str, str]:
    """``charlstm ARGV`` in-process: its exit status, stdout and stderr (never a traceback)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def nan_loss_at_call(monkeypatch: Any, n: int) -> None:
    """Make the ``n``-th training step's loss NaN (the CPU engine's ``loss_and_grads``,
    charlstm_core.engine.cpu), as a run that diverges there."""
    from charlstm_core.engine.cpu import CpuEngine

    real = CpuEngine.loss_and_grads
    calls = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        loss, grads, state = real(*args, **kwargs)
        return (float("nan") if len(calls) == n else loss), grads, state

    monkeypatch.setattr(CpuEngine, "loss_and_grads", failing)
