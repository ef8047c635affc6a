"""Training text: reading files, the character vocabulary, encoding, the train/validation split
and the batches.

Pure functions on NumPy arrays. Text is held as an (N,) array of ids in the smallest unsigned type
that fits the vocabulary; nothing here loops in Python per character or builds one-hot matrices.
A file is read once, decoded once and its characters visited once (``encode_new``).

Batching (truncated BPTT over B parallel streams, nanoGPT ``get_batch``-style but sequential):
the training ids (N,) are cut into B equal contiguous streams of ``seg = (N - 1) // B``
positions; batch j of an epoch is columns [j*T, (j+1)*T) of every stream (``get_batch``), so
consecutive batches continue each stream; an epoch is ``seg // T`` batches
(``batches_per_epoch``). The trainer keeps only the counters (epoch, j).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from dataclasses import dataclass

import numpy as np

from ..errors import (
    ConfigError,
    CorpusError,
    CorpusMismatchError,
    DecodeError,
    TextTooShortError,
    unrepresentable,
)
from .vocab import MAX_VOCAB, Vocab, byte_chunks, encode_new, seen_codepoints, text_chunks

_UTF8_BOM = codecs.BOM_UTF8
# Codecs under which a pure-ASCII byte string decodes to the same characters: such a file skips
# the str entirely (its bytes are its code points).
_ASCII_COMPATIBLE = {"utf-8", "ascii", "iso8859-1", "cp1252", "iso8859-15"}


@dataclass(frozen=True, eq=False)  # holds arrays: equality is identity
class Corpus:
    """An encoded training text and where it came from."""

    ids: np.ndarray  # (N,) encoded text, dtype = vocab.dtype
    vocab: Vocab
    name: str  # file name, or "Python standard library" for the built-in one
    path: str | None  # the file read, None for in-memory texts
    encoding: str  # encoding used to decode the file ("utf-8", "latin-1", ...)
    n_bytes: int  # size of the file in bytes (of the UTF-8 text for in-memory corpora)
    sha256: str  # hex digest of those bytes

    @property
    def n_chars(self) -> int:
        """N, the number of characters."""
        return int(self.ids.size)

    @property
    def fingerprint(self) -> dict:
        """{"name", "size", "sha256", "encoding"} identify the text in a checkpoint; "path" (the
        absolute path it was read from, absent for an in-memory text) says where to look for it
        again (``charlstm_core.files.own_text``), the SHA-256 whether it is still the same."""
        fp = {
            "name": self.name,
            "size": self.n_bytes,
            "sha256": self.sha256,
            "encoding": self.encoding,
        }
        if self.path:
            fp["path"] = display_path(os.path.abspath(self.path))
        return fp

    def split(self, val_fraction: float, how: str = "last") -> tuple[np.ndarray, np.ndarray]:
        """(train_ids, val_ids) of :func:`split_ids` on this text's ids."""
        return split_ids(self.ids, val_fraction, how)

    def preview(self, n_chars: int = 2000) -> str:
        """The first ``n_chars`` characters as text."""
        return self.vocab.decode(self.ids[: max(0, n_chars)])


