"""What a Dask worker runs for a sweep: one point (``train_point``), the timing of the points
for ``--as-steps`` (``time_points``) and the check of the project's version (``version_probe``).

A point runs the project's own point function, ``charlstm_core.sweep.run.run_point``, as a
local sweep does, inside a scratch folder of the worker: the text arrives as bytes (scattered
once to every worker, checked against its SHA-256) and is written there, the point's model and
run store live there, and what comes back to the computer that started the sweep is a
``PointOutcome``: the point's result, its model file's bytes and its run record with curves
(``charlstm_core.runs.RunCopy``). Nothing needs a file system shared with that computer.

While the point trains it reports on the scheduler's event topic ``TOPIC`` (msgpack-able dicts,
each with the sweep's id, the point's index and this attempt's id; steps at most
``PROGRESS_EVERY_S`` apart, every evaluation, every checkpoint) and hands each autosave to the
scheduler as the value of a Dask ``Variable`` named for the point: when its worker dies, Dask
reschedules the task on another worker, which finds that checkpoint and continues from it
(``SweepSpec.resume``) instead of from step 0. It stops after the current step when the sweep's
Dask ``Event`` is set (Ctrl-C on the computer that started it) or when the scheduler cancelled
the task (the client went away).

Only the cluster runner (``charlstm_core.sweep.cluster``) submits these; importing this module
imports Dask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distributed import Event as DaskEvent
from distributed import Variable, get_client, get_worker
from distributed.worker import thread_state

from .. import __version__
from ..engine import parallel
from ..errors import CharLSTMError
from ..events import CheckpointEvent, EvalEvent, Event, StepEvent
from ..files.text import load_corpus
from ..runs import RunCopy, RunStore
from ..runs.records import HOST
from .calibration import Calibration, calibrate, device_timer
from .grid import PointResult, SweepPoint, point_file_name
from .run import SweepSpec, run_point, skipped_result

TOPIC = "charlstm-sweep"  # the scheduler's event topic every sweep reports on (one, bounded log)
PROGRESS_EVERY_S = 0.5  # a point's step reports are at least this far apart
CHECKPOINT_MAX_BYTES = 256 * 2**20  # a bigger autosave is not sent (a retry starts afresh)
STOP_POLL_S = 1.0  # how often a point asks whether the sweep was stopped
NEW_TASK_STATES = ("executing", "long-running", "resumed")  # the task is still wanted


@dataclass(frozen=True)
class PointJob:
    """What one point needs on a worker besides the text: picklable, small."""

    spec: SweepSpec  # the sweep's settings; its paths are the client's and are not used here
    point: SweepPoint
    sweep_id: str  # names the sweep's event messages, checkpoint variables and stop event
    text_name: str  # the text's file name (its fingerprint names it)
    text_sha256: str  # what the scattered bytes must hash to
    version: str  # charlstm_core.__version__ of the computer that started the sweep
    # BLAS threads of a point by host: the host's cores shared by the task threads of all its
    # workers (several workers may share one computer); a host not listed: this worker's
    # cores shared by its own threads
    threads_by_host: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class PointOutcome:
    """A point as it ended on a worker: its result (paths are the worker's scratch paths, run
    id None), its model file's bytes and its run record, and where and how it ran."""

    result: PointResult
    model: bytes | None  # the model file (None when none was saved)
    record: RunCopy | None  # the run and its curves (None when not recorded)
    host: str
    worker: str  # the worker's address
    attempt: str  # this attempt's id (a retried point has several)
    resumed_from: int  # the checkpoint step it continued from (0: from the start)


def failed_result(point: SweepPoint, why: str) -> PointResult:
    """The result of a point that failed before or around its training."""
    return dataclasses.replace(skipped_result(point, why), status="failed")


def checkpoint_name(sweep_id: str, index: int) -> str:
    """The Dask ``Variable`` holding point ``index``'s last autosave."""
    return f"charlstm-{sweep_id}-checkpoint-{index}"


def stop_name(sweep_id: str) -> str:
    """The Dask ``Event`` that, set, stops the sweep's points after their current step."""
    return f"charlstm-{sweep_id}-stop"


def version_probe() -> Callable[[], tuple[str, str | None, int]]:
    """A function for ``Client.run``: the worker's host name, this project's version there
    (None when the worker cannot import it) and the cores of its computer. Made here and nested
    so that Dask pickles it by value: a worker without the project can still run it and say
    so."""

    def probe() -> tuple[str, str | None, int]:
        import os
        import socket

        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 1
        try:
            import charlstm_core
        except ImportError:
            return socket.gethostname(), None, cores
        return socket.gethostname(), str(getattr(charlstm_core, "__version__", "unknown")), cores

    return probe


