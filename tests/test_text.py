"""Tests of charlstm_core.files.text: decoding, refusing bad files, the vocabulary, encoding, split,
built-in text.

Every text is generated here; nothing reads ../shared.
"""

from __future__ import annotations

import builtins
import hashlib
from pathlib import Path

import numpy as np
import pytest
from charlstm_core.errors import (
    CorpusError,
    CorpusMismatchError,
    DecodeError,
    TextTooShortError,
    VocabularyError,
)
from charlstm_core.files import text as data
from charlstm_core.files import vocab as vocab_mod
from charlstm_core.files.builtin_text import builtin_corpus
from charlstm_core.files.text import (
    Corpus,
    Vocab,
    check_trainable,
    corpus_from_text,
    load_corpus,
    min_chars,
)

MIXED = "Héllo, wörld!\n中文字符 and an emoji 🙂\tend\n" * 3


def _write(tmp_path: Path, content: bytes, name: str = "t.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


# --- vocabulary --------------------------------------------------------------------------------


def test_vocab_sorted_by_code_point_and_round_trip() -> None:
    v = Vocab.from_text(MIXED)
    cps = [ord(c) for c in v.chars]
    assert cps == sorted(set(ord(c) for c in MIXED))
    assert v.codepoints().dtype == np.uint32
    assert v.codepoints().tolist() == cps
    ids = v.encode(MIXED)
    assert ids.shape == (len(MIXED),) and ids.dtype == np.uint8
    assert v.decode(ids) == MIXED
    assert v.decode([]) == ""
    assert Vocab.from_codepoints(v.codepoints()) == v


@pytest.mark.parametrize(
    ("n", "dtype"),
    [(1, np.uint8), (256, np.uint8), (257, np.uint16), (65536, np.uint16), (65537, np.uint32)],
)
def test_vocab_dtype_is_smallest_that_fits(n: int, dtype: type) -> None:
    # Code points skipping the surrogates: > 65536 distinct characters means going past the BMP.
    cps = np.concatenate([np.arange(0xD800), np.arange(0xE000, 0x110000)])[:n]
    v = Vocab.from_codepoints(cps)
    assert v.size == n and v.dtype == dtype
    text = "".join(v.chars[::-1]) + v.chars[-1]
    ids = v.encode(text)
    assert ids.dtype == dtype
    assert int(ids[0]) == n - 1 and int(ids[-1]) == n - 1
    assert v.decode(ids) == text


def test_encode_unknown_chars_lists_them() -> None:
    v = Vocab.from_text("abc")
    assert v.missing("abcxa\n") == ("\n", "x")
    with pytest.raises(VocabularyError) as e:
        v.encode("ab\nzx")
    assert e.value.missing == ("\n", "x", "z")
    assert "'\\n'" in str(e.value) and "'x'" in str(e.value)


def test_encode_lists_at_most_twenty_missing() -> None:
    v = Vocab.from_text("a")
    with pytest.raises(VocabularyError) as e:
        v.encode("".join(chr(0x4E00 + i) for i in range(30)))
    assert len(e.value.missing) == 30
    assert "and 10 more" in str(e.value)


def test_vocab_rejects_unsorted_or_duplicate() -> None:
    with pytest.raises(ValueError):
        Vocab(("b", "a"))
    with pytest.raises(ValueError):
        Vocab(("a", "a"))
    with pytest.raises(ValueError):
        Vocab(("ab",))


# --- loading files -----------------------------------------------------------------------------


def test_load_utf8_file(tmp_path: Path) -> None:
    raw = MIXED.encode("utf-8")
    c = load_corpus(_write(tmp_path, raw))
    assert c.vocab.decode(c.ids) == MIXED
    assert c.name == "t.txt" and c.encoding == "utf-8" and c.n_chars == len(MIXED)
    assert c.n_bytes == len(raw) and c.sha256 == hashlib.sha256(raw).hexdigest()
    assert c.fingerprint == {
        "name": "t.txt",
        "size": len(raw),
        "sha256": c.sha256,
        "encoding": "utf-8",
        "path": str(tmp_path / "t.txt"),  # where to find it again (files/own_text.py)
    }
    assert c.preview(5) == MIXED[:5]


def test_ascii_fast_path_matches_general_path(tmp_path: Path) -> None:
    text = "The quick brown fox.\n" * 50
    fast = load_corpus(_write(tmp_path, text.encode("ascii")))
    slow = corpus_from_text(text)
    assert fast.vocab == slow.vocab
    np.testing.assert_array_equal(fast.ids, slow.ids)
    assert fast.ids.dtype == np.uint8


def test_chunked_encoding_matches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vocab_mod, "CHUNK", 7)  # many chunks, one partial at the end
    text = MIXED * 2
    c = load_corpus(_write(tmp_path, text.encode("utf-8")))
    assert c.vocab.decode(c.ids) == text
    a = load_corpus(_write(tmp_path, b"abcdefghij" * 3, "a.txt"))
    assert a.vocab.decode(a.ids) == "abcdefghij" * 3


