"""The question before unsaved training is dropped: its Save names the file it writes."""

from __future__ import annotations

from charlstm_core.files.modelfile import load_model
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from charlstm_gui.controller.controller import State
from charlstm_gui.window import MainWindow

from .helpers import load, small_text, train


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
