"""Running the independent rows of a batch on several threads.

The B streams of a batch never interact inside a training step: the loss is a mean over them
and each weight gradient a sum. On a small machine (2-4 cores) a step is a long chain of
small products ((4H, H) @ (H, B) per time step, which a multi-threaded BLAS splits poorly) and
elementwise gate passes that NumPy runs on one core. Cutting the batch into one slice per
core, each run by its own thread with a single-threaded BLAS, keeps every core busy through
both; NumPy releases the GIL inside its products and ufunc loops, so the threads overlap.

Measured on the 2-core machine (forward + backward, T=100, best of 5): L=2, H=512, B=32:
807 ms with BLAS on 2 threads, 727 ms with two slices of 16 rows; L=1, H=512, B=64: 691 ms
against 561 ms. Small products gain nothing (see ``MIN_SLICE_VALUES``).

The number of slices follows the BLAS thread count the caller allows (``set_blas_threads``,
through ``threadpoolctl``, a dependency of the package; without it, or with an unknown BLAS,
everything stays serial), so a caller that sets BLAS to one thread gets the serial pass.
Above ``MAX_WORKERS`` cores the batch is no longer split: slices of a few rows would make the
products too thin, and a multi-threaded BLAS scales there.

BLAS's thread count is one setting for the whole process. Everything in this project that
changes it goes through this module (``set_blas_threads``, ``single_threaded_blas``), which
keeps overlapping changes from different threads consistent.

A training beside a window (the app) runs at a lower priority than the window's own work
(``lower_priority``, ``TRAINING_NICE``): on 2 cores a training step's two slices would otherwise
share the cores evenly with the Inspect view's analysis or a generation, and each would take
about 1.5 times as long as alone. Linux keeps a nice value per thread and a thread inherits its
starter's, so the slices' pool threads are kept one pool per nice value, started by a thread of
that value. Where nothing else runs, a nicer training is not slower.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

R = TypeVar("R")

MAX_WORKERS = 4  # split the batch only on machines with 2..MAX_WORKERS BLAS threads
# A slice's per-step gate block (4H, rows) must hold at least this many values: below it the
# per-call costs dominate and two threads contend for the GIL (measured at H = 256, B = 32:
# two slices of 16 rows ~5% slower than one pass; at H = 512, B = 64, ~15% faster).
MIN_SLICE_VALUES = 32_768
TRAINING_NICE = 10  # how much nicer than the app's own threads its training runs (see above)

_lock = threading.RLock()
_controller = None  # threadpoolctl.ThreadpoolController restricted to BLAS, made once
_pools: dict[int, ThreadPoolExecutor] = {}  # by the nice value of the threads that use them
_sections = 0  # single-threaded sections open now, in any thread
_outer = 1  # the BLAS thread count to restore when the last section closes
_control: ThreadPoolExecutor | None = None  # the one thread that sets BLAS's thread count


def _blas():
    """The BLAS libraries' threadpoolctl controller, or None when it cannot be had."""
    global _controller
    with _lock:
        if _controller is None:
            import numpy  # noqa: F401  (loads the BLAS library that is to be found)

            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _controller = False
            else:
                blas = ThreadpoolController().select(user_api="blas")
                _controller = blas if blas.lib_controllers else False
        return _controller or None


def _live_threads(blas) -> int:
    return max(1, min(lc.num_threads for lc in blas.lib_controllers))


def _set_threads(blas, n: int) -> None:
    """Set the count from the one thread that ever sets it (see ``set_blas_threads``)."""
    global _control
    if _control is None:
        _control = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blas-control")

    def apply() -> None:
        for lc in blas.lib_controllers:
            lc.set_num_threads(n)

    try:
        _control.submit(apply).result()
    except RuntimeError:  # the interpreter is shutting down: no new futures; set it from here
        apply()


def blas_threads() -> int:
    """The thread count BLAS is set to (1 when unknown); inside single-threaded sections, the
    count it returns to when the last one ends."""
    blas = _blas()
    if blas is None:
        return 1
    with _lock:
        return _outer if _sections else _live_threads(blas)


def live_blas_threads() -> int:
    """The thread count BLAS runs a product on right now (1 inside single-threaded sections,
    1 when unknown); ``blas_threads`` gives the count to return to instead."""
    blas = _blas()
    return 1 if blas is None else _live_threads(blas)


def set_blas_threads(n: int) -> None:
    """Set BLAS's thread count, for this process. During a single-threaded section (a batch
    running on slices, or a generation) the change takes effect when the last section ends, so
    that sections opened and closed by different threads never leave a stale count behind.

    OpenBLAS (0.3.31, seen here) ignores a change made by one thread while another thread that
    made one is still alive (the main thread, a GUI worker): so every change is made by one
    long-lived thread of this module, whoever asks for it. Code that calls threadpoolctl or
    OpenBLAS directly would break that; ``map_slices`` checks, and runs its parts in turn when
    BLAS could not be made single-threaded.
    """
    global _outer
    blas = _blas()
    if blas is None:
        return
    with _lock:
        if _sections:
            _outer = max(1, n)
        else:
            _set_threads(blas, max(1, n))


@contextlib.contextmanager
def blas_thread_count(n: int) -> Iterator[None]:
    """``set_blas_threads(n)`` for the duration; the count before is set back after."""
    before = blas_threads()
    set_blas_threads(n)
    try:
        yield
    finally:
        set_blas_threads(before)


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread for the duration, for every thread of the process.

    Sections nest and overlap across threads (a training step on slices, a generation beside
    it): the first one to open saves the thread count and the last one to close restores it.
    """
    global _sections, _outer
    blas = _blas()
    if blas is None:
        yield
        return
    with _lock:
        if _sections == 0:
            _outer = _live_threads(blas)
            _set_threads(blas, 1)
        _sections += 1
    try:
        yield
    finally:
        with _lock:
            _sections -= 1
            if _sections == 0:
                _set_threads(blas, _outer)


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_nice() -> int:
    """The calling thread's nice value (0 where the platform keeps none per thread)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return 0


