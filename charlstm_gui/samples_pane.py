"""The Samples tab: text written by the model during training, each headed by step and loss."""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from . import fmt


class SamplesPane(QPlainTextEdit):
    """Read-only, monospace, newest at the bottom and scrolled into view."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setPlaceholderText(
            "Samples written by the model during training appear here, newest at the bottom."
        )
        self.setMaximumBlockCount(20_000)  # keeps a very long run's pane light
        self.count = 0

    def add_sample(self, step: int, val_loss: float | None, temperature: float, text: str) -> None:
        head = (
            f"── step {step:,} · validation loss {fmt.loss(val_loss)} · temperature "
            f"{temperature:g} ──"
        )
        self.appendPlainText(("\n" if self.count else "") + head)
        self.appendPlainText(text)
        self.count += 1
        self.moveCursor(QTextCursor.MoveOperation.End)
        self.ensureCursorVisible()

    def clear_samples(self) -> None:
        self.clear()
        self.count = 0
