"""The application's state machine: idle -> starting -> training <-> paused -> stopping -> idle.

The controller owns the text, the current model, the loss history and every worker thread. The
window forwards user intents to it and renders what its signals say; the tests drive it without a
window. Worker signals are connected only to ``@Slot`` methods of this object (GUI thread).

Every training run is recorded in the run store (``core.runs``) by the training worker, on its
thread; the controller lists, renames and deletes runs and owns the state of a sweep (one run per
point of a grid of settings, one after another).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from core.config import ModelConfig, TrainConfig
from core.data import display_path
from core.errors import CharLSTMError, DecodeError, ModelFileError, TrainingDiverged
from core.events import CheckpointEvent, EvalEvent, RollbackEvent, StepEvent

from .generate_request import GenerateRequest
from .history import LossHistory
from .worker import StreamWorker, TaskWorker, TrainWorker


class State(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    TRAINING = "training"
    PAUSED = "paused"
    STOPPING = "stopping"


@dataclass
class SweepRun:
    """One point of a sweep in the app (``core.sweep.SweepPoint``) and what became of it."""

    point: Any  # core.sweep.SweepPoint: its index, changes (field -> value) and label
    status: str = "waiting"  # waiting, running, finished, stopped, diverged, failed, skipped
    run_id: int | None = None
    best_val: float | None = None
    model_path: str | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return self.point.label

    def result(self) -> Any:
        """As a ``core.sweep.PointResult``, to be ranked by the same rule as the command line."""
        from core.sweep import PointResult

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


def _engine() -> Any:
    """The engine modules, imported on first use so the window opens fast."""
    from core import data, modelfile, sample, trainer

    return data, modelfile, sample, trainer


def max_train_threads() -> int:
    """The most BLAS threads a training run of the app uses: the cores, at most 2."""
    return max(1, min(2, os.cpu_count() or 1))


def autosave_path(folder: str | os.PathLike[str], corpus_name: str) -> str:
    stem = Path(corpus_name).stem or "model"
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)[:40]
    return str(Path(folder) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.npz")


def continue_problem(model: Any, corpus: Any) -> str:
    """Why ``model`` cannot be continued on ``corpus`` ("" when it can): no checkpoint, no text,
    or characters of the text that the model's vocabulary lacks (the trainer would refuse)."""
    if model is None or model.train is None:
        return "Open a checkpoint or train a model to continue it."
    if corpus is None:
        return "Open a text to continue training on."
    missing = model.vocab.missing("".join(corpus.vocab.chars))
    if not missing:
        return ""
    shown = " ".join(repr(ch) for ch in missing[:8]) + (" …" if len(missing) > 8 else "")
    trained_on = (model.train.corpus or {}).get("name") or "the text it was trained on"
    return (
        f"Cannot continue: the model cannot represent {len(missing):,} character(s) of "
        f"{corpus.name} ({shown}). Open {trained_on} (File ▸ Open the Model's Text) or "
        "train a new model on this text."
    )


def model_text_candidates(
    model: Any, model_path: str | None, recent_texts: Sequence[str] = ()
) -> list[str]:
    """Existing files that may be the text ``model`` was trained on, likeliest first: the path
    its checkpoint records, a file of that name beside the model file, recent texts of that
    name; each must have the recorded size (opening it checks the content's SHA-256)."""
    if model is None or model.train is None:
        return []
    fp = model.train.corpus or {}
    name, size = fp.get("name"), fp.get("size")
    guesses: list[str] = []
    if isinstance(fp.get("path"), str):
        guesses.append(fp["path"])
    if isinstance(name, str) and name:
        if model_path:
            guesses.append(os.path.join(os.path.dirname(model_path), name))
        guesses += [p for p in recent_texts if os.path.basename(p) == name]
    found: list[str] = []
    for path in guesses:
        try:
            ok = os.path.isfile(path) and (size is None or os.path.getsize(path) == size)
        except (OSError, ValueError):
            ok = False
        if ok and os.path.abspath(path) not in map(os.path.abspath, found):
            found.append(path)
    return found


