"""The Help window: the user guide (``resources/user-guide.md``) rendered by a QTextBrowser.

The guide is shipped in the ``resources`` package, so the same lookup works from a checkout, an
installed wheel and the PyInstaller build; links to web pages open in the browser.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QTextBrowser, QVBoxLayout, QWidget

from charlstm_gui import resources

from . import APP_NAME

GUIDE = "user-guide.md"


def guide_text() -> str:
    """The user guide's Markdown; FileNotFoundError names the file if a build left it out."""
    return resources.resource_path(GUIDE).read_text(encoding="utf-8")


class HelpWindow(QWidget):
    """A separate, non-modal window beside the main one; F1 raises the same instance again."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle(f"{APP_NAME} Guide")
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.browser.document().setDocumentMargin(14)
        try:
            self.browser.setMarkdown(guide_text())
        except FileNotFoundError as exc:
            self.browser.setPlainText(
                f"The user guide is missing from this installation ({exc}). Reinstall CharLSTM "
                "Studio, or read resources/user-guide.md in its source."
            )
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.browser)
        QShortcut(QKeySequence.StandardKey.Close, self, self.close)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.close)
        self.resize(760, 820)

    def show_guide(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()
