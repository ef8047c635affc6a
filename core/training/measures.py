"""A run's figures, each defined once: its duration, its chars/s, the time it has left and its
step total. The trainer's ``RunClock`` measures them; the events, the summaries and the run store
carry them; every view (``charlstm train``'s progress and last lines, ``charlstm runs`` and
``runs show``, a sweep's table, the app's status bar and Runs tab) shows them through these
functions, so one run shows one duration and one speed everywhere.

- **Duration** (``duration_s``): wall-clock seconds from the start of the run's first step to the
  end of its final save (the end of its final validation when it saves nothing), less the time
  its front end held it: a pause in the app (a paused run is not training) or an event being
  shown. The time a run has trained so far is its duration up to now.
- **Chars/s** (``chars_per_sec``): the characters the run trained on (B x T for each step it
  computed, rolled-back ones included) over its duration: the rate the run really trains at,
  its validations, samples and saves included. Not the speed of the steps alone.
- **Time left** (``eta_s``): until the run's end as defined above, its final validation and save
  included. A time budget ends where its budget does (the trainer stops stepping when another
  step would not finish, with the final validation and save, inside it); a run of steps or
  epochs has its steps left at the recent time per step, plus the validations, samples and
  autosaves due among them (``due``) at their measured cost, plus the final validation and
  save (a validation's cost is timed on a slice before the first step; a sample's counts from
  the first one).
- **Step total**: a time budget's total is an estimate until the run ends; it is shown as
  "about N" (``about``: two significant digits, so that it does not flicker step by step).

A model's *training time* (``elapsed_s``, in a checkpoint and on the curves' time axis) is another
figure: the training of all the model's runs, up to its last save.

Durations are shown by one formatter (``duration_text``: whole seconds as ``h:mm:ss``), in the
command line and the app alike, so the same run reads the same everywhere.
This module imports only the standard library: the command line's console imports it at start-up.
"""

from __future__ import annotations

import math
import time

now = time.perf_counter  # the clock every run figure is read from (a test stands in a fake one)


class RunClock:
    """A run's duration so far (see the module): started before the run's first step, ticked
    after each piece of work, with the time its front end holds the run taken off."""

    def __init__(self) -> None:
        self.duration_s = 0.0  # the run's duration at the last tick
        self._origin = now()

    def start(self) -> None:
        """The run starts (or starts again): the clock goes on from the duration so far."""
        self._origin = now() - self.duration_s

    def tick(self) -> float:
        """Bring ``duration_s`` up to now; returns it."""
        self.duration_s = now() - self._origin
        return self.duration_s

    def exclude(self, seconds: float) -> None:
        """Take ``seconds`` the front end held the run (a pause, an event shown) off the clock."""
        self._origin += seconds


def chars_per_sec(chars: int, duration_s: float) -> float | None:
    """A run's chars/s: ``chars`` trained over ``duration_s`` (None before its first step)."""
    if chars <= 0 or not duration_s > 0 or not math.isfinite(duration_s):
        return None
    return chars / duration_s


def due(step: int, total: int, every: int) -> int:
    """How many of the steps ``step``..``total`` (both included) are multiples of ``every``:
    the validations, samples or autosaves still to come after the step event of ``step`` (the
    trainer makes them after that event)."""
    if not every or total < step:
        return 0
    return total // every - (step - 1) // every


def eta_seconds(
    *,
    work_s: float | None,
    finish_s: float,
    budget_left_s: float | None = None,
    last_step: bool = False,
) -> float | None:
    """Seconds until the run ends, its final validation and save (``finish_s``) included.

    A time budget (``budget_left_s``: the budget less the duration so far) ends with its budget
    (the trainer stops stepping when another step would not fit, final validation and save
    included), and at its ``last_step`` when its final validation and save are done. A run of
    steps or epochs makes its ``work_s`` (the steps left at the recent time per step, and the
    validations, samples and autosaves due among them), then ``finish_s``. None while unknown.
    """
    if budget_left_s is not None:
        return max(finish_s if last_step else max(budget_left_s, finish_s), 0.0)
    if work_s is None or not math.isfinite(work_s):
        return None
    return max(work_s, 0.0) + finish_s


def fraction_done(
    step: int, total_steps: int, duration_s: float, eta_s: float | None, by_time: bool
) -> float:
    """How far the run is, 0..1: a time budget by its time (duration over duration plus time
    left, so it reaches 1 when the run ends), a run of steps by its steps."""
    if by_time:
        if eta_s is None:
            return 0.0
        whole = duration_s + eta_s
        return 1.0 if whole <= 0 else min(max(duration_s / whole, 0.0), 1.0)
    return min(max(step / max(total_steps, 1), 0.0), 1.0)


def about(n: float) -> int:
    """An estimated count rounded to two significant digits (2,704 -> 2,700; 497, 503 -> 500;
    below 100, as it is), so that it does not flicker while it is re-estimated."""
    n = max(int(round(n)), 0)
    if n < 100:
        return n
    scale = 10 ** (len(str(n)) - 2)
    return int(round(n / scale) * scale)


def count_text(n: float, estimate: bool) -> str:
    """A step total as shown: ``"2,704"``, or ``"about 2,700"`` while it is an estimate."""
    return f"about {about(n):,}" if estimate else f"{int(round(n)):,}"


def whole_seconds(seconds: float | None) -> int | None:
    """A duration as the whole seconds every view shows (None when unknown)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return int(round(seconds))


def duration_text(seconds: float | None, unknown: str = "—") -> str:
    """A duration as every view shows it, the app and the command line alike: whole seconds as
    ``h:mm:ss`` (``0:00:58``, ``1:02:05``); ``unknown`` when unknown."""
    s = whole_seconds(seconds)
    if s is None:
        return unknown
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


DURATION_MEANS = (
    "wall-clock time from the run's first step to the end of its final save, pauses excluded"
)
CHARS_PER_SEC_MEANS = (
    "characters trained over the run's duration, its validations, samples and saves included"
)
