"""The engine contract (charlstm_core.engine.protocol.Engine): every engine implements all of it,
each method does what the contract says on every engine, and no caller asks which engine it holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.engine.devices import Backend, make_engine
from charlstm_core.engine.gpu import XpEngine
from charlstm_core.engine.model import init_params, param_shapes
from charlstm_core.engine.optim import Adam
from charlstm_core.engine.protocol import Engine

V, H, L, B, T = 7, 8, 2, 3, 5
CFG = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=0.2)
ENGINES = {
    "cpu": lambda cfg: CpuEngine(cfg),
    "cpu, 2 slices": lambda cfg: CpuEngine(cfg, workers=2),
    "xp (host masks)": lambda cfg: XpEngine(cfg, np, dropout="host"),
    "xp (device masks)": lambda cfg: XpEngine(cfg, np, dropout="device"),
}


def members(protocol: type) -> set[str]:
    """The names a protocol declares: its methods and its annotated attributes."""
    names = {n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_")}
    return names | set(protocol.__annotations__)


def _is_state(state, batch: int) -> bool:
    return all(np.asarray(a).shape == (L, batch, H) for a in state)


def _calls(engine: Engine) -> dict:
    """One call of every member of the contract, each checking what the contract promises."""
    rng = np.random.default_rng(0)
    host = init_params(engine.cfg, rng)
    params = {k: engine.to_device(v) for k, v in host.items()}
    x, y = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    ids = rng.integers(0, V, 40)

    def loss_and_grads():
        loss, grads, state = engine.loss_and_grads(
            params, x, y, engine.zero_state(B), np.random.default_rng(1)
        )
        assert isinstance(loss, float) and loss > 0 and _is_state(state, B)
        assert {k: engine.to_host(g).shape for k, g in grads.items()} == param_shapes(engine.cfg)
        return grads

    def update():
        grads = loss_and_grads()
        adam = engine.adam(params)
        before = engine.to_host(params["decoder.bias"]).copy()
        engine.update(adam, params, grads, 1e-2, 1.0, engine.global_norm(grads))
        assert adam.t == 1 and not np.array_equal(engine.to_host(params["decoder.bias"]), before)

    def adam():
        zeros = {k: np.zeros_like(v) for k, v in host.items()}
        opt = engine.adam(params, m=zeros, v=zeros, t=7)
        assert isinstance(opt, Adam) and opt.t == 7 and set(opt.m) == set(host)

    def copy_into():
        fresh = engine.copy_into(params, None)
        assert fresh["decoder.weight"] is not params["decoder.weight"]
        engine.copy_into(params, fresh)
        assert np.array_equal(engine.to_host(fresh["decoder.weight"]), host["decoder.weight"])

    def step():
        logits, state = engine.step(engine.prepare(host), ids[:B], engine.zero_state(B))
        assert type(logits) is np.ndarray and logits.shape == (B, V) and _is_state(state, B)

    def trace():
        logits, state, layers = engine.trace(engine.prepare(params), ids, engine.zero_state(1))
        assert type(logits) is np.ndarray and logits.shape == (len(ids), V)
        assert _is_state(state, 1) and len(layers) == L
        for h, c, z in layers:
            assert (h.shape, c.shape, z.shape) == ((40, H), (40, H), (40, 4 * H))

    def scored_loss():
        prep = engine.prepare(params)
        scored = np.zeros((B, T), bool)
        scored[:, -2:] = True
        part, state = engine.scored_loss(prep, x, y, scored, engine.zero_state(B))
        every, _ = engine.scored_loss(prep, x, y, None, engine.zero_state(B))
        assert 0 < part < every and _is_state(state, B)

    def mean_loss():
        loss = engine.mean_loss(params, ids, streams=3, seq_len=4)
        assert isinstance(loss, float) and np.isfinite(loss) and loss > 0

    return {
        "cfg": lambda: engine.cfg == CFG or pytest.fail("cfg"),
        "label": lambda: isinstance(engine.label, str) and engine.label or pytest.fail("label"),
        "for_config": lambda: engine.for_config(CFG).cfg is CFG or pytest.fail("for_config"),
        "to_device": lambda: engine.to_host(engine.to_device(host["decoder.bias"])).shape == (V,),
        "to_host": lambda: type(engine.to_host(params["decoder.bias"])) is np.ndarray,
        "zero_state": lambda: _is_state(engine.zero_state(4), 4),
        "copy": lambda: engine.copy(params["decoder.bias"]) is not params["decoder.bias"],
        "copy_into": copy_into,
        "adam": adam,
        "loss_and_grads": loss_and_grads,
        "global_norm": lambda: engine.global_norm(loss_and_grads()) > 0,
        "update": update,
        "prepare": lambda: engine.prepare(host).cfg is engine.cfg,
        "mean_loss": mean_loss,
        "scored_loss": scored_loss,
        "step": step,
        "trace": trace,
    }


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_engine_implements_the_whole_contract(name) -> None:
    engine = ENGINES[name](ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=0.2))
    assert isinstance(engine, Engine)
    calls = _calls(engine.for_config(CFG))
    assert set(calls) == members(Engine)  # the test calls every member of the contract
    for member, call in calls.items():
        assert call() is not False, member


def test_make_engine_takes_an_engine_a_backend_or_a_choice() -> None:
    other = ModelConfig(vocab_size=5, hidden_size=4)
    xp = XpEngine(CFG, np, label="test")
    again = make_engine(xp, other)
    assert isinstance(again, XpEngine) and again.cfg is other and again.label == "test"
    assert isinstance(make_engine("cpu", other), CpuEngine)
    assert isinstance(make_engine(Backend("cpu", np), other), CpuEngine)
    assert not isinstance(Backend("cpu", np), Engine)  # a Backend is not mistaken for an engine


ROOT = Path(__file__).resolve().parents[1] / "core"
ASKING = re.compile(r"engine is None|hasattr\((engine|device)\b|\bkind == \"(cpu|gpu|xp)\"")


def test_no_caller_asks_which_engine_it_holds() -> None:
    """Outside device selection (core/engine/devices.py), nothing branches on the engine it was
    given: no ``engine is None``, no ``hasattr(engine, ...)``, no ``kind == "cpu"``."""
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in ROOT.rglob("*.py")
        if path.name != "devices.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ASKING.search(line)
    ]
    assert found == []