def version_mismatch(worker_version: str | None, client_version: str, where: str) -> str | None:
    """The sentence refusing a worker whose project differs from the client's (None if same)."""
    if worker_version == client_version:
        return None
    have = (
        "does not have CharLSTM Studio installed"
        if worker_version is None
        else f"has CharLSTM Studio {worker_version}"
    )
    return (
        f"The Dask worker {where} {have}; this computer has {client_version}. Install the same "
        f"version there (pip install 'charlstm[cluster]=={client_version}', or pip install -e "
        "'.[cluster]' in the same checkout) and restart that worker, or stop it."
    )


def _worker_threads(worker: Any, job: PointJob) -> int:
    """BLAS threads for one point on this worker (see ``PointJob.threads_by_host``)."""
    threads = job.threads_by_host.get(HOST)
    if threads is None:
        threads = parallel.usable_cores() // max(1, int(worker.state.nthreads))
    return max(1, threads)


def _scratch(worker: Any) -> str:
    root = getattr(worker, "local_directory", None) or tempfile.gettempdir()
    return tempfile.mkdtemp(prefix="charlstm-point-", dir=root)


def _load_text(folder: str, name: str, data: bytes, sha256: str, encoding: str | None) -> Any:
    """The scattered text, checked and loaded as a local sweep loads it (same name, so the
    same fingerprint)."""
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise CharLSTMError(
            f"The text {name} reached this worker damaged (SHA-256 {got[:12]}… instead of "
            f"{sha256[:12]}…). Run the sweep again."
        )
    path = os.path.join(folder, os.path.basename(name) or "text.txt")
    with open(path, "wb") as f:
        f.write(data)
    return load_corpus(path, encoding)


class _Reporter:
    """Turns the trainer's events into messages on ``TOPIC`` and sends each autosave to the
    point's checkpoint variable."""

    def __init__(self, worker: Any, client: Any, job: PointJob, attempt: str) -> None:
        self.worker, self.client, self.job = worker, client, job
        self.base = {
            "sweep": job.sweep_id,
            "index": job.point.index,
            "attempt": attempt,
            "host": HOST,
            "worker": worker.address,
        }
        self.last_sent = 0.0
        self.val: float | None = None
        self.too_big_said = False

    def send(self, kind: str, **fields: Any) -> None:
        with contextlib.suppress(Exception):  # a report lost never stops the training
            self.worker.log_event(TOPIC, {**self.base, "kind": kind, "time": time.time(), **fields})

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            now = time.monotonic()
            if now - self.last_sent >= PROGRESS_EVERY_S or event.step >= event.total_steps:
                self.last_sent = now
                self._step(event)
        elif isinstance(event, EvalEvent):
            self.val = float(event.val_loss)
            self.send("eval", step=event.step, val_loss=self.val, best=event.best_val_loss)
        elif isinstance(event, CheckpointEvent):
            self._checkpoint(event)

    def _step(self, e: StepEvent) -> None:
        self.send(
            "step",
            step=e.step,
            total=e.total_steps,
            loss=float(e.loss),
            cps=float(e.chars_per_sec),
            elapsed=float(e.elapsed_s),
            val=self.val,
        )

    def _checkpoint(self, event: CheckpointEvent) -> None:
        try:
            size = os.path.getsize(event.path)
            if size > CHECKPOINT_MAX_BYTES:
                if not self.too_big_said:
                    self.too_big_said = True
                    self.send("checkpoint-too-big", step=event.step, bytes=size)
                return
            with open(event.path, "rb") as f:
                data = f.read()
            name = checkpoint_name(self.job.sweep_id, self.job.point.index)
            Variable(name, client=self.client).set(data)
        except Exception:  # noqa: BLE001 - a checkpoint not sent costs a retry its progress only
            return
        self.send("checkpoint", step=event.step, bytes=len(data))


