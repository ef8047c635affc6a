"""Tests of charlstm_core.files.modelfile: exact round trips, atomic saves and typed errors for bad
files.

Models here are random arrays of the right shapes; charlstm_core.engine.model is not needed.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.engine.model import param_shapes
from charlstm_core.errors import ModelFileError, ModelFormatVersionError
from charlstm_core.files.modelfile import (
    FORMAT_VERSION,
    ModelFile,
    TrainState,
    load_model,
    save_model,
)
from charlstm_core.files.modelfile import write as modelfile_write
from charlstm_core.files.modelfile.parse import to_arrays
from charlstm_core.files.text import Vocab

TEXT = "hello wörld\n中"


def _model(dtype: str = "float32", layers: int = 2, with_train: bool = True) -> ModelFile:
    vocab = Vocab.from_text(TEXT)
    cfg = ModelConfig(vocab_size=vocab.size, hidden_size=8, num_layers=layers, dtype=dtype)
    rng = np.random.default_rng(0)
    shapes = param_shapes(cfg)

    def rand() -> dict[str, np.ndarray]:
        return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}

    params = rand()
    if not with_train:
        return ModelFile(cfg, params, vocab)
    tcfg = TrainConfig(seq_len=5, batch_size=3, steps=50, seed=7)
    gen = np.random.default_rng(2**63 + 12345)
    gen.random(5)  # advance: a state with big integers and has_uint32 set below
    gen.integers(0, 2**32, dtype=np.uint32)
    drop = np.random.default_rng(99)
    state = (layers, tcfg.batch_size, cfg.hidden_size)
    train = TrainState(
        config=tcfg,
        step=12,
        total_steps=50,
        elapsed_s=3.25,
        adam_m=rand(),
        adam_v={k: np.abs(v) for k, v in rand().items()},  # squares: >= 0
        h=rng.standard_normal(state).astype(dtype),
        c=rng.standard_normal(state).astype(dtype),
        rng={"dropout": drop.bit_generator.state, "sample": gen.bit_generator.state},
        stream={"offsets": [0, 4, 8], "pos": 15, "epoch": 1},
        history={
            "train_step": np.arange(1, 13),
            "train_loss": np.linspace(4.0, 2.0, 12),
            "val_step": np.array([10]),
            "val_loss": np.array([2.5]),
        },
        corpus={"name": "t.txt", "size": 17, "sha256": "ab" * 32, "encoding": "utf-8"},
        best_val_loss=2.5,
    )
    return ModelFile(cfg, params, vocab, train)


def _arrays(mf: ModelFile) -> dict[str, np.ndarray]:
    return to_arrays(mf)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


# --- round trips -------------------------------------------------------------------------------


def test_param_shapes_follow_pytorch() -> None:
    cfg = ModelConfig(vocab_size=65, hidden_size=16, num_layers=2)
    assert param_shapes(cfg) == {
        "lstm.weight_ih_l0": (64, 65),
        "lstm.weight_hh_l0": (64, 16),
        "lstm.bias_ih_l0": (64,),
        "lstm.bias_hh_l0": (64,),
        "lstm.weight_ih_l1": (64, 16),
        "lstm.weight_hh_l1": (64, 16),
        "lstm.bias_ih_l1": (64,),
        "lstm.bias_hh_l1": (64,),
        "decoder.weight": (65, 16),
        "decoder.bias": (65,),
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_checkpoint_round_trip_is_exact(tmp_path: Path, dtype: str) -> None:
    mf = _model(dtype)
    path = tmp_path / "model.npz"
    assert save_model(path, mf) == str(path)
    got = load_model(path)
    assert got.config == mf.config and got.vocab == mf.vocab
    assert list(got.params) == list(mf.params)
    for k in mf.params:
        assert got.params[k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got.params[k], mf.params[k])
    t, u = mf.train, got.train
    assert t is not None and u is not None
    assert u.config == t.config
    assert (u.step, u.total_steps, u.elapsed_s, u.best_val_loss) == (12, 50, 3.25, 2.5)
    for a, b in ((t.adam_m, u.adam_m), (t.adam_v, u.adam_v)):
        assert list(a) == list(b)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(u.h, t.h)
    np.testing.assert_array_equal(u.c, t.c)
    assert u.stream == t.stream and u.corpus == t.corpus
    for k in t.history:
        np.testing.assert_array_equal(u.history[k], t.history[k])
    assert u.history["train_step"].dtype == np.int64
    assert u.history["train_loss"].dtype == np.float64
    # RNG states, including PCG64's 128-bit integers, come back exactly: the generators agree.
    assert u.rng == t.rng
    for purpose, state in t.rng.items():
        a, b = np.random.default_rng(), np.random.default_rng()
        a.bit_generator.state = state
        b.bit_generator.state = u.rng[purpose]
        np.testing.assert_array_equal(a.random(8), b.random(8))
        assert a.integers(0, 2**32, dtype=np.uint32) == b.integers(0, 2**32, dtype=np.uint32)


def test_weights_only_round_trip_and_exact_path(tmp_path: Path) -> None:
    mf = _model(with_train=False, layers=1)
    path = tmp_path / "weights.bin"  # no .npz added
    save_model(str(path), mf)
    assert os.listdir(tmp_path) == ["weights.bin"]
    got = load_model(path)
    assert got.train is None and got.vocab.chars == tuple(sorted(set(TEXT)))


def test_metadata_is_json_bytes_not_pickles(tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.npz", _model())
    with np.load(path, allow_pickle=False) as npz:
        assert int(npz["format_version"]) == FORMAT_VERSION
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        assert npz["vocab"].dtype == np.uint32
    assert meta["app"] == "CharLSTM Studio" and meta["model_config"]["hidden_size"] == 8


# --- atomic save -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["savez", "replace"])
def test_failed_save_leaves_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    path = tmp_path / "m.npz"
    save_model(path, _model(with_train=False))
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if where == "savez":
        monkeypatch.setattr(modelfile_write.np, "savez", boom)
    else:
        monkeypatch.setattr(modelfile_write.os, "replace", boom)
    with pytest.raises(ModelFileError, match="No space left on device") as e:
        save_model(path, _model())
    assert "unchanged" in str(e.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left behind


def test_interrupted_save_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(modelfile_write.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_model(tmp_path / "m.npz", _model())
    assert os.listdir(tmp_path) == []


def test_save_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="folder"):
        save_model(tmp_path / "missing" / "m.npz", _model())
    with pytest.raises(ModelFileError, match="is a folder"):
        save_model(tmp_path, _model())
    mf = _model(with_train=False)
    bad = dict(mf.params, **{"decoder.bias": mf.params["decoder.bias"].astype(np.float64)})
    with pytest.raises(ModelFileError, match="dtype float64, expected float32"):
        save_model(tmp_path / "m.npz", ModelFile(mf.config, bad, mf.vocab))
    nan = dict(mf.params, **{"decoder.bias": np.full_like(mf.params["decoder.bias"], np.nan)})
    with pytest.raises(ModelFileError, match="non-finite"):
        save_model(tmp_path / "m.npz", ModelFile(mf.config, nan, mf.vocab))
    assert os.listdir(tmp_path) == []


# --- bad files ---------------------------------------------------------------------------------


def test_missing_folder_empty_and_not_npz(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="There is no model file"):
        load_model(tmp_path / "nope.npz")
    with pytest.raises(ModelFileError, match="is a folder"):
        load_model(tmp_path)
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load_model(tmp_path / "e.npz")
    (tmp_path / "t.npz").write_text("just some text\n")
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        load_model(tmp_path / "t.npz")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="single NumPy array"):
        load_model(tmp_path / "a.npy")


def test_truncated_file(tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.npz", _model())
    raw = Path(path).read_bytes()
    for cut in (len(raw) // 2, len(raw) - 10, 100):
        Path(path).write_bytes(raw[:cut])
        with pytest.raises(ModelFileError, match="truncated"):
            load_model(path)


def test_corrupted_bytes(tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.npz", _model())
    raw = bytearray(Path(path).read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("params/decoder.weight.npy")
    at = info.header_offset + 30 + len(info.filename) + 128 + 3  # inside the array's data
    raw[at] ^= 0xFF
    Path(path).write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="damaged"):
        load_model(path)


def test_pickled_object_array_is_refused(tmp_path: Path) -> None:
    arrays = _arrays(_model(with_train=False))
    arrays["params/decoder.bias"] = np.array([{"x": 1}, None], dtype=object)
    with open(tmp_path / "p.npz", "wb") as f:
        np.savez(f, allow_pickle=True, **arrays)
    with pytest.raises(ModelFileError, match="pickled Python objects"):
        load_model(tmp_path / "p.npz")
    np.save(tmp_path / "o.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "o.npy")


def test_raw_zip_member_is_refused(tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.npz", _model(with_train=False))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("evil.pkl", b"\x80\x04N.")
    with pytest.raises(ModelFileError, match="not NumPy arrays"):
        load_model(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("params/lstm.bias_hh_l1"), "lacks entries: 'params/lstm.bias_hh_l1'"),
        (lambda a: a.pop("train/adam_v/decoder.bias"), "lacks entries"),
        (lambda a: a.update({"params/extra": np.zeros(2, np.float32)}), "unknown entries"),
        (lambda a: a.update({"params/decoder.bias": np.zeros(3, np.float32)}), "shape (3,)"),
        (lambda a: a.update({"train/h": np.zeros((2, 3, 8), np.float64)}), "dtype float64"),
        (lambda a: a.update({"train/c": np.zeros((2, 4, 8), np.float32)}), "expected (2, 3, 8)"),
        (lambda a: a.update({"vocab": a["vocab"][::-1].copy()}), "strictly increasing"),
        (lambda a: a.update({"vocab": a["vocab"][:-1].copy()}), "'vocab' has shape"),
        (lambda a: a.update({"meta": np.frombuffer(b"{oops", np.uint8)}), "not valid JSON"),
        (lambda a: a.pop("format_version"), "no 'format_version'"),
        (lambda a: a.update({"format_version": np.array(1.0)}), "not a single integer"),
        (lambda a: a.update({"format_version": np.array(0)}), "format version 0"),
        (
            lambda a: a.update({"train/history/val_loss": np.zeros(4)}),
            "histories differ in length",
        ),
    ],
)
def test_invalid_contents_are_named(tmp_path: Path, change, message: str) -> None:
    arrays = _arrays(_model())
    change(arrays)
    path = _write_npz(tmp_path / "bad.npz", arrays)
    with pytest.raises(ModelFileError) as e:
        load_model(path)
    assert message in str(e.value)
    assert str(path) in str(e.value)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    arrays = _arrays(_model())
    arrays["format_version"] = np.array(FORMAT_VERSION + 1, dtype=np.int64)
    arrays["something/new"] = np.zeros(1)  # a newer layout: the version is checked first
    path = _write_npz(tmp_path / "new.npz", arrays)
    with pytest.raises(ModelFormatVersionError) as e:
        load_model(path)
    msg = str(e.value)
    assert "newer CharLSTM Studio" in msg and "Upgrade" in msg


# --- the run's samples (Open Model shows them again) ---------------------------------------------


def test_samples_round_trip_and_older_files_have_none(tmp_path: Path) -> None:
    import dataclasses

    mf = _model()
    samples = ((10, "hello\nwörld"), (20, "中 \udcff"))  # a lone surrogate is stored escaped
    mf = ModelFile(mf.config, mf.params, mf.vocab, dataclasses.replace(mf.train, samples=samples))
    back = load_model(save_model(tmp_path / "s.npz", mf))
    assert back.train.samples == ((10, "hello\nwörld"), (20, "中 \\udcff"))
    arrays = _arrays(mf)
    meta = json.loads(arrays["train/meta"].tobytes())
    del meta["samples"]  # as written before samples were kept
    arrays["train/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    assert load_model(_write_npz(tmp_path / "old.npz", arrays)).train.samples == ()


def test_trainer_keeps_its_samples_in_the_checkpoint(tmp_path: Path) -> None:
    from charlstm_core.files.text import corpus_from_text
    from charlstm_core.training.trainer import Trainer

    corpus = corpus_from_text("abcabcabd " * 50)
    mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=8)
    tc = TrainConfig(steps=4, batch_size=2, seq_len=5, eval_every=0, sample_every=2,
                     sample_length=7)  # fmt: skip
    trainer = Trainer(corpus, mc, tc)
    texts = [(e.step, e.text) for e in trainer.run() if e.kind == "sample"]
    assert [s for s, _ in texts] == [2, 4]
    back = load_model(trainer.save(str(tmp_path / "t.npz")))
    assert back.train.samples == tuple(texts)
    resumed = Trainer(corpus, mc, tc.replace(steps=6), resume=back)
    more = [(e.step, e.text) for e in resumed.run() if e.kind == "sample"]
    assert resumed.snapshot().train.samples == tuple(texts + more)
