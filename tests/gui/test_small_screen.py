"""The window fits a small screen."""

from __future__ import annotations


def test_the_window_fits_a_small_screen():
    from types import SimpleNamespace

    from PySide6.QtCore import QRect

    from charlstm_gui.window import DEFAULT_SIZE, initial_size

    def screen(w, h):
        return SimpleNamespace(availableGeometry=lambda: QRect(0, 0, w, h))

    assert initial_size(screen(1024, 768)) == (1024, 768)  # the Runs buttons stay on screen
    assert initial_size(screen(2560, 1440)) == DEFAULT_SIZE
    assert initial_size(None) == DEFAULT_SIZE
