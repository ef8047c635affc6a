"""Sweeps on a Dask cluster, against a real local cluster: a scheduler and two worker processes
(one thread each) bound to 127.0.0.1, the dashboard off; tiny texts and models so that each test
ends in seconds. Every cluster is closed by its fixture, which then checks that no process of it
is left. Without Dask installed (no ``[cluster]`` extra) only the tests that need none run.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from charlstm_core import sweep
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.runs import RunStore
from charlstm_core.runs.records import HOST
from dask_cluster import local_cluster
from helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
BASE_MODEL = ModelConfig(vocab_size=1, hidden_size=16)
BASE_TRAIN = TrainConfig(
    seq_len=16, batch_size=4, steps=40, eval_every=20, sample_every=0, checkpoint_every=0
)
TINY = ["--hidden", "16", "--seq-len", "16", "--batch-size", "4", "--eval-every", "20"]
GRID = ["--grid", "lr=2e-3,8e-3", "--grid", "hidden=16,24"]
BOUND_S = 120  # no test here waits longer than this for a sweep or a process

distributed = pytest.importorskip("distributed", reason="needs the [cluster] extra")
from charlstm_core.errors import ClusterError  # noqa: E402
from charlstm_core.sweep import cluster as csweep  # noqa: E402 - imports Dask
from charlstm_core.sweep import cluster_workers  # noqa: E402


@pytest.fixture
def cluster():
    """A LocalCluster of 2 one-thread worker processes on 127.0.0.1 (tests/dask_cluster.py)."""
    with local_cluster() as lc:
        yield lc


@pytest.fixture
def client(cluster):
    c = distributed.Client(cluster.scheduler_address, set_as_default=False)
    try:
        yield c
    finally:
        c.close()


def spec_for(text: Path, **train) -> sweep.SweepSpec:
    return sweep.SweepSpec(
        text_path=str(text),
        encoding=None,
        base_model=BASE_MODEL,
        base_train=dataclasses.replace(BASE_TRAIN, **train),
        out_dir=str(text.parent / "out"),
        runs_db=str(text.parent / "runs.sqlite"),
        sweep_label="cluster test",
    )


def four_points(train: TrainConfig = BASE_TRAIN) -> list[sweep.SweepPoint]:
    axes = sweep.parse_grid(["lr=2e-3,8e-3", "hidden_size=16,24"])
    return sweep.grid_points(axes, BASE_MODEL, train)


def run_all(runner, on_event=None, bound_s: float = BOUND_S) -> list:
    """Every event of ``runner.run()``; stops the sweep (and fails) past ``bound_s``."""
    events, start = [], time.monotonic()
    for e in runner.run():
        events.append(e)
        if on_event is not None:
            on_event(e)
        if time.monotonic() - start > bound_s:
            runner.stop_now()
            pytest.fail(f"the sweep was still running after {bound_s} s")
    return events


def ended(events) -> dict[int, object]:
    out = {}
    for e in events:
        if type(e).__name__ == "PointEnded":
            assert e.result.index not in out, "a point ended twice"
            out[e.result.index] = e
    return out


# ---------------------------------------------------------------------------------------------
# Without a cluster


def test_a_local_sweep_and_the_parser_never_import_dask(text, tmp_path):
    code = (
        "import sys\n"
        "import charlstm_core.cli.parser as p\n"
        "assert 'dask' not in sys.modules and 'distributed' not in sys.modules, 'parser'\n"
        f"rc = p.main(['sweep', {str(text)!r}, '--grid', 'lr=2e-3,4e-3', '--steps', '4', "
        f"'--seq-len', '16', '--batch-size', '4', '--hidden', '8', '--out-dir', "
        f"{str(tmp_path / 'o')!r}, '-q'])\n"
        "assert rc == 0, rc\n"
        "assert 'dask' not in sys.modules and 'distributed' not in sys.modules, 'sweep'\n"
    )
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND_S, env=env
    )
    assert done.returncode == 0, done.stderr


def test_without_dask_scheduler_says_how_to_install_it(text, tmp_path):
    """A Python where ``distributed`` cannot be imported (hidden by a meta-path finder)."""
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'distributed'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from charlstm_core.cli import main\n"
        f"sys.exit(main(['sweep', {str(text)!r}, '--grid', 'lr=2e-3,4e-3', '--steps', '4', "
        f"'--scheduler', 'tcp://127.0.0.1:9', '--out-dir', {str(tmp_path / 'o')!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=BOUND_S
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'charlstm[cluster]'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_is_one_clear_line(capsys, text):
    port = _free_port()  # nothing listens there
    code, out, err = run_cli(
        capsys,
        "sweep",
        text,
        *GRID,
        "--steps",
        "4",
        *TINY,
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
    )
    assert code == 1
    assert err.startswith(
        f"charlstm: error: Cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    )
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert not (text.parent / "words-sweep").exists()


def test_an_address_that_is_not_a_scheduler_is_one_clear_line(capsys, text):
    """Something else answers on the port (here: a server that sends nonsense and hangs up)."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def answer():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + b"\xff" * 64)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        code, out, err = run_cli(
            capsys, "sweep", text, *GRID, "--steps", "4", *TINY,
            "--scheduler", f"tcp://127.0.0.1:{port}",
        )  # fmt: skip
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert code == 1
    assert "Cannot reach the Dask scheduler" in err and len(err.strip().splitlines()) == 1


