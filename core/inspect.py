"""What the model thinks: per-character surprise, top-k predictions, every activation, simple text
detectors, unit ranking by correlation, select-and-match (LSTMVis), gate saturation, and the
compression yardsticks a loss curve is read against (Karpathy, Johnson & Fei-Fei 2015; Strobelt
et al. 2017).

Positions: a passage of N characters c_0 .. c_{N-1}. Activations at position t are the state
*after reading* c_t; the prediction made there is the distribution of c_{t+1}, so per-character
surprise has N-1 entries: ``bits[t] = -log2 p(c_{t+1} | c_0 .. c_t)``. The state starts at zero
before c_0, so c_0 itself is never predicted. The detectors follow the same convention (the value
at t describes the text read up to and including c_t), so they line up with the activations.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from dataclasses import dataclass

import numpy as np

from .data import Vocab
from .errors import ConfigError
from .model import Prepared, zero_state
from .modelfile import ModelFile
from .parallel import single_threaded_blas

KINDS = {"c": "cell tanh(c)", "h": "hidden h"}  # activation kinds: key → label
GATES = ("input", "forget", "output")  # order of the gate axis in Analysis.gates
SATURATION = (0.1, 0.9)  # a gate value below the first is left-saturated, above the second right
ACTIVATION_BUDGET = 256 * 2**20  # bytes of recorded activations one analysis may hold
_WINDOW = 1024  # characters per forward pass: bounds the pass's own cache (4H floats per char)


# ---------------------------------------------------------------------------------- analysis


@dataclass(frozen=True, eq=False)  # holds arrays: equality is identity
class Analysis:
    """A passage of N characters read by a model of L layers of H units, top-k predictions.

    ``h``, ``c`` and ``gates`` are None when the analysis was made with ``activations=False``.
    """

    text: str  # the passage, N characters
    chars: tuple[str, ...]  # the model's vocabulary (id → character)
    ids: np.ndarray  # (N,) int64 character ids
    bits: np.ndarray  # (N-1,) float64 -log2 p of c_{t+1} given c_0..c_t
    top_ids: np.ndarray  # (N-1, k) int64 the k most likely next characters at t, most likely first
    top_probs: np.ndarray  # (N-1, k) float64 their probabilities
    h: np.ndarray | None  # (L, N, H) float32 hidden values h after reading c_t
    c: np.ndarray | None  # (L, N, H) float32 raw cell values c after reading c_t (see ``values``)
    gates: np.ndarray | None  # (L, N, 3, H) float32 input, forget, output gates (σ, in (0, 1))

    @property
    def mean_bits(self) -> float:
        """The passage's mean surprise, bits per character (over the N-1 predicted characters)."""
        return float(self.bits.mean())

    @property
    def p_actual(self) -> np.ndarray:
        """(N-1,) probability the model gave to the character that came: 2^-bits."""
        return np.exp2(-self.bits)

    def top_chars(self, t: int) -> list[tuple[str, float]]:
        """The k most likely characters after reading c_t, with their probabilities."""
        return [
            (self.chars[int(i)], float(p))
            for i, p in zip(self.top_ids[t], self.top_probs[t], strict=True)
        ]

    def values(self, kind: str = "c") -> np.ndarray:
        """(L, N, H) activations of ``kind``: "c" → tanh(c) in (-1, 1) (the cell value as
        Karpathy et al. show it), "h" → h. Raises ConfigError without recorded activations."""
        if self.h is None or self.c is None:
            raise ConfigError(
                "This analysis was made without activations; analyse it again with them."
            )
        if kind == "c":
            return np.tanh(self.c)
        if kind == "h":
            return self.h
        raise ConfigError(f"The activation kind must be one of {', '.join(KINDS)}, not {kind!r}.")


def unknown_chars(vocab: Vocab, text: str) -> tuple[str, ...]:
    """Distinct characters of ``text`` that are not in the vocabulary (sorted by code point)."""
    return vocab.missing(text)


