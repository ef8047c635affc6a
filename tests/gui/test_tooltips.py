"""Tooltips: long ones are shown wrapped over several lines and the widget keeps its plain text."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

from charlstm_gui.widgets import tooltips


def show_tooltip_of(widget) -> None:
    event = QHelpEvent(QEvent.Type.ToolTip, QPoint(2, 2), widget.mapToGlobal(QPoint(2, 2)))
    QApplication.sendEvent(widget, event)


def test_long_tooltips_are_shown_wrapped_and_stay_plain(qtbot, window):
    window.show()
    qtbot.waitExposed(window)
    spin = window.form._spins["hidden_size"]  # the settings form's own tooltip
    plain = spin.toolTip()
    assert len(plain) > tooltips.WRAP_AFTER
    show_tooltip_of(spin)
    qtbot.waitUntil(QToolTip.isVisible, timeout=2000)
    assert QToolTip.text() == tooltips.rich(plain)
    label = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "qtooltip_label")
    assert label.width() <= tooltips.MAX_WIDTH_PX + 40  # wrapped, not a 1,000-pixel line
    assert label.height() > 2 * label.fontMetrics().height()  # on several lines
    assert spin.toolTip() == plain  # the widget keeps its plain text
    QToolTip.hideText()
    short = window.form.preset
    short.setToolTip("Short")
    assert tooltips.wrapped("Short") == "Short"
