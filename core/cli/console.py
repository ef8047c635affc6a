"""Terminal plumbing of the ``charlstm`` command: messages, progress, what a stop signal prints.

Everything the command line writes to stderr goes through here: one-line ``error``/``warn``/
``note`` messages (``UsageError`` is the command-line mistake, exit 2), ``Progress`` (training:
one rewritten line on a terminal, plain lines otherwise, samples as blocks, a JSON-lines log),
``EvalProgress`` (a rewritten line while ``eval`` reads a long text) and ``stop_message`` (what
the first SIGINT, SIGTERM or SIGHUP prints; what they do is charlstm_core.training.stopping's:
stop after the current step and save, then exit with 128 + the signal number).
``one_line_warnings`` shows a NumPy RuntimeWarning as one line instead of a source excerpt.
Only light standard modules are imported at the top: ``main`` runs this module's import before
its own Ctrl-C handler is in place, so every millisecond here is a moment where a Ctrl-C would
print a traceback (tests/test_faults.py sends one at start-up). Progress dispatches on
``event.kind`` for the same reason, and imports ``json`` only when a log is written.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from ..training import measures
from ..training.stopping import exit_status  # noqa: F401 - the command line's exit statuses

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..events import Event, StepEvent

PROG = "charlstm"
NON_TTY_LOG_EVERY = 100  # steps between progress lines when not on a terminal and no evaluations
REDRAW_S = 0.1  # a rewritten progress line is drawn at most this often


class UsageError(Exception):
    """A mistake in the command line: reported on one line, exit status 2."""


# --------------------------------------------------------------------------- one-line messages


def write(stream: TextIO, text: str) -> None:
    """Write ``text``, replacing characters the stream's encoding cannot show (e.g. a cp1252
    console) instead of failing in the middle of a sample."""
    try:
        stream.write(text)
    except UnicodeEncodeError:
        enc = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(enc, "replace").decode(enc))


def error(message: str) -> None:
    write(sys.stderr, f"{PROG}: error: {message}\n")


def warn(message: str) -> None:
    write(sys.stderr, f"{PROG}: warning: {message}\n")


def note(message: str) -> None:
    write(sys.stderr, f"{PROG}: {message}\n")


def silence_stdout() -> None:
    """After the reader went away (``| head``): point stdout at devnull so that the final flush
    at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def hms(seconds: float | None) -> str:
    """``h:mm:ss`` of a duration in seconds ("?" when unknown): the one duration formatter,
    charlstm_core.training.measures.duration_text."""
    return measures.duration_text(seconds, unknown="?")


def count(n: float, noun: str) -> str:
    """ "1 minute", "2.5 minutes", "1,000 steps": ``n`` with ``noun`` in the right number."""
    shown = f"{n:,}" if isinstance(n, int) else f"{n:g}"
    return f"{shown} {noun}{'' if n == 1 else 's'}"


def bits(nats: float) -> float:
    """Bits of ``nats`` (a loss per character)."""
    return nats / math.log(2.0)


def fmt_loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


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


# --------------------------------------------------------------------------- progress


