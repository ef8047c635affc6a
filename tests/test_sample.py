"""Sampling and evaluation, on the CPU engine."""

from __future__ import annotations

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.engine.model import Prepared, init_params, zero_state
from charlstm_core.errors import ConfigError, VocabularyError
from charlstm_core.files.modelfile import ModelFile, load_model, save_model
from charlstm_core.files.text import Vocab
from charlstm_core.insight.inspect import analyse
from charlstm_core.sample import evaluate, generate, next_char_distribution
from helpers import drift_ulps, ulp


@pytest.fixture
def model() -> ModelFile:
    vocab = Vocab.from_text("abcdefgh \n.")
    cfg = ModelConfig(vocab_size=vocab.size, hidden_size=12, num_layers=2, dropout=0.0)
    params = init_params(cfg, np.random.default_rng(3))
    for p in params.values():  # make the predictions far from uniform
        p *= 4.0
    return ModelFile(config=cfg, params=params, vocab=vocab)


def nats_tol(model: ModelFile, steps: int) -> float:
    """Two float32 readings of ``steps`` characters that sum the products' 2H terms in other
    orders: a character's loss, -ln p, is off by p's relative error, within the drift over the
    passage (this model's forget gates reach 0.9999: its state keeps every step's error), and
    so is a mean of the losses."""
    cfg = model.config
    return ulp(np.float32, drift_ulps(steps, 2 * cfg.hidden_size, cfg.num_layers))


def test_same_seed_same_text(model):
    a = "".join(generate(model, prime="ab", length=80, temperature=0.9, seed=5))
    b = "".join(generate(model, prime="ab", length=80, temperature=0.9, seed=5))
    c = "".join(generate(model, prime="ab", length=80, temperature=0.9, seed=6))
    assert a == b and len(a) == 80 and a != c


def test_temperature_zero_is_argmax(model):
    text = "".join(generate(model, prime="ha", length=30, temperature=0.0, seed=1))
    prep = Prepared(model.params, model.config)
    state = zero_state(model.config, 1)
    ids = list(model.vocab.encode("ha"))
    for i in ids:
        logits, state = prep.step(np.array([i]), state)
    expected = []
    for _ in range(30):
        nxt = int(np.argmax(logits[0]))
        expected.append(model.vocab.chars[nxt])
        logits, state = prep.step(np.array([nxt]), state)
    assert text == "".join(expected)
    assert text == "".join(generate(model, prime="ha", length=30, top_k=1, seed=9))


def test_generation_is_a_stream(model):
    gen = generate(model, length=10_000, seed=0)
    first = [next(gen) for _ in range(5)]
    gen.close()  # a caller can cancel at any time
    assert all(len(ch) == 1 for ch in first)


def test_unknown_prime_characters_are_listed(model):
    with pytest.raises(VocabularyError) as err:
        list(generate(model, prime="abcXYZ", length=5))
    assert set(err.value.missing) == {"X", "Y", "Z"}
    assert "'X'" in str(err.value)


@pytest.mark.parametrize("kw", [{"temperature": -1}, {"top_k": -2}, {"top_p": 0.0}])
def test_bad_sampling_settings(model, kw):
    with pytest.raises(ConfigError):
        list(generate(model, length=5, **kw))


def test_top_k_and_top_p_restrict_the_choice():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    p = next_char_distribution(logits, 1.0, top_k=2)
    assert np.count_nonzero(p) == 2 and p[0] > p[1] > 0
    p = next_char_distribution(logits, 1.0, top_p=0.75)
    assert np.count_nonzero(p) == 2
    p = next_char_distribution(logits, 1.0, top_p=0.85)
    assert np.count_nonzero(p) == 3
    # V float64 probabilities, each rounded once by the division by their sum, summed again
    assert np.isclose(
        next_char_distribution(logits, 1.0).sum(), 1.0, rtol=ulp(np.float64, 4), atol=0
    )


def test_save_load_same_outputs(model, tmp_path):
    path = save_model(tmp_path / "m.npz", model)
    loaded = load_model(path)
    a = "".join(generate(model, prime="a", length=50, seed=2))
    b = "".join(generate(loaded, prime="a", length=50, seed=2))
    assert a == b
    ids = model.vocab.encode("abc defgh.\nhag bad cafe.\n" * 4)
    assert evaluate(model, ids) == evaluate(loaded, ids)