def test_a_failed_connection_leaves_no_client_for_the_collector():
    """A Client that failed to start, left as cyclic garbage, closes from its __del__ wherever a
    collection runs: inside the next cluster's start that deadlocked the suite. None is left."""
    gc.collect()
    before = sum(isinstance(o, distributed.Client) for o in gc.get_objects())
    gc.disable()  # so that only connect() may collect
    try:
        with pytest.raises(ClusterError, match="Cannot reach the Dask scheduler"):
            cluster_workers.connect(f"tcp://127.0.0.1:{_free_port()}", timeout_s=1.0)
        left = sum(isinstance(o, distributed.Client) for o in gc.get_objects())
    finally:
        gc.enable()
    assert left == before


# ---------------------------------------------------------------------------------------------
# On a real local cluster


def test_a_2x2_sweep_runs_on_the_cluster_and_its_runs_are_recorded_here(capsys, cluster, text):
    db = text.parent / "runs.sqlite"
    code, out, err = run_cli(
        capsys, "sweep", text, *GRID, "--steps", "40", *TINY, "--out-dir", "out",
        "--runs-db", db, "--scheduler", cluster.scheduler_address,
    )  # fmt: skip
    assert code == 0, err
    assert "2 workers, 2 cores" in err
    header = out.splitlines()[0].split()
    assert header[-1] == "host" and out.count("finished") == 4
    with RunStore.open(db) as store:
        runs = store.list_runs()
        curves = store.curves([r.id for r in runs])
    assert sorted(r.name for r in runs) == sorted(
        f"lr={lr} hidden={h}" for lr in ("0.002", "0.008") for h in (16, 24)
    )
    for r in runs:
        assert r.status == "finished" and r.steps == 40 and r.source == "sweep"
        assert r.host == HOST and r.pid != os.getpid()  # trained by a worker process
        assert r.model_path and Path(r.model_path).parent == text.parent / "out"
        assert Path(r.model_path).is_file()
        assert len(curves[r.id].train) == 40 and len(curves[r.id].val) == 2
    # the same points trained here give the same losses: the worker ran the same code
    (text.parent / "here").mkdir()
    here = dataclasses.replace(spec_for(text), out_dir=str(text.parent / "here"), runs_db=None)
    local = sweep.run_point(here, four_points()[3])
    mine = next(r for r in runs if r.name == "lr=0.008 hidden=24")
    assert mine.best_val_loss == local.best_val_loss


def test_the_text_can_be_deleted_once_the_sweep_has_started(client, text):
    """Workers need no shared file system: the text travels to them, once."""
    spec = spec_for(text)
    runner = csweep.ClusterSweep(client, spec, four_points())
    gone = []

    def delete(e):
        if type(e).__name__ == "PointStarted" and not gone:
            text.unlink()
            gone.append(True)

    events = run_all(runner, delete)
    assert gone and not text.exists()
    results = {i: e.result for i, e in ended(events).items()}
    assert sorted(results) == [0, 1, 2, 3]
    assert all(r.status == "finished" and r.run_id is not None for r in results.values())
    with RunStore.open(spec.runs_db) as store:
        assert len(store.list_runs()) == 4


