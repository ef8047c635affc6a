"""Sweeps on a Dask cluster in the app (``ClusterMixin``, a part of ``Controller``).

``check_cluster`` connects to a scheduler off the GUI thread and lists its workers (the sweep
dialog's Connect button). A sweep "run on a Dask cluster" is the command line's
(``charlstm_core.sweep.cluster.ClusterSweep``) pulled by a ``ClusterSweepWorker`` on its own
thread: it connects, checks the workers, times the points on a worker when asked, and re-emits
what the cluster reports (points starting, their progress, each one's end with its model and run
brought home); this part turns that into the ``SweepState`` the window shows, as for a sweep on
this computer. Cancel Sweep stops the points after their current step (they come back
"stopped"); closing the app cancels them at once. The cluster itself keeps running.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from charlstm_core.errors import CharLSTMError
from PySide6.QtCore import Signal, Slot

from ..worker import GeneratorWorker, describe_exception


class ClusterSweepWorker(GeneratorWorker):
    """Pulls a cluster sweep's events (``sweep_events``) on its thread, ~30 batches a second."""

    events = Signal(object)  # tuple of charlstm_core.sweep.cluster events (and Connected)
    failed = Signal(object, str)  # exception, traceback text
    finished = Signal()

    stop_ends_pull = False  # the sweep ends itself: the points stopped come back first

    def __init__(self, events: Callable[[ClusterSweepWorker], Iterator[Any]]) -> None:
        super().__init__()
        self._events = events
        self.runner: Any = None  # the ClusterSweep, once connected (set on the worker thread)

    def on_stop(self) -> None:
        runner = self.runner
        if runner is not None:
            runner.stop()

    def stop_now(self) -> None:
        """Cancel the points not back yet (closing the app); thread-safe."""
        self.request_stop()
        runner = self.runner
        if runner is not None:
            runner.stop_now()

    def emit_batch(self, items: tuple[Any, ...]) -> None:
        self.events.emit(items)

    @Slot()
    def run(self) -> None:
        try:
            self.pull(self._events(self))
            self.flush()
            self.finished.emit()
        except Exception as exc:  # every failure reaches the GUI as a signal
            self.flush()
            self.failed.emit(exc, describe_exception(exc))
        self.thread().quit()


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


def sweep_events(
    address: str, spec: Any, points: list[Any], corpus: Any, minutes: float | None
) -> Callable[[ClusterSweepWorker], Iterator[Any]]:
    """The events of a sweep on the cluster at ``address``, for ``ClusterSweepWorker``."""

    def events(worker: ClusterSweepWorker) -> Iterator[Any]:
        from charlstm_core.sweep import cluster

        text, text_name = corpus_bytes(corpus)
        client = cluster.connect(address)
        try:
            workers = cluster.list_workers(client)
            cluster.check_workers(workers, address, spec.device)
            runner = cluster.ClusterSweep(client, spec, points, text=text, text_name=text_name)
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


class ClusterMixin:
    """Sweeps on a Dask cluster (a part of ``Controller``)."""

    # what the mixin uses of Controller (declared there)
    message: Any
    internal_error: Any
    runs_changed: Any
    sweep_changed: Any
    sweep: Any
    corpus: Any
    runs_db: str | None
    run_task: Callable[..., None]
    _launch: Callable[..., Any]
    _sweep_end: Callable[[], None]

    def _init_cluster(self) -> None:
        self._cluster_worker: ClusterSweepWorker | None = None

    def check_cluster(self, address: str, done: Callable[[Any], None]) -> None:
        """List the workers of the scheduler at ``address`` off the GUI thread, then
        ``done(workers)``, or ``done(message)`` (a str) when it cannot be reached or used."""

        def failed(exc: Exception, tb: str) -> None:
            if isinstance(exc, CharLSTMError):
                done(str(exc))
            else:
                self.internal_error.emit(tb)
                done("An unexpected error; see the error report.")

        self.run_task(lambda: list_cluster(address), done, failed=failed)

    def _start_cluster_sweep(self, address: str, model_config: Any, base: Any, timed: bool):
        """Run the sweep in ``self.sweep`` on the cluster at ``address``; its models go to a
        folder of the autosave folder, its runs to the run store."""
        from charlstm_core import sweep as core_sweep
        from charlstm_core.runs import default_db_path

        sweep = self.sweep
        corpus = self.corpus
        stem = os.path.splitext(os.path.basename(corpus.name))[0] or "text"
        out_dir = os.path.join(sweep.autosave_dir, f"{stem}-sweep-{time.strftime('%Y%m%d-%H%M%S')}")
        spec = core_sweep.SweepSpec(
            text_path=corpus.path or corpus.name,
            encoding=corpus.encoding,
            base_model=model_config,
            base_train=base,
            out_dir=out_dir,
            runs_db=str(self.runs_db or default_db_path()),
            sweep_label=sweep.label,
        )
        points = [p.point for p in sweep.points]
        minutes = base.minutes if timed else None
        worker = ClusterSweepWorker(sweep_events(address, spec, points, corpus, minutes))
        # to the Controller's own slots (a queued call needs a slot of the QObject subclass)
        worker.events.connect(self._on_cluster_events)
        worker.failed.connect(self._on_cluster_failed)
        worker.finished.connect(self._on_cluster_finished)
        self._cluster_worker = worker
        sweep.timing = timed
        self.sweep_changed.emit(sweep)
        self._launch(worker)

    def _stop_cluster_sweep(self, *, now: bool = False) -> bool:
        """Ask a running cluster sweep to stop (``now``: cancel its points); False if none."""
        worker = self._cluster_worker
        if worker is None:
            return False
        if now:
            worker.stop_now()
        else:
            worker.request_stop()
        return True

    _on_cluster_events: Callable[[tuple], None]
    _on_cluster_failed: Callable[[Exception, str], None]
    _on_cluster_finished: Callable[[], None]

    def _cluster_events(self, batch: tuple) -> None:
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
                self.runs_changed.emit()
            changed = True
        if changed:
            self.sweep_changed.emit(sweep)

    def _cluster_failed(self, exc: Exception, tb: str) -> None:
        self._cluster_worker = None
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        for p in sweep.points:
            if p.status in ("waiting", "running"):
                p.status, p.message = "skipped", "The cluster could not run it."
        if isinstance(exc, CharLSTMError):
            self.message.emit("Cannot run the sweep on the cluster", str(exc))
        else:
            self.internal_error.emit(tb)
        self._sweep_end()

    def _cluster_finished(self) -> None:
        self._cluster_worker = None
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        for p in sweep.points:
            if p.status in ("waiting", "running"):
                p.status, p.message = "skipped", "not started: the sweep was stopped"
        self._sweep_end()


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
                f"Cannot read the text {corpus.path} to send it to the cluster: {e.strerror or e}."
            ) from None
        if hashlib.sha256(data).hexdigest() != corpus.sha256:
            raise CharLSTMError(
                f"The text {corpus.name} changed on disk since it was opened. Open it again "
                "before running the sweep."
            )
        return data, os.path.basename(corpus.path)
    text = corpus.vocab.decode(corpus.ids)
    return text.encode("utf-8", "surrogatepass"), corpus.name
