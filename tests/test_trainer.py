"""The trainer: learning, reproducibility, exact resumption, stopping and divergence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.errors import (
    ConfigError,
    CorpusMismatchError,
    TextTooShortError,
    TrainingDiverged,
)
from charlstm_core.events import CheckpointEvent, EvalEvent, SampleEvent, StepEvent
from charlstm_core.files.modelfile import load_model
from charlstm_core.files.text import corpus_from_text
from charlstm_core.training import trainer as trainer_mod
from charlstm_core.training.trainer import Trainer
from helpers import drain
from helpers import small_train_config as tc

MC = ModelConfig(vocab_size=1, hidden_size=16, num_layers=2, dropout=0.1)


def make_text(n: int = 6000, seed: int = 0) -> str:
    """A small, learnable text: words from a tiny vocabulary in random order."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(str(rng.choice(words)))
    return " ".join(out)[:n] + "\n"


def test_loss_falls_on_a_small_text():
    corpus = corpus_from_text(make_text())
    trainer = Trainer(corpus, MC, tc(steps=200, eval_every=100, lr=2e-2))
    events, summary = drain(trainer.run())
    losses = [e.loss for e in events if isinstance(e, StepEvent)]
    vals = [e.val_loss for e in events if isinstance(e, EvalEvent)]
    assert summary.reason == "completed" and summary.steps == 200
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5
    assert vals[-1] < np.log(corpus.vocab.size)  # better than a uniform guess


def test_events_in_order_and_intervals():
    corpus = corpus_from_text(make_text())
    trainer = Trainer(corpus, MC, tc(steps=12, eval_every=5, sample_every=6, sample_length=20))
    events, summary = drain(trainer.run())
    kinds = [(type(e).__name__, e.step) for e in events]
    assert kinds[:5] == [("StepEvent", s) for s in range(1, 6)]
    assert ("EvalEvent", 5) in kinds and ("EvalEvent", 10) in kinds and ("EvalEvent", 12) in kinds
    samples = [e for e in events if isinstance(e, SampleEvent)]
    assert [s.step for s in samples] == [6, 12] and all(len(s.text) == 20 for s in samples)
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [s.step for s in steps] == list(range(1, 13))
    assert all(s.total_steps == 12 and s.chars_seen == s.step * 4 * 16 for s in steps)


def test_same_seed_same_weights_and_samples():
    corpus = corpus_from_text(make_text())
    runs = []
    for _ in range(2):
        trainer = Trainer(corpus, MC, tc(steps=15, sample_every=15, sample_length=40))
        events, _ = drain(trainer.run())
        runs.append((trainer.snapshot().params, [e.text for e in events if e.kind == "sample"]))
    (p1, s1), (p2, s2) = runs
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    assert s1 == s2
    other = Trainer(corpus, MC, tc(steps=15, seed=8))
    drain(other.run())
    assert not np.array_equal(other.snapshot().params["decoder.weight"], p1["decoder.weight"])


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_resume_is_bit_identical(tmp_path, schedule):
    corpus = corpus_from_text(make_text())
    cfg = tc(steps=24, lr_schedule=schedule, sample_every=7, sample_length=15)
    straight = Trainer(corpus, MC, cfg)
    straight_events, _ = drain(straight.run())

    first = Trainer(corpus, MC, cfg, checkpoint_path=str(tmp_path / "ck.npz"))
    gen = first.run()
    for ev in gen:
        if isinstance(ev, StepEvent) and ev.step == 11:
            first.request_stop()
    saved = load_model(tmp_path / "ck.npz")
    assert saved.train.step == 11
    resumed = Trainer(corpus, MC, cfg, resume=saved)
    resumed_events, summary = drain(resumed.run())
    assert summary.steps == 24
    a, b = straight.snapshot(), resumed.snapshot()
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
        assert np.array_equal(a.train.adam_m[k], b.train.adam_m[k]), k
    assert np.array_equal(a.train.h, b.train.h)
    samples = lambda evs: [(e.step, e.text) for e in evs if e.kind == "sample"]  # noqa: E731
    assert samples(resumed_events) == [s for s in samples(straight_events) if s[0] > 11]
    assert b.train.history["train_loss"].tolist() == a.train.history["train_loss"].tolist()


