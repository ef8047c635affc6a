"""core/engine/parallel.py: cutting a batch into slices run on threads; core/engine/memory.py."""

from __future__ import annotations

import platform
import threading
import time

import numpy as np
import pytest
from charlstm_core.engine import memory, parallel


def test_slices_cover_the_batch_evenly():
    for batch in (1, 2, 7, 32, 33):
        for workers in (1, 2, 3, 4, 50):
            parts = parallel.slices(batch, workers)
            assert len(parts) == min(workers, batch)
            rows = [r for p in parts for r in range(p.start, p.stop)]
            assert rows == list(range(batch))
            sizes = {p.stop - p.start for p in parts}
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_map_slices_runs_every_part_in_order_on_threads():
    seen = []

    def fn(rows: slice) -> tuple[int, int]:
        time.sleep(0.01 * (3 - rows.start))  # the later parts finish first
        seen.append(threading.get_ident())
        return rows.start, rows.stop

    parts = parallel.slices(3, 3)
    assert parallel.map_slices(fn, parts) == [(0, 1), (1, 2), (2, 3)]
    assert len(set(seen)) == 3  # three threads, the caller's among them


def test_map_slices_raises_after_all_parts_and_restores_blas():
    before = parallel.blas_threads()
    finished = []

    def fn(rows: slice) -> int:
        if rows.start == 0:
            raise ValueError("part 0 failed")
        time.sleep(0.05)
        finished.append(rows.start)
        return rows.start

    with pytest.raises(ValueError, match="part 0 failed"):
        parallel.map_slices(fn, parallel.slices(2, 2))
    assert finished == [1]  # the other part was not abandoned
    assert parallel.blas_threads() == before


def test_workers_follow_the_blas_thread_limit():
    if parallel._blas() is None:
        pytest.skip("threadpoolctl finds no BLAS library to control")
    assert parallel._sections == 0, "a single-threaded section was left open"
    with parallel.blas_thread_count(1):
        assert parallel.batch_workers(64, 512) == 1
    with parallel.blas_thread_count(2):
        assert parallel.blas_threads() == 2
        assert parallel.batch_workers(64, 512) == 2
        assert parallel.batch_workers(32, 256) == 1  # slices too thin to gain
        assert parallel.batch_workers(1, 512) == 1


def test_overlapping_single_threaded_sections_restore_the_count():
    # A training step's section and a generation's section, opened and closed out of order (as
    # two threads do). All calls come from this thread: OpenBLAS takes thread-count changes
    # from other threads only until the main thread has made one.
    if parallel._blas() is None:
        pytest.skip("threadpoolctl finds no BLAS library to control")
    live = parallel._live_threads
    with parallel.blas_thread_count(2):
        step, generation = parallel.single_threaded_blas(), parallel.single_threaded_blas()
        step.__enter__()
        assert live(parallel._blas()) == 1
        generation.__enter__()
        step.__exit__(None, None, None)
        assert live(parallel._blas()) == 1  # the generation still runs
        assert parallel.blas_threads() == 2  # what a trainer plans with meanwhile
        parallel.set_blas_threads(1)  # a change made meanwhile waits for the last section
        assert parallel.blas_threads() == 1 and live(parallel._blas()) == 1
        parallel.set_blas_threads(2)
        generation.__exit__(None, None, None)
        assert live(parallel._blas()) == 2
        assert parallel._sections == 0


def test_keeping_freed_memory_applies_once_on_glibc():
    # Its effect (page faults saved per training step) is measured, not asserted: the kernel's
    # transparent huge pages make fault counts of a single allocation say nothing.
    first = memory.keep_freed_memory()
    assert first == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert memory.keep_freed_memory() == first
    big = np.ones((4096, 4096), np.float32)  # 64 MiB: allocation still works
    assert float(big.sum()) == 4096 * 4096


