"""The settings form: remembered settings, the validation check's advice, where validation comes
from, the UTF-16 hint.
"""

from __future__ import annotations

from charlstm_gui.widgets.dialogs import suggested_encoding
from charlstm_gui.window import MainWindow

from .helpers import load, small_text


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


def test_the_split_row_says_where_validation_comes_from(qtbot, window, tmp_path):
    load(qtbot, window, small_text(tmp_path / "t.txt"))
    window._update_estimate()
    assert "(the last part)" in window.text_panel.labels["split"].text()
    window.form.set_values({"val_split": "blocks"})
    window._update_estimate()
    assert "(10 evenly spaced blocks)" in window.text_panel.labels["split"].text()
