"""The memorisation index: which spans of a generated text occur verbatim in the training text.

A span of at least ``n`` characters copied from the training text contains, whatever its
alignment, a whole ``k``-character gram starting at a training position that is a multiple of the
stride ``s``, with ``k = n - s + 1`` (the first multiple of ``s`` in the span is at most ``s - 1``
characters in, and ``s - 1 + k = n``). So the index holds only every ``s``-th training gram: a
64-bit polynomial hash of each, its top bits packed with the gram's number into one ``uint64``,
sorted once. A lookup hashes every ``k``-gram of the generated text, finds equal hashes with
``np.searchsorted``, extends each candidate by up to ``s`` characters each side, checks the gram
itself against the training text for those that would reach ``n`` characters (a hash collision
is never reported) and merges hits on the same alignment into maximal spans. Characters are
compared 8 at a time (one 64-bit word per candidate and side, see ``_extend``): a word-salad
text whose grams occur at hundreds of training places has that many candidates per character.

Which of those spans count is ``copy_rule``'s: a span must also say as much as ``n`` ordinary
characters of the training text (its bits under the text's unigram model, a run of one repeated
character counted once), so that indentation does not pass for memorisation.

Memory: the training ids (1 byte a character for vocabularies under 256) plus 16 bytes per
indexed gram while building (8 once built). ``benchmarks/bench_inspect.py`` measures the build
on 100 MB and a lookup of 10,000 characters.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..config import GenerationConfig, setting
from ..errors import ConfigError
from ..files.text import Vocab
from . import copy_rule

_BASE = np.uint64(0x100000001B3)  # odd multiplier of the polynomial hash (FNV's 64-bit prime)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the final bit mix
MAX_CANDIDATES = 1000  # training places looked at per generated gram (see CopyIndex.find)
MIN_N = int(setting(GenerationConfig, "copies_min").lo)  # shortest copy length the index accepts
# a span's bits are a float64 sum of up to G terms, n·H a product: the two may differ by a few
# ulps of rounding where a span says exactly n·H bits (a copy of a uniform text), so the test
# allows 64 ulps
ROUNDING = 1 - 64 * float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Copies:
    """The verbatim copies found in one generated text of G characters."""

    spans: tuple[tuple[int, int, int, int], ...]  # (start, end, train_pos, line_no): generated
    # characters [start, end) equal the training text from train_pos (0-based character
    # position, line line_no counting from 1); maximal, none inside another, in text order;
    # only the spans that count (``copy_rule``)
    fraction: float  # characters inside some span / G (0 for an empty text)
    longest: int  # length of the longest span, 0 when none
    skipped: int = 0  # verbatim spans of n+ characters that say too little to count
    plain: float = 0.0  # characters inside only such spans / G (what the rule no longer counts)

    def summary(self) -> str:
        """One line for a status bar: "14% copied verbatim, longest 63 characters"."""
        if not self.spans:
            return "nothing copied verbatim"
        return f"{self.fraction:.0%} copied verbatim, longest {self.longest:,} characters"


def _hash_grams(ids: np.ndarray, k: int, stride: int, count: int) -> np.ndarray:
    """(count,) uint64 hashes of the k-grams of ``ids`` starting at 0, stride, 2·stride, ...

    h = Σ_j ids[q+j] · BASE^(k-1-j) mod 2^64, then a multiply-xorshift mix so that the top bits
    (the ones the index keeps) depend on every character. In place, k passes over ``count``.
    """
    h = np.zeros(count, np.uint64)
    tmp = np.empty(count, np.uint64)
    last = stride * (count - 1) + 1
    for j in range(k):
        h *= _BASE
        np.add(h, ids[j : j + last : stride], out=h, casting="unsafe")
    np.right_shift(h, np.uint64(29), out=tmp)
    h ^= tmp
    h *= _MIX
    np.right_shift(h, np.uint64(32), out=tmp)
    h ^= tmp
    return h


class CopyIndex:
    """Every ``stride``-th ``k``-gram of a training text, hashed and sorted (see the module)."""

    def __init__(self, ids: np.ndarray, vocab: Vocab, n: int, keys: np.ndarray, bits: int) -> None:
        self.ids = ids  # (N,) the training text's character ids (not copied)
        self.vocab = vocab
        self.n = n  # shortest copy reported
        self.stride = max(1, min(8, n // 4))  # s
        self.k = n - self.stride + 1  # gram length
        self.keys = keys  # (M,) sorted uint64: hash top bits | gram number
        self.bits = bits  # low bits of a key holding the gram number
        self._newlines: np.ndarray | None = None
        # (V,) bits of each character and the unigram entropy H of the training text: a span
        # counts when it carries n·H bits (copy_rule)
        self.char_bits, self.entropy = copy_rule.char_bits(ids, vocab.size)

    @property
    def min_bits(self) -> float:
        """The information a copy must carry: n ordinary characters' worth, n·H bits."""
        return self.n * self.entropy

    def rule(self) -> str:
        """The rule that decides what counts as a copy, in words (``copy_rule.rule_text``)."""
        return copy_rule.rule_text(self.n, self.entropy)

    @classmethod
    def build(
        cls, ids: np.ndarray, vocab: Vocab, n: int = GenerationConfig.copies_min
    ) -> CopyIndex:
        """Index a training text given as (N,) ids of ``vocab`` (e.g. ``Corpus.ids``).

        Raises ConfigError when ``n`` is below ``MIN_N``.
        """
        if n < MIN_N:
            raise ConfigError(f"The shortest copy must be at least {MIN_N} characters, not {n!r}.")
        ids = np.asarray(ids)
        stride = max(1, min(8, n // 4))
        k = n - stride + 1
        count = (len(ids) - k) // stride + 1 if len(ids) >= k else 0
        bits = max(1, int(count - 1).bit_length())
        if count == 0:
            return cls(ids, vocab, n, np.empty(0, np.uint64), bits)
        keys = _hash_grams(ids, k, stride, count)
        keys >>= np.uint64(bits)
        keys <<= np.uint64(bits)
        keys |= np.arange(count, dtype=np.uint64)
        keys.sort()
        return cls(ids, vocab, n, keys, bits)

    @classmethod
    def from_text(cls, text: str, n: int = GenerationConfig.copies_min) -> CopyIndex:
        """Index a training text given as a string (its own vocabulary)."""
        if not text:
            return cls.build(np.empty(0, np.uint8), Vocab(("\n",)), n)
        vocab = Vocab.from_text(text)
        return cls.build(vocab.encode(text), vocab, n)

    def _encode(self, text: str) -> np.ndarray:
        """(G,) int64 ids of ``text``; characters outside the vocabulary are -1 (never equal)."""
        cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4")
        known = self.vocab.codepoints()
        pos = np.minimum(np.searchsorted(known, cps), len(known) - 1)
        return np.where(known[pos] == cps, pos, -1).astype(np.int64)

    def line_of(self, pos: np.ndarray | int) -> np.ndarray | int:
        """Line number (from 1) of training character position(s) ``pos``."""
        if self._newlines is None:
            nl = self.vocab.codepoints()
            where = np.flatnonzero(nl == ord("\n"))
            self._newlines = (
                np.flatnonzero(self.ids == where[0]) if where.size else np.empty(0, np.int64)
            )
        return np.searchsorted(self._newlines, pos) + 1

    def find(self, generated: str) -> Copies:
        """The copies in ``generated`` that count: the maximal spans of at least ``n``
        characters found verbatim in the training text that carry at least ``min_bits``
        (``copy_rule``), with the copied fraction and the longest span (see ``Copies``;
        ``skipped`` counts the verbatim spans that say too little, ``plain`` the share of the
        text only they cover)."""
        return self._find(generated, counted_only=True)

    def verbatim(self, generated: str) -> Copies:
        """Every maximal span of ``generated`` of at least ``n`` characters found verbatim in
        the training text, whatever it says (``find`` keeps the ones that count).

        Where one span occurs at several training places, the first is reported. A gram that
        occurs more than ``MAX_CANDIDATES`` times in the training text (a run of spaces, say) is
        looked for at its first such places only, so a copy made of nothing but very common
        grams can be missed; a copy that contains one rarer gram on the stride is found.
        """
        return self._find(generated, counted_only=False)

    def _find(self, generated: str, *, counted_only: bool) -> Copies:
        g = self._encode(generated)
        G, k, s, n = len(g), self.k, self.stride, self.n
        if G < n or self.keys.size == 0:
            return Copies((), 0.0, 0)
        train = self.ids
        bits = np.uint64(self.bits)
        low = np.uint64((1 << self.bits) - 1)
        top = _hash_grams(g.astype(np.uint64), k, 1, G - k + 1) >> bits << bits
        # searched in increasing order: each search starts near the last (measured ~5x faster
        # than random order on a 100 MB index, whose keys do not fit in cache)
        by = np.argsort(top, kind="stable")
        lo, hi = np.empty_like(by), np.empty_like(by)
        lo[by] = np.searchsorted(self.keys, top[by], side="left")
        hi[by] = np.searchsorted(self.keys, top[by] | low, side="right")
        counts = np.minimum(hi - lo, MAX_CANDIDATES)
        total = int(counts.sum())
        if total == 0:
            return Copies((), 0.0, 0)
        qi = np.repeat(np.arange(G - k + 1), counts)  # generated gram start of each candidate
        first = np.cumsum(counts) - counts
        slot = np.arange(total) - np.repeat(first, counts) + np.repeat(lo, counts)
        tq = (self.keys[slot] & low).astype(np.int64) * s  # training gram start
        # extend up to s characters each side; a copy of ≥ n has a stride gram with left + right
        # extension ≥ n - k = s - 1 (see the module docstring), so s is enough
        left = _extend(g, train, qi - 1, tq - 1, -1, s)
        right = _extend(g, train, qi + k, tq + k, 1, s)
        keep = left + k + right >= n
        # then verify the gram itself where it would count (rules out hash collisions)
        keep[keep] = _extend(g, train, qi[keep], tq[keep], 1, k) == k
        if not np.any(keep):
            return Copies((), 0.0, 0)
        a = qi[keep] - left[keep]
        b = qi[keep] + k + right[keep]
        d = tq[keep] - qi[keep]  # alignment: training position = generated position + d
        # merge overlapping hits on the same alignment: sort by (d, a); a hit starts a new run
        # unless it begins inside the furthest end seen so far on its alignment
        order = np.lexsort((a, d))
        a, b, d = a[order], b[order], d[order]
        W = G + 1
        reach = np.maximum.accumulate(d * W + b)
        new = np.r_[True, d[1:] * W + a[1:] > reach[:-1]]
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(a)] - 1
        ga, gb, gd = a[starts], reach[ends] - d[ends] * W, d[starts]
        # make each run maximal: the caps above make a run's ends exact except where a common
        # gram's candidates were cut at MAX_CANDIDATES; grow all runs together until they stop
        ga = ga - _extend(g, train, ga - 1, ga - 1 + gd, -1, G)
        gb = gb + _extend(g, train, gb, gb + gd, 1, G)
        # one training place per generated interval (the first), then drop intervals that lie
        # inside a longer one
        order = np.lexsort((ga + gd, -gb, ga))
        ga, gb, gd = ga[order], gb[order], gd[order]
        first_of = np.r_[True, (ga[1:] != ga[:-1]) | (gb[1:] != gb[:-1])]
        ga, gb, gd = ga[first_of], gb[first_of], gd[first_of]
        outer = np.r_[True, gb[1:] > np.maximum.accumulate(gb)[:-1]]
        ga, gb, gd = ga[outer], gb[outer], gd[outer]
        skipped, plain = 0, 0.0
        if counted_only:
            says = copy_rule.span_bits(g, self.char_bits, ga, gb) >= self.min_bits * ROUNDING
            skipped = int((~says).sum())
            if skipped:  # the characters only plain spans cover
                plain = _coverage(ga, gb, G) - _coverage(ga[says], gb[says], G)
            ga, gb, gd = ga[says], gb[says], gd[says]
            if ga.size == 0:
                return Copies((), 0.0, 0, skipped, plain)
        tp = ga + gd
        lines = self.line_of(tp)
        spans = tuple(
            (int(x), int(y), int(p), int(ln)) for x, y, p, ln in zip(ga, gb, tp, lines, strict=True)
        )
        fraction = _coverage(ga, gb, G)
        return Copies(spans, fraction, int((gb - ga).max()), skipped, plain)


def _coverage(starts: np.ndarray, ends: np.ndarray, n: int) -> float:
    """The fraction of n characters inside at least one of the spans [starts, ends)."""
    if n == 0 or len(starts) == 0:
        return 0.0
    covered = np.zeros(n + 1, np.int64)
    np.add.at(covered, starts, 1)
    np.add.at(covered, ends, -1)
    return float((np.cumsum(covered)[:n] > 0).mean())


def _extend(
    g: np.ndarray, train: np.ndarray, gi: np.ndarray, ti: np.ndarray, step: int, cap: int
) -> np.ndarray:
    """How many characters match going from (gi, ti) in direction ``step``, at most ``cap``: the
    first count where g[gi + step·j] != train[ti + step·j], or either index leaves its text, or
    g holds -1 (a character outside the vocabulary, never equal).

    Compares c characters per pair and pass as one 64-bit word (c = 8 for a vocabulary of one
    byte, see ``_words``): the pairs' training words are one gather from a 64-bit view of the
    training text at every character, the generated ones from a zero-padded copy, and the XOR
    of the two is zero in each equal character. The end of either text and the unknown
    characters are a limit per pair, computed first; only a pair whose word would cross an end
    of the training text compares character by character (``_chars``).
    """
    G, N = len(g), len(train)
    gi, ti = np.asarray(gi, np.int64), np.asarray(ti, np.int64)
    unknown = np.flatnonzero(g < 0)
    if step > 0:
        lim = np.minimum(G - gi, N - ti)
        if unknown.size:  # up to the first unknown at or after gi
            lim = np.minimum(lim, np.r_[unknown, G][np.searchsorted(unknown, gi)] - gi)
        lim[(gi < 0) | (ti < 0)] = 0
    else:
        lim = np.minimum(gi + 1, ti + 1)
        if unknown.size:  # back to the last unknown at or before gi
            prv = np.r_[-1, unknown][np.searchsorted(unknown, gi, side="right")]
            lim = np.minimum(lim, gi - prv)
        lim[(gi >= G) | (ti >= N)] = 0
    np.clip(lim, 0, cap, out=lim)
    t_words, c = _words(train)
    if c > 1 and G and int(g.max()) > np.iinfo(train.dtype).max:
        c = 1  # g's ids do not fit the training text's type (never with one vocabulary)
    if c > 1:
        pad = np.zeros(G + 2 * c, train.dtype)  # c characters of padding each side
        pad[c : c + G] = np.maximum(g, 0)  # unknowns: the limit stops before them
        g_words = _words(pad)[0]  # g_words[j + c] packs g[j : j + c]
    count = np.zeros(len(gi), np.int64)
    live = np.flatnonzero(lim > 0)
    while live.size:
        at = count[live]
        gp, tp = gi[live] + step * at, ti[live] + step * at
        if c == 1:
            run = (g[gp] == train[tp]).astype(np.int64)
        else:
            back = 0 if step > 0 else c - 1  # a word ending at the position, going left
            ts = tp - back
            x = g_words[gp - back + c] ^ t_words[np.clip(ts, 0, N - c)]  # 0 where equal
            if step < 0:
                x.byteswap(inplace=True)  # the character at the position first
            # equal characters before the first difference: trailing zero bits of x, in
            # characters (the lowest set bit, a power of 2, is exact in a float64)
            low = x & (~x + np.uint64(1))
            run = (np.frexp(low.astype(np.float64))[1] - 1) // (8 * train.itemsize)
            run[x == 0] = c
            edge = (ts < 0) | (ts > N - c)
            if edge.any():
                run[edge] = _chars(g, train, gp[edge], tp[edge], step, c)
        count[live] = at + run
        live = live[(run == c) & (count[live] < lim[live])]
    return np.minimum(count, lim)


def _words(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` (N,) as (N - c + 1,) overlapping 64-bit words, word j holding a[j : j + c] with a[j]
    in the lowest bits, and c = 8 / itemsize: a view, no copy. Where that cannot be (items of 8
    bytes, a signed or strided array, a big-endian machine, fewer than c items): ``a``, c = 1."""
    c = 8 // a.itemsize
    if c == 1 or a.dtype.kind != "u" or not a.flags.c_contiguous or len(a) < c:
        return a, 1
    if sys.byteorder != "little" or a.dtype.byteorder == ">":
        return a, 1
    return np.ndarray((len(a) - c + 1,), np.dtype("<u8"), buffer=a, strides=(a.itemsize,)), c


def _chars(
    g: np.ndarray, train: np.ndarray, gp: np.ndarray, tp: np.ndarray, step: int, c: int
) -> np.ndarray:
    """Matching characters from (gp, tp) in direction ``step``, at most c, one by one: for the
    few pairs whose word would cross an end of the training text."""
    off = np.arange(c) * step
    x, y = gp[:, None] + off, tp[:, None] + off
    inside = (x >= 0) & (x < len(g)) & (y >= 0) & (y < len(train))
    same = inside & (g[np.clip(x, 0, len(g) - 1)] == train[np.clip(y, 0, len(train) - 1)])
    return np.logical_and.accumulate(same, axis=1).sum(axis=1)