def _val_len(n_chars: int, val_fraction: float) -> int:
    """Validation length for ``split``: floor(n_chars * val_fraction)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"The validation fraction must be in [0, 1), not {val_fraction!r}.")
    return int(n_chars * val_fraction)


VAL_BLOCKS = 10  # evenly spaced validation blocks of the "blocks" split


def val_blocks(n_chars: int, val_fraction: float, how: str = "last") -> list[tuple[int, int]]:
    """The validation part as [start, stop) ranges of the text, in order.

    ``n_val = floor(N * val_fraction)`` characters in all, whatever ``how`` is.
    "last": one range, the last ``n_val`` characters. "blocks": the text is cut into
    K = min(VAL_BLOCKS, n_val) equal sections [k*N//K, (k+1)*N//K) and the last
    ``n_val//K`` characters of each (the last section takes the remainder) are held out, so
    validation samples the whole text rather than only how it ends (a text whose last part is
    of another kind — poetry after prose — then validates on what the model trains on).
    """
    n_val = _val_len(n_chars, val_fraction)
    if how not in ("last", "blocks"):
        raise ValueError(f"The validation split must be 'last' or 'blocks', not {how!r}.")
    if n_val == 0:
        return []
    k = 1 if how == "last" else min(VAL_BLOCKS, n_val)
    size = n_val // k
    out = []
    for i in range(k):
        end = (i + 1) * n_chars // k
        length = size if i < k - 1 else n_val - size * (k - 1)
        out.append((end - length, end))
    return out


def split_ids(
    ids: np.ndarray, val_fraction: float, how: str = "last", max_val: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train_ids (N - n_val,), val_ids (n_val,)) of ``ids`` (N,): validation is the ranges of
    :func:`val_blocks`, joined in order; training is the rest, joined in order.

    ``max_val`` (the trainer's ``eval_max_chars``) keeps only the first ``max_val`` validation
    characters in all, taken evenly from the start of each block; the rest stays held out of
    training. "last" returns views of ``ids``; "blocks" returns copies. Where two pieces are
    joined a training stream (or validation window) runs from one piece into the next: a
    handful of character pairs among N that never stood side by side in the text.
    """
    blocks = val_blocks(len(ids), val_fraction, how)
    if len(blocks) <= 1:
        cut = blocks[0][0] if blocks else len(ids)
        return ids[:cut], ids[cut:][:max_val]
    n_val = sum(b - a for a, b in blocks)
    if max_val is None or max_val >= n_val:
        val = np.concatenate([ids[a:b] for a, b in blocks])
    else:  # the same share of every block, the remainder from the first ones
        share, extra = divmod(max_val, len(blocks))
        val = np.concatenate(
            [ids[a : min(b, a + share + (i < extra))] for i, (a, b) in enumerate(blocks)]
        )
    train_pieces, prev = [], 0
    for a, b in blocks:
        train_pieces.append(ids[prev:a])
        prev = b
    train_pieces.append(ids[prev:])
    return np.concatenate(train_pieces), val


def reencode(corpus: Corpus, vocab: Vocab) -> np.ndarray:
    """(N,) the corpus's ids expressed in ``vocab`` (continuing a model on a text): one gather
    through a (V_corpus,) table. CorpusMismatchError lists the characters ``vocab`` lacks."""
    if corpus.vocab.chars == vocab.chars:
        return corpus.ids
    missing = vocab.missing("".join(corpus.vocab.chars))
    if missing:
        raise mismatch_error(corpus.name, missing)
    lut = vocab.encode("".join(corpus.vocab.chars))  # (V_corpus,) id in ``vocab`` of each char
    return lut[corpus.ids]


def batches_per_epoch(n_train: int, batch_size: int, seq_len: int) -> int:
    """``seg // T`` batches, with ``seg = (n_train - 1) // B`` positions per stream (0 when the
    text is too short for one)."""
    return ((n_train - 1) // batch_size) // seq_len


def get_batch(
    train_ids: np.ndarray, j: int, batch_size: int, seq_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """Batch j of an epoch: x, y (B, T) int64, columns [j*T, (j+1)*T) of each of the B streams
    of ``train_ids`` (N,) (stream b starts at b * seg) and the same shifted by one."""
    B, T = batch_size, seq_len
    seg = (len(train_ids) - 1) // B
    starts = np.arange(B) * seg + j * T
    cols = starts[:, None] + np.arange(T + 1)[None, :]
    window = train_ids[cols].astype(np.int64)  # (B, T+1)
    return window[:, :-1], window[:, 1:]


def train_val_ids(
    corpus: Corpus,
    vocab: Vocab,
    batch_size: int,
    seq_len: int,
    val_fraction: float,
    how: str = "last",
    max_val: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(train_ids, val_ids) of ``corpus`` in ``vocab``, as a training run uses them: the text
    checked long enough (TextTooShortError), re-encoded (``reencode``), split (``split_ids``)."""
    check_trainable(corpus, batch_size, seq_len, val_fraction)
    train, val = split_ids(reencode(corpus, vocab), val_fraction, how, max_val=max_val)
    if batches_per_epoch(len(train), batch_size, seq_len) < 1:
        raise ConfigError("The training text is too short for this batch size and length.")
    return train, val


def display_path(path: str | bytes | os.PathLike) -> str:
    """``path`` as printable text: bytes that are not UTF-8 (legal in Linux file names, held by
    Python as lone surrogates) are shown as ``\\xff`` escapes, so the name can be printed,
    shown in a window and stored in a model file's JSON."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


FIRST_BLOCK = 1 << 16  # bytes looked at before a whole text is read


def _read_bytes(path: str, refuse_nul: str | None = None) -> bytes:
    """The file's bytes; CorpusError naming the path for anything that stops us reading it.
    Only regular files are read: a FIFO would block and a device (``/dev/zero``) never end.
    With ``refuse_nul`` (the encoding tried), a NUL byte in the first FIRST_BLOCK bytes refuses
    the file as binary before the rest is read (a 2 GB sparse file: at once, not after 2 GB)."""
    shown = display_path(path)
    if os.path.isdir(path):
        raise CorpusError(f"{shown} is a folder, not a text file. Choose a text file.")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = None  # reported by open() below
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise CorpusError(
            f"{shown} is {kind}, not a regular file. Save the text to a file and use that."
        )
    try:
        with open(path, "rb") as f:
            head = f.read(FIRST_BLOCK)
            nul = head.find(b"\0") if refuse_nul is not None else -1
            if nul >= 0:
                raise _binary_error(shown, nul, head, refuse_nul)
            data = head
            if len(head) == FIRST_BLOCK:
                f.seek(0)  # one read of the whole: no second copy of a big text in memory
                data = f.read()
    except FileNotFoundError:
        raise CorpusError(f"There is no file {shown}. Check the name and folder.") from None
    except PermissionError:
        raise CorpusError(
            f"Cannot read {shown}: permission denied. Check the file's permissions."
        ) from None
    except IsADirectoryError:
        raise CorpusError(f"{shown} is a folder, not a text file. Choose a text file.") from None
    except OSError as e:
        raise CorpusError(f"Cannot read {shown}: {e.strerror or e}.") from None
    if not data:
        raise CorpusError(f"{shown} is empty. Choose a file that contains text.")
    return data


def _binary_error(
    path: str, offset: int, data: bytes | None = None, tried: str = "utf-8"
) -> CorpusError:
    """NUL bytes in a text read as UTF-8 or a one-byte encoding: UTF-16 text when every other
    byte of its start is 0 (a DecodeError, so a front end offers another encoding), else a
    binary file. The wording names encodings only; each front end says how to choose one."""
    head = (data or b"")[:4096]
    if len(head) >= 16:
        # mostly-Latin UTF-16: the high byte of each unit is 0, on one side only
        zeros = sorted((head[0::2].count(0), head[1::2].count(0)))
        if zeros[0] == 0 and zeros[1] > 0.9 * (len(head) // 2):
            return DecodeError(
                f"{path} looks like UTF-16 text (every other byte is 0), not {tried}. Open it "
                "with the encoding utf-16.",
                offset=offset,
                encoding=tried,
            )
    return CorpusError(
        f"{path} contains NUL bytes (the first at byte offset {offset}), so it looks like a "
        "binary file, not text. If it is UTF-16 or UTF-32 text, open it with that encoding "
        "(utf-16 or utf-32)."
    )


def mismatch_error(name: str, missing: tuple[str, ...]) -> CorpusMismatchError:
    """The error for continuing a model on the text ``name`` that has ``missing`` characters."""
    return CorpusMismatchError(
        unrepresentable(
            f"the text {name}",
            missing,
            "Train a new model on this text instead of continuing this one.",
        ),
        missing=missing,
    )


def _encode(n: int, chunks, vocab: Vocab | None, name: str) -> tuple[Vocab, np.ndarray]:
    """(vocab, (n,) ids) of the chunked code points ``chunks()`` (a callable returning a fresh
    iterator): a new vocabulary, or ``vocab``'s ids with CorpusMismatchError listing the
    characters outside it (the only case that reads the text a second time)."""
    if vocab is None:
        vocab, ids = encode_new(n, chunks())
        if vocab.size > MAX_VOCAB:
            raise CorpusError(
                f"{name} has {vocab.size:,} distinct characters; a model can learn from at most "
                f"{MAX_VOCAB:,}: every step weighs each character against all of them, so time "
                "and memory grow with their number. Check that the file is text in the encoding "
                "chosen, or train on a part of it with fewer kinds of characters."
            )
        return vocab, ids
    ids = vocab.encode_chunks(n, chunks())
    if ids is None:
        raise mismatch_error(name, vocab.missing_in(seen_codepoints(chunks())))
    return vocab, ids


def _corpus_from_str(
    text: str,
    vocab: Vocab | None,
    *,
    name: str,
    path: str | None,
    encoding: str,
    n_bytes: int,
    sha256: str,
) -> Corpus:
    vocab, ids = _encode(len(text), lambda: text_chunks(text), vocab, name)
    return Corpus(ids, vocab, name, path, encoding, n_bytes, sha256)


def load_corpus(
    path: str | os.PathLike, encoding: str | None = None, vocab: Vocab | None = None
) -> Corpus:
    """Read, decode and encode a text file.

    ``encoding`` None means strict UTF-8 with a leading BOM dropped; any Python codec name may be
    given (latin-1, cp1252, utf-16, ...). With ``vocab`` (continuing a model) the text is encoded
    with that vocabulary and characters outside it raise CorpusMismatchError.
    Raises CorpusError (missing, folder, unreadable, empty, binary), DecodeError (with the byte
    offset of the first bad byte).
    """
    path = os.fspath(path)
    name = display_path(os.path.basename(path) or path)
    enc_label = (encoding or "utf-8").strip()
    try:
        codec = codecs.lookup(enc_label).name
    except LookupError:
        raise CorpusError(
            f"Unknown text encoding {enc_label!r}. Use a name such as utf-8, latin-1, cp1252 "
            "or utf-16."
        ) from None
    wide = codec.startswith(("utf-16", "utf-32"))
    data = _read_bytes(path, None if wide else enc_label)
    n_bytes = len(data)
    sha256 = hashlib.sha256(data).hexdigest()
    if not wide:
        nul = data.find(b"\0")
        if nul >= 0:
            raise _binary_error(path, nul, data, enc_label)
    skip = len(_UTF8_BOM) if codec == "utf-8" and data.startswith(_UTF8_BOM) else 0

    if codec in _ASCII_COMPATIBLE:
        codes = np.frombuffer(data, dtype=np.uint8, offset=skip)
        if codes.size == 0:
            raise CorpusError(f"{path} contains no text (only a byte-order mark).")
        if int(codes.max()) < 0x80:
            # Fast path: the bytes are the code points; no str of the whole text is ever built.
            vocab, ids = _encode(codes.size, lambda: byte_chunks(codes), vocab, name)
            return Corpus(ids, vocab, name, path, enc_label, n_bytes, sha256)

    try:
        text = str(memoryview(data)[skip:], codec, "strict")
    except UnicodeDecodeError as e:
        offset = skip + e.start
        raise DecodeError(
            f"{path} is not valid {enc_label} text: the byte 0x{data[offset]:02X} at byte offset "
            f"{offset} cannot be decoded. If the file uses another encoding, choose it "
            "(for example latin-1 or cp1252).",
            offset=offset,
            encoding=enc_label,
        ) from None
    except LookupError:  # e.g. "base64": a codec, but not a text encoding
        raise CorpusError(
            f"{enc_label!r} is not a text encoding. Use e.g. utf-8 or latin-1."
        ) from None
    del data  # only the str is needed from here on: keeps the peak memory down
    if not text:
        raise CorpusError(f"{path} contains no text (only a byte-order mark).")
    if wide:
        nul = text.find("\0")
        if nul >= 0:
            raise _binary_error(path, nul * (2 if codec.startswith("utf-16") else 4))
    return _corpus_from_str(
        text, vocab, name=name, path=path, encoding=enc_label, n_bytes=n_bytes, sha256=sha256
    )


def recorded_encoding(path: str | os.PathLike, fingerprint: dict | None) -> str | None:
    """The encoding a checkpoint's corpus ``fingerprint`` (name, size, sha256, encoding)
    recorded, if the file at ``path`` is that very text (its size, then its SHA-256, agree);
    else None: another text is read as UTF-8 unless told otherwise, never in the encoding of
    whatever text the model saw last. Only a file of the recorded size is hashed."""
    fp = fingerprint or {}
    encoding, size, digest = fp.get("encoding"), fp.get("size"), fp.get("sha256")
    if not isinstance(encoding, str) or not isinstance(digest, str):
        return None
    try:
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None  # load_corpus says what is wrong with it
    return encoding if h.hexdigest() == digest else None


def corpus_from_text(text: str, name: str = "text", vocab: Vocab | None = None) -> Corpus:
    """Corpus of an in-memory text; ``n_bytes`` and ``sha256`` are those of its UTF-8 encoding.

    With ``vocab``, characters outside it raise CorpusMismatchError.
    """
    if not text:
        raise CorpusError(f"The text {name} is empty. Use a text with some characters in it.")
    raw = text.encode("utf-8", "surrogatepass")
    return _corpus_from_str(
        text,
        vocab,
        name=name,
        path=None,
        encoding="utf-8",
        n_bytes=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def min_chars(batch_size: int, seq_len: int, val_fraction: float) -> int:
    """Smallest text length N that ``split(val_fraction)`` leaves trainable: the training part
    needs ``batch_size * seq_len + 1`` characters (inputs plus the shifted targets of B streams
    of T), the validation part, if any, ``seq_len + 1``."""
    need_train = batch_size * seq_len + 1
    need_val = seq_len + 1 if val_fraction > 0 else 0

    def ok(n: int) -> bool:
        n_val = _val_len(n, val_fraction)
        return n - n_val >= need_train and n_val >= need_val

    lo, hi = need_train + need_val, need_train + need_val
    while not ok(hi):  # both parts grow monotonically with n: double, then bisect
        lo, hi = hi + 1, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def check_trainable(corpus: Corpus, batch_size: int, seq_len: int, val_fraction: float) -> None:
    """Raise TextTooShortError, stating the minimum length, if the corpus is too short."""
    need = min_chars(batch_size, seq_len, val_fraction)
    have = corpus.n_chars
    if have >= need:
        return
    settings = f"batch size {batch_size} and sequence length {seq_len}"
    lower = "the batch size / sequence length"
    if val_fraction > 0:
        settings = (
            f"batch size {batch_size}, sequence length {seq_len} and "
            f"{val_fraction * 100:g}% held out for validation"
        )
        lower = "the batch size / sequence length / validation fraction"
    raise TextTooShortError(
        f"The text {corpus.name} is too short to train on: it needs at least {need:,} characters "
        f"with {settings}; this text has {have:,}. Use a longer text or lower {lower}.",
        minimum=need,
        actual=have,
    )


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
_CONTROL.update({c: f"\\u{c:04x}" for c in (0x2028, 0x2029, *range(0x202A, 0x202F),
                                          *range(0x2066, 0x206A))})  # fmt: skip


def inert(text: str) -> str:
    """``text`` safe to print on one line of a terminal or table: control characters (a newline,
    the escape that starts a terminal's colour or title code), line and paragraph separators
    and bidirectional overrides are shown as ``\\n``, ``\\x1b``, ``\\u202e``; the rest is
    unchanged."""
    return str(text).translate(_CONTROL)
