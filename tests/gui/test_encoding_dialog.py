"""The encoding dialog: candidates ranked by charset-normalizer with each one's first lines, a
typed codec name, an unknown one refused.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication

from charlstm_gui.widgets.encoding_dialog import EncodingDialog

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
