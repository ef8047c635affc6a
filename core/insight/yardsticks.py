"""Yardsticks a loss curve is read against: what general-purpose compressors (gzip, bzip2, xz)
and unigram/bigram character models score on the text, in nats per character.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ..files.text import Vocab


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
