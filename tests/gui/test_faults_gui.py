"""Faults of the app (issue 19): what the user supplied is shown as plain text everywhere (C12),
and the app's exports go through the one guarded writer (issue 18.4). Beside tests/test_faults.py,
which needs no Qt."""

from __future__ import annotations

import html

import pytest
from charlstm_core.cli import parser as cli
from charlstm_core.files.modelfile import load_model
from PySide6.QtCore import Qt
from PySide6.QtGui import Qt as GuiQt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QFileDialog,
    QGraphicsTextItem,
    QLabel,
    QMessageBox,
    QWidget,
)

from charlstm_gui.controller.controller import State

from .helpers import load, small_text, train

# A name that Qt renders as a red heading wherever a string is taken as rich text. File names
# may hold it (no "/"), so the text, the model and the run are all called this.
HOSTILE = '<h1 style="color:red">EVIL &amp; co'


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _seen(text: str, fmt: Qt.TextFormat = Qt.TextFormat.AutoText) -> str:
    """What the user reads of ``text`` shown in ``fmt`` (Qt's own rule for AutoText)."""
    if fmt == Qt.TextFormat.PlainText or (
        fmt == Qt.TextFormat.AutoText and not GuiQt.mightBeRichText(text)
    ):
        return text
    doc = QTextDocument()
    doc.setHtml(text)
    return doc.toPlainText()


def _check(
    where: str, text: str, fmt: Qt.TextFormat = Qt.TextFormat.AutoText, needle: str = HOSTILE
) -> list[str]:
    """Problems of one shown string: the hostile name rendered as markup, or escaped twice."""
    if not text or ("<h1" not in text and "&lt;h1" not in text):
        return []  # not shown here, or made inert another way (an autosave's file name)
    seen = _seen(text, fmt)
    if needle not in seen:
        return [f"{where}: {text!r} is shown as {seen!r}"]
    return []


def _scan(extra: list | None = None) -> list[str]:
    """Every label, message box, tooltip, table cell and graphics text of every widget now."""
    problems: list[str] = []
    for w in QApplication.allWidgets():
        name = f"{type(w).__name__} {w.objectName()!r}"
        if isinstance(w, QLabel):
            problems += _check(f"label {name}", w.text(), w.textFormat())
        if isinstance(w, QMessageBox):
            problems += _check(f"message box {name}", w.text(), w.textFormat())
        problems += _check(f"tooltip of {name}", w.toolTip())
        for action in QWidget.actions(w):  # the window keeps a dict called actions
            problems += _check(f"tooltip of action {action.text()!r}", action.toolTip())
        if isinstance(w, QAbstractItemView) and w.model() is not None:
            model = w.model()
            for r in range(min(model.rowCount(), 50)):
                for c in range(model.columnCount()):
                    tip = model.index(r, c).data(Qt.ItemDataRole.ToolTipRole)
                    tip = tip if isinstance(tip, str) else ""
                    problems += _check(f"cell tooltip of {name}", tip)
        scene = getattr(w, "scene", lambda: None)()
        if scene is not None:  # the plot: its legend and labels are QGraphicsTextItems
            for item in scene.items():
                if isinstance(item, QGraphicsTextItem) and "EVIL" in item.toPlainText():
                    if HOSTILE not in item.toPlainText():
                        problems.append(f"plot text {item.toPlainText()!r}")
    for where, text, fmt in extra or []:
        problems += _check(where, text, fmt)
    return problems


