"""How many BLAS threads a training uses and how nice it runs: one rule for every front end.

``thread_policy`` decides, the training session applies it (charlstm_core.training.session); the
mechanics (setting BLAS's count, a thread's nice value, timing 1 against 2 threads) are
charlstm_core.engine.parallel's.

- ``charlstm train`` and a sweep that runs its points one at a time: BLAS as it is (its default
  uses every core, and the engine cuts a batch into one slice per thread).
- A sweep's points ``jobs`` at a time, one process each: the usable cores shared out
  (``split_cores``), fixed.
- The app, beside its window: at most 2 threads, and unless this session of the app has measured
  it already, the count is measured against 1 on the first real steps (``ThreadChooser``: the
  window, another program or a generation may want a core, so it is not assumed), and the
  training thread runs ``TRAINING_NICE`` steps nicer than the window's, so that the window, the
  Inspect view and a generation come first.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.parallel import TRAINING_NICE, usable_cores

APP_MAX_THREADS = 2  # beside the window the app trains on at most this many BLAS threads


@dataclass(frozen=True)
class ThreadPolicy:
    """The BLAS threads and priority of one training."""

    threads: int | None = None  # BLAS threads to train on; None: leave BLAS as it is
    measure: bool = False  # time ``threads`` against 1 on the first steps, keep the faster
    nice: int = 0  # how many steps nicer than the thread that starts it the training runs

    @property
    def starts_on(self) -> int | None:
        """The thread count the first steps run on (None: BLAS as it is)."""
        return self.threads


def split_cores(jobs: int, cores: int | None = None) -> int:
    """BLAS threads for each of ``jobs`` simultaneous points: the cores shared out, at least 1."""
    cores = cores or usable_cores()
    return max(1, cores // max(1, jobs))


def thread_policy(front_end: str, *, jobs: int = 1, measured: int | None = None) -> ThreadPolicy:
    """The policy of a training started by ``front_end``: "cli", "sweep" (``jobs`` points at a
    time) or "app" (``measured``: the count this session of the app measured already)."""
    if front_end == "app":
        if measured:
            return ThreadPolicy(threads=measured, nice=TRAINING_NICE)
        most = max(1, min(APP_MAX_THREADS, usable_cores()))
        return ThreadPolicy(threads=most, measure=most > 1, nice=TRAINING_NICE)
    if front_end == "sweep" and jobs > 1:
        return ThreadPolicy(threads=split_cores(jobs))
    return ThreadPolicy()
