"""Simple text detectors: for each position of a passage, a number describing the text read up
to and including that character (inside double quotes, bracket depth, position in the line...).
charlstm_core.insight.inspect ranks the model's units by how well their activations follow each one.
"""

from __future__ import annotations

import numpy as np

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
