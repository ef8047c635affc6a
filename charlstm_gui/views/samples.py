"""The Samples tab: text written by the model during training, each headed by step and loss.

While a run trains, its samples are appended at most ``LIVE_HZ`` times a second, those that came
meanwhile together (``add_live_sample``, ``flush``): a small model sampling every few steps
would otherwise append, lay out, scroll and check for copies tens of times a second on the GUI
thread, whose time is the training's (``widgets.throttle``). None is dropped.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from ..widgets import fmt
from ..widgets.throttle import LIVE_HZ, Throttle


class SamplesPane(QPlainTextEdit):
    """Read-only, monospace, newest at the bottom and scrolled into view."""

    sample_added = Signal(int, str)  # document position of the sample's text, the text

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setPlaceholderText(
            "Samples written by the model during training appear here, newest at the bottom."
        )
        self.setMaximumBlockCount(20_000)  # keeps a very long run's pane light
        self.count = 0
        self.meter = QLabel("")  # the memorisation meter (charlstm_gui.views.meters) writes here
        self.meter.setWordWrap(True)
        self._waiting: list[tuple[int, float | None, float, str]] = []  # live samples not shown
        self._shown = Throttle(self._add_waiting, LIVE_HZ, self)

    def with_meter(self) -> QWidget:
        """The pane with its memorisation meter below it: the widget the Samples tab shows."""
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self, 1)
        lay.addWidget(self.meter)
        return box

    def add_live_sample(
        self, step: int, val_loss: float | None, temperature: float, text: str
    ) -> None:
        """A sample of the running training: shown with those that came within
        ``1 / LIVE_HZ`` seconds of it (the first at once, the last when the interval ends)."""
        self._waiting.append((step, val_loss, temperature, text))
        self._shown()

    def flush(self) -> None:
        """Show the live samples still waiting now (the run ended)."""
        self._shown.flush()

    def _add_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for sample in waiting:
            self.add_sample(*sample)

    def add_sample(self, step: int, val_loss: float | None, temperature: float, text: str) -> None:
        """Append a sample now, headed by its step, validation loss and temperature."""
        head = (
            f"── step {step:,} · validation loss {fmt.loss(val_loss)} · temperature "
            f"{temperature:g} ──"
        )
        self.appendPlainText(("\n" if self.count else "") + head)
        self.appendPlainText(text)
        # the text ends the document (then its paragraph separator); counted after the append,
        # as trimming to the block limit shifts positions; Qt counts UTF-16 units
        start = self.document().characterCount() - 1 - len(text.encode("utf-16-le")) // 2
        self.count += 1
        self.moveCursor(QTextCursor.MoveOperation.End)
        self.ensureCursorVisible()
        self.sample_added.emit(start, text)

    def clear_samples(self) -> None:
        self._shown.cancel()
        self._waiting = []
        self.clear()
        self.count = 0
        self.meter.setText("")
