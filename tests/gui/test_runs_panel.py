"""The Runs panel: runs recorded by the command line and the app, sorting, filtering, rename and
delete with confirmation, curves overlaid on the plot, settings compared, a broken database."""

from __future__ import annotations

import numpy as np
import pytest
from charlstm_core.cli import parser as cli
from charlstm_core.events import EvalEvent, StepEvent, TrainSummary
from charlstm_core.runs import RunRecorder, RunStore, default_db_path
from PySide6.QtCore import Qt

from charlstm_gui.controller.controller import State
from charlstm_gui.views.runs_table import COLUMNS, validation_note

from .helpers import TINY, model_like, small_text

NAME, STEPS, BEST = (next(i for i, c in enumerate(COLUMNS) if c.header == h)
                     for h in ("Name", "Steps", "Best val"))  # fmt: skip


@pytest.fixture
def home(tmp_path, monkeypatch):
    """CHARLSTM_HOME for this test: the app and the command line share this store."""
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def fake_run(
    name: str,
    *,
    steps: int = 20,
    final: float = 2.0,
    lr: float = 0.01,
    hidden: int = 16,
    text: str = "t.txt",
    model_path: str | None = None,
) -> int:
    """Record a finished run with a falling curve, without training (fast)."""
    rec = RunRecorder(
        default_db_path(),
        text={"name": text, "sha256": "ab" * 32, "size": 100},
        model_config={"vocab_size": 20, "hidden_size": hidden, "num_layers": 1},
        train_config={"lr": lr, "batch_size": 4, "seq_len": 16, "steps": steps},
        name=name,
        model_path=model_path,
    )
    for s in range(1, steps + 1):
        loss = final + (steps - s) / steps
        rec(StepEvent(s, steps, s / 10, s * 64, loss, lr, 1.0, 1000.0, s * 0.1))
        if s % 5 == 0:
            rec(EvalEvent(s, loss + 0.1, final + 0.1, s * 0.1))
    rec.finish(summary=TrainSummary(steps, "completed", final + 0.1, steps * 0.1, model_path))
    assert rec.warning is None, rec.warning
    return rec.run_id


def shown(w, column: int = NAME) -> list[str]:
    proxy = w.runs_panel.proxy
    return [proxy.index(r, column).data() for r in range(proxy.rowCount())]


def test_a_run_recorded_by_the_command_line_appears_in_the_table(home, qtbot, window, tmp_path):
    text = small_text(tmp_path / "words.txt")
    argv = ["train", str(text), "--steps", "6", "--hidden", "16", "--layers", "1"]
    argv += ["--batch-size", "4", "--seq-len", "16", "--eval-every", "3", "--sample-every", "0"]
    assert cli.main([*argv, "--out", str(tmp_path / "cli.npz"), "--quiet"]) == 0
    window.tabs.setCurrentWidget(window.runs_panel)  # showing the tab reads the store again
    runs = window.runs_panel.model.runs
    assert [r.text_name for r in runs] == ["words.txt"]
    row = {c.header: window.runs_panel.proxy.index(0, i).data() for i, c in enumerate(COLUMNS)}
    assert row["Text"] == "words.txt" and row["Steps"] == "6" and row["Status"] == "finished"
    assert row["Layers × hidden"] == "1 × 16" and row["Best val"] != "—"
    assert row["Model file"] == "cli.npz"

    with qtbot.waitSignal(window.ctl.model_opened, timeout=10_000):  # double-click opens it
        window.runs_panel.open_requested.emit(runs[0])
    assert window.ctl.model_path == str(tmp_path / "cli.npz")


