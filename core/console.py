"""Terminal plumbing of the ``charlstm`` command: the entry point, stop signals and warnings.

``main`` imports the command line under a note-taking SIGINT handler, so that a Ctrl-C while
NumPy is still loading ends quietly (exit 130) instead of printing a traceback.
``StopSignals`` turns SIGINT, SIGTERM and SIGHUP into a request to stop after the current step
and save (a session logout or ``kill`` loses nothing); the process then exits with the shell's
convention, 128 + the signal number.
``one_line_warnings`` shows a NumPy RuntimeWarning as one line instead of a source excerpt.
Only the standard library is imported here.
"""

from __future__ import annotations

import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PROG = "charlstm"
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # SIGHUP does not exist on Windows


def exit_status(signum: int) -> int:
    """The conventional status of a process ended by signal ``signum``: 128 + signum (130 for
    Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """While active (``with``), the first SIGINT, SIGTERM or SIGHUP calls ``on_stop`` (the
    trainer stops after the current step and saves) and prints ``message``; a second one raises
    KeyboardInterrupt (quit sooner: a save in progress is abandoned, the previous file stays).

    ``signum`` is the first signal received (None if none). Handlers can only be set in the
    main thread; elsewhere this does nothing.
    """

    def __init__(self, on_stop: Callable[[], None], message: Callable[[int], str]) -> None:
        self.on_stop = on_stop
        self.message = message
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_status(self) -> int:
        """128 + the signal received (130 when none was: a KeyboardInterrupt from elsewhere)."""
        return exit_status(self.signum if self.signum is not None else signal.SIGINT)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self.on_stop()
        try:  # best effort: the handler may have interrupted a write to stderr, or no terminal
            sys.stderr.write(self.message(signum))
            sys.stderr.flush()
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


@contextmanager
def one_line_warnings(write: Callable[[str], None]) -> Iterator[None]:
    """Show each warning (a NumPy overflow, say) once, as ``write("Category: message")``, instead
    of Python's two lines with a source excerpt; the previous display is restored after."""
    seen: set[tuple[type, str]] = set()
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        key = (category, str(message))
        if key not in seen:
            seen.add(key)
            write(f"{category.__name__}: {message}")

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: list[str] | None = None) -> int:
    """The ``charlstm`` entry point: ``core.cli.main``, imported here under a SIGINT handler
    that only takes note, so that a Ctrl-C while NumPy loads (which NumPy would turn into an
    ImportError full of traceback text) ends with status 130 and nothing else."""
    interrupted: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    except ValueError:  # not the main thread
        previous = None
    try:
        from .cli import main as cli_main
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        try:
            sys.stderr.write("\n")
        except (OSError, ValueError):
            pass
        return exit_status(signal.SIGINT)
    try:
        return cli_main(argv)
    except KeyboardInterrupt:  # between cli.main's own handlers and here
        return exit_status(signal.SIGINT)
