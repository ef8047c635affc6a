"""A real local Dask cluster for the cluster tests (tests/test_cluster.py, the app's in
tests/gui/test_sweep_cluster.py): a scheduler and two worker processes of one thread each, bound
to 127.0.0.1, no dashboard. Closing it checks that none of its processes is left.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any


def children() -> set[int]:
    """This process's descendants, less multiprocessing's resource tracker (one per process
    that ever started a spawned child, alive until this one ends; not the cluster's)."""
    import psutil

    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(p.cmdline()):
                out.add(p.pid)
        except psutil.Error:  # ended meanwhile
            continue
    return out


@contextlib.contextmanager
def local_cluster(n_workers: int = 2, **kwargs: Any) -> Iterator[Any]:
    """A ``distributed.LocalCluster`` of ``n_workers`` one-thread worker processes on
    127.0.0.1 (``kwargs``: more of its options, e.g. TLS); afterwards (within 30 s) none of
    its processes is left."""
    import distributed

    before = children()
    lc = distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
        # no dashboard; the scheduler's small HTTP server (health, metrics) on a free loopback
        # port rather than its default 0.0.0.0:8787
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        **kwargs,
    )
    try:
        yield lc
    finally:
        lc.close(timeout=30)
        deadline = time.monotonic() + 30
        while children() - before and time.monotonic() < deadline:
            time.sleep(0.2)
        left = children() - before
        assert left == set(), f"the cluster left processes behind: {left}"
