"""The built-in training text: the .py sources of this interpreter's standard library.

The app's default text when none is opened; deterministic for one interpreter. The packaged
app's PyInstaller spec bundles the same files, listed by ``stdlib_sources``.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from ..errors import CorpusError
from .text import Corpus, corpus_from_text

BUILTIN_NAME = "Python standard library"
# Directories of the standard library that are not "library source" (or not ours to read).
SKIP_DIRS = {
    "site-packages",
    "dist-packages",
    "__pycache__",
    "test",
    "tests",
    "idle_test",
}


def stdlib_sources(root: str) -> Iterator[str]:
    """Paths of the standard library's .py files in a fixed order (sorted, depth first),
    skipping test suites and installed packages."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def builtin_corpus(max_bytes: int = 4_000_000) -> Corpus:
    """The default text: the .py sources of this interpreter's standard library.

    Files are taken in sorted path order (test suites, site-packages and files that are not
    valid UTF-8 skipped), whole, separated by a blank line, until ``max_bytes`` of UTF-8 is
    reached; the last file is cut at a character boundary. Deterministic for one interpreter.
    """
    root = sysconfig.get_paths().get("stdlib", "")
    parts: list[bytes] = []
    total = 0
    if root and os.path.isdir(root):
        for p in stdlib_sources(root):
            try:
                raw = Path(p).read_bytes()
                raw.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if b"\0" in raw or not raw.strip():
                continue
            parts.append(raw.rstrip(b"\n") + b"\n\n\n")
            total += len(parts[-1])
            if total >= max_bytes:
                break
    if not parts:
        raise CorpusError(
            "The built-in text (the Python standard library's sources) is not available in "
            "this installation. Open a text file instead."
        )
    text = b"".join(parts)[:max_bytes].decode("utf-8", "ignore")  # "ignore": a cut last char
    return corpus_from_text(text, name=BUILTIN_NAME)
