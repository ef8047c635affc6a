"""Every message the status bar showed, kept so a long one can be read in full.

The status bar cuts a long message at the window's edge ("The model cannot represent 11
character(s) of … (they are not in the model's vocabula…"). ``MessageLog`` listens to the bar's
``messageChanged``: the message on show (once gone, the last one) is also the bar's tooltip,
wrapped and whole, and every message is kept with its time; *View ▸ Messages* (or a
double-click on the status bar) shows them all, newest last, selectable for copying.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, Qt, Slot
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QPlainTextEdit,
    QStatusBar,
    QVBoxLayout,
    QWidget,
)

from ..widgets.plain import tip

MAX_MESSAGES = 500  # the oldest go first
HOW_TO_LIST = "Double-click here, or View ▸ Messages (Ctrl+Shift+M), for every message."


class MessageLog(QObject):
    """The messages of ``bar`` (a QStatusBar), and the window that lists them."""

    def __init__(self, bar: QStatusBar, parent: QWidget) -> None:
        super().__init__(parent)
        self.bar = bar
        self.window_parent = parent
        self.messages: list[tuple[float, str]] = []
        self.dialog: QDialog | None = None
        self.view: QPlainTextEdit | None = None
        bar.messageChanged.connect(self._on_message)
        bar.installEventFilter(self)

    @Slot(str)
    def _on_message(self, text: str) -> None:
        # whole and wrapped (widgets.tooltips); once the message has gone, the last one
        if text:
            self.bar.setToolTip(tip(f"{text}\n\n{HOW_TO_LIST}"))
        elif self.messages:
            self.bar.setToolTip(tip(f"Last message: {self.messages[-1][1]}\n\n{HOW_TO_LIST}"))
        if not text or (self.messages and self.messages[-1][1] == text):
            return
        self.messages.append((time.time(), text))
        del self.messages[:-MAX_MESSAGES]
        if self.view is not None:
            self.view.appendPlainText(self._line(self.messages[-1]))

    @staticmethod
    def _line(entry: tuple[float, str]) -> str:
        when, text = entry
        return f"{time.strftime('%H:%M:%S', time.localtime(when))}  {text}"

    def text(self) -> str:
        """All messages, one a line, oldest first."""
        return "\n".join(self._line(m) for m in self.messages)

    def show(self) -> QDialog:
        """Open (or raise) the list of messages; it is not modal and follows new messages."""
        if self.dialog is None:
            dialog = QDialog(self.window_parent)
            dialog.setWindowTitle("Messages")
            self.view = QPlainTextEdit()
            self.view.setReadOnly(True)
            self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
            self.view.setPlaceholderText("No messages yet.")
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
            buttons.rejected.connect(dialog.hide)
            lay = QVBoxLayout(dialog)
            lay.addWidget(self.view)
            lay.addWidget(buttons)
            dialog.resize(760, 360)
            self.dialog = dialog
        assert self.view is not None
        self.view.setPlainText(self.text())
        self.view.moveCursor(self.view.textCursor().MoveOperation.End)
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if (
            obj is self.bar
            and event.type() == QEvent.Type.MouseButtonDblClick
            and event.button() == Qt.MouseButton.LeftButton  # type: ignore[attr-defined]
        ):
            self.show()
            return True
        return False
