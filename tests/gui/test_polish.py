"""First-use polish (issue 9 B2, B6, B8, B9): wrapped tooltips, readable axes, the progress bar
after a save, the title, file dialogs' start and suggested name, autosave retention, the
settings check's advice and the validation check, the UTF-16 hint."""

from __future__ import annotations

import os
import time

from PySide6.QtCore import QEvent, QPoint, QSettings
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QToolTip

from charlstm_gui import APP_NAME
from charlstm_gui.controller import autosaves
from charlstm_gui.widgets import tooltips
from charlstm_gui.widgets.axes import CountAxis, LossAxis
from charlstm_gui.widgets.dialogs import suggested_encoding
from charlstm_gui.window import MainWindow

from .helpers import load, model_like, small_text


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


def test_count_axis_uses_k_and_m_with_separators():
    axis = CountAxis("bottom")
    assert axis.tickStrings([0, 100_000, 200_000], 1.0, 100_000) == ["0", "100k", "200k"]
    assert axis.tickStrings([1_000_000, 1_500_000], 1.0, 500_000) == ["1.0M", "1.5M"]
    assert axis.tickStrings([2_000, 2_500], 1.0, 500) == ["2,000", "2,500"]
    assert axis.tickStrings([0, 0.5, 1], 1.0, 0.5) == ["0.0", "0.5", "1.0"]  # an empty plot


def test_log_loss_axis_labels_round_values(qtbot, window):
    plot = window.plot
    assert isinstance(plot.plot.getAxis("left"), LossAxis)
    assert isinstance(plot.plot.getAxis("bottom"), CountAxis)
    plot.set_log_scale(True)
    axis = plot.plot.getAxis("left")
    import math

    levels = axis.tickValues(math.log10(1.2), math.log10(4.2), 400)
    major = levels[0][1]
    labels = axis.tickStrings(major, 1.0, levels[0][0])
    assert len(labels) >= 6, labels  # pyqtgraph's own log axis gave 4
    assert labels[:3] == ["1.5", "2", "2.5"]


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


def _autosave(folder, name, age_s):
    path = model_like(folder / name)
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_autosaves_beyond_the_setting_are_deleted_and_the_size_shown(qtbot, window, tmp_path):
    folder = tmp_path / "autosave"
    folder.mkdir()
    old = [_autosave(folder, f"t-2026010{i}-120000.npz", 1000 - i) for i in range(1, 6)]
    mine = _autosave(folder, "my-model.npz", 5000)  # saved by the user under another name
    window.form.set_values({"autosave_dir": str(folder), "autosave_keep": 2})
    assert "5 autosaves" in window.form.autosave_size.text()
    window.ctl.files.model_path = str(old[0])  # the open model is never deleted
    window.view.on_autosaved(str(old[-1]))  # the newest, the current run's
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([old[0].name, old[-1].name, mine.name])
    assert "2 autosaves" in window.form.autosave_size.text()
    window.ctl.files.model_path = None


def test_keep_zero_keeps_every_autosave(tmp_path):
    for i in range(4):
        _autosave(tmp_path, f"t-2026010{i}-120000.npz", 100 - i)
    assert autosaves.prune(tmp_path, 0) == []
    assert len(autosaves.autosaves(tmp_path)) == 4
    assert len(autosaves.prune(tmp_path, 1)) == 3


def test_keep_and_split_settings_are_remembered(qtbot, window):
    window.form.set_values({"autosave_keep": 7, "val_split": "blocks"})
    window.save_settings()
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.restore_settings()
    assert w2.form.values()["autosave_keep"] == 7
    assert w2.form.values()["val_split"] == "blocks"
    w2.ctl.shutdown()


def test_validation_check_names_unseen_characters_and_blocks_clear_it(qtbot, window, tmp_path):
    path = tmp_path / "prose-then-poetry.txt"
    path.write_text("the cat sat on the mat. " * 200 + "QXZJ KVW " * 60, encoding="utf-8")
    load(qtbot, window, path)
    window._update_estimate()
    check = window.text_panel.validation_check
    assert not check.isHidden()
    assert "distinct characters of the last part" in check.text()
    assert "evenly spaced blocks" in check.text()
    window.form.set_values({"val_split": "blocks"})
    window._update_estimate()
    assert check.isHidden()
    _, train = window.form.configs(window.ctl.corpus.vocab.size)
    assert train.val_split == "blocks"


def test_utf16_text_offers_utf16_in_app_words(qtbot, window, tmp_path, monkeypatch):
    path = tmp_path / "brief.txt"
    path.write_bytes("Liebe Grüße aus Köln\n".encode("utf-16-le") * 50)
    asked = []
    monkeypatch.setattr(window, "ask_encoding", lambda p, m: asked.append(m) or "utf-16-le")
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=10_000):
        window.open_text(str(path))
    assert "--" not in asked[0] and suggested_encoding(asked[0]) == "utf-16"
    assert window.ctl.corpus.encoding == "utf-16-le"


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


def test_the_split_row_says_where_validation_comes_from(qtbot, window, tmp_path):
    load(qtbot, window, small_text(tmp_path / "t.txt"))
    window._update_estimate()
    assert "(the last part)" in window.text_panel.labels["split"].text()
    window.form.set_values({"val_split": "blocks"})
    window._update_estimate()
    assert "(10 evenly spaced blocks)" in window.text_panel.labels["split"].text()
