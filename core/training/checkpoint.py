"""A trainer's checkpoint: where and when it is written (``Checkpointer``), and which of it a run
that continues the checkpoint carries over (the trainer's ``snapshot`` is what it holds).

A run that continues a checkpoint on the same text, with the same batching, state shape and seed
is an *exact continuation*: it takes the checkpoint's stream position, carried (h, c) and random
streams, so it is bit-identical to a run that never stopped. Anything else (another text, batch
size, sequence length, validation split or seed) keeps the weights, Adam moments and history but
starts the streams over from zero states. The learning-rate multiplier left by rollbacks
(charlstm_core.training.heal) carries over unless a new learning rate was chosen.

The history is kept as lists while training (appended every step) and stored as arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..errors import ModelFileError
from ..files.modelfile import ModelFile, TrainState, save_model
from . import measures
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


class Checkpointer:
    """Where and how often the trainer saves its checkpoint, and what one save takes.

    ``write(path, model)`` is the save itself (it returns the path written): ``save_model`` unless
    the caller gives its own, as the training session does (it falls back to the autosave folder).
    """

    def __init__(
        self,
        path: str | None,
        every: int,
        write: Callable[[str, ModelFile], str] = save_model,
    ) -> None:
        self.path = path  # None: the trainer never saves by itself
        self.every = every  # steps between autosaves (0: only when a run ends)
        self.write = write
        self.save_s: float | None = None  # measured duration of one save (the final save's cost)

    def due(self, step: int) -> bool:
        """Whether ``step`` is an autosave step."""
        return bool(self.path and self.every and step % self.every == 0)

    def save(self, model: ModelFile, path: str | None = None) -> str:
        """Write ``model`` to ``path`` (default: the checkpoint path); returns the path written."""
        target = path or self.path
        assert target is not None, "no path to save to"
        t = measures.now()
        out = self.write(target, model)
        self.save_s = measures.now() - t  # what the final save of a --minutes run needs
        return out
