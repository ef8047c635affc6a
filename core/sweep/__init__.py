"""Sweeps: train every combination of a few settings' values, record each as a run, rank them.

A grid is a list of axes, each one setting (a ``ModelConfig`` or ``TrainConfig`` field) and its
values; its points are the Cartesian product, in the order given (the last axis varies fastest).
Each point trains a new model on the same text from the same base settings and seed, for the same
budget (steps, epochs or minutes), and is recorded in the run store with the sweep's label.

``run_sweep`` runs the points one after another in this process, or ``jobs`` at a time in
separate processes (``concurrent.futures.ProcessPoolExecutor``, spawn context), the machine's
cores divided between them (BLAS threads per job, ``core.parallel``). It yields each point's
``PointResult`` as it ends; a diverged or failed point is a result like any other and never stops
the rest. ``rank`` orders results by best validation loss.

With a budget in steps or epochs a point's losses do not depend on ``jobs`` (same seed, same
batches); a budget in minutes trains as many steps as the time allows, which does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import parallel
from .config import ModelConfig, TrainConfig
from .data import Corpus, load_corpus
from .errors import CharLSTMError, ConfigError, TrainingDiverged
from .events import Event
from .runs import RunRecorder, RunStore, recorded

_MODEL_FIELDS = {f.name: f for f in dataclasses.fields(ModelConfig) if f.name != "vocab_size"}
_BUDGET_FIELDS = ("steps", "epochs", "minutes")
_TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in _BUDGET_FIELDS}
SWEEPABLE = tuple(_MODEL_FIELDS) + tuple(_TRAIN_FIELDS)  # every field a grid may vary
MAX_POINTS = 1000  # a grid larger than this is almost certainly a typo


@dataclass(frozen=True)
class Axis:
    """One setting of a grid and its values (already of the field's type)."""

    field: str  # ModelConfig or TrainConfig field name
    values: tuple[Any, ...]
    label: str  # the name the user gave (e.g. "lr", "hidden"), used in tables


@dataclass(frozen=True)
class SweepPoint:
    """One combination of a grid's values."""

    index: int  # 0-based position in the grid
    changes: dict[str, Any]  # field name -> value
    label: str  # "lr=0.002 hidden=256"

    def configs(
        self, base_model: ModelConfig, base_train: TrainConfig
    ) -> tuple[ModelConfig, TrainConfig]:
        """The base settings with this point's changes applied (validated)."""
        m = {k: v for k, v in self.changes.items() if k in _MODEL_FIELDS}
        t = {k: v for k, v in self.changes.items() if k in _TRAIN_FIELDS}
        try:
            return (
                dataclasses.replace(base_model, **m).validate(),
                dataclasses.replace(base_train, **t).validate(),
            )
        except ConfigError as e:
            raise ConfigError(f"Grid point {self.label}: {e}") from None


@dataclass(frozen=True)
class PointResult:
    """How one point of a sweep ended."""

    index: int
    label: str
    changes: dict[str, Any]
    status: str  # "finished", "stopped", "diverged", "failed" or "skipped"
    run_id: int | None  # its row in the run store (None when not recorded)
    steps: int
    best_val_loss: float | None  # nats per character
    final_val_loss: float | None
    chars_per_sec: float | None
    elapsed_s: float  # training seconds
    model_path: str | None
    message: str | None  # why it diverged, failed or was not recorded

    @property
    def ok(self) -> bool:
        """Trained to its end (or stopped) with a validation loss to rank it by."""
        return self.status in ("finished", "stopped") and self.best_val_loss is not None


# ---------------------------------------------------------------------------------------------
# Grids


def _parse_value(field: dataclasses.Field, text: str, key: str) -> Any:
    kind = type(field.default)
    text = text.strip()
    if not text:
        raise ConfigError(f"--grid {key}: an empty value; write values as {key}=V1,V2,...")
    try:
        if kind is int:
            value = float(text)
            if not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"--grid {key}: {text!r} is not {what}.") from None
    return text


