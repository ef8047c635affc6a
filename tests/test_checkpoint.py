"""charlstm_core.training.checkpoint: which of a checkpoint's state a continuation carries over."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.errors import ModelFileError
from charlstm_core.files.text import corpus_from_text
from charlstm_core.training import checkpoint
from charlstm_core.training.trainer import Trainer
from helpers import drain, make_text
from helpers import small_train_config as tc

MC = ModelConfig(vocab_size=1, hidden_size=16, num_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def saved():
    corpus = corpus_from_text(make_text(3000))
    trainer = Trainer(corpus, MC, tc(steps=6, eval_every=3))
    drain(trainer.run())
    return corpus, trainer.snapshot()


def test_exact_only_with_the_same_text_batching_and_seed(saved) -> None:
    corpus, snap = saved
    st, mc = snap.train, snap.config
    assert checkpoint.is_exact_continuation(st, corpus.sha256, mc, tc())
    assert not checkpoint.is_exact_continuation(st, "0" * 64, mc, tc())
    for change in ({"batch_size": 2}, {"seq_len": 8}, {"seed": 8}, {"val_fraction": 0.2}):
        assert not checkpoint.is_exact_continuation(st, corpus.sha256, mc, tc(**change)), change


def test_stream_position_must_fit_the_text(saved) -> None:
    _, snap = saved
    st = snap.train
    assert checkpoint.stream_position(st, 1000) == (st.stream["epoch"], st.stream["batch"])
    with pytest.raises(ModelFileError, match="damaged"):
        checkpoint.stream_position(st, st.stream["batch"])
    with pytest.raises(ModelFileError, match="stream position"):
        checkpoint.stream_position(dataclasses.replace(st, stream={}), 1000)


def test_history_round_trip_and_older_files(saved) -> None:
    _, snap = saved
    lists = checkpoint.history_lists(snap.train)
    assert len(lists["train_step"]) == 6 and lists["val_step"] == [3, 6]
    arrays = checkpoint.history_arrays(lists)
    for k, a in snap.train.history.items():
        np.testing.assert_array_equal(arrays[k], a)
        assert arrays[k].dtype == a.dtype
    old = {k: v for k, v in snap.train.history.items() if k != "grad_norm"}
    older = checkpoint.history_lists(dataclasses.replace(snap.train, history=old))
    assert len(older["grad_norm"]) == 6 and all(math.isnan(g) for g in older["grad_norm"])
    assert checkpoint.new_history() == {k: [] for k in arrays}


def test_a_new_learning_rate_drops_the_rollback_scale(saved) -> None:
    _, snap = saved
    st = dataclasses.replace(snap.train, lr_scale=0.25)
    assert checkpoint.resumed_lr_scale(st, tc()) == 0.25
    assert checkpoint.resumed_lr_scale(st, tc(lr=3e-3)) == 1.0
