"""What a newcomer tripped on (issue 20, points 5, 7 and 8), each through the real window: the
encoding dialog, the plot after another text, long messages, Compare settings, the time-lapse's
icons, the Inspect passage's start, Open Text's filter and the unsaved-training question."""

from __future__ import annotations

import numpy as np
from charlstm_core.files.modelfile import load_model
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QStyle

from charlstm_gui.controller.controller import State
from charlstm_gui.views.inspect_panels import line_start
from charlstm_gui.widgets.encoding_dialog import EncodingDialog
from charlstm_gui.widgets.plain import tip
from charlstm_gui.window import MainWindow

from .helpers import load, small_text, train
from .test_inspect_view import trained  # noqa: F401,F811 (a fixture)

ESPERANTO = (
    "Saluton!\nLa ĉefa celo de Esperanto estas faciligi la komunikadon inter homoj.\n"
    "Ŝi manĝas ĝis la vespero, kaj ĉiuj ĝojas pro la bela ĥoro. Ĵaŭdo venas.\n"
) * 40


def test_an_iso_8859_3_text_is_opened_by_picking_the_reading_that_shows_its_letters(
    qtbot, window, tmp_path
):
    path = tmp_path / "eo.txt"
    path.write_bytes(ESPERANTO.encode("iso-8859-3"))
    seen: dict[str, str] = {}

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, EncodingDialog):  # not asked yet: the text is still loading
            QTimer.singleShot(50, answer)
            return
        rows = [dialog.list.topLevelItem(i) for i in range(dialog.list.topLevelItemCount())]
        seen["first"] = rows[0].text(0)
        row = next(r for r in rows if "iso8859-3" in r.toolTip(0))
        assert "ĉefa" in row.text(1)  # the row's line shows the letters as they are
        dialog.list.scrollToItem(row)
        rect = dialog.list.visualItemRect(row)
        qtbot.mouseClick(dialog.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        seen["preview"] = dialog.preview.toPlainText()
        seen["name"] = dialog.name.text()
        qtbot.mouseClick(dialog.open_button(), Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=20_000):
        window.open_text(str(path))
    assert seen["name"] == "iso8859-3" and "Ŝi manĝas ĝis" in seen["preview"]
    assert seen["first"].startswith("★")  # the detector's candidates come first
    assert window.ctl.corpus.encoding == "iso8859-3"
    assert window.ctl.corpus.vocab.decode(window.ctl.corpus.ids) == ESPERANTO


def test_the_encoding_dialog_takes_a_typed_name_and_refuses_an_unknown_one(qtbot, tmp_path):
    path = tmp_path / "eo.txt"
    path.write_bytes(ESPERANTO.encode("iso-8859-3"))
    dialog = EncodingDialog(str(path), "not valid utf-8", None)
    qtbot.addWidget(dialog)
    dialog.name.clear()
    qtbot.keyClicks(dialog.name, "8859-3")  # typing filters the rows
    shown = [
        dialog.list.topLevelItem(i).toolTip(0)
        for i in range(dialog.list.topLevelItemCount())
        if not dialog.list.topLevelItem(i).isHidden()
    ]
    assert shown and all("8859-3" in tip for tip in shown)
    qtbot.mouseClick(dialog.open_button(), Qt.MouseButton.LeftButton)
    assert dialog.result() == 0 and "knows no encoding called '8859-3'" in dialog.problem.text()
    dialog.name.setText("ISO-8859-3")
    qtbot.mouseClick(dialog.open_button(), Qt.MouseButton.LeftButton)
    assert dialog.result() == 1 and dialog.choice() == "ISO-8859-3"


# ------------------------------------------------------------------ point 5: after another text


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


# ------------------------------------------------------------------ point 8: small ones


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


def test_the_time_lapse_button_shows_qt_media_icons(qtbot, trained):  # noqa: F811
    play = trained.inspect.play
    style = play.style()

    def looks(icon) -> object:
        return icon.pixmap(16, 16).toImage()

    pause = looks(style.standardIcon(QStyle.StandardPixmap.SP_MediaPause))
    start = looks(style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
    assert play.text() == "" and looks(play.icon()) == start != pause
    qtbot.mouseClick(play, Qt.MouseButton.LeftButton)
    assert play.isChecked() and looks(play.icon()) == pause
    assert play.accessibleName() == "Pause"
    qtbot.mouseClick(play, Qt.MouseButton.LeftButton)
    assert looks(play.icon()) == start and play.accessibleName() == "Play"


def test_the_inspect_passage_starts_at_a_line(qtbot, trained):  # noqa: F811
    row = trained.inspect.passage_row
    ids, _ = row.validation_ids()
    val = trained.ctl.corpus.vocab.decode(ids)
    assert not val.startswith("she said")  # the validation part begins mid-line here...
    row.length.setValue(200)
    for start in (0, 7, 100):
        row.start.setValue(start)
        a = val.index("\n", start) + 1  # ...and so do these starts: the next line's start
        assert row.passage_text() == val[a : a + 200]
        assert row.passage_text().startswith("she said")
    assert line_start(np.array([1, 2, 0, 3, 4]), 1, 0, 3) == 3  # after the newline (id 0)
    assert line_start(np.array([1, 2, 3, 4, 5]), 1, 0, 3) == 1  # no line begins near: stay
    assert line_start(np.array([0, 2, 3, 4, 5]), 1, 0, 3) == 1  # a line begins here
    assert line_start(np.array([1, 0, 3]), 0, 0, 3, begins_a_line=True) == 0  # a whole text


def test_open_text_shows_all_files_first(qtbot, window, monkeypatch, tmp_path):
    asked = {}

    def fake(parent, caption, folder, filters, *rest):
        asked["filters"] = filters
        return "", ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(fake))
    window.actions["open_text"].trigger()  # File ▸ Open Text…
    assert asked["filters"].split(";;")[0] == "All files (*)"
    assert "Text files" in asked["filters"]


def test_the_save_before_a_new_model_says_which_file_it_writes(
    qtbot, window, tmp_path, monkeypatch
):
    w = window
    monkeypatch.setattr(w, "ask_unsaved", MainWindow.ask_unsaved.__get__(w))  # the real box
    load(qtbot, w, small_text(tmp_path / "t.txt"))
    train(qtbot, w, steps=4)
    target = tmp_path / "A.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(target))
    train(qtbot, w, resume=True, steps=8)  # four more steps, not saved
    assert w.ctl.dirty
    seen = {}

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, answer)
            return
        save = box.button(QMessageBox.StandardButton.Save)
        seen["button"], seen["text"] = save.text(), box.text()
        qtbot.mouseClick(save, Qt.MouseButton.LeftButton)

    QTimer.singleShot(0, answer)
    with qtbot.waitSignal(w.ctl.saved, timeout=20_000):
        w.train_new()  # asks first
    assert seen["button"] == "&Save to A.npz" and str(target) in seen["text"]
    assert load_model(str(target)).train.step == 8  # it wrote the model's own file
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE, timeout=30_000)
    w.ctl.files.set_dirty(False)
    w.ctl.files.model_path = None  # a model without a file: the button says it will ask where
    assert w.unsaved_box("closing").button(QMessageBox.StandardButton.Save).text() == "&Save As…"


def test_the_window_fits_a_small_screen():
    from types import SimpleNamespace

    from PySide6.QtCore import QRect

    from charlstm_gui.window import DEFAULT_SIZE, initial_size

    def screen(w, h):
        return SimpleNamespace(availableGeometry=lambda: QRect(0, 0, w, h))

    assert initial_size(screen(1024, 768)) == (1024, 768)  # the Runs buttons stay on screen
    assert initial_size(screen(2560, 1440)) == DEFAULT_SIZE
    assert initial_size(None) == DEFAULT_SIZE
