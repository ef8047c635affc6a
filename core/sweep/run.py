"""Running a sweep: each point trains a new model on the same text from the same base settings
and seed, for the same budget, as one training session (charlstm_core.training.session, the one
``charlstm train`` and the app run), recorded in the run store with the sweep's label; one after
another in this process, or ``jobs`` at a time in separate processes (spawn context), the
machine's cores divided between them (charlstm_core.training.threads). A diverged or failed point
is a result like any other.

Stopping, as ``charlstm train`` stops (charlstm_core.training.stopping): SIGINT, SIGTERM or
SIGHUP (Ctrl-C, ``kill``, a logout) stops the points in progress after their step; they save and
are recorded "stopped", the others are "skipped", and ``run_sweep`` raises ``SweepInterrupted``
(with the signal) once every result has been yielded, so that the table of what finished can be
printed. A second signal quits sooner. The worker processes stop on those signals too (Ctrl-C and
a logout reach every process of the terminal's group), and they watch their parent: when it dies
(``kill -9``) each one stops its point after the step, saves and records it, and exits, instead
of training on as an orphan.

A point is one function call, ``run_point(spec, point)``; given ``corpus`` (say, made from the
text's content on a cluster's worker) it never reads ``spec.text_path``, and its result names the
model file and the run's id in ``spec.runs_db``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..errors import CharLSTMError, OutputFileError
from ..events import Event
from ..files.text import Corpus, display_path, load_corpus
from ..runs import RunStore
from ..training.session import Session, SessionRequest, SessionSummary, drive
from ..training.stopping import StopSignals
from ..training.threads import ThreadPolicy, thread_policy
from .grid import PointResult, SweepPoint, point_file_name


@dataclass(frozen=True)
class SweepSpec:
    """Everything a point needs, picklable for a worker process."""

    text_path: str
    encoding: str | None
    base_model: ModelConfig
    base_train: TrainConfig
    out_dir: str  # the points' model files go here
    runs_db: str | None  # None: not recorded
    sweep_label: str  # stored with each run, to find the sweep's runs together
    source: str = "sweep"
    # continue a point whose model file in out_dir is its own unfinished checkpoint (a sweep
    # killed part-way and run again), bit for bit as if it had never stopped
    resume: bool = False
    device: str = "cpu"  # where each point trains ("cpu", "gpu", "gpu:N"; "auto": a GPU if usable)


# In a worker process (set by _worker_init): the pool's shared stop event and thread policy,
# and a lock held while a point trains (the parent watch waits for it before exiting).
_worker_stop: Any = None
_worker_threads: ThreadPolicy | None = None
_point_running = threading.Lock()
NOT_STARTED = "not started: the sweep was stopped"
STATUS_OF_ENDING = {"finished": "finished", "stopped": "stopped", "diverged": "diverged"}


def skipped_result(point: SweepPoint, why: str = NOT_STARTED) -> PointResult:
    """The result of a point that never trained (the sweep was stopped first)."""
    return PointResult(
        index=point.index,
        label=point.label,
        changes=point.changes,
        status="skipped",
        run_id=None,
        steps=0,
        best_val_loss=None,
        final_val_loss=None,
        chars_per_sec=None,
        duration_s=0.0,
        model_path=None,
        message=why,
    )


def run_point(
    spec: SweepSpec,
    point: SweepPoint,
    *,
    corpus: Corpus | None = None,
    on_event: Callable[[Event], None] | None = None,
    stop: Any = None,
    threads: ThreadPolicy | None = None,
) -> PointResult:
    """Train one point to its budget as a training session, recorded and saved; never raises
    for a point that fails (its result says why). Setting ``stop`` (a threading or
    multiprocessing Event) ends the training after the current step, saved and recorded as
    "stopped". ``on_event`` sees every event of the session; ``threads`` is the BLAS policy
    (default: a pool worker's share of the cores, else BLAS as it is)."""
    stops = [e for e in (stop, _worker_stop) if e is not None]
    if any(e.is_set() for e in stops):
        return skipped_result(point)
    model_path = os.path.join(spec.out_dir, point_file_name(point))
    try:
        mc, tc = point.configs(spec.base_model, spec.base_train)
        if earlier_point_files(spec, [point]):
            raise OutputFileError(
                f"{display_path(model_path)} is already there (an earlier sweep's model); it is "
                "kept. Run the sweep into another folder.",
                path=model_path,
            )
        resume = None
        if spec.resume:  # whether the file is this point's own checkpoint depends on the text
            corpus = corpus or load_corpus(spec.text_path, spec.encoding)
            resume = unfinished_checkpoint(model_path, mc, tc, corpus)
        request = SessionRequest(
            text=corpus if corpus is not None else spec.text_path,
            encoding=spec.encoding,
            model_config=mc,
            train_config=tc,
            resume=resume,
            out=model_path,
            record=spec.runs_db is not None,
            runs_db=spec.runs_db,
            run_name=point.label,
            source=spec.source,
            sweep=spec.sweep_label,
            threads=threads or _worker_threads or ThreadPolicy(),
            device=spec.device,
        )
        session = Session(request, stop_events=stops)
        with contextlib.closing(session.run()) as run:
            summary = drive(run, on_event or _ignore)
    except CharLSTMError as e:  # the text, the settings or the model file: before training
        return _failed(point, str(e))
    except MemoryError:
        return _failed(point, "out of memory; use a smaller model or batch.")
    except Exception as e:  # noqa: BLE001 - one failed point never stops the others
        return _failed(point, f"unexpected {type(e).__name__}: {e}")
    return _result(point, summary, model_path)


def _ignore(event: Any) -> None:
    pass


def _failed(point: SweepPoint, message: str) -> PointResult:
    return dataclasses.replace(skipped_result(point, message), status="failed")


def _result(point: SweepPoint, summary: SessionSummary, model_path: str) -> PointResult:
    """A point's result from its session's summary."""
    status = STATUS_OF_ENDING.get(summary.ended, "failed")
    message = None
    e = summary.error
    if e is not None:
        if isinstance(e, CharLSTMError):
            message = str(e)
        elif isinstance(e, MemoryError):
            message = "out of memory; use a smaller model or batch."
        else:
            message = f"unexpected {type(e).__name__}: {e}"
    elif summary.save_problem is not None:
        where = summary.model_path or "nowhere"
        message = f"its model file could not be written ({summary.save_problem}); saved to {where}"
    elif summary.record_problem is not None:
        message = summary.record_problem
    saved = summary.model_path or (model_path if os.path.isfile(model_path) else None)
    return _point_result(point, status, summary, summary.run_id, summary.duration_s, saved, message)


def earlier_point_files(spec: SweepSpec, points: list[SweepPoint]) -> list[str]:
    """The points' model files already in ``spec.out_dir`` that this sweep would replace (an
    earlier sweep's models, which its runs still name): none when ``spec.resume`` continues a
    killed sweep's own checkpoints (``unfinished_checkpoint`` decides point by point)."""
    if spec.resume:
        return []
    paths = (os.path.join(spec.out_dir, point_file_name(p)) for p in points)
    return [p for p in paths if os.path.lexists(p)]


def unfinished_checkpoint(
    path: str, model_config: ModelConfig, train_config: TrainConfig, corpus: Corpus
) -> Any:
    """The ``ModelFile`` at ``path`` when it is a checkpoint of exactly this point (its model and
    training settings, on this text) that has not reached its last step; otherwise None (no
    file, another point's, a finished or unreadable one: the point then trains afresh)."""
    from ..files.modelfile import load_model

    if not os.path.isfile(path):
        return None
    try:
        model = load_model(path)
    except (CharLSTMError, OSError):
        return None
    st = model.train
    if st is None or st.config != train_config or st.step >= st.total_steps:
        return None
    if dataclasses.replace(model_config, vocab_size=model.config.vocab_size) != model.config:
        return None
    if st.corpus.get("sha256") != corpus.fingerprint.get("sha256"):
        return None
    return model


def result_from_run(point: SweepPoint, run: Any) -> PointResult:
    """A point's result from its recorded ``charlstm_core.runs.Run`` (for a front end that trains
    the points itself, e.g. the app through its own worker)."""
    status = "failed" if run.status == "crashed" else run.status
    duration_s = run.duration_s if run.duration_s is not None else 0.0
    return _point_result(point, status, run, run.id, duration_s, run.model_path, run.message)


def _point_result(
    point: SweepPoint,
    status: str,
    measures: Any,
    run_id: int | None,
    duration_s: float,
    model_path: str | None,
    message: str | None,
) -> PointResult:
    """A point's result from ``measures`` (a ``TrainSummary`` or a recorded run: their steps,
    best and final validation losses and chars/s) and what the caller worked out."""
    return PointResult(
        index=point.index,
        label=point.label,
        changes=point.changes,
        status=status,
        run_id=run_id,
        steps=measures.steps,
        best_val_loss=measures.best_val_loss,
        final_val_loss=measures.final_val_loss,
        chars_per_sec=measures.chars_per_sec,
        duration_s=duration_s,
        model_path=model_path,
        message=message,
    )


# ------------------------------------------------------------------ a pool's worker process


def _worker_init(threads: ThreadPolicy, stop: Any) -> None:
    """A worker process's setup: its share of BLAS threads and the pool's stop event; the stop
    signals set that event (a second one, while a point trains, quits that point sooner); and a
    watch on the parent, so that the worker never outlives it."""
    global _worker_stop, _worker_threads
    _worker_stop, _worker_threads = stop, threads
    StopSignals(lambda signum: stop.set(), may_interrupt=_point_running.locked).__enter__()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=_end_with_parent, args=(parent.sentinel, stop), name="sweep-parent", daemon=True
        ).start()


