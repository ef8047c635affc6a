"""Reaching a Dask cluster and judging whether a sweep can run on it: ``connect`` (one
``ClusterError`` sentence, after ``CONNECT_TIMEOUT_S`` at most, when the scheduler cannot be
reached), ``list_workers`` (each worker's host, cores, memory and resources, and the version of
this project it has, asked of the worker itself by ``cluster_task.version_probe``),
``check_workers`` (refuses no worker, a worker without the project or with another version of
it, and a GPU sweep without a worker offering a GPU), ``describe_workers`` (one line) and
``blas_threads_by_host`` (a point's BLAS threads: its computer's cores shared among all the
task threads of the workers on it). Running the sweep is ``charlstm_core.sweep.cluster``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..errors import ClusterError

CONNECT_TIMEOUT_S = 5.0  # an unreachable scheduler is reported after this long
INSTALL_HINT = (
    "Running a sweep on a Dask cluster needs Dask's distributed scheduler on this computer and "
    "on every worker: pip install 'charlstm[cluster]' (in a checkout: pip install -e "
    "'.[cluster]')."
)


def dask_available() -> bool:
    """Whether ``distributed`` can be imported here (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):
        return False


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return distributed


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.rstrip(".")


def connect(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``,
    ``tls://…`` with Dask's TLS settings, or ``host:port``); ``ClusterError`` in one sentence
    when it cannot be reached within ``timeout_s``."""
    address = (address or "").strip()
    if not address:
        raise ClusterError(
            "Give the Dask scheduler's address, e.g. tcp://192.168.1.20:8786 (what "
            "'dask scheduler' prints)."
        )
    distributed = _distributed()
    try:
        # the scheduler answers at once when it is up: a refused or silent address is retried
        # until the timeout, never longer (connect timeouts count the whole handshake)
        with _quiet_dask_logs():
            return distributed.Client(
                address, timeout=timeout_s, set_as_default=False, direct_to_workers=False
            )
    except Exception as e:  # noqa: BLE001 - refused, silent, not a scheduler, bad TLS: one line
        reason = _reason(e)
    # The Client that failed to start is garbage in a reference cycle. Left to the collector, its
    # __del__ closes it wherever a collection happens to run, e.g. inside the next Client's or
    # LocalCluster's start while that holds its loop runner's lock: a deadlock (seen in the
    # cluster tests). Collected here, now, it closes with no lock held.
    gc.collect()
    tls = (
        " A tls:// address needs Dask's TLS settings (distributed.comm.tls.* in Dask's "
        "configuration)."
        if address.startswith("tls://")
        else ""
    )
    raise ClusterError(
        f"Cannot reach the Dask scheduler at {address}: {reason}. Check that "
        f"'dask scheduler' runs there and that this computer can reach its host and port."
        f"{tls}"
    )


@contextlib.contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Dask logs every failed connection attempt; the caller says it once, in words."""
    import logging

    logs = [logging.getLogger(n) for n in ("distributed", "distributed.client", "tornado")]
    levels = [lg.level for lg in logs]
    for lg in logs:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(logs, levels, strict=True):
            lg.setLevel(level)


@dataclass(frozen=True)
class WorkerInfo:
    """One worker of the cluster, as the scheduler and the worker itself describe it."""

    address: str
    host: str  # the host name the worker runs on (its address's host when unknown)
    name: str
    threads: int  # tasks it runs at once (its cores, unless started with --nthreads)
    memory_bytes: int  # its memory limit (0: none)
    resources: dict[str, float]  # e.g. {"GPU": 1} for workers started with --resources GPU=1
    version: str | None  # this project's version there; None: not installed
    host_cores: int = 0  # the cores of its computer (0: unknown)

    @property
    def gpus(self) -> float:
        return float(self.resources.get("GPU", 0))


def blas_threads_by_host(workers: list[WorkerInfo]) -> dict[str, int]:
    """BLAS threads for one point on each host: its cores shared by the task threads of all
    the workers on it (two one-thread workers on a 2-core computer: 1 each, as ``--jobs 2``)."""
    threads: dict[str, int] = {}
    cores: dict[str, int] = {}
    for w in workers:
        threads[w.host] = threads.get(w.host, 0) + w.threads
        cores[w.host] = max(cores.get(w.host, 0), w.host_cores)
    return {h: max(1, cores[h] // max(1, n)) for h, n in threads.items() if cores[h]}


def list_workers(client: Any) -> list[WorkerInfo]:
    """Every worker the scheduler knows now, with the project's version each has."""
    from .cluster_task import version_probe

    info = client.scheduler_info(n_workers=-1).get("workers", {})
    try:
        answers = client.run(version_probe(), on_error="return") if info else {}
    except Exception as e:  # noqa: BLE001
        raise ClusterError(f"Cannot ask the Dask workers which version they run: {e}") from None
    out = []
    for address, w in sorted(info.items()):
        answer = answers.get(address)
        host, version, cores = answer if isinstance(answer, tuple) else (None, "unknown", 0)
        out.append(
            WorkerInfo(
                address=address,
                host=str(host or w.get("host") or address),
                name=str(w.get("name", address)),
                threads=int(w.get("nthreads") or 1),
                memory_bytes=int(w.get("memory_limit") or 0),
                resources=dict(w.get("resources") or {}),
                version=version,
                host_cores=int(cores or 0),
            )
        )
    return out


def check_workers(workers: list[WorkerInfo], address: str, device: str = "cpu") -> None:
    """``ClusterError`` when a sweep cannot run on ``workers``: none at all, one without this
    project or with another version of it (each named with both versions), or, for a GPU
    ``device``, none offering a ``GPU`` resource."""
    from .cluster_task import version_mismatch

    if not workers:
        raise ClusterError(
            f"The Dask scheduler at {address} has no workers. Start one on each computer that "
            f"should train: dask worker {address}"
        )
    refused = [
        m
        for w in workers
        if (m := version_mismatch(w.version, __version__, f"{w.address} ({w.host})")) is not None
    ]
    if refused:
        raise ClusterError(" ".join(refused))
    if device.startswith("gpu") and not any(w.gpus >= 1 for w in workers):
        raise ClusterError(
            f"No worker of the Dask scheduler at {address} offers a GPU. Start the workers of "
            f"the computers with one as: dask worker {address} --resources GPU=1"
        )


def describe_workers(workers: list[WorkerInfo]) -> str:
    """'2 workers, 4 cores, 31.4 GB: host-a (2 cores, 15.7 GB), host-b (...)'."""
    cores = sum(w.threads for w in workers)
    memory = sum(w.memory_bytes for w in workers)
    each = ", ".join(
        f"{w.host} ({w.threads} core{'s' if w.threads != 1 else ''}, {_gb(w.memory_bytes)}"
        + (f", {w.gpus:g} GPU" if w.gpus else "")
        + ")"
        for w in workers
    )
    n = len(workers)
    return (
        f"{n} worker{'s' if n != 1 else ''}, {cores} core{'s' if cores != 1 else ''}, "
        f"{_gb(memory)}: {each}"
    )


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n else "no memory limit"
