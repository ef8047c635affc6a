"""Running a sweep on a Dask cluster (``charlstm sweep --scheduler ADDRESS``, the app's "Run on:
a Dask cluster").

``connect``, ``list_workers`` and ``check_workers`` (``charlstm_core.sweep.cluster_workers``,
re-exported here) reach the scheduler and refuse a cluster a sweep cannot use; ``ClusterSweep``
then runs the points:

- the text is read once here and scattered to every worker (``broadcast``), so a worker needs no
  shared file system and the file may even be deleted once the sweep has started;
- each point is one task, ``cluster_task.train_point``, which runs the same point function as a
  local sweep; a point with a GPU device asks for a worker resource ``GPU`` (workers started
  with ``--resources GPU=1``);
- the worker reports steps, evaluations and checkpoints on the scheduler's event topic; each
  autosave is kept by the scheduler (a Dask ``Variable`` per point) and copied here, into the
  point's model file, at most every ``COPY_EVERY_S``. A worker that dies costs only its point's
  progress since that autosave: Dask reschedules the task on another worker (up to
  ``distributed.scheduler.allowed-failures`` times), which continues from it;
- when a point ends, its model file and run record come back: the model into ``out_dir``
  through the project's guarded writer, the run into the local run store (``import_run``),
  marked with the worker's host and with its retries noted;
- ``stop`` (Ctrl-C here) sets the sweep's Dask ``Event``: points training stop after their
  current step and come back "stopped", waiting ones are cancelled ("skipped"); ``stop_now``
  (a second Ctrl-C) cancels everything at once. The cluster itself is never shut down.

``run`` is a generator of small frozen records (``PointStarted``, ``PointProgress``,
``PointCheckpoint``, ``PointEnded``): the command line prints them, the app turns them into
signals. Dask is imported only by these modules' functions and by ``cluster_task``, only when a
cluster is used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import CharLSTMError, ClusterError
from ..files.modelfile import ModelFile, load_model, save_model
from ..runs import Curve, Curves, RunCopy, RunStore
from .calibration import Calibration
from .cluster_workers import (  # noqa: F401 - the cluster's API in one place for its callers
    CONNECT_TIMEOUT_S,
    INSTALL_HINT,
    WorkerInfo,
    blas_threads_by_host,
    check_workers,
    connect,
    dask_available,
    describe_workers,
    list_workers,
)
from .grid import PointResult, SweepPoint, point_file_name
from .run import NOT_STARTED, SweepSpec, skipped_result

STOP_GRACE_S = 60.0  # after a stop, how long points in progress have to come back "stopped"
# A point's autosaves all go to the scheduler (where a retry finds the newest) and are copied
# here, into its model file, at most this often, and once more if it ends without its final
# model: a local copy for a sweep cut short, without copying every autosave of a point that
# will soon send its final model anyway (benchmarks/bench_cluster.py: copying each one cost
# 2% of a sweep's wall on one 2-core machine).
COPY_EVERY_S = 60.0
POLL_S = 0.1  # how often the sweep looks at its futures and reports


# ---------------------------------------------------------------------------------------------
# What a cluster sweep reports


@dataclass(frozen=True)
class PointStarted:
    """A point began (or began again, ``attempt`` > 1) on a worker."""

    point: SweepPoint
    host: str
    worker: str
    attempt: int  # 1 for the first, 2 for its first retry, ...
    resumed_from: int  # the checkpoint step it continues from (0: from the start)


@dataclass(frozen=True)
class PointProgress:
    """A point's latest step, as its worker reported it."""

    point: SweepPoint
    host: str
    step: int
    total_steps: int
    loss: float  # nats per character, this step's batch
    chars_per_sec: float
    val_loss: float | None  # the latest validation loss


@dataclass(frozen=True)
class PointCheckpoint:
    """A point autosaved: the scheduler holds it (a retry continues from it)."""

    point: SweepPoint
    step: int
    path: str | None  # where it was copied here, if it was (at most every COPY_EVERY_S)