def lower_priority(by: int = TRAINING_NICE) -> bool:
    """Make the calling thread ``by`` nice steps nicer (at most 19), and with it the threads it
    starts and the batch slices it runs (``map_slices``). Linux only: False where the platform
    keeps no nice value per thread or refuses the change. A thread cannot take it back unless
    the process may raise priorities, so call it on a thread made for the work."""
    if by <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, thread_nice() + by))
    except OSError:
        return False
    return True


def thread_workers() -> int:
    """How many threads to run independent work on as the machine stands now: the BLAS thread
    count allowed when it is 2..MAX_WORKERS, else 1 (see the module docstring)."""
    n = blas_threads()
    return n if 2 <= n <= MAX_WORKERS else 1


def batch_workers(batch: int, hidden: int) -> int:
    """How many slices to cut a batch of ``batch`` streams of an LSTM of width ``hidden`` into,
    as the machine stands now (1: do not split)."""
    n = thread_workers()
    return max(1, min(n, 4 * hidden * batch // MIN_SLICE_VALUES))


def slices(batch: int, workers: int) -> list[slice]:
    """``workers`` contiguous row ranges covering ``range(batch)``, sizes differing by at most 1."""
    workers = max(1, min(workers, batch))
    bounds = [batch * j // workers for j in range(workers + 1)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def map_slices(fn: Callable[[slice], R], parts: list[slice]) -> list[R]:
    """``[fn(p) for p in parts]``, the parts run side by side when there are several.

    The calling thread runs the first part and a pool thread each other one, with BLAS held
    to one thread meanwhile (and restored after). An exception in any part is raised here,
    after every part has finished.
    """
    if len(parts) == 1:
        return [fn(parts[0])]
    nice = thread_nice()
    with _lock:
        pool = _pools.get(nice)
        if pool is None:  # its threads start from this one, so they inherit its nice value
            pool = _pools[nice] = ThreadPoolExecutor(
                max_workers=MAX_WORKERS - 1, thread_name_prefix=f"batch-nice{nice}"
            )
    with single_threaded_blas():
        blas = _blas()
        if blas is not None and _live_threads(blas) != 1:
            # OpenBLAS ignored the change (see set_blas_threads): multi-threaded products on
            # several threads at once would fight over the cores, so run the parts in turn
            return [fn(p) for p in parts]
        futures = [pool.submit(fn, p) for p in parts[1:]]
        try:
            first = fn(parts[0])
        finally:
            wait(futures)  # no part may outlive the BLAS limit, nor the caller's arrays
    return [first, *(f.result() for f in futures)]


class ThreadChooser:
    """Times real training steps at ``max_threads`` and at 1 BLAS thread, and keeps the faster.

    With several threads the engine runs the batch in slices on that many threads (see
    ``map_slices``); that loses as soon as another program wants the cores, so the decision
    is measured in place, under the app's real load, rather than assumed. The counts take turns
    in the order A B B A (the larger count first, as it usually wins): a disturbance that fades
    or grows over the measurement (the window drawing its first frames, caches warming) then
    weighs on both alike, where A then B blamed it on A. Only the run's first step (allocation,
    cold caches) is left out; each turn runs ``min_steps`` steps and at least ``min_s`` seconds
    (one step of a large model, dozens of a small one), and a count's speed is the median of its
    steps' speeds in both turns, so that one step stalled by something else (the window's first
    layout, a collection) does not decide. On an idle 2-core machine the measurement costs about
    one second at 60-100% of the speed.
    """

    def __init__(self, max_threads: int, min_steps: int = 1, min_s: float = 0.3) -> None:
        self.candidates = [1] if max_threads <= 1 else [max_threads, 1]
        a, b = self.candidates[0], self.candidates[-1]
        self.turns = [a] if a == b else [a, b, b, a]
        self.min_steps, self.min_s = min_steps, min_s
        self.rates: dict[int, float] = {}
        self._speeds: dict[int, list[float]] = {n: [] for n in self.candidates}
        self.index = 0
        self.warm = False
        self.n, self.t = 0, 0.0
        self.current = self.turns[0]
        set_blas_threads(self.current)

    def record(self, seconds: float, n_chars: int) -> int | None:
        """Time one step at ``current``; the count kept once every turn is timed, else None."""
        if not self.warm:  # the run's first step is not timed
            self.warm = True
            return None
        self.n += 1
        self.t += seconds
        self._speeds[self.current].append(n_chars / max(seconds, 1e-9))
        if self.n < self.min_steps or self.t < self.min_s:
            return None
        self.index += 1
        if self.index < len(self.turns):
            self.n, self.t = 0, 0.0
            if self.turns[self.index] != self.current:
                self.current = self.turns[self.index]
                set_blas_threads(self.current)
            return None
        self.rates = {n: statistics.median(self._speeds[n]) for n in self.candidates}
        self.current = max(self.rates, key=self.rates.__getitem__)
        set_blas_threads(self.current)
        return self.current

    def explain(self) -> str:
        parts = ", ".join(
            f"{n} thread{'s' if n > 1 else ''}: {r:,.0f} chars/s"
            for n, r in sorted(self.rates.items())
        )
        return f"BLAS threads: {self.current} (measured on the first steps: {parts})"
