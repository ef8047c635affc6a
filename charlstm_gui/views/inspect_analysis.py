"""The Inspect tab's analysis, run off the GUI thread: everything the view shows of a passage
(charlstm_core.insight.inspect's analysis, the units ranked by each detector, the gates'
saturation) in one
InspectResult, or the message of a problem the user can fix, or a Failure (a bug's traceback).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from charlstm_core.errors import CharLSTMError

from ..worker import describe_exception


@dataclass(frozen=True, eq=False)
class InspectResult:
    """One analysis of a passage by one model, made off the GUI thread."""

    step: int  # training step of the model (0 for a model without training state)
    source: str  # which model, in words
    analysis: Any  # charlstm_core.insight.inspect.Analysis
    ranking: dict[str, dict[str, list[Any]]]  # kind ("c", "h") → detector → [UnitScore]
    saturation: np.ndarray  # (L, 3, H, 2) gate saturation fractions


@dataclass(frozen=True)
class Failure:
    """An unexpected error of an analysis, reported by the GUI thread."""

    traceback: str


def analyse_passage(model: Any, text: str, source: str, beside_training: bool) -> Any:
    """Everything the view shows of ``text`` (runs on a worker thread). Returns an
    ``InspectResult``, the message of a problem the user can fix (a str), or a ``Failure``."""
    from charlstm_core.engine import parallel
    from charlstm_core.insight import inspect

    blas = parallel.single_threaded_blas() if beside_training else contextlib.nullcontext()
    try:
        with blas:  # beside a running training, leave it the cores (as generation does)
            a = inspect.analyse(model, text)
            signals = inspect.detectors(text)
            ranking = {kind: inspect.rank_units(a, signals, kind, top=3) for kind in ("c", "h")}
            saturation = inspect.gate_saturation(a)
    except CharLSTMError as exc:
        return str(exc)
    except MemoryError:
        return "Not enough memory to analyse this passage: choose a shorter one."
    except Exception as exc:  # a bug: the view must not wait for it forever
        return Failure(describe_exception(exc))
    step = model.train.step if getattr(model, "train", None) is not None else 0
    return InspectResult(step, source, a, ranking, saturation)


class AnalysisQueue:
    """One analysis at a time, through the controller's ``run_task`` (off the GUI thread):
    models that arrive while one runs wait (the 16 newest), and a result for a passage that
    changed meanwhile is dropped and the passage read anew with the newest model."""

    def __init__(
        self,
        controller: Any,
        passage: Callable[[], str],
        say: Callable[[str], None],
        show: Callable[[InspectResult], None],
        read_newest: Callable[[], None],
    ) -> None:
        self.ctl = controller
        self._passage, self._say, self._show, self._read_newest = passage, say, show, read_newest
        self.queue: deque[Any] = deque(maxlen=16)  # models waiting; None: read with the newest
        self.running = 0  # serial of the analysis running, 0 when none
        self._serial = 0

    def read(self, model: Any) -> None:
        """Analyse the current passage with ``model`` now, or when the running analysis ends."""
        if self.running:
            self.queue.append(model)
            return
        text = self._passage()
        if not text:
            return
        if len(text) < 2:
            self._say("The passage needs at least 2 characters.")
            return
        self._serial += 1
        self.running = serial = self._serial
        step = model.train.step if model.train is not None else 0
        source = f"the model at step {step:,}" if step else "the model"
        beside = self.ctl.state.value in ("starting", "training")
        self._say(f"Reading the passage with {source}…")
        self.ctl.run_task(
            lambda: analyse_passage(model, text, source, beside),
            lambda result: self._done(serial, result),
        )

    def _done(self, serial: int, result: Any) -> None:
        if serial != self.running:  # a newer analysis was asked for meanwhile
            return
        self.running = 0
        if isinstance(result, Failure):
            self._say("The analysis failed (see the error report).")
            self.ctl.internal_error.emit(result.traceback)
        elif isinstance(result, str):
            self._say(result)
        elif result.analysis.text == self._passage():
            self._show(result)
        elif self._passage() and not self.queue:  # the passage changed meanwhile: read it anew
            self.queue.append(None)
        if self.queue:
            model = self.queue.popleft()
            if model is None:
                self._read_newest()
            else:
                self.read(model)
