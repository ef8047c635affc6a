"""The validation split: the last part of the text, or evenly spaced blocks (val_split)."""

from __future__ import annotations

import numpy as np
import pytest
from charlstm_core.cli.parser import build_parser
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import ConfigError
from charlstm_core.events import StepEvent
from charlstm_core.files.modelfile import load_model
from charlstm_core.files.text import VAL_BLOCKS, corpus_from_text, split_ids, val_blocks
from charlstm_core.training.trainer import Trainer
from helpers import drain, make_text
from helpers import small_train_config as tc

MC = ModelConfig(vocab_size=1, hidden_size=16, num_layers=1, dropout=0.1)


def test_last_is_the_contiguous_end() -> None:
    ids = np.arange(1000)
    train, val = split_ids(ids, 0.1, "last")
    assert val.tolist() == list(range(900, 1000))
    assert train.tolist() == list(range(900))
    assert val_blocks(1000, 0.1, "last") == [(900, 1000)]


def test_blocks_are_evenly_spaced_disjoint_and_cover_the_text() -> None:
    n = 10_007
    ids = np.arange(n)
    train, val = split_ids(ids, 0.13, "blocks")
    blocks = val_blocks(n, 0.13, "blocks")
    assert len(blocks) == VAL_BLOCKS
    assert len(val) == int(n * 0.13)  # the same amount as "last"
    assert sorted(train.tolist() + val.tolist()) == list(range(n))  # every character once
    # one block ends each tenth of the text, and the last block ends the text
    for k, (a, b) in enumerate(blocks):
        assert b == (k + 1) * n // VAL_BLOCKS
        assert a < b
    # order is kept inside both parts
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    # the start of the text is always trained on, and validation reaches its beginning
    assert train[0] == 0 and val[0] < n // 5


def test_blocks_on_a_tiny_validation_part_and_none() -> None:
    train, val = split_ids(np.arange(50), 0.1, "blocks")  # 5 characters: 5 blocks of 1
    assert len(val) == 5 and len(train) == 45
    train, val = split_ids(np.arange(50), 0.0, "blocks")
    assert len(val) == 0 and len(train) == 50


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError):
        split_ids(np.arange(10), 0.1, "middle")
    with pytest.raises(ConfigError, match="validation split"):
        TrainConfig(steps=1, val_split="middle").validate()


def test_trainer_validates_on_the_blocks() -> None:
    text = "a" * 5400 + "b" * 600  # the last part holds a character training never sees
    corpus = corpus_from_text(text)
    last = Trainer(corpus, MC, tc(steps=2, val_split="last"))
    blocks = Trainer(corpus, MC, tc(steps=2, val_split="blocks"))
    b = corpus.vocab.chars.index("b")
    assert set(np.unique(last._val_ids).tolist()) == {b}
    assert b not in set(np.unique(last._train_ids).tolist())
    assert b in set(np.unique(blocks._train_ids).tolist())


def test_checkpoint_records_the_split_and_a_resumed_blocks_run_stays_exact(tmp_path) -> None:
    corpus = corpus_from_text(make_text(6000))
    cfg = tc(steps=24, val_split="blocks", val_fraction=0.2, eval_every=5)
    straight = Trainer(corpus, MC, cfg)
    straight_events, _ = drain(straight.run())

    first = Trainer(corpus, MC, cfg, checkpoint_path=str(tmp_path / "ck.npz"))
    for ev in first.run():
        if isinstance(ev, StepEvent) and ev.step == 11:
            first.request_stop()
    saved = load_model(tmp_path / "ck.npz")
    assert saved.train.config.val_split == "blocks"
    resumed = Trainer(corpus, MC, saved.train.config.replace(steps=24), resume=saved)
    resumed_events, _ = drain(resumed.run())
    a, b = straight.snapshot(), resumed.snapshot()
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    vals = lambda evs: [(e.step, e.val_loss) for e in evs if e.kind == "eval"]  # noqa: E731
    assert vals(resumed_events) == [v for v in vals(straight_events) if v[0] > 11]


def test_resume_with_another_split_starts_the_streams_over() -> None:
    corpus = corpus_from_text(make_text(6000))
    trainer = Trainer(corpus, MC, tc(steps=10, eval_every=0))
    drain(trainer.run())
    cont = Trainer(corpus, MC, tc(steps=12, val_split="blocks"), resume=trainer.snapshot())
    assert (cont._epoch, cont._batch) == (0, 0)
    same = Trainer(corpus, MC, tc(steps=12), resume=trainer.snapshot())
    assert same._batch == 10


def test_cli_option() -> None:
    args = build_parser().parse_args(["train", "t.txt", "--val-split", "blocks"])
    assert args.val_split == "blocks"
    args = build_parser().parse_args(["train", "t.txt"])
    assert args.val_split is None  # not given: a new run takes the default, a resume its own


def test_cli_warns_of_unseen_validation_characters_and_blocks_train(tmp_path, monkeypatch, capsys):
    from charlstm_core.cli import parser as cli

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "t.txt"
    path.write_text(make_text(5400) + "QXZJ KVW " * 60, encoding="utf-8")
    tiny = ["--hidden", "16", "--seq-len", "16", "--batch-size", "4", "--steps", "3"]
    assert cli.main(["train", str(path), *tiny, "--out", "a.npz"]) == 0
    err = capsys.readouterr().err
    assert "never occur in the training part" in err and "--val-split blocks" in err
    assert cli.main(["train", str(path), *tiny, "--out", "b.npz", "--val-split", "blocks"]) == 0
    assert "never occur" not in capsys.readouterr().err
    assert load_model(tmp_path / "b.npz").train.config.val_split == "blocks"


def test_the_validation_limit_takes_an_even_share_of_every_block() -> None:
    ids = np.arange(10_000)
    train, val = split_ids(ids, 0.2, "blocks", max_val=105)
    blocks = val_blocks(10_000, 0.2, "blocks")
    assert len(val) == 105 and len(train) == 8000  # the rest stays out of training
    starts = [a for a, _ in blocks]
    for k, a in enumerate(starts):  # 11 from the first five blocks, 10 from the others
        n = 11 if k < 5 else 10
        assert set(range(a, a + n)) <= set(val.tolist())
    _, last = split_ids(ids, 0.2, "last", max_val=105)
    assert last.tolist() == list(range(8000, 8105))