def test_stop_between_steps_and_checkpoint_written(tmp_path):
    corpus = corpus_from_text(make_text())
    path = tmp_path / "auto.npz"
    trainer = Trainer(corpus, MC, tc(steps=1000, checkpoint_every=4), checkpoint_path=str(path))
    gen = trainer.run()
    events = list(itertools.islice(gen, 6))  # steps 1..4, checkpoint at 4, step 5
    assert any(isinstance(e, CheckpointEvent) and e.step == 4 for e in events)
    trainer.request_stop()
    rest, summary = drain(gen)
    assert summary.reason == "stopped"
    assert summary.steps == trainer.step < 10
    assert load_model(path).train.step == trainer.step
    assert isinstance(rest[-1], CheckpointEvent)


def test_divergence_with_stop_keeps_last_good_weights(monkeypatch):
    """A NaN loss at step 4: the weights that produced it are not good; with
    on_divergence="stop" the run stops with the last kept state (its start here)."""
    corpus = corpus_from_text(make_text())
    trainer = Trainer(corpus, MC, tc(steps=10, on_divergence="stop"))
    start = trainer.snapshot().params
    real = CpuEngine.loss_and_grads
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        loss, grads, state = real(*args, **kwargs)
        return (float("nan") if calls["n"] == 4 else loss), grads, state

    monkeypatch.setattr(CpuEngine, "loss_and_grads", flaky)
    with pytest.raises(TrainingDiverged) as err:
        for _ in trainer.run():
            pass
    assert err.value.step == 4 and "step 4" in str(err.value)
    assert "infinite or NaN" in str(err.value) and "from step 0" in str(err.value)
    assert trainer.step == 0
    after = trainer.snapshot().params
    assert all(np.array_equal(start[k], after[k]) for k in start)


def test_minutes_budget_includes_the_final_evaluation_and_save(monkeypatch, tmp_path):
    """B10: `--minutes 1` took 71 s. With a fake clock (a step takes 0.5 s, a validation 5 s,
    a save 2 s) the whole run, final validation and save included, ends inside its minute."""
    clock = {"now": 1000.0}
    monkeypatch.setattr("charlstm_core.training.measures.now", lambda: clock["now"])
    real_step, real_save = CpuEngine.loss_and_grads, trainer_mod.save_model
    real_validate = Trainer._validate

    def step(*args, **kwargs):
        clock["now"] += 0.5
        return real_step(*args, **kwargs)

    def validate(self, ids=None):  # 5 s for the whole validation text, a slice in proportion
        share = 1.0 if ids is None else (len(ids) - 1) / (len(self._val_ids) - 1)
        clock["now"] += 5.0 * share
        return real_validate(self, ids)

    def save(*args, **kwargs):
        clock["now"] += 2.0
        return real_save(*args, **kwargs)

    monkeypatch.setattr(CpuEngine, "loss_and_grads", step)
    monkeypatch.setattr(Trainer, "_validate", validate)
    monkeypatch.setattr("charlstm_core.training.trainer.save_model", save)
    cfg = tc(steps=None, minutes=1.0, eval_every=20, checkpoint_every=20)
    trainer = Trainer(corpus_from_text(make_text()), MC, cfg, checkpoint_path=str(tmp_path / "m"))
    start = clock["now"]
    events, summary = drain(trainer.run())
    spent = clock["now"] - start
    assert events[-1].kind == "checkpoint" and summary.reason == "completed"
    assert any(e.kind == "eval" and e.step == summary.steps for e in events)
    assert 60.0 - 5.0 - 0.5 <= spent <= 60.0  # at most one evaluation and step short
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert steps[-1].total_steps == steps[-1].step == summary.steps


