"""The array-module engine (the GPU engine's code) run with NumPy, checked against the CPU engine.

These run the very code, formulas and kernel text the GPU runs, with ``xp = numpy``; they do not
show that CuPy compiles or runs it (tests/test_gpu_engine.py does, where a GPU is present).
"""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess
import types

import numpy as np
import pytest
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.engine import model as model_mod
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.engine.gpu import XpEngine
from charlstm_core.engine.kernels import ADAM, KERNELS, LSTM_FORWARD, Fused, check_portable
from charlstm_core.engine.trace import trace
from charlstm_core.errors import DeviceLostError, DeviceUnavailableError, GpuMemoryError
from charlstm_core.events import StepEvent
from charlstm_core.files.modelfile import load_model
from charlstm_core.files.text import corpus_from_text
from charlstm_core.sample import evaluate, generate
from charlstm_core.training.trainer import Trainer
from helpers import assert_ulps, drift_ulps, ulp

MC = ModelConfig(vocab_size=1, hidden_size=16, num_layers=2, dropout=0.2)


def make_text(n: int = 5000, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    return " ".join(str(rng.choice(words)) for _ in range(n // 4))[:n] + "\n"


def tc(**kw) -> TrainConfig:
    base = dict(seq_len=16, batch_size=4, lr=1e-2, warmup_steps=5, eval_every=0,
                sample_every=0, checkpoint_every=0, steps=20, seed=7)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def losses(trainer: Trainer) -> list[float]:
    return [e.loss for e in trainer.run() if isinstance(e, StepEvent)]


# ---------------------------------------------------------------- the kernels' text


def test_kernel_text_is_portable_and_the_cuda_source_is_that_text() -> None:
    for k in KERNELS:
        check_portable(k)
        ins, outs, op = k.cuda_source()
        assert ins.split(", ") == [f"T {n}" for n in k.inputs]
        assert outs.split(", ") == [f"T {n}" for n in k.outputs]
        for stmt in k.body:
            assert f"{stmt};" in op  # the statement NumPy evaluates is the one CUDA compiles


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (("h = 0.5 * zi",), "not portable"),  # a double literal in C
        (("h = zi ** 2",), "not portable"),
        (("h = zq + 1",), "undeclared name 'zq'"),
        (("zi = 1",), "assigns an undeclared or input"),
    ],
)
def test_check_portable_rejects_text_that_would_differ_or_fail(body, why) -> None:
    bad = Fused("bad", ("zi",), ("h",), (), body)
    with pytest.raises(ValueError, match=why):
        check_portable(bad)
    with pytest.raises(ValueError, match="reserves"):
        check_portable(Fused("bad", ("i",), ("h",), (), ("h = i",)))


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to syntax-check the kernels")
def test_kernel_bodies_compile_as_cpp(tmp_path) -> None:
    """Each body inside a C++ function of the same parameters, as CuPy wraps it (T = float),
    passes ``g++ -fsyntax-only``: NVRTC is not here, but C++ syntax and names are checked."""
    src = ["#include <cmath>", "using std::exp; using std::tanh; using std::sqrt;"]
    for k in KERNELS:
        params = [f"const T {n}" for n in k.inputs] + [f"T &{n}" for n in k.outputs]
        types_ = ["const float"] * len(k.inputs) + ["float &"] * len(k.outputs)
        src += [
            f"template <typename T> void {k.name}({', '.join(params)}) {{",
            "  " + k.cuda_source()[2],
            "}",
            f"template void {k.name}<float>({', '.join(types_)});",
        ]
    path = tmp_path / "kernels.cpp"
    path.write_text("\n".join(src))
    out = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Werror", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_adam_kernel_matches_core_optim_adam() -> None:
    from charlstm_core.engine.optim import Adam, clip_grads, global_norm

    rng = np.random.default_rng(0)
    cfg = ModelConfig(vocab_size=5, hidden_size=8, dtype="float32")
    params = model_mod.init_params(cfg, rng)
    ref = {k: v.copy() for k, v in params.items()}
    eng = XpEngine(cfg, np)
    adam, ref_adam = eng.adam(params), Adam(ref)
    # each array's float32 sum of squares in another order (vdot, dot): log2(size) roundings of
    # positive terms at most, the total in float64; the square root halves the relative error
    norm_ulps = math.log2(max(p.size for p in params.values()))
    for _step in range(1, 6):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
        ref_grads = {k: g.copy() for k, g in grads.items()}
        norm = global_norm(ref_grads)
        assert eng.global_norm(grads) == pytest.approx(norm, rel=ulp(np.float32, norm_ulps))
        clip_grads(ref_grads, 3.0, norm)
        ref_adam.update(ref, ref_grads, 1e-2)
        eng.update(adam, params, grads, 1e-2, 3.0, norm)
        for k in params:  # the kernel makes optim's operations in optim's order
            np.testing.assert_array_equal(params[k], ref[k])
    assert adam.t == ref_adam.t == 5
    assert ADAM.outputs == ("p", "m", "v")


def test_forward_kernel_with_huge_pre_activations_saturates_without_warnings() -> None:
    from charlstm_core.engine.kernels import numpy_kernel

    run = numpy_kernel(LSTM_FORWARD)
    z = np.array([-1e4, 1e4], np.float32)  # scaled pre-activations: a = 1e4, -1e4 (g: ±5e3)
    outs = [np.empty(2, np.float32) for _ in LSTM_FORWARD.outputs]
    run(z, z, z, z, z, z, z, z, np.zeros(2, np.float32), *outs)
    og, ig, fg, gg, c, tc_, h = outs
    np.testing.assert_array_equal(ig, [1, 0])
    np.testing.assert_array_equal(gg, [1, -1])


# ---------------------------------------------------------------- the passes


def test_same_gradients_as_the_cpu_engine_in_float64() -> None:
    cfg = ModelConfig(vocab_size=7, hidden_size=6, num_layers=3, dropout=0.3, dtype="float64")
    rng = np.random.default_rng(1)
    params = model_mod.init_params(cfg, rng)
    x, y = rng.integers(0, 7, (3, 5)), rng.integers(0, 7, (3, 5))
    state = tuple(rng.standard_normal((3, 3, 6)) * 0.5 for _ in range(2))
    l1, g1, s1 = CpuEngine(cfg).loss_and_grads(params, x, y, state, np.random.default_rng(5))
    l2, g2, s2 = XpEngine(cfg, np).loss_and_grads(params, x, y, state, np.random.default_rng(5))
    # products of other shapes and gates in other forms: within the drift of the backward pass
    # (4H terms a value, B·T = 15 for a weight gradient) over T = 5 steps and 3 layers
    n = drift_ulps(5, max(4 * 6, 3 * 5), 3)
    assert l2 == pytest.approx(l1, rel=ulp(np.float64, n))
    for k in g1:
        assert_ulps(g2[k], g1[k], n, err_msg=k)
    for a, b in zip(s1, s2, strict=True):
        assert_ulps(b, a, n)


def test_finite_difference_gradient_check_for_every_parameter() -> None:
    """Centred differences in float64, with dropout masks fixed and a carried state."""
    cfg = ModelConfig(vocab_size=5, hidden_size=4, num_layers=2, dropout=0.25, dtype="float64")
    rng = np.random.default_rng(2)
    eng = XpEngine(cfg, np)
    params = model_mod.init_params(cfg, rng)
    x, y = rng.integers(0, 5, (2, 4)), rng.integers(0, 5, (2, 4))
    state = tuple(rng.standard_normal((2, 2, 4)) * 0.5 for _ in range(2))
    seed = 9

    def loss() -> float:
        return eng.loss_and_grads(params, x, y, state, np.random.default_rng(seed))[0]

    _, grads, _ = eng.loss_and_grads(params, x, y, state, np.random.default_rng(seed))
    eps = 1e-6
    for name, p in params.items():
        for idx in itertools.islice(np.ndindex(p.shape), 0, None, max(1, p.size // 6)):
            old = p[idx]
            p[idx] = old + eps
            up = loss()
            p[idx] = old - eps
            down = loss()
            p[idx] = old
            num = (up - down) / (2 * eps)
            assert grads[name][idx] == pytest.approx(num, rel=1e-5, abs=1e-9), (name, idx)


def test_twenty_training_steps_match_the_cpu_engine_in_float32() -> None:
    """Over NumPy the array engine is the CPU engine's computation bit for bit: the same passes,
    layouts and optimizer, the kernels' text rounding as the cell's ufuncs do (tests/test_cell.py).
    On a GPU (tests/test_gpu_engine.py) the tolerance is 1e-6 relative: cuBLAS's and CuPy's
    reduction orders and the compiler's fused multiply-adds round differently, each loss by a
    few float32 roundings (unit roundoff 6e-8), which Adam carries from step to step, while any
    error in a formula moves the losses by 1e-3 or more. (CuPy does not use TF32 in products
    unless CUPY_TF32=1 is set; with it that tolerance would not hold.)"""
    corpus = corpus_from_text(make_text())
    cpu = losses(Trainer(corpus, MC, tc(), device=CpuEngine(MC)))
    xp_run = Trainer(corpus, MC, tc(), device=XpEngine(MC, np, dropout="host"))
    xpl = losses(xp_run)
    assert len(cpu) == len(xpl) == 20
    assert xpl == cpu
    assert cpu[-1] < cpu[0] - 0.2  # it learned: the comparison is not of two flat lines


def test_temperature_zero_sampling_and_evaluation_match_the_cpu(tmp_path) -> None:
    corpus = corpus_from_text(make_text())
    path = str(tmp_path / "m.npz")
    trainer = Trainer(corpus, MC, tc(steps=30), checkpoint_path=path)
    losses(trainer)
    model = load_model(path)
    eng = XpEngine(model.config, np)
    kw = dict(prime="the ", length=200, temperature=0.0)
    assert "".join(generate(model, engine=eng, **kw)) == "".join(generate(model, **kw))
    kw = dict(length=100, temperature=0.9, top_k=5, seed=3)
    assert "".join(generate(model, engine=eng, **kw)) == "".join(generate(model, **kw))
    ids = corpus.ids[:2000]
    # a character's loss, -ln p, is off by p's relative error: the engines' products sum 2H
    # terms in other orders at each step, and the state keeps an error about 1 / (1 - f) steps,
    # f its largest forget gate on this text (0.96 after 30 steps: 25 steps): the drift over
    # those steps bounds each loss's error, and so their mean's
    cfg = model.config
    prep = model_mod.Prepared(model.params, cfg)
    _, _, layers = trace(prep, ids, model_mod.zero_state(cfg, 1))
    H = cfg.hidden_size
    forget = max(float(z[:, 2 * H : 3 * H].max()) for _, _, z in layers)  # gates o, i, f, g
    nats_tol = ulp(np.float32, drift_ulps(math.ceil(1 / (1 - forget)), 2 * H, cfg.num_layers))
    for streams, warmup in ((4, 256), (1, 256), (7, 30)):  # the same pieces, warm-ups, windows
        seen: dict[str, list] = {"cpu": [], "xp": []}
        on_xp = evaluate(model, ids, streams=streams, warmup=warmup, engine=eng,
                         progress=lambda d, n, s=seen: s["xp"].append((d, n)))  # fmt: skip
        on_cpu = evaluate(model, ids, streams=streams, warmup=warmup,
                          progress=lambda d, n, s=seen: s["cpu"].append((d, n)))  # fmt: skip
        assert on_xp.nats == pytest.approx(on_cpu.nats, rel=0, abs=nats_tol)
        assert (on_xp.scored, on_xp.streams, on_xp.warmup) == (
            on_cpu.scored, on_cpu.streams, on_cpu.warmup)  # fmt: skip
        assert seen["xp"] == seen["cpu"] and seen["xp"][-1] == (len(ids) - 1, len(ids) - 1)


# ---------------------------------------------------------------- model files and resuming


def test_xp_trained_file_opens_samples_and_continues_on_the_cpu_and_back(tmp_path) -> None:
    corpus = corpus_from_text(make_text())
    a = str(tmp_path / "a.npz")
    dev = XpEngine(MC, np, dropout="device")
    losses(Trainer(corpus, MC, tc(steps=8), checkpoint_path=a, device=dev))
    mf = load_model(a)
    assert mf.train.step == 8 and all(type(v) is np.ndarray for v in mf.params.values())
    assert len("".join(generate(mf, length=50, seed=1))) == 50
    on_cpu = Trainer(corpus, mf.config, tc(steps=12), resume=mf, checkpoint_path=a)
    assert len(losses(on_cpu)) == 4 and load_model(a).train.step == 12
    back = Trainer(corpus, mf.config, tc(steps=15), resume=load_model(a),
                   device=XpEngine(MC, np, dropout="device"))  # fmt: skip
    assert len(losses(back)) == 3 and back.step == 15


@pytest.mark.parametrize("dropout", ["device", "host"])
def test_resuming_on_the_same_device_is_exact(tmp_path, dropout) -> None:
    corpus = corpus_from_text(make_text())
    tc = _constant_lr
    straight = losses(Trainer(corpus, MC, tc(steps=12), device=XpEngine(MC, np, dropout=dropout)))
    p = str(tmp_path / "half.npz")
    first = Trainer(corpus, MC, tc(steps=5), checkpoint_path=p,
                    device=XpEngine(MC, np, dropout=dropout))  # fmt: skip
    part1 = losses(first)
    rest = Trainer(corpus, MC, tc(steps=12), resume=load_model(p),
                   device=XpEngine(MC, np, dropout=dropout))  # fmt: skip
    assert part1 + losses(rest) == straight
    final = rest.snapshot()
    again = Trainer(corpus, MC, tc(steps=12), device=XpEngine(MC, np, dropout=dropout))
    losses(again)
    for k, v in again.snapshot().params.items():
        np.testing.assert_array_equal(final.params[k], v)


def _constant_lr(**kw) -> TrainConfig:
    """The run's settings with a flat learning rate: a 5-step run then plans the same rates."""
    return globals()["tc"](lr_schedule="constant", **kw)


# ---------------------------------------------------------------- GPU failures, faked


class FailingEngine(XpEngine):
    """The NumPy array engine, failing like a GPU at a given step."""

    def __init__(self, cfg, error, at_call, host_fails=False):
        super().__init__(cfg, np)
        self.error, self.at_call, self.calls, self.host_fails = error, at_call, 0, host_fails

    def loss_and_grads(self, *a, **kw):
        self.calls += 1
        if self.calls == self.at_call:
            self.broken = True
            raise self.error
        return super().loss_and_grads(*a, **kw)

    def to_host(self, a):
        if self.host_fails and getattr(self, "broken", False):
            raise DeviceLostError("still gone")
        return super().to_host(a)


def test_out_of_gpu_memory_names_the_setting_and_keeps_the_saved_model(tmp_path) -> None:
    corpus = corpus_from_text(make_text())
    path = str(tmp_path / "m.npz")
    eng = XpEngine(MC, np)
    oom = types.SimpleNamespace(cuda=types.SimpleNamespace(
        memory=types.SimpleNamespace(OutOfMemoryError=MemoryError)))  # fmt: skip
    eng._oom, eng._lost = (MemoryError,), ()
    with pytest.raises(GpuMemoryError) as e, eng.on_device():
        raise MemoryError("out of memory allocating 1,073,741,824 bytes")
    assert "Lower the batch size" in str(e.value) and "last saved model is kept" in str(e.value)
    from charlstm_core.engine.gpu import _error_types

    assert _error_types(oom) == ((MemoryError,), ())
    eng.xp = oom  # as if on a GPU: a CUDA library CuPy cannot load is a message, not a crash
    with pytest.raises(DeviceUnavailableError, match=r"cupy-cuda12x\[ctk\]"), eng.on_device():
        raise RuntimeError("CuPy failed to load libnvrtc.so.12: cannot open shared object file")
    with pytest.raises(RuntimeError, match="unrelated"), eng.on_device():
        raise RuntimeError("unrelated")
    eng.xp = np
    err = GpuMemoryError("The GPU ran out of memory. Lower the batch size.")
    trainer = Trainer(corpus, MC, tc(steps=10, checkpoint_every=3), checkpoint_path=path,
                      device=FailingEngine(MC, err, at_call=5))  # fmt: skip
    with pytest.raises(GpuMemoryError):
        losses(trainer)
    assert load_model(path).train.step == 3  # the autosave before the failure, untouched


def test_a_gpu_that_disappears_stops_with_the_last_good_weights_saved(tmp_path) -> None:
    corpus = corpus_from_text(make_text())
    path = str(tmp_path / "m.npz")
    lost = DeviceLostError("The GPU stopped responding (cudaErrorLaunchFailure).")
    trainer = Trainer(corpus, MC, tc(steps=10), checkpoint_path=path,
                      device=FailingEngine(MC, lost, at_call=4))  # fmt: skip
    events = []
    with pytest.raises(DeviceLostError) as e:
        for ev in trainer.run():
            events.append(ev)
    assert e.value.saved_step == 3 and "step 3" in str(e.value) and path in str(e.value)
    saved = load_model(path)
    assert saved.train.step == 3
    last = [ev for ev in events if isinstance(ev, StepEvent)][-1]
    assert last.step == 3


def test_when_the_gpu_cannot_hand_back_weights_the_last_autosave_is_kept(tmp_path) -> None:
    corpus = corpus_from_text(make_text())
    path = str(tmp_path / "m.npz")
    lost = DeviceLostError("The GPU stopped responding.")
    eng = FailingEngine(MC, lost, at_call=5, host_fails=True)
    trainer = Trainer(corpus, MC, tc(steps=10, checkpoint_every=2), checkpoint_path=path,
                      device=eng)  # fmt: skip
    with pytest.raises(DeviceLostError, match="last autosave in .* is kept") as e:
        losses(trainer)
    assert e.value.saved_step is None and load_model(path).train.step == 4


# ---------------------------------------------------------------- self-healing on the engine


class BlowingUp(XpEngine):
    """The array engine with the loss of calls 13 to 15 made 20x too high: a blow-up the
    detector (charlstm_core.training.heal) sees while the gradients, and so the training, stay
    real."""

    calls = 0

    def loss_and_grads(self, *args):
        loss, grads, state = super().loss_and_grads(*args)
        BlowingUp.calls += 1
        return (loss * 20 if 13 <= BlowingUp.calls <= 15 else loss), grads, state


@pytest.mark.parametrize("dropout", ["host", "device"])
def test_a_rollback_on_the_engine_restores_the_kept_state_exactly(monkeypatch, dropout) -> None:
    """Heal's keep and restore go through the engine (copies on its device): the state after a
    rollback is bit-identical to the state kept at step 10, and training goes on at a lower rate."""
    monkeypatch.setattr(BlowingUp, "calls", 0)
    corpus = corpus_from_text(make_text(8000))
    trainer = Trainer(corpus, MC, tc(steps=30, eval_every=10),
                      device=BlowingUp(MC, np, dropout=dropout))  # fmt: skip
    kept = after = rollback = None
    steps = []
    for ev in trainer.run():
        if ev.kind == "eval" and ev.step == 10 and kept is None:
            kept = trainer.snapshot()
        if ev.kind == "rollback":
            after, rollback = trainer.snapshot(), ev
        if isinstance(ev, StepEvent):
            steps.append(ev)
    assert rollback is not None and (rollback.from_step, rollback.to_step) == (15, 10)
    for k in kept.params:
        assert np.array_equal(kept.params[k], after.params[k]), k
        assert np.array_equal(kept.train.adam_m[k], after.train.adam_m[k]), k
        assert np.array_equal(kept.train.adam_v[k], after.train.adam_v[k]), k
    assert np.array_equal(kept.train.h, after.train.h)
    assert np.array_equal(kept.train.c, after.train.c)
    assert kept.train.rng == after.train.rng and kept.train.stream == after.train.stream
    assert trainer.healer.kept.params["decoder.weight"] is not trainer.params["decoder.weight"]
    redone = [e for e in steps if e.step == 11]
    assert len(redone) == 2 and redone[1].lr == pytest.approx(redone[0].lr * rollback.lr_scale)
    assert steps[-1].step == 30 and trainer.lr_scale == rollback.lr_scale < 1