def test_a_run_trained_in_the_app_is_recorded(home, qtbot, window, tmp_path):
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=10_000):
        window.open_text(str(small_text(tmp_path / "t.txt")))
    window.form.set_values({"duration": 12})
    window.train_new()
    qtbot.waitUntil(lambda: window.ctl.state is State.IDLE, timeout=30_000)
    runs = window.runs_panel.model.runs
    assert len(runs) == 1 and runs[0].status == "finished" and runs[0].steps == 12
    assert runs[0].source == "app" and runs[0].model_path == window.ctl.autosave_file
    with RunStore.open(default_db_path()) as store:
        curves = store.curves([runs[0].id])[runs[0].id]
    assert list(curves.train.step) == list(range(1, 13))
    np.testing.assert_allclose(curves.train.loss, window.ctl.history.train.loss)
    window.runs_panel.model.set_checked([runs[0].id])
    assert window.plot.overlay_keys == []  # its curve is on the plot already, live: not twice


def test_sort_and_filter(home, qtbot, window):
    fake_run("alpha", final=2.5, steps=30)
    fake_run("beta", final=1.5, steps=10)
    fake_run("gamma", final=2.0, steps=20, text="other.txt")
    window.refresh_runs()
    view = window.runs_panel.table
    view.sortByColumn(BEST, Qt.SortOrder.AscendingOrder)
    assert shown(window) == ["beta", "gamma", "alpha"]
    view.sortByColumn(STEPS, Qt.SortOrder.DescendingOrder)
    assert shown(window) == ["alpha", "gamma", "beta"]  # by number, not by text ("30" < "10")
    window.runs_panel.filter.setText("OTHER")  # any column, any case
    assert shown(window) == ["gamma"]
    window.runs_panel.filter.setText("")
    assert len(shown(window)) == 3


def test_rename_and_delete_ask_first_and_keep_the_model_file(home, qtbot, window, tmp_path):
    model = tmp_path / "m.npz"
    model.write_bytes(b"model")
    keep = fake_run("keep", model_path=str(model))
    fake_run("other")
    window.refresh_runs()
    panel = window.runs_panel
    run = panel.run(keep)

    panel.ask_name = lambda run: "  renamed  "
    panel.rename(run)
    assert panel.run(keep).name == "renamed"

    panel.ask_delete = lambda run: None  # the user cancels
    panel.delete(panel.run(keep))
    assert panel.run(keep) is not None

    panel.ask_delete = lambda run: False  # confirms, leaves "also delete the model" unticked
    panel.delete(panel.run(keep))
    assert panel.run(keep) is None and shown(window) == ["other"]
    assert model.exists()


def test_delete_with_the_model_file_when_ticked(home, qtbot, window, tmp_path):
    model = model_like(tmp_path / "m.npz")
    run_id = fake_run("gone", model_path=str(model))
    window.refresh_runs()
    window.runs_panel.ask_delete = lambda run: True
    window.runs_panel.delete(window.runs_panel.run(run_id))
    assert not model.exists() and window.runs_panel.model.runs == []


def test_ticked_runs_are_overlaid_one_curve_each(home, qtbot, window):
    ids = [fake_run(f"run {i}", steps=40, final=1.0 + i / 10) for i in range(3)]
    window.refresh_runs()
    model = window.runs_panel.model
    for run_id in ids[:2]:
        row = next(i for i, r in enumerate(model.runs) if r.id == run_id)
        model.setData(model.index(row, 0), Qt.CheckState.Checked.value, Qt.CheckStateRole)
    qtbot.waitUntil(lambda: len(window.plot.overlay_keys) == 2, timeout=10_000)
    assert window.plot.overlay_keys == ids[:2]
    train_item, val_item = window.plot.overlay_items()[0]
    x, y = train_item.getData()
    assert list(x) == list(range(1, 41)) and np.all(np.diff(y) < 0)  # the smoothed falling curve
    assert list(val_item.getData()[0]) == [5, 10, 15, 20, 25, 30, 35, 40]
    legend = [label.text for _sample, label in window.plot.plot.legend.items]
    assert "run 0" in legend and "run 1" in legend and "run 2" not in legend

    window.plot.set_x_axis("time")
    assert list(window.plot.overlay_items()[0][0].getData()[0]) == pytest.approx(
        [s * 0.1 for s in range(1, 41)]
    )
    window.runs_panel.clear.click()
    assert window.plot.overlay_keys == []


