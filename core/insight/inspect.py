"""What the model thinks: per-character surprise, top-k predictions, every activation, unit
ranking by correlation with simple text detectors (core/insight/detectors.py), select-and-match
(LSTMVis), gate saturation (Karpathy, Johnson & Fei-Fei 2015; Strobelt et al. 2017). The
compression yardsticks a loss curve is read against are core/insight/yardsticks.py (re-exported
here).

Positions: a passage of N characters c_0 .. c_{N-1}. Activations at position t are the state
*after reading* c_t; the prediction made there is the distribution of c_{t+1}, so per-character
surprise has N-1 entries: ``bits[t] = -log2 p(c_{t+1} | c_0 .. c_t)``. The state starts at zero
before c_0, so c_0 itself is never predicted. The detectors follow the same convention (the value
at t describes the text read up to and including c_t), so they line up with the activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.devices import make_engine
from ..engine.protocol import Engine
from ..errors import ConfigError
from ..files.modelfile import ModelFile
from ..files.text import Vocab
from .detectors import DETECTORS as DETECTORS
from .detectors import detectors as detectors
from .yardsticks import Yardsticks as Yardsticks
from .yardsticks import compressed_nats as compressed_nats
from .yardsticks import entropies as entropies
from .yardsticks import yardsticks as yardsticks

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


def analyse(
    model: ModelFile,
    text: str,
    top_k: int = 5,
    *,
    activations: bool = True,
    engine: Engine | str = "cpu",
) -> Analysis:
    """Read ``text`` from a zero state and record what the model predicts and, optionally, every
    activation (see ``Analysis`` for the shapes).

    The passage runs through the engine's ``trace`` (charlstm_core.engine.trace; ``engine``: an
    engine or a device choice, the CPU by default) in windows of ``_WINDOW`` characters with the
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
    engine = make_engine(engine, cfg)
    prep = engine.prepare(model.params)
    state = engine.zero_state(1)
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
        # BLAS threads are the caller's choice: alone (the command line, an opened model) every
        # thread helps, since each step's matrix-vector product is memory-bound (2 threads about
        # halve the time); beside a running training the app holds BLAS to one thread, as it does
        # for generation (charlstm_gui/views/inspect_analysis.py)
        logits, state, layers = engine.trace(prep, ids[a:b], state)  # (T, V), (h, c, z) each
        if activations:
            for layer, (h, c, z) in enumerate(layers):
                hs[layer, a:b] = h
                cs[layer, a:b] = c
                # internal gate order o, i, f, g (charlstm_core.engine.cell) → input, forget, output
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
    if count <= 0:
        return []
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