def test_evaluate_matches_a_step_by_step_run(model):
    text = "abc defgh.\nhag bad cafe.\n" * 6
    ids = model.vocab.encode(text).astype(np.int64)
    prep = Prepared(model.params, model.config)
    state = zero_state(model.config, 1)
    total = 0.0
    for t in range(len(ids) - 1):
        logits, state = prep.step(ids[t : t + 1], state)
        z = logits[0].astype(np.float64)
        total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[ids[t + 1]]
    expected = total / (len(ids) - 1)
    assert evaluate(model, ids).nats == pytest.approx(
        expected, rel=0, abs=nats_tol(model, len(ids))
    )


def test_evaluation_split_among_threads_scores_the_same(model):
    text = "abc defgh.\nhag bad cafe.\n" * 12
    ids = model.vocab.encode(text).astype(np.int64)
    one = CpuEngine(model.config, workers=1).mean_loss(model.params, ids, streams=5, seq_len=7)
    whole = evaluate(model, ids, streams=5, engine=CpuEngine(model.config, workers=1)).nats
    tol = nats_tol(model, -(-len(ids) // 5))  # a worker's products have fewer streams
    for workers in (2, 3, 5):
        engine = CpuEngine(model.config, workers=workers)
        split = engine.mean_loss(model.params, ids, streams=5, seq_len=7)
        assert split == pytest.approx(one, rel=0, abs=tol)
        assert evaluate(model, ids, streams=5, engine=engine).nats == pytest.approx(
            whole, rel=0, abs=tol
        )


def test_evaluation_agrees_with_the_analysis_of_the_same_text(model):
    text = "bad cafe.\nhead"
    a = analyse(model, text, top_k=3)
    ids = model.vocab.encode(text).astype(np.int64)
    nll = -np.log(a.p_actual).mean()
    assert evaluate(model, ids).nats == pytest.approx(nll, rel=0, abs=nats_tol(model, len(ids)))


def _sequential_loss(model, ids) -> float:
    prep = Prepared(model.params, model.config)
    state = zero_state(model.config, 1)
    total = 0.0
    for t in range(len(ids) - 1):
        logits, state = prep.step(ids[t : t + 1], state)
        z = logits[0].astype(np.float64)
        total += np.log(np.exp(z - z.max()).sum()) + z.max() - z[ids[t + 1]]
    return total / (len(ids) - 1)


def test_evaluate_with_streams_scores_every_character_once(model, monkeypatch):
    import charlstm_core.sample as sample_mod

    monkeypatch.setattr(sample_mod, "EVAL_GROUP", 4)  # several groups of streams
    text = "abc defgh.\nhag bad cafe.\n" * 9
    ids = model.vocab.encode(text).astype(np.int64)
    exact = _sequential_loss(model, ids)
    for streams in (2, 5, 13, 1000):
        full = evaluate(model, ids, streams=streams, warmup=len(ids))  # warm-up covers the text
        assert full.scored == len(ids) - 1
        assert full.nats == pytest.approx(exact, rel=0, abs=nats_tol(model, len(ids)))
        cold = evaluate(model, ids, streams=streams, warmup=0)  # each piece from a zero state
        assert cold.scored == len(ids) - 1 and cold.streams == min(streams, len(ids) - 1)


def test_evaluate_memory_does_not_grow_with_streams(model, monkeypatch):
    """Windows shrink as streams grow, and streams run in groups: the largest logits array
    forward() produces stays within the window budget whatever --streams is."""
    import charlstm_core.sample as sample_mod

    biggest = []
    real = Prepared.forward

    def spy(self, x, state, **kw):
        out = real(self, x, state, **kw)
        biggest.append(out[0].nbytes)
        return out

    monkeypatch.setattr(Prepared, "forward", spy)
    monkeypatch.setattr(sample_mod, "EVAL_WINDOW_BYTES", 1 << 16)
    monkeypatch.setattr(sample_mod, "EVAL_GROUP", 16)
    ids = model.vocab.encode("abc defgh.\nhag bad cafe.\n" * 40).astype(np.int64)
    for streams in (1, 16, 500):
        biggest.clear()
        evaluate(model, ids, streams=streams, warmup=3)
        assert max(biggest) <= 1 << 16


def test_evaluate_needs_two_characters(model):
    from charlstm_core.errors import TextTooShortError

    with pytest.raises(TextTooShortError, match="at least 2 characters"):
        evaluate(model, model.vocab.encode("a"))
