"""Tooltips that wrap: every plain-text tooltip of the app is shown as a paragraph of rich text.

Qt draws a plain-text tooltip on one line, as wide as its text (a 300-character hint became a
1,000-pixel strip); a rich-text tooltip is word-wrapped. One event filter on the application
rewrites each long plain tooltip as it is about to be shown, so no widget (the settings form's,
the actions', the status bar's, and those set later, like a disabled action's reason) needs to
be written in HTML, and ``toolTip()`` still returns the plain text that was set.
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QHelpEvent, Qt
from PySide6.QtWidgets import QApplication, QToolTip, QWidget

WRAP_AFTER = 70  # characters: shorter tooltips stay on one line
MAX_WIDTH_PX = 420  # the width a wrapped tooltip keeps to


def rich(text: str) -> str:
    """``text`` as a paragraph Qt wraps at MAX_WIDTH_PX (line breaks in ``text`` are kept)."""
    body = html.escape(text).replace("\n", "<br>")
    return f'<table width="{MAX_WIDTH_PX}"><tr><td>{body}</td></tr></table>'


def wrapped(text: str) -> str:
    """What is shown for a tooltip ``text``: long plain text wrapped, anything else as it is."""
    if len(text) <= WRAP_AFTER or Qt.mightBeRichText(text):
        return text
    return rich(text)


class TooltipWrapper(QObject):
    """Application event filter: shows a widget's long plain tooltip wrapped."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.ToolTip and isinstance(obj, QWidget):
            text = obj.toolTip()
            shown = wrapped(text)
            if shown != text:
                assert isinstance(event, QHelpEvent)
                QToolTip.showText(event.globalPos(), shown, obj)
                return True
        return False


_installed: TooltipWrapper | None = None


def install(app: QApplication) -> TooltipWrapper:
    """Install the wrapper on ``app`` once (later calls return the same filter)."""
    global _installed
    if _installed is None:
        _installed = TooltipWrapper(app)
        app.installEventFilter(_installed)
    return _installed
