"""The run store and sweeps for the controller (``RunsMixin``, a part of ``Controller``).

Every training run is recorded in the run store (``charlstm_core.runs``) by its training session,
on the worker's thread (the controller says how: ``record_runs``, ``runs_db``); this part lists,
renames and deletes runs, and
owns the state of a sweep: one run per point of a grid of settings, one after another, ranked by the
same rule as the command line (``charlstm_core.sweep.rank``).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import CharLSTMError

from .state import State


@dataclass
class SweepRun:
    """One point of a sweep in the app (``charlstm_core.sweep.SweepPoint``) and what became of
    it."""

    point: Any  # charlstm_core.sweep.SweepPoint: its index, changes (field -> value) and label
    status: str = "waiting"  # waiting, running, finished, stopped, diverged, failed, skipped
    run_id: int | None = None
    best_val: float | None = None
    model_path: str | None = None
    message: str = ""
    host: str = ""  # the computer that trains or trained it (a sweep on a cluster)
    progress: str = ""  # "step 1,200/3,000, loss 1.834" while it trains on a cluster

    @property
    def label(self) -> str:
        return self.point.label

    def result(self) -> Any:
        """As a ``charlstm_core.sweep.PointResult``, to be ranked by the same rule as the command
        line."""
        from charlstm_core.sweep import PointResult

        return PointResult(
            self.point.index, self.label, self.point.changes, self.status, self.run_id, 0,
            self.best_val, None, None, 0.0, self.model_path, self.message or None,
        )  # fmt: skip


@dataclass
class SweepState:
    """A sweep in progress (``done`` False) or ended; ``best`` indexes ``points``."""

    label: str  # shared by the points' runs in the store
    points: list[SweepRun]
    configs: list[tuple[ModelConfig, TrainConfig]] = field(repr=False)
    autosave_dir: str = ""
    current: int = -1
    cancelled: bool = False
    done: bool = False
    best: int | None = None
    # "Same steps for each run": the points are being timed before the first one starts; set
    # ``stop_timing`` to end that early
    timing: bool = False
    stop_timing: threading.Event = field(default_factory=threading.Event, repr=False)
    cluster: str = ""  # the Dask scheduler's address when it runs on a cluster
    cluster_workers: str = ""  # its workers, described, once connected
    jobs: int = 1  # points at once in processes here (> 1: a process pool, not the app's trainer)


class RunsMixin:
    """The run store and sweeps (a part of ``Controller``)."""

    # what the mixin uses of Controller (declared there)
    message: Any
    internal_error: Any
    runs_changed: Any
    runs_problem: Any
    sweep_changed: Any
    sweep_finished: Any
    run_task: Callable[..., None]
    _set_dirty: Callable[[bool], None]
    _start_jobs_sweep: Callable[..., None]
    _stop_jobs_sweep: Callable[..., bool]

    def _init_runs(self) -> None:
        self.record_runs = True  # record every training run in the run store
        self.runs_db: str | None = (
            None  # the store's file; None: charlstm_core.runs.default_db_path()
        )
        self.current_run_id: int | None = None  # the store's id of the run training now
        self.history_run_id: int | None = None  # the run whose curve ``history`` shows
        self.sweep: SweepState | None = None
        self._store: Any = None
        self._store_path: str | None = None
        self.runs_problem_text = ""
        self._outcome: tuple[str, str] = ("finished", "")  # the last run's, for its sweep point

    def _record_run_id(self, run_id: Any) -> None:
        self.current_run_id = self.history_run_id = run_id
        if self.sweep is not None and 0 <= self.sweep.current < len(self.sweep.points):
            self.sweep.points[self.sweep.current].run_id = run_id
        self.runs_changed.emit()

    def _record_model_file(self, path: str) -> None:
        """The current model was saved to ``path``, a file of the user's: the run whose curve
        ``history`` shows now names that file as its model and, unless someone chose its name,
        is named after it (``charlstm_core.runs.naming``)."""
        run_id = self.history_run_id
        if run_id is None or not path:
            return
        if self.run_checkpoint and os.path.realpath(path) == os.path.realpath(self.run_checkpoint):
            return  # the run's own autosave: already its model file
        store = self.run_store()
        if store is None:
            return
        try:
            store.model_saved(run_id, path)
        except CharLSTMError as exc:
            self._report_runs_problem(str(exc))
            return
        self.runs_changed.emit()

    def _report_runs_problem(self, text: str) -> None:
        """One message per distinct problem, however many runs meet it."""
        if text != self.runs_problem_text:
            self.runs_problem_text = text
            self.runs_problem.emit(text)

    def run_store(self) -> Any:
        """The open run store, or None (its problem reported once through ``runs_problem``)."""
        from charlstm_core.runs import RunStore, default_db_path

        path = str(self.runs_db or default_db_path())
        if self._store is not None and self._store_path == path:
            return self._store
        if self._store is not None:
            self._store.close()
            self._store = None
        try:
            self._store = RunStore.open(path)
        except CharLSTMError as exc:
            self._report_runs_problem(str(exc))
            return None
        self._store_path = path
        self.runs_problem_text = ""
        return self._store

    def list_runs(self) -> list[Any]:
        """Every recorded run, newest first ([] when the store cannot be read)."""
        store = self.run_store()
        if store is None:
            return []
        try:
            return store.list_runs()
        except CharLSTMError as exc:
            self._report_runs_problem(str(exc))
            return []

    def rename_run(self, run_id: int, name: str) -> bool:
        return self._change_run("Cannot rename the run", lambda s: s.rename(run_id, name))

    def delete_run(self, run_id: int, *, with_model: bool = False) -> bool:
        """Remove a run from the store; its model file only with ``with_model``."""
        return self._change_run(
            "Cannot delete the run", lambda s: s.delete(run_id, with_model=with_model)
        )

    def _change_run(self, title: str, change: Callable[[Any], Any]) -> bool:
        store = self.run_store()
        if store is None:
            self.message.emit(
                title, self.runs_problem_text or "The runs database cannot be opened."
            )
            return False
        try:
            change(store)
        except CharLSTMError as exc:
            self.message.emit(title, str(exc))
            return False
        self.runs_changed.emit()
        return True

    def load_curves(self, run_ids: list[int], done: Callable[[dict[int, Any]], None]) -> None:
        """Read the runs' curves off the GUI thread; ``done({id: charlstm_core.runs.Curves})``
        follows."""
        store = self.run_store()
        if store is not None and run_ids:
            ids = list(run_ids)
            self.run_task(lambda: store.curves(ids), done)

    @property
    def sweeping(self) -> bool:
        return self.sweep is not None and not self.sweep.done

    def start_sweep(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        grid: dict[str, list[Any]],
        *,
        unit: str = "steps",
        budget: float = 100,
        autosave_dir: str = "",
        same_steps: bool = False,
        cluster: str = "",
        jobs: int = 1,
    ) -> bool:
        """Train one run per point of ``grid`` (setting -> values), one after another, each
        ``budget`` steps or minutes long.

        Every point's settings are checked before the first starts; each run keeps its model in
        the autosave folder so that the best one can be opened at the end. ``same_steps`` (with
        minutes): first time every point on this machine, off the GUI thread, and train each
        for the steps that fit in its minutes (``charlstm_core.sweep.calibrate``, as
        ``charlstm sweep --as-steps``), so that what else the computer does meanwhile does not
        change the result. ``jobs`` > 1 trains that many points at once in processes here
        (``charlstm sweep --jobs``); ``cluster``, the address of a Dask scheduler, trains them
        on its workers instead, as many at once as they have threads (``charlstm sweep
        --scheduler``; the timing then runs on a worker). Neither draws the runs live: each
        joins the plot when it ends.
        """
        from charlstm_core import sweep as core_sweep
        from charlstm_core.runs.naming import setting_name

        if self.training or self.sweeping:
            self.message.emit("Training is running", "Stop training before starting a sweep.")
            return False
        if self.corpus is None:
            self.message.emit("No text", "Open a text file (or use the built-in text) first.")
            return False
        if not autosave_dir:
            self.message.emit(
                "No autosave folder",
                "A sweep keeps each run's model in the autosave folder; choose one in the "
                "settings first.",
            )
            return False
        if unit not in ("steps", "minutes") or not budget > 0:
            self.message.emit("Check the sweep", "Give each run a budget in steps or minutes.")
            return False
        if same_steps and unit != "minutes":
            self.message.emit(
                "Check the sweep",
                "Timing the runs turns a budget in minutes into steps; with a budget in steps "
                "every run already trains the same steps.",
            )
            return False
        length = {"steps": int(budget), "epochs": None, "minutes": None}
        if unit == "minutes":
            length.update(steps=None, minutes=float(budget))
        base = dataclasses.replace(train_config, **length)
        from charlstm_core.files import text as data

        configs = []
        try:
            axes = [core_sweep.Axis(k, tuple(v), setting_name(k)) for k, v in grid.items()]
            points = core_sweep.grid_points(axes, model_config, base)
            for point in points:
                mc, tc = point.configs(model_config, base)
                data.check_trainable(self.corpus, tc.batch_size, tc.seq_len, tc.val_fraction)
                configs.append((mc, tc))
        except CharLSTMError as exc:
            self.message.emit("Check the sweep", str(exc))
            return False
        label = core_sweep.sweep_label(self.corpus.name)
        runs = [SweepRun(p) for p in points]
        self.sweep = SweepState(
            label, runs, configs, autosave_dir=autosave_dir, cluster=cluster, jobs=jobs
        )
        if cluster or jobs > 1:
            self._start_jobs_sweep(model_config, base, same_steps, cluster=cluster, jobs=jobs)
        elif same_steps:
            self._sweep_time_points(model_config, base, float(budget))
        else:
            self._sweep_next()
        return True

    def _sweep_time_points(self, model_config: ModelConfig, base: TrainConfig, minutes: float):
        """Time every point off the GUI thread, then start the first with its steps."""
        from charlstm_core.sweep import calibrate

        sweep = self.sweep
        assert sweep is not None
        sweep.timing = True
        self.sweep_changed.emit(sweep)
        corpus, points = self.corpus, [p.point for p in sweep.points]

        def timed(cals: list[Any]) -> None:
            if sweep is not self.sweep or sweep.done:
                return  # cancelled meanwhile (and ended then)
            sweep.timing = False
            for i, c in enumerate(cals):
                sweep.points[i].point = c.point
                sweep.configs[i] = c.point.configs(model_config, base)
            self._sweep_next()

        def failed(exc: Exception, tb: str) -> None:
            if sweep is not self.sweep or sweep.done:
                return
            sweep.timing = False
            for p in sweep.points:
                p.status, p.message = "skipped", "The settings could not be timed."
            if isinstance(exc, CharLSTMError):
                self.message.emit("Cannot time the settings", str(exc))
            else:
                self.internal_error.emit(tb)
            self._sweep_end()

        self.run_task(
            lambda: calibrate(points, model_config, base, corpus, minutes, stop=sweep.stop_timing),
            timed,
            failed=failed,
        )

    def cancel_sweep(self) -> None:
        """Stop the current point, skip the rest; the finished points stay recorded."""
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        sweep.cancelled = True
        sweep.stop_timing.set()
        for p in sweep.points:
            if p.status == "waiting":
                p.status = "skipped"
        self.sweep_changed.emit(sweep)
        if self._stop_jobs_sweep():
            return  # its points training come back "stopped", then the sweep ends
        if self._train_worker is not None:
            self.stop()  # _sweep_point_ended follows when the worker has ended
        else:
            self._sweep_end()

    def _sweep_next(self) -> None:
        sweep = self.sweep
        assert sweep is not None
        while not sweep.cancelled:
            i = next((j for j, p in enumerate(sweep.points) if p.status == "waiting"), None)
            if i is None:
                break
            sweep.current = i
            point = sweep.points[i]
            point.status = "running"
            self.sweep_changed.emit(sweep)
            if self.start_training(*sweep.configs[i], autosave_dir=sweep.autosave_dir):
                return
            point.status, point.message = "failed", "It could not start."
        self._sweep_end()

    def _sweep_point_ended(self) -> None:
        sweep = self.sweep
        if sweep is None or sweep.done or not 0 <= sweep.current < len(sweep.points):
            return
        point = sweep.points[sweep.current]
        if point.status == "running":
            point.status, point.message = self._outcome
            point.best_val = self.best_val
            point.model_path = self.autosave_file
        self.sweep_changed.emit(sweep)
        self._sweep_next()

    def _sweep_end(self) -> None:
        sweep = self.sweep
        assert sweep is not None
        from charlstm_core.sweep import rank

        sweep.done = True
        sweep.timing = False
        sweep.current = -1
        if self.autosave_file and self.state is State.IDLE:
            self._set_dirty(False)  # the last point's model is in its checkpoint, like the rest
        ranked = rank([p.result() for p in sweep.points])
        sweep.best = ranked[0].index if ranked and ranked[0].ok else None
        self.sweep_finished.emit(sweep)

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
