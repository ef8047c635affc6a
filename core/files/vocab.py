"""The character vocabulary: code points, ids, and encoding a text in one pass.

A vocabulary is the distinct characters of a text sorted by code point; a character's id is its
index. Ids are held in the smallest unsigned type that fits (uint8, uint16 or uint32). Texts are
handled in chunks of CHUNK characters, as (start, (n,) uint32 code points) pairs, so temporaries
stay small on huge texts; nothing loops in Python per character.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import VocabularyError, unrepresentable

N_CODEPOINTS = 0x110000  # every Unicode code point (surrogates included) is below this
# The most distinct characters a new model's text may have: every training step scores each of
# B x T characters against all V (the decoder's H x V product, a softmax over V) and Adam keeps
# 5H x V weights, so time and memory grow with V (benchmarks/bench_inputs.py: at V = 70,000
# and H = 32 over 95% of a step is V's). Real texts have a few hundred, a Chinese or Japanese
# one a few thousand; the whole main block of CJK ideographs (U+4E00..U+9FFF) has 20,992.
MAX_VOCAB = 1 << 15
CHUNK = 1 << 22  # characters per chunk: bounds the temporaries (16 MB of UTF-32) on huge texts


def _uint_dtype(n_values: int) -> np.dtype:
    """Smallest unsigned integer dtype that holds the values 0 .. n_values - 1."""
    if n_values <= 1 << 8:
        return np.dtype(np.uint8)
    if n_values <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


def _codepoints(text: str) -> np.ndarray:
    """(len(text),) uint32 code points of ``text`` (lone surrogates kept as their code point)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def text_chunks(text: str) -> Iterator[tuple[int, np.ndarray]]:
    """(start, code points) of consecutive chunks of ``text``, so temporaries stay small."""
    for start in range(0, len(text), CHUNK):
        yield start, _codepoints(text[start : start + CHUNK])


