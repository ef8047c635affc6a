"""Thin QThread adapters: the trainer generator, the text generator and one-shot jobs.

Each worker is a QObject moved to its own QThread. It pulls from a plain Python generator and
re-emits what it yields as immutable snapshots, batched so the GUI receives at most ~30 batches a
second. Pause, stop and snapshot requests are cooperative: they are served between two pulls.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal, Slot

from core import parallel
from core.events import EvalEvent, RollbackEvent, StepEvent

EMIT_INTERVAL_S = 1 / 30  # at most this many batches of events per second reach the GUI
# the purpose of the snapshot taken after each evaluation when ``snapshot_each_eval`` is on
EVAL_SNAPSHOT = "eval"


class TrainerLike(Protocol):
    """What the worker needs of ``core.trainer.Trainer`` (a fake one in the tests)."""

    def run(self) -> Any: ...
    def request_stop(self) -> None: ...
    def snapshot(self) -> Any: ...


def describe_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


class _Batcher:
    """Collects items and says when the batch is due, so emits stay below ~30 Hz."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.items: list[Any] = []
        self.last = 0.0

    def add(self, item: Any) -> bool:
        self.items.append(item)
        return time.perf_counter() - self.last >= self.interval_s

    def take(self) -> tuple[Any, ...]:
        out, self.items = tuple(self.items), []
        self.last = time.perf_counter()
        return out


class TrainWorker(QObject):
    """Runs ``Trainer.run()`` on its thread and re-emits its events in batches.

    ``factory`` builds the trainer on the worker thread (it may be slow: it splits and encodes the
    text). ``blas_threads`` is a fixed BLAS thread count, or ``None`` to measure 1 against 2 threads
    on the first real steps and keep the faster (the measured steps are kept; none is wasted).

    ``recorder_factory`` (optional) builds a ``core.runs.RunRecorder`` on this thread once the
    trainer exists; every event goes to it here, so the run store is written in batches off the
    GUI thread, and it is finished before ``finished``/``failed`` is emitted.
    """

    started = Signal(int)  # first step of this session (0 for a new model)
    events = Signal(object)  # tuple of core.events objects, oldest first
    blas_chosen = Signal(int, str)  # thread count, a sentence explaining the measurement
    paused = Signal(int)  # step at which the trainer is parked
    resumed = Signal()
    # ModelFile copy, purpose given to request_snapshot (an object: it may hold a path)
    snapshot_ready = Signal(object, object)
    failed = Signal(object, str, object)  # exception, traceback text, last good ModelFile or None
    finished = Signal(object, object)  # TrainSummary, final ModelFile
    recording = Signal(object)  # the run store's id of this run
    record_warning = Signal(str)  # the run store failed: one sentence (training goes on)

    def __init__(
        self,
        factory: Callable[[], TrainerLike],
        *,
        blas_threads: int | None = None,
        max_threads: int = 2,
        interval_s: float = EMIT_INTERVAL_S,
        recorder_factory: Callable[[Callable[[str], None]], Any] | None = None,
    ) -> None:
        super().__init__()
        self._factory = factory
        self._recorder_factory = recorder_factory
        self._recorder: Any = None
        self._blas_threads = blas_threads
        self._max_threads = max_threads
        self._batch = _Batcher(interval_s)
        self._cond = threading.Condition()
        self._pause = False
        self._stop = False
        self._requests: list[str] = []
        self._trainer: TrainerLike | None = None
        self.last_step = 0
        self.final_model: Any = None  # set on the worker thread just before it ends
        # a copy of the model right after each evaluation, as snapshot_ready(model, EVAL_SNAPSHOT):
        # the Inspect view's time-lapse needs the weights of every evaluation, not the newest
        self.snapshot_each_eval = False

    # --- called from the GUI thread (thread-safe) ---------------------------------------------
    def request_pause(self) -> None:
        with self._cond:
            self._pause = True

    def request_resume(self) -> None:
        with self._cond:
            self._pause = False
            self._cond.notify_all()

    def request_stop(self) -> None:
        with self._cond:
            self._stop = True
            trainer = self._trainer
            self._cond.notify_all()
        if trainer is not None:
            trainer.request_stop()

    def request_snapshot(self, purpose: str) -> None:
        """Ask for a copy of the model, taken between two steps; ``snapshot_ready`` answers."""
        with self._cond:
            self._requests.append(purpose)
            self._cond.notify_all()

    # --- runs on the worker thread ------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        trainer = None
        try:
            with parallel.blas_thread_count(self._blas_threads or self._max_threads):
                trainer = self._factory()
                with self._cond:
                    self._trainer = trainer
                    stop = self._stop
                if stop:
                    trainer.request_stop()
                self._start_recording()
                gen = trainer.run()
                self.started.emit(int(getattr(trainer, "step", 0)))
                summary = self._pull(trainer, gen)
            self._flush()
            final = self.final_model = trainer.snapshot()
            if self._recorder is not None:
                self._recorder.finish(summary=summary)
            self._serve_requests(trainer, final)
            self.finished.emit(summary, final)
        except Exception as exc:  # every failure reaches the GUI as a signal, never a crash
            self._flush()
            if self._recorder is not None:
                self._recorder.finish(error=exc)
            last = None
            if trainer is not None:
                try:
                    last = self.final_model = trainer.snapshot()
                except Exception:
                    last = None
            self.failed.emit(exc, describe_exception(exc), last)
        self.thread().quit()  # the QThread's event loop ends once this slot returns

    def _pull(self, trainer: TrainerLike, gen: Iterator[Any]) -> Any:
        chooser = parallel.ThreadChooser(self._max_threads) if self._blas_threads is None else None
        prev_chars = None
        while True:
            self._serve_requests(trainer)
            self._wait_while_paused(trainer)
            t0 = time.perf_counter()  # only the trainer's own work is timed, never a pause
            try:
                event = next(gen)
            except StopIteration as done:
                return done.value
            if self._recorder is not None:
                self._recorder(event)  # buffered; written in batches (never raises)
            if isinstance(event, StepEvent):
                seconds = time.perf_counter() - t0
                self.last_step = event.step
                if chooser is not None and prev_chars is not None:
                    decided = chooser.record(seconds, event.chars_seen - prev_chars)
                    if decided is not None:
                        self.blas_chosen.emit(decided, chooser.explain())
                        chooser = None
                prev_chars = event.chars_seen
            elif isinstance(event, EvalEvent) and self.snapshot_each_eval:
                self.snapshot_ready.emit(trainer.snapshot(), EVAL_SNAPSHOT)
            elif isinstance(event, RollbackEvent):
                prev_chars = None  # the step count went back: the next step has no predecessor
            if self._batch.add(event):
                self._flush()

    def _start_recording(self) -> None:
        if self._recorder_factory is None:
            return
        self._recorder = self._recorder_factory(self.record_warning.emit)
        if self._recorder.run_id is not None:
            self.recording.emit(self._recorder.run_id)

    def _flush(self) -> None:
        if self._batch.items:
            self.events.emit(self._batch.take())

    def _serve_requests(self, trainer: TrainerLike, final: Any = None) -> None:
        with self._cond:
            requests, self._requests = self._requests, []
        for purpose in requests:
            self.snapshot_ready.emit(final if final is not None else trainer.snapshot(), purpose)

    def _wait_while_paused(self, trainer: TrainerLike) -> None:
        with self._cond:
            if not self._pause or self._stop:
                return
        self._flush()
        self.paused.emit(self.last_step)
        while True:
            with self._cond:
                while self._pause and not self._stop and not self._requests:
                    self._cond.wait()
                if not self._requests:
                    break
            self._serve_requests(trainer)
        self.resumed.emit()


