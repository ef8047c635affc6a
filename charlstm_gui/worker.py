"""Thin QThread adapters: one generator worker, two uses of it, and a single-call worker.

``GeneratorWorker`` is a QObject moved to its own QThread. It pulls from a plain Python
generator and re-emits what it yields, batched so the GUI receives at most ~30 batches a second.
Pause, stop and snapshot requests are cooperative: they are served between two pulls.
``TrainWorker`` pulls the trainer's events, ``StreamWorker`` the characters of a generation;
``TaskWorker`` runs one function.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from charlstm_core.engine import parallel
from charlstm_core.events import EvalEvent, RollbackEvent, StepEvent
from PySide6.QtCore import QObject, Signal, Slot

EMIT_INTERVAL_S = 1 / 30  # at most this many batches of events per second reach the GUI
# the purpose of the snapshot taken after each evaluation when ``snapshot_each_eval`` is on
EVAL_SNAPSHOT = "eval"


class TrainerLike(Protocol):
    """What the worker needs of ``charlstm_core.training.trainer.Trainer`` (a fake one in the
    tests)."""

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


class GeneratorWorker(QObject):
    """Pulls from a generator on its thread; superqt's ``GeneratorWorker`` shape.

    Between two pulls it serves the GUI thread's requests: a snapshot (``snapshot_ready``, with
    what ``snapshot()`` returns and the caller's purpose), a pause (it parks until resumed, still
    serving snapshots) and a stop. What the generator yields is batched and handed to
    ``emit_batch`` at most ``1 / interval_s`` times a second. Subclasses say what an item means
    (``on_item``), how a batch is emitted, what a snapshot is and whether a stop ends the pull
    here (``stop_ends_pull``) or is passed to the generator's source (``on_stop``), which then
    ends it itself.
    """

    paused = Signal(int)  # ``position`` (the last step of a training) where it parked
    resumed = Signal()
    snapshot_ready = Signal(object, object)  # snapshot(), the purpose given to request_snapshot

    stop_ends_pull = True

    def __init__(self, interval_s: float = EMIT_INTERVAL_S) -> None:
        super().__init__()
        self._batch = _Batcher(interval_s)
        self._cond = threading.Condition()
        self._pause = False
        self._stop = False
        self._requests: list[Any] = []
        self.position = 0

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
            self._cond.notify_all()
        self.on_stop()

    def request_snapshot(self, purpose: Any) -> None:
        """Ask for ``snapshot()`` taken between two pulls; ``snapshot_ready`` answers."""
        with self._cond:
            self._requests.append(purpose)
            self._cond.notify_all()

    # --- what a subclass says -----------------------------------------------------------------
    def on_stop(self) -> None:
        """A stop was asked (GUI thread): pass it on to what the generator pulls from."""

    def on_item(self, item: Any, seconds: float) -> None:
        """One item, pulled in ``seconds`` (worker thread), before it joins the batch."""

    def emit_batch(self, items: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def snapshot(self) -> Any:
        return None

    # --- runs on the worker thread ------------------------------------------------------------
    def pull(self, gen: Iterator[Any]) -> tuple[bool, Any]:
        """Pull ``gen`` to its end: (True, its return value); (False, None) when a stop ended
        the pull first (``stop_ends_pull``). Only the generator's own work is timed."""
        while True:
            self.serve_requests()
            self._wait_while_paused()
            t0 = time.perf_counter()
            try:
                item = next(gen)
            except StopIteration as done:
                return True, done.value
            if self.stop_ends_pull and self._stop:
                return False, None
            self.on_item(item, time.perf_counter() - t0)
            if self._batch.add(item):
                self.flush()

    def flush(self) -> None:
        if self._batch.items:
            self.emit_batch(self._batch.take())

    def serve_requests(self, final: Any = None) -> None:
        """Answer the snapshot requests: with ``final`` when given (the run has ended)."""
        with self._cond:
            requests, self._requests = self._requests, []
        for purpose in requests:
            self.snapshot_ready.emit(final if final is not None else self.snapshot(), purpose)

    def _wait_while_paused(self) -> None:
        with self._cond:
            if not self._pause or self._stop:
                return
        self.flush()
        self.paused.emit(self.position)
        while True:
            with self._cond:
                while self._pause and not self._stop and not self._requests:
                    self._cond.wait()
                if not self._requests:
                    break
            self.serve_requests()
        self.resumed.emit()


