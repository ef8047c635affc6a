"""Sweeps whose points train as separate jobs (``SweepJobs``): several at once in processes of
this computer, or on the workers of a Dask cluster.

The app's own sweep trains one point after another with its trainer, drawn live. With "this
computer, N at once" (N > 1) the points run in the command line's process pool
(``charlstm_core.sweep.run_sweep``); with "a Dask cluster at" an address, on that cluster
(``charlstm_core.sweep.cluster.ClusterSweep``, as ``charlstm sweep --scheduler``: it connects,
checks the workers, times the points on a worker when asked, and reports points starting, their
progress and each one's end with its model and run brought home). Either is pulled by a
``SweepJobsWorker`` on its own thread; ``SweepJobs`` turns what it reports into the ``SweepState``
the window shows, as for the app's own sweep. ``check_cluster`` lists a scheduler's workers off
the GUI thread (the dialog's Connect button). Cancel Sweep stops the points training after their
current step (they come back "stopped"); closing the app cancels them at once. A cluster itself
keeps running.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from charlstm_core.errors import CharLSTMError
from PySide6.QtCore import QObject, Slot

from ..worker import GeneratorWorker
from .tasks import Feedback


class SweepJobsWorker(GeneratorWorker):
    """The generic worker pulling a sweep's events (``cluster_events``, ``pool_events``), which
    also knows what stops the points: a stop is passed on to it (the points training stop after
    their current step and come back first), ``stop_now`` cancels them."""

    def __init__(self, events: Callable[[SweepJobsWorker], Iterator[Any]]) -> None:
        self.runner: Any = None  # what stops the points: a ClusterSweep, or a _PoolStop
        super().__init__(lambda: events(self), on_stop=self._stop_points)

    def _stop_points(self) -> None:
        runner = self.runner
        if runner is not None:
            runner.stop()

    def stop_now(self) -> None:
        """Cancel the points not back yet (closing the app); thread-safe."""
        self.request_stop()
        runner = self.runner
        if runner is not None:
            runner.stop_now()

    def emit_now(self, item: Any) -> None:
        """Emit ``item`` at once, from the worker thread (a point handed to a process)."""
        self.yielded.emit((item,))


class Connected:
    """The first event of a cluster sweep: the workers it runs on, described."""

    def __init__(self, address: str, workers: str) -> None:
        self.address, self.workers = address, workers


class Timed:
    """The points were timed on a worker (``--as-steps``): each one's ``Calibration``."""

    def __init__(self, calibrations: list[Any]) -> None:
        self.calibrations = calibrations


def list_cluster(address: str) -> list[Any]:
    """The workers of the scheduler at ``address`` (``WorkerInfo``s); ``ClusterError`` says why
    not. Connects and disconnects: for the dialog's Connect check, off the GUI thread."""
    from charlstm_core.sweep import cluster

    client = cluster.connect(address)
    try:
        return cluster.list_workers(client)
    finally:
        client.close()


def cluster_events(
    address: str, spec: Any, points: list[Any], corpus: Any, minutes: float | None
) -> Callable[[SweepJobsWorker], Iterator[Any]]:
    """The events of a sweep on the cluster at ``address``, for ``SweepJobsWorker``."""

    def events(worker: SweepJobsWorker) -> Iterator[Any]:
        from charlstm_core.sweep import cluster

        text, text_name = corpus_bytes(corpus)
        client = cluster.connect(address)
        try:
            workers = cluster.list_workers(client)
            cluster.check_workers(workers, address, spec.device)
            runner = cluster.ClusterSweep(
                client, spec, points, text=text, text_name=text_name, workers=workers
            )
            worker.runner = runner
            yield Connected(address, cluster.describe_workers(workers))
            if minutes is not None:
                cals, _host, _threads = runner.calibrate(minutes)
                if not cals:
                    return
                runner.points = [c.point for c in cals]
                yield Timed(cals)
            if not runner.stopping:
                yield from runner.run()
        finally:
            client.close()

    return events


