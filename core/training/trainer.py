"""The trainer: truncated BPTT over B parallel streams, as a generator of events.

Batches come from ``charlstm_core.files.text.get_batch`` (B contiguous streams; batch j of an epoch
continues each stream); the trainer keeps only the counters (epoch, batch j). The hidden and cell
states are carried from one batch to the next (detached: gradients stop at the batch boundary);
after the ``batches_per_epoch`` batches of an epoch the streams start over from zero states.
Everything that decides the next step (weights, Adam moments, RNG states, stream position, carried
state, the run's planned length) is part of a checkpoint, so a resumed run is bit-identical to an
uninterrupted one.

Self-healing (charlstm_core.training.heal decides, charlstm_core.training.rollback keeps and
restores): the state is
copied in memory at every evaluation, autosave and KEEP_EVERY steps, once the next step's loss has
vouched for it. A blow-up restores that copy exactly and multiplies the schedule by a smaller
``lr_scale``, which checkpoints keep (with the rollback records and per-step gradient norms), so
resuming after a heal stays bit-identical. One case cannot be: a blow-up right after resuming from a
checkpoint that was not itself a keep point (a stop mid-interval) rolls back to the resume point,
where the uninterrupted run had an older copy.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Generator

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
from ..files.modelfile import MAX_SAMPLES, ModelFile, save_model
from ..files.text import Corpus, batches_per_epoch, get_batch, train_val_ids
from ..sample import generate
from .budget import TimeBudgetMixin
from .checkpoint import (
    CheckpointMixin,
    history_lists,
    is_exact_continuation,
    new_history,
    resumed_lr_scale,
    stream_position,
)
from .heal import (
    DivergenceDetector,
    replay,
)
from .rollback import Kept, RollbackMixin

EVAL_STREAMS = 32  # validation runs this many streams side by side (fewer for short texts)


class Trainer(CheckpointMixin, RollbackMixin, TimeBudgetMixin):
    """Trains a model on a corpus; ``run()`` is the generator of events.

    A fresh model is initialised from ``train_config.seed``; ``resume`` continues a checkpoint
    (its architecture and vocabulary win over ``model_config``). The run lasts until
    ``train_config.steps`` total optimizer steps, ``epochs`` total passes over the text, or
    ``minutes`` of wall-clock time in this session — whichever one is set.
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
        self.checkpoint_path = checkpoint_path
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
            self._elapsed_before = st.elapsed_s
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
            self._prev_total = st.total_steps
            self._lr_scale = resumed_lr_scale(st, tc)
            self._rollbacks = list(st.rollbacks)
        else:
            exact = False
            self._lr_scale = 1.0
            self._rollbacks = []
            self._adam = self._engine.adam(self.params)
            self._step = 0
            self._elapsed_before = 0.0
            self._best = None
            self._history = new_history()
            self._samples = []
            self._epoch, self._batch = 0, 0
            self._h, self._c = self._engine.zero_state(B)
            self._prev_total = 0
        self._total = self._planned_total(None)
        self._last_val: float | None = (
            self._history["val_loss"][-1] if self._history["val_loss"] else None
        )
        self._session_start = time.perf_counter()
        self._session_elapsed = 0.0
        # Self-healing (charlstm_core.training.heal): the detector continues an exact
        # continuation's history
        # (the same fold over the same values: bit-identical decisions); a new text starts it
        # afresh.
        log_vocab = math.log(max(model_config.vocab_size, 2))
        if exact:
            h = self._history
            self._detector = replay(log_vocab, h["train_loss"], h["grad_norm"])
        else:
            self._detector = DivergenceDetector(log_vocab)
        self._kept: Kept | None = (
            None  # the state a rollback returns to (charlstm_core.training.rollback)
        )
        self._rollbacks_this_session = 0
        self._eval_s: float | None = None  # measured duration of one validation pass
        self._session_steps = 0  # optimizer steps made in this session (rolled back ones too)
        self._step_s = 0.0  # mean duration of the recent training steps
        self._cps = 0.0  # training characters per second over the recent steps
        self._save_s: float | None = None  # measured duration of one checkpoint save

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
        return self._elapsed_before + self._session_elapsed

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Ask ``run()`` to return after the step in progress. Safe from any thread."""
        self._stop.set()

    @property
    def device_label(self) -> str:
        """Where the passes run: "CPU" or the GPU's name and memory."""
        return self._engine.label

    def save(self, path: str) -> str:
        """Write a checkpoint of ``snapshot()`` atomically; returns the absolute path."""
        t = time.perf_counter()
        out = save_model(path, self.snapshot())
        self._save_s = time.perf_counter() - t  # what the final save of a --minutes run needs
        return out

    @property
    def lr_scale(self) -> float:
        """The learning-rate multiplier left by rollbacks (1.0 before any)."""
        return self._lr_scale

    @property
    def rollbacks(self) -> tuple[RollbackEvent, ...]:
        """The rollbacks of the model's life, oldest first."""
        return tuple(self._rollbacks)

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

    def _validate(self) -> float:
        ids = self._val_ids
        streams = max(1, min(EVAL_STREAMS, (len(ids) - 1) // self._tc.seq_len))
        return self._engine.mean_loss(self.params, ids, streams=streams, seq_len=self._tc.seq_len)

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
        return self._time_is_up() or self._step >= self._total

    def run(self) -> Generator[Event, None, TrainSummary]:
        """Train, yielding events; returns a ``TrainSummary``.

        Yields a ``StepEvent`` after every optimizer step, an ``EvalEvent`` every ``eval_every``
        steps and at the end, a ``SampleEvent`` every ``sample_every`` steps and a
        ``CheckpointEvent`` after each autosave. When training blows up
        (charlstm_core.training.heal) it
        restores the last kept state and, with ``on_divergence="heal"``, yields a ``RollbackEvent``
        and continues at a lower learning rate; with ``"stop"``, or after too many rollbacks, it
        raises ``TrainingDiverged`` with the weights restored to the last good ones.
        """
        tc = self._tc
        B, T = tc.batch_size, tc.seq_len
        self._stop.clear()
        self._session_start = time.perf_counter() - self._session_elapsed
        self._session_steps = 0
        recent: deque[float] = deque(maxlen=20)  # durations of recent steps, for chars/s
        last_eval_step = self._history["val_step"][-1] if self._history["val_step"] else -1
        checkpoint: str | None = None
        reason = "completed"
        lr = learning_rate(tc, self._step, self._total) * self._lr_scale
        if self._kept is None or self._kept.step != self._step:
            self._keep(self._dropout_rng.bit_generator.state, self._detector.state)
        while True:
            if self._detector.pending and (self._done() or self._stop.is_set()):
                # Never end on a blow-up in progress: its weights are not saved as the result.
                why = "the run ended while the loss was far above its recent level"
                yield from self._diverged(why, lr, None)
                continue
            if self._done():
                break
            if self._stop.is_set():
                reason = "stopped"
                break
            t_step = time.perf_counter()
            rng_before = self._dropout_rng.bit_generator.state
            detector_before = self._detector.state
            x, y = get_batch(self._train_ids, self._batch, B, T)
            lr = learning_rate(tc, self._step, self._total) * self._lr_scale
            try:
                loss, grads, new_state = self._engine.loss_and_grads(
                    self.params, x, y, (self._h, self._c), self._dropout_rng
                )
                norm = self._engine.global_norm(grads)
            except DeviceLostError as e:
                raise self._device_lost(e) from None
            diverged, why = self._detector.observe(loss, norm)
            if diverged:
                yield from self._diverged(why or "training blew up", lr, loss)
                continue
            if why is None and self._is_keep_point(self._step) and self._kept.step != self._step:
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
            self._session_steps += 1
            self._session_elapsed = time.perf_counter() - self._session_start
            # throughput of the training steps alone (evaluations and samples excluded)
            recent.append(time.perf_counter() - t_step)
            self._step_s = sum(recent) / len(recent)
            self._cps = B * T / max(self._step_s, 1e-9)
            if tc.minutes is not None and (self._session_steps <= 20 or self._step % 50 == 0):
                self._total = self._planned_total(self._session_elapsed / self._session_steps)
            if self._time_is_up():
                self._total = self._step  # the time is up: this step ends the planned run
            yield from self._emit(
                StepEvent(
                    step=self._step,
                    total_steps=self._total,
                    epoch=self._epoch_float(),
                    chars_seen=self._step * B * T,
                    loss=loss,
                    lr=lr,
                    grad_norm=norm,
                    chars_per_sec=self._cps,
                    elapsed_s=self.elapsed_s,
                )
            )
            if tc.eval_every and self._step % tc.eval_every == 0 and len(self._val_ids) > 1:
                yield from self._emit(self._eval_event())
                last_eval_step = self._step
            if tc.sample_every and self._step % tc.sample_every == 0:
                text = self._sample()
                with self._lock:  # kept in the checkpoint: Open Model shows them again
                    self._samples = [*self._samples[-(MAX_SAMPLES - 1) :], (self._step, text)]
                yield from self._emit(
                    SampleEvent(
                        step=self._step,
                        text=text,
                        temperature=tc.sample_temperature,
                        val_loss=self._last_val,
                    )
                )
            if (
                self.checkpoint_path
                and tc.checkpoint_every
                and self._step % tc.checkpoint_every == 0
                and not self._done()
                and not self._detector.pending  # never autosave a blow-up in progress
            ):
                checkpoint = self.save(self.checkpoint_path)
                yield from self._emit(CheckpointEvent(step=self._step, path=checkpoint))
        # A completed run ends with a validation loss; a stopped one saves at once (a full
        # validation pass can take a while on big texts, and the user asked to stop).
        if reason == "completed" and self._step != last_eval_step and len(self._val_ids) > 1:
            yield from self._emit(self._eval_event())
        if self.checkpoint_path and self._session_steps > 0:
            checkpoint = self.save(self.checkpoint_path)
            yield from self._emit(CheckpointEvent(step=self._step, path=checkpoint))
        return TrainSummary(
            steps=self._step,
            reason=reason,
            best_val_loss=self._best,
            elapsed_s=self.elapsed_s,
            checkpoint_path=checkpoint,
            rollbacks=self._rollbacks_this_session,
        )

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
        t = time.perf_counter()
        yield event
        self._session_start += time.perf_counter() - t

    def _eval_event(self) -> EvalEvent:
        t = time.perf_counter()
        val = self._validate()
        self._eval_s = time.perf_counter() - t  # what the final one of a --minutes run needs
        with self._lock:
            self._last_val = val
            self._best = val if self._best is None else min(self._best, val)
            self._history["val_step"].append(self._step)
            self._history["val_loss"].append(val)
        self._session_elapsed = time.perf_counter() - self._session_start
        return EvalEvent(
            step=self._step, val_loss=val, best_val_loss=self._best, elapsed_s=self.elapsed_s
        )
