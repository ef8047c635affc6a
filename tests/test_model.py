"""core/engine/model.py and the CPU engine's training pass: finite-difference gradients (float64),
torch equivalence, step == forward."""

from __future__ import annotations

import math

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine import cell, model
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.engine.trace import trace
from helpers import assert_ulps, drift_ulps, ulp

V, H, L, B, T = 7, 5, 2, 3, 6


def _setup(dropout: float = 0.0, dtype: str = "float64", seed: int = 0):
    cfg = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=dropout, dtype=dtype)
    rng = np.random.default_rng(seed)
    params = model.init_params(cfg, rng)
    for name in params:  # non-trivial biases and larger weights make every path count
        params[name] = (params[name] + rng.uniform(-0.5, 0.5, params[name].shape)).astype(dtype)
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))
    state = tuple(rng.uniform(-0.8, 0.8, (L, B, H)).astype(dtype) for _ in range(2))
    return cfg, params, x, y, state


def loss_and_grads(params, cfg, x, y, state, rng=None, workers=None):
    """The CPU engine's training pass, its batch cut into ``workers`` slices (None: as it
    decides)."""
    return CpuEngine(cfg, workers=workers).loss_and_grads(params, x, y, state, rng)


def _check_gradients(dropout: float, workers: int | None = None) -> None:
    cfg, params, x, y, state = _setup(dropout)

    def rng():  # identical masks at every evaluation
        return np.random.default_rng(42) if dropout > 0 else None

    loss, grads, _ = loss_and_grads(params, cfg, x, y, state, rng(), workers=workers)
    assert set(grads) == set(model.param_names(cfg))
    # eps balances truncation (~eps²) and round-off (~1e-16 / eps); relative errors are taken
    # against max(|fd| + |grad|, 1e-4) so that exactly-zero gradients are judged absolutely
    eps = 1e-4
    for name, p in params.items():
        assert grads[name].shape == p.shape, name
        fd = np.empty_like(p)
        for j in np.ndindex(p.shape):
            old = p[j]
            p[j] = old + eps
            lp = loss_and_grads(params, cfg, x, y, state, rng(), workers=workers)[0]
            p[j] = old - eps
            lm = loss_and_grads(params, cfg, x, y, state, rng(), workers=workers)[0]
            p[j] = old
            fd[j] = (lp - lm) / (2 * eps)
        err = np.abs(fd - grads[name]) / np.maximum(np.abs(fd) + np.abs(grads[name]), 1e-4)
        assert err.max() < 1e-6, (name, float(err.max()))


def test_gradients_match_finite_differences_every_parameter():
    _check_gradients(dropout=0.0)


def test_gradients_with_dropout_fixed_masks():
    _check_gradients(dropout=0.3)


def test_gradients_of_a_batch_cut_into_slices():
    # each of the B streams on its own thread: the summed slice gradients are the gradient
    _check_gradients(dropout=0.3, workers=B)


def test_slices_give_the_one_slice_result():
    cfg, params, x, y, state = _setup(dropout=0.3)
    serial = loss_and_grads(params, cfg, x, y, state, np.random.default_rng(5), workers=1)
    # a slice's products have fewer columns (another kernel, sums in another order) and the
    # slices' weight gradients are summed in another order: within the drift of the backward
    # pass (4H terms a value, B·T = 18 for a weight gradient) over T steps and L layers
    k = drift_ulps(T, max(4 * H, B * T), L)
    for workers in (2, 3):
        split = loss_and_grads(params, cfg, x, y, state, np.random.default_rng(5), workers=workers)
        assert split[0] == pytest.approx(serial[0], rel=ulp(np.float64, k))
        for name, g in serial[1].items():
            assert_ulps(split[1][name], g, k, err_msg=name)
        for a, b in zip(split[2], serial[2], strict=True):
            assert a.shape == (L, B, H)
            assert_ulps(a, b, k)


def test_step_equals_forward():
    cfg, params, x, _, state = _setup(dtype="float32")
    prep = model.Prepared(params, cfg)
    logits, (h, c), _ = prep.forward(x, state, need_cache=False)
    st = state
    # forward's (4H, H) @ (H, B) products and step's one product on [x, h] sum the same 2H
    # terms in other orders: within the drift, in ULP of each array's largest value
    k = drift_ulps(T, 2 * H, L)
    for t in range(T):
        lg, st = prep.step(x[:, t], st)
        assert_ulps(lg, logits[t], k)
    assert_ulps(st[0], h, k)
    assert_ulps(st[1], c, k)


def test_one_logits_layout():
    """forward (T, B, V); step is one time step of it (B, V); trace one stream (T, V); the
    loss functions read the same layout."""
    cfg, params, x, y, state = _setup()
    prep = model.Prepared(params, cfg)
    logits, _, cache = prep.forward(x, state)
    assert logits.shape == (T, B, V)
    assert [lc[0].shape for lc in cache["layers"]] == [(T + 1, B, H)] * L  # XH: h_{t-1}
    lg, _ = prep.step(x[:, 0], state)
    assert lg.shape == (B, V)
    one = (state[0][:, 1:2].copy(), state[1][:, 1:2].copy())
    traced, _, layers = trace(prep, x[1], one)
    assert traced.shape == (T, V) and [h.shape for h, _, _ in layers] == [(T, H)] * L
    # one stream's 1-D recurrence and forward's batched products: within the drift
    assert_ulps(traced, logits[:, 1], drift_ulps(T, 2 * H, L))
    losses = cell.nll(logits, y.T)
    z = logits - logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=-1))
    expect = lse - np.take_along_axis(z, y.T[..., None], axis=-1)[..., 0]
    # log-sum-exp in another order: the V-term sum (log2 V roundings), exp, log, the difference
    lse_ulps = math.log2(V) + 3
    assert_ulps(losses, expect, lse_ulps)
    loss, grad = cell.softmax_xent(logits.copy(), y.T)
    mean_ulps = lse_ulps + math.log2(T * B)  # and the mean's sum of T·B losses
    assert grad.shape == (T, B, V) and loss == pytest.approx(
        expect.mean(), rel=ulp(np.float64, mean_ulps)
    )


def test_matches_torch_lstm():
    torch = pytest.importorskip("torch")
    cfg, params, x, y, state = _setup()
    loss, grads, (h, c) = loss_and_grads(params, cfg, x, y, state)

    lstm = torch.nn.LSTM(V, H, L, batch_first=True).double()
    dec = torch.nn.Linear(H, V).double()
    named = {f"lstm.{n}": p for n, p in lstm.named_parameters()}
    named.update({f"decoder.{n}": p for n, p in dec.named_parameters()})
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(torch.from_numpy(params[n]))
    xin = torch.eye(V, dtype=torch.float64)[torch.from_numpy(x)]
    st = tuple(torch.from_numpy(s) for s in state)
    out, (th, tc) = lstm(xin, st)
    logits = dec(out)
    tloss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, V), torch.from_numpy(y).reshape(-1)
    )
    tloss.backward()

    ours, _, _ = model.Prepared(params, cfg).forward(x, state)  # (T, B, V)
    np.testing.assert_allclose(
        ours.transpose(1, 0, 2), logits.detach().numpy(), rtol=1e-5, atol=1e-8
    )
    assert abs(loss - tloss.item()) < 1e-9
    np.testing.assert_allclose(h, th.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(c, tc.detach().numpy(), atol=1e-10)
    for n, p in named.items():
        np.testing.assert_allclose(grads[n], p.grad.numpy(), rtol=1e-5, atol=1e-9, err_msg=n)
