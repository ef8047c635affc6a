"""The GPU engine (CuPy) against the CPU engine. Skipped, with the reason, without a usable GPU.

The same checks as tests/test_xp_engine.py, with ``xp = cupy``: float64 finite differences
for every parameter on the GPU, 20 float32 training steps against the CPU engine, temperature-0
sampling, and model files moving between the devices.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine import model as model_mod
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.engine.devices import list_devices, make_engine, resolve_device
from charlstm_core.files.modelfile import load_model
from charlstm_core.files.text import corpus_from_text
from charlstm_core.sample import generate
from charlstm_core.training.trainer import Trainer
from test_xp_engine import losses as _losses  # tests/ is on sys.path (pytest prepend)
from test_xp_engine import make_text
from test_xp_engine import tc as _tc

_REPORT = list_devices()
pytestmark = pytest.mark.skipif(not _REPORT.usable, reason=f"no usable GPU: {_REPORT.reason}")

MC = ModelConfig(vocab_size=1, hidden_size=64, num_layers=2, dropout=0.2)


def _engine(cfg, dropout="host"):
    eng = make_engine(resolve_device("gpu"), cfg)
    eng._dropout = dropout
    return eng


def test_gpu_gradients_match_finite_differences_in_float64() -> None:
    cfg = ModelConfig(vocab_size=5, hidden_size=4, num_layers=2, dropout=0.25, dtype="float64")
    eng = _engine(cfg)
    rng = np.random.default_rng(2)
    host = model_mod.init_params(cfg, rng)
    x, y = rng.integers(0, 5, (2, 4)), rng.integers(0, 5, (2, 4))
    state = tuple(eng.to_device(rng.standard_normal((2, 2, 4)) * 0.5) for _ in range(2))

    def run(params):
        return eng.loss_and_grads(params, x, y, state, np.random.default_rng(9))

    params = {k: eng.to_device(v) for k, v in host.items()}
    _, grads, _ = run(params)
    for name, p in host.items():
        for idx in itertools.islice(np.ndindex(p.shape), 0, None, max(1, p.size // 6)):
            vals = []
            for d in (1e-6, -1e-6):
                q = {k: v.copy() for k, v in host.items()}
                q[name][idx] += d
                vals.append(run({k: eng.to_device(v) for k, v in q.items()})[0])
            num = (vals[0] - vals[1]) / 2e-6
            got = float(eng.to_host(grads[name])[idx])
            assert got == pytest.approx(num, rel=1e-5, abs=1e-9), (name, idx)


def test_gpu_twenty_steps_match_the_cpu_within_float32_rounding() -> None:
    corpus = corpus_from_text(make_text(20000))
    t = _tc(seq_len=32, batch_size=16)
    cpu = _losses(Trainer(corpus, MC, t, device=CpuEngine(MC)))
    gpu = _losses(Trainer(corpus, MC, t, device=_engine(MC)))
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=0)  # see test_xp_engine


def test_gpu_sampling_at_temperature_zero_and_files_move_between_devices(tmp_path) -> None:
    corpus = corpus_from_text(make_text(20000))
    path = str(tmp_path / "g.npz")
    _losses(Trainer(corpus, MC, _tc(steps=20), checkpoint_path=path, device=_engine(MC, "device")))
    mf = load_model(path)
    eng = _engine(mf.config)
    kw = dict(prime="the ", length=200, temperature=0.0)
    assert "".join(generate(mf, engine=eng, **kw)) == "".join(generate(mf, **kw))
    cpu = Trainer(corpus, mf.config, _tc(steps=25), resume=mf, checkpoint_path=path)
    assert len(_losses(cpu)) == 5
    back = Trainer(corpus, mf.config, _tc(steps=30), resume=load_model(path), device=eng)
    assert len(_losses(back)) == 5