def test_long_curves_are_cut_to_bucket_means(qtbot, window):
    from charlstm_gui.views.plot import OVERLAY_POINTS, OverlayCurve

    n = 100_000
    step = np.arange(1, n + 1, dtype=float)
    cols = {"step": step, "chars": step * 64, "time": step / 100, "loss": 3.0 - step / n}
    val = {k: v[::1000] for k, v in cols.items()}
    window.plot.set_overlays([OverlayCurve(1, "long", cols, val)])
    x, y = window.plot.overlay_items()[0][0].getData()
    k = -(-n // OVERLAY_POINTS)  # points per bucket
    assert len(x) == -(-n // k) <= OVERLAY_POINTS and x[0] == pytest.approx((1 + k) / 2)
    assert y[-1] == pytest.approx(2.0, abs=0.01)


def test_compare_shows_only_the_settings_that_differ(home, qtbot, window):
    a = fake_run("a", lr=0.01, hidden=16)
    b = fake_run("b", lr=0.02, hidden=16)
    window.refresh_runs()
    window.compare_runs([a, b])
    dialog = window.compare_dialog
    assert dialog.keys == ["lr"]
    assert [dialog.table.item(0, j).text() for j in range(2)] == ["0.01", "0.02"]
    assert not dialog.note.isVisibleTo(dialog)  # the same validation: no warning
    dialog.close()


def test_compare_warns_when_the_runs_were_validated_on_different_characters(home, qtbot, window):
    a = fake_run("a", lr=0.01)
    b = fake_run("b", lr=0.02, text="other.txt")
    window.refresh_runs()
    window.compare_runs([a, b])
    dialog = window.compare_dialog
    assert dialog.keys == ["text", "lr"]
    assert dialog.note.isVisibleTo(dialog) and "(text differs)" in dialog.note.text()
    assert "not directly comparable" in dialog.note.text()
    dialog.close()
    assert validation_note(["lr", "val_fraction", "eval_max_chars"]).startswith(
        "These runs were validated on different characters (val_fraction, eval_max_chars differ)"
    )
    assert validation_note(["lr", "hidden_size", "seq_len"]) == ""


@pytest.fixture
def broken_home(home):
    home.mkdir()
    (home / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    return home


def test_a_broken_database_is_one_message_and_training_still_saves(
    broken_home, qtbot, window, tmp_path
):
    window.refresh_runs()
    assert "runs database" in window.runs_panel.note.text()
    assert window.runs_panel.note.isVisibleTo(window.runs_panel)
    problems = []
    window.ctl.runs_problem.connect(problems.append)
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=10_000):
        window.open_text(str(small_text(tmp_path / "t.txt")))
    window.form.set_values({**TINY, "duration": 8, "autosave_dir": str(tmp_path / "auto")})
    for _ in range(2):
        window.train_new()
        qtbot.waitUntil(lambda: window.ctl.state is State.IDLE, timeout=30_000)
        assert window.last_message is None and window.ctl.history.train.n == 8
    assert len(problems) == 1 and "not recorded" in problems[0]  # once, not once per run
    assert "not recorded" in window.runs_panel.note.text()  # stays in view, unlike the status bar
    with qtbot.waitSignal(window.ctl.saved, timeout=10_000):
        window.ctl.save_model(str(tmp_path / "saved.npz"))
    assert (tmp_path / "saved.npz").exists()


def test_the_x_axis_follows_the_view_menu_and_is_remembered(qtbot, window):
    a = window.actions
    a["x_time"].trigger()
    assert window.plot.x_axis == "time" and window.plot.x_combo.currentData() == "time"
    a["x_chars"].trigger()
    assert window.plot.x_axis == "chars" and not a["x_time"].isChecked()
    a["x_chars"].trigger()  # unticked: back to steps
    assert window.plot.x_axis == "step" and not a["x_chars"].isChecked()
    window.plot.x_combo.setCurrentIndex(2)
    assert a["x_time"].isChecked()
    window.save_settings()
    assert window.settings.value("plot/x_axis", "", type=str) == "time"


def test_the_context_menu_offers_open_overlay_rename_and_delete(qtbot, window, home):
    run_id = fake_run("menu")
    window.refresh_runs()
    panel = window.runs_panel
    panel.show()
    panel._context_menu(panel.table.visualRect(panel.proxy.index(0, 1)).center())
    actions = {a.text(): a for a in panel._menu.actions() if a.text()}
    assert list(actions) == ["&Open Model", "&Show Curve on the Plot", "&Rename…", "&Delete…"]
    assert not actions["&Open Model"].isEnabled()  # this run kept no model file
    actions["&Show Curve on the Plot"].trigger()
    assert panel.model.checked == [run_id]
    asked = []
    panel.ask_name = lambda run: asked.append(run.name)
    actions["&Rename…"].trigger()
    assert asked == ["menu"]
    panel._menu.close()


def test_opening_a_run_whose_model_file_is_gone_says_so(qtbot, window, tmp_path, home):
    run_id = fake_run("moved", model_path=str(tmp_path / "gone.npz"))
    window.refresh_runs()
    with qtbot.waitSignal(window.ctl.message, timeout=10_000):
        window.runs_panel.open_requested.emit(window.runs_panel.run(run_id))
    title, text = window.last_message
    assert "gone.npz" in text and window.ctl.model is None


def test_a_run_is_named_after_the_file_its_model_is_saved_to(home, qtbot, window, tmp_path):
    """Issue 20, point 6: runs of one text and size are told apart by their model files."""
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=10_000):
        window.open_text(str(small_text(tmp_path / "t.txt")))
    window.form.set_values({"duration": 6})
    for _ in range(2):  # two runs: both "t 1x16"
        window.train_new()
        qtbot.waitUntil(lambda: window.ctl.state is State.IDLE, timeout=30_000)
        window.ctl.files.set_dirty(False)  # no question before the next one
    names = [r.name for r in window.runs_panel.model.runs]
    assert names == ["t 1x16", "t 1x16"]
    window.ask_save_path = lambda: str(tmp_path / "A.npz")
    with qtbot.waitSignal(window.ctl.saved, timeout=10_000):
        window.actions["save_as"].trigger()  # File ▸ Save Model As…
    qtbot.waitUntil(lambda: window.runs_panel.model.runs[0].name == "A", timeout=5_000)
    newest, older = window.runs_panel.model.runs
    assert newest.model_path == str(tmp_path / "A.npz") and older.name == "t 1x16"
    row = {c.header: window.runs_panel.proxy.index(0, i).data() for i, c in enumerate(COLUMNS)}
    sort_desc = window.runs_panel.table.horizontalHeader().sortIndicatorOrder()
    assert sort_desc == Qt.SortOrder.DescendingOrder and row["Model file"] == "A.npz"
    assert row["Name"] == "A"
    # a name someone chose is kept; the file is still recorded
    window.ctl.rename_run(newest.id, "my best")
    window.ask_save_path = lambda: str(tmp_path / "B.npz")
    with qtbot.waitSignal(window.ctl.saved, timeout=10_000):
        window.actions["save_as"].trigger()
    qtbot.waitUntil(
        lambda: window.runs_panel.model.runs[0].model_path == str(tmp_path / "B.npz"),
        timeout=5_000,
    )
    assert window.runs_panel.model.runs[0].name == "my best"


def test_a_sweeps_runs_are_named_by_what_differs_in_short_names(home, qtbot, window, tmp_path):
    with qtbot.waitSignal(window.ctl.corpus_changed, timeout=10_000):
        window.open_text(str(small_text(tmp_path / "t.txt")))
    window.ask_open_best = lambda best, lines: False  # the question at the end
    configs = window.checked_configs()
    assert window.ctl.start_sweep(
        *configs, {"hidden_size": [8, 16], "lr": [0.01]}, unit="steps", budget=3,
        autosave_dir=str(tmp_path / "auto"),
    )  # fmt: skip
    qtbot.waitUntil(lambda: window.ctl.sweep.done, timeout=60_000)
    names = sorted(r.name for r in window.runs_panel.model.runs)
    assert names == ["hidden=16 lr=0.01", "hidden=8 lr=0.01"]
