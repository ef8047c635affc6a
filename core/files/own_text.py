"""A model's own text: where it may be, and reading it back only when it is the same text.

A checkpoint records its training text's fingerprint (``Corpus.fingerprint``: name, size,
SHA-256, encoding and, since issue 20, the absolute path it was read from). ``text_candidates``
lists the files that may be that text, likeliest first; ``load_own_text`` reads the first whose
bytes have the recorded SHA-256 (the built-in text is gathered again and checked the same way).
The app's *Open the Model's Text* and the command line's default TEXT use both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CharLSTMError, CorpusError
from .text import Corpus, display_path, load_corpus


def text_candidates(
    fingerprint: Mapping[str, Any] | None,
    model_path: str | os.PathLike | None = None,
    extra: Sequence[str] = (),
    *,
    here: bool = False,
) -> list[str]:
    """Existing files that may be the text of ``fingerprint``, likeliest first: the path it
    records, a file of its name beside the model file, in ``extra`` (e.g. recent texts) and,
    with ``here``, in the current folder; each of the recorded size (reading it checks the
    SHA-256)."""
    fp = fingerprint or {}
    name, size = fp.get("name"), fp.get("size")
    guesses: list[str] = []
    if isinstance(fp.get("path"), str) and fp["path"]:
        guesses.append(fp["path"])
    if isinstance(name, str) and name:
        if model_path:
            guesses.append(os.path.join(os.path.dirname(os.fspath(model_path)), name))
        guesses += [p for p in extra if os.path.basename(p) == name]
        if here:
            guesses.append(name)
    found: list[str] = []
    for path in guesses:
        try:
            ok = os.path.isfile(path) and (size is None or os.path.getsize(path) == size)
        except (OSError, ValueError):
            ok = False
        if ok and os.path.abspath(path) not in map(os.path.abspath, found):
            found.append(path)
    return found


def load_own_text(
    fingerprint: Mapping[str, Any] | None,
    model_path: str | os.PathLike | None = None,
    encoding: str | None = None,
) -> Corpus:
    """The text ``fingerprint`` describes, read from the first candidate with its SHA-256 (the
    current folder is tried too), decoded with its recorded encoding unless ``encoding`` is
    given.

    Raises CorpusError saying what was looked for and where when no file is that text.
    """
    fp = fingerprint or {}
    sha, name = fp.get("sha256"), str(fp.get("name") or "")
    if not sha:
        raise CorpusError("The model records no training text (it holds weights only).")
    enc = encoding or fp.get("encoding")
    from .builtin_text import BUILTIN_NAME

    if name == BUILTIN_NAME and not fp.get("path"):
        from .builtin_text import builtin_corpus

        corpus = builtin_corpus()
        if corpus.sha256 == sha:
            return corpus
        raise CorpusError(
            f"The model was trained on the built-in text ({BUILTIN_NAME}) of another Python "
            "installation; this one's differs."
        )
    tried = text_candidates(fp, model_path, here=True)
    for path in tried:
        try:
            corpus = load_corpus(path, enc)
        except CharLSTMError:
            continue
        if corpus.sha256 == sha:
            return corpus
    where = f"recorded at {fp['path']}" if fp.get("path") else "its path is not recorded"
    looked = (
        f"; the files of its name and size ({', '.join(display_path(p) for p in tried)}) "
        "hold other text"
        if tried
        else ""
    )
    raise CorpusError(
        f"The model's text {name or '(unnamed)'} was not found ({where}; looked beside the "
        f"model and in the current folder{looked})."
    )
