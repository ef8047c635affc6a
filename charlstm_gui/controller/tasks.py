"""Background work of the controller: every worker on its own QThread, and one-shot tasks.

``Tasks`` moves each worker to a new QThread and starts it; a thread that has ended is dropped,
with its worker, from the GUI thread once it has really finished (never a blocking wait there).
``run`` runs one function off the GUI thread and calls the caller's own callback with its result
(or with its exception): one callback per task, no tags to parse. ``Feedback`` is how every
service of the controller speaks to the user: through the controller's signals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from charlstm_core.errors import CharLSTMError
from PySide6.QtCore import QObject, QThread, QTimer, Slot

from ..worker import TaskWorker


@dataclass(frozen=True)
class Feedback:
    """What a service tells the user, through the controller: a problem they can fix
    (``message(title, text)``), a bug (``internal_error(traceback)``), what is loading or saving
    (``busy(what)``, "" when nothing)."""

    message: Callable[[str, str], None]
    internal_error: Callable[[str], None]
    busy: Callable[[str], None] = lambda what: None

    def failure(self, exc: Exception, tb: str, title: str = "Problem") -> None:
        """The engine's message under ``title``; anything else is a bug (an error report)."""
        if isinstance(exc, CharLSTMError):
            self.message(title, str(exc))
        else:
            self.internal_error(tb)


class Tasks(QObject):
    """The controller's worker threads: ``launch`` a worker, ``run`` a function off the GUI
    thread; after ``close`` nothing new starts (a QThread destroyed while running aborts)."""

    def __init__(self, feedback: Feedback, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.feedback = feedback
        self.threads: dict[QThread, QObject] = {}  # running (or not yet reaped), with its worker
        self.closed = False
        self._ending: list[QThread] = []

    def launch(self, worker: QObject) -> QThread:
        """Move ``worker`` to a new QThread (all its signals already connected) and start it."""
        if self.closed:
            raise RuntimeError("The controller is shut down; no new work can start.")
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self.threads[thread] = worker
        thread.start()
        return thread

    def run(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None],
        *,
        failed: Callable[[Exception, str], None] | None = None,
    ) -> None:
        """Run ``fn`` off the GUI thread, then ``done(result)`` on it; when ``fn`` raises,
        ``failed(exception, traceback text)``, by default ``Feedback.failure``."""
        if self.closed:
            return
        worker = TaskWorker(fn)
        worker.on_done, worker.on_failed = done, failed or self.feedback.failure
        # to this object's own slots: a queued call reaches a slot of a QObject subclass
        worker.done.connect(self._on_task_done)
        worker.failed.connect(self._on_task_failed)
        self.launch(worker)

    def wait(self, timeout_ms: int) -> bool:
        """Wait for every thread to end (closing); True when all did."""
        ok = True
        for thread in list(self.threads):
            ok = thread.wait(timeout_ms) and ok
        return ok

    def close(self) -> None:
        self.closed = True

    @Slot(object)
    def _on_task_done(self, result: Any) -> None:
        worker = self.sender()
        if isinstance(worker, TaskWorker):
            worker.on_done(result)

    @Slot(object, str)
    def _on_task_failed(self, exc: Exception, tb: str) -> None:
        worker = self.sender()
        if isinstance(worker, TaskWorker):
            worker.on_failed(exc, tb)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.sender()
        if isinstance(thread, QThread):
            self._ending.append(thread)
        self._reap()

    @Slot()
    def _reap(self) -> None:
        """Drop threads that have really ended (``finished`` comes just before the end), and with
        them their workers: both are then deleted from this thread, when no event can reach them
        (no ``deleteLater`` inside the dying thread, which crashed PySide6 now and then).

        Never a blocking wait here: the GUI thread polls until ``isFinished()`` instead.
        """
        still = []
        for thread in self._ending:
            if thread.isFinished():
                self.threads.pop(thread, None)
            else:
                still.append(thread)
        self._ending = still
        if still:
            QTimer.singleShot(5, self._reap)
