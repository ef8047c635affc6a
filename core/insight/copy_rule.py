"""Which verbatim copies count as memorised: a copy must say as much as N ordinary characters.

A span of generated text found word for word in the training text (``copies.CopyIndex``) counts
as a copy only when it carries information. Its information is measured under the training
text's own character frequencies (its unigram model): a character of frequency p carries
b(c) = −log₂ p bits, and a run of one repeated character (indentation, a row of ``=``) counts
its first character only, since the model that repeats a space 40 times has said "indent" once.
With H = Σ p·b the text's unigram entropy (the bits of an ordinary character), a span of at
least N characters counts when

    Σ b(c) over the span, repeats dropped  ≥  N · H,

that is, when it is worth N ordinary characters. Measured on 1,000-character samples
(``benchmarks/check_copy_rule.py``): the indentation and stock phrases a one-minute model writes
on Python source (``'\\n            return self._'``, ~60 bits against 20 × 4.5 = 91) no longer
count, while a model that memorised a passage still shows it.
"""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 22  # characters counted at once (a 32 MB temporary)


def char_bits(train_ids: np.ndarray, vocab_size: int) -> tuple[np.ndarray, float]:
    """(V,) float64 bits −log₂ p of each character of the vocabulary in the training ids (N,)
    (0 for a character that does not occur: it is never inside a copy), and the unigram
    entropy H = Σ p·(−log₂ p) in bits per character (0 for an empty text)."""
    ids = np.asarray(train_ids).ravel()
    counts = np.zeros(vocab_size, np.float64)
    for a in range(0, ids.size, CHUNK):  # bincount makes an int64 copy: 8 bytes a character
        counts += np.bincount(ids[a : a + CHUNK], minlength=vocab_size)[:vocab_size]
    total = counts.sum()
    if total == 0:
        return np.zeros(vocab_size), 0.0
    p = counts / total
    seen = p > 0
    bits = np.zeros(vocab_size)
    bits[seen] = -np.log2(p[seen])
    return bits, float((p[seen] * bits[seen]).sum())


def span_bits(
    ids: np.ndarray, bits: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> np.ndarray:
    """(S,) information in bits of the spans [starts, ends) of ``ids`` (G,) (ids ≥ 0 inside the
    spans), each character counted with ``bits`` (V,) except one that repeats the character
    before it inside the same span."""
    ids = np.asarray(ids)
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    if ids.size == 0 or starts.size == 0:
        return np.zeros(starts.shape, np.float64)
    w = bits[np.maximum(ids, 0)]
    repeat = np.r_[False, ids[1:] == ids[:-1]]
    w[repeat] = 0.0
    cum = np.r_[0.0, np.cumsum(w)]
    total = cum[ends] - cum[starts]
    # a span that begins on a repeat still says its first character
    first = starts < len(ids)
    at = starts[first]
    total[first] += np.where(repeat[at], bits[np.maximum(ids[at], 0)], 0.0)
    return total


def rule_text(n: int, entropy: float) -> str:
    """The rule in one paragraph, for a tooltip or the command line's help."""
    return (
        f"A stretch of generated text counts as copied when it occurs word for word in the "
        f"training text, is at least {n} characters long and says as much as {n} ordinary "
        f"characters of that text: its characters' information under the text's own character "
        f"frequencies (−log₂ p bits each; a run of one repeated character, such as "
        f"indentation, counted once) adds up to at least {n} × {entropy:.2f} = "
        f"{n * entropy:.0f} bits, {entropy:.2f} bits being the information of an ordinary "
        "character (the text's unigram entropy). So indentation and other runs of common "
        "characters do not count; a recited passage does."
    )
