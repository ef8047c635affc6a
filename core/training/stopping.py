"""Stop signals: SIGINT (Ctrl-C), SIGTERM (``kill``, a logout) and SIGHUP (a closed terminal) stop
a training after the current step, and it saves; a second signal quits sooner.

The one policy of everything that trains in a main thread: ``charlstm train`` (through its
session), ``charlstm sweep`` and a sweep's worker processes. ``StopSignals`` holds the handlers
while it is active: the first signal calls ``on_stop`` (a training stops after its step and
saves), a later one raises ``KeyboardInterrupt`` where the main thread is (the step in progress is
abandoned and what there is saved; a save in progress is abandoned and the previous file stays).
What is printed is the caller's (``on_signal``); a process that ends so exits with the shell's
convention, 128 + the signal number (``exit_status``). Only the standard library is imported:
the command line installs handlers before NumPy has loaded.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # SIGHUP does not exist on Windows


def exit_status(signum: int) -> int:
    """The conventional status of a process ended by signal ``signum``: 128 + signum (130 for
    Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + int(signum)


class StopSignals:
    """While active (``with``), the first SIGINT, SIGTERM or SIGHUP calls ``on_stop(signum)`` and
    ``on_signal(signum)`` (say so); a later one raises KeyboardInterrupt (quit sooner).

    ``signum`` is the first signal received (None if none). Handlers can only be set in the main
    thread; elsewhere this does nothing (``active`` is False).
    """

    def __init__(
        self,
        on_stop: Callable[[int], None],
        on_signal: Callable[[int], None] | None = None,
        *,
        may_interrupt: Callable[[], bool] | None = None,
    ) -> None:
        self.on_stop = on_stop
        self.on_signal = on_signal
        # whether a later signal may raise KeyboardInterrupt now (a sweep's worker: only while
        # it trains a point); None: always
        self.may_interrupt = may_interrupt
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def active(self) -> bool:
        return bool(self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            if self.may_interrupt is None or self.may_interrupt():
                raise KeyboardInterrupt
            return
        self.signum = signum
        self.on_stop(signum)
        if self.on_signal is not None:
            try:  # best effort: the handler may have interrupted a write, or no terminal is left
                self.on_signal(signum)
            except (RuntimeError, OSError, ValueError):
                pass

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
