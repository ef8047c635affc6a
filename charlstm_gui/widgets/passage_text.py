"""The Inspect tab's coloured passage: colour maps, the passage as shown (every character
visible, newlines as ↵), the QPlainTextEdit that shows it with a tooltip per character, the
QSyntaxHighlighter that colours it, the legend, and the tooltip's text.

Rendering: the passage is plain text; colours come from a QSyntaxHighlighter that reads one small
array of colour-level indices, so recolouring (another unit, another evaluation) is one pass over
the blocks with one ``setFormat`` per run of equal colour, never a document rebuild
(``benchmarks/bench_gui_latency.py --inspect`` measures the event loop with it).
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
from charlstm_core.insight.html import MAX_BITS, visible
from charlstm_core.insight.units import unit_name
from PySide6.QtCore import QEvent, QPoint, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFontDatabase,
    QKeyEvent,
    QLinearGradient,
    QPainter,
    QSyntaxHighlighter,
    QTextCharFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QSizePolicy, QToolTip, QWidget

SURPRISE_MAX_BITS = MAX_BITS  # the surprise colour map saturates here, as in the HTML page
SURPRISE_LEVELS = int(2 * MAX_BITS) + 1  # colour levels of the surprise map (half a bit each)
VALUE_LEVELS = 21  # colour levels of the diverging map over [-1, 1]
SURPRISE_STOPS = ((0.0, (255, 255, 255)), (0.3, (255, 236, 150)), (0.6, (248, 160, 80)),
                  (1.0, (190, 30, 45)))  # fmt: skip
DIVERGING_STOPS = ((0.0, (67, 147, 195)), (0.5, (255, 255, 255)), (1.0, (214, 96, 77)))
MATCH_COLOUR = QColor(0, 150, 70)  # characters matched by example


def ramp(stops: tuple[tuple[float, tuple[int, int, int]], ...], n: int) -> list[QColor]:
    """``n`` colours evenly spaced along a piecewise-linear colour map."""
    xs = np.array([s for s, _ in stops])
    rgb = np.array([c for _, c in stops], float)
    t = np.linspace(0.0, 1.0, n)
    cols = np.stack([np.interp(t, xs, rgb[:, j]) for j in range(3)], axis=1)
    return [QColor(*(int(round(v)) for v in row)) for row in cols]


def surprise_levels(bits: np.ndarray) -> np.ndarray:
    """Colour level (0 .. SURPRISE_LEVELS-1) of each surprise in bits; NaN (no prediction) → -1."""
    scaled = np.clip(np.nan_to_num(bits, nan=-1.0) / SURPRISE_MAX_BITS, 0.0, 1.0)
    levels = np.rint(scaled * (SURPRISE_LEVELS - 1)).astype(np.int16)
    levels[np.isnan(bits)] = -1
    return levels


def value_levels(values: np.ndarray) -> np.ndarray:
    """Colour level (0 .. VALUE_LEVELS-1) of each value in [-1, 1], 0 meaning -1."""
    scaled = (np.clip(values, -1.0, 1.0) + 1.0) / 2.0
    return np.rint(scaled * (VALUE_LEVELS - 1)).astype(np.int16)


def display_text(text: str) -> tuple[str, np.ndarray]:
    """The passage as shown, and (U,) the character index of each UTF-16 unit of it (-1: none).

    A newline is shown as a visible ↵ (which carries the newline's colour) before the line break;
    other control characters become their Unicode control pictures, so that every character of
    the passage can be seen, coloured and hovered. Qt counts positions in UTF-16 units.
    """
    parts: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        o = ord(ch)
        if ch == "\n":
            parts.append("↵\n")
            index += (i, -1)
        elif o < 32 and ch != "\t":
            parts.append(chr(0x2400 + o))
            index.append(i)
        elif ch in "\x7f\x85\u2028\u2029":
            parts.append("¶")
            index.append(i)
        else:
            parts.append(ch)
            index += (i, i) if o > 0xFFFF else (i,)
    return "".join(parts), np.array(index, np.int32)


class PassageColours(QSyntaxHighlighter):
    """Colours a document from ``levels``: (U,) format index per UTF-16 unit, -1 = plain."""

    def __init__(self, document: Any) -> None:
        super().__init__(document)
        self.levels = np.empty(0, np.int16)
        self.formats: list[QTextCharFormat] = []

    def set_levels(self, levels: np.ndarray, formats: list[QTextCharFormat]) -> None:
        self.levels, self.formats = levels, formats
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 (Qt API)
        start = self.currentBlock().position()
        seg = self.levels[start : start + len(text)]
        if seg.size == 0:
            return
        cuts = [0, *(np.flatnonzero(np.diff(seg)) + 1).tolist(), seg.size]
        for a, b in itertools.pairwise(cuts):
            k = int(seg[a])
            if k >= 0:
                self.setFormat(a, b - a, self.formats[k])


class PassageText(QPlainTextEdit):
    """The coloured passage: read-only; a tooltip per character; Up/Down keys step the unit."""

    step_unit = Signal(int)  # +1 / -1: Alt+Up / Alt+Down (plain arrows move the caret)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.setPlaceholderText("Train a model, or open one, to see what it thinks of a passage.")
        self.colours = PassageColours(self.document())
        self.index = np.empty(0, np.int32)  # UTF-16 unit → character of the passage
        self.tooltip_for: Callable[[int], str] = lambda i: ""

    def show_text(self, text: str) -> None:
        shown, self.index = display_text(text)
        self.colours.set_levels(np.empty(0, np.int16), [])
        self.setPlainText(shown)

    def char_at(self, pos: QPoint) -> int:
        """Index in the passage of the character under ``pos`` (viewport coordinates), or -1."""
        cursor = self.cursorForPosition(pos)
        p = cursor.position()
        rect = self.cursorRect(cursor)
        if pos.x() < rect.left():
            p -= 1
        if not rect.top() <= pos.y() <= rect.bottom() or not 0 <= p < self.index.size:
            return -1
        return int(self.index[p])

    def tooltip_at(self, pos: QPoint) -> str:
        i = self.char_at(pos)
        return self.tooltip_for(i) if i >= 0 else ""

    def selected_chars(self) -> tuple[int, int]:
        """[start, end) of the selection in passage characters ((0, 0) when none)."""
        c = self.textCursor()
        a, b = c.selectionStart(), c.selectionEnd()
        if a == b or self.index.size == 0:
            return 0, 0
        ids = self.index[a:b]
        ids = ids[ids >= 0]
        return (int(ids.min()), int(ids.max()) + 1) if ids.size else (0, 0)

    def viewportEvent(self, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.ToolTip:
            tip = self.tooltip_at(event.pos())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.viewport())
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().viewportEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.modifiers() & Qt.KeyboardModifier.AltModifier and event.key() in (
            Qt.Key.Key_Up,
            Qt.Key.Key_Down,
        ):
            self.step_unit.emit(1 if event.key() == Qt.Key.Key_Up else -1)
            return
        super().keyPressEvent(event)

    def paint(self, levels: np.ndarray, colours: list[QColor], marked: np.ndarray) -> None:
        """Colour each character: ``levels`` (N,) colour index per passage character (-1:
        plain) into ``colours``; characters where ``marked`` (N,) bool is set are underlined
        (one pass, one format per colour level)."""
        index = self.index
        if levels.size == 0 or index.size == 0:
            self.colours.set_levels(np.empty(0, np.int16), [])
            return
        chars = np.maximum(index, 0)
        per_unit = np.where(index >= 0, levels[chars], -1)
        formats = [char_format(col, False) for col in colours]
        if marked.size == levels.size and marked.any():
            n = len(colours)  # marked characters use the formats n .. 2n (2n: marked, uncoloured)
            on = (index >= 0) & marked[chars]
            per_unit = np.where(on, np.where(per_unit >= 0, per_unit + n, 2 * n), per_unit)
            formats += [char_format(col, True) for col in colours] + [char_format(None, True)]
        self.colours.set_levels(per_unit.astype(np.int16), formats)


class Legend(QWidget):
    """A colour bar with its two end labels and a middle one."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.colours: list[QColor] = []
        self.labels = ("", "", "")
        self.setMinimumSize(220, 30)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

    def set_scale(self, colours: list[QColor], labels: tuple[str, str, str], tip: str) -> None:
        self.colours, self.labels = colours, labels
        self.setToolTip(tip)
        self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        if not self.colours:
            return
        p = QPainter(self)
        w, h = self.width() - 2, self.height()
        bar = h // 2 - 1
        grad = QLinearGradient(1, 0, w, 0)
        n = len(self.colours)
        for i, col in enumerate(self.colours):
            grad.setColorAt(i / (n - 1), col)
        p.fillRect(1, 1, w, bar, grad)
        p.setPen(self.palette().windowText().color())
        p.drawRect(1, 1, w - 1, bar)
        flags = Qt.AlignmentFlag.AlignVCenter
        p.drawText(1, bar + 2, w, h - bar - 2, flags | Qt.AlignmentFlag.AlignLeft, self.labels[0])
        p.drawText(1, bar + 2, w, h - bar - 2, flags | Qt.AlignmentFlag.AlignHCenter,
                   self.labels[1])  # fmt: skip
        p.drawText(1, bar + 2, w, h - bar - 2, flags | Qt.AlignmentFlag.AlignRight, self.labels[2])
        p.end()

    def show_surprise(self, colours: list[QColor]) -> None:
        """The scale of the surprise map, 0 to SURPRISE_MAX_BITS bits."""
        self.set_scale(
            colours,
            ("0 bits", f"{SURPRISE_MAX_BITS / 2:g}", f"≥ {SURPRISE_MAX_BITS:g} bits"),
            "Surprise: −log2 of the probability the model gave the character that came. "
            "0 bits: it was sure; 1 bit: a coin flip; "
            f"{SURPRISE_MAX_BITS:g} bits: 1 chance in {2**SURPRISE_MAX_BITS:,.0f}.",
        )

    def show_values(self, colours: list[QColor], kind: str) -> None:
        """The scale of the diverging map of a unit's ``kind`` ("c": tanh(c), "h")."""
        label = "tanh(c)" if kind == "c" else "h"
        self.set_scale(
            colours,
            ("−1", f"0  {label}", "+1"),
            f"The unit's {label} after reading each character: blue negative, red positive.",
        )


def char_format(colour: QColor | None, marked: bool) -> QTextCharFormat:
    """A character's format: ``colour`` as background (white text on dark ones), and when
    ``marked`` (a match by example) underlined in green and bold."""
    f = QTextCharFormat()
    if colour is not None:
        f.setBackground(colour)
        if colour.lightness() < 120:
            f.setForeground(QColor(255, 255, 255))
    if marked:
        f.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
        f.setUnderlineColor(MATCH_COLOUR)
        f.setFontWeight(700)
        if colour is None or colour.lightness() >= 120:
            f.setForeground(MATCH_COLOUR.darker(140))
    return f


def tooltip_html(
    analysis: Any,
    passage: str,
    i: int,
    bits: np.ndarray,
    lapse_step: int | None = None,
    unit: tuple[str, int, int, float] | None = None,
) -> str:
    """Rich text for passage character ``i``: what the model (``analysis``, a
    charlstm_core.insight.inspect.Analysis) expected there and what came, with ``bits`` (N-1,) the
    surprise
    shown. ``lapse_step``: the step of an older evaluation the bits come from; ``unit``:
    (kind, 1-based layer, unit, value) of the unit the passage is coloured by."""
    came = passage[i]
    if i == 0:
        return (
            f"<b>{html.escape(visible(came))}</b>: the first character; the model reads it "
            "before it predicts anything."
        )
    b = bits[i - 1]
    p = float(np.exp2(-b))
    rows = "".join(
        f"<tr><td><code>{html.escape(visible(ch))}</code></td>"
        f"<td align='right'>{prob:.1%}</td></tr>"
        for ch, prob in analysis.top_chars(i - 1)
    )
    head = f"After “{html.escape(context(passage, i))}” the model expected:"
    text = (
        f"{head}<table>{rows}</table>Came: <b><code>{html.escape(visible(came))}</code></b> "
        f"with probability {p:.2%} ({b:.2f} bits)"
    )
    if lapse_step is not None:
        text += f"<br><i>(probability at step {lapse_step:,}; "
        text += "the guesses are the newest model's)</i>"
    if unit is not None:
        kind, layer, u, v = unit
        name = "tanh(c)" if kind == "c" else "h"
        text += f"<br>{unit_name(layer - 1, u).capitalize()}: {name} = {v:+.3f}"
    return text


def context(text: str, i: int, width: int = 12) -> str:
    """Up to ``width`` characters before position ``i``, newlines shown as ↵, "…" if cut."""
    a = max(0, i - width)
    shown = text[a:i].replace("\n", "↵").replace("\t", "⇥")
    return ("…" if a > 0 else "") + shown