def _end_with_parent(sentinel: int, stop: Any) -> None:
    """Wait until the parent process has ended; then stop the point in progress after its step
    (it saves and is recorded "stopped"), and end this process."""
    multiprocessing.connection.wait([sentinel])
    stop.set()
    with _point_running:
        os._exit(0)


def _pool_point(spec: SweepSpec, point: SweepPoint) -> PointResult:
    """``run_point`` in a worker process, holding the lock the parent watch waits for."""
    with _point_running:
        return run_point(spec, point)


# ------------------------------------------------------------------ the sweep


class SweepInterrupted(KeyboardInterrupt):
    """A stop signal during ``run_sweep``: raised after the result of every point was yielded
    (the points in progress stopped and saved, the others skipped). ``signum``: the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_sweep(
    spec: SweepSpec,
    points: list[SweepPoint],
    *,
    jobs: int = 1,
    stop: threading.Event | None = None,
    on_event: Callable[[SweepPoint, Event], None] | None = None,
    on_start: Callable[[SweepPoint], None] | None = None,
    corpus: Corpus | None = None,
    on_signal: Callable[[int], None] | None = None,
) -> Iterator[PointResult]:
    """Run the points, yielding each one's result as it ends (in grid order when ``jobs`` is 1).

    ``jobs`` > 1 runs that many points at once in separate processes, each with
    ``split_cores(jobs)`` BLAS threads. Setting ``stop`` stops the points in progress (saved
    and recorded as "stopped") and yields the others as "skipped"; in the main thread SIGINT,
    SIGTERM and SIGHUP do the same (``on_signal(signum)`` is told of the first) and then raise
    ``SweepInterrupted``. ``on_event`` sees every event of each point's session (only with
    ``jobs == 1``); ``on_start`` is called as each point starts (with ``jobs > 1``: as it is
    handed to a process). ``corpus``, with ``jobs == 1``, is the text already loaded
    (``spec.text_path`` is then not read).
    """
    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    if spec.runs_db is not None:  # create (or migrate) the store once, before any job races
        RunStore.open(spec.runs_db).close()
    jobs = max(1, min(jobs, len(points)))
    ctx = multiprocessing.get_context("spawn") if jobs > 1 else None
    if ctx is not None:
        _start_resource_tracker()
    signalled = ctx.Event() if ctx is not None else threading.Event()
    with StopSignals(lambda signum: signalled.set(), on_signal) as signals:
        if ctx is None:
            stops = _AnyOf([e for e in (stop, signalled) if e is not None])
            if corpus is None:
                corpus = load_corpus(spec.text_path, spec.encoding)
            for point in points:
                if stops.is_set():
                    yield skipped_result(point)
                    continue
                if on_start is not None:
                    on_start(point)
                forward = None if on_event is None else (lambda e, p=point: on_event(p, e))
                yield run_point(spec, point, corpus=corpus, on_event=forward, stop=stops)
        else:
            yield from _run_parallel(spec, points, jobs, ctx, signalled, stop, on_start)
    if signals.signum is not None:
        raise SweepInterrupted(signals.signum)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker (the process that would remove the pool's
    semaphores if this one died) deaf to SIGHUP, which it does not ignore by itself: a logout
    sends SIGHUP to every process of the job, and a tracker killed by it is started again later
    without its records, which it then reports as tracebacks. An ignored signal stays ignored
    in the process started (``exec`` keeps it)."""
    from multiprocessing import resource_tracker

    hup = getattr(signal, "SIGHUP", None)
    if hup is None or threading.current_thread() is not threading.main_thread():
        resource_tracker.ensure_running()
        return
    previous = signal.signal(hup, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(hup, previous)


class _AnyOf:
    """Set when any of the events is (what a session needs of a stop event)."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def _run_parallel(spec, points, jobs, ctx, shared, stop, on_start) -> Iterator[PointResult]:
    policy = thread_policy("sweep", jobs=jobs)
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(policy, shared)
    ) as pool:
        pending: dict[Future, SweepPoint] = {}
        queue = list(points)
        while queue or pending:
            if stop is not None and stop.is_set():
                shared.set()  # the workers stop their points after the current step
            if shared.is_set():
                for point in queue:
                    yield skipped_result(point)
                queue = []
            while queue and len(pending) < jobs:
                point = queue.pop(0)
                if on_start is not None:
                    on_start(point)
                pending[pool.submit(_pool_point, spec, point)] = point
            if not pending:
                break
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                yield _result_of(future, pending.pop(future))


def _result_of(future: Future, point: SweepPoint) -> PointResult:
    try:
        return future.result()
    except Exception as e:  # noqa: BLE001 - a worker that died (killed, out of memory)
        why = f"its process failed: {type(e).__name__}: {e}"
        return dataclasses.replace(skipped_result(point, why), status="failed")
