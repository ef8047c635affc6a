"""The trainer: truncated BPTT over B parallel streams, as a generator of events.

The training text (N ids) is cut into B equal contiguous streams of ``seg = (N - 1) // B``
positions; batch j of an epoch is columns [j*T, (j+1)*T) of every stream, so consecutive batches
continue each stream and the hidden and cell states are carried from one batch to the next
(detached: gradients stop at the batch boundary). After the ``seg // T`` batches of an epoch the
streams start over from zero states. Everything that decides the next step (weights, Adam
moments, RNG states, stream position, carried state, the run's planned length) is part of a
checkpoint, so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections import deque
from collections.abc import Generator

import numpy as np

from .config import ModelConfig, TrainConfig
from .data import Corpus, check_trainable, split_ids
from .errors import ConfigError, CorpusMismatchError, ModelFileError, TrainingDiverged
from .events import CheckpointEvent, EvalEvent, Event, SampleEvent, StepEvent, TrainSummary
from .memory import keep_freed_memory
from .model import Prepared, init_params, loss_and_grads, zero_state
from .modelfile import MAX_SAMPLES, ModelFile, TrainState, save_model
from .optim import Adam, clip_grads, global_norm, learning_rate
from .sample import generate, mean_loss

EVAL_STREAMS = 32  # validation runs this many streams side by side (fewer for short texts)


def _remap(corpus: Corpus, vocab) -> np.ndarray:
    """The corpus's ids expressed in another vocabulary (continuing a model on a text)."""
    if corpus.vocab.chars == vocab.chars:
        return corpus.ids
    index = {ch: i for i, ch in enumerate(vocab.chars)}
    missing = [ch for ch in corpus.vocab.chars if ch not in index]
    if missing:
        shown = ", ".join(repr(c) for c in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise CorpusMismatchError(
            f"The text '{corpus.name}' contains {len(missing)} character(s) the model cannot "
            f"represent: {shown}{more}. Continue on a text that uses only the model's characters, "
            "or train a new model on this text."
        )
    lut = np.array([index[ch] for ch in corpus.vocab.chars], dtype=vocab.dtype)
    return lut[corpus.ids]


class Trainer:
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
    ) -> None:
        tc = train_config.validate()
        if resume is not None:
            model_config = resume.config
            vocab = resume.vocab
        else:
            vocab = corpus.vocab
            model_config = dataclasses.replace(model_config, vocab_size=vocab.size)
        model_config.validate()
        check_trainable(corpus, tc.batch_size, tc.seq_len, tc.val_fraction)
        ids = _remap(corpus, vocab)
        self._train_ids, val_ids = split_ids(ids, tc.val_fraction, tc.val_split)
        self._val_ids = val_ids[: tc.eval_max_chars]
        self._corpus = corpus
        self._mc, self._tc, self._vocab = model_config, tc, vocab
        self.checkpoint_path = checkpoint_path
        B, T = tc.batch_size, tc.seq_len
        self._seg = (len(self._train_ids) - 1) // B
        self._batches_per_epoch = self._seg // T
        if self._batches_per_epoch < 1:
            raise ConfigError("The training text is too short for this batch size and length.")
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards weights and state against snapshot() mid-update

        keep_freed_memory()  # each step reuses the last one's memory (see core.memory)
        seeds = np.random.SeedSequence(tc.seed).spawn(3)
        self._dropout_rng = np.random.default_rng(seeds[1])
        self._sample_rng = np.random.default_rng(seeds[2])
        st = resume.train if resume is not None else None
        if resume is None:
            self.params = init_params(model_config, np.random.default_rng(seeds[0]))
        else:
            self.params = {k: v.copy() for k, v in resume.params.items()}
        if st is not None:
            self._adam = Adam(
                self.params,
                m={k: v.copy() for k, v in st.adam_m.items()},
                v={k: v.copy() for k, v in st.adam_v.items()},
                t=st.step,
            )
            self._step = st.step
            self._elapsed_before = st.elapsed_s
            self._best = st.best_val_loss
            self._history = {k: list(np.asarray(v).tolist()) for k, v in st.history.items()}
            self._samples: list[tuple[int, str]] = list(st.samples)
            same_text = st.corpus.get("sha256") == corpus.sha256
            same_shape = st.h.shape == (model_config.num_layers, B, model_config.hidden_size)
            same_batching = (
                st.config.batch_size,
                st.config.seq_len,
                st.config.val_fraction,
                st.config.val_split,
            ) == (B, T, tc.val_fraction, tc.val_split)
            if same_text and same_shape and same_batching and tc.seed == st.config.seed:
                # exact continuation: the same streams, carried state and random streams
                self._dropout_rng.bit_generator.state = st.rng["dropout"]
                self._sample_rng.bit_generator.state = st.rng["sample"]
                self._epoch = int(st.stream.get("epoch", -1))
                self._batch = int(st.stream.get("batch", -1))
                if self._epoch < 0 or not 0 <= self._batch < self._batches_per_epoch:
                    raise ModelFileError(
                        f"The checkpoint's stream position (epoch {self._epoch}, batch "
                        f"{self._batch}) does not fit this text's {self._batches_per_epoch:,} "
                        "batches per epoch: the file is damaged. Use an intact copy."
                    )
                self._h, self._c = st.h.copy(), st.c.copy()
            else:  # a new text or new batching: streams start over
                self._epoch, self._batch = 0, 0
                self._h, self._c = zero_state(model_config, B)
            self._prev_total = st.total_steps
        else:
            self._adam = Adam(self.params)
            self._step = 0
            self._elapsed_before = 0.0
            self._best = None
            self._history = {"train_step": [], "train_loss": [], "val_step": [], "val_loss": []}
            self._samples = []
            self._epoch, self._batch = 0, 0
            self._h, self._c = zero_state(model_config, B)
            self._prev_total = 0
        self._total = self._planned_total(None)
        self._last_val: float | None = (
            self._history["val_loss"][-1] if self._history["val_loss"] else None
        )
        self._session_start = time.perf_counter()
        self._session_elapsed = 0.0

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

    def snapshot(self) -> ModelFile:
        """A deep copy of the model and its full training state. Safe from any thread."""
        with self._lock:
            state = TrainState(
                config=self._tc,
                step=self._step,
                total_steps=self._total,
                elapsed_s=self.elapsed_s,
                adam_m={k: v.copy() for k, v in self._adam.m.items()},
                adam_v={k: v.copy() for k, v in self._adam.v.items()},
                h=self._h.copy(),
                c=self._c.copy(),
                rng={
                    "dropout": self._dropout_rng.bit_generator.state,
                    "sample": self._sample_rng.bit_generator.state,
                },
                stream={"epoch": self._epoch, "batch": self._batch},
                history={
                    "train_step": np.array(self._history["train_step"], np.int64),
                    "train_loss": np.array(self._history["train_loss"], np.float64),
                    "val_step": np.array(self._history["val_step"], np.int64),
                    "val_loss": np.array(self._history["val_loss"], np.float64),
                },
                corpus=self._corpus.fingerprint,
                best_val_loss=self._best,
                samples=tuple(self._samples),
            )
            params = {k: v.copy() for k, v in self.params.items()}
        return ModelFile(config=self._mc, params=params, vocab=self._vocab, train=state)

    def save(self, path: str) -> str:
        """Write a checkpoint of ``snapshot()`` atomically; returns the absolute path."""
        return save_model(path, self.snapshot())

    # ------------------------------------------------------------------ the run

    def _planned_total(self, session_step_s: float | None) -> int:
        """Planned total optimizer steps for the model's life at the end of this run.

        A ``minutes`` run estimates it from the measured time per step (evaluations included).
        Before its first step there is no time yet: it then plans past the warm-up, so that its
        first step is the warm-up's first, as in a run of known length (the learning-rate
        schedule fits its warm-up inside the planned total).
        """
        tc = self._tc
        if tc.steps is not None:
            return tc.steps
        if tc.epochs is not None:
            return max(1, math.ceil(tc.epochs * self._batches_per_epoch))
        if session_step_s is None or session_step_s <= 0:
            return max(self._step + tc.warmup_steps + 1, self._prev_total)
        remaining = tc.minutes * 60.0 - self._session_elapsed
        return self._step + max(1, int(remaining / session_step_s))

    def _epoch_float(self) -> float:
        return self._epoch + self._batch / self._batches_per_epoch

    def _next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        B, T, seg = self._tc.batch_size, self._tc.seq_len, self._seg
        starts = np.arange(B) * seg + self._batch * T
        cols = starts[:, None] + np.arange(T + 1)[None, :]
        window = self._train_ids[cols].astype(np.int64)  # (B, T+1)
        return window[:, :-1], window[:, 1:]

    def _advance_stream(self) -> None:
        self._batch += 1
        if self._batch >= self._batches_per_epoch:
            self._batch = 0
            self._epoch += 1
            self._h[...] = 0
            self._c[...] = 0

    def _validate(self) -> float:
        prep = Prepared(self.params, self._mc)
        ids = self._val_ids
        streams = max(1, min(EVAL_STREAMS, (len(ids) - 1) // self._tc.seq_len))
        return mean_loss(prep, self._mc, ids, streams=streams, seq_len=self._tc.seq_len)

    def _sample(self) -> str:
        seed = int(self._sample_rng.integers(2**63))
        snap = ModelFile(config=self._mc, params=self.params, vocab=self._vocab)
        return "".join(
            generate(
                snap,
                length=self._tc.sample_length,
                temperature=self._tc.sample_temperature,
                seed=seed,
            )
        )

    def _done(self) -> bool:
        tc = self._tc
        if tc.minutes is not None and self._session_elapsed >= tc.minutes * 60.0:
            return True
        return self._step >= self._total

    def run(self) -> Generator[Event, None, TrainSummary]:
        """Train, yielding events; returns a ``TrainSummary``.

        Yields a ``StepEvent`` after every optimizer step, an ``EvalEvent`` every ``eval_every``
        steps and at the end, a ``SampleEvent`` every ``sample_every`` steps and a
        ``CheckpointEvent`` after each autosave. Raises ``TrainingDiverged`` if the loss or the
        gradient becomes non-finite; the weights then stay those of the last good step.
        """
        tc, mc = self._tc, self._mc
        B, T = tc.batch_size, tc.seq_len
        self._stop.clear()
        self._session_start = time.perf_counter() - self._session_elapsed
        steps_this_session = 0
        recent: deque[float] = deque(maxlen=20)  # durations of recent steps, for chars/s
        last_eval_step = self._history["val_step"][-1] if self._history["val_step"] else -1
        checkpoint: str | None = None
        reason = "completed"
        while not self._done():
            if self._stop.is_set():
                reason = "stopped"
                break
            t_step = time.perf_counter()
            x, y = self._next_batch()
            lr = learning_rate(tc, self._step, self._total)
            loss, grads, new_state = loss_and_grads(
                self.params, mc, x, y, (self._h, self._c), self._dropout_rng
            )
            norm = global_norm(grads)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                what = "loss" if not math.isfinite(loss) else "gradient"
                raise TrainingDiverged(
                    f"Training diverged at step {self._step + 1}: the {what} became infinite or "
                    "NaN. The model keeps the weights of the last good step. Lower the learning "
                    "rate or the gradient clip and continue.",
                    step=self._step + 1,
                )
            clip_grads(grads, tc.clip, norm)
            with self._lock:
                self._adam.update(self.params, grads, lr)
                self._h, self._c = new_state
                self._step += 1
                self._advance_stream()
                self._history["train_step"].append(self._step)
                self._history["train_loss"].append(loss)
            steps_this_session += 1
            self._session_elapsed = time.perf_counter() - self._session_start
            # throughput of the training steps alone (evaluations and samples excluded)
            recent.append(time.perf_counter() - t_step)
            cps = len(recent) * B * T / max(sum(recent), 1e-9)
            if tc.minutes is not None and (steps_this_session <= 20 or self._step % 50 == 0):
                self._total = self._planned_total(self._session_elapsed / steps_this_session)
            if tc.minutes is not None and self._session_elapsed >= tc.minutes * 60.0:
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
                    chars_per_sec=cps,
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
            ):
                checkpoint = self.save(self.checkpoint_path)
                yield from self._emit(CheckpointEvent(step=self._step, path=checkpoint))
        # A completed run ends with a validation loss; a stopped one saves at once (a full
        # validation pass can take a while on big texts, and the user asked to stop).
        if reason == "completed" and self._step != last_eval_step and len(self._val_ids) > 1:
            yield from self._emit(self._eval_event())
        if self.checkpoint_path and steps_this_session > 0:
            checkpoint = self.save(self.checkpoint_path)
            yield from self._emit(CheckpointEvent(step=self._step, path=checkpoint))
        return TrainSummary(
            steps=self._step,
            reason=reason,
            best_val_loss=self._best,
            elapsed_s=self.elapsed_s,
            checkpoint_path=checkpoint,
        )

    def _emit(self, event: Event) -> Generator[Event, None, None]:
        """Yield ``event``; the time until the caller asks for the next one (showing it, or a
        pause) is not training time, so it counts neither in elapsed time, chars/s nor minutes."""
        t = time.perf_counter()
        yield event
        self._session_start += time.perf_counter() - t

    def _eval_event(self) -> EvalEvent:
        val = self._validate()
        with self._lock:
            self._last_val = val
            self._best = val if self._best is None else min(self._best, val)
            self._history["val_step"].append(self._step)
            self._history["val_loss"].append(val)
        self._session_elapsed = time.perf_counter() - self._session_start
        return EvalEvent(
            step=self._step, val_loss=val, best_val_loss=self._best, elapsed_s=self.elapsed_s
        )