def known_text(vocab: Vocab, text: str) -> tuple[str, tuple[str, ...]]:
    """``text`` without the characters the model never saw, and those characters.

    For a pasted passage: ``analyse`` raises VocabularyError naming unknown characters; a front
    end that prefers to carry on drops them with this and says which it dropped.
    """
    missing = vocab.missing(text)
    if not missing:
        return text, ()
    drop = set(missing)
    return "".join(ch for ch in text if ch not in drop), missing


def max_passage(model: ModelFile) -> int:
    """Longest passage whose activations fit ``ACTIVATION_BUDGET``: h, c and 3 gates, float32,
    per layer and unit, i.e. N · L · H · 5 · 4 bytes."""
    cfg = model.config
    return max(2, ACTIVATION_BUDGET // (cfg.num_layers * cfg.hidden_size * 5 * 4))


def analyse(model: ModelFile, text: str, top_k: int = 5, *, activations: bool = True) -> Analysis:
    """Read ``text`` from a zero state and record what the model predicts and, optionally, every
    activation (see ``Analysis`` for the shapes).

    The passage runs through ``Prepared.trace`` in windows of ``_WINDOW`` characters with the
    state carried over: layer by layer, so each layer's input projection and the decoder are one
    product per window and only the recurrence is stepped (``benchmarks/bench_inspect.py``).

    Raises VocabularyError naming the characters the model never saw (see ``known_text``) and
    ConfigError for a text under 2 characters or, with activations, longer than ``max_passage``.
    """
    vocab, cfg = model.vocab, model.config
    ids = vocab.encode(text).astype(np.int64)
    n = len(ids)
    if n < 2:
        raise ConfigError("The passage needs at least 2 characters: one to read, one to predict.")
    if activations and n > max_passage(model):
        raise ConfigError(
            f"The passage has {n:,} characters; this model's activations fit for at most "
            f"{max_passage(model):,}. Choose a shorter passage."
        )
    L, H, V = cfg.num_layers, cfg.hidden_size, vocab.size
    k = max(1, min(top_k, V))
    prep = Prepared(model.params, cfg)
    state = zero_state(cfg, 1)
    bits = np.empty(n - 1)
    top_ids = np.empty((n - 1, k), np.int64)
    top_probs = np.empty((n - 1, k))
    hs = cs = gates = None
    if activations:
        hs = np.empty((L, n, H), cfg.dtype)
        cs = np.empty((L, n, H), cfg.dtype)
        gates = np.empty((L, n, 3, H), cfg.dtype)
    for a in range(0, n, _WINDOW):
        b = min(n, a + _WINDOW)
        # one BLAS thread: a matrix-vector product a step is too small to split, and a second
        # BLAS thread spinning against training on a busy machine made it 10x slower
        with single_threaded_blas():
            logits, state, layers = prep.trace(ids[a:b], state)  # (T, V), per layer (h, c, z)
        if activations:
            for layer, (h, c, z) in enumerate(layers):
                hs[layer, a:b] = h
                cs[layer, a:b] = c
                # internal gate order o, i, f, g (see Prepared.trace) → input, forget, output
                gates[layer, a:b, 0] = z[:, H : 2 * H]
                gates[layer, a:b, 1] = z[:, 2 * H : 3 * H]
                gates[layer, a:b, 2] = z[:, :H]
        # predictions made after reading c_a .. c_{b-1}; the last one of the text predicts nothing
        stop = min(b, n - 1)
        if stop <= a:
            continue
        z = logits[: stop - a].astype(np.float64)  # (T, V)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        rows = np.arange(stop - a)
        p = z[rows, ids[a + 1 : stop + 1]]
        bits[a:stop] = -np.log2(np.maximum(p, np.finfo(np.float64).tiny))
        part = (
            np.argpartition(-z, k - 1, axis=1)[:, :k]
            if k < V
            else np.tile(np.arange(V), (len(z), 1))
        )
        pp = np.take_along_axis(z, part, axis=1)
        order = np.argsort(-pp, axis=1, kind="stable")
        top_ids[a:stop] = np.take_along_axis(part, order, axis=1)
        top_probs[a:stop] = np.take_along_axis(pp, order, axis=1)
    return Analysis(text, vocab.chars, ids, bits, top_ids, top_probs, hs, cs, gates)


def char_bits(analysis: Analysis) -> np.ndarray:
    """(N,) surprise of each character of the passage in bits: ``bits`` shifted to the character
    it scores, with NaN for c_0 (nothing predicted it)."""
    return np.r_[np.nan, analysis.bits]


def surprising_spans(
    analysis: Analysis, count: int = 10, width: int = 12
) -> list[tuple[int, int, float]]:
    """The ``count`` most surprising stretches of ``width`` characters, most surprising first, as
    (start, end, total bits): non-overlapping windows [start, end) with the largest sum of the
    characters' surprise (c_0 counts 0)."""
    per = np.nan_to_num(char_bits(analysis))
    n = per.size
    w = max(1, min(width, n))
    sums = np.convolve(per, np.ones(w), mode="valid")  # sums[s] = per[s : s + w].sum()
    taken = np.zeros(n, bool)
    chosen: list[tuple[int, int, float]] = []
    for start in np.argsort(-sums, kind="stable"):
        s0 = int(start)
        if taken[s0 : s0 + w].any():
            continue
        taken[s0 : s0 + w] = True
        chosen.append((s0, s0 + w, float(sums[s0])))
        if len(chosen) == count:
            break
    return chosen


# ---------------------------------------------------------------------------------- detectors

DETECTORS = {  # name → one-line description (the order the ranking shows them in)
    "double quotes": 'inside a "double-quoted" passage',
    "single quotes": "inside a 'single-quoted' passage (apostrophes in words do not count)",
    "bracket depth": "how many (, [ or { are open",
    "line position": "characters since the last newline",
    "line start": "the first character of a line",
    "indentation": "the current line's indentation (spaces; a tab counts 4)",
    "in word": "a letter, or an apostrophe between letters",
    "uppercase": "an uppercase letter",
    "digit": "a digit",
    "after sentence end": "from a . ! or ? ending a sentence up to the next letter or digit",
}
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = set(_OPEN.values())


def detectors(text: str) -> dict[str, np.ndarray]:
    """Simple facts about each character of ``text``: name → (N,) float64, the keys of DETECTORS.

    Each value at t describes the text read up to and including c_t (like the activations):

    * "double quotes": 1 while a quotation is open. A straight " toggles; “ opens and ” closes.
      The opening quote itself is 1 (after reading it we are inside), the closing one 0.
    * "single quotes": the same for ' (and ‘ ’), except that a ' with a letter or digit on both
      sides is an apostrophe (don't, it's) and changes nothing. A newline closes an open single
      quote, so a stray possessive (the dogs') cannot flip the rest of the text.
    * "bracket depth": the number of (, [, { opened and not yet closed by ), ], } (never below 0).
      The opening bracket counts itself; the closing one does not.
    * "line position": t minus the position of the last newline at or before t; a newline is 0,
      the character after it 1. The text is read as if a newline preceded it.
    * "line start": 1 at the first character of each line (position 0 and after every newline,
      unless that character is itself a newline), else 0.
    * "indentation": the leading whitespace of the current line seen so far (space 1, tab 4):
      it grows through the indentation and then holds until the newline, where it is 0.
    * "in word": 1 at a letter, and at an apostrophe with letters on both sides.
    * "uppercase": 1 at an uppercase letter. "digit": 1 at a decimal digit.
    * "after sentence end": 1 at a . ! or ? not followed by a letter or digit (3.14 and e.g. do
      not end sentences), and at every following character up to the next letter or digit.
    """
    n = len(text)
    out = {name: np.zeros(n) for name in DETECTORS}
    dq = sq = False
    depth = 0
    col = 0
    indent = 0
    in_indent = True
    after = False
    d_dq, d_sq, d_depth, d_col = (
        out["double quotes"],
        out["single quotes"],
        out["bracket depth"],
        out["line position"],
    )
    d_start, d_ind, d_word = out["line start"], out["indentation"], out["in word"]
    d_up, d_dig, d_after = out["uppercase"], out["digit"], out["after sentence end"]
    prev = "\n"
    for t, ch in enumerate(text):
        nxt = text[t + 1] if t + 1 < n else ""
        if ch == "\n":
            col, indent, in_indent, sq = 0, 0, True, False
        else:
            col += 1
            if prev == "\n":
                d_start[t] = 1.0
            if in_indent and ch in " \t":
                indent += 4 if ch == "\t" else 1
            else:
                in_indent = False
        if ch == '"':
            dq = not dq
        elif ch == "“":
            dq = True
        elif ch == "”":
            dq = False
        elif ch == "'":
            if not (prev.isalnum() and nxt.isalnum()):
                sq = not sq
        elif ch == "‘":
            sq = True
        elif ch == "’":
            if not (prev.isalnum() and nxt.isalnum()):
                sq = False
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        if ch.isalnum():
            after = False
        if ch in ".!?" and not nxt.isalnum():
            after = True
        d_dq[t], d_sq[t], d_depth[t], d_col[t], d_ind[t] = dq, sq, depth, col, indent
        d_after[t] = after
        if ch.isalpha() or (ch in "'’" and prev.isalpha() and nxt.isalpha()):
            d_word[t] = 1.0
        if ch.isupper():
            d_up[t] = 1.0
        if ch.isdecimal():
            d_dig[t] = 1.0
        prev = ch
    return out


# ---------------------------------------------------------------------------------- ranking


@dataclass(frozen=True)
class UnitScore:
    """A unit and how well its activation follows a detector."""

    layer: int  # 0-based layer
    unit: int  # 0-based unit in the layer
    r: float  # Pearson correlation over the passage's N positions, in [-1, 1]


def correlations(values: np.ndarray, signals: np.ndarray) -> np.ndarray:
    """Pearson r of every unit with every signal: values (L, N, H), signals (K, N) → (K, L, H).

    A constant unit or signal (zero variance) has r = 0, with no warning.
    """
    L, N, H = values.shape
    a = values.transpose(0, 2, 1).reshape(L * H, N).astype(np.float64)
    a -= a.mean(axis=1, keepdims=True)
    sa = np.sqrt((a * a).sum(axis=1))
    s = np.asarray(signals, np.float64).reshape(-1, N)
    s = s - s.mean(axis=1, keepdims=True)
    ss = np.sqrt((s * s).sum(axis=1))
    cov = s @ a.T  # (K, L*H)
    den = ss[:, None] * sa[None, :]
    r = np.divide(
        cov, den, out=np.zeros_like(cov), where=den > 1e-12 * max(1.0, float(den.max(initial=0.0)))
    )
    return np.clip(r, -1.0, 1.0).reshape(-1, L, H)


def rank_units(
    analysis: Analysis, signals: dict[str, np.ndarray], kind: str = "c", top: int = 5
) -> dict[str, list[UnitScore]]:
    """For each detector, the ``top`` units whose activation of ``kind`` (see ``Analysis.values``)
    correlates best with it, by |r|, best first. signals: name → (N,), as made by ``detectors``.
    A detector that is constant on the passage (no quotes in it, say) gets an empty list."""
    names = list(signals)
    if not names:
        return {}
    r = correlations(analysis.values(kind), np.stack([signals[n] for n in names]))
    K, L, H = r.shape
    out: dict[str, list[UnitScore]] = {}
    for j, name in enumerate(names):
        flat = r[j].ravel()
        if not np.any(flat):
            out[name] = []
            continue
        m = min(top, flat.size)
        best = np.argpartition(-np.abs(flat), m - 1)[:m]
        best = best[np.argsort(-np.abs(flat[best]), kind="stable")]
        out[name] = [UnitScore(int(i) // H, int(i) % H, float(flat[i])) for i in best]
    return out


# ------------------------------------------------------------------------ select and match


@dataclass(frozen=True)
class UnitMatch:
    """A unit that is on inside a selection and off just outside it."""

    layer: int
    unit: int
    inside: float  # mean activation inside the selection
    outside: float  # mean activation over the rest of the passage


@dataclass(frozen=True)
class Match:
    """The result of select-and-match: the units and the other places they are on together."""

    units: tuple[UnitMatch, ...]  # best first (largest inside - outside)
    spans: tuple[tuple[int, int], ...]  # [start, end) runs where every unit is ≥ threshold,
    # in text order, not counting the run that overlaps the selection itself


def match_selection(
    analysis: Analysis,
    start: int,
    end: int,
    threshold: float = 0.5,
    kind: str = "c",
    max_units: int = 10,
) -> Match:
    """LSTMVis's select-and-match on the characters [start, end).

    A unit qualifies when its activation is ≥ ``threshold`` at every position of the selection
    and < ``threshold`` at the position just before it and just after it (where those exist).
    The ``max_units`` qualifying units with the largest inside - outside mean are kept; the
    match is every maximal run of positions where all of them are ≥ ``threshold``.
    Raises ConfigError for an empty or out-of-range selection.
    """
    values = analysis.values(kind)  # (L, N, H)
    L, N, H = values.shape
    if not (0 <= start < end <= N):
        raise ConfigError(f"The selection must lie within the passage (0 .. {N}) and not be empty.")
    on = values >= threshold  # (L, N, H)
    ok = on[:, start:end].all(axis=1)
    if start > 0:
        ok &= ~on[:, start - 1]
    if end < N:
        ok &= ~on[:, end]
    cand = np.argwhere(ok)  # (M, 2) layer, unit
    if len(cand) == 0:
        return Match((), ())
    v = values[cand[:, 0], :, cand[:, 1]].astype(np.float64)  # (M, N)
    inside = v[:, start:end].mean(axis=1)
    rest = np.r_[0:start, end:N]
    outside = v[:, rest].mean(axis=1) if rest.size else np.zeros(len(cand))
    order = np.argsort(-(inside - outside), kind="stable")[:max_units]
    units = tuple(
        UnitMatch(int(cand[i, 0]), int(cand[i, 1]), float(inside[i]), float(outside[i]))
        for i in order
    )
    together = (v[order] >= threshold).all(axis=0)  # (N,)
    spans = tuple((a, b) for a, b in runs(together) if b <= start or a >= end)
    return Match(units, spans)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, end) runs of True in a (N,) boolean array, in order."""
    m = np.asarray(mask, bool)
    edges = np.flatnonzero(np.diff(np.r_[0, m.view(np.int8), 0]))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


# ---------------------------------------------------------------------------------- gates


def gate_saturation(analysis: Analysis) -> np.ndarray:
    """(L, 3, H, 2) float64: per layer, gate (input, forget, output) and unit, the fraction of the
    N positions where the gate is left-saturated (< 0.1, [..., 0]) and right-saturated (> 0.9,
    [..., 1]) (Karpathy et al. 2015, figure 3)."""
    if analysis.gates is None:
        raise ConfigError("This analysis was made without activations; analyse it again with them.")
    g = analysis.gates  # (L, N, 3, H)
    lo, hi = SATURATION
    left = (g < lo).mean(axis=1)
    right = (g > hi).mean(axis=1)
    return np.stack([left, right], axis=-1)


# ---------------------------------------------------------------------------------- yardsticks


@dataclass(frozen=True)
class Yardsticks:
    """Reference losses in nats/char for reading a loss curve (all over characters, not bytes).

    The compressors code the validation text's UTF-8 bytes at their strongest setting (-9); their
    figure is 8 · size / characters bits, times ln 2. The entropies are of the training text's
    character frequencies: unigram H(c) and bigram H(c_t | c_{t-1}) (what a bigram model fitted
    to the training text would score on it).
    """

    gzip: float
    bz2: float
    xz: float
    unigram: float
    bigram: float
    val_chars: int  # validation characters measured (a prefix when val_prefix)
    train_chars: int  # training characters counted (a prefix when train_prefix)
    val_prefix: bool  # only the first val_chars characters were compressed
    train_prefix: bool  # only the first train_chars characters were counted

    def lines(self) -> list[tuple[str, float, str]]:
        """(label, nats/char, tooltip) for each reference line, in the order above."""
        vp = f" (first {self.val_chars:,} characters)" if self.val_prefix else ""
        tp = f" (first {self.train_chars:,} characters)" if self.train_prefix else ""
        return [
            ("gzip -9", self.gzip, f"Validation text compressed by gzip -9{vp}"),
            ("bz2 -9", self.bz2, f"Validation text compressed by bz2 -9{vp}"),
            ("xz -9", self.xz, f"Validation text compressed by xz -9{vp}"),
            ("unigram", self.unigram, f"Entropy of the training text's characters{tp}"),
            (
                "bigram",
                self.bigram,
                f"Entropy of a character given the one before, training text{tp}",
            ),
        ]


def compressed_nats(text: str) -> tuple[float, float, float]:
    """(gzip -9, bz2 -9, xz -9) sizes of ``text``'s UTF-8 bytes in nats per character."""
    if not text:
        raise ConfigError("The text to compress is empty.")
    raw = text.encode("utf-8", "surrogatepass")
    sizes = (
        len(gzip.compress(raw, compresslevel=9, mtime=0)),
        len(bz2.compress(raw, compresslevel=9)),
        len(lzma.compress(raw, preset=9)),
    )
    return tuple(8 * s / len(text) * math.log(2) for s in sizes)  # type: ignore[return-value]


def entropies(text: str) -> tuple[float, float]:
    """(unigram H(c), bigram H(c_t | c_{t-1})) of ``text``'s characters in nats per character.

    H(c_t | c_{t-1}) = H(c_{t-1}, c_t) - H(c_{t-1}) over the N-1 adjacent pairs.
    """
    if len(text) < 2:
        raise ConfigError("The text needs at least 2 characters to measure its entropies.")
    ids = Vocab.from_text(text).encode(text).astype(np.int64)
    V = int(ids.max()) + 1

    def h(x: np.ndarray) -> float:
        counts = np.unique(x, return_counts=True)[1] if V * V > 2**26 else np.bincount(x)
        p = counts[counts > 0] / x.size
        return float(-(p * np.log(p)).sum())

    return h(ids), h(ids[:-1] * V + ids[1:]) - h(ids[:-1])


def yardsticks(
    val_text: str, train_text: str, max_chars: int = 2_000_000, max_train_chars: int = 20_000_000
) -> Yardsticks:
    """The reference lines; long texts are measured on a prefix (xz -9 runs near 1 MB/s).

    The compressors see at most ``max_chars`` characters of the validation text, the entropies
    at most ``max_train_chars`` of the training text; the flags say when a prefix was used.
    """
    v = val_text[:max_chars]
    t = train_text[:max_train_chars]
    gz, bz, xz = compressed_nats(v)
    uni, bi = entropies(t)
    return Yardsticks(
        gz, bz, xz, uni, bi, len(v), len(t), len(v) < len(val_text), len(t) < len(train_text)
    )
