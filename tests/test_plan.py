"""charlstm_core.training.plan: parameter parts, measured timing, the run's time per step, advice,
unseen
chars."""

from __future__ import annotations

import numpy as np
from charlstm_core.config import ModelConfig
from charlstm_core.engine.model import count_params
from charlstm_core.files.text import corpus_from_text
from charlstm_core.training.plan import (
    Timing,
    estimate,
    measure_timing,
    param_parts,
    run_seconds_per_step,
    size_advice,
    unseen_in_validation,
    unseen_message,
)


def test_parts_add_up_to_the_model_and_follow_the_vocabulary() -> None:
    for v, h, layers in ((65, 128, 1), (6000, 128, 1), (98, 256, 3)):
        parts = param_parts(v, h, layers)
        assert sum(parts.values()) == count_params(ModelConfig(v, h, layers))
        assert parts["input"] == 4 * h * v
        assert parts["decoder"] == v * h + v
    # the recurrent part does not depend on V
    assert param_parts(65, 128, 2)["recurrent"] == param_parts(6000, 128, 2)["recurrent"]


def test_advice_names_what_dominates() -> None:
    big_vocab = param_parts(6000, 128, 1)  # the input weights are ~78% of the parameters
    text = size_advice(big_vocab, 6000, train_chars=300_000)
    assert "6,000 distinct characters" in text and "smaller hidden size" in text
    assert "only in proportion" in text  # not the advice to shrink H as the cure
    share = round(100 * big_vocab["input"] / sum(big_vocab.values()))
    assert f"input {share}%" in text
    recurrent = param_parts(65, 1024, 2)
    text = size_advice(recurrent, 65, train_chars=100_000)
    assert "recurrent weights" in text and "smaller hidden size" in text
    assert "distinct characters" not in text
    assert "good match" in size_advice(param_parts(65, 128, 1), 65, train_chars=5_000_000)


def test_heavy_dropout_tempers_the_verdict_on_a_model_bigger_than_its_text() -> None:
    """Best quality's two layers of 512 on a 1 MB text: 3.3 M parameters, dropout 0.5."""
    parts = param_parts(65, 512, 2)
    light = size_advice(parts, 65, train_chars=1_000_000, dropout=0.2)
    assert "it will memorise" in light and "raise dropout" in light
    heavy = size_advice(parts, 65, train_chars=1_000_000, dropout=0.5)
    assert "dropout of 0.5 holds it back" in heavy and "it will memorise" not in heavy
    assert "validation loss" in heavy


def test_unseen_validation_characters_are_counted_with_examples() -> None:
    text = "abcab " * 900 + "xyzzy " * 100  # the last part holds x, y, z
    corpus = corpus_from_text(text)
    unseen = unseen_in_validation(corpus.ids, corpus.vocab, 0.1, "last")
    assert unseen.distinct == 3
    assert unseen.occurrences == 500
    assert unseen.examples[0] == "y" and set(unseen.examples) == {"x", "y", "z"}
    message = unseen_message(unseen, "last")
    assert "3 distinct characters" in message and "evenly spaced blocks" in message
    blocks = unseen_in_validation(corpus.ids, corpus.vocab, 0.1, "blocks")
    assert blocks.distinct == 0 and unseen_message(blocks, "blocks") == ""
    none = unseen_in_validation(corpus.ids, corpus.vocab, 0.0, "last")
    assert none.distinct == 0


def test_run_time_per_step_adds_the_share_of_validation_and_samples() -> None:
    t = Timing(step_s=0.1, eval_char_s=1e-5, sample_char_s=1e-3)
    none = dict(eval_every=0, val_chars=0, sample_every=0, sample_length=9)
    assert run_seconds_per_step(t, **none) == 0.1
    got = run_seconds_per_step(
        t, eval_every=100, val_chars=200_000, sample_every=500, sample_length=300
    )
    assert np.isclose(got, 0.1 + 2.0 / 100 + 0.3 / 500)
    est = estimate(65, 128, 1, 32, 64, t, eval_every=100, val_chars=200_000)
    assert np.isclose(est.seconds_per_step, 0.12) and est.step_s == 0.1 and est.vocab == 65
    assert estimate(65, 128, 1, 32, 64).seconds_per_step is None


def test_measured_timing_at_the_full_window_and_extended_along_the_line() -> None:
    # A real measurement of tiny models (no wall time is asserted): every figure is finite.
    small = measure_timing(20, 16, 1, 4, 8)
    for value in (small.step_s, small.eval_char_s, small.sample_char_s):
        assert np.isfinite(value) and value > 0
    long = measure_timing(20, 16, 1, 4, 64, budget_s=1e-6)  # forced to extend along the line
    assert np.isfinite(long.step_s) and long.step_s > 0


def test_a_huge_step_is_timed_on_fewer_streams_and_scaled(monkeypatch) -> None:
    from charlstm_core.engine.cpu import CpuEngine
    from charlstm_core.training import plan

    monkeypatch.setattr(plan, "MAX_TIMED_FLOP", plan.flop_per_char(20, 16, 1) * 8 * 2)
    seen = []
    real = CpuEngine.zero_state

    def spy(engine, batch):
        seen.append(batch)
        return real(engine, batch)

    monkeypatch.setattr(CpuEngine, "zero_state", spy)
    timing = plan.measure_timing(20, 16, 1, 64, 8)
    assert seen[0] == 2  # two streams timed for a batch of 64
    assert np.isfinite(timing.step_s) and timing.step_s > 0


def test_not_enough_memory_is_a_clear_config_error(monkeypatch) -> None:
    import pytest
    from charlstm_core.engine import model
    from charlstm_core.errors import ConfigError
    from charlstm_core.training import plan

    def no_memory(cfg, rng):
        raise MemoryError

    monkeypatch.setattr(model, "init_params", no_memory)
    with pytest.raises(ConfigError, match=r"not the memory .* about 4.6 GB\). Choose"):
        plan.measure_timing(6000, 2048, 4, 64, 100)


def test_timing_runs_on_the_threads_the_run_will_use(monkeypatch) -> None:
    from charlstm_core.engine import parallel
    from charlstm_core.training import plan

    calls = []
    monkeypatch.setattr(parallel, "set_blas_threads", calls.append)
    monkeypatch.setattr(parallel, "blas_threads", lambda: 7)
    timing = plan.measure_timing(20, 16, 1, 4, 8, threads=1)
    # set for each part of the measurement, then set back: never timed on another count
    assert calls[0::2] == [1] * (len(calls) // 2) and calls[1::2] == [7] * (len(calls) // 2)
    assert calls and calls[-1] == 7
    assert timing.threads == 1
