"""The application's state machine: idle -> starting -> training <-> paused -> stopping -> idle.

The controller owns the text, the current model, the loss history and every worker thread. The
window forwards user intents to it and renders what its signals say; the tests drive it without
a window (``tests/gui/test_controller_logic.py``). Worker signals are connected only to
``@Slot`` methods of this object (GUI thread).

Training runs one ``charlstm_core.training.session.Session`` (the one the command line and sweeps
run) on a generic ``GeneratorWorker``: the session records the run, sets the thread count and
priority and saves the autosave; its events arrive here in batches.

It is one object made of five parts: this module (the states and training),
``controller_tasks.py`` (worker threads, background tasks with callbacks),
``controller_files.py`` (texts, model files, saving and locks), ``controller_generate.py``
(sampling), ``controller_plan.py`` (trainability, ETA) and ``controller_runs.py`` (the run store
and sweeps), ``sweep_jobs.py`` (sweeps in processes or on a Dask cluster). Slots that receive a
worker's signals stay in this class.
"""

from __future__ import annotations

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
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from ..worker import GeneratorWorker, TaskWorker, describe_exception
from .files import FilesMixin
from .generate import GenerateMixin
from .history import LossHistory
from .plan import PlanMixin
from .runs import RunsMixin, SweepRun, SweepState
from .state import State
from .sweep_jobs import SweepJobsMixin
from .tasks import TasksMixin

__all__ = ["EVAL_SNAPSHOT", "Controller", "State", "SweepRun", "SweepState"]

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


