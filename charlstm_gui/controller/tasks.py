"""Background work for the controller (``TasksMixin``, a part of ``Controller``).

Each worker is moved to its own QThread; a thread that has ended is dropped, with its worker,
from the GUI thread once it has really finished (never a blocking wait there). ``run_task`` runs
one function off the GUI thread and calls the caller's own callback with its result (or with
its exception): one callback per task, no tags to parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from charlstm_core.errors import CharLSTMError
from PySide6.QtCore import QObject, QThread

from ..worker import TaskWorker


class TasksMixin:
    """Worker threads and one-shot background tasks (a part of ``Controller``)."""

    # what the mixin uses of Controller (declared there, with the slots that receive the
    # workers' signals: a queued call reaches a slot of the QObject subclass itself)
    message: Any
    internal_error: Any
    sender: Callable[[], Any]
    _shut_down: bool
    _threads: dict[QThread, QObject]
    _ending: list[QThread]

    def _launch(self, worker: QObject) -> QThread:
        """Move ``worker`` to a new QThread (all its signals already connected) and start it."""
        if self._shut_down:
            raise RuntimeError("The controller is shut down; no new work can start.")
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self._threads[thread] = worker
        thread.start()
        return thread

    def run_task(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None],
        *,
        failed: Callable[[Exception, str], None] | None = None,
    ) -> None:
        """Run ``fn`` off the GUI thread, then ``done(result)`` on it; when ``fn`` raises,
        ``failed(exception, traceback text)``, by default: the engine's message under
        "Problem", anything else as a bug (an error report)."""
        if self._shut_down:
            return
        worker = TaskWorker(fn)
        worker.on_done, worker.on_failed = done, failed or self._task_failed
        worker.done.connect(self._on_task_done)
        worker.failed.connect(self._on_task_failed)
        self._launch(worker)

    def _task_failed(self, exc: Exception, tb: str) -> None:
        if isinstance(exc, CharLSTMError):
            self.message.emit("Problem", str(exc))
        else:
            self.internal_error.emit(tb)