def parse_grid(specs: list[str], aliases: dict[str, str] | None = None) -> list[Axis]:
    """Axes from ``["lr=2e-3,4e-3", "hidden=256,512"]``.

    A key is a field name (``hidden_size``, ``lr``) or one of ``aliases`` (the command line's
    option names, e.g. ``{"hidden": "hidden_size"}``); dashes count as underscores. Values are
    converted to the field's type; a wrong key or value is a ``ConfigError`` naming it.
    """
    aliases = {k.replace("-", "_"): v for k, v in (aliases or {}).items()}
    axes: list[Axis] = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--grid {spec!r}: write a setting and its values, e.g. lr=2e-3,4e-3."
            )
        name = key.replace("-", "_")
        name = aliases.get(name, name)
        if name in _BUDGET_FIELDS:
            raise ConfigError(
                f"--grid {key}: every point trains for the same budget; give it with --steps, "
                "--epochs or --minutes instead."
            )
        field = _MODEL_FIELDS.get(name) or _TRAIN_FIELDS.get(name)
        if field is None:
            known = sorted(set(aliases) | set(SWEEPABLE))
            raise ConfigError(
                f"--grid {key}: there is no setting called {key!r}. Settings: {', '.join(known)}."
            )
        if any(a.field == name for a in axes):
            raise ConfigError(
                f"--grid {key}: this setting is given twice; list all its values once."
            )
        parsed = tuple(_parse_value(field, v, key) for v in values.split(","))
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"--grid {key}: a value is listed twice.")
        axes.append(Axis(field=name, values=parsed, label=key))
    return axes


def grid_points(
    axes: list[Axis], base_model: ModelConfig, base_train: TrainConfig
) -> list[SweepPoint]:
    """Every combination of the axes' values, each checked against the config ranges."""
    if not axes:
        raise ConfigError("Give at least one setting to vary, e.g. --grid lr=2e-3,4e-3,8e-3.")
    n = math.prod(len(a.values) for a in axes)
    if n > MAX_POINTS:
        raise ConfigError(f"This grid has {n:,} points; at most {MAX_POINTS:,} are allowed.")
    points = []
    for i, combo in enumerate(itertools.product(*(a.values for a in axes))):
        changes = {a.field: v for a, v in zip(axes, combo, strict=True)}
        label = " ".join(f"{a.label}={_show(v)}" for a, v in zip(axes, combo, strict=True))
        point = SweepPoint(index=i, changes=changes, label=label)
        point.configs(base_model, base_train)  # fail now, not after an hour of other points
        points.append(point)
    return points


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def point_file_name(point: SweepPoint) -> str:
    """``03_lr=0.004_hidden=256.npz``: the model file of a point inside the sweep's folder."""
    safe = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", point.label.replace(" ", "_"))
    return f"{point.index + 1:02d}_{safe}.npz"


def rank(results: list[PointResult]) -> list[PointResult]:
    """Best first: points with a validation loss by best validation loss (ties by index), then
    those without one or that diverged or failed, in grid order."""
    return sorted(
        results,
        key=lambda r: (0, r.best_val_loss, r.index) if r.ok else (1, math.inf, r.index),
    )


def split_cores(jobs: int, cores: int | None = None) -> int:
    """BLAS threads for each of ``jobs`` simultaneous points: the cores shared out, at least 1."""
    cores = cores or usable_cores()
    return max(1, cores // max(1, jobs))


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ---------------------------------------------------------------------------------------------
# Running


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
    from .trainer import Trainer  # here: a worker process imports it with its first point

    stops = [e for e in (stop, _worker_stop) if e is not None]
    if any(e.is_set() for e in stops):
        return skipped_result(point)
    model_path = os.path.join(spec.out_dir, point_file_name(point))
    status, message, trainer, recorder = "failed", None, None, None
    try:
        if corpus is None:
            corpus = load_corpus(spec.text_path, spec.encoding)
        mc, tc = point.configs(spec.base_model, spec.base_train)
        trainer = Trainer(corpus, mc, tc, checkpoint_path=model_path)
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


def result_from_run(point: SweepPoint, run: Any) -> PointResult:
    """A point's result from its recorded ``core.runs.Run`` (for a front end that trains the
    points itself, e.g. the app through its own worker)."""
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


def sweep_label(text_name: str) -> str:
    """A label for a new sweep's runs: the text's stem and the local time."""
    return f"{Path(text_name).stem} {time.strftime('%Y-%m-%d %H:%M:%S')}"


def format_table(results: list[PointResult], axes: list[Axis]) -> str:
    """The ranked table the command line prints: rank, each axis's value, status, best
    validation loss (nats and bits per character), steps, chars/s, time, run id."""
    rows = [["#", *(a.label for a in axes), "status", "best val", "bits/char", "steps",
             "chars/s", "time", "run"]]  # fmt: skip
    for i, r in enumerate(rank(results), 1):
        best = r.best_val_loss
        rows.append(
            [
                str(i) if r.ok else "-",
                *(_show(r.changes[a.field]) for a in axes),
                r.status,
                "-" if best is None else f"{best:.4f}",
                "-" if best is None else f"{best / math.log(2):.4f}",
                f"{r.steps:,}",
                "-" if r.chars_per_sec is None else f"{r.chars_per_sec:,.0f}",
                _hms(r.elapsed_s),
                "-" if r.run_id is None else str(r.run_id),
            ]
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    notes = [f"  {r.label}: {r.status}: {r.message}" for r in rank(results) if r.message]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
