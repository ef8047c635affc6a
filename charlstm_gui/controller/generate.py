"""Generating text for the controller (``GenerateMixin``, a part of ``Controller``).

Text comes from the current model, or while training from a copy of its weights taken between
two steps (``GeneratorWorker.request_snapshot``), so training goes on; while a run is stopping,
the request waits for the final model. The characters come from ``characters``, pulled by a
generic ``GeneratorWorker`` (a stop ends the pull).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from charlstm_core.config import GenerationConfig

from ..worker import GeneratorWorker
from .state import State


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


class GenerateMixin:
    """Sampling from the current model or the one being trained (a part of ``Controller``)."""

    # what the mixin uses of Controller (declared there, with the slots that receive the
    # stream worker's signals: a queued call reaches a slot of the QObject subclass itself)
    message: Any
    internal_error: Any
    generation_started: Any
    generation_text: Any
    generation_finished: Any
    _launch: Callable[..., Any]

    def generate(self, request: GenerationConfig) -> bool:
        if self.generating:
            return False
        if self._train_worker is not None and self.state is not State.STOPPING:
            self._pending_generate = request  # sample from a copy taken between two steps
            self._train_worker.request_snapshot(self._generate_from_snapshot)
            self.generation_started.emit("the model being trained")
            return True
        if self._train_worker is not None:  # stopping: use the final model once it arrives
            self._pending_generate = request
            self.generation_started.emit("the model being trained")
            return True
        if self.model is None:
            self.message.emit("No model yet", "Train a model or open a model file first.")
            return False
        self._start_stream(self.model, request, self.model_source or "the current model")
        return True

    def _generate_from_snapshot(self, mf: Any) -> None:
        if self._pending_generate is not None:
            request, self._pending_generate = self._pending_generate, None
            step = mf.train.step if mf.train is not None else 0
            self._start_stream(mf, request, f"the model being trained (step {step:,})")

    def _start_stream(self, mf: Any, request: GenerationConfig, source: str) -> None:
        # beside a running training (not a paused one), generation must leave it the cores
        beside = self.state in (State.STARTING, State.TRAINING)
        worker = GeneratorWorker(lambda: characters(mf, request, beside_training=beside))
        worker.yielded.connect(self._on_stream_text)
        worker.errored.connect(self._on_stream_failed)
        worker.finished.connect(self._on_stream_finished)
        self._stream_worker = worker
        self.generation_started.emit(source)
        self._launch(worker)

    def cancel_generation(self) -> None:
        if self._pending_generate is not None:
            self._pending_generate = None
            self.generation_finished.emit(False)
        if self._stream_worker is not None:
            self._stream_worker.request_stop()
