"""The app's sweep with several runs at once on this computer ("This computer, N at once"): the
command line's process pool, run off the GUI thread; the runs recorded and ranked as for the
app's own sweep, Cancel keeping what ended. Needs no Dask."""

from __future__ import annotations

from charlstm_core.files.text import load_corpus
from charlstm_core.runs import RunStore, default_db_path
from charlstm_core.runs.records import HOST

from charlstm_gui.controller.controller import Controller
from charlstm_gui.views.sweep_dialog import SweepDialog, jobs_sweep_state

from .helpers import small_text
from .test_sweep_dialog import configs, home  # noqa: F401 - the fixture


def test_two_at_once_here_records_every_run(qtbot, tmp_path, home):  # noqa: F811
    ctl = Controller()
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    ended, states = [], []
    ctl.sweep_finished.connect(ended.append)
    ctl.sweep_changed.connect(lambda s: states.append(jobs_sweep_state(s)))
    grid = {"lr": [0.003, 0.03], "hidden_size": [8, 16]}
    assert ctl.start_sweep(*configs(ctl.corpus), grid, unit="steps", budget=8,
                           autosave_dir=str(tmp_path / "auto"), jobs=2)  # fmt: skip
    assert ctl.sweeping and not ctl.training  # the app's own trainer stays free
    qtbot.waitUntil(lambda: bool(ended), timeout=120_000)
    assert ctl.shutdown(30_000)
    sweep = ended[0]
    assert [p.status for p in sweep.points] == ["finished"] * 4 and sweep.best is not None
    assert any(s.startswith("Sweep here, 2 at once: ") for s in states)
    with RunStore.open(default_db_path()) as store:
        runs = {r.id: r for r in store.list_runs()}
    assert len(runs) == 4
    for p in sweep.points:
        run = runs[p.run_id]
        assert run.steps == 8 and run.sweep == sweep.label and run.host == HOST
        assert run.model_path == p.model_path and str(tmp_path / "auto") in p.model_path


def test_the_dialog_offers_several_at_once_here(qtbot):
    dialog = SweepDialog({"lr": 0.004})
    qtbot.addWidget(dialog)
    dialog.set_grid({"lr": "2e-3, 4e-3, 8e-3, 1.6e-2"}, "minutes", 2)
    assert dialog.spec().jobs == 1 and "about 8 minutes in all" in dialog.summary.text()
    dialog.jobs.setMaximum(4)
    dialog.jobs.setValue(2)
    assert dialog.spec().jobs == 2 and "about 4 minutes in all" in dialog.summary.text()
    assert not dialog.on_cluster.isVisible()  # no cluster choice without a way to check one
