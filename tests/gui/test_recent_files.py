"""charlstm_gui/widgets/recent_files.py: the recent texts and models, and the menus that list
them."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMenu

from charlstm_gui.widgets.recent_files import MAX_RECENT, RecentFiles, storable


def test_newest_first_without_duplicates_and_at_most_max(tmp_path):
    recent = RecentFiles(QSettings())
    for i in range(MAX_RECENT + 2):
        recent.add("texts", str(tmp_path / f"{i}.txt"))
    recent.add("texts", str(tmp_path / "3.txt"))  # used again: moves to the front
    paths = recent.paths("texts")
    assert len(paths) == MAX_RECENT and paths[0] == str(tmp_path / "3.txt")
    assert paths.count(str(tmp_path / "3.txt")) == 1
    assert recent.paths("models") == []  # each kind apart


def test_a_name_qsettings_cannot_hold_is_not_kept(tmp_path):
    bad = str(tmp_path) + "/caf\udce9.txt"  # a non-UTF-8 byte, held as a lone surrogate
    assert not storable(bad)
    recent = RecentFiles(QSettings())
    recent.add("texts", bad)
    assert recent.paths("texts") == []


def test_the_menu_opens_a_path_or_says_it_is_gone(qtbot, tmp_path):
    there, gone = tmp_path / "a.txt", tmp_path / "gone.txt"
    there.write_text("x")
    recent = RecentFiles(QSettings())
    recent.add("texts", str(gone))
    recent.add("texts", str(there))
    menu = QMenu()
    opened, missing = [], []
    recent.fill_menu(menu, "texts", enabled=True, open_path=opened.append, missing=missing.append)
    actions = menu.actions()
    assert [a.text() for a in actions] == ["&1 a.txt", "&2 gone.txt"]
    actions[0].trigger()
    actions[1].trigger()
    assert opened == [str(there)] and missing == [str(gone)]
    recent.fill_menu(menu, "models", enabled=True, open_path=opened.append, missing=print)
    assert [(a.text(), a.isEnabled()) for a in menu.actions()] == [("(none)", False)]
