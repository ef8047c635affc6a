"""The loss curve as growing NumPy buffers: appended from events, read by the plot and exporters.

Buffers double when full, so appending is amortised O(1) and the plot can take views of the first
``n`` items without copying; ``version`` changes on every append so the plot redraws only then.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from charlstm_core.files.writer import LOSS_CSV_HEADER


class Series:
    """Four parallel columns (step, chars seen, loss, wall-clock seconds) in doubling float64
    buffers; seconds are NaN where unknown (a curve read back from a model file)."""

    def __init__(self, capacity: int = 1024) -> None:
        self._data = np.empty((4, capacity))
        self.n = 0

    def append(self, step: float, chars: float, loss: float, seconds: float = math.nan) -> None:
        if self.n == self._data.shape[1]:
            grown = np.empty((4, 2 * self.n))
            grown[:, : self.n] = self._data
            self._data = grown
        self._data[:, self.n] = (step, chars, loss, seconds)
        self.n += 1

    def clear(self) -> None:
        self.n = 0

    def drop_after(self, step: float) -> None:
        """Forget the rows after ``step`` (steps are increasing): a rollback undid them."""
        self.n = int(np.searchsorted(self._data[0, : self.n], step, side="right"))

    @property
    def step(self) -> np.ndarray:
        return self._data[0, : self.n]

    @property
    def chars(self) -> np.ndarray:
        return self._data[1, : self.n]

    @property
    def loss(self) -> np.ndarray:
        return self._data[2, : self.n]

    @property
    def seconds(self) -> np.ndarray:
        return self._data[3, : self.n]


class LossHistory:
    """Training and validation loss of the current model, oldest first."""

    def __init__(self) -> None:
        self.train = Series(4096)
        self.val = Series(256)
        # (step, chars seen, event) of each self-healing rollback
        # (charlstm_core.events.RollbackEvent)
        self.rollbacks: list[tuple[int, int, Any]] = []
        self.version = 0
        self.rewrites = 0  # changes on every clear and rollback: rows may have been replaced

    def clear(self) -> None:
        self.train.clear()
        self.val.clear()
        self.rollbacks = []
        self.version += 1
        self.rewrites += 1

    def add_rollback(self, event: Any, chars_per_step: int) -> None:
        """Training rolled back to ``event.to_step``: the curve after it was undone."""
        self.train.drop_after(event.to_step)
        self.val.drop_after(event.to_step)
        self.rollbacks.append((event.to_step, event.to_step * chars_per_step, event))
        self.version += 1
        self.rewrites += 1

    def add_train(self, step: int, chars: int, loss: float, seconds: float = math.nan) -> None:
        self.train.append(step, chars, loss, seconds)
        self.version += 1

    def add_val(self, step: int, chars: int, loss: float, seconds: float = math.nan) -> None:
        self.val.append(step, chars, loss, seconds)
        self.version += 1

    def load(
        self, history: Mapping[str, np.ndarray], chars_per_step: int, rollbacks: tuple = ()
    ) -> None:
        """Replace the curve by a checkpoint's ``TrainState.history`` (and its rollbacks)."""
        self.clear()
        self.rollbacks = [(r.to_step, r.to_step * chars_per_step, r) for r in rollbacks]
        for step, loss in zip(
            history.get("train_step", ()), history.get("train_loss", ()), strict=True
        ):
            self.train.append(float(step), float(step) * chars_per_step, float(loss))
        for step, loss in zip(
            history.get("val_step", ()), history.get("val_loss", ()), strict=True
        ):
            self.val.append(float(step), float(step) * chars_per_step, float(loss))
        self.version += 1

    def best_val(self) -> float | None:
        finite = self.val.loss[np.isfinite(self.val.loss)]
        return float(finite.min()) if finite.size else None

    def csv_text(self, smoothed: np.ndarray | None = None) -> str:
        """The curve as CSV (header ``writer.LOSS_CSV_HEADER``, by which the one guarded writer
        knows a loss CSV it may replace): one row per training step, with its validation loss
        where one was measured."""
        val = {int(s): float(v) for s, v in zip(self.val.step, self.val.loss, strict=True)}
        out = io.StringIO(newline="")
        w = csv.writer(out)
        w.writerow(LOSS_CSV_HEADER)
        steps_written = set()
        for i in range(self.train.n):
            step = int(self.train.step[i])
            steps_written.add(step)
            sm = "" if smoothed is None else f"{smoothed[i]:.6g}"
            v = val.get(step)
            w.writerow(
                [
                    step,
                    int(self.train.chars[i]),
                    f"{self.train.loss[i]:.6g}",
                    sm,
                    "" if v is None else f"{v:.6g}",
                ]
            )
        for i in range(self.val.n):  # evaluations with no step row (e.g. step 0)
            step = int(self.val.step[i])
            if step not in steps_written:
                w.writerow([step, int(self.val.chars[i]), "", "", f"{self.val.loss[i]:.6g}"])
        return out.getvalue()


def ema(
    values: np.ndarray,
    smoothing: float,
    start: int = 0,
    out: np.ndarray | None = None,
    state: tuple[float, int] = (0.0, 0),
) -> tuple[np.ndarray, tuple[float, int]]:
    """Debiased exponential moving average of ``values[start:]`` written into ``out``.

    ``smoothing`` in [0, 1): weight of the past. ``state`` = (running sum, count) so new points can
    be added incrementally. Debiasing divides by ``1 - smoothing**count`` so the curve starts at the
    first value instead of near zero. Non-finite losses are passed through unsmoothed.
    """
    n = values.shape[0]
    if out is None or out.shape[0] < n:
        grown = np.empty(max(n, 1024) * 2)
        if out is not None:
            grown[: out.shape[0]] = out
        out = grown
    acc, count = state
    a = float(smoothing)
    for i in range(start, n):
        x = float(values[i])
        if not math.isfinite(x):
            out[i] = x
            continue
        acc = a * acc + (1.0 - a) * x
        count += 1
        out[i] = acc / (1.0 - a**count) if a > 0 else acc
    return out, (acc, count)
