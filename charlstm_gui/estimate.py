"""How big and how slow a model will be on this machine, before training starts.

Parameter count and memory are exact formulas of the architecture. Seconds per step are estimated
from the step's floating-point work divided by a measured matrix-multiply speed: a ~50 ms timing of
the recurrent product ``(B, H) @ (H, 4H)``, the operation that dominates an LSTM step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


def param_count(vocab: int, hidden: int, layers: int) -> int:
    """LSTM weights + both bias vectors per layer, plus the decoder (PyTorch's layout)."""
    total = 0
    for k in range(layers):
        n_in = vocab if k == 0 else hidden
        total += 4 * hidden * (n_in + hidden) + 8 * hidden
    return total + vocab * hidden + vocab


def step_flops(vocab: int, hidden: int, layers: int, batch: int, seq_len: int) -> float:
    """Multiply-adds x 2 of forward + backward (~3x forward) for one B x T batch.

    The first layer's input is a gathered column (one-hot), so it costs no product.
    """
    per_char = 0
    for k in range(layers):
        n_in = 0 if k == 0 else hidden
        per_char += 4 * hidden * (n_in + hidden)
    per_char += vocab * hidden
    return 2.0 * 3.0 * per_char * batch * seq_len


def memory_bytes(
    vocab: int, hidden: int, layers: int, batch: int, seq_len: int, itemsize: int = 4
) -> int:
    """Weights, gradients and two Adam moments, plus the activations kept for backprop.

    Per layer and character the cache holds the 4 gates, c, tanh(c) and h (7H numbers); the
    decoder keeps logits and their gradient (2V).
    """
    weights = 4 * param_count(vocab, hidden, layers)
    activations = batch * seq_len * (layers * 7 * hidden + 2 * vocab)
    return int(itemsize * (weights + activations))


_GFLOPS_CACHE: dict[tuple[int, int], float] = {}


def measure_gflops(batch: int, hidden: int, budget_s: float = 0.05) -> float:
    """GFLOP/s of ``(B, H) @ (H, 4H)`` in float32 on this machine, timed for ~``budget_s``."""
    key = (batch, hidden)
    if key in _GFLOPS_CACHE:
        return _GFLOPS_CACHE[key]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((batch, hidden), dtype=np.float32)
    w = rng.standard_normal((hidden, 4 * hidden), dtype=np.float32)
    a @ w  # warm-up
    reps, t0 = 0, time.perf_counter()
    while True:
        a @ w
        reps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= budget_s:
            break
    gflops = 2.0 * batch * hidden * 4 * hidden * reps / elapsed / 1e9
    _GFLOPS_CACHE[key] = gflops
    return gflops


@dataclass(frozen=True)
class Estimate:
    params: int
    memory: int
    seconds_per_step: float | None  # None until measured
    gflops: float | None


def estimate(
    vocab: int, hidden: int, layers: int, batch: int, seq_len: int, gflops: float | None
) -> Estimate:
    """Everything the settings-versus-data check shows; ``gflops`` from :func:`measure_gflops`.

    Element-wise work (gates, softmax) is not in the FLOP count, so the estimate adds 60% to the
    matrix time, plus ~20 us of Python overhead per layer and time step (it dominates tiny
    models).
    It is a guide; the status bar shows the measured speed once training runs.
    """
    flops = step_flops(vocab, hidden, layers, batch, seq_len)
    sps = None
    if gflops:
        sps = 1.6 * flops / (gflops * 1e9) + seq_len * layers * 2e-5
    return Estimate(
        param_count(vocab, hidden, layers),
        memory_bytes(vocab, hidden, layers, batch, seq_len),
        sps,
        gflops,
    )