class Controller(
    TasksMixin, FilesMixin, GenerateMixin, PlanMixin, RunsMixin, SweepJobsMixin, QObject
):
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

    def __init__(self, parent: QObject | None = None, *, blas_threads: int | None = None) -> None:
        super().__init__(parent)
        self.state = State.IDLE
        self.corpus: Any = None
        self.model: Any = None  # the newest ModelFile: opened, or the last snapshot of training
        self.model_path: str | None = None  # where the user saved or opened it
        self.model_source = ""
        self.history = LossHistory()
        self.dirty = False
        self.last_step: StepEvent | None = None
        self.best_val: float | None = None
        self.model_config: ModelConfig | None = None
        self.train_config: TrainConfig | None = None
        self.autosave_file: str | None = None
        self.run_checkpoint: str | None = None  # the autosave file of the latest run
        self.blas_threads = blas_threads
        self.busy = ""
        self._saved_step = 0
        # Which model is current: a new run or an opened file makes a new one. A save answers
        # for the model it was started for; only that model gets the saved file as its own.
        self._model_id = 0
        self._pending_save: str | None = None
        # ModelLocks held for the running run: its model file (where the user saved or opened
        # it) and its autosave file, so that no other run, here or in the CLI, writes them.
        self._file_lock: Any = None
        self._ckpt_lock: Any = None
        self._threads: dict[QThread, QObject] = {}
        self._train_worker: GeneratorWorker | None = None  # pulls the session's run()
        self._session: Any = None  # the training session running now
        self._stream_worker: Any = None  # a GeneratorWorker pulling characters() while generating
        self._pending_generate: GenerationConfig | None = None
        self._loading_path = ""
        self._shut_down = False
        self._ending: list[QThread] = []
        self.inspect_live = False  # a snapshot for the Inspect view after every evaluation
        self._init_runs()
        self._init_jobs()

    # ---------------------------------------------------------------- state helpers
    @property
    def training(self) -> bool:
        return self.state is not State.IDLE

    @property
    def generating(self) -> bool:
        return self._stream_worker is not None or self._pending_generate is not None

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self.state_changed.emit(state)

    def _set_busy(self, what: str) -> None:
        self.busy = what
        self.busy_changed.emit(what)

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self.dirty_changed.emit(dirty)

    # ---------------------------------------------------------------- worker threads
    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.sender()
        if isinstance(thread, QThread):
            self._ending.append(thread)
        self._reap()

    @Slot()
    def _reap(self) -> None:
        """Drop threads that have really ended (``finished`` comes just before the end), and with
        them their workers: both are then deleted from this thread, when no event can reach them
        (no ``deleteLater`` inside the dying thread, which crashed PySide6 now and then).

        Never a blocking wait here: the GUI thread polls until ``isFinished()`` instead.
        """
        still = []
        for thread in self._ending:
            if thread.isFinished():
                self._threads.pop(thread, None)
            else:
                still.append(thread)
        self._ending = still
        if still:
            QTimer.singleShot(5, self._reap)

    @Slot(object)
    def _on_task_done(self, result: Any) -> None:
        worker = self.sender()
        if isinstance(worker, TaskWorker):
            worker.on_done(result)

    @Slot(object, str)
    def _on_task_failed(self, exc: Exception, tb: str) -> None:
        worker = self.sender()
        if isinstance(worker, TaskWorker):
            worker.on_failed(exc, tb)

    @Slot(object)
    def _on_stream_text(self, chars: tuple) -> None:
        self.generation_text.emit("".join(chars))

    @Slot(object, str)
    def _on_stream_failed(self, exc: Exception, tb: str) -> None:
        if isinstance(exc, CharLSTMError):
            self.message.emit("Cannot generate", str(exc))
        else:
            self.internal_error.emit(tb)

    @Slot()
    def _on_stream_finished(self) -> None:
        worker, self._stream_worker = self._stream_worker, None
        completed = worker is not None and worker.completed  # it ran to its end
        self.generation_finished.emit(completed)

    def thread_policy(self) -> Any:
        """The BLAS threads and priority of the next run (charlstm_core.training.threads): this
        app session's measured count, else the count measured first, TRAINING_NICE nicer."""
        return thread_policy("app", measured=self.blas_threads)

    def training_threads(self) -> int:
        """BLAS threads a run starts on (the settings check times steps on it too)."""
        return self.thread_policy().starts_on or 1

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
        ``device`` ("cpu" or "gpu:N", see charlstm_core.engine.devices)."""
        if self.training:
            return False
        if self.corpus is None:
            self.message.emit("No text", "Open a text file (or use the built-in text) first.")
            return False
        resume_from = self.model if resume else None
        if resume and (resume_from is None or resume_from.train is None):
            self.message.emit(
                "Nothing to continue", "Open a checkpoint or train a model before continuing it."
            )
            return False
        if resume_from is not None:
            from charlstm_core.training.policy import (
                plan_resume,  # the CLI's --resume follows the same rule
            )

            model_config = resume_from.config
            st = resume_from.train
            try:
                plan = plan_resume(st.step, st.total_steps, train_config, self.corpus.n_chars)
            except CharLSTMError as exc:
                self.message.emit("Check the settings", str(exc))
                return False
            if plan.nothing_left:  # “Train for” steps or epochs is the model's total
                planned = f"{plan.target:,} steps"
                if train_config.epochs is not None:
                    planned = f"{train_config.epochs:g} epochs ({planned})"
                self.message.emit(
                    "Nothing left to train",
                    f"This model has already trained {st.step:,} steps and the run is set to "
                    f"{planned} in total. Raise “Train for” above {st.step:,} "
                    "steps (or train for some minutes) to continue it.",
                )
                return False
            train_config = plan.config
        try:
            model_config.validate()
            train_config.validate()
        except CharLSTMError as exc:
            self.message.emit("Check the settings", str(exc))
            return False
        ckpt = self._checkpoint_path(autosave_dir) if autosave_dir else None
        if ckpt == "":
            return False
        in_use = self._lock_run_files(self.model_path if resume_from is not None else None, ckpt)
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
            self.model_path = None  # another run writes that file: this one must not
            self.message.emit(
                "The model file is in use",
                f"{in_use} This run goes on here all the same; Save asks for another file.",
            )
        self.last_step = None
        self.current_run_id = None
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
        self._set_state(State.STARTING)
        self._launch(worker)
        return True

    def pause(self) -> None:
        if self._train_worker is not None and self.state is State.TRAINING:
            self._train_worker.request_pause()

    def resume(self) -> None:
        if self._train_worker is not None and self.state is State.PAUSED:
            self._train_worker.request_resume()

    def stop(self) -> None:
        if self._train_worker is not None and self.state is not State.STOPPING:
            self._train_worker.request_stop()
            self._set_state(State.STOPPING)

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

        sweep = self.sweep if self.sweep is not None and not self.sweep.done else None
        name = None
        if sweep is not None and 0 <= sweep.current < len(sweep.points):
            name = sweep.points[sweep.current].label  # as the command line names them
        return SessionRequest(
            text=self.corpus,
            model_config=model_config,
            train_config=train_config,
            resume=resume_from,
            out=ckpt,
            device=device,
            record=self.record_runs,
            runs_db=self.runs_db,
            run_name=name,
            source="sweep" if sweep is not None else "app",
            sweep=sweep.label if sweep is not None else None,
            threads=self.thread_policy(),
            lock_out=False,  # held by the controller (``_lock_run_files``)
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
                if self.state is State.STARTING:
                    self._set_state(State.TRAINING)
                if ev.run_id is not None:
                    self._record_run_id(ev.run_id)
                continue
            if isinstance(ev, ThreadsChosen):
                self.blas_threads = ev.threads  # kept for the next run of this app session
                self.blas_info.emit(ev.explanation)
                continue
            if isinstance(ev, RecordingProblem):
                self._report_runs_problem(ev.message)
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
        if self.last_step is not None and self.last_step.step > self._saved_step:
            self._set_dirty(True)
        if shown:
            self.train_events.emit(tuple(shown))

    @Slot()
    def _on_paused(self) -> None:
        if self.state is State.TRAINING:
            self._set_state(State.PAUSED)

    @Slot()
    def _on_resumed(self) -> None:
        if self.state is State.PAUSED:
            self._set_state(State.TRAINING)

    @Slot(object, object)
    def _on_snapshot(self, mf: Any, purpose: Any) -> None:
        """A copy of the model taken between two steps: ``purpose`` is what asked for it, a
        function of the copy (``request_snapshot``), or the worker's ``EVAL_SNAPSHOT``."""
        self.model = mf
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
        self.release_locks()
        ended_run, self.current_run_id = self.current_run_id, None
        if final is not None:
            self.model = final
            self.model_source = "the model just trained"
            self.model_changed.emit(final, self.model_source)
        pending, self._pending_save = self._pending_save, None
        if pending is not None:
            if self.model is not None:
                self._save_async(self.model, pending)
            else:
                self._set_busy("")
        if self._pending_generate is not None and self._stream_worker is None:
            request, self._pending_generate = self._pending_generate, None
            if self.model is not None:
                self._start_stream(self.model, request, self.model_source)
            else:
                self.generation_finished.emit(False)
        self._set_state(State.IDLE)
        if ended_run is not None and self.model_path and not self.dirty:
            # the user's file holds the final model: the recorder's end named the autosave
            self._record_model_file(self.model_path)
        if ended_run is not None:
            self.runs_changed.emit()
        if self.sweep is not None and not self.sweep.done:
            QTimer.singleShot(0, self._sweep_point_ended)

    @Slot(object)
    def _on_session_ended(self, summary: Any) -> None:
        """The session returned its summary (charlstm_core.training.session.SessionSummary)."""
        if summary.fell_back and not self._shut_down:
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
        if summary is not None and not self._shut_down:
            self.run_finished.emit(summary)

    def _on_train_failed(self, exc: Exception, tb: str, last_good: Any) -> None:
        diverged = isinstance(exc, TrainingDiverged)
        self._outcome = ("diverged" if diverged else "failed", str(exc))
        in_sweep = self.sweep is not None and not self.sweep.done
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

    # ---------------------------------------------------------------- a sweep of jobs
    @Slot(object)
    def _on_jobs_events(self, batch: tuple) -> None:
        self._jobs_events(batch)

    @Slot(object, str)
    def _on_jobs_failed(self, exc: Exception, tb: str) -> None:
        self._jobs_failed(exc, tb)

    @Slot()
    def _on_jobs_finished(self) -> None:
        self._jobs_finished()

    # ---------------------------------------------------------------- shutdown
    def shutdown(self, timeout_ms: int = 30_000, *, keep_locks: bool = False) -> bool:
        """Stop every worker and wait for its thread (closing the window). True when all ended.

        Afterwards nothing new starts: a QThread destroyed while running aborts the process.
        ``keep_locks`` keeps the run's file locks for a last save (then ``release_locks()``).
        """
        self._shut_down = True
        self._pending_generate = None
        if self.sweep is not None and not self.sweep.done:
            self.sweep.cancelled = True  # no next point starts
            self.sweep.stop_timing.set()  # nor does its timing go on
        self._stop_jobs_sweep(now=True)  # the points that ended are kept; the rest cancelled
        if self._stream_worker is not None:
            self._stream_worker.cancel()
        worker = self._train_worker
        if worker is not None:
            worker.request_stop()
        ok = True
        for thread in list(self._threads):
            ok = thread.wait(timeout_ms) and ok
        final = getattr(worker.result, "model", None) if worker is not None else None
        if final is not None:  # its ``returned`` signal will not be delivered any more
            self.model = final
        if not keep_locks:
            self.release_locks()
        self._close_store()
        return ok