class Progress:
    """Prints training events to stderr: one rewritten line on a terminal, plain lines otherwise,
    samples as headed blocks, and every event to a JSON-lines log when asked.

    ``train_config``: the run's settings. Every figure of the line is the run's own as the
    trainer measures it (charlstm_core.training.measures: the run's duration so far, its
    chars/s, its time left, a time budget's total as "about N"), and ``finish`` draws the run's
    final figures, the ones its last line and ``charlstm runs`` show.
    """

    def __init__(self, train_config: TrainConfig, quiet: bool, log: TextIO | None) -> None:
        self.quiet = quiet
        self.log = log
        self.tty = sys.stderr.isatty()
        tc = train_config
        self.periodic_eval = bool(tc.eval_every and tc.val_fraction > 0)
        self.by_time = tc.minutes is not None  # a time budget's progress is its time's
        self.val: float | None = None
        self.last: StepEvent | None = None
        self.line_len = 0
        self.drawn_at = 0.0

    def __call__(self, event: Event) -> None:
        if self.log is not None:
            from dataclasses import asdict

            self.log_record({"event": event.kind, **asdict(event)})
        kind = event.kind
        if kind == "rollback":  # shown even with --quiet: it changes the run
            self.clear()
            note(f"step {event.from_step:,}: {event.reason}; {event.describe()}")
        if self.quiet:
            return
        if kind == "step":
            self.last = event
            if self.tty:
                now = time.perf_counter()
                if now - self.drawn_at >= REDRAW_S or event.step >= event.total_steps:
                    self.draw()
            elif not self.periodic_eval and event.step % NON_TTY_LOG_EVERY == 0:
                self.draw()
        elif kind == "eval":
            self.val = event.val_loss
            self.draw()
        elif kind == "sample":
            self.clear()
            val = "" if event.val_loss is None else f", val loss {event.val_loss:.4f}"
            head = f"--- sample at step {event.step}{val}, temperature {event.temperature:g} ---"
            write(sys.stderr, f"{head}\n{event.text}\n{'-' * len(head)}\n")
        elif kind == "checkpoint" and not self.tty:
            write(sys.stderr, f"checkpoint: step {event.step} saved to {event.path}\n")
        sys.stderr.flush()

    def log_record(self, record: dict[str, Any]) -> None:
        import json

        assert self.log is not None
        self.log.write(json.dumps(record) + "\n")
        self.log.flush()

    def status(self) -> str:
        e = self.last
        if e is None:
            return ""
        by_time = self.by_time and e.total_is_estimate
        done = measures.fraction_done(e.step, e.total_steps, e.duration_s, e.eta_s, by_time)
        total = measures.count_text(e.total_steps, e.total_is_estimate)
        cps = "?" if not math.isfinite(e.chars_per_sec) else f"{e.chars_per_sec:,.0f}"
        return (
            f"step {e.step:,}/{total} ({100 * done:.0f}%) | epoch {e.epoch:.2f} | "
            f"loss {e.loss:.4f} | val {fmt_loss(self.val)} | {cps} chars/s | "
            f"{hms(e.duration_s)} elapsed | ETA {hms(e.eta_s)}"
        )

    def draw(self) -> None:
        line = self.status()
        if not line:
            return
        if self.tty:
            from shutil import get_terminal_size

            width = get_terminal_size((100, 24)).columns - 1
            line = line[:width]
            pad = " " * max(0, self.line_len - len(line))
            write(sys.stderr, f"\r{line}{pad}")
            self.line_len = len(line)
            self.drawn_at = time.perf_counter()
        else:
            write(sys.stderr, line + "\n")

    def clear(self) -> None:
        """End the rewritten line so that what follows starts on a fresh one."""
        if self.tty and self.line_len:
            write(sys.stderr, "\n")
            self.line_len = 0

    def finish(self, summary: Any = None) -> None:
        """The run ended: on a terminal, the line once more with the final state (the last
        validation loss) and, given the session's ``summary``, the run's final figures: its
        whole duration and chars/s, its final save included; a completed run at 100%."""
        last = self.last
        if not self.quiet and self.tty and last is not None:
            if summary is not None:
                done = summary.ended == "finished"
                cps = summary.chars_per_sec
                self.last = dataclasses.replace(
                    last,
                    total_steps=last.step if done else last.total_steps,
                    total_is_estimate=last.total_is_estimate and not done,
                    duration_s=summary.duration_s,
                    chars_per_sec=math.nan if cps is None else cps,
                    eta_s=0.0 if done else None,
                )
            self.draw()
        self.clear()


class EvalProgress:
    """``eval: 45% (900,000 of 2,000,000 characters), 0:00:30 elapsed, ETA 0:00:36`` on one
    rewritten stderr line, at most 10 times a second."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.drawn_at = 0.0
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.drawn_at < REDRAW_S and done < total:
            return
        self.drawn_at = now
        spent = now - self.start
        eta = spent * (total - done) / done if done else None
        line = (
            f"eval: {100 * done / max(total, 1):.0f}% ({done:,} of {total:,} characters), "
            f"{hms(spent)} elapsed, ETA {hms(eta)}"
        )
        write(sys.stderr, "\r" + line + " " * max(0, self.width - len(line)))
        sys.stderr.flush()
        self.width = len(line)

    def clear(self) -> None:
        if self.width:
            write(sys.stderr, "\r" + " " * self.width + "\r")
            sys.stderr.flush()


def stop_message(signum: int) -> str:
    """What the first stop signal prints (charlstm_core.training.stopping.StopSignals)."""
    again = "Ctrl-C" if signum == 2 else f"{signal_name(signum)}"
    return (
        f"\n{PROG}: {signal_name(signum)}: stopping after this step and saving a checkpoint "
        f"({again} again to quit sooner)\n"
    )
