"""The window's file dialogs: where to save a model, which text or model to open, and the
exports (loss as CSV, plot as PNG, generated text), each offered in the folder last used for
its kind (remembered in QSettings) or beside the loaded text.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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

    def _export_suggestion(self, ending: str, plain: str) -> str:
        """Where an export or a saved sample is offered: named after the text, in the folder
        last used for exports (else the text's folder, else home)."""
        corpus = self.ctl.corpus
        return file_suggestion(
            self.settings.value("paths/last_export_dir", "", type=str),
            corpus.path if corpus is not None else None,
            corpus.name if corpus is not None and corpus.path else None,
            ending,
            plain,
        )

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

    def save_generated(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.win,
            "Save generated text",
            self._export_suggestion("-generated.txt", "generated"),
            "Text files (*.txt);;All files (*)",
        )
        if not path:
            return
        self.settings.setValue("paths/last_export_dir", str(Path(path).parent))
        try:
            Path(path).write_text(self.win.gen.text(), encoding="utf-8")
        except OSError as exc:
            self.win.show_message("Not saved", f"Cannot write {path}: {exc.strerror}.")
            return
        self.win.statusBar().showMessage(f"Saved the generated text to {path}", 5000)

    def export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.win,
            "Export loss as CSV",
            self._export_suggestion("-loss.csv", "loss"),
            "CSV files (*.csv)",
        )
        if path:
            self.settings.setValue("paths/last_export_dir", str(Path(path).parent))
        if path:
            try:
                self.ctl.history.write_csv(path, self.win.plot.smoothed())
            except OSError as exc:
                self.win.show_message("Not exported", f"Cannot write {path}: {exc.strerror}.")

    def export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.win,
            "Export plot as PNG",
            self._export_suggestion("-loss.png", "loss"),
            "PNG images (*.png)",
        )
        if path:
            self.settings.setValue("paths/last_export_dir", str(Path(path).parent))
        if path and not self.win.plot.save_png(path):
            self.win.show_message("Not exported", f"Cannot write the image {path}.")
