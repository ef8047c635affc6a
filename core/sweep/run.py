"""Running a sweep: each point trains a new model on the same text from the same base settings
and seed, for the same budget, recorded in the run store with the sweep's label; one after
another in this process, or ``jobs`` at a time in separate processes (spawn context), the
machine's cores divided between them. A diverged or failed point is a result like any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig
from ..engine import parallel
from ..errors import CharLSTMError, TrainingDiverged
from ..events import Event
from ..files.text import Corpus, load_corpus
from ..runs import RunRecorder, RunStore, recorded
from .grid import PointResult, SweepPoint, point_file_name, split_cores


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


_worker_stop: Any = None  # in a worker process: the pool's shared stop event (see _worker_init)
NOT_STARTED = "not started: the sweep was stopped"


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
        elapsed_s=0.0,
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
    on_trainer: Callable[[Any], None] | None = None,
) -> PointResult:
    """Train one point to its budget, record it, save its model; never raises for a point that
    fails (its result says why). Setting ``stop`` (a threading or multiprocessing Event) ends
    the training after the current step, saved and recorded as "stopped". ``on_trainer``
    receives the ``Trainer`` before it starts (e.g. to call ``request_stop`` on it)."""
    from ..training.trainer import Trainer  # here: a worker process imports it with its first point

    stops = [e for e in (stop, _worker_stop) if e is not None]
    if any(e.is_set() for e in stops):
        return skipped_result(point)
    model_path = os.path.join(spec.out_dir, point_file_name(point))
    status, message, trainer, recorder = "failed", None, None, None
    try:
        if corpus is None:
            corpus = load_corpus(spec.text_path, spec.encoding)
        mc, tc = point.configs(spec.base_model, spec.base_train)
        resume = unfinished_checkpoint(model_path, mc, tc, corpus) if spec.resume else None
        trainer = Trainer(
            corpus, mc, tc, resume=resume, checkpoint_path=model_path, device=spec.device
        )
        if on_trainer is not None:
            on_trainer(trainer)
        if spec.runs_db is not None:
            recorder = RunRecorder.for_trainer(
                spec.runs_db, trainer, name=point.label, source=spec.source, sweep=spec.sweep_label
            )
        events = trainer.run() if recorder is None else recorded(trainer.run(), recorder)
        with _stop_when_set(trainer, stops):
            while True:
                try:
                    event = next(events)
                except StopIteration as done:
                    summary = done.value
                    break
                if on_event is not None:
                    on_event(event)
        status = "stopped" if summary.reason == "stopped" else "finished"
        if summary.checkpoint_path is None:
            trainer.save(model_path)
    except TrainingDiverged as e:
        status, message = "diverged", str(e)
        if trainer is not None:
            with contextlib.suppress(CharLSTMError, OSError):
                trainer.save(model_path)  # the last good weights, as `charlstm train` keeps them
    except CharLSTMError as e:
        status, message = "failed", str(e)
    except MemoryError:
        status, message = "failed", "out of memory; use a smaller model or batch."
    except Exception as e:  # noqa: BLE001 - one failed point never stops the others
        status, message = "failed", f"unexpected {type(e).__name__}: {e}"
    run_id = recorder.recorded_id if recorder is not None else None
    if recorder is not None and recorder.warning and message is None:
        message = recorder.warning
    return PointResult(
        index=point.index,
        label=point.label,
        changes=point.changes,
        status=status,
        run_id=run_id,
        steps=trainer.step if trainer is not None else 0,
        best_val_loss=trainer.best_val_loss if trainer is not None else None,
        final_val_loss=_final_val(trainer),
        chars_per_sec=recorder.mean_chars_per_sec if recorder is not None else None,
        elapsed_s=trainer.elapsed_s if trainer is not None else 0.0,
        model_path=model_path if os.path.isfile(model_path) else None,
        message=message,
    )


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
    return PointResult(
        index=point.index,
        label=point.label,
        changes=point.changes,
        status=status,
        run_id=run.id,
        steps=run.steps,
        best_val_loss=run.best_val_loss,
        final_val_loss=run.final_val_loss,
        chars_per_sec=run.chars_per_sec,
        elapsed_s=run.elapsed_s,
        model_path=run.model_path,
        message=run.message,
    )


def _final_val(trainer: Any) -> float | None:
    if trainer is None:
        return None
    vals = trainer.history.get("val_loss")
    return float(vals[-1]) if vals is not None and len(vals) else None


@contextlib.contextmanager
def _stop_when_set(trainer: Any, stops: list[Any]) -> Iterator[None]:
    """While a point trains, a thread asks the trainer to stop as soon as one of ``stops`` is
    set (the trainer checks between steps)."""
    if not stops:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            if any(e.is_set() for e in stops):
                trainer.request_stop()
                return

    watcher = threading.Thread(target=watch, name="sweep-stop", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _worker_init(threads: int, stop: Any) -> None:
    """A worker process's setup: its share of BLAS threads, the pool's stop event, and Ctrl-C
    (which reaches every process of the terminal's group) turned into that stop."""
    global _worker_stop
    parallel.set_blas_threads(threads)
    _worker_stop = stop
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda signum, frame: stop.set())


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``run_sweep``: raised after the result of every point was yielded (the
    point in progress stopped and saved, the others skipped)."""


@contextlib.contextmanager
def _ctrl_c_sets(event: Any) -> Iterator[list[bool]]:
    """In the main thread, the first Ctrl-C sets ``event`` (the sweep stops cleanly) and the
    next one raises KeyboardInterrupt as usual. Yields a flag list: [True] once it happened."""
    pressed = [False]
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return

    def handle(signum: int, frame: Any) -> None:
        pressed[0] = True
        event.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def run_sweep(
    spec: SweepSpec,
    points: list[SweepPoint],
    *,
    jobs: int = 1,
    stop: threading.Event | None = None,
    on_event: Callable[[SweepPoint, Event], None] | None = None,
    on_start: Callable[[SweepPoint], None] | None = None,
    corpus: Corpus | None = None,
) -> Iterator[PointResult]:
    """Run the points, yielding each one's result as it ends (in grid order when ``jobs`` is 1).

    ``jobs`` > 1 runs that many points at once in separate processes, each with
    ``split_cores(jobs)`` BLAS threads. Setting ``stop`` stops the points in progress (saved
    and recorded as "stopped") and yields the others as "skipped"; in the main thread Ctrl-C
    does the same and then raises ``SweepInterrupted``. ``on_event`` sees every trainer event
    (only with ``jobs == 1``); ``on_start`` is called as each point starts (with ``jobs > 1``:
    as it is handed to a process). ``corpus``, with ``jobs == 1``, is the text already loaded
    (``spec.text_path`` is then not read).
    """
    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    if spec.runs_db is not None:  # create (or migrate) the store once, before any job races
        RunStore.open(spec.runs_db).close()
    jobs = max(1, min(jobs, len(points)))
    if jobs == 1:
        local = threading.Event()
        with _ctrl_c_sets(local) as pressed:
            stops = [e for e in (stop, local) if e is not None]
            if corpus is None:
                corpus = load_corpus(spec.text_path, spec.encoding)
            for point in points:
                if any(e.is_set() for e in stops):
                    yield skipped_result(point)
                    continue
                if on_start is not None:
                    on_start(point)
                forward = None if on_event is None else (lambda e, p=point: on_event(p, e))
                yield run_point(spec, point, corpus=corpus, on_event=forward, stop=_AnyOf(stops))
    else:
        ctx = multiprocessing.get_context("spawn")
        shared = ctx.Event()
        with _ctrl_c_sets(shared) as pressed:
            yield from _run_parallel(spec, points, jobs, ctx, shared, stop, on_start)
    if pressed[0]:
        raise SweepInterrupted()


class _AnyOf:
    """Set when any of the events is (what ``run_point`` needs of a stop event)."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def _run_parallel(spec, points, jobs, ctx, shared, stop, on_start) -> Iterator[PointResult]:
    threads = split_cores(jobs)
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_worker_init, initargs=(threads, shared)
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
                pending[pool.submit(run_point, spec, point)] = point
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
