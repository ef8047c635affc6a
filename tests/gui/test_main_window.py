"""The main window itself: its title, the progress bar after a save, scrolling over settings."""

from __future__ import annotations

from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication

from charlstm_gui import APP_NAME

from .helpers import load, small_text


def test_title_names_the_text_not_the_app_twice(qtbot, window, tmp_path):
    load(qtbot, window, small_text(tmp_path / "faust.txt"))
    assert window.windowTitle() == "faust.txt"  # Qt appends " — CharLSTM Studio" itself
    assert APP_NAME not in window.windowTitle()


def test_progress_bar_keeps_its_value_after_a_save(qtbot, window):
    window.progress.setValue(420)
    window.ctl._set_busy("Saving model.npz…")
    assert window.progress.maximum() == 0  # a busy bar while saving
    window.ctl._set_busy("")
    assert window.progress.maximum() == 1000 and window.progress.value() == 420


def test_scrolling_over_the_settings_does_not_change_them(qtbot, window):
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QWheelEvent

    window.show()
    qtbot.waitExposed(window)
    spin, combo = window.form._spins["hidden_size"], window.form.val_split
    before = (spin.value(), combo.currentIndex())

    def wheel(widget) -> None:
        pos = QPointF(5, 5)
        event = QWheelEvent(
            pos,
            QPointF(widget.mapToGlobal(pos.toPoint())),
            QPoint(0, -120),
            QPoint(0, -120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(widget, event)

    wheel(spin)
    wheel(combo)
    assert (spin.value(), combo.currentIndex()) == before
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    wheel(spin)
    assert spin.value() != before[0]  # once clicked into, the wheel works as usual
