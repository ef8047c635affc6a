"""How big and how slow a model will be on this machine, before training starts.

Parameter count and memory are exact formulas of the architecture. Seconds per step are estimated
from the step's floating-point work divided by the effective speed of a short real training step
of the engine, timed on this machine.
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


def measure_gflops(batch: int, hidden: int, device: str = "cpu") -> float:
    """Effective GFLOP/s of a real training step of the engine on this machine (``device``:
    "cpu" or "gpu:N", the engine of ``core.backend.make_engine``).

    Times ``core.model.loss_and_grads`` (forward, softmax, backward: products *and* the gate
    work and Python overhead around them) on random data at the given B and H, one layer, for
    windows of 8 and 40 characters, and divides :func:`step_flops` of one time step by the
    difference per time step (about ten short steps in all).
    Element-wise work scales with the products, so this predicts real steps far better than a
    bare matrix-multiply timing (which read ~3x too fast here).
    """
    key = (batch, hidden, device)
    if key in _GFLOPS_CACHE:
        return _GFLOPS_CACHE[key]
    from core.backend import make_engine
    from core.config import ModelConfig
    from core.model import init_params

    vocab = 64
    cfg = ModelConfig(vocab_size=vocab, hidden_size=hidden, num_layers=1, dropout=0.0)
    rng = np.random.default_rng(0)
    engine = make_engine(device, cfg)
    params = {k: engine.to_device(v) for k, v in init_params(cfg, rng).items()}
    x = rng.integers(0, vocab, (batch, 40))
    state = engine.zero_state(batch)

    def seconds(seq_len: int) -> float:
        xs = x[:, :seq_len]
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            engine.loss_and_grads(params, xs, xs, state)  # returns a float: synchronised
            best = min(best, time.perf_counter() - t0)
        return best

    seconds(2)  # warm-up
    # The cost of one more time step (what a long window is made of), free of the fixed costs
    # a short timing would over-weight.
    per_step = max((seconds(40) - seconds(8)) / 32, 1e-9)
    gflops = step_flops(vocab, hidden, 1, batch, 1) / per_step / 1e9
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

    ``gflops`` is the effective speed of a real (one-layer, short) training step, so element-wise
    work and overhead are already in it; the optimizer update adds a few percent.
    It is a guide; the status bar shows the measured speed once training runs.
    """
    flops = step_flops(vocab, hidden, layers, batch, seq_len)
    sps = None
    if gflops:
        sps = 1.05 * flops / (gflops * 1e9)
    return Estimate(
        param_count(vocab, hidden, layers),
        memory_bytes(vocab, hidden, layers, batch, seq_len),
        sps,
        gflops,
    )
