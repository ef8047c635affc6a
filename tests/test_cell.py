"""The maths in one place: every pass runs ``charlstm_core.engine.cell``, and a device's fused
kernels compute exactly what the cell computes.

What is pinned here: the training pass, the sampling step and the inspection trace give the same
h, c and logits for the same weights and input, on either engine; each of them makes its gate
arithmetic through the cell (a pass that re-inlined it would not call it); the kernels' formula
text, evaluated by NumPy, equals the cell's ufuncs (and Adam's) bit for bit; so the GPU engine's
code run over NumPy trains bit for bit as the CPU engine does.
"""

from __future__ import annotations

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine import cell as cell_mod
from charlstm_core.engine.cell import Cell
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.engine.gpu import XpEngine
from charlstm_core.engine.kernels import ADAM, FusedCell, kernels_for, numpy_kernel
from charlstm_core.engine.model import init_params
from charlstm_core.engine.optim import Adam

V, H, L, B, T = 11, 24, 3, 4, 40
DTYPES = ["float32", "float64"]


def _setup(dtype: str, dropout: float = 0.0):
    cfg = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=dropout, dtype=dtype)
    rng = np.random.default_rng(0)
    params = init_params(cfg, rng)
    x = rng.integers(0, V, (B, T))
    y = rng.integers(0, V, (B, T))
    state = tuple(rng.uniform(-0.8, 0.8, (L, B, H)).astype(dtype) for _ in range(2))
    return cfg, params, x, y, state


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("engine", ["cpu", "xp"])
def test_training_pass_sampling_step_and_trace_agree(dtype, engine) -> None:
    """The same weights, state and characters through the three passes: one batched forward
    (T, B), T sampling steps of B streams, and B traced streams of T characters."""
    cfg, params, x, _, state = _setup(dtype)
    eng = {"cpu": CpuEngine(cfg), "xp": XpEngine(cfg, np)}[engine]
    prep = eng.prepare(params)
    logits, (h, c), cache = prep.forward(x, state)
    # The passes make their products in different shapes (a batch's gemm, a row's gemv, one
    # product on [x, h]), so they differ by roundings: measured at most 1.5 eps over 40 steps of
    # 3 layers at the initial weights (all values below 1.1), where the recurrence contracts.
    # 16 eps leaves room for another BLAS; a formula that differed would be off by 1e-3 or more.
    tol = 16 * float(np.finfo(dtype).eps)
    st, stepped = state, []
    for t in range(T):
        lg, st = eng.step(prep, x[:, t], st)
        stepped.append(lg)
    np.testing.assert_allclose(np.stack(stepped), logits, rtol=0, atol=tol)
    np.testing.assert_allclose(st[0], h, rtol=0, atol=tol)
    np.testing.assert_allclose(st[1], c, rtol=0, atol=tol)
    for b in range(B):
        one = (state[0][:, b : b + 1].copy(), state[1][:, b : b + 1].copy())
        lg, (th, tc), layers = eng.trace(prep, x[b], one)
        np.testing.assert_allclose(lg, logits[:, b], rtol=0, atol=tol)
        np.testing.assert_allclose(th[:, 0], h[:, b], rtol=0, atol=tol)
        np.testing.assert_allclose(tc[:, 0], c[:, b], rtol=0, atol=tol)
        for k, (lh, lc, lz) in enumerate(layers):
            XH, G, Cs, TC, _, _ = cache["layers"][k]
            np.testing.assert_allclose(lh, XH[1:, b], rtol=0, atol=tol)
            np.testing.assert_allclose(lc, Cs[1:, :, b], rtol=0, atol=tol)
            np.testing.assert_allclose(lz, G[:, :, b], rtol=0, atol=tol)


@pytest.mark.parametrize("cell_class", [Cell, FusedCell])
def test_every_pass_makes_its_gate_arithmetic_in_the_cell(monkeypatch, cell_class) -> None:
    """Each pass calls the cell once per layer and time step (forward, backward, the sampling
    step, the trace), on both engines' cells: none does the gate maths on its own."""
    cfg, params, x, y, state = _setup("float64")
    engine = CpuEngine(cfg) if cell_class is Cell else XpEngine(cfg, np)
    calls = {"forward": 0, "backward": 0}
    for name in calls:
        real = getattr(cell_class, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cell_class, name, spy)

    prep = engine.prepare(params)
    logits, _, cache = prep.forward(x, state)
    assert calls == {"forward": L * T, "backward": 0}
    _, dlogits = cell_mod.softmax_xent(logits, np.ascontiguousarray(y.T))
    prep.backward(cache, dlogits)
    assert calls == {"forward": L * T, "backward": L * T}
    engine.step(prep, x[:, 0], state)
    assert calls["forward"] == L * T + L
    engine.trace(prep, x[0], (state[0][:, :1].copy(), state[1][:, :1].copy()))
    assert calls["forward"] == 2 * L * T + L
    engine.loss_and_grads(params, x, y, state)
    assert calls == {"forward": 3 * L * T + L, "backward": 2 * L * T}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, -1])
