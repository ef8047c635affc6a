"""A fake trainer that yields real ``charlstm_core.events`` objects, for worker and controller
tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

from charlstm_core.events import EvalEvent, SampleEvent, StepEvent, TrainSummary


class AnyTextVocab:
    """A vocabulary that represents every character (so Continue is never blocked)."""

    def missing(self, text: str) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class FakeModel:
    """Stands for a ModelFile snapshot: only what the GUI reads of one."""

    step: int

    vocab = AnyTextVocab()

    @property
    def train(self) -> SimpleNamespace:
        return SimpleNamespace(step=self.step, best_val_loss=None, total_steps=0, corpus={})


class FakeTrainer:
    def __init__(
        self,
        steps: int = 50,
        step_s: float = 0.0,
        fail_at: int | None = None,
        exc: Exception | None = None,
    ) -> None:
        self.steps, self.step_s, self.fail_at, self.exc = steps, step_s, fail_at, exc
        self.step = 0
        self._stop = threading.Event()
        self.snapshots = 0
        self.threads_seen: set[int] = set()
        # what a training session reads of a trainer
        self.total_steps = steps
        self.device_label = "CPU"
        self.best_val_loss: float | None = None
        self.last_val_loss: float | None = None
        self.elapsed_s = 0.0
        self.lr_scale = 1.0
        self.duration_s = 0.0
        self.chars_per_sec: float | None = None

    def save(self, path: str) -> str:
        return path

    def request_stop(self) -> None:
        self._stop.set()

    def snapshot(self) -> FakeModel:
        self.threads_seen.add(threading.get_ident())
        self.snapshots += 1
        return FakeModel(self.step)

    def run(self):
        while self.step < self.steps and not self._stop.is_set():
            self.threads_seen.add(threading.get_ident())
            if self.step_s:
                time.sleep(self.step_s)
            self.step += 1
            if self.fail_at == self.step:
                raise self.exc or RuntimeError("boom")
            yield StepEvent(
                self.step,
                self.steps,
                self.step / 10,
                self.step * 64,
                4.0 / self.step,
                1e-3,
                1.0,
                1000.0,
                self.step * 0.01,
            )
            if self.step % 10 == 0:
                yield EvalEvent(self.step, 3.0 / self.step, 3.0 / self.step, self.step * 0.01)
                yield SampleEvent(self.step, "abc", 0.8, 3.0 / self.step)
        reason = "stopped" if self._stop.is_set() else "completed"
        return TrainSummary(self.step, reason, None, 0.5, None)