class StreamWorker(QObject):
    """Pulls strings from a generator (sampling) and emits them joined, ~30 times a second.

    ``cancel()`` is checked between two characters; ``finished`` says whether it ran to the end.
    With ``beside_training`` it holds BLAS to one thread while it runs: one character is
    matrix-vector work that would take a core from the trainer's slices. Alone, it uses every
    thread BLAS is set to (L=2, H=512 on 2 cores: 2,467 against 873 characters a second).
    """

    text = Signal(str)
    failed = Signal(object, str)
    finished = Signal(bool)

    def __init__(
        self,
        factory: Callable[[], Iterator[str]],
        *,
        beside_training: bool = False,
        interval_s: float = EMIT_INTERVAL_S,
    ) -> None:
        super().__init__()
        self._factory = factory
        self._beside_training = beside_training
        self._cancel = threading.Event()
        self._batch = _Batcher(interval_s)

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        completed = False
        try:
            blas = (
                parallel.single_threaded_blas()
                if self._beside_training
                else contextlib.nullcontext()
            )
            with blas:
                gen = self._factory()
                try:
                    for chunk in gen:
                        if self._cancel.is_set():
                            break
                        if self._batch.add(chunk):
                            self.text.emit("".join(self._batch.take()))
                    else:
                        completed = True
                finally:
                    close = getattr(gen, "close", None)
                    if close is not None:
                        close()
            if self._batch.items:
                self.text.emit("".join(self._batch.take()))
        except Exception as exc:
            if self._batch.items:
                self.text.emit("".join(self._batch.take()))
            self.failed.emit(exc, describe_exception(exc))
        self.finished.emit(completed)
        self.thread().quit()


class TaskWorker(QObject):
    """Runs one function off the GUI thread (load a text or a model, save, calibrate).

    ``on_done`` and ``on_failed`` are the caller's callbacks, kept here for the slot that
    receives ``done``/``failed`` on the GUI thread (``Controller.run_task``)."""

    done = Signal(object)  # result
    failed = Signal(object, str)  # exception, traceback text

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__()
        self._fn = fn
        self.on_done: Callable[[Any], None] = lambda result: None
        self.on_failed: Callable[[Exception, str], None] = lambda exc, tb: None

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:
            self.failed.emit(exc, describe_exception(exc))
        else:
            self.done.emit(result)
        self.thread().quit()
