"""After another text is opened, the plot says what it shows; long messages can be read in full."""

from __future__ import annotations

from PySide6.QtCore import Qt

from charlstm_gui.widgets.plain import tip

from .helpers import load, small_text, train


def test_after_another_text_the_plot_says_what_it_shows_and_long_messages_read_in_full(
    qtbot, window, tmp_path
):
    w = window
    first = small_text(tmp_path / "first.txt")
    load(qtbot, w, first)
    train(qtbot, w, steps=10)
    assert w.plot_note.label.isHidden()  # the curves and the lines are the same text's
    other = tmp_path / "other.txt"
    other.write_text("ZYXWVU 0123456789 QQQ {}[]<> " * 40 + "\n", encoding="utf-8")
    load(qtbot, w, other)
    note = w.plot_note.label
    assert note.isVisibleTo(w) and "first.txt" in note.text() and "other.txt" in note.text()
    assert "do not compare" in note.text()
    message = w.statusBar().currentMessage()
    assert message.startswith("The model cannot represent") and message.endswith(".")
    # whole, however narrow the bar (escaped: the tooltip shows it as plain text)
    assert w.statusBar().toolTip().startswith(tip(message)[: -len("</p>")])
    w.statusBar().clearMessage()  # gone (after 15 s): the tooltip keeps the last one
    assert w.statusBar().toolTip().startswith(tip(f"Last message: {message}")[: -len("</p>")])
    w.actions["messages"].trigger()  # View ▸ Messages
    log = w.message_log.dialog
    assert log.isVisible() and not log.isModal()
    assert message in w.message_log.view.toPlainText()
    log.hide()
    qtbot.mouseDClick(w.statusBar(), Qt.MouseButton.LeftButton)  # a double-click opens it too
    assert log.isVisible()
    load(qtbot, w, first)  # back to the model's own text: nothing to say
    assert note.isHidden()
