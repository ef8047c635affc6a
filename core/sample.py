"""Generation and evaluation with a trained model, on any engine.

``generate`` warms the state up on a prime text and then draws one character at a time from
softmax(logits / temperature), optionally restricted to the top-k characters and/or the smallest
set whose probabilities sum to top-p (nucleus). It yields each character as it is drawn, so a
caller can show text live and stop whenever it likes. ``evaluate`` scores every next character
of a text once. Both run on the engine they are given (charlstm_core.engine.protocol.Engine, or
a device choice; the CPU by default), through its ``step`` and ``scored_loss``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .config import GenerationConfig, setting
from .engine.devices import make_engine
from .engine.protocol import Engine
from .errors import ConfigError, TextTooShortError, VocabularyError, unrepresentable
from .files.modelfile import ModelFile
from .files.vocab import Vocab


def _check_prime(vocab: Vocab, prime: str) -> None:
    missing = vocab.missing(prime)
    if missing:
        raise VocabularyError(
            unrepresentable("the prime text", missing, "Remove or replace them."),
            missing=missing,
        )


def check_sampling(temperature: float, top_k: int, top_p: float, length: int) -> None:
    """Raise ConfigError for sampling settings out of their ranges (``GenerationConfig``'s)."""
    for name, value in (
        ("temperature", temperature), ("top_k", top_k), ("top_p", top_p), ("length", length)
    ):  # fmt: skip
        setting(GenerationConfig, name).check(value)


def next_char_distribution(
    logits: np.ndarray, temperature: float, top_k: int = 0, top_p: float = 1.0
) -> np.ndarray:
    """Probabilities (V,) float64 to draw the next character from; logits (V,).

    temperature 0 puts all mass on the argmax. top_k > 0 keeps the k most likely characters;
    top_p < 1 keeps the smallest most-likely set whose probability reaches top_p.
    """
    z = logits.astype(np.float64)
    if temperature == 0.0:
        p = np.zeros_like(z)
        p[int(np.argmax(z))] = 1.0
        return p
    # Shift first, so the largest logit is 0 and stays 0: a tiny temperature (1e-320) then
    # sends the others to -inf (probability 0) instead of overflowing everything to inf - inf.
    with np.errstate(over="ignore"):
        z = (z - z.max()) / temperature
    if 0 < top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z)
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        keep = order[: int(np.searchsorted(cum, top_p)) + 1]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return p


def generate(
    model: ModelFile,
    *,
    prime: str = GenerationConfig.prime,
    length: int = GenerationConfig.length,
    temperature: float = GenerationConfig.temperature,
    top_k: int = GenerationConfig.top_k,
    top_p: float = GenerationConfig.top_p,
    seed: int | None = GenerationConfig.seed,
    engine: Engine | str = "cpu",
) -> Iterator[str]:
    """Yield ``length`` characters, one at a time, continuing ``prime``.

    The settings and their defaults are ``GenerationConfig``'s (``**config.sampling()``).

    The state starts at zero and is warmed up on the prime; with no prime the first input is a
    newline when the vocabulary has one, else a character drawn uniformly. Same seed → same text.
    ``engine`` runs the steps: an engine or a device choice (``make_engine``), the CPU by default.
    """
    check_sampling(temperature, top_k, top_p, length)
    vocab = model.vocab
    _check_prime(vocab, prime)
    rng = np.random.default_rng(seed)
    engine = make_engine(engine, model.config)
    prep, state = engine.prepare(model.params), engine.zero_state(1)
    if prime:
        ids = vocab.encode(prime).astype(np.int64)
    elif "\n" in vocab.chars:
        ids = vocab.encode("\n").astype(np.int64)
    else:
        ids = np.array([rng.integers(vocab.size)])
    logits = None
    for i in ids:
        logits, state = engine.step(prep, np.array([i]), state)
    chars = vocab.chars
    for _ in range(length):
        p = next_char_distribution(logits[0], temperature, top_k, top_p)
        nxt = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum(), side="right"))
        nxt = min(nxt, vocab.size - 1)
        yield chars[nxt]
        logits, state = engine.step(prep, np.array([nxt]), state)


EVAL_WARMUP = 256  # characters each stream reads, unscored, before its piece of the text
EVAL_STREAMS_MAX = 256  # default streams: enough rows for BLAS to run at full speed
EVAL_GROUP = 256  # streams run together at most: memory does not grow with --streams
EVAL_WINDOW_BYTES = 64 << 20  # forward's arrays and the logits of one window of characters