def test_the_fused_kernels_are_the_cell_bit_for_bit(dtype, axis) -> None:
    """The kernels' text, evaluated by NumPy, rounds exactly as the cell's ufuncs: the same
    operations in the same order (what runs on a GPU differs only by its compiler's fused
    multiply-adds). Pre-activations from -40 to 40 include saturated gates."""
    rng = np.random.default_rng(1)
    shape = (4 * H, B) if axis == 0 else (B, 4 * H)
    cshape = (H, B) if axis == 0 else (B, H)
    z = (rng.standard_normal(shape) * 20).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    c_prev = rng.standard_normal(cshape).astype(dtype)
    out = {}
    for name, cell in (("cell", Cell(np)), ("fused", FusedCell(np, kernels_for(np)))):
        zz, c, tc, h = (
            z.copy(),
            np.empty(cshape, dtype),
            np.empty(cshape, dtype),
            np.empty(cshape, dtype),
        )
        with np.errstate(over="ignore"):
            cell.forward(zz, x, c_prev, c, h, tc=tc, axis=axis)
        out[name] = (zz, c, tc, h)
    for a, b in zip(out["cell"], out["fused"], strict=True):
        np.testing.assert_array_equal(a, b)
    if axis != 0:
        return  # the gradient is taken in the training layout only
    gates, _, tc, _ = out["cell"]
    dy, dh_rec, dc0 = (rng.standard_normal((H, B)).astype(dtype) for _ in range(3))
    grads = {}
    for name, cell in (("cell", Cell(np)), ("fused", FusedCell(np, kernels_for(np)))):
        dc, da = dc0.copy(), np.empty((4 * H, B), dtype)
        work = (np.empty((4 * H, B), dtype), np.empty((H, B), dtype), np.empty((H, B), dtype))
        cell.backward(dy, dh_rec, gates, tc, c_prev, dc, da, work)
        grads[name] = (dc, da)
    for a, b in zip(grads["cell"], grads["fused"], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_fused_adam_is_adam_bit_for_bit(dtype) -> None:
    rng = np.random.default_rng(2)
    params = {k: rng.standard_normal((5, 3)).astype(dtype) for k in ("a", "b")}
    ufuncs = Adam({k: v.copy() for k, v in params.items()})
    fused = Adam({k: v.copy() for k, v in params.items()}, fused=numpy_kernel(ADAM))
    p1, p2 = ({k: v.copy() for k, v in params.items()} for _ in range(2))
    for scale in (1.0, 0.3, 1.0):  # clipped and not
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        ufuncs.update(p1, {k: g.copy() for k, g in grads.items()}, 1e-2, scale)
        fused.update(p2, {k: g.copy() for k, g in grads.items()}, 1e-2, scale)
    for k in params:
        np.testing.assert_array_equal(p1[k], p2[k])
        np.testing.assert_array_equal(ufuncs.m[k], fused.m[k])
        np.testing.assert_array_equal(ufuncs.v[k], fused.v[k])


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_gpu_engine_over_numpy_trains_as_the_cpu_engine_bit_for_bit(dtype) -> None:
    """Five steps with dropout and a clip that bites: the GPU engine's code (fused kernels,
    device plumbing) over NumPy and the CPU engine (one slice) give identical losses, norms,
    weights and states: one engine, not two."""
    cfg, params, x, y, state = _setup(dtype, dropout=0.3)
    out = []
    for eng in (CpuEngine(cfg, workers=1), XpEngine(cfg, np, dropout="host")):
        p = {k: v.copy() for k, v in params.items()}
        adam = eng.adam(p)
        seen = []
        for i in range(5):
            loss, grads, st = eng.loss_and_grads(p, x, y, state, np.random.default_rng(i))
            norm = eng.global_norm(grads)
            eng.update(adam, p, grads, 1e-2, 0.05, norm)
            seen.append((loss, norm))
        out.append((seen, p, st))
    (seen1, p1, s1), (seen2, p2, s2) = out
    assert seen1 == seen2 and seen1[0][1] > 0.05  # the clip bit
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
    for a, b in zip(s1, s2, strict=True):
        np.testing.assert_array_equal(a, b)
