"""A trainer's checkpoint: what it holds (``CheckpointMixin.snapshot``) and which of it a run
that continues the checkpoint carries over.

A run that continues a checkpoint on the same text, with the same batching, state shape and seed
is an *exact continuation*: it takes the checkpoint's stream position, carried (h, c) and random
streams, so it is bit-identical to a run that never stopped. Anything else (another text, batch
size, sequence length, validation split or seed) keeps the weights, Adam moments and history but
starts the streams over from zero states. The learning-rate multiplier left by rollbacks
(charlstm_core.training.heal) carries over unless a new learning rate was chosen.

The history is kept as lists while training (appended every step) and stored as arrays.

``CheckpointMixin`` is part of ``charlstm_core.training.trainer.Trainer`` and reads its fields
under its
lock.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..errors import ModelFileError
from ..files.modelfile import ModelFile, TrainState
from .policy import same_text

# the per-step and per-evaluation series of a model's life, and their dtypes in a checkpoint
HISTORY_DTYPES = {
    "train_step": np.int64,
    "train_loss": np.float64,
    "val_step": np.int64,
    "val_loss": np.float64,
    "grad_norm": np.float64,
}


def new_history() -> dict[str, list]:
    """The empty history of a fresh model."""
    return {k: [] for k in HISTORY_DTYPES}


def history_lists(st: TrainState) -> dict[str, list]:
    """A checkpoint's history as lists to append to; files older than per-step gradient norms
    get NaN ("unknown") for each step."""
    history = {k: list(np.asarray(v).tolist()) for k, v in st.history.items()}
    n_steps = len(history["train_step"])
    if len(history.get("grad_norm", ())) != n_steps:
        history["grad_norm"] = [math.nan] * n_steps
    return history


def history_arrays(history: dict[str, list]) -> dict[str, np.ndarray]:
    """The history as a checkpoint stores it (new arrays)."""
    return {k: np.array(history[k], dt) for k, dt in HISTORY_DTYPES.items()}


def is_exact_continuation(
    st: TrainState, corpus_sha256: str, model_config: ModelConfig, tc: TrainConfig
) -> bool:
    """Whether a run with ``tc`` on the text ``corpus_sha256`` continues ``st``'s streams."""
    text = same_text(st.corpus, corpus_sha256)
    same_shape = st.h.shape == (model_config.num_layers, tc.batch_size, model_config.hidden_size)
    same_batching = (
        st.config.batch_size,
        st.config.seq_len,
        st.config.val_fraction,
        st.config.val_split,
    ) == (tc.batch_size, tc.seq_len, tc.val_fraction, tc.val_split)
    return text and same_shape and same_batching and tc.seed == st.config.seed


def stream_position(st: TrainState, batches_per_epoch: int) -> tuple[int, int]:
    """(epoch, batch) of an exact continuation; ModelFileError when it cannot be this text's."""
    epoch = int(st.stream.get("epoch", -1))
    batch = int(st.stream.get("batch", -1))
    if epoch < 0 or not 0 <= batch < batches_per_epoch:
        raise ModelFileError(
            f"The checkpoint's stream position (epoch {epoch}, batch {batch}) does not fit this "
            f"text's {batches_per_epoch:,} batches per epoch: the file is damaged. Use an intact "
            "copy."
        )
    return epoch, batch


def resumed_lr_scale(st: TrainState, tc: TrainConfig) -> float:
    """The rollbacks' learning-rate multiplier, unless a new learning rate was chosen for the
    continuation (that one is taken as it is)."""
    return st.lr_scale if tc.lr == st.config.lr else 1.0


class CheckpointMixin:
    """The trainer's whole state as a model file (see the module docstring)."""

    def snapshot(self) -> ModelFile:
        """A deep copy of the model and its full training state (NumPy arrays, whatever the
        device). Safe from any thread."""
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
                lr_scale=self._lr_scale,
                rollbacks=tuple(self._rollbacks),
            )
            params = {k: host(v).copy() for k, v in self.params.items()}
        return ModelFile(config=self._mc, params=params, vocab=self._vocab, train=state)