@contextlib.contextmanager
def _stop_watch(worker: Any, client: Any, key: Any, sweep_id: str):
    """A threading.Event set when the sweep's Dask event is set or this task is no longer
    wanted (cancelled, its client gone); a thread watches until the ``with`` ends."""
    stop, done = threading.Event(), threading.Event()
    dask_stop = DaskEvent(stop_name(sweep_id), client=client)

    def wanted() -> bool:
        ts = worker.state.tasks.get(key) if key is not None else None
        return ts is None or ts.state in NEW_TASK_STATES

    def watch() -> None:
        # a quick question every STOP_POLL_S rather than a long wait on the scheduler: nothing
        # of this point is left pending there once it ends
        while not done.wait(STOP_POLL_S):
            try:
                asked = dask_stop.is_set()
            except Exception:  # noqa: BLE001 - scheduler unreachable for a moment: look again
                asked = False
            if asked or not wanted():
                stop.set()
                return

    thread = threading.Thread(target=watch, name="charlstm-sweep-stop", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        done.set()  # the thread ends after its current wait; the point need not wait for it


def _last_checkpoint(client: Any, job: PointJob) -> bytes | None:
    """The autosave an earlier attempt of this point sent, if any."""
    try:
        # the client sets it (to None) before submitting the point: this never waits long
        data = Variable(checkpoint_name(job.sweep_id, job.point.index), client=client).get(
            timeout=30
        )
    except Exception:  # noqa: BLE001 - unreadable: start afresh
        return None
    return data if isinstance(data, bytes) and data else None


def train_point(job: PointJob, text: bytes) -> PointOutcome:
    """Run ``job``'s point on this worker (see the module docstring); never raises for a point
    that fails: its result says why."""
    import uuid

    from ..files.modelfile import load_model

    worker = get_worker()
    client = get_client()
    key = getattr(thread_state, "key", None)
    attempt = uuid.uuid4().hex[:8]
    report = _Reporter(worker, client, job, attempt)
    folder = _scratch(worker)
    resumed_from, model, record = 0, None, None
    try:
        if job.version != __version__:
            raise CharLSTMError(version_mismatch(__version__, job.version, worker.address) or "")
        corpus = _load_text(folder, job.text_name, text, job.text_sha256, job.spec.encoding)
        out_dir = os.path.join(folder, "out")
        os.makedirs(out_dir)
        earlier = _last_checkpoint(client, job)
        if earlier is not None:
            path = os.path.join(out_dir, point_file_name(job.point))
            with open(path, "wb") as f:
                f.write(earlier)
            with contextlib.suppress(CharLSTMError, OSError):
                train = load_model(path).train
                resumed_from = train.step if train is not None else 0
        spec = dataclasses.replace(
            job.spec,
            text_path=corpus.path or "",
            out_dir=out_dir,
            runs_db=None if job.spec.runs_db is None else os.path.join(folder, "runs.sqlite"),
            resume=earlier is not None,
        )
        report.send("start", resumed_from=resumed_from, started=time.time())
        parallel.set_blas_threads(_worker_threads(worker, job))
        with _stop_watch(worker, client, key, job.sweep_id) as stop:
            result = run_point(spec, job.point, corpus=corpus, on_event=report, stop=stop)
        if result.model_path is not None:
            with open(result.model_path, "rb") as f:
                model = f.read()
        if result.run_id is not None and spec.runs_db is not None:
            with RunStore.open(spec.runs_db) as store:
                record = store.export_run(result.run_id)
    except Exception as e:  # noqa: BLE001 - the point fails, the sweep goes on
        why = str(e) if isinstance(e, CharLSTMError) else f"unexpected {type(e).__name__}: {e}"
        result = failed_result(job.point, why)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result = dataclasses.replace(result, host=HOST)
    report.send("end", status=result.status)
    return PointOutcome(result, model, record, HOST, worker.address, attempt, resumed_from)


def time_points(
    job: PointJob, points: list[SweepPoint], text: bytes, minutes: float
) -> tuple[list[Calibration], str, int]:
    """``--as-steps`` on the worker that will train: each point timed here (as
    ``charlstm_core.sweep.calibrate``, at the BLAS threads a point gets on this worker) and given
    the steps that fit in ``minutes``. Returns the calibrations, this host and those threads."""
    worker = get_worker()
    threads = _worker_threads(worker, job)
    folder = _scratch(worker)
    try:
        corpus = _load_text(folder, job.text_name, text, job.text_sha256, job.spec.encoding)
        with parallel.blas_thread_count(threads):
            cals = calibrate(
                points, job.spec.base_model, job.spec.base_train, corpus, minutes,
                threads=threads, timer=device_timer(job.spec.device),
            )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return cals, HOST, threads