class TrainWorker(GeneratorWorker):
    """Runs ``Trainer.run()`` on its thread and re-emits its events in batches.

    ``factory`` builds the trainer on the worker thread (it may be slow: it splits and encodes the
    text). ``blas_threads`` is a fixed BLAS thread count, or ``None`` to measure 1 against 2 threads
    on the first real steps and keep the faster (``charlstm_core.engine.parallel.ThreadChooser``;
    the
    measured steps are kept, none is wasted).

    ``recorder_factory`` (optional) builds a ``charlstm_core.runs.RunRecorder`` on this thread once
    the trainer exists; every event goes to it here, so the run store is written in batches off the
    GUI thread, and it is finished before ``finished``/``failed`` is emitted.
    """

    started = Signal(int)  # first step of this session (0 for a new model)
    events = Signal(object)  # tuple of charlstm_core.events objects, oldest first
    blas_chosen = Signal(int, str)  # thread count, a sentence explaining the measurement
    failed = Signal(object, str, object)  # exception, traceback text, last good ModelFile or None
    finished = Signal(object, object)  # TrainSummary, final ModelFile
    recording = Signal(object)  # the run store's id of this run
    record_warning = Signal(str)  # the run store failed: one sentence (training goes on)

    stop_ends_pull = False  # the trainer ends its run itself, with a summary and a checkpoint

    def __init__(
        self,
        factory: Callable[[], TrainerLike],
        *,
        blas_threads: int | None = None,
        max_threads: int = 2,
        interval_s: float = EMIT_INTERVAL_S,
        recorder_factory: Callable[[Callable[[str], None]], Any] | None = None,
    ) -> None:
        super().__init__(interval_s)
        self._factory = factory
        self._recorder_factory = recorder_factory
        self._recorder: Any = None
        self._blas_threads = blas_threads
        self._max_threads = max_threads
        self._trainer: TrainerLike | None = None
        self._chooser: parallel.ThreadChooser | None = None
        self._prev_chars: int | None = None
        self.final_model: Any = None  # set on the worker thread just before it ends
        # a copy of the model right after each evaluation, as snapshot_ready(model, EVAL_SNAPSHOT):
        # the Inspect view's time-lapse needs the weights of every evaluation, not the newest
        self.snapshot_each_eval = False

    @property
    def last_step(self) -> int:
        return self.position

    def on_stop(self) -> None:
        with self._cond:
            trainer = self._trainer
        if trainer is not None:
            trainer.request_stop()

    def snapshot(self) -> Any:
        assert self._trainer is not None
        return self._trainer.snapshot()

    def emit_batch(self, items: tuple[Any, ...]) -> None:
        self.events.emit(items)

    @Slot()
    def run(self) -> None:
        trainer = None
        # the window, the Inspect view's analysis and generation come first
        # (core/engine/parallel.py)
        parallel.lower_priority(parallel.TRAINING_NICE)
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
                if self._blas_threads is None:
                    self._chooser = parallel.ThreadChooser(self._max_threads)
                _, summary = self.pull(gen)
            self.flush()
            final = self.final_model = trainer.snapshot()
            if self._recorder is not None:
                self._recorder.finish(summary=summary)
            self.serve_requests(final)
            self.finished.emit(summary, final)
        except Exception as exc:  # every failure reaches the GUI as a signal, never a crash
            self.flush()
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

    def on_item(self, event: Any, seconds: float) -> None:
        if self._recorder is not None:
            self._recorder(event)  # buffered; written in batches (never raises)
        if isinstance(event, StepEvent):
            self.position = event.step
            chooser = self._chooser
            if chooser is not None and self._prev_chars is not None:
                decided = chooser.record(seconds, event.chars_seen - self._prev_chars)
                if decided is not None:
                    self.blas_chosen.emit(decided, chooser.explain())
                    self._chooser = None
            self._prev_chars = event.chars_seen
        elif isinstance(event, EvalEvent) and self.snapshot_each_eval:
            self.snapshot_ready.emit(self.snapshot(), EVAL_SNAPSHOT)
        elif isinstance(event, RollbackEvent):
            self._prev_chars = None  # the step count went back: the next step has no predecessor

    def _start_recording(self) -> None:
        if self._recorder_factory is None:
            return
        self._recorder = self._recorder_factory(self.record_warning.emit)
        if self._recorder.run_id is not None:
            self.recording.emit(self._recorder.run_id)


class StreamWorker(GeneratorWorker):
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
        super().__init__(interval_s)
        self._factory = factory
        self._beside_training = beside_training

    def cancel(self) -> None:
        self.request_stop()

    def emit_batch(self, items: tuple[Any, ...]) -> None:
        self.text.emit("".join(items))

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
                    completed, _ = self.pull(gen)
                finally:
                    close = getattr(gen, "close", None)
                    if close is not None:
                        close()
            self.flush()
        except Exception as exc:
            self.flush()
            self.failed.emit(exc, describe_exception(exc))
        self.finished.emit(completed)
        self.thread().quit()


class TaskWorker(QObject):
    """Runs one function off the GUI thread (load a text or a model, save, calibrate): the
    single-call variant of ``GeneratorWorker`` (superqt's ``FunctionWorker``).

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
