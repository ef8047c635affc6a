"""Thin QThread adapters: one generic generator worker, and a single-call worker.

``GeneratorWorker`` (superqt's ``GeneratorWorker`` shape) is a QObject moved to its own QThread.
It pulls a plain Python generator and re-emits what it yields, batched so the GUI receives at
most ~30 batches a second; then what the generator returned, or the exception it raised. Pause,
stop and snapshot requests are cooperative: they are served between two pulls. It knows nothing
of what it pulls: the app starts one on a training session's ``run()`` (stop passed on to the
session, snapshots of its model) and one on a generation's characters (stop ends the pull).
``TaskWorker`` runs one function (superqt's ``FunctionWorker``).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

EMIT_INTERVAL_S = 1 / 30  # at most this many batches of items per second reach the GUI


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
    """Pulls ``func()`` (a generator) on its thread and re-emits it: superqt's shape.

    Signals, in order: ``started``; ``yielded`` (a tuple of items, oldest first, at most
    ``1 / interval_s`` times a second); then ``returned`` (the generator's value, after the
    snapshot requests still waiting were answered), ``errored`` (an exception it raised, with its
    traceback text) or ``aborted`` (a stop ended the pull), both of which drop such requests;
    ``finished`` last. ``result`` holds the returned value once the pull is over.

    Between two pulls it serves the GUI thread's requests: a snapshot (``snapshot_ready`` with
    what ``snapshot()`` returns and the caller's purpose; also after items for which
    ``snapshot_after(item)`` gives a purpose), a pause (it parks until resumed, still serving
    snapshots; ``paused``/``resumed``) and a stop. With ``on_stop`` a stop is passed on to what
    the generator pulls from, which then ends it itself (and ``returned`` follows); without, the
    pull ends at the next item and the generator is closed (``aborted``).
    """

    started = Signal()
    yielded = Signal(object)  # tuple of items
    returned = Signal(object)  # the generator's return value
    errored = Signal(object, str)  # exception, traceback text
    aborted = Signal()
    finished = Signal()
    paused = Signal()
    resumed = Signal()
    snapshot_ready = Signal(object, object)  # snapshot(), the purpose given to request_snapshot

    def __init__(
        self,
        func: Callable[[], Iterator[Any]],
        *,
        on_stop: Callable[[], None] | None = None,
        snapshot: Callable[[], Any] | None = None,
        interval_s: float = EMIT_INTERVAL_S,
    ) -> None:
        super().__init__()
        self._func = func
        self._on_stop = on_stop
        self._snapshot = snapshot
        self._batch = _Batcher(interval_s)
        self._cond = threading.Condition()
        self._pause = False
        self._stop = False
        self._requests: list[Any] = []
        self._fresh = False  # a snapshot was asked for since the paused loop last looked
        # called on the worker thread after each item: a purpose to snapshot for, or None
        self.snapshot_after: Callable[[Any], Any] | None = None
        self.completed = False  # the generator ran to its end (``returned`` was emitted)
        self.result: Any = None  # what it returned

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
        if self._on_stop is not None:
            self._on_stop()

    def request_snapshot(self, purpose: Any) -> None:
        """Ask for ``snapshot()`` taken between two pulls; ``snapshot_ready`` answers."""
        with self._cond:
            self._requests.append(purpose)
            self._fresh = True
            self._cond.notify_all()

    # --- runs on the worker thread ------------------------------------------------------------
    @Slot()
    def run(self) -> None:
        self.started.emit()
        gen = None
        try:
            gen = self._func()
            completed, value = self._pull(gen)
            self.flush()
            self.serve_requests(final=True)
            if completed:
                self.completed, self.result = True, value
                self.returned.emit(value)
            else:
                gen.close()
                self._drop_requests()
                self.aborted.emit()
        except Exception as exc:  # every failure reaches the GUI as a signal, never a crash
            self.flush()
            self._drop_requests()  # what it would copy may be half-changed by the failure
            self.errored.emit(exc, describe_exception(exc))
        self.finished.emit()
        self.thread().quit()  # the QThread's event loop ends once this slot returns

    def _pull(self, gen: Iterator[Any]) -> tuple[bool, Any]:
        """Pull ``gen`` to its end: (True, its return value); (False, None) when a stop ended
        the pull first (no ``on_stop``)."""
        while True:
            self.serve_requests()
            self._wait_while_paused()
            try:
                item = next(gen)
            except StopIteration as done:
                return True, done.value
            if self._on_stop is None and self._stop:
                return False, None
            if self._batch.add(item):
                self.flush()
            after = self.snapshot_after
            if after is not None:
                purpose = after(item)
                if purpose is not None:
                    self.flush()  # the snapshot follows the items before it
                    self.snapshot_ready.emit(self._take_snapshot(), purpose)

    def flush(self) -> None:
        if self._batch.items:
            self.yielded.emit(self._batch.take())

    def _take_snapshot(self) -> Any:
        return self._snapshot() if self._snapshot is not None else None

    def serve_requests(self, *, final: bool = False) -> None:
        """Answer the snapshot requests made since the last pull, each with its own snapshot.
        While ``snapshot()`` has nothing to copy yet (None) they wait for the next pull; once
        the pull is over (``final``) such requests are dropped."""
        while True:
            with self._cond:
                if not self._requests:
                    return
                purpose = self._requests[0]
            snap = self._take_snapshot()
            if snap is None and not final:
                return
            with self._cond:
                self._requests.pop(0)
            if snap is not None:
                self.snapshot_ready.emit(snap, purpose)

    def _drop_requests(self) -> None:
        with self._cond:
            self._requests.clear()

    def _wait_while_paused(self) -> None:
        with self._cond:
            if not self._pause or self._stop:
                return
        self.flush()
        self.paused.emit()
        while True:
            with self._cond:
                while self._pause and not self._stop and not self._fresh:
                    self._cond.wait()
                fresh, self._fresh = self._fresh, False
            if not fresh:  # resumed or stopped
                break
            self.serve_requests()
        self.resumed.emit()


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