def test_minutes_budget_ends_the_run():
    corpus = corpus_from_text(make_text())
    trainer = Trainer(corpus, MC, tc(steps=None, minutes=0.002, eval_every=0))
    events, summary = drain(trainer.run())
    assert summary.reason == "completed" and summary.steps >= 1
    assert events[-1].kind == "eval"
    last = [e for e in events if isinstance(e, StepEvent)][-1]
    assert last.total_steps == last.step == summary.steps  # a finished run reads 100%


def test_minutes_run_warms_up_from_its_first_step():
    """Its length is unknown before the first step; the first step must still be the warm-up's
    first (lr / warmup), as in a run of known length, not the peak rate."""
    corpus = corpus_from_text(make_text())
    warm = 5
    runs = {
        "minutes": tc(steps=None, minutes=10.0, warmup_steps=warm, eval_every=0),
        "steps": tc(steps=1000, warmup_steps=warm, eval_every=0),
    }
    for name, cfg in runs.items():
        trainer = Trainer(corpus, MC, cfg)
        steps = [e for e in itertools.islice(trainer.run(), warm) if isinstance(e, StepEvent)]
        trainer.request_stop()
        rates = [e.lr for e in steps]
        expected = [cfg.lr * (i + 1) / warm for i in range(warm)]
        assert rates == pytest.approx(expected, rel=1e-6), name


def test_epochs_set_the_length():
    corpus = corpus_from_text(make_text(3000))
    trainer = Trainer(corpus, MC, tc(steps=None, epochs=1.0, eval_every=0))
    _, summary = drain(trainer.run())
    assert summary.steps == trainer.batches_per_epoch


def test_too_short_text_states_the_minimum():
    with pytest.raises(TextTooShortError) as err:
        Trainer(corpus_from_text("abcdef" * 5), MC, tc())
    assert str(err.value.minimum) in str(err.value).replace(",", "")


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError):
        Trainer(corpus_from_text(make_text()), MC, tc(steps=None))
    with pytest.raises(ConfigError):
        Trainer(corpus_from_text(make_text()), MC, tc(seq_len=0))


def test_continue_on_another_text(tmp_path):
    corpus = corpus_from_text(make_text())
    trainer = Trainer(corpus, MC, tc(steps=5))
    drain(trainer.run())
    snap = trainer.snapshot()
    other = corpus_from_text(make_text(seed=3)[::-1])  # same characters, other text
    cont = Trainer(other, MC, tc(steps=8), resume=snap)
    _, summary = drain(cont.run())
    assert summary.steps == 8
    with pytest.raises(CorpusMismatchError) as err:
        Trainer(corpus_from_text(make_text() + "XYZ"), MC, tc(steps=8), resume=snap)
    assert "'X'" in str(err.value)


def test_time_spent_outside_the_trainer_is_not_training_time(monkeypatch):
    """A paused caller (one that holds on to an event) does not add to elapsed time."""
    clock = {"now": 1000.0}
    monkeypatch.setattr("charlstm_core.training.measures.now", lambda: clock["now"])
    trainer = Trainer(corpus_from_text(make_text()), MC, tc(steps=4, eval_every=0))
    elapsed = []
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            elapsed.append(ev.elapsed_s)
        clock["now"] += 3600.0  # an hour-long pause between events
    assert max(elapsed) < 1.0
    assert trainer.elapsed_s < 1.0


def test_resume_with_another_validation_split_starts_the_streams_over():
    corpus = corpus_from_text(make_text())
    trainer = Trainer(corpus, MC, tc(steps=80, eval_every=0))
    drain(trainer.run())  # ends at batch 80 of 84: past the end of a shorter training part
    cont = Trainer(
        corpus, MC, tc(steps=90, val_fraction=0.4, eval_every=0), resume=trainer.snapshot()
    )
    _, summary = drain(cont.run())
    assert summary.steps == 90