def test_every_user_supplied_string_is_shown_as_plain_text(
    home, qtbot, window, tmp_path, monkeypatch
):
    w = window
    seen_modal: list = []

    def box_exec(box: QMessageBox) -> int:  # the Delete dialog and any other modal box
        seen_modal.append((f"modal box {box.windowTitle()!r}", box.text(), box.textFormat()))
        cb = box.checkBox()
        if cb is not None:
            seen_modal.append(("its check box's tooltip", cb.toolTip(), Qt.TextFormat.AutoText))
        return QMessageBox.StandardButton.Cancel

    def dialog_exec(dialog: QDialog) -> int:  # the encoding question
        for label in dialog.findChildren(QLabel):
            where = f"label of {dialog.windowTitle()!r}"
            seen_modal.append((where, label.text(), label.textFormat()))
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr(QMessageBox, "exec", box_exec)
    monkeypatch.setattr(QDialog, "exec", dialog_exec)

    # a text named HOSTILE whose content holds it too: the Text tab, title, preview, samples
    text = small_text(tmp_path / f"{HOSTILE}.txt", extra=f"\n{HOSTILE}\n")
    load(qtbot, w, text)
    problems = _scan()
    train(qtbot, w, steps=12)
    model = tmp_path / f"{HOSTILE}.npz"
    w.ctl.save_model(str(model))  # "Saving <name>…" in the status bar, then the title
    problems += _scan()
    qtbot.waitUntil(model.exists, timeout=10_000)
    qtbot.waitUntil(lambda: w.ctl.state is State.IDLE and not w.ctl.busy, timeout=10_000)

    # the run, named after the text, then renamed to HOSTILE; ticked: a legend entry; a run of
    # the command line saved to a file called HOSTILE: the table's tooltip names it
    argv = ["train", str(text), "--steps", "3", "--hidden", "8", "--batch-size", "4"]
    argv += ["--seq-len", "8", "--sample-every", "0", "-q"]
    argv += ["--out", str(tmp_path / f"{HOSTILE}-cli.npz")]
    assert cli.main(argv) == 0
    w.tabs.setCurrentWidget(w.runs_panel)
    run = w.runs_panel.model.runs[-1]  # the app's
    assert w.ctl.rename_run(run.id, f"{HOSTILE} run")
    w.runs_panel.model.set_checked([run.id])
    w.plot.set_live_name(f"{HOSTILE} run")
    problems += _scan()
    w.runs_panel.delete(w.runs_panel.model.runs[0])  # the dialog
    w.compare_runs([run.id, run.id])

    # a message quoting the file name: exporting the loss over the model is refused
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(model), ""))
    )
    w.files.export_csv()
    assert w.last_message[0] == "Not exported" and "EVIL" in w.last_message[1]
    # the model opened: its name on the Generate tab, the offer to open its text
    with qtbot.waitSignal(w.ctl.model_opened, timeout=10_000):
        w.open_model(str(model))
    w.offer_model_text(f"{HOSTILE}.npz was trained on {HOSTILE}.txt", str(text))
    # a text the model cannot continue on: the Continue action's tooltip names it
    other = tmp_path / f"{HOSTILE} other.txt"
    other.write_text("ZZZ QQQ XXX unknown characters\n" * 200, encoding="utf-8")
    load(qtbot, w, other)
    # a text that is not UTF-8: the encoding question quotes its name
    latin = tmp_path / f"{HOSTILE} latin.txt"
    latin.write_bytes("caf\xe9 ".encode("latin-1") * 500)
    with qtbot.waitSignal(w.ctl.decode_failed, timeout=10_000):
        w.open_text(str(latin))
    qtbot.wait(50)
    problems += _scan(seen_modal)
    assert any("Delete run" in where for where, *_ in seen_modal)
    assert any("UTF-8" in where for where, *_ in seen_modal)
    # the sweep dialog repeats what was typed when it cannot be read
    from charlstm_gui.views.sweep_dialog import SweepDialog

    dialog = SweepDialog(w.form.values(), w)
    qtbot.addWidget(dialog)
    dialog.values[0].setText("<h1>EVIL")
    summary = dialog.summary
    assert "EVIL" in summary.text()
    problems += _check("sweep summary", summary.text(), summary.textFormat(), "<h1>EVIL")
    assert sorted(set(problems)) == [], "\n".join(sorted(set(problems)))


def test_tip_escapes_and_keeps_line_breaks():
    from charlstm_gui.widgets.plain import tip

    shown = _seen(tip(f"{HOSTILE}\nsecond line"))
    assert shown == f"{HOSTILE}\nsecond line"
    assert tip("") == "" and html.escape("<") in tip("<")


# ---------------------------------------------------------------------------------------------
# The app's exports and saves go through the one guarded writer


def test_exports_never_replace_a_model_or_the_text_and_keep_confirmations(
    home, qtbot, window, tmp_path, monkeypatch
):
    w = window
    text = small_text(tmp_path / "t.txt")
    load(qtbot, w, text)
    train(qtbot, w, steps=12)
    model = tmp_path / "m.npz"
    with qtbot.waitSignal(w.ctl.saved, timeout=10_000):
        w.ctl.save_model(str(model))
    before = {p: p.read_bytes() for p in (model, text)}
    options: list = []

    def save_dialog(*args, **kwargs):
        options.append(kwargs.get("options", QFileDialog.Option(0)))
        return target[0], ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_dialog))
    w.gen.output.setPlainText("generated words")
    target = [""]
    for path in (model, text):
        target[0] = str(path)
        for export in (w.files.export_csv, w.files.export_png, w.files.save_generated):
            w.last_message = None
            export()
            assert w.last_message is not None and w.last_message[0] in (
                "Not exported",
                "Not saved",
            ), (export, path)
    assert {p: p.read_bytes() for p in before} == before
    # a model over the text is refused too (the app's Save)
    w.ctl.save_model(str(text))
    assert w.last_message[0] == "The model was not saved" and "training text" in w.last_message[1]
    assert text.read_bytes() == before[text]
    # each export writes its own kind, and again over itself
    for export, name in ((w.files.export_csv, "loss.csv"), (w.files.export_png, "loss.png"),
                         (w.files.save_generated, "gen.txt")):  # fmt: skip
        target[0] = str(tmp_path / name)
        for _ in range(2):
            w.last_message = None
            export()
            assert w.last_message is None, w.last_message
        assert (tmp_path / name).stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # the dialogs still ask before replacing (Qt's own confirmation is not switched off)
    assert all(not (o & QFileDialog.Option.DontConfirmOverwrite) for o in options)
    load_model(model)
