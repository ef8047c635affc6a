"""Measures that put the model's numbers in context, each built once per text off the GUI thread.

* Reference lines on the loss plot: gzip -9, bz2 -9 and xz -9 of the validation text and the
  training text's unigram and bigram entropies, in nats/char
  (``charlstm_core.insight.yardsticks.yardsticks``; long texts are measured on a prefix, which the
  label's
  tooltip says).
* Memorisation meter: in the Samples pane and the Generate panel, every span of at least N
  generated characters (the Generate panel's "Shortest copy", ``GenerationConfig.copies_min``)
  that occurs verbatim in the training text and says as much as N ordinary characters of it
  (``charlstm_core.insight.copy_rule``: indentation does not count) is highlighted, with the
  copied fraction and the longest copy; hovering a span names its line in the training text,
  hovering the meter's line says the rule
  (``charlstm_core.insight.copies.CopyIndex``).

Both depend on the text and its validation split (the run's, or the form's before a run), and the
index on N; they are rebuilt only when one of those changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from charlstm_core.config import GenerationConfig
from charlstm_core.errors import CharLSTMError
from PySide6.QtCore import QEvent, QObject, QSettings, Slot
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QToolTip

from ..controller.state import State

COPY_COLOUR = QColor(255, 205, 120)


class CopyMarks(QObject):
    """Highlights copied spans in a QPlainTextEdit and explains each one on hover.

    A span is kept as a cursor at its start (it follows the text when the pane trims old
    blocks), its length and its text: a span whose text has left the pane is dropped. The
    highlights are drawn afresh from those after every change, since a selection that ends where
    text is appended would grow with it.
    """

    def __init__(self, edit: QPlainTextEdit) -> None:
        super().__init__(edit)
        self.edit = edit
        self.spans: list[tuple[QTextCursor, int, str, str]] = []  # start, UTF-16 length, text, tip
        self.format = QTextCharFormat()
        self.format.setBackground(COPY_COLOUR)
        self.format.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
        edit.viewport().installEventFilter(self)

    def clear(self) -> None:
        self.spans = []
        self.edit.setExtraSelections([])

    def add(self, start: int, text: str, spans: list[tuple[int, int, str]]) -> None:
        """Mark ``spans`` [(a, b, tooltip)] of ``text`` (characters), which begins at document
        position ``start``."""
        units = _utf16_offsets(text)
        for a, b, tip in spans:
            c = QTextCursor(self.edit.document())
            c.setPosition(start + int(units[a]))
            self.spans.append((c, int(units[b] - units[a]), text[a:b], tip))
        self.apply()

    def _selection(self, start: QTextCursor, n: int) -> QTextCursor:
        c = QTextCursor(self.edit.document())
        c.setPosition(start.position())
        c.setPosition(min(start.position() + n, self.edit.document().characterCount() - 1),
                      QTextCursor.MoveMode.KeepAnchor)  # fmt: skip
        return c

    def apply(self) -> None:
        """Draw the highlights of the spans whose text is still where it was."""
        kept, selections = [], []
        for span in self.spans:
            c = self._selection(span[0], span[1])
            if c.selectedText().replace("\u2029", "\n") != span[2]:
                continue
            kept.append(span)
            sel = QTextEdit.ExtraSelection()
            sel.cursor = c
            sel.format = self.format
            selections.append(sel)
        self.spans = kept
        self.edit.setExtraSelections(selections)

    def tooltip_at(self, pos: int) -> str:
        for start, n, _, tip in self.spans:
            if start.position() <= pos < start.position() + n:
                return tip
        return ""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.ToolTip and self.spans:
            tip = self.tooltip_at(self.edit.cursorForPosition(event.pos()).position())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.edit.viewport())
                return True
        return False


def _utf16_offsets(text: str) -> np.ndarray:
    """(N+1,) UTF-16 offset of each character of ``text`` (Qt positions count UTF-16 units)."""
    wide = np.fromiter((ord(ch) > 0xFFFF for ch in text), bool, len(text))
    return np.r_[0, np.cumsum(1 + wide)]


class CopyFinder:
    """The copy index of one training text for one N
    (``charlstm_core.insight.copies.CopyIndex``)."""

    def __init__(self, train_ids: np.ndarray, vocab: Any, min_chars: int) -> None:
        from charlstm_core.insight.copies import CopyIndex

        self.min_chars = min_chars
        self.index = CopyIndex.build(train_ids, vocab, min_chars)
        self.index.line_of(0)  # finds the line starts here, off the GUI thread

    def find(self, text: str) -> tuple[list[tuple[int, int, str]], float, int, float]:
        """([(start, end, tooltip)] copied spans of ``text``, copied fraction, longest copy,
        the fraction of the text only verbatim spans too plain to count cover)."""
        found = self.index.find(text)
        spans = [
            (a, b, f"{b - a:,} characters copied verbatim from line {line:,} of the training text")
            for a, b, _pos, line in found.spans
        ]
        return spans, float(found.fraction), int(found.longest), float(found.plain)

    def rule(self) -> str:
        """What counts as a copy, in words (the meter's tooltip)."""
        return self.index.rule()


def meter_text(fraction: float, longest: int, min_chars: int, plain: float = 0.0) -> str:
    """ "14% copied verbatim, longest 63 characters" (spans of at least ``min_chars`` that say
    as much as that many ordinary characters), and how much more is verbatim but too plain to
    count ("another 27% verbatim but too plain to count, such as indentation")."""
    more = ""
    if plain > 0:
        share = f"{plain:.0%}" if plain >= 0.005 else "under 1%"
        more = f"another {share} verbatim but too plain to count, such as indentation"
    if longest == 0:
        why = more or f"no span of {min_chars}+ characters worth counting is in the training text"
        return f"0% copied ({why})"
    return f"{fraction:.0%} copied verbatim, longest {longest:,} characters" + (
        f" ({more})" if more else ""
    )


class TextMeters(QObject):
    """Builds the reference lines and the copy index for the current text, and applies them."""

    def __init__(
        self,
        controller: Any,
        plot: Any,
        samples: Any,
        gen: Any,
        val_fraction: Callable[[], float],
    ) -> None:
        super().__init__(controller)
        self.ctl, self.plot, self.samples, self.gen = controller, plot, samples, gen
        self._val_fraction = val_fraction
        self.finder: CopyFinder | None = None
        self._finder_key: tuple | None = None  # (corpus, val fraction, N) being built or built
        self._lines_key: tuple | None = None  # (corpus, val fraction)
        self._samples: list[tuple[QTextCursor, str]] = []  # each sample's text, selected
        self.sample_marks = CopyMarks(samples)
        self.gen_marks = CopyMarks(gen.output)
        settings = QSettings()
        default = GenerationConfig.copies_min  # the shortest copy's range: the spin box's
        gen.copy_min.setValue(settings.value("copies/min_chars", default, type=int))
        gen.copy_min.valueChanged.connect(self._on_min_chars)
        c = controller
        c.corpus_changed.connect(self.rebuild)
        c.state_changed.connect(self._on_state)
        c.generation_started.connect(self._on_gen_started)
        c.generation_finished.connect(self._on_gen_finished)
        samples.sample_added.connect(self._on_sample)

    def _split(self) -> float:
        cfg = self.ctl.train_config
        if self.ctl.training and cfg is not None:
            return cfg.val_fraction
        return self._val_fraction()

    @Slot()
    def rebuild(self, *_: Any) -> None:
        """Start whatever the current text and split need that is not built yet."""
        corpus = self.ctl.corpus
        if corpus is None:
            return
        vf = self._split()
        n = self.gen.copy_min.value()
        lines_key = (corpus, vf)
        if lines_key != self._lines_key:
            self._lines_key = lines_key
            self.ctl.run_task(_guarded(lambda: _yardsticks(corpus, vf)), self._on_yardsticks)
        finder_key = (corpus, vf, n)
        if finder_key != self._finder_key:
            self._finder_key = finder_key
            self.finder = None
            self._say_all("Memorisation meter: indexing the training text…")
            self.ctl.run_task(_guarded(lambda: _finder(corpus, vf, n)), self._on_finder)

    def _on_yardsticks(self, result: Any) -> None:
        key, value = result
        if key != self._lines_key:
            return
        if isinstance(value, str):
            self.plot.set_references([])
            self.plot.setToolTip(f"No reference lines: {value}")
        else:
            self.plot.set_references(value)

    def _on_finder(self, result: Any) -> None:
        key, value = result
        if key != self._finder_key:
            return
        if isinstance(value, str):
            self._say_all(f"Memorisation meter: {value}")
            return
        self.finder = value
        self._say_all(
            f"Memorisation meter: spans of {value.min_chars}+ characters found in the "
            "training text will be highlighted (hover here for what counts)."
        )
        for label in (self.samples.meter, self.gen.meter):
            label.setToolTip(value.rule())
        self.remark_samples()
        if self.gen.text() and not self.ctl.generating:
            self.check_generated()

    def _say_all(self, text: str) -> None:
        self.samples.meter.setText(text)
        self.gen.meter.setText(text)

    @Slot(object)
    def _on_state(self, state: State) -> None:
        if state is State.STARTING:  # the run's split may differ from the one indexed
            self.rebuild()

    @Slot(int)
    def _on_min_chars(self, n: int) -> None:
        QSettings().setValue("copies/min_chars", n)
        self.rebuild()

    # ---------------------------------------------------------------- samples
    @Slot(int, str)
    def _on_sample(self, start: int, text: str) -> None:
        c = QTextCursor(self.samples.document())
        c.setPosition(start)
        self._samples.append((c, text))
        if self.finder is not None:
            self._mark_sample(start, text)
            return
        self.sample_marks.apply()  # the new text must not extend a highlight that ended before
        if self.ctl.corpus is None:
            self.samples.meter.setText(
                "Memorisation meter: open the training text to see what is copied from it."
            )

    def remark_samples(self) -> None:
        """Mark every sample still in the pane again (a new index: another text, split or N)."""
        self.sample_marks.clear()
        marks = self.sample_marks
        # a sample whose text left the pane (cleared, or trimmed) is forgotten
        self._samples = [
            (c, text)
            for c, text in self._samples
            if marks._selection(c, int(_utf16_offsets(text)[-1]))
            .selectedText()
            .replace("\u2029", "\n")
            == text
        ]
        for c, text in self._samples:
            self._mark_sample(c.position(), text)

    def _mark_sample(self, start: int, text: str) -> None:
        spans, fraction, longest, plain = self.finder.find(text)
        self.sample_marks.add(start, text, spans)
        self.samples.meter.setText(
            f"Newest sample: {meter_text(fraction, longest, self.finder.min_chars, plain)}"
        )

    # ---------------------------------------------------------------- generated text
    @Slot(str)
    def _on_gen_started(self, source: str) -> None:
        self.gen_marks.clear()
        if self.finder is not None:
            self.gen.meter.setText("")

    @Slot(bool)
    def _on_gen_finished(self, completed: bool) -> None:
        self.check_generated()

    def check_generated(self) -> None:
        """Mark the copies in the Generate panel's text (all of it, prime included)."""
        text = self.gen.text()
        self.gen_marks.clear()
        if not text:
            return
        if self.finder is None:
            if self.ctl.corpus is None:
                self.gen.meter.setText(
                    "Memorisation meter: open the training text to see what is copied from it."
                )
            return
        spans, fraction, longest, plain = self.finder.find(text)
        self.gen_marks.add(0, text, spans)
        self.gen.meter.setText(meter_text(fraction, longest, self.finder.min_chars, plain))


def _guarded(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn``'s result, or the message of a problem the user can fix (a str) in its place."""

    def run() -> Any:
        key, make = fn()
        try:
            return key, make()
        except CharLSTMError as exc:
            return key, str(exc)

    return run


YARDSTICK_VAL_CHARS = 2_000_000  # validation characters compressed at most (xz -9: ~1 MB/s)
YARDSTICK_TRAIN_CHARS = 20_000_000  # training characters counted at most for the entropies


def _yardsticks(corpus: Any, vf: float) -> tuple[tuple, Callable[[], Any]]:
    from charlstm_core.insight.yardsticks import yardsticks

    def make() -> list[tuple[str, float, str]]:
        # decode one character past each limit, so that yardsticks sees (and says) a prefix,
        # never the whole of a 100 MB text
        train_ids, val_ids = corpus.split(vf)
        train = corpus.vocab.decode(train_ids[: YARDSTICK_TRAIN_CHARS + 1])
        val = corpus.vocab.decode(val_ids[: YARDSTICK_VAL_CHARS + 1])
        no_val = len(val) < 2
        lines = yardsticks(
            train if no_val else val, train, YARDSTICK_VAL_CHARS, YARDSTICK_TRAIN_CHARS
        ).lines()
        if no_val:  # no validation part: the compressors measured the training text
            lines = [
                (label, nats, tip.replace("Validation text", "Training text (no validation text)"))
                for label, nats, tip in lines
            ]
        return lines

    return (corpus, vf), make


def _finder(corpus: Any, vf: float, n: int) -> tuple[tuple, Callable[[], Any]]:
    return (corpus, vf, n), lambda: CopyFinder(corpus.split(vf)[0], corpus.vocab, n)
