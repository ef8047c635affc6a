"""Helpers shared by the engine and command-line tests: a tiny text, tiny settings, the CLI run
in-process, a generator drained to its events, and float tolerances stated in units of the dtype's
resolution. Test files import them (``from helpers import ...``: pytest puts ``tests/`` on the
import path); the ``text`` fixture is in tests/conftest.py.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
from charlstm_core.cli import parser as cli
from charlstm_core.config import TrainConfig

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]

# `charlstm train` options for a model that trains in a blink: H=16, one layer, B=4, T=16.
TINY = ["--hidden", "16", "--layers", "1", "--seq-len", "16", "--batch-size", "4"]
TINY += ["--eval-every", "10", "--sample-every", "0"]


# ------------------------------------------------------------------ float tolerances
#
# Two float computations of the same thing agree only to rounding when they round in different
# orders: another BLAS kernel (each CPU family has its own: blocking, SIMD lanes, summation order),
# a product cut into blocks of rows, or the same rows in a product of another shape. A tolerance
# is therefore stated in ULP (units in the last place: multiples of the dtype's machine epsilon),
# with the number of ULP derived from the computation and a comment saying why, never as a bare
# 1e-5 that is loose in float64 and tighter than one rounding for a float32 value near 19.


def ulp(dtype: Any, n: float) -> float:
    """``n`` ULP of ``dtype`` at 1.0, i.e. ``n · eps``: a relative tolerance of n roundings, or,
    times an array's largest value (``assert_ulps``), an absolute one."""
    return n * float(np.finfo(dtype).eps)


def drift_ulps(steps: int, terms: int, layers: int = 1) -> float:
    """How far apart, in ULP of an array's largest value, two readings of one LSTM may end when
    they sum its dot products of ``terms`` terms in different orders.

    Each step's pre-activations are then about log2(terms) roundings apart (BLAS sums in blocks
    and SIMD lanes, not one term after another), and the state carries every step's error on to
    the next: in a recurrence that does not amplify its state's errors they at most add up, along
    the longest chain of dependent steps (``steps`` along the passage, then ``layers - 1`` up the
    stack). A forget gate below 1 or a saturated gate shrinks them, so this is an upper bound,
    reached only where the state keeps everything (the tests' deliberately saturated models)."""
    return (steps + layers - 1) * math.log2(terms)


def assert_ulps(actual: Any, expected: Any, n: float, dtype: Any = None, err_msg: str = "") -> None:
    """``|actual - expected| <= n`` ULP of ``dtype`` (default: ``expected``'s) times the largest
    ``|expected|``: the honest form for values that cross zero, whose entries near 0 carry the
    rounding of the larger values they were computed from (a relative tolerance would ask those
    entries for digits no float has)."""
    expected = np.asarray(expected)
    scale = float(np.abs(expected).max())
    atol = ulp(expected.dtype if dtype is None else dtype, n) * scale
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=err_msg)


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


# an event's clock readings: they differ from run to run (charlstm_core.training.measures)
CLOCKED = ("elapsed_s", "chars_per_sec", "duration_s", "eta_s")


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