@dataclass(frozen=True)
class Evaluation:
    """The result of :func:`evaluate`."""

    nats: float  # mean next-character loss, nats per character
    scored: int  # characters scored: every one after the first (N - 1)
    streams: int  # pieces the text was cut into
    warmup: int  # characters each piece after the first was warmed up on


def default_streams(n_chars: int) -> int:
    """Streams :func:`evaluate` uses by default for a text of ``n_chars``: one per 8 warm-ups
    of text (so warming up costs at most 1/8 more work), at most EVAL_STREAMS_MAX."""
    return max(1, min(EVAL_STREAMS_MAX, n_chars // (8 * EVAL_WARMUP)))


def evaluate(
    model: ModelFile,
    ids: np.ndarray,
    *,
    streams: int | None = None,
    warmup: int = EVAL_WARMUP,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | str = "cpu",
) -> Evaluation:
    """Mean next-character loss of ``model`` over encoded text ``ids`` (N,), every one of the
    N - 1 next characters scored exactly once.

    The N - 1 positions are cut into S = ``streams`` contiguous pieces (None:
    :func:`default_streams`) run side by side, each carrying its state through its piece. Piece
    k starts at a_k; its stream starts reading at max(0, a_k - ``warmup``) from a zero state and
    scores nothing before a_k. With S = 1, or a warm-up as long as the text, this is the exact
    sequential loss; otherwise the only approximation is that a piece's state forgets what came
    more than ``warmup`` characters before it, which an LSTM's state mostly has
    (benchmarks/bench_eval.py prints the difference from S = 1).

    Streams run in groups of at most EVAL_GROUP and characters in windows sized so that one
    window's logits stay within EVAL_WINDOW_BYTES: memory does not grow with the text or S.
    ``progress(done, total)`` is called after each window with characters scored so far.
    ``engine`` runs the windows (``Engine.scored_loss``): an engine or a device choice
    (``make_engine``), the CPU by default; every engine gets the same pieces, warm-ups and windows.
    Raises TextTooShortError for a text of fewer than 2 characters.
    """
    n = len(ids) - 1
    if n < 1:
        raise TextTooShortError(
            "The text is too short to evaluate: it needs at least 2 characters (the model "
            "scores each character after the first).",
            minimum=2,
            actual=len(ids),
        )
    if streams is not None and streams < 1:
        raise ConfigError(f"The number of streams must be at least 1, not {streams}.")
    if warmup < 0:
        raise ConfigError(f"The warm-up must be 0 or more characters, not {warmup}.")
    cfg = model.config
    engine = make_engine(engine, cfg)
    prep = engine.prepare(model.params)
    S = max(1, min(streams or default_streams(n), n))
    total, done = 0.0, 0
    for g0 in range(0, S, EVAL_GROUP):
        # piece k scores positions [n k // S, n (k+1) // S) and reads from `warmup` before
        bounds = n * np.arange(g0, min(S, g0 + EVAL_GROUP) + 1, dtype=np.int64) // S
        gb, ge = bounds[:-1], bounds[1:]
        gs = np.maximum(0, gb - warmup)
        B = len(gs)
        itemsize = np.dtype(cfg.dtype).itemsize
        # per character and stream: forward's gate inputs, gates, outputs and cell states
        # (about 11 H per layer) and the logits with nll's temporaries (about 4 V)
        per = itemsize * (11 * cfg.hidden_size * cfg.num_layers + 4 * cfg.vocab_size)
        window = max(1, min(1024, EVAL_WINDOW_BYTES // (B * per)))
        state = engine.zero_state(B)
        length = int((ge - gs).max())
        for t0 in range(0, length, window):
            pos = gs[:, None] + np.arange(t0, min(length, t0 + window))[None, :]  # (B, T)
            scored = (pos >= gb[:, None]) & (pos < ge[:, None])
            pos = np.minimum(pos, n - 1)  # past its end a stream reads filler, never scored
            x = ids[pos].astype(np.int64)
            y = ids[pos + 1].astype(np.int64)
            part, state = engine.scored_loss(prep, x, y, scored, state)
            total += part
            done += int(scored.sum())
            if progress is not None:
                progress(done, n)
    assert done == n, (done, n)  # every next character scored exactly once
    return Evaluation(nats=total / n, scored=n, streams=S, warmup=warmup)
