"""The dialog that reopens a text that is not UTF-8: every reading of it, so a person can see which
one reads right.

Each row is one way to read the file's start (``charlstm_core.files.encodings.readings``: the
encodings that read it identically grouped, charset-normalizer's candidates first), with the first
line where the readings differ; the selected row's lines are shown below in full. Any encoding
Python knows can also be typed.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from charlstm_core.files.encodings import Reading, readings, sample_lines
from charlstm_core.files.text import display_path
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .plain import plain

PREVIEW_LINES = 12  # lines of the selected reading shown below the list
SHOWN_CODECS = 3  # encodings named in a row; the others are in its tooltip


def _visible(line: str, width: int = 160) -> str:
    line = line.replace("\t", "    ").replace("\r", "")
    return line if len(line) <= width else line[: width - 1] + "…"


class EncodingDialog(QDialog):
    """Choose the encoding to reopen ``path`` with; ``choice()`` is the one chosen."""

    def __init__(
        self, path: str, message: str, suggested: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Not UTF-8 text")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            with open(path, "rb") as f:
                raw = f.read(1 << 16)
            self.readings: list[Reading] = readings(raw, suggested)
        except OSError:
            self.readings = []
        finally:
            QApplication.restoreOverrideCursor()
        self.lines = sample_lines(self.readings[0].text, PREVIEW_LINES) if self.readings else []
        intro = QLabel(
            f"{display_path(message)}\n\nChoose the reading of {display_path(Path(path).name)} "
            "that looks right: each row is one way to read its first bytes, the likeliest first "
            "(★: proposed by the charset-normalizer detector), with the first line where they "
            "differ; the lines of the row you pick are shown below. Every encoding Python knows "
            "is in the list, or type one."
        )
        plain(intro).setWordWrap(True)  # the message quotes the file's name
        self.name = QLineEdit()
        self.name.setPlaceholderText("Encoding, e.g. iso8859-3 (typing filters the list)")
        self.name.setToolTip(
            "The encoding to open the file with: the selected row's, or any name Python knows "
            "(latin-1, cp1250, iso8859-3, utf-16, …). Typing here also filters the list."
        )
        self.list = QTreeWidget()
        self.list.setColumnCount(2)
        self.list.setHeaderLabels(["Encoding", "How it reads"])
        self.list.setRootIsDecorated(False)
        self.list.setUniformRowHeights(True)
        first = self.lines[0] if self.lines else 0
        for reading in self.readings:
            names = ", ".join(reading.codecs[:SHOWN_CODECS])
            if len(reading.codecs) > SHOWN_CODECS:
                names += f" +{len(reading.codecs) - SHOWN_CODECS}"
            mark = "★ " if reading.detected else ""
            lines = reading.text.split("\n")
            shown = _visible(lines[first]) if first < len(lines) else ""
            item = QTreeWidgetItem([mark + names, shown])
            tip = ", ".join(reading.codecs)
            if not reading.clean:
                tip += " (cannot decode every byte: � marks where)"
            item.setToolTip(0, tip)
            item.setData(0, Qt.ItemDataRole.UserRole, reading)
            self.list.addTopLevelItem(item)
        self.list.setColumnWidth(0, 230)
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        self.preview.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.problem = QLabel("")
        self.problem.setStyleSheet("color: #b00020;")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.name)
        lay.addWidget(self.list, 3)
        lay.addWidget(QLabel("The chosen reading:"))
        lay.addWidget(self.preview, 2)
        lay.addWidget(self.problem)
        lay.addWidget(self.buttons)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemDoubleClicked.connect(lambda *_: self._accept())
        self.name.textEdited.connect(self._filter)
        if self.list.topLevelItemCount():
            self.list.setCurrentItem(self.list.topLevelItem(0))
        self.resize(820, 600)

    def open_button(self) -> QPushButton:
        """The Open button (tests click it)."""
        return self.buttons.button(QDialogButtonBox.StandardButton.Open)

    def _on_current(self, item: QTreeWidgetItem | None, _previous: object = None) -> None:
        if item is None:
            return
        reading: Reading = item.data(0, Qt.ItemDataRole.UserRole)
        self.name.setText(reading.name)
        lines = reading.text.split("\n")
        shown = [f"{i + 1:>5}  {_visible(lines[i])}" for i in self.lines if i < len(lines)]
        head = f"{', '.join(reading.codecs)}\n"
        if not reading.clean:
            head += "(this encoding cannot decode every byte of the file: � marks where)\n"
        self.preview.setPlainText(head + "\n".join(shown))
        self.problem.setText("")

    def _filter(self, text: str) -> None:
        """Keep the rows one of whose encodings contains ``text`` (ignoring case and - _)."""
        want = text.lower().replace("-", "").replace("_", "")
        first_shown = None
        for i in range(self.list.topLevelItemCount()):
            item = self.list.topLevelItem(i)
            reading: Reading = item.data(0, Qt.ItemDataRole.UserRole)
            keys = [c.replace("-", "").replace("_", "") for c in reading.codecs]
            hide = bool(want) and not any(want in k for k in keys)
            item.setHidden(hide)
            if not hide and first_shown is None:
                first_shown = item
        if first_shown is not None:
            self.list.blockSignals(True)
            self.list.setCurrentItem(first_shown)
            self.list.blockSignals(False)

    def choice(self) -> str:
        return self.name.text().strip()

    def _accept(self) -> None:
        name = self.choice()
        try:
            if not name:
                raise LookupError
            codecs.lookup(name)
        except LookupError:
            self.problem.setText(
                f"Python knows no encoding called {name!r}: pick a row, or type a name such as "
                "latin-1 or iso8859-3."
            )
            return
        self.accept()


def ask_encoding(parent: QWidget, path: str, message: str, suggested: str | None) -> str | None:
    """The encoding chosen to reopen ``path`` with, or None when cancelled."""
    dialog = EncodingDialog(path, message, suggested, parent)
    if dialog.exec() == QDialog.DialogCode.Accepted:
        return dialog.choice()
    return None
