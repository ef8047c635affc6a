"""The QThread adapter with a fake trainer: batching, pause/resume/stop, snapshots, errors."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QThread, Slot

from charlstm_gui.worker import StreamWorker, TrainWorker
from core.errors import TrainingDiverged
from core.events import StepEvent

from .fakes import FakeTrainer


class Sink(QObject):
    """Lives in the GUI thread and records what the worker emits (slots only, never lambdas)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple] = []
        self.threads: set[int] = set()
        self.snapshots: list = []
        self.failures: list = []
        self.finished: list = []

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

    @property
    def steps(self) -> list[int]:
        return [e.step for b in self.batches for e in b if isinstance(e, StepEvent)]


def start(worker: TrainWorker, sink: Sink) -> QThread:
    worker.events.connect(sink.on_events)
    worker.snapshot_ready.connect(sink.on_snapshot)
    worker.failed.connect(sink.on_failed)
    worker.finished.connect(sink.on_finished)
    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.start()
    return thread


def test_events_arrive_batched_in_gui_thread(qtbot):
    trainer = FakeTrainer(steps=2000)
    worker, sink = TrainWorker(lambda: trainer, blas_threads=1), Sink()
    thread = start(worker, sink)
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        pass
    thread.wait(5000)
    assert sink.steps == list(range(1, 2001))
    assert len(sink.batches) < 2000  # fast steps are grouped, not one signal each
    assert sink.threads == {threading.get_ident()}
    assert threading.get_ident() not in trainer.threads_seen
    summary, final = sink.finished[0]
    assert summary.reason == "completed" and final == {"step": 2000}


def test_pause_resume_stop(qtbot):
    trainer = FakeTrainer(steps=10_000, step_s=0.002)
    worker, sink = TrainWorker(lambda: trainer, blas_threads=1), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: len(sink.steps) >= 3, timeout=10_000)
    with qtbot.waitSignal(worker.paused, timeout=5000) as paused:
        worker.request_pause()
    parked = paused.args[0]
    worker.request_snapshot("generate")  # served while paused
    qtbot.waitUntil(lambda: len(sink.snapshots) == 1, timeout=5000)
    assert sink.snapshots[0] == ({"step": parked}, "generate")
    assert trainer.step == parked
    with qtbot.waitSignal(worker.resumed, timeout=5000):
        worker.request_resume()
    qtbot.waitUntil(lambda: trainer.step > parked + 2, timeout=5000)
    worker.request_pause()
    qtbot.waitSignal(worker.paused, timeout=5000).wait()
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.request_stop()  # stop also wakes a paused worker
    thread.wait(5000)
    assert sink.finished[0][0].reason == "stopped"
    assert sink.steps == list(range(1, trainer.step + 1))


def test_failure_reports_last_good_model(qtbot):
    exc = TrainingDiverged("The loss became NaN at step 7.", step=7)
    worker, sink = TrainWorker(lambda: FakeTrainer(fail_at=7, exc=exc), blas_threads=1), Sink()
    thread = start(worker, sink)
    with qtbot.waitSignal(worker.failed, timeout=5000):
        pass
    thread.wait(5000)
    error, tb, last = sink.failures[0]
    assert error is exc and "TrainingDiverged" in tb and last == {"step": 7}
    assert sink.steps == list(range(1, 7))


def test_blas_thread_count_is_measured(qtbot):
    worker, sink = TrainWorker(lambda: FakeTrainer(steps=400, step_s=0.004), max_threads=2), Sink()
    chosen = []

    class Info(QObject):
        @Slot(int, str)
        def on(self, n, text) -> None:
            chosen.append((n, text))

    info = Info()
    worker.blas_chosen.connect(info.on)
    thread = start(worker, sink)
    with qtbot.waitSignal(worker.finished, timeout=20_000):
        pass
    thread.wait(5000)
    assert chosen and chosen[0][0] in (1, 2) and "chars/s" in chosen[0][1]


def test_stream_worker_cancel(qtbot):
    def chars():
        while True:
            yield "x"

    worker = StreamWorker(chars)
    got: list[str] = []
    done: list[bool] = []

    class Recv(QObject):
        @Slot(str)
        def text(self, t) -> None:
            got.append(t)

        @Slot(bool)
        def fin(self, ok) -> None:
            done.append(ok)

    recv = Recv()
    worker.text.connect(recv.text)
    worker.finished.connect(recv.fin)
    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.start()
    qtbot.waitUntil(lambda: len(got) >= 2, timeout=5000)
    worker.cancel()
    qtbot.waitUntil(lambda: done == [False], timeout=5000)
    thread.wait(5000)
