"""charlstm_core.training.policy: the run rules both front ends share: batches per epoch, continue,
ETA, same
text."""

from __future__ import annotations

import pytest
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import ConfigError
from charlstm_core.files.text import corpus_from_text
from charlstm_core.training.policy import (
    plan_resume,
    same_text,
    steps_for_epochs,
    text_batches_per_epoch,
)
from charlstm_core.training.trainer import Trainer
from helpers import make_text, small_train_config


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"val_fraction": 0.0},
        {"val_fraction": 0.3, "val_split": "blocks"},
        {"batch_size": 3, "seq_len": 7, "val_fraction": 0.05, "val_split": "blocks"},
    ],
)
def test_batches_per_epoch_from_the_length_is_the_trainers(kw) -> None:
    corpus = corpus_from_text(make_text(3001))
    tc = small_train_config(**kw)
    trainer = Trainer(corpus, ModelConfig(vocab_size=1, hidden_size=8, num_layers=1), tc)
    assert text_batches_per_epoch(corpus.n_chars, tc) == trainer.batches_per_epoch > 0


def test_epochs_are_whole_steps_and_at_least_one() -> None:
    assert steps_for_epochs(2, 73) == 146
    assert steps_for_epochs(0.01, 73) == 1
    assert steps_for_epochs(1.5, 3) == 5  # 4.5 rounds up: the last pass is finished


def test_continue_counts_steps_and_epochs_as_totals_and_minutes_as_this_session() -> None:
    base = TrainConfig(steps=1000)
    plan = plan_resume(1000, 1000, base.replace(steps=3000), n_chars=10_000)
    assert (plan.target, plan.more, plan.nothing_left) == (3000, 2000, False)
    plan = plan_resume(1000, 1000, base, n_chars=10_000)
    assert plan.nothing_left and plan.more == 0
    # nothing given (the CLI's --resume alone): finish the planned run
    none = base.replace(steps=None)
    plan = plan_resume(400, 1000, none, n_chars=10_000)
    assert (plan.config.steps, plan.target, plan.more) == (1000, 1000, 600)
    # epochs: a total number of passes over this text, in this text's batches
    ep = base.replace(steps=None, epochs=2.0)
    batches = text_batches_per_epoch(10_000, ep)
    plan = plan_resume(10, 1000, ep, n_chars=10_000)
    assert plan.target == 2 * batches and plan.config.epochs == 2.0
    # minutes: no target, always something to train
    plan = plan_resume(10**6, 1000, base.replace(steps=None, minutes=5.0), n_chars=10_000)
    assert plan.target is None and plan.more is None and not plan.nothing_left


def test_plan_resume_validates_the_settings() -> None:
    with pytest.raises(ConfigError):
        plan_resume(0, 10, TrainConfig(steps=10, lr=-1.0), n_chars=10_000)


def test_same_text_needs_a_recorded_digest_that_matches() -> None:
    corpus = corpus_from_text("hello world\n")
    assert same_text(corpus.fingerprint, corpus.sha256)
    assert not same_text(corpus.fingerprint, corpus_from_text("other\n").sha256)
    assert not same_text({}, corpus.sha256) and not same_text(None, corpus.sha256)
    assert not same_text({"sha256": ""}, "")