def test_each_character_is_visited_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Decoding, building the vocabulary and encoding read the text's code points once: one
    conversion per chunk, with or without a model's vocabulary (was: two)."""
    monkeypatch.setattr(vocab_mod, "CHUNK", 16)
    calls = []
    real = vocab_mod._codepoints
    monkeypatch.setattr(vocab_mod, "_codepoints", lambda t: calls.append(len(t)) or real(t))
    text = MIXED * 3
    c = load_corpus(_write(tmp_path, text.encode("utf-8")))
    # the text once, and the vocabulary's own characters once (Vocab builds its table)
    assert sum(calls) == len(text) + c.vocab.size and c.vocab.decode(c.ids) == text
    calls.clear()
    again = load_corpus(_write(tmp_path, text.encode("utf-8")), vocab=c.vocab)
    assert sum(calls) == len(text)
    np.testing.assert_array_equal(again.ids, c.ids)


def test_ids_widen_when_the_vocabulary_outgrows_a_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vocab_mod, "CHUNK", 50)  # the vocabulary grows past 256 mid-text
    text = "".join(chr(0x100 + (i * 7919) % 400) for i in range(2000)) + "a"
    c = corpus_from_text(text)
    assert c.vocab.size == 401 and c.ids.dtype == np.uint16
    assert c.vocab == Vocab.from_text(text) and c.vocab.decode(c.ids) == text


def test_bom_is_dropped(tmp_path: Path) -> None:
    c = load_corpus(_write(tmp_path, b"\xef\xbb\xbfhi\n"))
    assert c.vocab.decode(c.ids) == "hi\n"
    assert "\ufeff" not in c.vocab.chars
    c = load_corpus(_write(tmp_path, "\ufeffhé".encode()))
    assert c.vocab.decode(c.ids) == "hé"


def test_undecodable_bytes_name_the_offset(tmp_path: Path) -> None:
    raw = "abc é ".encode() + b"\xff" + b"tail"
    with pytest.raises(DecodeError) as e:
        load_corpus(_write(tmp_path, raw))
    assert e.value.offset == raw.index(b"\xff") == 7
    assert e.value.encoding == "utf-8"
    msg = str(e.value)
    assert "offset 7" in msg and "latin-1" in msg and "t.txt" in msg


def test_undecodable_offset_counts_the_bom(tmp_path: Path) -> None:
    raw = b"\xef\xbb\xbfab\xc3"  # a truncated two-byte sequence at the end
    with pytest.raises(DecodeError) as e:
        load_corpus(_write(tmp_path, raw))
    assert e.value.offset == 5


def test_other_encodings(tmp_path: Path) -> None:
    raw = "café naïve\n".encode("latin-1")
    c = load_corpus(_write(tmp_path, raw), encoding="latin-1")
    assert c.vocab.decode(c.ids) == "café naïve\n" and c.encoding == "latin-1"
    c = load_corpus(_write(tmp_path, "“quotes” €\n".encode("cp1252")), encoding="cp1252")
    assert c.vocab.decode(c.ids) == "“quotes” €\n"
    # UTF-16 legitimately contains NUL bytes.
    c = load_corpus(_write(tmp_path, MIXED.encode("utf-16")), encoding="utf-16")
    assert c.vocab.decode(c.ids) == MIXED


def test_unknown_encoding(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="Unknown text encoding"):
        load_corpus(_write(tmp_path, b"abc"), encoding="no-such-codec")
    with pytest.raises(CorpusError, match="not a text encoding"):
        load_corpus(_write(tmp_path, b"abc"), encoding="base64")


def test_nul_bytes_refused_as_binary(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="binary") as e:
        load_corpus(_write(tmp_path, b"abc\x00def"))
    assert "offset 3" in str(e.value)
    with pytest.raises(CorpusError, match="binary"):
        load_corpus(_write(tmp_path, "ab\0".encode("utf-16-le")), encoding="utf-16-le")


def test_empty_missing_folder_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = _write(tmp_path, b"", "empty.txt")
    with pytest.raises(CorpusError, match="empty") as e:
        load_corpus(empty)
    assert str(empty) in str(e.value)
    with pytest.raises(CorpusError, match="no text"):
        load_corpus(_write(tmp_path, b"\xef\xbb\xbf", "bom.txt"))
    with pytest.raises(CorpusError, match="There is no file"):
        load_corpus(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="is a folder"):
        load_corpus(tmp_path)

    # Root can read anything, so simulate an unreadable file.
    target = _write(tmp_path, b"abc", "locked.txt")
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if str(file) == str(target):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(CorpusError, match="permission denied") as e:
        load_corpus(target)
    assert str(target) in str(e.value)


def test_load_with_model_vocab(tmp_path: Path) -> None:
    v = Vocab.from_text("abcdefgh \n")
    c = load_corpus(_write(tmp_path, b"bad cafe\n"), vocab=v)
    assert c.vocab is v and v.decode(c.ids) == "bad cafe\n"
    with pytest.raises(CorpusMismatchError) as e:
        load_corpus(_write(tmp_path, b"bad cafe!\tzz\n"), vocab=v)
    msg = str(e.value)
    assert "'!'" in msg and "'\\t'" in msg and "'z'" in msg and "new model" in msg
    with pytest.raises(CorpusMismatchError, match="'é'"):
        load_corpus(_write(tmp_path, "bé".encode()), vocab=v)
    with pytest.raises(CorpusMismatchError):
        corpus_from_text("xyz", vocab=v)