class Controller(QObject):
    state_changed = Signal(str)
    busy_changed = Signal(str)  # what is loading or saving, "" when nothing
    corpus_changed = Signal(object)  # core.data.Corpus
    model_changed = Signal(object, str)  # ModelFile or None, how to describe it
    # Paths travel as ``object``: a Signal(str) drops the lone surrogates of a file name that is
    # not UTF-8, naming another file.
    model_opened = Signal(object, object)  # ModelFile, path: restore its settings in the form
    history_reset = Signal()
    train_events = Signal(object)  # tuple of events, after the history has recorded them
    run_finished = Signal(object)  # core.events.TrainSummary of a run that ended normally
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
    task_done = Signal(object, object)  # tag (str, may hold a path), result of run_task()
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
        self._train_worker: TrainWorker | None = None
        self._stream_worker: StreamWorker | None = None
        self._pending_generate: GenerateRequest | None = None
        self._loading_path = ""
        self._shut_down = False
        self._ending: list[QThread] = []
        self.inspect_live = False  # a snapshot for the Inspect view after every evaluation
        self.record_runs = True  # record every training run in the run store
        self.runs_db: str | None = None  # the store's file; None: core.runs.default_db_path()
        self.current_run_id: int | None = None  # the store's id of the run training now
        self.history_run_id: int | None = None  # the run whose curve ``history`` shows
        self.sweep: SweepState | None = None
        self._store: Any = None
        self._store_path: str | None = None
        self.runs_problem_text = ""
        self._outcome: tuple[str, str] = ("finished", "")

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
            self.state_changed.emit(state.value)

    def _set_busy(self, what: str) -> None:
        self.busy = what
        self.busy_changed.emit(what)

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self.dirty:
            self.dirty = dirty
            self.dirty_changed.emit(dirty)

    def _launch(self, worker: QObject) -> QThread:
        """Move ``worker`` to a new QThread (all its signals already connected) and start it."""
        if self._shut_down:
            raise RuntimeError("The controller is shut down; no new work can start.")
        thread = QThread()
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        thread.finished.connect(self._on_thread_finished)
        self._threads[thread] = worker
        thread.start()
        return thread

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

    def training_threads(self) -> int:
        """BLAS threads a run starts on: this session's measured choice, else the count the
        trainer's chooser tries first (the settings check times steps on it too)."""
        return self.blas_threads or max_train_threads()

    def run_task(self, tag: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` off the GUI thread; ``task_done(tag, result)`` or a message follows."""
        if self._shut_down:
            return
        worker = TaskWorker(tag, fn)
        worker.done.connect(self._on_task_done)
        worker.failed.connect(self._on_task_failed)
        self._launch(worker)

    # ---------------------------------------------------------------- text
    def open_text(self, path: str, encoding: str | None = None) -> None:
        if self.training:
            self.message.emit("Training is running", "Stop training before opening another text.")
            return
        data = _engine()[0]
        self._loading_path = path
        self._set_busy(f"Loading {display_path(Path(path).name)}…")
        self.run_task("corpus", lambda: data.load_corpus(path, encoding=encoding))

    def use_builtin_text(self) -> None:
        if self.training:
            self.message.emit("Training is running", "Stop training before changing the text.")
            return
        data = _engine()[0]
        self._set_busy("Gathering the Python standard library…")
        self._loading_path = ""
        self.run_task("corpus", data.builtin_corpus)

    # ---------------------------------------------------------------- model files
    def open_model(self, path: str) -> None:
        if self.training:
            self.message.emit("Training is running", "Stop training before opening a model.")
            return
        modelfile = _engine()[1]
        self._set_busy(f"Opening {display_path(Path(path).name)}…")
        self.run_task("model:" + path, lambda: modelfile.load_model(path))

    def save_model(self, path: str) -> None:
        """Save the current model (a snapshot between two steps while training) atomically.

        The target follows the engine's rule (``modelfile.save_target``: a symlink is saved
        through, a folder, device or FIFO is refused) and must not be locked by another run;
        both are checked here first, so that the user hears at once.
        """
        modelfile = _engine()[1]
        try:
            modelfile.save_target(path)
            modelfile.check_not_locked(path)
        except ModelFileError as exc:
            self.message.emit("The model was not saved", str(exc))
            return
        if self._train_worker is not None and self.state is not State.STOPPING:
            self._train_worker.request_snapshot(f"save:{self._model_id}:{path}")
            self._set_busy(f"Saving {display_path(Path(path).name)}…")
            return
        if self._train_worker is not None:  # stopping: save the final model once it arrives
            self._pending_save = path
            self._set_busy(f"Saving {display_path(Path(path).name)}…")
            return
        if self.model is None:
            self.message.emit("Nothing to save", "Train a model or open one first.")
            return
        self._save_async(self.model, path)

    def _save_async(self, mf: Any, path: str, model_id: int | None = None) -> None:
        modelfile = _engine()[1]
        self._set_busy(f"Saving {display_path(Path(path).name)}…")
        step = mf.train.step if mf.train is not None else 0
        owner = self._model_id if model_id is None else model_id
        self.run_task(f"save:{owner}:{step}:{path}", lambda: modelfile.save_model(path, mf))

    def unsaved_autosave_path(self, autosave_dir: str) -> str:
        """Where unsaved work goes when there is no time to ask (the session ends): the run's
        own autosave file, else a new one in ``autosave_dir``; never the user's model file."""
        if self.run_checkpoint and self.model_path != self.run_checkpoint:
            return self.run_checkpoint
        name = self.corpus.name if self.corpus is not None else "model"
        return autosave_path(autosave_dir, name)

    def save_now(self, path: str) -> str:
        """Save synchronously (used on close, after the workers are stopped)."""
        modelfile = _engine()[1]
        out = modelfile.save_model(path, self.model)
        self.model_path = str(out)
        if self.model.train is not None:
            self._saved_step = max(self._saved_step, self.model.train.step)
        self._set_dirty(False)
        self.saved.emit(str(out))
        return str(out)

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
        ``device`` ("cpu" or "gpu:N", see core.backend)."""
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
            model_config = resume_from.config
            done = resume_from.train.step
            if train_config.steps is not None and train_config.steps <= done:
                self.message.emit(
                    "Nothing left to train",
                    f"This model has already trained {done:,} steps and the run is set to "
                    f"{train_config.steps:,} steps in total. Raise “Train for” above {done:,} "
                    "steps (or train for some minutes) to continue it.",
                )
                return False
        try:
            model_config.validate()
            train_config.validate()
        except CharLSTMError as exc:
            self.message.emit("Check the settings", str(exc))
            return False
        ckpt = None
        if autosave_dir:
            try:
                Path(autosave_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self.message.emit(
                    "Autosave folder",
                    f"Cannot create the autosave folder "
                    f"{autosave_dir}: {exc.strerror}. Choose another one in the "
                    "settings.",
                )
                return False
            ckpt = autosave_path(autosave_dir, self.corpus.name)
        in_use = self._lock_run_files(self.model_path if resume_from is not None else None, ckpt)
        if in_use is None:
            return False
        self.autosave_file = None
        self.run_checkpoint = ckpt
        corpus = self.corpus
        trainer_mod = _engine()[3]

        def factory() -> Any:  # runs on the worker thread: splitting a big text takes time
            # The trainer re-encodes the text with a resumed model's vocabulary itself and
            # raises CorpusMismatchError when the text has characters the model cannot represent.
            return trainer_mod.Trainer(
                corpus, model_config, train_config, resume=resume_from, checkpoint_path=ckpt,
                device=device,
            )  # fmt: skip

        recorder_factory = self._recorder_factory(model_config, train_config, resume_from, ckpt)
        self.model_config, self.train_config = model_config, train_config
        if resume_from is None:
            # A new model: it has no file until the user gives it one, and the previous model
            # (saved or discarded by the user) is no longer the current one.
            self._model_id += 1
            self.model = None
            self.model_source = ""
            self.history_run_id = None
            self.history.clear()
            self.best_val = None
            self.model_path = None
            self._saved_step = 0
            self._set_dirty(False)
            self.history_reset.emit()
            self.model_changed.emit(None, "")
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
        worker = TrainWorker(
            factory,
            blas_threads=self.blas_threads,
            max_threads=max_train_threads(),
            recorder_factory=recorder_factory,
        )
        worker.recording.connect(self._on_recording)
        worker.record_warning.connect(self._report_runs_problem)
        worker.started.connect(self._on_train_started)
        worker.events.connect(self._on_train_events)
        worker.blas_chosen.connect(self._on_blas_chosen)
        worker.paused.connect(self._on_paused)
        worker.resumed.connect(self._on_resumed)
        worker.snapshot_ready.connect(self._on_snapshot)
        worker.failed.connect(self._on_train_failed)
        worker.finished.connect(self._on_train_finished)
        worker.snapshot_each_eval = self.inspect_live
        self._train_worker = worker
        self._set_state(State.STARTING)
        self._launch(worker)
        return True

    def _lock_run_files(self, model_file: str | None, ckpt: str | None) -> str | None:
        """Take the run's locks: ``""`` when done, the problem when ``model_file`` is held by
        another run (the run may go on without that file), None (and a message) when the
        autosave file cannot be locked (the run must not start)."""
        modelfile = _engine()[1]
        self.release_locks()
        problem = ""
        if model_file:
            try:
                self._file_lock = modelfile.ModelLock(model_file).acquire()
            except ModelFileError as exc:
                problem = str(exc)
        if ckpt:
            try:
                self._ckpt_lock = modelfile.ModelLock(ckpt).acquire()
            except ModelFileError as exc:
                self.release_locks()
                self.message.emit("Cannot autosave", f"{exc} Choose another autosave folder.")
                return None
        return problem

    def _relock_model_file(self, path: str) -> None:
        """The running model was saved to ``path``: that file is now the one its run holds."""
        if self._train_worker is None:
            return
        old = self._file_lock
        if old is not None and os.path.realpath(path) == old.real:
            return
        try:
            self._file_lock = _engine()[1].ModelLock(path).acquire()
        except CharLSTMError:
            self._file_lock = None
        if old is not None:
            old.release()

    def release_locks(self) -> None:
        """Give up the run's locks (the run has ended)."""
        for lock in (self._file_lock, self._ckpt_lock):
            if lock is not None:
                lock.release()
        self._file_lock = self._ckpt_lock = None

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

    @Slot(int)
    def _on_train_started(self, step: int) -> None:
        if self.state is State.STARTING:
            self._set_state(State.TRAINING)

    @Slot(object)
    def _on_train_events(self, batch: tuple) -> None:
        cfg = self.train_config
        chars_per_step = cfg.batch_size * cfg.seq_len if cfg is not None else 0
        for ev in batch:
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
        self.train_events.emit(batch)

    @Slot(int, str)
    def _on_blas_chosen(self, threads: int, explanation: str) -> None:
        self.blas_threads = threads  # keep the measured choice for the next run of this session
        self.blas_info.emit(explanation)

    @Slot(int)
    def _on_paused(self, step: int) -> None:
        if self.state is State.TRAINING:
            self._set_state(State.PAUSED)

    @Slot()
    def _on_resumed(self) -> None:
        if self.state is State.PAUSED:
            self._set_state(State.TRAINING)

    @Slot(object, object)
    def _on_snapshot(self, mf: Any, purpose: str) -> None:
        self.model = mf
        if purpose.startswith("save:"):
            _, owner, path = purpose.split(":", 2)
            self._save_async(mf, path, int(owner))
        elif purpose == "inspect":
            self.inspect_snapshot.emit(mf)
        elif purpose == "generate" and self._pending_generate is not None:
            request, self._pending_generate = self._pending_generate, None
            step = mf.train.step if mf.train is not None else 0
            self._start_stream(mf, request, f"the model being trained (step {step:,})")

    def set_inspect_live(self, on: bool) -> None:
        """Whether training sends ``inspect_snapshot`` after each evaluation (it does not wait)."""
        self.inspect_live = on
        if self._train_worker is not None:
            self._train_worker.snapshot_each_eval = on

    def request_inspect_snapshot(self) -> bool:
        """Ask the training worker for a copy of the weights between two steps (training goes on);
        ``inspect_snapshot`` answers. False when no training runs."""
        if self._train_worker is None or self.state is State.STOPPING:
            return False
        self._train_worker.request_snapshot("inspect")
        return True

    def _finish_training(self, final: Any) -> None:
        self._train_worker = None
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
        if ended_run is not None:
            self.runs_changed.emit()
        if self.sweep is not None and not self.sweep.done:
            QTimer.singleShot(0, self._sweep_point_ended)

    @Slot(object, object)
    def _on_train_finished(self, summary: Any, final: Any) -> None:
        if summary is not None and getattr(summary, "checkpoint_path", None):
            self.autosave_file = summary.checkpoint_path
            self.autosaved.emit(summary.checkpoint_path)
        if summary is not None and getattr(summary, "best_val_loss", None) is not None:
            self.best_val = summary.best_val_loss
        stopped = summary is not None and getattr(summary, "reason", "") == "stopped"
        self._outcome = ("stopped" if stopped else "finished", "")
        self._finish_training(final)
        if summary is not None and not self._shut_down:
            self.run_finished.emit(summary)

    @Slot(object, str, object)
    def _on_train_failed(self, exc: Exception, tb: str, last_good: Any) -> None:
        diverged = isinstance(exc, TrainingDiverged)
        self._outcome = ("diverged" if diverged else "failed", str(exc))
        in_sweep = self.sweep is not None and not self.sweep.done
        self._finish_training(last_good)
        if in_sweep and isinstance(exc, CharLSTMError | MemoryError):
            return  # a failed point is shown in the sweep's results, not in a box per point
        if isinstance(exc, CharLSTMError):
            title = type(exc).__name__
            titles = {
                "TrainingDiverged": "Training diverged",
                "CorpusMismatchError": "The model does not fit this text",
                "TextTooShortError": "The text is too short",
                "ConfigError": "Check the settings",
            }
            self.message.emit(titles.get(title, "Training stopped"), str(exc))
        elif isinstance(exc, MemoryError):
            self.message.emit(
                "Out of memory",
                "The model and batch do not fit in memory. "
                "Use a smaller hidden size, batch size or sequence length.",
            )
        else:
            self.internal_error.emit(tb)

    # ---------------------------------------------------------------- generation
    def generate(self, request: GenerateRequest) -> bool:
        if self.generating:
            return False
        if self._train_worker is not None and self.state is not State.STOPPING:
            self._pending_generate = request  # sample from a copy taken between two steps
            self._train_worker.request_snapshot("generate")
            self.generation_started.emit("the model being trained")
            return True
        if self._train_worker is not None:  # stopping: use the final model once it arrives
            self._pending_generate = request
            self.generation_started.emit("the model being trained")
            return True
        if self.model is None:
            self.message.emit("No model yet", "Train a model or open a model file first.")
            return False
        self._start_stream(self.model, request, self.model_source or "the current model")
        return True

    def _start_stream(self, mf: Any, request: GenerateRequest, source: str) -> None:
        sample = _engine()[2]

        def factory() -> Any:
            return sample.generate(
                mf,
                prime=request.prime,
                length=request.length,
                temperature=request.temperature,
                top_k=request.top_k,
                seed=request.seed,
            )

        # beside a running training (not a paused one), generation must leave it the cores
        worker = StreamWorker(
            factory, beside_training=self.state in (State.STARTING, State.TRAINING)
        )
        worker.text.connect(self._on_stream_text)
        worker.failed.connect(self._on_stream_failed)
        worker.finished.connect(self._on_stream_finished)
        self._stream_worker = worker
        self.generation_started.emit(source)
        self._launch(worker)

    def cancel_generation(self) -> None:
        if self._pending_generate is not None:
            self._pending_generate = None
            self.generation_finished.emit(False)
        if self._stream_worker is not None:
            self._stream_worker.cancel()

    @Slot(str)
    def _on_stream_text(self, text: str) -> None:
        self.generation_text.emit(text)

    @Slot(object, str)
    def _on_stream_failed(self, exc: Exception, tb: str) -> None:
        if isinstance(exc, CharLSTMError):
            self.message.emit("Cannot generate", str(exc))
        else:
            self.internal_error.emit(tb)

    @Slot(bool)
    def _on_stream_finished(self, completed: bool) -> None:
        self._stream_worker = None
        self.generation_finished.emit(completed)

    # ---------------------------------------------------------------- one-shot tasks
    @Slot(object, object)
    def _on_task_done(self, tag: str, result: Any) -> None:
        if tag == "corpus":
            self._set_busy("")
            self.corpus = result
            self.corpus_changed.emit(result)
        elif tag.startswith("model:"):
            self._set_busy("")
            self._opened(result, tag[6:])
        elif tag.startswith("save:"):
            self._set_busy("")
            _, owner, step, _path = tag.split(":", 3)
            if int(owner) == self._model_id:  # else it saved a model that is no longer current
                self.model_path = str(result)
                self._relock_model_file(self.model_path)
                self._saved_step = max(self._saved_step, int(step))
                current = self.last_step.step if self.last_step is not None else int(step)
                self._set_dirty(current > self._saved_step)
            self.saved.emit(str(result))
        self.task_done.emit(tag, result)

    def _opened(self, mf: Any, path: str) -> None:
        self._model_id += 1
        self.model = mf
        self.model_path = path
        self.model_source = display_path(Path(path).name)
        self.last_step = None
        self.history_run_id = None
        self.best_val = mf.train.best_val_loss if mf.train is not None else None
        self._saved_step = mf.train.step if mf.train is not None else 0
        self.history.clear()
        self.history_reset.emit()
        if mf.train is not None:
            self.train_config = mf.train.config
            cfg = mf.train.config
            self.history.load(mf.train.history, cfg.batch_size * cfg.seq_len, mf.train.rollbacks)
        self.model_config = mf.config
        self._set_dirty(False)
        self.model_opened.emit(mf, path)
        self.model_changed.emit(mf, self.model_source)

    @Slot(object, object, str)
    def _on_task_failed(self, tag: str, exc: Exception, tb: str) -> None:
        self._set_busy("")
        if isinstance(exc, DecodeError) and tag == "corpus":
            self.decode_failed.emit(self._loading_path, str(exc))
        elif isinstance(exc, CharLSTMError):
            title = {"corpus": "Cannot use this text"}.get(tag, "")
            if tag.startswith("model:"):
                title = "Cannot open this model"
            elif tag.startswith("save:"):
                title = "The model was not saved"
            self.message.emit(title or "Problem", str(exc))
        elif isinstance(exc, OSError) and (
            tag.startswith("save:") or tag == "corpus" or tag.startswith("model:")
        ):
            what = exc.strerror or str(exc)
            self.message.emit("File problem", f"{what}: {exc.filename or ''}".strip(": "))
        else:
            self.internal_error.emit(tb)

    # ---------------------------------------------------------------- the run store
    def _recorder_factory(
        self, model_config: ModelConfig, train_config: TrainConfig, resume_from: Any, ckpt: Any
    ) -> Callable[[Callable[[str], None]], Any] | None:
        """What the training worker calls, on its thread, to record this run (None: do not)."""
        if not self.record_runs:
            return None
        from core.runs import RunRecorder

        db, text = self.runs_db, self.corpus.fingerprint
        train = resume_from.train if resume_from is not None else None
        sweep = self.sweep if self.sweep is not None and not self.sweep.done else None
        name = None
        if sweep is not None and 0 <= sweep.current < len(sweep.points):
            name = sweep.points[sweep.current].label  # as the command line names them

        def make(warn: Callable[[str], None]) -> Any:
            return RunRecorder(
                db,
                text=text,
                model_config=model_config if resume_from is None else resume_from.config,
                train_config=train_config,
                model_path=ckpt,
                name=name,
                source="sweep" if sweep is not None else "app",
                sweep=sweep.label if sweep is not None else None,
                start_step=train.step if train is not None else 0,
                start_elapsed_s=train.elapsed_s if train is not None else 0.0,
                on_warning=warn,
            )

        return make

    @Slot(object)
    def _on_recording(self, run_id: Any) -> None:
        self.current_run_id = self.history_run_id = run_id
        if self.sweep is not None and 0 <= self.sweep.current < len(self.sweep.points):
            self.sweep.points[self.sweep.current].run_id = run_id
        self.runs_changed.emit()

    @Slot(str)
    def _report_runs_problem(self, text: str) -> None:
        """One message per distinct problem, however many runs meet it."""
        if text != self.runs_problem_text:
            self.runs_problem_text = text
            self.runs_problem.emit(text)

    def run_store(self) -> Any:
        """The open run store, or None (its problem reported once through ``runs_problem``)."""
        from core.runs import RunStore, default_db_path

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

    def load_curves(self, run_ids: list[int]) -> None:
        """Read the runs' curves off the GUI thread; ``task_done("curves", {id: Curves})``."""
        store = self.run_store()
        if store is not None and run_ids:
            ids = list(run_ids)
            self.run_task("curves", lambda: store.curves(ids))

    # ---------------------------------------------------------------- sweeps
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
    ) -> bool:
        """Train one run per point of ``grid`` (setting -> values), one after another, each
        ``budget`` steps or minutes long.

        Every point's settings are checked before the first starts; each run keeps its model in
        the autosave folder so that the best one can be opened at the end.
        """
        from core import sweep as core_sweep

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
        length = {"steps": int(budget), "epochs": None, "minutes": None}
        if unit == "minutes":
            length.update(steps=None, minutes=float(budget))
        base = dataclasses.replace(train_config, **length)
        data = _engine()[0]
        configs = []
        try:
            axes = [core_sweep.Axis(k, tuple(v), k) for k, v in grid.items()]
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
        self.sweep = SweepState(label, runs, configs, autosave_dir=autosave_dir)
        self._sweep_next()
        return True

    def cancel_sweep(self) -> None:
        """Stop the current point, skip the rest; the finished points stay recorded."""
        sweep = self.sweep
        if sweep is None or sweep.done:
            return
        sweep.cancelled = True
        for p in sweep.points:
            if p.status == "waiting":
                p.status = "skipped"
        self.sweep_changed.emit(sweep)
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

    @Slot()
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
        from core.sweep import rank

        sweep.done = True
        sweep.current = -1
        if self.autosave_file and self.state is State.IDLE:
            self._set_dirty(False)  # the last point's model is in its checkpoint, like the rest
        ranked = rank([p.result() for p in sweep.points])
        sweep.best = ranked[0].index if ranked and ranked[0].ok else None
        self.sweep_finished.emit(sweep)

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
        if self._stream_worker is not None:
            self._stream_worker.cancel()
        worker = self._train_worker
        if worker is not None:
            worker.request_stop()
        ok = True
        for thread in list(self._threads):
            ok = thread.wait(timeout_ms) and ok
        if worker is not None and worker.final_model is not None:
            self.model = worker.final_model
        if not keep_locks:
            self.release_locks()
        if self._store is not None:
            self._store.close()
            self._store = None
        return ok
