"""The window's file dialogs: where to save a model, which text or model to open, and the
exports (loss as CSV, plot as PNG, generated text), each offered in the folder last used for
its kind (remembered in QSettings) or beside the loaded text. Qt's save dialog asks before a
file is replaced; the export is then written by the one guarded writer
(``charlstm_core.files.writer``), which refuses what no export may replace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from charlstm_core.errors import CharLSTMError
from charlstm_core.files import writer
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from .dialogs import existing_folder, file_suggestion, model_file_suggestion

MODEL_FILTER = "CharLSTM models (*.npz);;All files (*)"
# all files first: any file can be a text to train on, with or without a known ending
TEXT_FILTER = "All files (*);;Text files (*.txt *.md *.py *.c *.h *.js *.html *.tex *.csv)"


class FileDialogs:
    """The file dialogs of ``window`` (a ``MainWindow``: its controller, plot and panels)."""

    def __init__(self, window: Any, settings: QSettings) -> None:
        self.win = window
        self.ctl = window.ctl
        self.settings = settings

    def save_model_path(self) -> str | None:
        """Ask where to save the model (offered beside the text or the last model folder);
        None when cancelled. A new name gets the ``.npz`` ending."""
        corpus = self.ctl.corpus
        start = model_file_suggestion(
            self.ctl.model_path,
            self.settings.value("paths/last_model_dir", "", type=str),
            corpus.path if corpus is not None else None,
            corpus.name if corpus is not None and corpus.path else None,
        )
        path, _ = QFileDialog.getSaveFileName(self.win, "Save model", start, MODEL_FILTER)
        if not path:
            return None
        self.settings.setValue("paths/last_model_dir", str(Path(path).parent))
        if path.lower().endswith(".npz") or os.path.lexists(path):
            return path  # an existing name is taken as it is (Save checks what it is)
        return path + ".npz"

    def _export_path(self, title: str, ending: str, plain: str, name_filter: str) -> str | None:
        """Ask where to write an export or a saved sample, offered named after the text in the
        folder last used for exports (else the text's folder, else home); None when cancelled.
        The folder chosen is remembered for the next export."""
        corpus = self.ctl.corpus
        start = file_suggestion(
            self.settings.value("paths/last_export_dir", "", type=str),
            corpus.path if corpus is not None else None,
            corpus.name if corpus is not None and corpus.path else None,
            ending,
            plain,
        )
        path, _ = QFileDialog.getSaveFileName(self.win, title, start, name_filter)
        if not path:
            return None
        self.settings.setValue("paths/last_export_dir", str(Path(path).parent))
        return path

    def open_text(self) -> None:
        start = existing_folder(self.settings.value("paths/last_text_dir", "", type=str))
        path, _ = QFileDialog.getOpenFileName(self.win, "Open text", start, TEXT_FILTER)
        if path:
            self.win.open_text(path)

    def open_model(self) -> None:
        corpus = self.ctl.corpus
        start = existing_folder(
            self.settings.value("paths/last_model_dir", "", type=str),
            os.path.dirname(corpus.path) if corpus is not None and corpus.path else None,
        )
        path, _ = QFileDialog.getOpenFileName(self.win, "Open model", start, MODEL_FILTER)
        if path:
            self.win.open_model(path)

    def _write(self, path: str, kind: writer.Kind, content: Any, failed: str) -> bool:
        """Write an export through the one guarded writer (atomic; only over a file of its own
        kind or a new name, never over the training text or a model); a refusal is a message
        titled ``failed``. The dialog has already asked before replacing a file."""
        try:
            writer.write_atomic(path, kind, content, protect=self.ctl.protected_inputs())
        except CharLSTMError as exc:
            self.win.show_message(failed, str(exc))
            return False
        return True

    def save_generated(self) -> None:
        path = self._export_path(
            "Save generated text",
            "-generated.txt",
            "generated",
            "Text files (*.txt);;All files (*)",
        )
        if path and self._write(path, writer.Kind.TEXT, self.win.gen.text(), "Not saved"):
            self.win.statusBar().showMessage(f"Saved the generated text to {path}", 5000)

    def export_csv(self) -> None:
        path = self._export_path("Export loss as CSV", "-loss.csv", "loss", "CSV files (*.csv)")
        if path:
            text = self.ctl.history.csv_text(self.win.plot.smoothed())
            self._write(path, writer.Kind.CSV, text, "Not exported")

    def export_png(self) -> None:
        path = self._export_path("Export plot as PNG", "-loss.png", "loss", "PNG images (*.png)")
        if path:
            self._write(path, writer.Kind.PNG, self.win.plot.png_bytes(), "Not exported")
