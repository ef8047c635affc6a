"""The ``charlstm`` command line; ``main`` is its entry point.

``main`` imports the parser (and with it NumPy) under a SIGINT handler that only takes note, so
that a Ctrl-C while NumPy is still loading ends quietly (exit 130) instead of printing a
traceback. Only light standard modules are imported here and by ``console`` for that reason
(tests/test_faults.py sends a Ctrl-C at start-up).
"""

from __future__ import annotations

import signal
import sys

from .console import exit_status


def main(argv: list[str] | None = None) -> int:
    """The ``charlstm`` entry point: ``charlstm_core.cli.parser.main``, imported here under a SIGINT
    handler that only takes note, so that a Ctrl-C while NumPy loads (which NumPy would turn into an
    ImportError full of traceback text) ends with status 130 and nothing else."""
    interrupted: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    except ValueError:  # not the main thread
        previous = None
    try:
        from .parser import main as parser_main
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
        return parser_main(argv)
    except KeyboardInterrupt:  # between the parser's own handlers and here
        return exit_status(signal.SIGINT)
