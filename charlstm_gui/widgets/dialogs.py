"""Dialogs: unexpected-error report (sys.excepthook), other encodings, About, where file
dialogs start and the name they suggest.

Known problems are plain message boxes shown by the window; only bugs reach the error report,
which shows a copyable traceback and lets the app keep running.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import traceback
from pathlib import Path
from types import TracebackType

import numpy as np
from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from .. import APP_NAME
from ..desktop import app_icon

# encodings an engine message may name as the one to try (a file whose every other byte is 0 is
# UTF-16 or UTF-32); its general advice ("for example latin-1 or cp1252") is no suggestion
WIDE_ENCODINGS = ("utf-16", "utf-32")


class ErrorDialog(QDialog):
    """Shows a traceback that can be selected and copied; the app keeps running."""

    def __init__(self, details: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{APP_NAME}: unexpected error")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        intro = QLabel(
            "Something went wrong inside the application (a bug, not something you "
            "did). Your saved models are safe and you can keep working. Please copy "
            "the report below into a bug report."
        )
        intro.setWordWrap(True)
        self.details = QPlainTextEdit(details)
        self.details.setReadOnly(True)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("&Copy report", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(self.copy)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.details, 1)
        lay.addWidget(buttons)
        self.resize(760, 420)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.details.toPlainText())


def report_text(tb_text: str) -> str:
    return (
        f"{APP_NAME} · Python {platform.python_version()} · PySide6 {pyside_version} · "
        f"NumPy {np.__version__} · {platform.platform()}\n\n{tb_text}"
    )


_open_dialogs: list[ErrorDialog] = []


def show_error_report(tb_text: str, parent: QWidget | None = None) -> ErrorDialog:
    """Open (non-blocking) the error report for a traceback text."""
    dialog = ErrorDialog(report_text(tb_text), parent)
    _open_dialogs.append(dialog)
    dialog.finished.connect(dialog.deleteLater)
    dialog.destroyed.connect(lambda *_: _open_dialogs.clear())
    dialog.open()
    return dialog


def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` of the app: print, then show the report instead of dying."""
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    sys.__stderr__.write(text) if sys.__stderr__ else None
    if issubclass(exc_type, KeyboardInterrupt):
        QApplication.quit()
        return
    if QApplication.instance() is not None:
        show_error_report(text, QApplication.activeWindow())


def ask_encoding(parent: QWidget, path: str, message: str) -> str | None:
    """Ask which encoding to reopen a file that is not UTF-8 with; None if cancelled (every
    reading of the file, ranked: ``encoding_dialog.EncodingDialog``)."""
    from .encoding_dialog import ask_encoding as ask

    return ask(parent, path, message, suggested_encoding(message))


def suggested_encoding(message: str) -> str | None:
    """The wide encoding (utf-16, utf-32) that ``message`` names as the one to try, if any: the
    engine names it for a file of NUL bytes, which no detector of 8-bit text would propose."""
    found = []
    for name in WIDE_ENCODINGS:
        m = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", message, re.IGNORECASE)
        if m:
            found.append((m.start(), name))
    return min(found)[1] if found else None


def existing_folder(*candidates: str | os.PathLike[str] | None) -> str:
    """The first candidate that is an existing folder, else the home folder."""
    for c in candidates:
        if c and os.path.isdir(c):
            return str(c)
    return str(Path.home())


def model_file_suggestion(
    current: str | None, last_dir: str | None, text_path: str | None, text_name: str | None
) -> str:
    """Where Save Model starts and what name it offers: the model's own file once it has one;
    else ``<text name>.npz`` in the folder last used for models, the text's folder, or home
    (never the app's hidden data folder)."""
    if current:
        return current
    return file_suggestion(last_dir, text_path, text_name, ".npz", "model")


def file_suggestion(
    last_dir: str | None, text_path: str | None, text_name: str | None, ending: str, plain: str
) -> str:
    """``<text name><ending>`` (``<plain><ending>`` without a text) in the folder last used, the
    text's folder, or home: where exports and saved samples are offered."""
    folder = existing_folder(last_dir, os.path.dirname(text_path) if text_path else None)
    stem = Path(text_name).stem if text_name else ""
    stem = re.sub(r"[\\/:*?\"<>|\x00-\x1f]", "-", stem).strip(" .") or plain
    return str(Path(folder) / f"{stem}{ending}")


def about(parent: QWidget) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle(f"About {APP_NAME}")
    box.setIconPixmap(app_icon().pixmap(64, 64))
    from charlstm_core import __version__

    box.setText(
        f"<h3>{APP_NAME} {__version__}</h3>"
        "<p>Pick a text, set a few hyperparameters and watch a character-level LSTM, "
        "written in plain NumPy, learn to write like it.</p>"
        f"<p>Python {platform.python_version()} · NumPy {np.__version__} · "
        f"PySide6 {pyside_version}</p><p>MIT licence.</p>"
    )
    box.open()
