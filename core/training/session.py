"""One training session, the same for every front end: ``charlstm train``, each point of a sweep
(in this process, in a pool's worker process, or on a cluster's worker) and the app's worker.

``Session(request).run()`` is a generator. It opens the text, builds (or resumes) the
``Trainer``, holds the model file's lock, records the run in the run store, applies the thread
and priority policy (charlstm_core.training.threads) and, when asked, the stop signals
(charlstm_core.training.stopping); it yields the trainer's events with a few of its own
(``SessionStarted``, ``ThreadsChosen``, ``RecordingProblem``, ``SavedElsewhere``) and returns a
``SessionSummary``: how the run ended, what was saved where, and its run id (or why it is not
recorded). The front ends only show it: the command line prints the events, a sweep turns the
summary into a point's result, the app's generic worker turns the events into Qt signals.

Stopping. ``request_stop()`` (any thread), a stop event (a sweep's), or a first stop signal ends
the run after the step in progress; it saves. A second signal, a KeyboardInterrupt raised while
the caller shows an event (``drive`` passes it in), quits sooner: what there is is saved now, and
a save in progress is abandoned (the file keeps its previous contents).

Saving. The trainer saves through the session's ``Saver`` (charlstm_core.training.saving): to
``out``, or, when that cannot be written, to a new file in the fallback folder, named in a
``SavedElsewhere`` event and in the summary. A divergence saves the last good weights.

Recording. One recorder, finished in one place (``_finish_recording``) and then checked: a store
deleted, replaced or damaged during the run is reported (``record_problem``) instead of a run id
that points at nothing. A store that fails never stops the training.

Errors. Before training starts (the text, the settings, the device, a model file in use) the
typed error is raised, and nothing is recorded. Once it has started every expected ending
returns a summary: ``ended`` is "finished", "stopped", "diverged" or "crashed" (the run store's
words), and ``error`` is the exception of the last two (``TrainingDiverged``; a
``CharLSTMError`` such as a GPU that failed or a model that could not be saved; a
``MemoryError``). Anything else is a bug: recorded as a crash, then raised.

A point of a cluster sweep needs nothing but a request: its text may be a ``Corpus`` made from
the text's content (``charlstm_core.files.text.corpus_from_text``), its ``out`` a worker's
local file, its ``runs_db`` a local store whose row is then shipped back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..config import ModelConfig, TrainConfig
from ..engine import parallel
from ..errors import CharLSTMError, TrainingDiverged
from ..events import (
    EvalEvent,
    Event,
    RecordingProblem,
    RollbackEvent,
    SavedElsewhere,
    SessionEvent,
    SessionStarted,
    StepEvent,
    ThreadsChosen,
    TrainSummary,
)
from ..files.modelfile import ModelFile, ModelLock
from ..files.text import Corpus, load_corpus, recorded_encoding
from . import trainer as trainer_module  # looked up when a session starts (tests stand in)
from .saving import Saver, default_autosave_dir
from .stopping import StopSignals
from .threads import ThreadPolicy

R = TypeVar("R")
INTERRUPTED_SAVE = "interrupted while saving"  # a save_problem: abandoned, the file as it was


@dataclass(frozen=True)
class SessionRequest:
    """What to train, on what, where it goes and how it is run; picklable (a sweep sends it to
    its worker processes)."""

    text: str | os.PathLike[str] | Corpus  # a text file, or a text already read
    train_config: TrainConfig
    model_config: ModelConfig | None = None  # a new model's architecture (ignored on resume)
    resume: ModelFile | None = None  # a checkpoint to continue (its settings win)
    encoding: str | None = None  # of the text file (None: UTF-8, or the checkpoint's text's)
    out: str | None = None  # the model file: autosaves and the final save (None: never saved)
    device: Any = "cpu"  # "cpu", "gpu:N", or an engine (charlstm_core.engine.devices)
    record: bool = True  # record the run in the run store
    runs_db: str | None = None  # the store (None: charlstm_core.runs.default_db_path())
    run_name: str | None = None  # the run's name in the store (None: "<text> <L>x<H>")
    source: str = "cli"  # who trained it: "cli", "app" or "sweep"
    sweep: str | None = None  # the sweep's label, for its points
    threads: ThreadPolicy = field(default_factory=ThreadPolicy)
    signals: bool = False  # SIGINT, SIGTERM, SIGHUP stop it (only in the main thread)
    lock_out: bool = True  # hold ``out``'s lock (False: the caller holds it, as the app does)
    fallback_dir: str | None = None  # where a save that cannot reach ``out`` goes (None: the
    # autosave folder beside the run store, charlstm_core.training.saving.default_autosave_dir)
    keep_model: bool = False  # the summary carries the final model (the app shows it)


@dataclass(frozen=True)
class SessionSummary:
    """How a session ended and what it left."""

    ended: str  # "finished", "stopped", "diverged" or "crashed"
    steps: int  # the model's step at the end (the last good one after a divergence)
    best_val_loss: float | None
    final_val_loss: float | None  # the latest validation loss of the model's life
    elapsed_s: float  # the model's training time (all its runs)
    duration_s: float  # this run's duration, its final save included (training.measures)
    chars_per_sec: float | None  # this run's chars/s (charlstm_core.training.measures)
    rollbacks: int  # self-healings in this session
    model_path: str | None  # where the model is saved now (``out`` or the fallback file)
    saved_step: int | None  # the model's step in that file (None: nothing saved here)
    save_problem: str | None  # why ``out`` was not written at the end (None: it was)
    run_id: int | None  # the run store's id (None: not recorded, see ``record_problem``)
    record_problem: str | None  # why the run is not (fully) recorded
    signal: int | None  # the stop signal received, if one was
    quit_sooner: bool  # a second signal (or a KeyboardInterrupt) cut the run short
    error: BaseException | None = None  # why it diverged or crashed
    train: TrainSummary | None = None  # the trainer's own summary, when its run returned
    model: ModelFile | None = None  # the final model (``keep_model``)

    @property
    def fell_back(self) -> bool:
        """The model is saved, but not to the file asked for."""
        return self.model_path is not None and self.save_problem is not None


def open_text(
    path: str | os.PathLike[str], encoding: str | None = None, *, resume: ModelFile | None = None
) -> Corpus:
    """The text at ``path`` read for training (CorpusError, DecodeError…: what is wrong with
    it). Continuing ``resume``, it is read in the encoding the checkpoint recorded if it is that
    same text (``recorded_encoding``), else UTF-8 unless another is given, and must use only the
    model's characters (CorpusMismatchError)."""
    vocab = None
    if resume is not None:
        st = resume.train
        # the checkpoint's encoding only for that very text; another is read as UTF-8
        encoding = encoding or (recorded_encoding(path, st.corpus) if st is not None else None)
        vocab = resume.vocab
    return load_corpus(os.fspath(path), encoding, vocab=vocab)


