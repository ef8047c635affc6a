"""Sweeps on a Dask cluster in the app, against a real local cluster (tests/dask_cluster.py):
the dialog's Connect button lists the workers, the controller runs a sweep there and records its
runs here with their host, Cancel Sweep keeps what ended, and the Runs table shows each run's
host."""

from __future__ import annotations

import pytest
from charlstm_core import __version__
from charlstm_core.files.text import load_corpus
from charlstm_core.runs import RunStore, default_db_path
from charlstm_core.runs.records import HOST
from PySide6.QtCore import Qt

from charlstm_gui.controller.controller import Controller
from charlstm_gui.views.runs_table import COLUMNS
from charlstm_gui.views.sweep_dialog import SweepDialog, jobs_sweep_state

from .helpers import small_text
from .test_sweep_dialog import configs

pytest.importorskip("distributed", reason="needs the [cluster] extra")
from dask_cluster import local_cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as lc:
        yield lc


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARLSTM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def ctl(qtbot):
    c = Controller()
    yield c
    assert c.shutdown(60_000)


def test_connect_lists_the_workers_their_cores_and_memory(qtbot, ctl, cluster):
    dialog = SweepDialog(
        {"lr": 0.004, "hidden_size": 16},
        check_cluster=ctl.check_cluster,
        cluster_address=cluster.scheduler_address,
    )
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.connect_button.isVisible()  # this computer, until the cluster is chosen
    qtbot.mouseClick(dialog.on_cluster, Qt.MouseButton.LeftButton)
    assert dialog.connect_button.isVisible()
    qtbot.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.workers.rowCount() == 2, timeout=60_000)
    rows = [
        [dialog.workers.item(i, j).text() for j in range(dialog.workers.columnCount())]
        for i in range(2)
    ]
    for host, address, cores, memory, gpu, version in rows:
        assert host == HOST and address.startswith("tcp://127.0.0.1:")
        assert cores == "1" and memory.endswith(" GB") and gpu == "—" and version == __version__
    assert "2 worker(s), 2 at once: ready." in dialog.cluster_note.text()
    dialog.set_grid({"lr": "2e-3, 8e-3"}, "steps", 10)
    spec = dialog.spec()
    assert spec.cluster == cluster.scheduler_address
    assert dialog.buttons.buttons()[0].isEnabled()


def test_connect_to_an_address_where_no_scheduler_runs_says_so(qtbot, ctl):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dialog = SweepDialog({"lr": 0.004}, check_cluster=ctl.check_cluster)
    qtbot.addWidget(dialog)
    dialog.on_cluster.setChecked(True)
    dialog.address.setText(f"tcp://127.0.0.1:{port}")
    qtbot.mouseClick(dialog.connect_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.connect_button.isEnabled(), timeout=30_000)
    assert "Cannot reach the Dask scheduler" in dialog.cluster_note.text()
    assert dialog.workers.rowCount() == 0


def test_the_controller_runs_a_sweep_on_the_cluster_and_records_it_here(
    qtbot, ctl, cluster, tmp_path, home
):
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    ended, changed = [], []
    ctl.sweep_finished.connect(ended.append)
    ctl.sweep_changed.connect(lambda s: changed.append(jobs_sweep_state(s)))
    grid = {"lr": [0.003, 0.03], "hidden_size": [8, 16]}
    assert ctl.start_sweep(
        *configs(ctl.corpus), grid, unit="steps", budget=8,
        autosave_dir=str(tmp_path / "auto"), cluster=cluster.scheduler_address,
    )  # fmt: skip
    assert ctl.sweeping and not ctl.training  # the app's own trainer stays free
    qtbot.waitUntil(lambda: bool(ended), timeout=120_000)
    sweep = ended[0]
    assert [p.status for p in sweep.points] == ["finished"] * 4
    assert any("Sweep on the cluster:" in text for text in changed)
    assert sweep.best is not None
    with RunStore.open(default_db_path()) as store:
        runs = {r.id: r for r in store.list_runs()}
    assert len(runs) == 4
    for p in sweep.points:
        run = runs[p.run_id]
        assert run.host == HOST == p.host and run.sweep == sweep.label and run.steps == 8
        assert (
            run.model_path == p.model_path
            and (tmp_path / "auto") in __import__("pathlib").Path(p.model_path).parents
        )


def test_cancel_sweep_on_the_cluster_keeps_what_ended(qtbot, ctl, cluster, tmp_path, home):
    ctl.corpus = load_corpus(str(small_text(tmp_path / "t.txt")))
    ended = []
    ctl.sweep_finished.connect(ended.append)
    grid = {"lr": [0.003, 0.01, 0.03]}
    mc, tc = configs(ctl.corpus)
    assert ctl.start_sweep(
        mc, tc, grid, unit="steps", budget=1_000_000, autosave_dir=str(tmp_path / "auto"),
        cluster=cluster.scheduler_address,
    )  # fmt: skip
    qtbot.waitUntil(
        lambda: sum("step" in p.progress for p in ctl.sweep.points) == 2, timeout=60_000
    )
    ctl.cancel_sweep()
    qtbot.waitUntil(lambda: bool(ended), timeout=120_000)
    statuses = sorted(p.status for p in ended[0].points)
    assert statuses == ["skipped", "stopped", "stopped"] and ended[0].cancelled
    with RunStore.open(default_db_path()) as store:
        assert sorted(r.status for r in store.list_runs()) == ["stopped", "stopped"]


def test_the_runs_table_shows_each_runs_host():
    assert "Host" in [c.header for c in COLUMNS]
    host = next(c for c in COLUMNS if c.header == "Host")

    class R:
        host = "lab-server"

    assert host.text(R()) == "lab-server"