def byte_chunks(codes: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(start, view) of consecutive chunks of an (N,) array of code points (ASCII bytes)."""
    for start in range(0, codes.size, CHUNK):
        yield start, codes[start : start + CHUNK]


def seen_codepoints(chunks: Iterator[tuple[int, np.ndarray]]) -> np.ndarray:
    """(N_CODEPOINTS,) bool: which code points occur in the chunks."""
    seen = np.zeros(N_CODEPOINTS, dtype=bool)
    for _, cps in chunks:
        seen[cps] = True
    return seen


@dataclass(frozen=True)
class Vocab:
    """The distinct characters of a text sorted by code point; a character's id is its index.

    Encoding goes through a lookup table indexed by code point, (N_CODEPOINTS,) of an unsigned type
    wide enough for the sentinel ``size`` that marks characters outside the vocabulary.
    """

    chars: tuple[str, ...]  # distinct characters sorted by code point
    _cps: np.ndarray = field(init=False, repr=False, compare=False)  # (V,) uint32
    _lut: np.ndarray = field(init=False, repr=False, compare=False)  # code point -> id or V

    def __post_init__(self) -> None:
        chars = tuple(self.chars)
        object.__setattr__(self, "chars", chars)
        if not chars:
            raise ValueError("A vocabulary needs at least one character.")
        if set(map(len, chars)) != {1}:
            raise ValueError("Every vocabulary entry must be exactly one character.")
        cps = _codepoints("".join(chars)).copy()
        if cps.size > 1 and not np.all(cps[1:] > cps[:-1]):
            raise ValueError("Vocabulary characters must be distinct and sorted by code point.")
        lut = np.full(N_CODEPOINTS, len(chars), dtype=_uint_dtype(len(chars) + 1))
        lut[cps] = np.arange(len(chars))
        object.__setattr__(self, "_cps", cps)
        object.__setattr__(self, "_lut", lut)

    @property
    def size(self) -> int:
        """V, the number of characters."""
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """Smallest unsigned integer dtype holding the ids 0 .. V-1 (uint8, uint16 or uint32)."""
        return _uint_dtype(self.size)

    @classmethod
    def from_codepoints(cls, cps: np.ndarray | list[int]) -> Vocab:
        """Vocabulary from (V,) strictly increasing code points (as model files store it)."""
        arr = np.asarray(cps)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError("Code points must be a 1-D array of integers.")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= N_CODEPOINTS):
            raise ValueError("Code points must lie in 0 .. 0x10FFFF.")
        text = arr.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
        return cls(tuple(text))

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """Vocabulary of the distinct characters of ``text``."""
        return cls.from_codepoints(np.flatnonzero(seen_codepoints(text_chunks(text))))

    def codepoints(self) -> np.ndarray:
        """(V,) uint32 code points in id order, as stored in model files."""
        return self._cps.copy()

    def encode_chunks(self, n: int, chunks: Iterator[tuple[int, np.ndarray]]) -> np.ndarray | None:
        """(n,) ids of the chunked code points, or None if one is outside the vocabulary."""
        out = np.empty(n, dtype=self.dtype)
        for start, cps in chunks:
            ids = self._lut[cps]
            if ids.size and int(ids.max()) >= self.size:
                return None
            out[start : start + ids.size] = ids
        return out

    def missing_in(self, seen: np.ndarray) -> tuple[str, ...]:
        """Characters marked in ``seen`` (N_CODEPOINTS,) bool that are not in the vocabulary."""
        outside = np.flatnonzero(seen & (self._lut == self.size))
        return tuple(outside.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass"))

    def missing(self, text: str) -> tuple[str, ...]:
        """Distinct characters of ``text`` not in the vocabulary, sorted by code point."""
        return self.missing_in(seen_codepoints(text_chunks(text)))

    def encode(self, text: str) -> np.ndarray:
        """(N,) ids of ``text`` in ``self.dtype``; VocabularyError lists unknown characters."""
        ids = self.encode_chunks(len(text), text_chunks(text))
        if ids is None:
            missing = self.missing(text)
            raise VocabularyError(
                unrepresentable(
                    "the text",
                    missing,
                    "Remove them, or use a model trained on a text that contains them.",
                ),
                missing=missing,
            )
        return ids

    def decode(self, ids: np.ndarray | list[int]) -> str:
        """Text of the (N,) ids (any integer dtype)."""
        arr = np.asarray(ids).ravel()
        if arr.size == 0:
            return ""
        if arr.dtype.kind not in "iu":
            raise TypeError(f"Character ids must be integers, not {arr.dtype}.")
        if int(arr.min()) < 0 or int(arr.max()) >= self.size:
            raise ValueError(f"Character ids must lie in 0 .. {self.size - 1}.")
        return self._cps[arr].tobytes().decode("utf-32-le", "surrogatepass")


def encode_new(n: int, chunks: Iterator[tuple[int, np.ndarray]]) -> tuple[Vocab, np.ndarray]:
    """The vocabulary and (n,) ids of chunked code points, visiting each character once.

    Ids are first handed out in order of first appearance (a growing code point -> id table;
    the output is widened from uint8 only when the vocabulary outgrows it), then renumbered
    into code point order by one gather on the small ids, chunk by chunk, in place.
    """
    lut = np.full(N_CODEPOINTS, -1, dtype=np.int32)
    out = np.empty(n, dtype=np.uint8)
    size = 0
    for start, cps in chunks:
        ids = lut[cps]
        fresh = ids < 0
        if fresh.any():
            new = np.unique(cps[fresh])  # sorted; any order would do
            lut[new] = np.arange(size, size + new.size)
            size += new.size
            ids = lut[cps]
            if _uint_dtype(size) != out.dtype:
                out = out.astype(_uint_dtype(size))
        out[start : start + ids.size] = ids
    cps_sorted = np.flatnonzero(lut >= 0)
    vocab = Vocab.from_codepoints(cps_sorted)
    rank = np.empty(size, dtype=vocab.dtype)
    rank[lut[cps_sorted]] = np.arange(size)
    for start in range(0, n, CHUNK):
        part = out[start : start + CHUNK]
        part[...] = rank[part]
    return vocab, out
