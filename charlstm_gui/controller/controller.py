"""The application's controller: the state machine and the training run, holding its services.

The window forwards user intents to the ``Controller`` and renders what its signals say; the
tests drive it without a window (``tests/gui/test_controller_logic.py``,
``tests/gui/test_state_machine.py``). Its state changes only by ``_set_state(event)``, through the
transition table of ``state.py`` (idle -> starting -> training <-> paused -> stopping -> idle;
sweeping while a sweep is on); the window's actions follow the state.

Training runs one ``charlstm_core.training.session.Session`` (the one the command line and sweeps
run) on a generic ``GeneratorWorker``: the session records the run, sets the thread count and
priority and saves the autosave; its events arrive here in batches, at the controller's own slots.
The rest is done by services, each given what it needs and answering through callbacks or the
controller's signals: ``Tasks`` (worker threads), ``Files`` (the current model, texts, saves,
locks), ``Generation``, ``Plan`` (trainability, ETA), ``Runs`` (the run store), ``Sweeps`` (the
app's sweep) and ``SweepJobs`` (a sweep in processes or on a Dask cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from charlstm_core.config import GenerationConfig, ModelConfig, TrainConfig
from charlstm_core.errors import (
    CharLSTMError,
    ConfigError,
    CorpusMismatchError,
    TextTooShortError,
    TrainingDiverged,
)
from charlstm_core.events import (
    CheckpointEvent,
    EvalEvent,
    RecordingProblem,
    RollbackEvent,
    SessionStarted,
    StepEvent,
    ThreadsChosen,
)
from charlstm_core.training.threads import thread_policy
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from ..worker import GeneratorWorker, describe_exception
from .files import Files, autosave_path
from .generate import Generation
from .history import LossHistory
from .plan import Plan
from .runs import Runs
from .state import RUN_STATES, Event, State, StateMachine
from .sweep_jobs import SweepJobs
from .sweeps import SweepRun, Sweeps, SweepState
from .tasks import Feedback, Tasks

__all__ = ["EVAL_SNAPSHOT", "Controller", "Event", "State", "SweepRun", "SweepState"]

# the purpose of the snapshot taken after each evaluation while ``inspect_live`` is on
EVAL_SNAPSHOT = "eval"

# What a failed run is called in the message box, by the error's type (first match wins).
FAILURE_TITLES: tuple[tuple[type[Exception], str], ...] = (
    (TrainingDiverged, "Training diverged"),
    (CorpusMismatchError, "The model does not fit this text"),
    (TextTooShortError, "The text is too short"),
    (ConfigError, "Check the settings"),
)


def failure_title(exc: Exception) -> str:
    return next((t for cls, t in FAILURE_TITLES if isinstance(exc, cls)), "Training stopped")


class Controller(QObject):
    """The app's state and rules without a window: the state machine, the text, the training
    run and the loss history; files, generation, runs and sweeps are services it holds."""

    state_changed = Signal(object)  # State
    busy_changed = Signal(str)  # what is loading or saving, "" when nothing
    corpus_changed = Signal(object)  # charlstm_core.files.text.Corpus
    model_changed = Signal(object, str)  # ModelFile or None, how to describe it
    # Paths travel as ``object``: a Signal(str) drops the lone surrogates of a file name that is
    # not UTF-8, naming another file.
    model_opened = Signal(object, object)  # ModelFile, path: restore its settings in the form
    history_reset = Signal()
    train_events = Signal(object)  # tuple of events, after the history has recorded them
    run_finished = Signal(object)  # charlstm_core.events.TrainSummary of a run that ended normally
    blas_info = Signal(str)
    dirty_changed = Signal(bool)
    saved = Signal(object)  # path
    autosaved = Signal(object)  # path
    message = Signal(str, str)  # title, text: a problem the user can fix
    decode_failed = Signal(object, str)  # path, message: offer another encoding
    internal_error = Signal(str)  # traceback of a bug in a worker
    generation_started = Signal(str)  # what it samples from
    generation_text = Signal(str)
    generation_finished = Signal(bool)  # True when it ran to the requested length
    inspect_snapshot = Signal(object)  # ModelFile copy taken between two steps for the Inspect view
    runs_changed = Signal()  # a run began or ended, or was renamed or deleted
    runs_problem = Signal(str)  # the run store cannot be used: one sentence (training goes on)
    sweep_changed = Signal(object)  # SweepState: a point began or ended
    sweep_finished = Signal(object)  # SweepState, done: best marked (None if none finished)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        blas_threads: int | None = None,
        strict: bool | None = None,
    ) -> None:
        """``strict``: an illegal transition raises (development) instead of being logged and
        ignored (the field); by default as ``state.strict_default`` says."""
        super().__init__(parent)
        self.machine = StateMachine(self.state_changed.emit, strict=strict)
        self.corpus: Any = None
        self.history = LossHistory()
        self.last_step: StepEvent | None = None
        self.best_val: float | None = None
        self.model_config: ModelConfig | None = None
        self.train_config: TrainConfig | None = None
        self.autosave_file: str | None = None
        self.run_checkpoint: str | None = None  # the autosave file of the latest run
        self.blas_threads = blas_threads
        self.busy = ""
        self.inspect_live = False  # a snapshot for the Inspect view after every evaluation
        self._train_worker: GeneratorWorker | None = None  # pulls the session's run()
        self._session: Any = None  # the training session running now
        self._pending_save: str | None = None  # where to save the final model of a stopping run
        self._outcome: tuple[str, str] = ("finished", "")  # the last run's, for its sweep point

        feedback = Feedback(self.message.emit, self.internal_error.emit, self._set_busy)
        self.tasks = Tasks(feedback, self)
        self.files = Files(
            self.tasks.run,
            feedback,
            text_loaded=self._text_loaded,
            undecodable=self.decode_failed.emit,
            model_loaded=self._model_opened,
            saved=self.saved.emit,
            filed=lambda path: self.runs.record_model_file(path, self.run_checkpoint),
            dirty_changed=self.dirty_changed.emit,
            protected=self.protected_inputs,
        )
        self.generation = Generation(
            self.tasks.launch,
            feedback,
            started=self.generation_started.emit,
            text=self.generation_text.emit,
            finished=self.generation_finished.emit,
            beside_training=lambda: self.state in (State.STARTING, State.TRAINING),
            parent=self,
        )
        self.plan = Plan(lambda: self.corpus, feedback)
        self.runs = Runs(
            self.tasks.run, feedback, changed=self.runs_changed.emit, problem=self.runs_problem.emit
        )
        self.sweep_jobs = SweepJobs(
            self.tasks.launch,
            self.tasks.run,
            feedback,
            changed=self.sweep_changed.emit,
            runs_changed=self.runs_changed.emit,
            parent=self,
        )
        self.sweeps = Sweeps(
            self.tasks.run,
            feedback,
            self.sweep_jobs,
            begin=lambda: self._set_state(Event.SWEEP),
            start_point=self._start_point,
            stop_run=self._stop_run,
            changed=self.sweep_changed.emit,
            ended=self._sweep_ended,
        )

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> State:
        return self.machine.state

    def _set_state(self, event: Event) -> bool:
        """The one way the state changes: by ``event``, as ``state.TRANSITIONS`` allows
        (``state_changed`` follows a real change). An illegal one raises ``IllegalTransition``
        in development; in the field it is logged and ignored (False)."""
        return self.machine.fire(event)

    @property
    def training(self) -> bool:
        """A run of the app's trainer exists (starting, training, paused or stopping)."""
        return self.state in RUN_STATES

    @property
    def generating(self) -> bool:
        return self.generation.generating

    @property
    def sweeping(self) -> bool:
        return self.sweeps.in_progress

    @property
    def sweep(self) -> SweepState | None:
        """The sweep in progress, or the last one (None before the first)."""
        return self.sweeps.sweep

    def _refused(self, doing: str) -> bool:
        """Say why nothing may be ``doing`` now and return True, unless the app is idle."""
        if self.state is State.IDLE:
            return False
        if self.state is State.SWEEPING:
            self.message.emit(
                "A sweep is running",
                f"Cancel it (Training ▸ Cancel Sweep) before {doing}; the runs that finished "
                "are kept.",
            )
        else:
            self.message.emit("Training is running", f"Stop training before {doing}.")
        return True

    def _set_busy(self, what: str) -> None:
        self.busy = what
        self.busy_changed.emit(what)

    # ---------------------------------------------------------------- the current model
    @property
    def model(self) -> Any:
        """The newest ModelFile: opened, or the last snapshot of training (``Files``)."""
        return self.files.model

    @property
    def model_path(self) -> str | None:
        """Where the user saved or opened the current model."""
        return self.files.model_path

    @property
    def model_source(self) -> str:
        return self.files.model_source

    @property
    def dirty(self) -> bool:
        """The current model has training that is in no file."""
        return self.files.dirty

    # ---------------------------------------------------------------- texts and model files
    def open_text(self, path: str, encoding: str | None = None) -> None:
        if not self._refused("opening another text"):
            self.files.open_text(path, encoding)

    def use_builtin_text(self) -> None:
        if not self._refused("changing the text"):
            self.files.use_builtin_text()

    def open_model(self, path: str) -> None:
        if not self._refused("opening a model"):
            self.files.open_model(path)

    def _text_loaded(self, corpus: Any) -> None:
        self.corpus = corpus
        self.corpus_changed.emit(corpus)

    def _model_opened(self, mf: Any, path: str) -> None:
        """``Files`` made ``mf`` (opened from ``path``) the current model: its curve and
        settings replace the previous model's."""
        self.last_step = None
        self.runs.history_run_id = None
        self.best_val = mf.train.best_val_loss if mf.train is not None else None
        self.history.clear()
        self.history_reset.emit()
        if mf.train is not None:
            cfg = self.train_config = mf.train.config
            self.history.load(mf.train.history, cfg.batch_size * cfg.seq_len, mf.train.rollbacks)
        self.model_config = mf.config
        self.model_opened.emit(mf, path)
        self.model_changed.emit(mf, self.model_source)

    def _forget_model(self) -> None:
        """A new model: no file, no curve, until it makes them."""
        self.files.forget()
        self.runs.history_run_id = None
        self.history.clear()
        self.best_val = None
        self.history_reset.emit()
        self.model_changed.emit(None, "")

    def save_model(self, path: str) -> None:
        """Save the current model (a snapshot between two steps while training) atomically,
        off the GUI thread; a refused target is said at once (``Files.check_target``)."""
        if not self.files.check_target(path):
            return
        worker = self._train_worker
        if worker is not None and self.state is not State.STOPPING:
            files, owner = self.files, self.files.model_id
            worker.request_snapshot(lambda mf: files.save(mf, path, owner))
            files.saving(path)
        elif worker is not None:  # stopping: save the final model once it arrives
            self._pending_save = path
            self.files.saving(path)
        else:
            self.files.save_current(path)

    def save_now(self, path: str, *, user_file: bool = True) -> str:
        """Save synchronously (used on close, after the workers are stopped); ``user_file``
        False: an autosave the session's end writes, not a file the run is named after."""
        return self.files.save_now(path, user_file=user_file)

    def release_locks(self) -> None:
        """Give up the run's file locks (the run has ended; see ``shutdown(keep_locks=)``)."""
        self.files.release_locks()

    def protected_inputs(self) -> dict[str, str | None]:
        """The files no save or export of the app may replace: the training text."""
        return {"the training text": getattr(self.corpus, "path", None)}

    def unsaved_autosave_path(self, autosave_dir: str) -> str:
        """Where unsaved work goes when there is no time to ask (the session ends): the run's
        own autosave file, else a new one in ``autosave_dir``; never the user's model file."""
        if self.run_checkpoint and self.model_path != self.run_checkpoint:
            return self.run_checkpoint
        name = self.corpus.name if self.corpus is not None else "model"
        return autosave_path(autosave_dir, name)

    # ---------------------------------------------------------------- services, as the views ask
    def run_task(
        self,
        fn: Callable[[], Any],
        done: Callable[[Any], None],
        *,
        failed: Callable[[Exception, str], None] | None = None,
    ) -> None:
        """Run ``fn`` off the GUI thread, then ``done(result)`` on it (``Tasks.run``)."""
        self.tasks.run(fn, done, failed=failed)

    def eta_seconds(self, ev: StepEvent) -> float | None:
        return self.plan.eta_seconds(ev)

    def trainable_problem(self, train_config: TrainConfig) -> str:
        return self.plan.trainable_problem(train_config)

    def rename_run(self, run_id: int, name: str) -> bool:
        return self.runs.rename_run(run_id, name)

    def delete_run(self, run_id: int, *, with_model: bool = False) -> bool:
        return self.runs.delete_run(run_id, with_model=with_model)

    def check_cluster(self, address: str, done: Callable[[Any], None]) -> None:
        self.sweep_jobs.check_cluster(address, done)

    def thread_policy(self) -> Any:
        """The BLAS threads and priority of the next run (charlstm_core.training.threads): this
        app session's measured count, else the count measured first, TRAINING_NICE nicer."""
        return thread_policy("app", measured=self.blas_threads)

    def training_threads(self) -> int:
        """BLAS threads a run starts on (the settings check times steps on it too)."""
        return self.thread_policy().starts_on or 1

    # ---------------------------------------------------------------- generation
    def generate(self, request: GenerationConfig) -> bool:
        """Sample from the current model, or from a copy of the one being trained (training goes
        on; while it stops, from its final model). False when it cannot start now."""
        if self.generating:
            return False
        worker = self._train_worker
        if worker is not None and self.state is not State.STOPPING:
            self.generation.wait(request)  # sample from a copy taken between two steps
            worker.request_snapshot(self.generation.from_copy)
            return True
        if worker is not None:  # stopping: use the final model once it arrives
            self.generation.wait(request)
            return True
        if self.model is None:
            self.message.emit("No model yet", "Train a model or open a model file first.")
            return False
        self.generation.start(self.model, request, self.model_source or "the current model")
        return True

    def cancel_generation(self) -> None:
        self.generation.cancel()

    # ---------------------------------------------------------------- training
    def start_training(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        *,
        resume: bool = False,
        autosave_dir: str | None = None,
        device: str = "cpu",
    ) -> bool:
        """Start a new model, or continue the current checkpoint (``resume=True``), on
        ``device`` ("cpu" or "gpu:N", see charlstm_core.engine.devices). False (said why, unless
        a run or sweep is on already) when it cannot start."""
        if not self.machine.allows(Event.START):
            return False
        return self._start_run(
            Event.START, model_config, train_config, resume, autosave_dir, device
        )

    def _start_point(
        self, model_config: ModelConfig, train_config: TrainConfig, folder: str
    ) -> bool:
        """The run of a sweep's point (``Sweeps``)."""
        return self._start_run(Event.START_POINT, model_config, train_config, False, folder, "cpu")

    def _start_run(
        self,
        event: Event,
        model_config: ModelConfig,
        train_config: TrainConfig,
        resume: bool,
        autosave_dir: str | None,
        device: str,
    ) -> bool:
        if self.corpus is None:
            self.message.emit("No text", "Open a text file (or use the built-in text) first.")
            return False
        resume_from = self.model if resume else None
        if resume:
            planned = self.plan.resume(resume_from, train_config)  # says why not
            if planned is None:
                return False
            model_config, train_config = planned
        try:
            model_config.validate()
            train_config.validate()
        except CharLSTMError as exc:
            self.message.emit("Check the settings", str(exc))
            return False
        ckpt = self.files.checkpoint_path(autosave_dir, self.corpus.name) if autosave_dir else None
        if ckpt == "":
            return False
        in_use = self.files.lock_run(self.model_path if resume_from is not None else None, ckpt)
        if in_use is None:
            return False
        self.autosave_file = None
        self.run_checkpoint = ckpt
        from charlstm_core.training.session import Session

        # The trainer is built on the worker thread (splitting a big text takes time); it
        # re-encodes the text with a resumed model's vocabulary and raises CorpusMismatchError
        # when the text has characters the model cannot represent.
        session = Session(
            self._session_request(
                model_config, train_config, resume_from, ckpt, autosave_dir, device
            )
        )
        self.model_config, self.train_config = model_config, train_config
        if resume_from is None:
            self._forget_model()
        else:
            self.best_val = resume_from.train.best_val_loss
        if in_use:
            self.files.model_path = None  # another run writes that file: this one must not
            self.message.emit(
                "The model file is in use",
                f"{in_use} This run goes on here all the same; Save asks for another file.",
            )
        self.last_step = None
        self.runs.current_run_id = None
        self._outcome = ("finished", "")
        worker = GeneratorWorker(
            session.run, on_stop=session.request_stop, snapshot=session.snapshot
        )
        worker.yielded.connect(self._on_train_events)
        worker.paused.connect(self._on_paused)
        worker.resumed.connect(self._on_resumed)
        worker.snapshot_ready.connect(self._on_snapshot)
        worker.returned.connect(self._on_session_ended)
        worker.errored.connect(self._on_session_failed)
        worker.snapshot_after = self._eval_snapshot  # the Inspect view's time-lapse
        self._train_worker, self._session = worker, session
        self._set_state(event)
        self.tasks.launch(worker)
        return True

    def pause(self) -> None:
        """Ask the run to park after its step (``paused`` follows from the worker)."""
        if self._train_worker is not None and self.state is State.TRAINING:
            self._train_worker.request_pause()

    def resume(self) -> None:
        if self._train_worker is not None and self.state is State.PAUSED:
            self._train_worker.request_resume()

    def stop(self) -> None:
        if self._train_worker is not None and self.machine.allows(Event.STOP):
            self._train_worker.request_stop()
            self._set_state(Event.STOP)

    def _stop_run(self) -> bool:
        """Stop the run training now, if any (a cancelled sweep): True when there is one."""
        if self._train_worker is None:
            return False
        self.stop()
        return True

    def _session_request(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        resume_from: Any,
        ckpt: str | None,
        autosave_dir: str | None,
        device: str,
    ) -> Any:
        """The session of a run of the app: its autosave file (locked here, on the GUI thread,
        so that a file in use is said at once), recorded as a sweep's point or the app's run."""
        from charlstm_core.training.session import SessionRequest

        sweep_label, name = self.sweeps.naming() or (None, None)
        return SessionRequest(
            text=self.corpus,
            model_config=model_config,
            train_config=train_config,
            resume=resume_from,
            out=ckpt,
            device=device,
            record=self.runs.record_runs,
            runs_db=self.runs.runs_db,
            run_name=name,
            source="sweep" if sweep_label is not None else "app",
            sweep=sweep_label,
            threads=self.thread_policy(),
            lock_out=False,  # held by the controller (``Files.lock_run``)
            fallback_dir=autosave_dir,
            keep_model=True,
        )

    def _eval_snapshot(self, event: Any) -> Any:
        """(Worker thread) A copy of the model after each evaluation while the Inspect view
        wants its time-lapse: the weights of every evaluation, not only the newest."""
        return EVAL_SNAPSHOT if self.inspect_live and isinstance(event, EvalEvent) else None

    @Slot(object)
    def _on_train_events(self, batch: tuple) -> None:
        cfg = self.train_config
        chars_per_step = cfg.batch_size * cfg.seq_len if cfg is not None else 0
        shown = []
        for ev in batch:
            if isinstance(ev, SessionStarted):
                self._set_state(Event.STARTED)
                if ev.run_id is not None:
                    self.sweeps.run_recorded(ev.run_id)
                    self.runs.began(ev.run_id)
                continue
            if isinstance(ev, ThreadsChosen):
                self.blas_threads = ev.threads  # kept for the next run of this app session
                self.blas_info.emit(ev.explanation)
                continue
            if isinstance(ev, RecordingProblem):
                self.runs.report_problem(ev.message)
                continue
            shown.append(ev)
            if isinstance(ev, StepEvent):
                self.history.add_train(ev.step, ev.chars_seen, ev.loss, ev.elapsed_s)
                self.last_step = ev
            elif isinstance(ev, EvalEvent):
                self.history.add_val(ev.step, ev.step * chars_per_step, ev.val_loss, ev.elapsed_s)
                self.best_val = ev.best_val_loss
            elif isinstance(ev, CheckpointEvent):
                self.autosave_file = ev.path
                self.autosaved.emit(ev.path)
            elif isinstance(ev, RollbackEvent):  # self-healing: the curve after it was undone
                self.history.add_rollback(ev, chars_per_step)
                self.best_val = self.history.best_val()
        if self.last_step is not None:
            self.files.trained_to(self.last_step.step)
        if shown:
            self.train_events.emit(tuple(shown))

    @Slot()
    def _on_paused(self) -> None:
        self._set_state(Event.PAUSED)

    @Slot()
    def _on_resumed(self) -> None:
        self._set_state(Event.RESUMED)

    @Slot(object, object)
    def _on_snapshot(self, mf: Any, purpose: Any) -> None:
        """A copy of the model taken between two steps: ``purpose`` is what asked for it, a
        function of the copy (``request_snapshot``), or the worker's ``EVAL_SNAPSHOT``."""
        self.files.model = mf
        if purpose == EVAL_SNAPSHOT:
            self.inspect_snapshot.emit(mf)
        else:
            purpose(mf)

    def set_inspect_live(self, on: bool) -> None:
        """Whether training sends ``inspect_snapshot`` after each evaluation (it does not wait)."""
        self.inspect_live = on

    def request_inspect_snapshot(self) -> bool:
        """Ask the training worker for a copy of the weights between two steps (training goes on);
        ``inspect_snapshot`` answers. False when no training runs."""
        if self._train_worker is None or self.state is State.STOPPING:
            return False
        self._train_worker.request_snapshot(self.inspect_snapshot.emit)
        return True

    def _finish_training(self, final: Any) -> None:
        self._train_worker = self._session = None
        self.files.release_locks()
        ended_run = self.runs.ended()
        if final is not None:
            self.files.model = final
            self.files.model_source = "the model just trained"
            self.model_changed.emit(final, self.model_source)
        pending, self._pending_save = self._pending_save, None
        if pending is not None:
            if self.model is not None:
                self.files.save(self.model, pending)
            else:
                self._set_busy("")
        self.generation.from_final(self.model, self.model_source)
        in_sweep = self.sweeps.in_progress
        self._set_state(Event.POINT_ENDED if in_sweep else Event.ENDED)
        if ended_run is not None and self.model_path and not self.dirty:
            # the user's file holds the final model: the recorder's end named the autosave
            self.runs.record_model_file(self.model_path, self.run_checkpoint)
        if ended_run is not None:
            self.runs_changed.emit()
        if in_sweep:  # the next point starts once this run's thread has gone
            QTimer.singleShot(0, self, self._point_ended)

    def _point_ended(self) -> None:
        self.sweeps.point_ended(self._outcome, self.best_val, self.autosave_file)

    @Slot(object)
    def _on_session_ended(self, summary: Any) -> None:
        """The session returned its summary (charlstm_core.training.session.SessionSummary)."""
        if summary.fell_back and not self.tasks.closed:
            self.message.emit(
                "The autosave went elsewhere",
                f"{summary.save_problem} The model is saved to {summary.model_path} instead.",
            )
        if summary.error is not None:
            exc = summary.error
            self._on_train_failed(exc, describe_exception(exc), summary.model)
        else:
            self._on_train_finished(summary.train, summary.model, summary.model_path)

    @Slot(object, str)
    def _on_session_failed(self, exc: Exception, tb: str) -> None:
        """The session raised: before training (the text, the settings, the device), or a bug
        during it; then the model as it is now is kept (the trainer no longer runs)."""
        session = self._session
        try:
            last = session.snapshot() if session is not None else None
        except Exception:  # noqa: BLE001 - the failure itself is what is reported
            last = None
        self._on_train_failed(exc, tb, last)

    def _on_train_finished(self, summary: Any, final: Any, saved: str | None) -> None:
        if saved:
            self.autosave_file = saved
            self.autosaved.emit(saved)
        if summary is not None and getattr(summary, "best_val_loss", None) is not None:
            self.best_val = summary.best_val_loss
        stopped = summary is None or getattr(summary, "reason", "") == "stopped"
        self._outcome = ("stopped" if stopped else "finished", "")
        self._finish_training(final)
        if summary is not None and not self.tasks.closed:
            self.run_finished.emit(summary)

    def _on_train_failed(self, exc: Exception, tb: str, last_good: Any) -> None:
        diverged = isinstance(exc, TrainingDiverged)
        self._outcome = ("diverged" if diverged else "failed", str(exc))
        in_sweep = self.sweeps.in_progress
        self._finish_training(last_good)
        if in_sweep and isinstance(exc, CharLSTMError | MemoryError):
            return  # a failed point is shown in the sweep's results, not in a box per point
        if isinstance(exc, CharLSTMError):
            self.message.emit(failure_title(exc), str(exc))
        elif isinstance(exc, MemoryError):
            self.message.emit(
                "Out of memory",
                "The model and batch do not fit in memory. "
                "Use a smaller hidden size, batch size or sequence length.",
            )
        else:
            self.internal_error.emit(tb)

    # ---------------------------------------------------------------- sweeps
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
        """Train one run per point of ``grid`` (setting -> values), each ``budget`` steps or
        minutes long: one after another here, or ``jobs`` at once in processes, or on the Dask
        cluster at ``cluster`` (see ``Sweeps.start``). False (said why) when it cannot start."""
        if self._refused("starting a sweep"):
            return False
        if self.corpus is None:
            self.message.emit("No text", "Open a text file (or use the built-in text) first.")
            return False
        return self.sweeps.start(
            self.corpus, model_config, train_config, grid, unit=unit, budget=budget,
            autosave_dir=autosave_dir, same_steps=same_steps, cluster=cluster, jobs=jobs,
            runs_db=self.runs.db_path(),
        )  # fmt: skip

    def cancel_sweep(self) -> None:
        """Stop the current point, skip the rest; the finished points stay recorded."""
        self.sweeps.cancel()

    def _sweep_ended(self, sweep: SweepState) -> None:
        self._set_state(Event.SWEEP_ENDED)
        if self.autosave_file and not self.training:
            self.files.set_dirty(
                False
            )  # the last point's model is in its checkpoint, like the rest
        self.sweep_finished.emit(sweep)

    # ---------------------------------------------------------------- shutdown
    def shutdown(self, timeout_ms: int = 30_000, *, keep_locks: bool = False) -> bool:
        """Stop every worker and wait for its thread (closing the window). True when all ended.

        Afterwards nothing new starts: a QThread destroyed while running aborts the process.
        ``keep_locks`` keeps the run's file locks for a last save (then ``release_locks()``).
        """
        self.tasks.close()
        self.generation.shutdown()
        self.sweeps.shutdown()  # no next point starts, nor does its timing go on
        self.sweep_jobs.stop(now=True)  # the points that ended are kept; the rest cancelled
        worker = self._train_worker
        if worker is not None:
            worker.request_stop()
        ok = self.tasks.wait(timeout_ms)
        final = getattr(worker.result, "model", None) if worker is not None else None
        if final is not None:  # its ``returned`` signal will not be delivered any more
            self.files.model = final
        if not keep_locks:
            self.files.release_locks()
        self.runs.close()
        return ok
