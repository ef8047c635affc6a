"""Generating text for the controller (``Generation``).

Text comes from the current model, or while training from a copy of its weights taken between
two steps (``GeneratorWorker.request_snapshot``), so training goes on; while a run is stopping,
the request waits for the final model (the controller says which: ``start``, ``wait``). The
characters come from ``characters``, pulled by a generic ``GeneratorWorker`` (a stop ends the
pull).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from charlstm_core.config import GenerationConfig
from PySide6.QtCore import QObject, Slot

from ..worker import GeneratorWorker
from .tasks import Feedback


def characters(mf: Any, request: GenerationConfig, *, beside_training: bool) -> Iterator[str]:
    """The characters ``request`` asks of the model ``mf``, one at a time.

    With ``beside_training`` BLAS is held to one thread while it runs: one character is
    matrix-vector work that would take a core from the trainer's slices. Alone, it uses every
    thread BLAS is set to (L=2, H=512 on 2 cores: 2,467 against 873 characters a second).
    """
    from charlstm_core import sample
    from charlstm_core.engine import parallel

    hold = parallel.single_threaded_blas() if beside_training else contextlib.nullcontext()
    with hold:
        yield from sample.generate(mf, **request.sampling())


class Generation(QObject):
    """One generation at a time: the request waiting for a model, or the worker pulling its
    characters; what it says goes out through the callbacks it is given (the controller's
    signals)."""

    def __init__(
        self,
        launch: Callable[[QObject], Any],
        feedback: Feedback,
        *,
        started: Callable[[str], None],
        text: Callable[[str], None],
        finished: Callable[[bool], None],
        beside_training: Callable[[], bool],
        parent: QObject | None = None,
    ) -> None:
        """``started(what it samples from)``, ``text(characters)``, ``finished(completed)``;
        ``beside_training()``: whether a run is training now (then BLAS keeps one thread)."""
        super().__init__(parent)
        self._launch, self.feedback = launch, feedback
        self._started, self._text, self._finished = started, text, finished
        self._beside_training = beside_training
        self.worker: GeneratorWorker | None = None  # pulling ``characters``
        self.pending: GenerationConfig | None = None  # waiting for a model to sample from

    @property
    def generating(self) -> bool:
        return self.worker is not None or self.pending is not None

    def wait(self, request: GenerationConfig) -> None:
        """Hold ``request`` until a copy of the model being trained arrives (``from_copy``,
        ``from_final``)."""
        self.pending = request
        self._started("the model being trained")

    def from_copy(self, mf: Any) -> None:
        """A copy of the model being trained, taken between two steps, for the waiting
        request."""
        if self.pending is not None:
            request, self.pending = self.pending, None
            step = mf.train.step if mf.train is not None else 0
            self.start(mf, request, f"the model being trained (step {step:,})")

    def from_final(self, mf: Any, source: str) -> None:
        """The run ended with model ``mf`` (None: none): the waiting request samples from it."""
        if self.pending is None or self.worker is not None:
            return
        request, self.pending = self.pending, None
        if mf is not None:
            self.start(mf, request, source)
        else:
            self._finished(False)

    def start(self, mf: Any, request: GenerationConfig, source: str) -> None:
        # beside a running training (not a paused one), generation must leave it the cores
        beside = self._beside_training()
        worker = GeneratorWorker(lambda: characters(mf, request, beside_training=beside))
        # to this object's own slots: a queued call reaches a slot of a QObject subclass
        worker.yielded.connect(self._on_text)
        worker.errored.connect(self._on_failed)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._started(source)
        self._launch(worker)

    def cancel(self) -> None:
        if self.pending is not None:
            self.pending = None
            self._finished(False)
        if self.worker is not None:
            self.worker.request_stop()

    def shutdown(self) -> None:
        """Closing: nothing waits any more, and the pull ends at its next character."""
        self.pending = None
        if self.worker is not None:
            self.worker.request_stop()

    @Slot(object)
    def _on_text(self, chars: tuple) -> None:
        self._text("".join(chars))

    @Slot(object, str)
    def _on_failed(self, exc: Exception, tb: str) -> None:
        self.feedback.failure(exc, tb, "Cannot generate")

    @Slot()
    def _on_finished(self) -> None:
        worker, self.worker = self.worker, None
        self._finished(worker is not None and worker.completed)  # it ran to its end