def test_mismatch_error_carries_the_missing_characters(tmp_path: Path) -> None:
    v = Vocab.from_text("ab\n")
    with pytest.raises(CorpusMismatchError) as e:
        load_corpus(_write(tmp_path, "abxé\n".encode()), vocab=v)
    assert e.value.missing == ("x", "é")
    assert "cannot represent 2 character(s)" in str(e.value)


def test_reencode_to_another_vocabulary() -> None:
    c = corpus_from_text("bad cab\n")
    v = Vocab.from_text("abcdefg \n")
    ids = data.reencode(c, v)
    assert ids.dtype == v.dtype and v.decode(ids) == "bad cab\n"
    assert data.reencode(c, c.vocab) is c.ids
    with pytest.raises(CorpusMismatchError) as e:
        data.reencode(corpus_from_text("abz!\n"), v)
    assert e.value.missing == ("!", "z") and "'z'" in str(e.value)


# --- batches -----------------------------------------------------------------------------------


def test_get_batch_continues_each_stream() -> None:
    ids = np.arange(103, dtype=np.uint8)  # B = 4 streams of seg = 25, T = 6: 4 batches
    B, T = 4, 6
    assert data.batches_per_epoch(len(ids), B, T) == 4
    x0, y0 = data.get_batch(ids, 0, B, T)
    x1, y1 = data.get_batch(ids, 1, B, T)
    assert x0.shape == y0.shape == (B, T) and x0.dtype == np.int64
    np.testing.assert_array_equal(x0[:, 0], [0, 25, 50, 75])  # stream b starts at b * seg
    np.testing.assert_array_equal(y0, x0 + 1)  # targets: the next character
    np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # batch 1 continues batch 0
    x3, y3 = data.get_batch(ids, 3, B, T)
    assert y3.max() <= len(ids) - 1 and y3[-1, -1] == 75 + 4 * T
    assert data.batches_per_epoch(B * T, B, T) == 0  # too short for one batch


# --- split and minimum length ------------------------------------------------------------------


def test_split_last_fraction_rounded_down() -> None:
    c = corpus_from_text("abcdefghijklmnopqrstuvwxy")  # 25 characters
    train, val = c.split(0.1)
    assert val.size == 2 and train.size == 23
    assert c.vocab.decode(val) == "xy"
    train, val = c.split(0.0)
    assert val.size == 0 and train.size == 25


def test_check_trainable_states_minimum() -> None:
    assert min_chars(4, 10, 0.0) == 41
    assert min_chars(4, 10, 0.1) == 110  # val = floor(0.1 N) >= 11 -> N >= 110; train 99 >= 41
    c = corpus_from_text("x" * 40)
    with pytest.raises(TextTooShortError) as e:
        check_trainable(c, batch_size=4, seq_len=10, val_fraction=0.0)
    assert e.value.minimum == 41 and e.value.actual == 40
    msg = str(e.value)
    assert "at least 41 characters" in msg and "batch size 4" in msg
    assert "sequence length 10" in msg and "this text has 40" in msg
    check_trainable(corpus_from_text("x" * 41), 4, 10, 0.0)
    check_trainable(corpus_from_text("x" * 110), 4, 10, 0.1)
    with pytest.raises(TextTooShortError, match="at least 110"):
        check_trainable(corpus_from_text("x" * 109), 4, 10, 0.1)


@pytest.mark.parametrize("vf", [0.0, 0.05, 0.1, 0.3, 0.5])
def test_min_chars_is_exact(vf: float) -> None:
    b, t = 3, 7
    n = min_chars(b, t, vf)

    def ok(m: int) -> bool:
        train, val = corpus_from_text("a" * m).split(vf)
        return train.size >= b * t + 1 and (vf == 0 or val.size >= t + 1)

    assert ok(n) and not ok(n - 1)


# --- in-memory and built-in texts --------------------------------------------------------------


def test_corpus_from_text() -> None:
    c = corpus_from_text(MIXED, name="paste")
    assert isinstance(c, Corpus) and c.path is None and c.name == "paste"
    assert c.n_bytes == len(MIXED.encode()) and c.vocab.decode(c.ids) == MIXED
    with pytest.raises(CorpusError, match="empty"):
        corpus_from_text("")


def test_builtin_corpus_is_deterministic() -> None:
    a = builtin_corpus(max_bytes=200_000)
    b = builtin_corpus(max_bytes=200_000)
    assert a.name == "Python standard library"
    assert 100_000 < a.n_bytes <= 200_000
    assert a.sha256 == b.sha256
    np.testing.assert_array_equal(a.ids, b.ids)
    text = a.preview(10**9)
    assert "def " in text and "import " in text
