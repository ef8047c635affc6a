"""How busy the machine is: the cores other programs keep busy, and which programs they are.

Read from the kernel's CPU-time counters over an interval (Linux: ``/proc/stat``, the busy time
of the cores this process may run on less this process's own CPU time; ``/proc/<pid>/stat`` for
the programs that used them), elsewhere from the load average (``os.getloadavg``), and unknown on
a system with neither. A time per step measured on a busy machine holds only while that load
lasts: the settings check (charlstm_core.training.plan.measure_timing) measures under the load
there is, says when the machine is busy, and measures again when the load changes.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..engine.parallel import usable_cores

BUSY_CORES = 0.5  # other programs using at least this many cores (on average) make it "busy"
CHANGED_CORES = 0.5  # a change of at least this many cores in their use changes an estimate
PROGRAM_CORES = 0.1  # a program counts as one of those using the cores from this share of one
MIN_INTERVAL_S = 0.2  # shorter readings of the counters are too coarse (10 ms ticks)
NAMES_SHOWN = 3


@dataclass(frozen=True)
class MachineLoad:
    """What other programs did with the cores over an interval."""

    cores: int  # the cores this process may run on
    others: float | None  # cores other programs kept busy on average (None: unknown)
    programs: tuple[str, ...] = field(default=())  # names of the programs that used them most

    @property
    def busy(self) -> bool:
        return self.others is not None and self.others >= BUSY_CORES

    def differs(self, other: MachineLoad | None) -> bool:
        """Whether the other programs' use changed enough to change a time measured under it."""
        if other is None or other.others is None or self.others is None:
            return False
        return abs(self.others - other.others) >= CHANGED_CORES

    def sentence(self) -> str:
        """'The machine is busy: 1 other program (python3) was using 1.8 of its 2 cores while
        this was measured, …'; "" when it is not busy."""
        if not self.busy:
            return ""
        assert self.others is not None
        n = len(self.programs)
        if n:
            names = ", ".join(self.programs[:NAMES_SHOWN]) + (", …" if n > NAMES_SHOWN else "")
            who = f"{n} other program{'s' * (n != 1)} ({names}) {'were' if n != 1 else 'was'}"
        else:
            who = "other programs were"
        return (
            f"The machine is busy: {who} using {min(self.others, self.cores):.1f} of its "
            f"{self.cores} cores while this was measured, so training is slower than on an idle "
            "machine. The estimate may change: it is measured again when that load changes, and "
            "a run measures its own speed from its first steps."
        )


def _cpu_set() -> set[int] | None:
    with contextlib.suppress(AttributeError, OSError):
        return set(os.sched_getaffinity(0))
    return None


def read_proc_stat(cpus: set[int] | None = None) -> float | None:
    """Busy CPU seconds of the cores ``cpus`` (all: None) since boot, from ``/proc/stat``
    (user, nice, system, irq, softirq and steal: time the core did not idle or wait); None
    where there is no such file."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        v = [int(x) for x in rest.split()]
        busy += v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / hz


def read_programs() -> dict[int, tuple[str, float]] | None:
    """CPU seconds of every other process so far: ``{pid: (name, seconds)}``; None without
    ``/proc``."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    me = os.getpid()
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    out = {}
    for pid in pids:
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            out[pid] = (name, (int(fields[11]) + int(fields[12])) / hz)  # utime + stime
    return out


def load_average() -> float | None:
    with contextlib.suppress(AttributeError, OSError):
        return os.getloadavg()[0]
    return None


@dataclass
class _Reading:
    at: float  # wall clock
    own: float  # this process's CPU seconds
    busy: float | None  # the cores' busy seconds
    programs: dict[int, tuple[str, float]] | None


class LoadMeter:
    """Reads the counters at ``start()`` and again at ``load()``: what other programs did with
    the cores in between. Each reader can be replaced (tests)."""

    def __init__(
        self,
        *,
        busy: Callable[[], float | None] | None = None,
        programs: Callable[[], dict[int, tuple[str, float]] | None] = read_programs,
        own: Callable[[], float] = time.process_time,
        wall: Callable[[], float] = time.monotonic,
        loadavg: Callable[[], float | None] = load_average,
        cores: int | None = None,
    ) -> None:
        cpus = _cpu_set()
        self._busy = busy or (lambda: read_proc_stat(cpus))
        self._programs, self._own, self._wall, self._loadavg = programs, own, wall, loadavg
        self.cores = cores or usable_cores()
        self._first: _Reading | None = None

    def _read(self) -> _Reading:
        return _Reading(self._wall(), self._own(), self._busy(), self._programs())

    def start(self) -> None:
        self._first = self._read()

    def load(self, *, restart: bool = False) -> MachineLoad:
        """The others' use of the cores since ``start()`` (``restart``: and start again)."""
        second = self._read()
        first, self._first = self._first, (second if restart else self._first)
        if first is None:
            return MachineLoad(self.cores, None)
        wall = second.at - first.at
        own = max(second.own - first.own, 0.0)
        others: float | None = None
        if first.busy is not None and second.busy is not None and wall >= MIN_INTERVAL_S:
            others = max(second.busy - first.busy - own, 0.0) / wall
        elif wall > 0:
            avg = self._loadavg()  # a minute's average, this process's share included
            if avg is not None:
                others = max(avg - own / wall, 0.0)
        if others is not None:
            others = min(others, float(self.cores))
        names: tuple[str, ...] = ()
        if first.programs is not None and second.programs is not None and wall > 0:
            used = []
            for pid, (name, cpu) in second.programs.items():
                before = first.programs.get(pid)
                if before is not None and (cpu - before[1]) / wall >= PROGRAM_CORES:
                    used.append((cpu - before[1], name))
            names = tuple(name for _, name in sorted(used, reverse=True))
        return MachineLoad(self.cores, others, names)
