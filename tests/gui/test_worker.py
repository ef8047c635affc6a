"""The generic QThread worker driven by plain generators: batching, pause/resume/stop (passed on,
or ending the pull), snapshots, errors; and the generation's BLAS hold.

Waits poll what a GUI-thread Sink received (qtbot.waitSignal on a worker's signal would run
its callback in the worker thread, the PySide6 behaviour the app avoids too)."""

from __future__ import annotations

import threading

import pytest
from charlstm_core.config import GenerationConfig
from charlstm_core.engine import parallel
from charlstm_core.errors import TrainingDiverged
from charlstm_core.events import StepEvent
from PySide6.QtCore import QObject, QThread, Slot

from charlstm_gui.controller.generate import characters
from charlstm_gui.worker import GeneratorWorker

from .fakes import FakeModel, FakeTrainer


class Sink(QObject):
    """Lives in the GUI thread and records what the worker emits (slots only, never lambdas)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple] = []
        self.threads: set[int] = set()
        self.snapshots: list = []
        self.returned: list = []
        self.errors: list = []
        self.aborted = 0
        self.finished = 0
        self.paused = 0
        self.resumed = 0

    @Slot(object)
    def on_yielded(self, batch) -> None:
        self.threads.add(threading.get_ident())
        self.batches.append(batch)

    @Slot(object, object)
    def on_snapshot(self, snap, purpose) -> None:
        self.snapshots.append((snap, purpose))

    @Slot(object)
    def on_returned(self, value) -> None:
        self.returned.append(value)

    @Slot(object, str)
    def on_errored(self, exc, tb) -> None:
        self.errors.append((exc, tb))

    @Slot()
    def on_aborted(self) -> None:
        self.aborted += 1

    @Slot()
    def on_finished(self) -> None:
        self.finished += 1

    @Slot()
    def on_paused(self) -> None:
        self.paused += 1

    @Slot()
    def on_resumed(self) -> None:
        self.resumed += 1

    @property
    def items(self) -> list:
        return [item for batch in self.batches for item in batch]

    @property
    def steps(self) -> list[int]:
        return [e.step for e in self.items if isinstance(e, StepEvent)]


def start(worker: GeneratorWorker, sink: Sink) -> QThread:
    worker.yielded.connect(sink.on_yielded)
    worker.snapshot_ready.connect(sink.on_snapshot)
    worker.returned.connect(sink.on_returned)
    worker.errored.connect(sink.on_errored)
    worker.aborted.connect(sink.on_aborted)
    worker.finished.connect(sink.on_finished)
    worker.paused.connect(sink.on_paused)
    worker.resumed.connect(sink.on_resumed)
    thread = QThread()
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    thread.start()
    return thread


def test_a_plain_generator_arrives_batched_in_the_gui_thread_then_its_value(qtbot):
    pulled_in: set[int] = set()

    def numbers():
        for i in range(2000):
            pulled_in.add(threading.get_ident())
            yield i
        return "done"

    worker, sink = GeneratorWorker(numbers), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: sink.finished == 1, timeout=10_000)
    thread.wait(5000)
    assert sink.items == list(range(2000))
    assert len(sink.batches) < 2000  # fast items are grouped, not one signal each
    assert sink.threads == {threading.get_ident()} and threading.get_ident() not in pulled_in
    assert sink.returned == ["done"] and worker.completed and worker.result == "done"
    assert sink.errors == [] and sink.aborted == 0


def test_pause_resume_and_a_stop_passed_on_to_the_source(qtbot):
    trainer = FakeTrainer(steps=10_000, step_s=0.002)
    worker = GeneratorWorker(trainer.run, on_stop=trainer.request_stop, snapshot=trainer.snapshot)
    sink = Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: len(sink.steps) >= 3, timeout=10_000)
    worker.request_pause()
    qtbot.waitUntil(lambda: sink.paused == 1, timeout=5000)
    parked = trainer.step
    assert sink.steps == list(range(1, parked + 1))  # flushed before it parked
    worker.request_snapshot("generate")  # served while paused
    qtbot.waitUntil(lambda: len(sink.snapshots) == 1, timeout=5000)
    assert sink.snapshots[0] == (FakeModel(parked), "generate") and trainer.step == parked
    worker.request_resume()
    qtbot.waitUntil(lambda: sink.resumed == 1 and trainer.step > parked + 2, timeout=5000)
    worker.request_pause()
    qtbot.waitUntil(lambda: sink.paused == 2, timeout=5000)
    worker.request_stop()  # also wakes a paused worker; the source ends its run itself
    qtbot.waitUntil(lambda: sink.finished == 1, timeout=5000)
    thread.wait(5000)
    assert sink.returned[0].reason == "stopped" and sink.aborted == 0
    assert sink.steps == list(range(1, trainer.step + 1))
    assert threading.get_ident() not in trainer.threads_seen


def test_a_stop_without_a_source_to_tell_ends_the_pull_and_closes_it(qtbot):
    closed = threading.Event()

    def forever():
        try:
            while True:
                yield "x"
        finally:
            closed.set()

    worker, sink = GeneratorWorker(forever), Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: len(sink.items) >= 2, timeout=5000)
    worker.request_stop()
    qtbot.waitUntil(lambda: sink.finished == 1, timeout=5000)
    thread.wait(5000)
    assert sink.aborted == 1 and sink.returned == [] and not worker.completed
    assert closed.is_set()


def test_an_error_reaches_the_gui_after_the_items_before_it(qtbot):
    exc = TrainingDiverged("The loss became NaN at step 7.", step=7)
    trainer = FakeTrainer(fail_at=7, exc=exc)
    worker = GeneratorWorker(trainer.run, snapshot=trainer.snapshot)
    sink = Sink()
    worker.request_snapshot("after")  # answered even though the run fails
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: sink.finished == 1, timeout=5000)
    thread.wait(5000)
    error, tb = sink.errors[0]
    assert error is exc and "TrainingDiverged" in tb
    assert sink.steps == list(range(1, 7)) and sink.returned == []
    assert sink.snapshots and sink.snapshots[0][1] == "after"


def test_a_snapshot_after_chosen_items(qtbot):
    trainer = FakeTrainer(steps=30)
    worker = GeneratorWorker(trainer.run, snapshot=trainer.snapshot)
    worker.snapshot_after = lambda item: "tenth" if getattr(item, "step", 0) % 10 == 0 else None
    sink = Sink()
    thread = start(worker, sink)
    qtbot.waitUntil(lambda: sink.finished == 1, timeout=5000)
    thread.wait(5000)
    # the fake yields a step, an evaluation and a sample at each tenth step: three snapshots each
    steps = sorted({snap.step for snap, purpose in sink.snapshots if purpose == "tenth"})
    assert steps == [10, 20, 30]


def _sections_while_generating(beside_training: bool) -> int:
    import numpy as np
    from charlstm_core.config import ModelConfig
    from charlstm_core.engine.model import init_params
    from charlstm_core.files.modelfile import ModelFile
    from charlstm_core.files.vocab import Vocab

    vocab = Vocab.from_text("ab")
    mc = ModelConfig(vocab_size=vocab.size, hidden_size=8)
    model = ModelFile(config=mc, params=init_params(mc, np.random.default_rng(0)), vocab=vocab)
    request = GenerationConfig(prime="a", length=3, temperature=1.0, top_k=0, seed=1)
    gen = characters(model, request, beside_training=beside_training)
    next(gen)
    seen = parallel._sections  # single-threaded sections open while it runs
    gen.close()
    return seen


def test_a_generation_holds_blas_to_one_thread_only_beside_training():
    alone = _sections_while_generating(beside_training=False)
    beside = _sections_while_generating(beside_training=True)
    assert parallel._sections == 0
    if parallel._blas() is None:
        pytest.skip("threadpoolctl finds no BLAS library here, so there is no thread count to hold")
    assert (alone, beside) == (0, 1)