@dataclass(frozen=True)
class PointEnded:
    """A point ended; its model and run (if any) are on this computer."""

    result: PointResult  # run_id and model_path are this computer's
    retries: int  # how often it started again on another worker


ClusterEvent = PointStarted | PointProgress | PointCheckpoint | PointEnded


@dataclass
class _Attempt:
    host: str
    worker: str
    started: float
    resumed_from: int
    last_step: int = 0


@dataclass
class _Point:
    point: SweepPoint
    future: Any = None
    attempts: dict[str, _Attempt] = dataclasses.field(default_factory=dict)
    checkpoint_step: int = 0  # the step of the autosave copied into its model file here
    newest_checkpoint: int = 0  # the step of the newest autosave the scheduler holds
    copied_at: float = -math.inf  # when an autosave was last copied here (time.monotonic)
    ended: bool = False


class ClusterSweep:
    """One sweep on the cluster of ``client`` (see the module docstring).

    ``spec`` is as for a local sweep (its ``out_dir`` and ``runs_db`` are this computer's); its
    ``text_path`` is read here, once, before anything is sent, unless the text's bytes and file
    name are given (``text``, ``text_name``: the app's built-in text has no file). ``workers``
    (``list_workers``) sets each point's BLAS threads from its host's cores and workers.
    """

    def __init__(
        self,
        client: Any,
        spec: SweepSpec,
        points: list[SweepPoint],
        *,
        text: bytes | None = None,
        text_name: str | None = None,
        workers: list[WorkerInfo] | None = None,
    ) -> None:
        self.client = client
        self.spec = spec
        self.threads_by_host = blas_threads_by_host(workers or [])
        self.points = list(points)
        self.sweep_id = uuid.uuid4().hex[:12]
        self.text = Path(spec.text_path).read_bytes() if text is None else text
        self.text_name = text_name or os.path.basename(spec.text_path)
        import hashlib

        self.text_sha256 = hashlib.sha256(self.text).hexdigest()
        self._text_future: Any = None
        self._stop = threading.Event()
        self._stop_now = threading.Event()
        self._events: queue.Queue[dict] = queue.Queue()
        self._wake = threading.Event()

    # ----------------------------------------------------------------- control (any thread)

    def stop(self) -> None:
        """Points training stop after their current step ("stopped", kept), waiting ones are
        skipped; ``run`` then ends."""
        self._stop.set()

    def stop_now(self) -> None:
        """Cancel every point not yet back, at once (their work is lost); ``run`` ends."""
        self._stop.set()
        self._stop_now.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ----------------------------------------------------------------- running

    def _job(self, point: SweepPoint) -> Any:
        from .cluster_task import PointJob

        return PointJob(
            spec=self.spec,
            point=point,
            sweep_id=self.sweep_id,
            text_name=self.text_name,
            text_sha256=self.text_sha256,
            version=__version__,
            threads_by_host=self.threads_by_host,
        )

    def _scatter(self) -> Any:
        if self._text_future is None:
            self._text_future = self.client.scatter(self.text, broadcast=True, hash=True)
        return self._text_future

    def _resources(self) -> dict[str, float] | None:
        return {"GPU": 1} if self.spec.device.startswith("gpu") else None

    def calibrate(self, minutes: float) -> tuple[list[Calibration], str, int]:
        """``--as-steps`` on one worker (the kind of machine that trains): every point timed
        there and given the steps that fit in ``minutes``. Returns the calibrations, the host
        that timed them and the BLAS threads a point gets there. [] when stopped first."""
        from .cluster_task import time_points

        future = self.client.submit(
            time_points,
            self._job(self.points[0]),
            self.points,
            self._scatter(),
            minutes,
            key=f"charlstm-timing-{self.sweep_id}",
            pure=False,
            resources=self._resources(),
        )
        try:
            while not future.done():
                if self._stop.is_set():
                    return [], "", 0
                time.sleep(POLL_S)
            return future.result()
        except CharLSTMError:
            raise
        except Exception as e:  # noqa: BLE001 - a worker that died, the scheduler gone
            raise ClusterError(f"The settings could not be timed on the cluster: {e}") from None
        finally:
            with contextlib.suppress(Exception):
                future.cancel()

    def run(self) -> Iterator[ClusterEvent]:
        """Run every point; yields what happens, ``PointEnded`` once per point (in the order
        they end)."""
        from distributed import Variable

        from .cluster_task import TOPIC, checkpoint_name, train_point

        Path(self.spec.out_dir).mkdir(parents=True, exist_ok=True)
        if self.spec.runs_db is not None:
            RunStore.open(self.spec.runs_db).close()  # created (or migrated) before any result
        state = {p.index: _Point(p) for p in self.points}
        self.client.subscribe_topic(TOPIC, self._on_event)
        for p in state.values():  # "no checkpoint yet": a first attempt finds it without waiting
            Variable(checkpoint_name(self.sweep_id, p.point.index), client=self.client).set(None)
        try:
            text = self._scatter()
            for p in state.values():
                if self._stop.is_set():
                    break
                p.future = self.client.submit(
                    train_point,
                    self._job(p.point),
                    text,
                    key=f"charlstm-point-{self.sweep_id}-{p.point.index}",
                    pure=False,
                    resources=self._resources(),
                )
            yield from self._follow(state)
        finally:
            self._clean_up(state)

    def _on_event(self, event: Any) -> None:
        """Called on Dask's thread for each message of the topic: queued for ``run``."""
        with contextlib.suppress(Exception):
            msg = event[1]
            if isinstance(msg, dict) and msg.get("sweep") == self.sweep_id:
                self._events.put(msg)
                self._wake.set()

    def _follow(self, state: dict[int, _Point]) -> Iterator[ClusterEvent]:
        deadline: float | None = None
        while not all(p.ended for p in state.values()):
            yield from self._drain(state)
            if self._stop.is_set() and deadline is None:
                deadline = time.monotonic() + STOP_GRACE_S
                yield from self._stop_points(state)
            if self._stop_now.is_set() or (deadline is not None and time.monotonic() > deadline):
                for p in state.values():
                    if not p.ended:
                        yield self._end_unfinished(p, "cancelled: the sweep was stopped")
                break
            for p in state.values():
                if p.future is None and not p.ended:
                    yield self._end_unfinished(p, NOT_STARTED)
                elif p.future is not None and not p.ended and p.future.done():
                    yield from self._drain(state)  # its last reports first
                    yield self._ended(p)
            self._wake.wait(POLL_S)  # a report or the time to look at the futures again
            self._wake.clear()
        yield from self._drain(state)

    def _stop_points(self, state: dict[int, _Point]) -> Iterator[ClusterEvent]:
        """Set the sweep's stop event (points training stop after their step and come back),
        then cancel the points no worker has started."""
        from distributed import Event

        from .cluster_task import stop_name

        with contextlib.suppress(Exception):
            Event(stop_name(self.sweep_id), client=self.client).set()
        yield from self._drain(state)
        for p in state.values():
            if not p.ended and not p.attempts and p.future is not None:
                p.future.cancel()
                yield self._end_unfinished(p, NOT_STARTED)

    def _drain(self, state: dict[int, _Point]) -> Iterator[ClusterEvent]:
        while True:
            try:
                msg = self._events.get_nowait()
            except queue.Empty:
                return
            p = state.get(int(msg.get("index", -1)))
            if p is None or p.ended:
                continue
            kind, attempt = msg.get("kind"), str(msg.get("attempt"))
            host = str(msg.get("host", "?"))
            if kind == "start":
                a = _Attempt(host, str(msg.get("worker")), float(msg.get("started", time.time())),
                             int(msg.get("resumed_from", 0)))  # fmt: skip
                p.attempts[attempt] = a
                yield PointStarted(p.point, host, a.worker, len(p.attempts), a.resumed_from)
            elif kind == "step":
                if attempt in p.attempts:
                    p.attempts[attempt].last_step = int(msg["step"])
                yield PointProgress(
                    p.point, host, int(msg["step"]), int(msg["total"]), float(msg["loss"]),
                    float(msg["cps"]), msg.get("val"),
                )  # fmt: skip
            elif kind == "checkpoint":
                step = int(msg.get("step", 0))
                p.newest_checkpoint = max(p.newest_checkpoint, step)
                path = None
                if time.monotonic() - p.copied_at >= COPY_EVERY_S:
                    path = self._fetch_checkpoint(p)
                yield PointCheckpoint(p.point, step, path)

    def _model_path(self, point: SweepPoint) -> str:
        return os.path.join(self.spec.out_dir, point_file_name(point))

    def _fetch_checkpoint(self, p: _Point) -> str | None:
        """Copy the point's newest autosave, kept by the scheduler, into its model file here
        (when newer than the copy already here); its path, or None."""
        from distributed import Variable

        from .cluster_task import checkpoint_name

        if p.newest_checkpoint <= p.checkpoint_step:
            return None
        p.copied_at = time.monotonic()
        try:
            name = checkpoint_name(self.sweep_id, p.point.index)
            data = Variable(name, client=self.client).get(timeout=5)
            mf = _model_from_bytes(data)
            if mf.train is None or mf.train.step <= p.checkpoint_step:
                return None
            path = save_model(self._model_path(p.point), mf)
        except Exception:  # noqa: BLE001 - the next autosave (or the final model) comes anyway
            return None
        p.checkpoint_step = mf.train.step
        return path

    def _end_unfinished(self, p: _Point, why: str) -> PointEnded:
        p.ended = True
        result = skipped_result(p.point, why)
        if p.attempts:  # it trained for a while: its newest autosave is kept here
            self._fetch_checkpoint(p)
            path = self._model_path(p.point)
            host = list(p.attempts.values())[-1].host
            result = dataclasses.replace(
                result,
                status="stopped" if p.checkpoint_step else "skipped",
                steps=p.checkpoint_step,
                model_path=path if p.checkpoint_step and os.path.isfile(path) else None,
                host=host,
            )
        return PointEnded(result, max(0, len(p.attempts) - 1))

    def _ended(self, p: _Point) -> PointEnded:
        p.ended = True
        retries = max(0, len(p.attempts) - 1)
        try:
            outcome = p.future.result()
        except Exception as e:  # noqa: BLE001 - killed too often, cancelled, lost
            return PointEnded(self._failed(p, e), retries)
        finally:  # the worker and the scheduler let go of its result and its last autosave
            with contextlib.suppress(Exception):
                p.future.release()
            self._forget_checkpoint(p)
        return PointEnded(self._bring_home(p, outcome), retries)

    def _forget_checkpoint(self, p: _Point) -> None:
        from distributed import Variable

        from .cluster_task import checkpoint_name

        with contextlib.suppress(Exception):
            Variable(checkpoint_name(self.sweep_id, p.point.index), client=self.client).delete()

    def _failed(self, p: _Point, e: BaseException) -> PointResult:
        name = type(e).__name__
        if name == "KilledWorker":
            why = (
                f"every worker that ran it died ({len(p.attempts)} times; out of memory? see "
                "the workers' logs)"
            )
        elif name in ("CancelledError", "FutureCancelledError"):
            why = "cancelled: the scheduler dropped it (restarted, or the connection was lost)"
        elif isinstance(e, ModuleNotFoundError) or "charlstm_core" in str(e):
            why = f"a worker could not run it: {e}. {INSTALL_HINT}"
        else:
            why = f"a worker could not run it: {name}: {e}"
        result = self._end_unfinished(p, why).result
        return dataclasses.replace(result, status="failed", message=why)

    def _bring_home(self, p: _Point, outcome: Any) -> PointResult:
        """The point's model into ``out_dir`` and its run into the local store."""
        result: PointResult = outcome.result
        path, notes = None, [result.message] if result.message else []
        mf = None
        if outcome.model is not None:
            try:
                mf = _model_from_bytes(outcome.model)
                path = save_model(self._model_path(p.point), mf)
            except CharLSTMError as e:
                notes.append(f"its model could not be saved here: {e}")
        retried = self._retry_note(p, outcome)
        if retried:
            notes.append(retried)
        message = "; ".join(notes) or None
        run_id = None
        if outcome.record is not None and self.spec.runs_db is not None:
            record = outcome.record
            changes: dict[str, Any] = {"model_path": path, "message": message}
            if outcome.resumed_from and mf is not None:
                record = _whole_life(record, mf)
                changes["start_step"] = 0
                changes["started"] = min(a.started for a in p.attempts.values())
            try:
                with RunStore.open(self.spec.runs_db) as store:
                    run_id = store.import_run(record, **changes)
            except CharLSTMError as e:
                message = "; ".join([*notes, f"not recorded: {e}"])
        return dataclasses.replace(
            result, run_id=run_id, model_path=path, host=outcome.host, message=message
        )

    def _retry_note(self, p: _Point, outcome: Any) -> str | None:
        lost = [a for key, a in p.attempts.items() if key != outcome.attempt]
        if not lost:
            return None
        where = ", ".join(f"{a.host} at step {a.last_step:,}" for a in lost)
        # (the step last reported: reports are at most cluster_task.PROGRESS_EVERY_S apart)
        start = (
            f"continued from its checkpoint at step {outcome.resumed_from:,}"
            if outcome.resumed_from
            else "started again from step 0 (no checkpoint had arrived)"
        )
        n = len(lost)
        times = f"{n} time{'s' if n != 1 else ''}"
        return f"retried {times}: its worker was lost ({where}); {start} on {outcome.host}"

    def _clean_up(self, state: dict[int, _Point]) -> None:
        from distributed import Event

        from .cluster_task import TOPIC, stop_name

        pending = [p.future for p in state.values() if p.future is not None and not p.future.done()]
        with contextlib.suppress(Exception):
            if pending:
                self.client.cancel(pending)
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(TOPIC)
        for p in state.values():
            self._forget_checkpoint(p)
        with contextlib.suppress(Exception):
            Event(stop_name(self.sweep_id), client=self.client).clear()


