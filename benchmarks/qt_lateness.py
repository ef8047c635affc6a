"""How late the Qt event loop runs, for the GUI benchmarks (bench_gui_latency, bench_runs_gui).

A QTimer is set to fire every TICK_MS; each tick notes by how many milliseconds it came later than
that since the one before (the first, since the meter was made), never less than 0.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QElapsedTimer, QTimer

TICK_MS = 10


class LatenessMeter:
    """The clock starts when the meter is made; ``start()`` starts the ticks, ``stop()`` ends
    them and returns each tick's lateness in ms, (N,) float64."""

    def __init__(self) -> None:
        self._late: list[float] = []
        self._clock = QElapsedTimer()
        self._clock.start()
        self._last = self._clock.nsecsElapsed()
        self._timer = QTimer()
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed()
        self._late.append(max(0.0, (now - self._last) / 1e6 - TICK_MS))
        self._last = now

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> np.ndarray:
        self._timer.stop()
        return np.array(self._late)
