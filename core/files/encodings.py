"""Which encoding a text that is not UTF-8 is in: every reading of its first bytes, best first.

A detector cannot always tell (an Esperanto text in ISO-8859-3 reads as Baltic or Vietnamese
cp125x to charset-normalizer, which models no Esperanto), but a person sees at once which
reading shows ĝ and ŝ where they belong. So ``readings`` decodes the start of the file with
every text codec Python knows (``text_codecs``), groups the codecs that read it identically,
and orders the readings: those charset-normalizer proposes first, in its order (it ranks
candidates from the bytes better than any guess of ours: how chaotic each decoding is, and how
coherent with a language), then the other readings that decode without an error, then those that
fail; the clean readings it did not propose are ordered by its measure of how garbled a text
looks. ``sample_lines`` picks the lines worth comparing: the first with a character beyond ASCII,
where the readings of a text differ.
"""

from __future__ import annotations

import codecs
import encodings
import pkgutil
from dataclasses import dataclass
from functools import cache

SAMPLE_BYTES = 65_536  # the start of the file that is read and compared
MESS_CHARS = 20_000  # characters of a reading weighed by the mess ratio
# codecs that are not a way to store text in a file: escapes, domain names, the always-failing one
_NOT_FILE_ENCODINGS = {
    "charmap", "idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape",
}  # fmt: skip


@cache
def text_codecs() -> tuple[str, ...]:
    """Every text encoding of this Python, by its canonical name (``codecs.lookup(x).name``),
    sorted; escapes and the like left out. About a hundred."""
    names = set()
    for module in pkgutil.iter_modules(encodings.__path__):
        try:
            info = codecs.lookup(module.name)
        except LookupError:  # e.g. mbcs off Windows
            continue
        if getattr(info, "_is_text_encoding", True) and info.name not in _NOT_FILE_ENCODINGS:
            names.add(info.name)
    return tuple(sorted(names))


@dataclass(frozen=True)
class Reading:
    """One way to read the sample: the codecs that all give ``text``, best first."""

    codecs: tuple[str, ...]
    text: str  # the sample decoded (U+FFFD where a byte cannot be decoded)
    detected: bool  # charset-normalizer proposed one of these codecs
    clean: bool  # the sample decodes without an error

    @property
    def name(self) -> str:
        """The codec to open the file with: the first."""
        return self.codecs[0]


def _decode(sample: bytes, name: str) -> tuple[str, bool]:
    """(``sample`` decoded by ``name``, whether without an error); a character cut at the end
    of the sample is not an error."""
    try:
        return codecs.getincrementaldecoder(name)("strict").decode(sample, final=False), True
    except (UnicodeDecodeError, LookupError, ValueError):
        pass
    try:
        text = codecs.getincrementaldecoder(name)("replace").decode(sample, final=False)
    except (LookupError, ValueError, UnicodeDecodeError):  # a codec that cannot even replace
        return "", False
    return text, False


def detected_codecs(sample: bytes) -> list[str]:
    """charset-normalizer's candidates for ``sample``, best first, as Python codec names ([]
    when it proposes none or is not installed)."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # a declared dependency; without it the readings are simply unranked
        return []
    found = []
    for match in from_bytes(sample):
        try:
            found.append(codecs.lookup(match.encoding).name)
        except LookupError:
            continue
    return list(dict.fromkeys(found))


def _mess_ratio():
    """charset-normalizer's measure of how garbled a decoded text looks (0: clean), which it
    computes for its own candidates: used to order the clean readings it did not propose, so
    that the Latin ones come before Cyrillic or Greek misreadings of a Latin text."""
    try:
        from charset_normalizer.md import mess_ratio
    except ImportError:
        return lambda text: 0.0
    return lambda text: mess_ratio(text, 1.0)


def readings(raw: bytes, suggested: str | None = None) -> list[Reading]:
    """Every distinct reading of the first ``SAMPLE_BYTES`` of ``raw``, best first: the
    ``suggested`` codec's (e.g. utf-16, which the engine names for a file of NUL bytes), then
    charset-normalizer's, then the other clean ones, then the rest (see the module)."""
    sample = raw[:SAMPLE_BYTES]
    order = detected_codecs(sample)
    if suggested:
        try:
            order.insert(0, codecs.lookup(suggested).name)
        except LookupError:
            pass
    rank = {name: i for i, name in enumerate(dict.fromkeys(order))}
    groups: dict[str, list[str]] = {}
    clean: dict[str, bool] = {}
    for name in text_codecs():
        text, ok = _decode(sample, name)
        if not text:
            continue
        groups.setdefault(text, []).append(name)
        clean[text] = clean.get(text, False) or ok

    mess = _mess_ratio()

    def key(item: tuple[str, list[str]]) -> tuple:
        text, names = item
        best = min((rank[n] for n in names if n in rank), default=len(rank))
        if best < len(rank) or not clean[text]:  # ranked already, or failed: no need to weigh
            return (best, not clean[text], 0.0, text.count("\ufffd"), names[0])
        return (best, False, mess(text[:MESS_CHARS]), 0, names[0])

    out = []
    for text, names in sorted(groups.items(), key=key):
        names.sort(key=lambda n: (rank.get(n, len(rank)), n))
        out.append(Reading(tuple(names), text, any(n in rank for n in names), clean[text]))
    return out


def sample_lines(text: str, count: int = 3) -> list[int]:
    """Indices of up to ``count`` lines of ``text`` (a reading) worth comparing with the other
    readings: the first lines with a character beyond ASCII (the bytes the encodings of a
    Latin-script text disagree on), else the first lines."""
    lines = text.split("\n")
    wide = [i for i, line in enumerate(lines) if any(ord(ch) > 0x7F for ch in line)]
    return (wide or list(range(len(lines))))[:count]
