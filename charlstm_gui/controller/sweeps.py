"""The sweep of the app (``Sweeps``): one run per point of a grid of settings.

Every point's settings are checked before the first starts. The app's own sweep then trains the
points one after another with its trainer, drawn live (the controller starts each run when asked,
``start_point``, and says how it ended, ``point_ended``); a sweep of several points at once, in
processes here or on a Dask cluster, is handed to ``SweepJobs``. Either way the points are ranked
at the end by the same rule as the command line (``charlstm_core.sweep.rank``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import CharLSTMError

from .sweep_jobs import SweepJobs
from .tasks import Feedback


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

    def skip_unended(self, message: str) -> None:
        """Mark the points that have not ended (waiting, or running when the jobs stopped)
        skipped, saying why."""
        for p in self.points:
            if p.status in ("waiting", "running"):
                p.status, p.message = "skipped", message


class Sweeps:
    """The sweep in progress or the last one (``sweep``): built and checked, its points trained
    one after another or handed to ``SweepJobs``, then ranked; the controller starts and stops
    its runs through the callbacks it gives."""

    def __init__(
        self,
        run_task: Callable[..., None],
        feedback: Feedback,
        jobs: SweepJobs,
        *,
        begin: Callable[[], None],
        start_point: Callable[[ModelConfig, TrainConfig, str], bool],
        stop_run: Callable[[], bool],
        changed: Callable[[SweepState], None],
        ended: Callable[[SweepState], None],
    ) -> None:
        """``begin()``: the sweep begins; ``start_point(model config, train config, autosave
        folder)``: start the run of a point (False when it could not); ``stop_run()``: stop the
        run training now (False when none); ``changed(sweep)``: a point began or ended;
        ``ended(sweep)``: it ended, best marked."""
        self.run_task, self.feedback, self.jobs = run_task, feedback, jobs
        self._begin, self._start_point, self._stop_run = begin, start_point, stop_run
        self._changed, self._ended = changed, ended
        self.sweep: SweepState | None = None

    @property
    def in_progress(self) -> bool:
        return self.sweep is not None and not self.sweep.done

    def naming(self) -> tuple[str, str | None] | None:
        """How the run starting now is recorded: (the sweep's label, its point's name); None
        outside a sweep."""
        sweep = self.sweep
        if sweep is None or sweep.done:
            return None
        name = None
        if 0 <= sweep.current < len(sweep.points):
            name = sweep.points[sweep.current].label  # as the command line names them
        return sweep.label, name

    def run_recorded(self, run_id: int) -> None:
        """The point training now was recorded as ``run_id``."""
        sweep = self.sweep
        if sweep is not None and 0 <= sweep.current < len(sweep.points):
            sweep.points[sweep.current].run_id = run_id

    def start(
        self,
        corpus: Any,
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
        runs_db: str = "",
    ) -> bool:
        """Train one run per point of ``grid`` (setting -> values) on ``corpus``, one after another,
        each ``budget`` steps or minutes long; False (and a message) when the sweep cannot start.

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
        from charlstm_core.files import text as data
        from charlstm_core.runs.naming import setting_name

        if not autosave_dir:
            self.feedback.message(
                "No autosave folder",
                "A sweep keeps each run's model in the autosave folder; choose one in the "
                "settings first.",
            )
            return False
        if unit not in ("steps", "minutes") or not budget > 0:
            self.feedback.message("Check the sweep", "Give each run a budget in steps or minutes.")
            return False
        if same_steps and unit != "minutes":
            self.feedback.message(
                "Check the sweep",
                "Timing the runs turns a budget in minutes into steps; with a budget in steps "
                "every run already trains the same steps.",
            )
            return False
        length = {"steps": int(budget), "epochs": None, "minutes": None}
        if unit == "minutes":
            length.update(steps=None, minutes=float(budget))
        base = dataclasses.replace(train_config, **length)
        configs = []
        try:
            axes = [core_sweep.Axis(k, tuple(v), setting_name(k)) for k, v in grid.items()]
            points = core_sweep.grid_points(axes, model_config, base)
            for point in points:
                mc, tc = point.configs(model_config, base)
                data.check_trainable(corpus, tc.batch_size, tc.seq_len, tc.val_fraction)
                configs.append((mc, tc))
        except CharLSTMError as exc:
            self.feedback.message("Check the sweep", str(exc))
            return False
        label = core_sweep.sweep_label(corpus.name)
        runs = [SweepRun(p) for p in points]
        self.sweep = SweepState(
            label, runs, configs, autosave_dir=autosave_dir, cluster=cluster, jobs=jobs
        )
        self._begin()
        if cluster or jobs > 1:
            self.jobs.start(
                self.sweep, corpus, model_config, base, same_steps,
                runs_db=runs_db, cluster=cluster, jobs=jobs, on_end=self._end,
            )  # fmt: skip
        elif same_steps:
            self._time_points(corpus, model_config, base, float(budget))
        else:
            self._next()
        return True

    def _time_points(
        self, corpus: Any, model_config: ModelConfig, base: TrainConfig, minutes: float
    ) -> None:
        """Time every point off the GUI thread, then start the first with its steps."""
        from charlstm_core.sweep import calibrate

        sweep = self.sweep
        assert sweep is not None
        sweep.timing = True
        self._changed(sweep)
        points = [p.point for p in sweep.points]

        def timed(cals: list[Any]) -> None:
            if sweep is not self.sweep or sweep.done:
                return  # cancelled meanwhile (and ended then)
            sweep.timing = False
            for i, c in enumerate(cals):
                sweep.points[i].point = c.point
                sweep.configs[i] = c.point.configs(model_config, base)
            self._next()

        def failed(exc: Exception, tb: str) -> None:
            if sweep is not self.sweep or sweep.done:
                return
            sweep.timing = False
            for p in sweep.points:
                p.status, p.message = "skipped", "The settings could not be timed."
            self.feedback.failure(exc, tb, "Cannot time the settings")
            self._end()

        self.run_task(
            lambda: calibrate(points, model_config, base, corpus, minutes, stop=sweep.stop_timing),
            timed,
            failed=failed,
        )

    def cancel(self) -> None:
        """Stop the current point, skip the rest; the finished points stay recorded."""
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        sweep.cancelled = True
        sweep.stop_timing.set()
        for p in sweep.points:
            if p.status == "waiting":
                p.status = "skipped"
        self._changed(sweep)
        if self.jobs.stop():
            return  # its points training come back "stopped", then the sweep ends
        if not self._stop_run():  # else ``point_ended`` follows when the run has ended
            self._end()

    def shutdown(self) -> None:
        """Closing: no next point starts, nor does its timing go on."""
        if self.sweep is not None and not self.sweep.done:
            self.sweep.cancelled = True
            self.sweep.stop_timing.set()

    def _next(self) -> None:
        sweep = self.sweep
        assert sweep is not None
        while not sweep.cancelled:
            i = next((j for j, p in enumerate(sweep.points) if p.status == "waiting"), None)
            if i is None:
                break
            sweep.current = i
            point = sweep.points[i]
            point.status = "running"
            self._changed(sweep)
            if self._start_point(*sweep.configs[i], sweep.autosave_dir):
                return
            point.status, point.message = "failed", "It could not start."
        self._end()

    def point_ended(
        self, outcome: tuple[str, str], best_val: float | None, model_path: str | None
    ) -> None:
        """The run of the current point ended: ``outcome`` (status, message), its best
        validation loss and its model file; the next point starts."""
        sweep = self.sweep
        if sweep is None or sweep.done or not 0 <= sweep.current < len(sweep.points):
            return
        point = sweep.points[sweep.current]
        if point.status == "running":
            point.status, point.message = outcome
            point.best_val = best_val
            point.model_path = model_path
        self._changed(sweep)
        self._next()

    def _end(self) -> None:
        sweep = self.sweep
        assert sweep is not None
        from charlstm_core.sweep import rank

        sweep.done = True
        sweep.timing = False
        sweep.current = -1
        ranked = rank([p.result() for p in sweep.points])
        sweep.best = ranked[0].index if ranked and ranked[0].ok else None
        self._ended(sweep)
