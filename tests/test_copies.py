"""The memorisation index: planted copies found exactly, nothing on unrelated text, agreement with
a brute-force search, and hash collisions never reported."""

from __future__ import annotations

import numpy as np
import pytest
from charlstm_core.errors import ConfigError
from charlstm_core.files.text import Vocab
from charlstm_core.insight import copies as copies_mod
from charlstm_core.insight import copy_rule
from charlstm_core.insight.copies import CopyIndex

TRAIN_ALPHABET = list("abcdefghijklm \n")
OTHER_ALPHABET = list("NOPQRSTUVWXYZ")  # shares no character with the training text


def random_text(alphabet: list[str], n: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(alphabet, n))


@pytest.fixture(scope="module")
def train() -> str:
    return random_text(TRAIN_ALPHABET, 30_000, seed=1)


def line_no(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


@pytest.mark.parametrize("n", [20, 8])
def test_planted_copies_of_exactly_n_and_longer_are_found_where_they_are(train, n):
    index = CopyIndex.from_text(train, n=n)
    filler = [random_text(OTHER_ALPHABET, 37, seed=s) for s in range(5)]
    planted = [(1234, n), (20_000, n + 1), (7, n + 13), (29_000, 3 * n)]
    gen, expected = filler[0], []
    for (pos, length), fill in zip(planted, filler[1:], strict=True):
        expected.append((len(gen), len(gen) + length, pos, line_no(train, pos)))
        gen += train[pos : pos + length] + fill
    found = index.verbatim(gen)
    assert list(found.spans) == expected
    assert found.longest == 3 * n
    assert found.fraction == pytest.approx(sum(length for _, length in planted) / len(gen))
    assert found.summary().endswith(f"longest {3 * n} characters")


def test_one_character_short_of_n_is_not_a_copy(train):
    index = CopyIndex.from_text(train, n=20)
    gen = "XYZ" + train[500:519] + "QRS"
    assert index.verbatim(gen).spans == ()


def test_nothing_is_reported_on_text_that_shares_no_n_gram(train):
    index = CopyIndex.from_text(train, n=12)
    gen = random_text(TRAIN_ALPHABET, 3000, seed=9)  # same characters, different text
    grams = {train[i : i + 12] for i in range(len(train) - 11)}
    assert not any(gen[i : i + 12] in grams for i in range(len(gen) - 11))  # truly none
    found = index.verbatim(gen)
    assert found.spans == () and found.fraction == 0.0 and found.longest == 0
    assert found.summary() == "nothing copied verbatim"
    assert index.verbatim("").spans == () and index.verbatim("short").spans == ()
    assert index.verbatim("unknown ★ characters ✓ everywhere in here ok").spans == ()


def brute_force(train: str, gen: str, n: int) -> tuple[np.ndarray, int]:
    """Covered characters and the longest copy, by trying every start and length."""
    covered = np.zeros(len(gen), bool)
    longest = 0
    for i in range(len(gen)):
        length = 0
        while i + length < len(gen) and gen[i : i + length + 1] in train:
            length += 1
        if length >= n:
            covered[i : i + length] = True
            longest = max(longest, length)
    return covered, longest


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_brute_force_on_repetitive_text(seed):
    # a 3-letter alphabet: many partial matches, overlapping copies, several training places
    train = random_text(list("abc"), 400, seed=seed)
    gen = random_text(list("abc"), 40, seed=100 + seed) + train[50:70] + train[60:75]
    for n in (6, 9):
        found = CopyIndex.from_text(train, n=n).verbatim(gen)
        covered, longest = brute_force(train, gen, n)
        assert found.longest == longest
        assert found.fraction == pytest.approx(covered.mean())
        for a, b, pos, _line in found.spans:
            assert b - a >= n and gen[a:b] == train[pos : pos + b - a]
            assert pos == train.find(gen[a:b])  # the first training place


def brute_force_spans(train: str, gen: str, n: int) -> list[tuple[int, int, int, int]]:
    """The maximal copies of at least n characters, none inside another, each at its first
    training place: from every start the longest prefix found in the training text."""
    spans, furthest = [], 0
    for i in range(len(gen)):
        length = 0
        while i + length < len(gen) and gen[i : i + length + 1] in train:
            length += 1
        if length >= n and i + length > furthest:
            pos = train.find(gen[i : i + length])
            spans.append((i, i + length, pos, line_no(train, pos)))
        furthest = max(furthest, i + length)
    return spans


@pytest.mark.parametrize("ids_kind", ["one byte", "two bytes", "strided"])
@pytest.mark.parametrize("seed", range(6))
def test_spans_equal_brute_force_with_planted_copies(seed, ids_kind):
    """Exact spans, places and lines on random texts with copies planted anywhere, also at both
    ends of both texts, next to characters the training text lacks; ids of one byte (8
    characters compared per word), of two bytes (4), and a strided view (one at a time)."""
    rng = np.random.default_rng(seed)
    if ids_kind == "two bytes":  # over 256 characters
        alphabet = [chr(0x4E00 + i) for i in range(300)]
    else:
        alphabet = list("abcdefgh")[: 5 + seed % 4]
    train = "".join(rng.choice([*alphabet, " ", "\n"], 1500))
    n = int(rng.integers(5, 16))
    pieces = [train[: n + 3]]  # a copy of the training text's start, at the generated start
    for _ in range(6):
        a = int(rng.integers(0, len(train) - 40))
        pieces.append("".join(rng.choice(["X", "Y", *alphabet[:5]], int(rng.integers(0, 12)))))
        pieces.append(train[a : a + int(rng.integers(n - 2, 40))])
    pieces.append(train[-(n + 5) :])  # the training text's end, at the generated end
    gen = "".join(pieces)
    vocab = Vocab.from_text(train)
    ids = vocab.encode(train)
    assert ids.dtype == (np.uint16 if ids_kind == "two bytes" else np.uint8)
    if ids_kind == "strided":
        ids = np.repeat(ids, 2)[::2]
        assert not ids.flags.c_contiguous
    found = CopyIndex.build(ids, vocab, n=n).verbatim(gen)
    assert list(found.spans) == brute_force_spans(train, gen, n)
    first, last = found.spans[0], found.spans[-1]
    assert first[0] == first[2] == 0 and first[1] >= n + 3 and last[1] == len(gen)


def test_hash_collisions_are_never_reported(train, monkeypatch):
    # every gram hashes to 0: every indexed gram is a candidate, only verification decides
    monkeypatch.setattr(
        copies_mod, "_hash_grams", lambda ids, k, stride, count: np.zeros(count, np.uint64)
    )
    small = train[:3000]
    index = CopyIndex.from_text(small, n=20)
    gen = "QQQ" + small[100:130] + random_text(TRAIN_ALPHABET, 200, seed=5)
    assert index.verbatim(gen).spans == ((3, 33, 100, line_no(small, 100)),)


def test_build_checks_n_and_handles_short_texts():
    with pytest.raises(ConfigError, match="at least"):
        CopyIndex.from_text("abc", n=2)
    index = CopyIndex.from_text("short text", n=20)
    assert index.verbatim("short text and more, short text").spans == ()
    assert CopyIndex.from_text("", n=20).verbatim("anything at all here, long enough").spans == ()


def test_extend_counts_matches_up_to_the_first_miss_or_the_cap():
    g = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    train = np.r_[g[:17], 0, g[18:]]  # differs at 17 only
    right = copies_mod._extend(
        g, train, np.array([0, 10, 17, 19]), np.array([0, 10, 17, 19]), 1, 100
    )
    assert right.tolist() == [17, 7, 0, 1]
    assert copies_mod._extend(g, train, np.array([0]), np.array([0]), 1, 5).tolist() == [5]
    left = copies_mod._extend(g, train, np.array([16, 19]), np.array([16, 19]), -1, 100)
    assert left.tolist() == [17, 2]


# ------------------------------------------------------------------ the rule: what counts as a copy


def test_span_bits_counts_a_run_of_one_character_once():
    bits = np.array([1.0, 2.0, 3.0])
    ids = np.array([0, 0, 0, 1, 2, 2, 1])
    # whole text: 1 (first 0 only) + 2 + 3 (first 2 only) + 2 = 8; a span starting on a repeat
    # still says its first character: [1, 3) = 1
    got = copy_rule.span_bits(ids, bits, np.array([0, 1, 4, 5]), np.array([7, 3, 6, 7]))
    assert got.tolist() == [8.0, 1.0, 3.0, 5.0]


def test_char_bits_are_the_unigram_information_and_h_its_mean():
    ids = np.array([0, 0, 1, 2])  # p = 1/2, 1/4, 1/4; a 4th character never occurs
    bits, h = copy_rule.char_bits(ids, 4)
    assert bits.tolist() == [1.0, 2.0, 2.0, 0.0]
    assert h == 1.5


def uniform_text(letters: str, each: int, seed: int) -> str:
    """Every letter exactly ``each`` times, shuffled: each carries exactly log2(len) bits."""
    chars = np.repeat(np.array(list(letters)), each)
    np.random.default_rng(seed).shuffle(chars)
    return "".join(chars)


def test_a_copy_must_carry_n_ordinary_characters_worth():
    train = uniform_text("abcdefghijklmnop", 400, seed=3)  # 16 letters: 4 bits each, H = 4
    n = 12
    index = CopyIndex.from_text(train, n=n)
    assert index.entropy == 4.0 and index.min_bits == 48.0
    # a training stretch of exactly n characters without a doubled letter: 48 bits, counts
    plain = next(i for i in range(len(train)) if all(
        train[j] != train[j + 1] for j in range(i, i + n - 1)))  # fmt: skip
    # one with a doubled letter inside: 44 bits, verbatim but not a copy
    doubled = next(i for i in range(len(train)) if train[i + 5] == train[i + 6])
    for start, counts in ((plain, True), (doubled, False)):
        gen = "XYZ" + train[start : start + n] + "QRS"
        assert index.verbatim(gen).spans == ((3, 3 + n, start, 1),)
        found = index.find(gen)
        assert (found.spans == ((3, 3 + n, start, 1),)) is counts
        assert found.skipped == (0 if counts else 1)
        assert found.longest == (n if counts else 0)


def test_indentation_is_not_memorisation_but_a_recited_passage_is():
    rng = np.random.default_rng(7)
    words = ["return", "self", "value", "if", "else", "for", "name", "in", "None", "def"]
    lines = []
    for _ in range(3000):  # Python-like source: deep indentation, a few common words
        depth = int(rng.integers(1, 7)) * 4
        lines.append(" " * depth + " ".join(rng.choice(words, int(rng.integers(1, 4)))))
    prose = (
        "Whan that Aprille with his shoures soote the droghte of March hath perced to the roote, "
        "and bathed every veyne in swich licour, of which vertu engendred is the flour"
    )
    train = "\n".join(lines[:1500]) + "\n" + prose + "\n" + "\n".join(lines[1500:])
    index = CopyIndex.from_text(train, n=20)
    indent = "\n" + " " * 24
    gen = "zz" + indent + "zq" + indent + "qz" + prose[10:70] + "qq"
    verbatim = index.verbatim(gen)
    found = index.find(gen)
    assert len(verbatim.spans) >= 3  # the indentation, found word for word
    assert [gen[a:b] for a, b, _, _ in found.spans] == [prose[10:70]]  # only the recitation
    assert found.skipped == len(verbatim.spans) - 1
    assert found.plain == pytest.approx(2 * len(indent) / len(gen))  # only the indentation
    assert found.longest == 60 and found.fraction == pytest.approx(60 / len(gen))
    assert f"{index.min_bits:.0f} bits" in index.rule()
