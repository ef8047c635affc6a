"""Cyclic garbage is collected in the GUI thread, never in a worker (``charlstm_gui.gui_gc``).

A worker thread that allocates enough would run the collector itself; a cycle holding a Qt object
destroyed there can deadlock against the GUI thread (CI hung so). Under the collector the same
garbage waits for the GUI thread's timer.
"""

from __future__ import annotations

import gc
import threading

from charlstm_gui.gui_gc import GuiThreadCollector


class Node:
    """A cycle (it refers to itself) whose finaliser notes the thread that collected it."""

    def __init__(self, seen: list[int]) -> None:
        self.me = self
        self.seen = seen

    def __del__(self) -> None:
        self.seen.append(threading.get_ident())


def _make_garbage_in_a_worker(seen: list[int], kept: list) -> int:
    """Leave cycles behind in a thread that allocates far past generation 0's threshold (the
    allocations stay alive in ``kept``, so the counts stay past it too)."""
    ident: list[int] = []

    def work() -> None:
        ident.append(threading.get_ident())
        for _ in range(50):
            Node(seen)
        kept.extend([i] for i in range(20 * gc.get_threshold()[0]))  # containers: gc counts them

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return ident[0]


def test_without_the_collector_a_worker_collects(_collect_in_gui_thread):
    _collect_in_gui_thread.stop()  # the interpreter's own collection, as before the fix
    gc.collect()
    seen: list[int] = []
    worker = _make_garbage_in_a_worker(seen, [])
    assert worker in seen  # the premise: the worker thread ran the collector


def test_under_the_collector_only_the_gui_thread_collects(_collect_in_gui_thread, qtbot):
    assert not gc.isenabled()
    seen: list[int] = []
    _make_garbage_in_a_worker(seen, kept := [])
    assert seen == []  # nothing collected in the worker
    qtbot.waitUntil(lambda: len(seen) == 50, timeout=5000)
    assert set(seen) == {threading.get_ident()}
    del kept


def test_stopping_gives_collection_back(qapp):
    was = gc.isenabled()
    collector = GuiThreadCollector()
    assert not gc.isenabled()
    collector.stop()
    assert gc.isenabled() == was
