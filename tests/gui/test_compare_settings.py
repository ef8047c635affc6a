"""Compare settings, clicked as a user clicks it, on a display without a window manager."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from .helpers import load, small_text, train


def test_compare_settings_opens_on_a_click_and_never_blocks_the_window(qtbot, window, tmp_path):
    w = window
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    for lr in (0.01, 0.02):
        w.form.set_values({"lr": lr})
        train(qtbot, w, steps=4)
        w.ctl.files.set_dirty(False)
    panel = w.runs_panel
    w.tabs.setCurrentWidget(panel)
    w.show()
    qtbot.waitExposed(w)
    for row in range(2):  # tick both runs by clicking their boxes
        index = panel.proxy.index(row, 0)
        rect = panel.table.visualRect(index)
        box = rect.topLeft() + QPoint(10, rect.height() // 2)
        qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=box)
    assert len(panel.model.checked) == 2 and panel.compare.isEnabled()
    qtbot.mouseClick(panel.compare, Qt.MouseButton.LeftButton)
    dialog = w.compare_dialog
    assert dialog.isVisible() and dialog.windowModality() == Qt.WindowModality.NonModal
    assert dialog.keys == ["lr"]
    assert QApplication.activeModalWidget() is None  # the window still takes clicks
    qtbot.mouseClick(panel.compare, Qt.MouseButton.LeftButton)  # again: a fresh one, one only
    assert w.compare_dialog is not dialog and w.compare_dialog.isVisible()
    w.compare_dialog.close()