def _model_from_bytes(data: bytes) -> ModelFile:
    """A model file's bytes, read and checked as any model file is (``load_model``)."""
    if not isinstance(data, bytes) or not data:
        raise CharLSTMError("An empty model file arrived from the worker.")
    with tempfile.TemporaryDirectory(prefix="charlstm-") as folder:
        path = os.path.join(folder, "model.npz")
        with open(path, "wb") as f:
            f.write(data)
        return load_model(path)


def _whole_life(record: RunCopy, mf: ModelFile) -> RunCopy:
    """A retried point's run with the curve of its earlier attempts put back in front, from the
    model's own history (their wall times are unknown: NaN)."""
    st = mf.train
    start = record.run.start_step
    if st is None or start <= 0:
        return record
    train = record.run.train
    per_step = int(train.get("batch_size", 0)) * int(train.get("seq_len", 0))

    def before(steps: Any, losses: Any, curve: Curve) -> Curve:
        steps = np.asarray(steps, np.int64)
        keep = steps <= start
        if curve.step.size:
            keep &= steps < int(curve.step[0])
        s, loss = steps[keep], np.asarray(losses, np.float64)[keep]
        return Curve(
            np.concatenate([s, curve.step]),
            np.concatenate([s * per_step, curve.chars]),
            np.concatenate([np.full(s.size, math.nan), curve.time]),
            np.concatenate([loss, curve.loss]),
        )

    h = st.history
    curves = Curves(
        train=before(h["train_step"], h["train_loss"], record.curves.train),
        val=before(h["val_step"], h["val_loss"], record.curves.val),
    )
    return RunCopy(run=record.run, curves=curves)