def drive(run: Generator[Any, None, R], on_event: Callable[[Any], None]) -> R:
    """Pull ``run`` (a session's) to its end, handing each event to ``on_event``; returns its
    summary. A KeyboardInterrupt raised in ``on_event`` (a second stop signal landing while an
    event is shown) is passed into the session, which saves what there is and returns."""
    pending: BaseException | None = None
    while True:
        try:
            event = next(run) if pending is None else run.throw(pending)
        except StopIteration as done:
            return done.value
        pending = None
        try:
            on_event(event)
        except KeyboardInterrupt as e:
            pending = e


@dataclass
class _Outcome:
    ended: str
    train: TrainSummary | None = None
    error: BaseException | None = None
    quit_sooner: bool = False


class Session:
    """One training run from a ``SessionRequest``; ``run()`` is its generator (see the module).

    ``stop_events`` (threading or multiprocessing events) stop it when set, checked between two
    events; ``on_signal(signum)`` is told of the first stop signal (a console prints it)."""

    def __init__(
        self,
        request: SessionRequest,
        *,
        stop_events: Iterable[Any] = (),
        on_signal: Callable[[int], None] | None = None,
    ) -> None:
        self.request = request
        self.trainer: Any = None  # the Trainer, once built (on the thread that runs ``run``)
        self.corpus: Corpus | None = None
        self.signal: int | None = None
        self._stop = threading.Event()
        self._stop_events = [e for e in stop_events if e is not None]
        self._on_signal = on_signal
        fallback = request.fallback_dir or default_autosave_dir()
        self.saver = Saver(request.out, fallback)
        self._recorder: Any = None
        self._reported: str | None = None  # the recording problem already yielded
        self._final_val: float | None = None
        self._rollbacks = 0
        self._fallback_said: str | None = None  # the fallback file already announced

    # ------------------------------------------------------------------ from any thread

    def request_stop(self) -> None:
        """Stop after the step in progress (saved). Safe from any thread and a signal handler."""
        self._stop.set()
        trainer = self.trainer
        if trainer is not None:
            trainer.request_stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or any(e.is_set() for e in self._stop_events)

    def snapshot(self) -> ModelFile | None:
        """A copy of the model and its training state, between two steps (None before the
        trainer exists). Safe from any thread."""
        trainer = self.trainer
        return trainer.snapshot() if trainer is not None else None

    # ------------------------------------------------------------------ the run

    def run(self) -> Generator[Event | SessionEvent, None, SessionSummary]:
        """Train; yields the trainer's and the session's events, returns a ``SessionSummary``."""
        req = self.request
        with contextlib.ExitStack() as scope:
            signals = None
            if req.signals:
                signals = scope.enter_context(StopSignals(self._signalled, self._on_signal))
            if req.threads.nice:
                parallel.lower_priority(req.threads.nice)  # this thread, and its slices' pool
            if req.threads.threads:
                scope.enter_context(parallel.blas_thread_count(req.threads.threads))
            trainer = self._build()
            if req.out and req.lock_out:  # one writer per model file for the whole run
                scope.enter_context(ModelLock(req.out))
            self.trainer = trainer
            self._start_recording()
            outcome = _Outcome("crashed")
            try:
                yield SessionStarted(
                    step=int(trainer.step),
                    total_steps=int(trainer.total_steps),
                    device=str(trainer.device_label),
                    run_id=self._recorder.run_id if self._recording_ok() else None,
                    model_path=req.out,
                )
                yield from self._problems()
                outcome = yield from self._train(trainer)
                self._save_at_end(trainer, outcome)
            except KeyboardInterrupt:  # while the caller showed the start: nothing trained yet
                outcome = _Outcome("stopped", quit_sooner=True)
            except GeneratorExit:  # the caller closed the run: it ends where it is, unsaved
                outcome = _Outcome("stopped")
                raise
            except BaseException as e:  # a bug: recorded as a crash, then raised
                outcome = _Outcome("crashed", error=e)
                raise
            finally:
                self._finish_recording(outcome)
            return self._summary(outcome, signals)

    def _signalled(self, signum: int) -> None:
        self.signal = signum
        self.request_stop()

    def _build(self) -> Any:
        """The engine (a missing GPU fails first), the text, then the trainer: the typed
        errors of each (CorpusError, DeviceUnavailableError, ConfigError, CorpusMismatchError…)."""
        req = self.request
        if req.resume is None and req.model_config is None:
            raise ValueError("a SessionRequest needs a model_config or a model to resume")
        mc = req.resume.config if req.resume is not None else req.model_config
        engine = req.device
        if isinstance(engine, str):
            from ..engine.devices import make_engine

            engine = make_engine(engine, mc)
        self.corpus = corpus = self._open_text()
        return trainer_module.Trainer(  # it sets a new model's vocabulary size from the text
            corpus,
            mc,
            req.train_config,
            resume=req.resume,
            checkpoint_path=req.out,
            device=engine,
            save=self.saver.write,
        )

    def _open_text(self) -> Corpus:
        req = self.request
        if isinstance(req.text, str | os.PathLike):
            return open_text(req.text, req.encoding, resume=req.resume)
        return req.text  # a Corpus

    def _train(self, trainer: Any) -> Generator[Any, None, _Outcome]:
        """The trainer's events, recorded and passed on, with the thread measurement; how the
        trainer's run ended."""
        if self.stopping:  # asked to stop before the first step: nothing to train, nor to save
            return _Outcome("stopped")
        policy = self.request.threads
        chooser = parallel.ThreadChooser(policy.threads) if policy.measure else None
        prev_chars: int | None = None
        events = trainer.run()
        try:
            while True:
                if self.stopping:
                    self.request_stop()
                t0 = time.perf_counter()
                try:
                    event = next(events)
                except StopIteration as done:
                    summary: TrainSummary = done.value
                    ended = "stopped" if summary.reason == "stopped" else "finished"
                    return _Outcome(ended, train=summary)
                seconds = time.perf_counter() - t0  # the trainer's own work only
                self._note(event)
                if isinstance(event, StepEvent):
                    if chooser is not None and prev_chars is not None:
                        decided = chooser.record(seconds, event.chars_seen - prev_chars)
                        if decided is not None:
                            yield ThreadsChosen(decided, chooser.explain())
                            chooser = None
                    prev_chars = event.chars_seen
                elif isinstance(event, RollbackEvent):
                    prev_chars = None  # the step count went back: no predecessor to time against
                yield event
                yield from self._problems()
        except KeyboardInterrupt:
            return _Outcome("stopped", quit_sooner=True)
        except TrainingDiverged as e:
            return _Outcome("diverged", error=e)
        except (CharLSTMError, MemoryError) as e:  # a GPU that failed, a model not saved
            return _Outcome("crashed", error=e)
        finally:
            events.close()

    def _note(self, event: Any) -> None:
        """What the summary reports of the events: the recorder sees them, the mean speed."""
        if self._recorder is not None:
            self._recorder(event)  # buffered; never raises
        if isinstance(event, EvalEvent):
            self._final_val = event.val_loss
        elif isinstance(event, RollbackEvent):
            self._rollbacks += 1

    def _problems(self) -> Generator[Any, None, None]:
        """The session's news since the last event: a save that went to the fallback file, the
        run store that failed."""
        saver = self.saver
        if saver.fell_back and saver.problem is not None and saver.last != self._fallback_said:
            self._fallback_said = saver.last
            yield SavedElsewhere(
                step=int(saver.saved_step or 0),
                target=str(saver.target),
                path=str(saver.last),
                reason=saver.problem,
            )
        rec = self._recorder
        if rec is not None and rec.warning and rec.warning != self._reported:
            self._reported = rec.warning
            yield RecordingProblem(rec.warning)

    def _save_at_end(self, trainer: Any, outcome: _Outcome) -> None:
        """The saves the trainer does not make itself: the last good weights after a divergence,
        what there is after a quit sooner (unless a save was in progress: that one is
        abandoned, the file keeps its previous contents)."""
        out = self.request.out
        if not out or outcome.ended not in ("diverged", "stopped"):
            return
        if outcome.ended == "stopped" and not outcome.quit_sooner:
            return  # the trainer saved at its end
        if outcome.quit_sooner and self.saver.saving:
            self.saver.problem = INTERRUPTED_SAVE
            self.saver.last = None
            return
        try:
            trainer.save(out)
        except KeyboardInterrupt:
            self.saver.problem = INTERRUPTED_SAVE
            self.saver.last = None
        except (CharLSTMError, OSError) as e:
            self.saver.problem = str(e)
            self.saver.last = None
            if outcome.error is None:
                outcome.error = e

    # ------------------------------------------------------------------ recording

    def _start_recording(self) -> None:
        req = self.request
        if not req.record:
            return
        from ..runs import RunRecorder

        corpus, st = self.corpus, req.resume.train if req.resume is not None else None
        assert corpus is not None
        mc = req.resume.config if req.resume is not None else req.model_config
        if req.resume is None:
            mc = dataclasses.replace(mc, vocab_size=corpus.vocab.size)
        self._recorder = RunRecorder(
            req.runs_db,
            text=corpus.fingerprint,
            model_config=mc,
            train_config=req.train_config,
            model_path=req.out,
            name=req.run_name,
            source=req.source,
            sweep=req.sweep,
            start_step=st.step if st is not None else 0,
            start_elapsed_s=st.elapsed_s if st is not None else 0.0,
        )

    def _recording_ok(self) -> bool:
        rec = self._recorder
        return rec is not None and rec.run_id is not None and rec.warning is None

    def _finish_recording(self, outcome: _Outcome) -> None:
        """The one place that ends the run in the store (then checks that it is there)."""
        rec = self._recorder
        if rec is None:
            return
        message = None
        if outcome.error is None and self.saver.problem is not None:
            message = f"The model was not saved to {self.request.out}: {self.saver.problem}"
        trainer = self.trainer
        rec.finish(
            summary=outcome.train,
            error=outcome.error,
            status=outcome.ended,
            model_path=self.saver.last,
            message=message,
            duration_s=float(trainer.duration_s) if trainer is not None else None,
            chars_per_sec=trainer.chars_per_sec if trainer is not None else None,
        )

    # ------------------------------------------------------------------ the summary

    def _summary(self, outcome: _Outcome, signals: StopSignals | None) -> SessionSummary:
        trainer, rec, saver = self.trainer, self._recorder, self.saver
        final_val = self._final_val if self._final_val is not None else trainer.last_val_loss
        return SessionSummary(
            ended=outcome.ended,
            steps=int(trainer.step),
            best_val_loss=trainer.best_val_loss,
            final_val_loss=final_val,
            elapsed_s=float(trainer.elapsed_s),
            duration_s=float(trainer.duration_s),
            chars_per_sec=trainer.chars_per_sec,
            rollbacks=self._rollbacks,
            model_path=saver.last,
            saved_step=saver.saved_step if saver.last is not None else None,
            save_problem=saver.problem,
            run_id=rec.recorded_id if rec is not None else None,
            record_problem=rec.warning if rec is not None else None,
            signal=self.signal if self.signal is not None else (signals and signals.signum),
            quit_sooner=outcome.quit_sooner,
            error=outcome.error,
            train=outcome.train,
            model=trainer.snapshot() if self.request.keep_model else None,
        )
