"""The Inspect tab's passage and time-lapse controls: the passage starts at a line, the buttons use
Qt's media icons.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QStyle

from charlstm_gui.views.inspect_panels import line_start

from .test_inspect_view import trained  # noqa: F401,F811 (a fixture)


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
