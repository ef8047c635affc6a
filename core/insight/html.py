"""One self-contained HTML page of an analysed passage: each character's background coloured by
its surprise (or by one unit's activation), the model's top predictions in its tooltip.

No scripts, no external resources: inline CSS and ``title`` tooltips, so the page opens anywhere
and can be mailed. Every character and every name is HTML-escaped, so a passage that contains
``<script>`` shows it as text.
"""

from __future__ import annotations

import html
import math

import numpy as np

from ..files.writer import PAGE_MARKER
from .inspect import KINDS, Analysis, char_bits
from .units import unit_name

MAX_BITS = 8.0  # surprise at or above this gets the strongest colour
_VISIBLE = {"\n": "⏎ (newline)", "\t": "⇥ (tab)", " ": "␣ (space)", "\r": "␍ (return)"}


def visible(ch: str) -> str:
    """A character as a tooltip shows it: whitespace and control characters named visibly."""
    if ch in _VISIBLE:
        return _VISIBLE[ch]
    if not ch.isprintable():
        return f"U+{ord(ch):04X}"
    return ch


def surprise_colour(bits: float) -> str:
    """CSS colour of a surprise in bits: white at 0, deepening red up to MAX_BITS."""
    if not math.isfinite(bits):
        return "#eeeeee"
    x = min(max(bits / MAX_BITS, 0.0), 1.0)
    return f"hsl(8, 90%, {100 - 55 * x:.1f}%)"


def diverging_colour(value: float) -> str:
    """CSS colour of an activation in [-1, 1]: blue below 0, white at 0, red above."""
    x = min(max(value, -1.0), 1.0)
    hue = 8 if x > 0 else 215
    return f"hsl({hue}, 85%, {100 - 50 * abs(x):.1f}%)"


def _tooltip(a: Analysis, pos: int, unit_value: float | None, p_actual: np.ndarray) -> str:
    """Tooltip text for character ``pos``: its surprise and the predictions made before it.
    ``p_actual`` is ``a.p_actual``, computed once for the page (each call of the property is a
    pass over the whole passage)."""
    ch = a.text[pos]
    lines = [f"#{pos}: {visible(ch)}"]
    if unit_value is not None:
        lines.append(f"activation {unit_value:+.3f}")
    if pos == 0:
        lines.append("first character: nothing predicted it")
    else:
        t = pos - 1
        lines.append(f"p = {p_actual[t]:.3%}, {a.bits[t]:.2f} bits")
        lines.append("the model expected:")
        lines += [f"  {visible(c)}  {p:.1%}" for c, p in a.top_chars(t)]
    return "\n".join(lines)


def render(a: Analysis, title: str, unit: tuple[int, int] | None = None, kind: str = "c") -> str:
    """The page as a string. ``unit`` (0-based layer, unit): colour by that unit's activation of
    ``kind`` (see ``Analysis.values``) instead of by surprise; the page names it as a person
    counts, layers from 1 (``units.unit_name``)."""
    esc = html.escape
    values = None
    if unit is not None:
        values = a.values(kind)[unit[0], :, unit[1]]
    per = char_bits(a)
    p_actual = a.p_actual
    spans = []
    for pos, ch in enumerate(a.text):
        v = None if values is None else float(values[pos])
        colour = surprise_colour(per[pos]) if v is None else diverging_colour(v)
        tip = esc(_tooltip(a, pos, v, p_actual), quote=True)
        spans.append(f'<span style="background:{colour}" title="{tip}">{esc(ch)}</span>')
    if values is None:
        heading = f"Surprise: {a.mean_bits:.3f} bits/char over {len(a.text) - 1:,} predictions"
        stops = [(f"{b:g}", surprise_colour(b)) for b in np.arange(0, MAX_BITS + 1)]
        stops[-1] = (f"≥{MAX_BITS:g} bits", stops[-1][1])
    else:
        heading = (
            f"{unit_name(*unit).capitalize()}, {KINDS[kind]} "  # type: ignore[misc]
            f"(mean surprise {a.mean_bits:.3f} bits/char)"
        )
        stops = [(f"{v:+.1f}", diverging_colour(v)) for v in np.linspace(-1, 1, 9)]
    legend = "".join(
        f'<span class="key" style="background:{c}">{esc(label)}</span>' for label, c in stops
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"{PAGE_MARKER}\n"
        f"<title>{esc(title)}</title>\n<style>\n"
        "body{font-family:sans-serif;margin:1.5em;color:#222}\n"
        ".text{font-family:monospace;white-space:pre-wrap;line-height:1.5;font-size:14px}\n"
        ".text span{cursor:default}\n"
        ".key{display:inline-block;min-width:3em;padding:0 .3em;text-align:center;"
        "font-family:monospace;border:1px solid #ccc}\n"
        "</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n<p>{esc(heading)}. Hover a character for the model's "
        "predictions.</p>\n"
        f'<p>{legend}</p>\n<div class="text">{"".join(spans)}</div>\n</body></html>\n'
    )
