"""Open Text's dialog lists all files first, so a text with any extension can be picked."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog


def test_open_text_shows_all_files_first(qtbot, window, monkeypatch, tmp_path):
    asked = {}

    def fake(parent, caption, folder, filters, *rest):
        asked["filters"] = filters
        return "", ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake))
    window.actions["open_text"].trigger()  # File ▸ Open Text…
    assert asked["filters"].split(";;")[0] == "All files (*)"
    assert "Text files" in asked["filters"]
