"""The QThread adapter with a fake trainer: batching, pause/resume/stop, snapshots, errors.

Waits poll what a GUI-thread Sink received (qtbot.waitSignal on a worker's signal would run
its callback in the worker thread, the PySide6 behaviour the app avoids too)."""

from __future__ import annotations

import sys
import threading

import pytest
from charlstm_core.engine import parallel
from charlstm_core.errors import TrainingDiverged
from charlstm_core.events import StepEvent
from PySide6.QtCore import QObject, QThread, Slot

from charlstm_gui.worker import StreamWorker, TrainWorker

from .fakes import FakeModel, FakeTrainer


class Sink(QObject):
    """Lives in the GUI thread and records what the worker emits (slots only, never lambdas)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple] = []
        self.threads: set[int] = set()
        self.snapshots: list = []
        self.failures: list = []
        self.finished: list = []
        self.paused: list[int] = []
        self.resumed = 0
        self.chosen: list = []

    @Slot(object)
    def on_events(self, batch) -> None:
        self.threads.add(threading.get_ident())
        self.batches.append(batch)

    @Slot(object, str)
    def on_snapshot(self, mf, purpose) -> None:
        self.snapshots.append((mf, purpose))

    @Slot(object, str, object)
    def on_failed(self, exc, tb, last) -> None:
        self.failures.append((exc, tb, last))

    @Slot(object, object)
    def on_finished(self, summary, final) -> None:
        self.finished.append((summary, final))

    @Slot(int)
    def on_paused(self, step) -> None:
        self.paused.append(step)

    @Slot()
    def on_resumed(self) -> None:
        self.resumed += 1

    @Slot(int, str)
    def on_chosen(self, n, text) -> None:
        self.chosen.append((n, text))

    @property
    def steps(self) -> list[int]:
        return [e.step for b in self.batches for e in b if isinstance(e, StepEvent)]


def start(worker: TrainWorker, sink: Sink) -> QThread:
    worker.events.connect(sink.on_events)
    worker.snapshot_ready.connect(sink.on_snapshot)
    worker.failed.connect(sink.on_failed)
    worker.finished.connect(sink.on_finished)
    worker.paused.connect(sink.on_paused)
    worker.resumed.connect(sink.on_resumed)
    worker.blas_chosen.connect(sink.on_chosen)
    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.start()
    return thread


def test_events_arrive_batched_in_gui_thread(qtbot):
    trainer = FakeTrainer(steps=2000)
    worker, sink = TrainWorker(lambda: trainer, blas_threads=1), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: bool(sink.finished), timeout=10_000)
    thread.wait(5000)
    assert sink.steps == list(range(1, 2001))
    assert len(sink.batches) < 2000  # fast steps are grouped, not one signal each
    assert sink.threads == {threading.get_ident()}
    assert threading.get_ident() not in trainer.threads_seen
    summary, final = sink.finished[0]
    assert summary.reason == "completed" and final == FakeModel(2000)


def test_pause_resume_stop(qtbot):
    trainer = FakeTrainer(steps=10_000, step_s=0.002)
    worker, sink = TrainWorker(lambda: trainer, blas_threads=1), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: len(sink.steps) >= 3, timeout=10_000)
    worker.request_pause()
    qtbot.waitUntil(lambda: len(sink.paused) == 1, timeout=5000)
    parked = sink.paused[0]
    worker.request_snapshot("generate")  # served while paused
    qtbot.waitUntil(lambda: len(sink.snapshots) == 1, timeout=5000)
    assert sink.snapshots[0] == (FakeModel(parked), "generate")
    assert trainer.step == parked
    worker.request_resume()
    qtbot.waitUntil(lambda: sink.resumed == 1 and trainer.step > parked + 2, timeout=5000)
    worker.request_pause()
    qtbot.waitUntil(lambda: len(sink.paused) == 2, timeout=5000)
    worker.request_stop()  # stop also wakes a paused worker
    qtbot.waitUntil(lambda: bool(sink.finished), timeout=5000)
    thread.wait(5000)
    assert sink.finished[0][0].reason == "stopped"
    assert sink.steps == list(range(1, trainer.step + 1))


def test_failure_reports_last_good_model(qtbot):
    exc = TrainingDiverged("The loss became NaN at step 7.", step=7)
    worker, sink = TrainWorker(lambda: FakeTrainer(fail_at=7, exc=exc), blas_threads=1), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: bool(sink.failures), timeout=5000)
    thread.wait(5000)
    error, tb, last = sink.failures[0]
    assert error is exc and "TrainingDiverged" in tb and last == FakeModel(7)
    assert sink.steps == list(range(1, 7))


def test_blas_thread_count_is_measured(qtbot):
    worker, sink = TrainWorker(lambda: FakeTrainer(steps=400, step_s=0.004), max_threads=2), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: bool(sink.finished), timeout=20_000)
    thread.wait(5000)
    assert sink.chosen and sink.chosen[0][0] in (1, 2) and "chars/s" in sink.chosen[0][1]


class StreamSink(QObject):
    """Receives a StreamWorker's text and its end in the GUI thread."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[str] = []
        self.done: list[bool] = []

    @Slot(str)
    def text(self, t) -> None:
        self.got.append(t)

    @Slot(bool)
    def fin(self, ok) -> None:
        self.done.append(ok)


def start_stream(worker: StreamWorker, sink: StreamSink) -> QThread:
    worker.text.connect(sink.text)
    worker.finished.connect(sink.fin)
    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.start()
    return thread


def test_stream_worker_cancel(qtbot):
    def chars():
        while True:
            yield "x"

    worker, sink = StreamWorker(chars), StreamSink()
    thread = start_stream(worker, sink)
    qtbot.waitUntil(lambda: len(sink.got) >= 2, timeout=5000)
    worker.cancel()
    qtbot.waitUntil(lambda: sink.done == [False], timeout=5000)
    thread.wait(5000)


def _sections_seen_by_a_stream(qtbot, beside_training: bool) -> int:
    from charlstm_core.engine import parallel

    seen: list[int] = []

    def chars():
        seen.append(parallel._sections)  # single-threaded sections open while it runs
        yield "x"

    worker, sink = StreamWorker(chars, beside_training=beside_training), StreamSink()
    thread = start_stream(worker, sink)
    qtbot.waitUntil(lambda: sink.done == [True], timeout=5000)
    thread.wait(5000)
    return seen[0]


def test_stream_worker_holds_blas_to_one_thread_only_beside_training(qtbot):
    from charlstm_core.engine import parallel

    alone = _sections_seen_by_a_stream(qtbot, beside_training=False)
    beside = _sections_seen_by_a_stream(qtbot, beside_training=True)
    assert parallel._sections == 0
    if parallel._blas() is None:
        pytest.skip("threadpoolctl finds no BLAS library here, so there is no thread count to hold")
    assert (alone, beside) == (0, 1)


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")
def test_training_runs_at_a_lower_priority_than_the_window(qtbot):
    niced: list[int] = []

    def factory():
        niced.append(parallel.thread_nice())  # on the worker's thread, where the steps run
        return FakeTrainer(steps=5)

    worker, sink = TrainWorker(factory, blas_threads=1), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: bool(sink.finished), timeout=10_000)
    thread.wait(5000)
    assert niced == [min(19, parallel.thread_nice() + parallel.TRAINING_NICE)]
