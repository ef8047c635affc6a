"""The trainer: truncated BPTT over B parallel streams, as a generator of events.

Batches come from ``charlstm_core.files.text.get_batch`` (B contiguous streams; batch j of an epoch
continues each stream); the trainer keeps only the counters (epoch, batch j). The hidden and cell
states are carried from one batch to the next (detached: gradients stop at the batch boundary);
after the ``batches_per_epoch`` batches of an epoch the streams start over from zero states.
Everything that decides the next step (weights, Adam moments, RNG states, stream position, carried
state, the run's planned length) is part of a checkpoint, so a resumed run is bit-identical to an
uninterrupted one.

The trainer is composed of three collaborators, each with its own state: a ``Budget``
(charlstm_core.training.budget: the planned length, the training clock, the ``--minutes``
deadline), a ``Healer`` (charlstm_core.training.rollback, deciding with
charlstm_core.training.heal) and a ``Checkpointer`` (charlstm_core.training.checkpoint: where,
when and how a checkpoint is written). The trainer owns the model's state (weights, Adam moments,
carried state, random streams, stream position, history) and is the only one to change it.

Self-healing: the state is copied in memory at every evaluation, autosave and KEEP_EVERY steps,
once the next step's loss has vouched for it. A blow-up restores that copy exactly and multiplies
the schedule by a smaller ``lr_scale``, which checkpoints keep (with the rollback records and
per-step gradient norms), so resuming after a heal stays bit-identical. One case cannot be: a
blow-up right after resuming from a checkpoint that was not itself a keep point (a stop
mid-interval) rolls back to the resume point, where the uninterrupted run had an older copy.

What a training *session* adds around ``run()`` (the text, signals, the run store, threads, the
final save's fallback) is charlstm_core.training.session's.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Generator

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..engine.devices import Backend, make_engine
from ..engine.memory import keep_freed_memory
from ..engine.model import init_params
from ..engine.optim import learning_rate
from ..engine.protocol import Engine
from ..errors import (
    DeviceLostError,
)
from ..events import (
    CheckpointEvent,
    EvalEvent,
    Event,
    RollbackEvent,
    SampleEvent,
    StepEvent,
    TrainSummary,
)
from ..files.modelfile import MAX_SAMPLES, ModelFile, TrainState, save_model
from ..files.text import Corpus, batches_per_epoch, get_batch, train_val_ids
from ..sample import generate
from . import measures
from .budget import Budget
from .checkpoint import (
    Checkpointer,
    history_arrays,
    history_lists,
    is_exact_continuation,
    new_history,
    resumed_lr_scale,
    stream_position,
)
from .heal import DetectorState, DivergenceDetector, replay
from .rollback import Healer, Kept

EVAL_STREAMS = 32  # validation runs this many streams side by side (fewer for short texts)


class Trainer:
    """Trains a model on a corpus; ``run()`` is the generator of events.

    A fresh model is initialised from ``train_config.seed``; ``resume`` continues a checkpoint
    (its architecture and vocabulary win over ``model_config``). The run lasts until
    ``train_config.steps`` total optimizer steps, ``epochs`` total passes over the text, or
    ``minutes`` of wall-clock time in this session — whichever one is set. With a
    ``checkpoint_path`` it autosaves there every ``checkpoint_every`` steps and when the run
    ends, through ``save`` (``save_model`` unless given).
    """

    def __init__(
        self,
        corpus: Corpus,
        model_config: ModelConfig,
        train_config: TrainConfig,
        *,
        resume: ModelFile | None = None,
        checkpoint_path: str | None = None,
        device: Engine | Backend | str = "cpu",
        save: Callable[[str, ModelFile], str] | None = None,
    ) -> None:
        tc = train_config.validate()
        if resume is not None:
            model_config = resume.config
            vocab = resume.vocab
        else:
            vocab = corpus.vocab
            model_config = dataclasses.replace(model_config, vocab_size=vocab.size)
        model_config.validate()
        B, T = tc.batch_size, tc.seq_len
        self._train_ids, self._val_ids = train_val_ids(
            corpus, vocab, B, T, tc.val_fraction, tc.val_split, max_val=tc.eval_max_chars
        )
        self._batches_per_epoch = batches_per_epoch(len(self._train_ids), B, T)
        self._corpus = corpus
        self._mc, self._tc, self._vocab = model_config, tc, vocab
        self.checkpointer = Checkpointer(checkpoint_path, tc.checkpoint_every, save or save_model)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards weights and state against snapshot() mid-update

        # each step reuses the last one's memory (see charlstm_core.engine.memory)
        keep_freed_memory()
        # where the passes run (an Engine); weights, moments and state live on its device
        self._engine = make_engine(device, model_config)  # a device choice, Backend or engine
        dev = self._engine.to_device
        seeds = np.random.SeedSequence(tc.seed).spawn(3)
        self._dropout_rng = np.random.default_rng(seeds[1])
        self._sample_rng = np.random.default_rng(seeds[2])
        st = resume.train if resume is not None else None
        if resume is None:
            self.params = init_params(model_config, np.random.default_rng(seeds[0]))
        else:
            self.params = {k: v.copy() for k, v in resume.params.items()}
        self.params = {k: dev(v) for k, v in self.params.items()}
        if st is not None:
            self._adam = self._engine.adam(
                self.params,
                m={k: v.copy() for k, v in st.adam_m.items()},
                v={k: v.copy() for k, v in st.adam_v.items()},
                t=st.step,
            )
            self._step = st.step
            self._best = st.best_val_loss
            self._history = history_lists(st)
            self._samples: list[tuple[int, str]] = list(st.samples)
            exact = is_exact_continuation(st, corpus.sha256, model_config, tc)
            if (
                exact
            ):  # the same streams, carried state and random streams (core/training/checkpoint.py)
                self._dropout_rng.bit_generator.state = st.rng["dropout"]
                self._sample_rng.bit_generator.state = st.rng["sample"]
                self._epoch, self._batch = stream_position(st, self._batches_per_epoch)
                self._h, self._c = dev(st.h.copy()), dev(st.c.copy())
            else:  # a new text or new batching: streams start over
                self._epoch, self._batch = 0, 0
                self._h, self._c = self._engine.zero_state(B)
        else:
            exact = False
            self._adam = self._engine.adam(self.params)
            self._step = 0
            self._best = None
            self._history = new_history()
            self._samples = []
            self._epoch, self._batch = 0, 0
            self._h, self._c = self._engine.zero_state(B)
        self._last_val: float | None = (
            self._history["val_loss"][-1] if self._history["val_loss"] else None
        )
        self.budget = Budget(
            tc,
            self._batches_per_epoch,
            prev_total=st.total_steps if st is not None else 0,
            elapsed_before=st.elapsed_s if st is not None else 0.0,
            val_chars=len(self._val_ids),
            checkpointer=self.checkpointer,
            state_bytes=self._state_bytes,
        )
        self._total = self.budget.planned_total(self._step)
        # Self-healing (charlstm_core.training.heal): the detector continues an exact
        # continuation's history (the same fold over the same values: bit-identical decisions);
        # a new text starts it afresh.
        log_vocab = math.log(max(model_config.vocab_size, 2))
        if exact:
            h = self._history
            detector = replay(log_vocab, h["train_loss"], h["grad_norm"])
        else:
            detector = DivergenceDetector(log_vocab)
        self.healer = Healer(
            tc,
            detector,
            lr_scale=resumed_lr_scale(st, tc) if st is not None else 1.0,
            rollbacks=st.rollbacks if st is not None else (),
        )

    # ------------------------------------------------------------------ read-only views

    @property
    def step(self) -> int:
        return self._step

    @property
    def total_steps(self) -> int:
        return self._total

    @property
    def model_config(self) -> ModelConfig:
        return self._mc

    @property
    def train_config(self) -> TrainConfig:
        return self._tc

    @property
    def vocab(self):
        return self._vocab

    @property
    def corpus(self) -> Corpus:
        return self._corpus

    @property
    def best_val_loss(self) -> float | None:
        return self._best

    @property
    def history(self) -> dict[str, np.ndarray]:
        with self._lock:
            return {k: np.array(v) for k, v in self._history.items()}

    @property
    def batches_per_epoch(self) -> int:
        return self._batches_per_epoch

    @property
    def elapsed_s(self) -> float:
        """The model's training time: its earlier runs' and this run's duration so far."""
        return self.budget.elapsed_s

    @property
    def duration_s(self) -> float:
        """This run's duration so far (charlstm_core.training.measures), up to its last save."""
        return self.budget.duration_s

    @property
    def chars_per_sec(self) -> float | None:
        """This run's chars/s so far (charlstm_core.training.measures)."""
        return self.budget.chars_per_sec

    @property
    def last_val_loss(self) -> float | None:
        """The latest validation loss of the model's life (None before the first)."""
        return self._last_val

    @property
    def checkpoint_path(self) -> str | None:
        return self.checkpointer.path

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Ask ``run()`` to return after the step in progress. Safe from any thread."""
        self._stop.set()

    @property
    def device_label(self) -> str:
        """Where the passes run: "CPU" or the GPU's name and memory."""
        return self._engine.label

    def save(self, path: str) -> str:
        """Write a checkpoint of ``snapshot()`` (through the checkpointer); returns the path
        written. The run's duration runs to the end of its last save."""
        written = self.checkpointer.save(self.snapshot(), path)
        self.budget.tick()
        return written

    @property
    def lr_scale(self) -> float:
        """The learning-rate multiplier left by rollbacks (1.0 before any)."""
        return self.healer.lr_scale

    @property
    def rollbacks(self) -> tuple[RollbackEvent, ...]:
        """The rollbacks of the model's life, oldest first."""
        return tuple(self.healer.rollbacks)

    def snapshot(self) -> ModelFile:
        """A deep copy of the model and its full training state (NumPy arrays, whatever the
        device): what a checkpoint holds. Safe from any thread."""
        host = self._engine.to_host
        with self._lock:
            state = TrainState(
                config=self._tc,
                step=self._step,
                total_steps=self._total,
                elapsed_s=self.elapsed_s,
                adam_m={k: host(v).copy() for k, v in self._adam.m.items()},
                adam_v={k: host(v).copy() for k, v in self._adam.v.items()},
                h=host(self._h).copy(),
                c=host(self._c).copy(),
                rng={
                    "dropout": self._dropout_rng.bit_generator.state,
                    "sample": self._sample_rng.bit_generator.state,
                },
                stream={"epoch": self._epoch, "batch": self._batch},
                history=history_arrays(self._history),
                corpus=self._corpus.fingerprint,
                best_val_loss=self._best,
                samples=tuple(self._samples),
                lr_scale=self.healer.lr_scale,
                rollbacks=tuple(self.healer.rollbacks),
            )
            params = {k: host(v).copy() for k, v in self.params.items()}
        return ModelFile(config=self._mc, params=params, vocab=self._vocab, train=state)

    def _state_bytes(self) -> int:
        """Bytes of the weights and Adam moments: what a save mostly writes."""
        arrays = [*self.params.values(), *self._adam.m.values(), *self._adam.v.values()]
        return sum(a.nbytes for a in arrays)

    # ------------------------------------------------------------------ the run

    def _epoch_float(self) -> float:
        return self._epoch + self._batch / self._batches_per_epoch

    def _advance_stream(self) -> None:
        self._batch += 1
        if self._batch >= self._batches_per_epoch:
            self._batch = 0
            self._epoch += 1
            self._h[...] = 0
            self._c[...] = 0

    def _validate(self, ids: np.ndarray | None = None) -> float:
        ids = self._val_ids if ids is None else ids
        streams = max(1, min(EVAL_STREAMS, (len(ids) - 1) // self._tc.seq_len))
        return self._engine.mean_loss(self.params, ids, streams=streams, seq_len=self._tc.seq_len)

    def _time_validation(self) -> None:
        """Time validation on a slice of the validation text (two windows of every stream),
        so that the run's end is known before its first whole validation: a ``--minutes`` run
        then ends where its budget does, and the time left counts the final validation."""
        n = len(self._val_ids)
        if n <= 1:
            return
        size = min(n, 2 * EVAL_STREAMS * self._tc.seq_len + 1)
        t = measures.now()
        self._validate(self._val_ids[:size])
        self.budget.eval_char_s = (measures.now() - t) / max(size - 1, 1)

    def _sample(self) -> str:
        seed = int(self._sample_rng.integers(2**63))
        params = {k: self._engine.to_host(v) for k, v in self.params.items()}
        snap = ModelFile(config=self._mc, params=params, vocab=self._vocab)
        return "".join(
            generate(
                snap,
                length=self._tc.sample_length,
                temperature=self._tc.sample_temperature,
                seed=seed,
            )
        )

    def _done(self) -> bool:
        return self.budget.time_is_up() or self._step >= self._total

    def run(self) -> Generator[Event, None, TrainSummary]:
        """Train, yielding events; returns a ``TrainSummary``.

        Yields a ``StepEvent`` after every optimizer step, an ``EvalEvent`` every ``eval_every``
        steps and at the end, a ``SampleEvent`` every ``sample_every`` steps and a
        ``CheckpointEvent`` after each autosave and at the end. When training blows up
        (charlstm_core.training.heal) it restores the last kept state and, with
        ``on_divergence="heal"``, yields a ``RollbackEvent`` and continues at a lower learning
        rate; with ``"stop"``, or after too many rollbacks, it raises ``TrainingDiverged`` with
        the weights restored to the last good ones.
        """
        tc = self._tc
        self._stop.clear()
        self.budget.begin()
        last_eval_step = self._history["val_step"][-1] if self._history["val_step"] else -1
        checkpoint: str | None = None
        reason = "completed"
        lr = self._lr()
        if self.healer.kept is None or self.healer.kept.step != self._step:
            self._keep(self._dropout_rng.bit_generator.state, self.healer.detector.state)
        if self.budget.eval_s is None and self.budget.eval_char_s is None:
            self._time_validation()  # what the final validation will cost, for the time left
        while True:
            if self.healer.pending and (self._done() or self._stop.is_set()):
                # Never end on a blow-up in progress: its weights are not saved as the result.
                why = "the run ended while the loss was far above its recent level"
                yield from self._diverged(why, lr, None)
                continue
            if self._done():
                break
            if self._stop.is_set():
                reason = "stopped"
                break
            t_step = measures.now()
            lr = self._lr()
            loss, norm, blew_up = self._optimizer_step(lr)
            if blew_up is not None:
                yield from self._diverged(blew_up, lr, loss)
                continue
            # throughput of the training steps alone (evaluations and samples excluded)
            self.budget.step_done(measures.now() - t_step, tc.batch_size * tc.seq_len)
            self._total = self.budget.replan(self._step, self._total)
            yield from self._emit(self._step_event(loss, lr, norm))
            if tc.eval_every and self._step % tc.eval_every == 0 and len(self._val_ids) > 1:
                yield from self._emit(self._eval_event())
                last_eval_step = self._step
            if tc.sample_every and self._step % tc.sample_every == 0:
                yield from self._emit(self._sample_event())
            # never autosave a blow-up in progress
            if self.checkpointer.due(self._step) and not self._done() and not self.healer.pending:
                checkpoint = self.save(self.checkpoint_path)
                yield from self._emit(CheckpointEvent(step=self._step, path=checkpoint))
        # A completed run ends with a validation loss; a stopped one saves at once (a full
        # validation pass can take a while on big texts, and the user asked to stop).
        if reason == "completed" and self._step != last_eval_step and len(self._val_ids) > 1:
            yield from self._emit(self._eval_event())
        if self.checkpoint_path and self.budget.session_steps > 0:
            checkpoint = self.save(self.checkpoint_path)  # the run ends with its final save
            yield from self._emit(CheckpointEvent(step=self._step, path=checkpoint))
        self.budget.tick()
        return TrainSummary(
            steps=self._step,
            reason=reason,
            best_val_loss=self._best,
            elapsed_s=self.elapsed_s,
            checkpoint_path=checkpoint,
            rollbacks=self.healer.this_session,
            duration_s=self.budget.duration_s,
            chars_per_sec=self.budget.chars_per_sec,
        )

    def _lr(self) -> float:
        """The learning rate of the next step: the schedule's, times the rollbacks' multiplier."""
        return learning_rate(self._tc, self._step, self._total) * self.healer.lr_scale

    def _optimizer_step(self, lr: float) -> tuple[float, float, str | None]:
        """One optimizer step at learning rate ``lr``: (loss, gradient norm, None); or, when the
        healer judges that it blew up, (loss, norm, why) with nothing updated."""
        tc = self._tc
        B, T = tc.batch_size, tc.seq_len
        rng_before = self._dropout_rng.bit_generator.state
        detector_before = self.healer.detector.state
        x, y = get_batch(self._train_ids, self._batch, B, T)
        try:
            loss, grads, new_state = self._engine.loss_and_grads(
                self.params, x, y, (self._h, self._c), self._dropout_rng
            )
            norm = self._engine.global_norm(grads)
        except DeviceLostError as e:
            raise self._device_lost(e) from None
        diverged, why = self.healer.observe(loss, norm)
        if diverged:
            return loss, norm, why or "training blew up"
        kept = self.healer.kept
        if why is None and self.healer.is_keep_point(self._step) and kept.step != self._step:
            # this step's healthy loss vouches for the weights it was computed with
            self._keep(rng_before, detector_before)
        with self._lock:
            self._engine.update(self._adam, self.params, grads, lr, tc.clip, norm)
            self._h, self._c = new_state
            self._step += 1
            self._advance_stream()
            self._history["train_step"].append(self._step)
            self._history["train_loss"].append(loss)
            self._history["grad_norm"].append(norm)
        return loss, norm, None

    def _step_event(self, loss: float, lr: float, norm: float) -> StepEvent:
        tc, budget = self._tc, self.budget
        cps = budget.chars_per_sec
        return StepEvent(
            step=self._step,
            total_steps=self._total,
            epoch=self._epoch_float(),
            chars_seen=self._step * tc.batch_size * tc.seq_len,
            loss=loss,
            lr=lr,
            grad_norm=norm,
            chars_per_sec=cps if cps is not None else math.nan,
            elapsed_s=self.elapsed_s,
            duration_s=budget.duration_s,
            eta_s=budget.eta_s(self._step, self._total),
            total_is_estimate=budget.total_is_estimate(self._step, self._total),
        )

    def _sample_event(self) -> SampleEvent:
        t = measures.now()
        text = self._sample()
        self.budget.sample_s = measures.now() - t  # its share of a step, for the time left
        with self._lock:  # kept in the checkpoint: Open Model shows them again
            self._samples = [*self._samples[-(MAX_SAMPLES - 1) :], (self._step, text)]
        tc = self._tc
        return SampleEvent(
            step=self._step, text=text, temperature=tc.sample_temperature, val_loss=self._last_val
        )

    # ------------------------------------------------------------------ self-healing

    def _keep(self, dropout_rng_state: dict, detector: DetectorState) -> None:
        """Copy the current state (with the dropout stream as it was before this step's forward
        pass) as the one to return to after a blow-up. Reuses the previous copy's arrays."""
        old = self.healer.kept
        eng = self._engine  # the copies stay on the engine's device
        copy = eng.copy_into
        with self._lock:
            self.healer.kept = Kept(
                step=self._step,
                params=copy(self.params, old.params if old else None),
                adam_m=copy(self._adam.m, old.adam_m if old else None),
                adam_v=copy(self._adam.v, old.adam_v if old else None),
                h=eng.copy(self._h),
                c=eng.copy(self._c),
                rng={"dropout": dropout_rng_state, "sample": self._sample_rng.bit_generator.state},
                stream=(self._epoch, self._batch),
                history_len={k: len(v) for k, v in self._history.items()},
                best=self._best,
                last_val=self._last_val,
                detector=detector,
            )

    def _restore(self, kept: Kept) -> None:
        """Return exactly to ``kept``: weights, Adam state, carried state, random streams, stream
        position, history, samples and the detector. The kept copy stays intact (for a later
        rollback to the same step)."""
        eng = self._engine
        with self._lock:
            eng.copy_into(kept.params, self.params)
            eng.copy_into(kept.adam_m, self._adam.m)
            eng.copy_into(kept.adam_v, self._adam.v)
            self._adam.t = kept.step
            self._step = kept.step
            self._h, self._c = eng.copy(kept.h), eng.copy(kept.c)
            self._dropout_rng.bit_generator.state = kept.rng["dropout"]
            self._sample_rng.bit_generator.state = kept.rng["sample"]
            self._epoch, self._batch = kept.stream
            for k, n in kept.history_len.items():
                del self._history[k][n:]
            self._samples = [s for s in self._samples if s[0] <= kept.step]
            self._best, self._last_val = kept.best, kept.last_val
        self.healer.rewind(kept)

    def _diverged(self, why: str, lr: float, loss: float | None) -> Generator[Event, None, None]:
        """Training blew up at the step after ``self._step`` (using learning rate ``lr``, with
        loss ``loss``): back to the kept state, then the healer continues at a lower rate (a
        ``RollbackEvent``) or stops (``TrainingDiverged``, the last good weights in place)."""
        kept = self.healer.kept
        assert kept is not None
        from_step = self._step + 1
        self._restore(kept)
        with self._lock:  # the multiplier and the rollbacks go into snapshots
            event = self.healer.heal(why, lr, loss, from_step=from_step, total=self._total)
        yield from self._emit(event)

    def _device_lost(self, e: DeviceLostError) -> DeviceLostError:
        """The GPU failed during a step: save the last good weights (those before the step) if
        the device still hands them over; else the last autosave on disk is what is kept."""
        if self.checkpoint_path:
            try:
                path = self.save(self.checkpoint_path)
            except Exception:
                return DeviceLostError(f"{e} The last autosave in {self.checkpoint_path} is kept.")
            return DeviceLostError(
                f"{e} The last good weights (step {self._step:,}) are saved in {path}.",
                saved_step=self._step,
            )
        return e

    def _emit(self, event: Event) -> Generator[Event, None, None]:
        """Yield ``event``; the time until the caller asks for the next one (showing it, or a
        pause) is not training time, so it counts neither in elapsed time, chars/s nor minutes."""
        t = measures.now()
        yield event
        self.budget.exclude(measures.now() - t)

    def _eval_event(self) -> EvalEvent:
        t = measures.now()
        val = self._validate()
        self.budget.eval_s = measures.now() - t  # the final one of a --minutes run needs it
        with self._lock:
            self._last_val = val
            self._best = val if self._best is None else min(self._best, val)
            self._history["val_step"].append(self._step)
            self._history["val_loss"].append(val)
        self.budget.tick()
        return EvalEvent(
            step=self._step, val_loss=val, best_val_loss=self._best, elapsed_s=self.elapsed_s
        )
