"""File dialogs: where they start, the names they suggest, the folders they remember."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QFileDialog

from charlstm_gui.window import MainWindow

from .helpers import load, small_text


def test_save_dialog_suggests_the_text_name_and_remembers_the_folder(
    qtbot, window, tmp_path, monkeypatch
):
    texts = tmp_path / "texts"
    texts.mkdir()
    load(qtbot, window, small_text(texts / "Die Verwandlung.txt"))
    asked = []
    chosen = tmp_path / "models" / "kafka.npz"
    chosen.parent.mkdir()

    def fake_save(parent, caption, start, filters):
        asked.append(start)
        return str(chosen), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake_save)
    assert window.ask_save_path() == str(chosen)
    assert asked[0] == str(texts / "Die Verwandlung.npz")  # not ~/.local/…/model.npz
    window.settings.sync()
    # a new session starts in the folder last used for models, and Open Model too
    w2 = MainWindow()
    qtbot.addWidget(w2)
    load(qtbot, w2, small_text(texts / "other.txt"))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake_save)
    w2.ask_save_path()
    assert asked[1] == str(chosen.parent / "other.npz")
    opened = []
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda p, c, start, f: opened.append(start) or ("", f)
    )
    w2.files.open_model()
    assert opened == [str(chosen.parent)]
    w2.ctl.shutdown()


def test_open_text_dialog_starts_in_the_last_text_folder_across_sessions(
    qtbot, window, tmp_path, monkeypatch
):
    load(qtbot, window, small_text(tmp_path / "a.txt"))
    window.settings.sync()
    w2 = MainWindow()
    qtbot.addWidget(w2)
    seen = []
    monkeypatch.setattr(
        QFileDialog, "getOpenFileName", lambda p, c, start, f: seen.append(start) or ("", f)
    )
    w2.files.open_text()
    assert seen == [str(tmp_path)]
    QSettings().setValue("paths/last_text_dir", str(tmp_path / "gone"))
    w2.settings.sync()
    w2.files.open_text()
    assert seen[1] == os.path.expanduser("~")  # a folder that no longer exists: home
    w2.ctl.shutdown()


def test_exports_are_named_after_the_text_and_remember_their_folder(
    qtbot, window, tmp_path, monkeypatch
):
    load(qtbot, window, small_text(tmp_path / "faust.txt"))
    asked = []
    out = tmp_path / "exports"
    out.mkdir()

    def fake_save(parent, caption, start, filters):
        asked.append(start)
        return str(out / os.path.basename(start)), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", fake_save)
    window.files.export_csv()
    assert asked[0] == str(tmp_path / "faust-loss.csv")
    window.files.export_png()
    assert asked[1] == str(out / "faust-loss.png")  # the folder the CSV went to
    assert (out / "faust-loss.csv").exists()
