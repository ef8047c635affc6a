"""What a user or a file supplied (a file name, a run's name, a text's characters, a message that
quotes them) shown as the characters it is, never as markup.

Qt renders a label, a message box or a tooltip left at ``Qt.AutoText`` as rich text as soon as
the string looks like HTML (``Qt.mightBeRichText``): a run named ``<h1 style="color:red">x``
would show as a red heading, and ``&amp;`` as ``&``. So a label or box that shows such a string
is made plain (:func:`plain`, :func:`message_box`), and a tooltip, which has no format of its
own, is escaped and wrapped (:func:`tip`). ``tests/gui/test_faults_gui.py`` sends a hostile name
through every place the app shows one.
"""

from __future__ import annotations

import html
from typing import TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox, QWidget

W = TypeVar("W", QLabel, QMessageBox)


def plain(widget: W) -> W:
    """``widget`` (a QLabel or QMessageBox) set to show its text as plain text; returned."""
    widget.setTextFormat(Qt.TextFormat.PlainText)
    return widget


def tip(text: str) -> str:
    """A tooltip that shows ``text`` verbatim: escaped, inside a paragraph that keeps its line
    breaks and spaces (an empty text stays empty: no tooltip)."""
    if not text:
        return ""
    return f'<p style="white-space:pre-wrap">{html.escape(text)}</p>'


def message_box(
    icon: QMessageBox.Icon,
    title: str,
    text: str,
    buttons: QMessageBox.StandardButton = QMessageBox.StandardButton.Ok,
    parent: QWidget | None = None,
) -> QMessageBox:
    """A QMessageBox whose text is plain (QMessageBox's own constructor and its static
    ``question``/``warning`` leave it at AutoText)."""
    box = QMessageBox(icon, title, "", buttons, parent)
    plain(box).setText(text)
    return box