def test_a_worker_killed_mid_point_costs_only_its_progress(client, text):
    """The point is retried on another worker from the checkpoint that had come back; the sweep
    completes, each point recorded once, the retried one as if it had never stopped."""
    train = dataclasses.replace(BASE_TRAIN, steps=1500, eval_every=500, checkpoint_every=100)
    spec = spec_for(text, steps=1500, eval_every=500, checkpoint_every=100)
    runner = csweep.ClusterSweep(client, spec, four_points(train))
    where: dict[int, str] = {}
    killed: list[int] = []

    def kill(e):
        kind = type(e).__name__
        if kind == "PointStarted":
            where[e.point.index] = e.worker
        elif kind == "PointCheckpoint" and not killed:
            pid = client.run(os.getpid, workers=[where[e.point.index]])[where[e.point.index]]
            os.kill(pid, signal.SIGKILL)
            killed.append(e.point.index)

    events = run_all(runner, kill)
    assert killed
    done = ended(events)
    assert sorted(done) == [0, 1, 2, 3]
    assert all(e.result.status == "finished" and e.result.steps == 1500 for e in done.values())
    retried = done[killed[0]]
    assert retried.retries == 1
    assert "continued from its checkpoint at step" in retried.result.message
    assert sum(e.retries for e in done.values()) == 1
    with RunStore.open(spec.runs_db) as store:
        runs = store.list_runs()
        assert len(runs) == 4  # each point recorded once
        run = store.get(retried.result.run_id)
        curve = store.curves([run.id])[run.id].train
    assert run.start_step == 0 and "retried 1 time" in run.message
    assert curve.step[0] == 1 and curve.step[-1] == 1500 and len(curve) == 1500
    # resumed exactly: the same losses as the point trained without a stop, here
    (text.parent / "local").mkdir()
    local = sweep.run_point(
        dataclasses.replace(spec, out_dir=str(text.parent / "local"), runs_db=None),
        four_points(train)[killed[0]],
    )
    assert retried.result.best_val_loss == local.best_val_loss
    assert retried.result.final_val_loss == local.final_val_loss


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_the_points_keeps_what_ended_and_leaves_the_cluster_running(
    client, cluster, text, signum, status
):
    """In a real ``charlstm sweep`` process: SIGINT (or SIGTERM) while points train."""
    db = text.parent / "runs.sqlite"
    argv = [
        sys.executable, "-m", "charlstm_core", "sweep", str(text), "--grid", "lr=2e-3,4e-3,8e-3",
        "--steps", "200000", *TINY, "--out-dir", str(text.parent / "out"), "--runs-db", str(db),
        "--scheduler", cluster.scheduler_address,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines, deadline = [], time.monotonic() + BOUND_S
        while sum("training on" in line for line in lines) < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
        assert sum("training on" in line for line in lines) == 2, "".join(lines)
        time.sleep(0.5)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=BOUND_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, err
    assert "Traceback" not in err and "the cluster goes on running" in err
    statuses = [line.split()[2] for line in out.splitlines()[1:4]]
    assert sorted(statuses) == ["skipped", "stopped", "stopped"], out
    with RunStore.open(db) as store:
        runs = store.list_runs()
    assert sorted(r.status for r in runs) == ["stopped", "stopped"]
    assert all(0 < r.steps < 200_000 and Path(r.model_path).is_file() for r in runs)
    # the cluster is still there, with nothing of the sweep left running on it
    assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
    deadline = time.monotonic() + 30
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(client.processing().values())


def test_cancelled_at_once_a_point_keeps_its_newest_autosave_here(client, text):
    """``stop_now`` (a second Ctrl-C) cancels the points training; each one's newest autosave,
    held by the scheduler, is copied into its model file here."""
    from charlstm_core.files.modelfile import load_model

    train = dataclasses.replace(BASE_TRAIN, steps=200_000, eval_every=0, checkpoint_every=50)
    spec = dataclasses.replace(spec_for(text), base_train=train, runs_db=None)
    runner = csweep.ClusterSweep(client, spec, four_points(train)[:2])
    saved: dict[int, int] = {}

    def cancel(e):
        if type(e).__name__ == "PointCheckpoint":
            saved[e.point.index] = max(saved.get(e.point.index, 0), e.step)
            if len(saved) == 2 and min(saved.values()) >= 100:
                runner.stop_now()

    events = run_all(runner, cancel)
    done = ended(events)
    assert sorted(done) == [0, 1]
    for e in done.values():
        r = e.result
        assert r.status == "stopped" and "cancelled" in r.message
        assert r.steps >= 100 and r.steps % 50 == 0 and r.host == HOST
        assert load_model(r.model_path).train.step == r.steps


def _set_version(version):
    import charlstm_core

    charlstm_core.__version__ = version


def _hide_the_project():
    """This worker process can no longer import charlstm_core (as if it were not installed)."""

    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "charlstm_core":
                raise ModuleNotFoundError(f"No module named {name!r}")

    for name in [n for n in sys.modules if n.split(".")[0] == "charlstm_core"]:
        del sys.modules[name]
    sys.meta_path.insert(0, Hide())


def test_a_worker_with_another_version_or_without_the_project_is_refused(
    capsys, client, cluster, text
):
    a, b = sorted(client.scheduler_info(n_workers=-1)["workers"])
    client.run(_set_version, "0.0.9", workers=[a])
    client.run(_hide_the_project, workers=[b])
    code, out, err = run_cli(
        capsys, "sweep", text, *GRID, "--steps", "4", *TINY, "--scheduler",
        cluster.scheduler_address, "--out-dir", "out",
    )  # fmt: skip
    from charlstm_core import __version__

    assert code == 1 and out == ""
    assert f"The Dask worker {a} ({HOST}) has CharLSTM Studio 0.0.9; this computer has " \
        f"{__version__}" in err  # fmt: skip
    assert f"The Dask worker {b} ({HOST}) does not have CharLSTM Studio installed" in err
    assert not (text.parent / "out").exists()


def test_gpu_points_ask_for_a_worker_with_a_gpu(capsys, cluster, text):
    """No worker offers the GPU resource: refused before anything trains."""
    code, out, err = run_cli(
        capsys, "sweep", text, *GRID, "--steps", "4", *TINY, "--scheduler",
        cluster.scheduler_address, "--device", "gpu",
    )  # fmt: skip
    assert code == 1
    assert "No worker of the Dask scheduler" in err and "--resources GPU=1" in err


def test_gpu_points_go_only_to_workers_with_the_gpu_resource(client, cluster, text):
    """A third worker started as `dask worker ADDRESS --resources GPU=1` takes every point (on
    this machine without CUDA each fails, saying why, on that worker)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
         "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard", "--resources", "GPU=1",
         "--name", "gpu-worker"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client.wait_for_workers(3, timeout=60)
        gpu = next(
            a for a, w in client.scheduler_info(n_workers=-1)["workers"].items()
            if w.get("resources", {}).get("GPU")
        )  # fmt: skip
        spec = dataclasses.replace(spec_for(text), device="gpu")
        runner = csweep.ClusterSweep(client, spec, four_points()[:2])
        events = run_all(runner)
        starts = [e for e in events if type(e).__name__ == "PointStarted"]
        assert [e.worker for e in starts] == [gpu, gpu]
        for e in ended(events).values():
            assert e.result.status == "failed" and "GPU" in e.result.message
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_as_steps_times_the_points_on_a_worker(capsys, cluster, text):
    code, out, err = run_cli(
        capsys, "sweep", text, "--grid", "hidden=16,24", "--minutes", "0.02", "--as-steps",
        *TINY, "--scheduler", cluster.scheduler_address, "--out-dir", "out",
    )  # fmt: skip
    assert code == 0, err
    assert "timing 2 point(s) on a worker" in err
    from charlstm_core.engine.parallel import usable_cores

    threads = max(1, usable_cores() // 2)  # two one-thread workers share this computer's cores
    assert f"a step on {HOST} ({threads} BLAS thread" in err
    steps = [int(line.split()[5].replace(",", "")) for line in out.splitlines()[1:3]]
    assert all(s >= 1 for s in steps)


def test_workers_are_listed_with_their_cores_memory_and_version(client, cluster):
    from charlstm_core import __version__

    c = csweep.connect(cluster.scheduler_address)
    try:
        workers = csweep.list_workers(c)
    finally:
        c.close()
    assert len(workers) == 2
    for w in workers:
        assert w.threads == 1 and w.memory_bytes > 0 and w.version == __version__
        assert w.host == HOST and w.address.startswith("tcp://127.0.0.1:")
    assert csweep.describe_workers(workers).startswith("2 workers, 2 cores, ")


@pytest.fixture
def tls_files(tmp_path):
    """A self-signed certificate for 127.0.0.1 and its key (made with openssl)."""
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


def test_a_tls_scheduler_is_reached_with_dasks_own_tls_settings(capsys, text, tls_files):
    import dask
    from distributed.security import Security

    cert, key = tls_files
    security = Security(
        tls_ca_file=cert, tls_client_cert=cert, tls_client_key=key,
        tls_scheduler_cert=cert, tls_scheduler_key=key, tls_worker_cert=cert,
        tls_worker_key=key, require_encryption=True,
    )  # fmt: skip
    with local_cluster(n_workers=1, protocol="tls://", security=security) as lc:
        address = lc.scheduler_address
        assert address.startswith("tls://")
        argv = ["sweep", text, "--grid", "lr=2e-3,8e-3", "--steps", "10", *TINY,
                "--scheduler", address, "--out-dir", "out"]  # fmt: skip
        code, out, err = run_cli(capsys, *argv)  # no TLS settings: one line saying so
        assert code == 1 and "needs Dask's TLS settings" in err
        assert len(err.strip().splitlines()) == 1
        tls = {
            "distributed.comm.tls.ca-file": cert,
            "distributed.comm.tls.client.cert": cert,
            "distributed.comm.tls.client.key": key,
        }
        with dask.config.set(tls):
            code, out, err = run_cli(capsys, *argv)
        assert code == 0, err
        assert out.count("finished") == 2


def test_a_points_blas_threads_share_its_computers_cores_among_all_its_workers():
    def w(host, threads, cores):
        return csweep.WorkerInfo(f"tcp://{host}:1", host, host, threads, 0, {}, "1", cores)

    workers = [w("a", 1, 2), w("a", 1, 2), w("b", 2, 16), w("c", 4, 2), w("d", 1, 0)]
    assert csweep.blas_threads_by_host(workers) == {"a": 1, "b": 8, "c": 1}