class _PoolStop:
    """Stops a sweep in the process pool: the points training stop after their current step
    (the pool's own stop event), then it ends."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def stop(self) -> None:
        self.event.set()

    stop_now = stop  # a point in a process cannot be cancelled sooner than its next step


def pool_events(
    jobs: int, spec: Any, points: list[Any], corpus: Any, minutes: float | None
) -> Callable[[SweepJobsWorker], Iterator[Any]]:
    """The events of a sweep trained ``jobs`` points at a time in processes of this computer
    (``run_sweep``), for ``SweepJobsWorker``. The points are timed here first when ``minutes``
    is given (as ``charlstm sweep --as-steps``)."""

    def events(worker: SweepJobsWorker) -> Iterator[Any]:
        from charlstm_core import sweep as core_sweep
        from charlstm_core.runs.records import HOST
        from charlstm_core.sweep.cluster import PointEnded, PointStarted  # no Dask in there

        stopper = _PoolStop()
        worker.runner = stopper
        folder = tempfile.mkdtemp(prefix="charlstm-sweep-")
        try:
            # the processes read the text from a file: the one opened, as it was (checked), or
            # the built-in text, written out
            text, name = corpus_bytes(corpus)
            path = os.path.join(folder, name)
            with open(path, "wb") as f:
                f.write(text)
            run_spec = dataclasses.replace(spec, text_path=path)
            todo = points
            if minutes is not None:
                cals = core_sweep.calibrate(
                    points, spec.base_model, spec.base_train, corpus, minutes, stop=stopper.event
                )
                if not cals:
                    return
                todo = [c.point for c in cals]
                yield Timed(cals)

            def started(point: Any) -> None:
                worker.emit_now(PointStarted(point, HOST, "this computer", 1, 0))

            for r in core_sweep.run_sweep(
                run_spec, todo, jobs=jobs, stop=stopper.event, on_start=started
            ):
                yield PointEnded(dataclasses.replace(r, host=HOST), 0)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return events


class SweepJobs(QObject):
    """The sweep of separate jobs running now (a process pool here, or a Dask cluster): its
    worker and the ``SweepState`` it updates; what it learns goes out through its callbacks."""

    def __init__(
        self,
        launch: Callable[[QObject], Any],
        run_task: Callable[..., None],
        feedback: Feedback,
        *,
        changed: Callable[[Any], None],
        runs_changed: Callable[[], None],
        parent: QObject | None = None,
    ) -> None:
        """``changed(sweep)``: a point began, progressed or ended; ``runs_changed()``: a point's
        run was brought into the run store."""
        super().__init__(parent)
        self._launch, self.run_task, self.feedback = launch, run_task, feedback
        self._changed, self._runs_changed = changed, runs_changed
        self.worker: SweepJobsWorker | None = None
        self.sweep: Any = None  # the SweepState its events update
        self._on_end: Callable[[], None] = lambda: None

    def check_cluster(self, address: str, done: Callable[[Any], None]) -> None:
        """List the workers of the scheduler at ``address`` off the GUI thread, then
        ``done(workers)``, or ``done(message)`` (a str) when it cannot be reached or used."""

        def failed(exc: Exception, tb: str) -> None:
            if isinstance(exc, CharLSTMError):
                done(str(exc))
            else:
                self.feedback.internal_error(tb)
                done("An unexpected error; see the error report.")

        self.run_task(lambda: list_cluster(address), done, failed=failed)

    def start(
        self,
        sweep: Any,
        corpus: Any,
        model_config: Any,
        base: Any,
        timed: bool,
        *,
        runs_db: str,
        cluster: str = "",
        jobs: int = 1,
        on_end: Callable[[], None],
    ) -> None:
        """Run ``sweep`` (a ``SweepState``) on the Dask cluster at ``cluster``, else ``jobs`` at
        a time in processes here; its models go to a folder of the autosave folder (named as
        the command line names it), its runs to the run store at ``runs_db``. ``on_end()``
        follows once its worker has ended (every point back, or the sweep failed)."""
        from charlstm_core import sweep as core_sweep

        stem = os.path.splitext(os.path.basename(corpus.name))[0] or "text"
        out_dir = os.path.join(sweep.autosave_dir, f"{stem}-sweep-{time.strftime('%Y%m%d-%H%M%S')}")
        spec = core_sweep.SweepSpec(
            text_path=corpus.path or corpus.name,
            encoding=corpus.encoding,
            base_model=model_config,
            base_train=base,
            out_dir=out_dir,
            runs_db=runs_db,
            sweep_label=sweep.label,
        )
        points = [p.point for p in sweep.points]
        minutes = base.minutes if timed else None
        if cluster:
            events = cluster_events(cluster, spec, points, corpus, minutes)
        else:
            events = pool_events(jobs, spec, points, corpus, minutes)
        worker = SweepJobsWorker(events)
        # to this object's own slots: a queued call reaches a slot of a QObject subclass
        worker.yielded.connect(self._on_events)
        worker.errored.connect(self._on_failed)
        worker.finished.connect(self._on_finished)  # after errored too: then a no-op
        self.worker, self.sweep, self._on_end = worker, sweep, on_end
        sweep.timing = timed
        self._changed(sweep)
        self._launch(worker)

    def stop(self, *, now: bool = False) -> bool:
        """Ask a running sweep of jobs to stop (``now``: cancel its points); False if none."""
        worker = self.worker
        if worker is None:
            return False
        if now:
            worker.stop_now()
        else:
            worker.request_stop()
        return True

    @Slot(object)
    def _on_events(self, batch: tuple) -> None:
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        changed = False
        for e in batch:
            kind = type(e).__name__
            if kind == "Connected":
                sweep.cluster_workers = e.workers
            elif kind == "Timed":  # each point's steps
                sweep.timing = False
                for c in e.calibrations:
                    sweep.points[c.point.index].point = c.point
            elif kind == "PointStarted":
                p = sweep.points[e.point.index]
                p.status, p.host = "running", e.host
                p.progress = "starting" if e.attempt == 1 else f"retry {e.attempt - 1}"
            elif kind == "PointProgress":
                p = sweep.points[e.point.index]
                p.progress = f"step {e.step:,}/{e.total_steps:,}, loss {e.loss:.3f}"
            elif kind == "PointEnded":
                r = e.result
                p = sweep.points[r.index]
                p.status, p.run_id, p.best_val = r.status, r.run_id, r.best_val_loss
                p.model_path, p.message, p.host = r.model_path, r.message or "", r.host or p.host
                p.progress = ""
                self._runs_changed()
            changed = True
        if changed:
            self._changed(sweep)

    @Slot(object, str)
    def _on_failed(self, exc: Exception, tb: str) -> None:
        self.worker = None
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        sweep.skip_unended("The sweep could not run it.")
        where = " on the cluster" if sweep.cluster else ""
        self.feedback.failure(exc, tb, f"Cannot run the sweep{where}")
        self._on_end()

    @Slot()
    def _on_finished(self) -> None:
        self.worker = None
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        sweep.skip_unended("not started: the sweep was stopped")
        self._on_end()


def corpus_bytes(corpus: Any) -> tuple[bytes, str]:
    """The text's bytes as a worker must read them, and its file name: the file itself when it
    is unchanged since it was opened, else (the built-in text) its UTF-8 encoding."""
    import hashlib

    if corpus.path:
        try:
            with open(corpus.path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CharLSTMError(
                f"Cannot read the text {corpus.path} for the sweep: {e.strerror or e}."
            ) from None
        if hashlib.sha256(data).hexdigest() != corpus.sha256:
            raise CharLSTMError(
                f"The text {corpus.name} changed on disk since it was opened. Open it again "
                "before running the sweep."
            )
        return data, os.path.basename(corpus.path)
    text = corpus.vocab.decode(corpus.ids)
    return text.encode("utf-8", "surrogatepass"), corpus.name