def test_thread_chooser_measures_both_counts_and_keeps_the_faster(monkeypatch):
    set_to: list[int] = []
    monkeypatch.setattr(parallel, "set_blas_threads", set_to.append)
    chooser = parallel.ThreadChooser(2, min_steps=2, min_s=0.0)
    assert chooser.current == 2 and set_to == [2]  # the larger count is tried first
    assert chooser.record(9.0, 1) is None  # the run's first step is never timed
    # turns A B B A: two steps at 2 threads, four at 1, two at 2
    for threads, chars in ((2, 1000), (2, 1000), (1, 3000), (1, 3000), (1, 3000), (1, 3000)):
        assert chooser.current == threads
        assert chooser.record(1.0, chars) is None
    assert set_to == [2, 1, 2]  # the count is set when it changes, not at every turn
    assert chooser.record(1.0, 1000) is None
    assert chooser.record(1.0, 1000) == 1  # 3,000 chars/s on one thread wins over 1,000
    assert set_to == [2, 1, 2, 1]
    assert chooser.explain() == (
        "BLAS threads: 1 (measured on the first steps: "
        "1 thread: 3,000 chars/s, 2 threads: 1,000 chars/s)"
    )


def test_thread_chooser_is_not_fooled_by_a_disturbance_that_fades(monkeypatch):
    # 2 threads are 20% faster, but the first turn runs while the window draws its first frames
    # (steps 2.5 times as slow, fading steadily): A then B alone blamed that on 2 threads.
    monkeypatch.setattr(parallel, "set_blas_threads", lambda n: None)
    chooser = parallel.ThreadChooser(2, min_steps=1, min_s=0.0)
    chooser.record(5.0, 100)  # the first step, untimed
    disturbance = iter([1.5, 1.0, 0.5, 0.0])  # one factor a turn, fading steadily
    kept = None
    while kept is None:
        step_s = (1.0 if chooser.current == 2 else 1.2) * (1.0 + next(disturbance))
        kept = chooser.record(step_s, 100)
    assert kept == 2


def test_one_stalled_step_does_not_decide_the_thread_count(monkeypatch):
    # 2 threads take 10 ms a step, 1 thread 12 ms; one step of the first turn waits 0.5 s for
    # something else (the window's first layout): by total time 2 threads would lose.
    monkeypatch.setattr(parallel, "set_blas_threads", lambda n: None)
    chooser = parallel.ThreadChooser(2, min_steps=1, min_s=0.1)
    chooser.record(1.0, 100)  # the first step, untimed
    stalled = [0.5]
    kept = None
    while kept is None:
        seconds = 0.010 if chooser.current == 2 else 0.012
        if chooser.current == 2 and stalled:
            seconds = stalled.pop()
        kept = chooser.record(seconds, 100)
    assert kept == 2


def test_thread_chooser_on_one_core_has_one_candidate(monkeypatch):
    monkeypatch.setattr(parallel, "set_blas_threads", lambda n: None)
    chooser = parallel.ThreadChooser(1, min_steps=1, min_s=0.0)
    assert chooser.candidates == [1]
    assert chooser.record(1.0, 10) is None
    assert chooser.record(1.0, 10) == 1


linux_only = pytest.mark.skipif(platform.system() != "Linux", reason="per-thread nice is Linux's")


def _on_a_thread(fn):
    out: list = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


@linux_only
def test_lower_priority_makes_only_the_calling_thread_nicer():
    mine = parallel.thread_nice()

    def niced():
        before = parallel.thread_nice()
        assert parallel.lower_priority(3)
        child = _on_a_thread(parallel.thread_nice)  # a thread it starts inherits the value
        return before, parallel.thread_nice(), child

    before, after, child = niced_values = _on_a_thread(niced)
    assert after == min(19, before + 3) and child == after, niced_values
    assert parallel.thread_nice() == mine  # the caller's thread is untouched


@linux_only
def test_slices_run_at_the_nice_value_of_the_thread_that_maps_them():
    def nice_of_parts():
        return parallel.map_slices(lambda _: parallel.thread_nice(), parallel.slices(4, 2))

    plain = _on_a_thread(nice_of_parts)  # may start the pool of its own nice value

    def niced():
        parallel.lower_priority(5)
        return parallel.thread_nice(), nice_of_parts()

    nice, parts = _on_a_thread(niced)
    assert parts == [nice, nice]  # not the plain pool's threads
    assert _on_a_thread(nice_of_parts) == plain  # and the plain caller still gets its own
