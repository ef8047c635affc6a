"""The command line remembers (issue 20, point 9): MODEL defaults to the newest model in the run
store, TEXT to the validation part of the model's own text; each choice is said on stderr,
explicit arguments win, and a store without a model or a file that is gone is a clear error."""

from __future__ import annotations

import re
import shutil

import pytest
from charlstm_core.files.modelfile import load_model
from charlstm_core.files.text import load_corpus, split_ids
from helpers import TINY, make_text
from helpers import run_cli as run


@pytest.fixture
def two_models(tmp_path, monkeypatch, capsys):
    """Two models trained one after the other on data/words.txt (older.npz, then newer.npz)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    text = tmp_path / "data" / "words.txt"
    text.write_text(make_text(3000), encoding="utf-8")
    for name, seed in (("older", 1), ("newer", 2)):
        code, _, err = run(
            capsys, "train", text, *TINY, "--steps", 4, "--seed", seed, "--out",
            f"models/{name}.npz", "-q",
        )  # fmt: skip
        assert code == 0, err
    return tmp_path / "models" / "older.npz", tmp_path / "models" / "newer.npz", text


def test_sample_without_a_model_uses_the_newest_and_says_which(two_models, capsys):
    older, newer, _ = two_models
    code, out, err = run(capsys, "sample", "--length", 60, "--seed", 3)
    assert code == 0
    assert re.fullmatch(
        r"charlstm: no MODEL given: using the newest model in the run store, "
        rf"{re.escape(str(newer))} \(run 2, “words 1x16”\)\n",
        err,
    )
    _, explicit, _ = run(capsys, "sample", newer, "--length", 60, "--seed", 3)
    assert out == explicit
    _, from_older, err = run(capsys, "sample", older, "--length", 60, "--seed", 3)
    assert from_older != out and err == ""  # an explicit MODEL wins, and nothing is said


def test_info_without_a_model_describes_the_newest(two_models, capsys):
    _, newer, _ = two_models
    code, out, _ = run(capsys, "info")
    assert code == 0 and "file:" in out and str(newer) in out


def test_no_model_in_the_store_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "sample")
    assert code == 2 and out == ""
    assert "no MODEL given" in err and "give MODEL" in err and len(err.splitlines()) == 1
    # a store whose runs kept no model file
    text = tmp_path / "w.txt"
    text.write_text(make_text(2000), encoding="utf-8")
    run(capsys, "train", text, *TINY, "--steps", 2, "-q")
    from charlstm_core.runs import RunStore, default_db_path

    with RunStore.open(default_db_path()) as store:
        store._con.execute("UPDATE runs SET model_path = NULL")
        store._con.commit()
    code, _, err = run(capsys, "sample")
    assert code == 2 and "no run in" in err and "recorded a model file" in err


def test_a_newest_model_that_is_gone_is_a_clear_error(two_models, capsys):
    _, newer, _ = two_models
    newer.unlink()
    code, out, err = run(capsys, "sample")
    assert code == 1 and out == ""
    assert str(newer) in err and "no longer exists" in err and "Give MODEL" in err


def test_inspect_without_a_text_reads_the_models_own_validation_part(two_models, capsys):
    _, newer, text = two_models
    code, out, err = run(capsys, "inspect", newer, "--spans", 0, "--chars", 100_000)
    assert code == 0
    assert f"no TEXT given: reading the validation part of {text}" in err
    assert "the last 10%, 300 characters it never trained on" in err
    bits = float(re.search(r"^bits/char:\s+([\d.]+)", out, re.M).group(1))
    # the same figure as inspect on a file holding exactly that validation part
    corpus = load_corpus(text)
    cfg = load_model(newer).train.config
    val = corpus.vocab.decode(split_ids(corpus.ids, cfg.val_fraction, cfg.val_split)[1])
    (text.parent / "val.txt").write_text(val, encoding="utf-8")
    code, out2, _ = run(capsys, "inspect", newer, text.parent / "val.txt", "--spans", 0)
    assert code == 0 and float(re.search(r"^bits/char:\s+([\d.]+)", out2, re.M).group(1)) == bits
    # no MODEL and no TEXT: the newest model and its own text
    code, out3, err = run(capsys, "cells", "--top", 1)
    assert code == 0 and "no MODEL given" in err and "validation part of" in out3


def test_inspect_html_without_a_text_never_writes_over_that_text(two_models, capsys):
    _, newer, text = two_models
    before = text.read_bytes()
    code, _, err = run(capsys, "inspect", newer, "--html", text)
    assert code == 2 and "one of the inputs" in err and text.read_bytes() == before
    code, _, err = run(capsys, "inspect", newer, "--html", "page.html")
    assert code == 0 and "wrote page.html" in err


def test_the_models_text_moved_or_changed_is_a_clear_error(two_models, tmp_path, capsys):
    _, newer, text = two_models
    moved = tmp_path / "elsewhere.txt"
    shutil.move(text, moved)
    code, out, err = run(capsys, "inspect", newer)
    assert code == 2 and out == ""
    assert "words.txt was not found" in err and f"recorded at {text}" in err
    assert "Give TEXT" in err and len(err.splitlines()) == 1
    text.write_text(make_text(3000, seed=9), encoding="utf-8")  # same name and size, other text
    code, _, err = run(capsys, "inspect", newer)
    assert code == 2 and "hold other text" in err
    code, _, _ = run(capsys, "inspect", newer, moved)  # an explicit TEXT still works
    assert code == 0
