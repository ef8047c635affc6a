"""The live views' budget: while a run trains, what it shows is redrawn at most ``LIVE_HZ`` times
a second, the newest state always, the last one always.

The GUI thread paints in Python, under the GIL, on cores the training needs whole: each redraw
of the loss plot, the status bar or a text pane wakes it and re-lays out widgets. The user sees
no difference between 30 redraws a second and 5 of a curve that moves by a pixel, but the
training does (``benchmarks/bench_app_vs_cli.py`` measures the GUI thread's share of a core and
the app's steps against the command line's). The event loop itself still runs at full rate: a
click, a key or a resize is answered at once; only what the training's events change waits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

LIVE_HZ = 5  # redraws a second of what a training changes (the plot, status bar, samples)


class Throttle:
    """Calls ``fn`` with the newest arguments at most ``hz`` times a second.

    A call inside the interval replaces any one waiting, which is made when the interval ends,
    so the last always lands; ``flush()`` makes the waiting call now, ``cancel()`` drops it.
    ``calls`` counts the calls of ``fn`` made (tests and benchmarks)."""

    def __init__(self, fn: Callable[..., None], hz: float, parent: QObject | None) -> None:
        self.fn = fn
        self.interval_s = 1 / hz
        self.clock: Callable[[], float] = time.monotonic  # tests give a fake one
        self.calls = 0
        self._last = -math.inf
        self._pending: tuple | None = None
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    def __call__(self, *args: Any) -> None:
        self._pending = args
        wait = self._last + self.interval_s - self.clock()
        if wait <= 0:
            self.flush()
        elif not self._timer.isActive():
            self._timer.start(math.ceil(1000 * wait))

    @property
    def waiting(self) -> bool:
        """A call is waiting for its interval to end."""
        return self._pending is not None

    def flush(self) -> None:
        """Make the waiting call now (nothing when none waits)."""
        self._timer.stop()
        if self._pending is None:
            return
        args, self._pending = self._pending, None
        self._last = self.clock()
        self.calls += 1
        self.fn(*args)

    def cancel(self) -> None:
        """Drop the waiting call."""
        self._timer.stop()
        self._pending = None
