"""Run policy shared by the command line and the app: one pure function per rule.

How many batches one pass over a text holds (from its length alone), how many steps a number of
epochs is, whether a text is the one a checkpoint was trained on, and what continuing a
checkpoint means (a run's time left is charlstm_core.training.measures'). Both front ends call
these, so ``charlstm train --resume`` and the app's Continue agree.

What "continue" means (both front ends): **steps and epochs are totals for the model's life**
(the checkpoint's own plan, ``TrainState.total_steps``, is one; so is the trainer's
``TrainConfig.steps``), **minutes are for this session**. Continuing a model at step 1,000 with
"3,000 steps" trains 2,000 more; with no duration given (the CLI) it finishes the planned run.
A total at or below the steps already made leaves nothing to train: ``ResumePlan.nothing_left``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import TrainConfig
from ..files.text import batches_per_epoch, val_blocks


def text_batches_per_epoch(n_chars: int, config: TrainConfig) -> int:
    """Optimizer steps in one pass over the training part of an ``n_chars`` text at ``config``'s
    batch size, window and validation split, without reading the text.

    The training part is what the validation blocks (``charlstm_core.files.text.val_blocks``) leave:
    N_train = N - (characters held out); ``charlstm_core.files.text.batches_per_epoch`` cuts it
    into B
    streams and T-long windows. The trainer gets the same figure from the ids themselves.
    """
    held_out = sum(b - a for a, b in val_blocks(n_chars, config.val_fraction, config.val_split))
    return batches_per_epoch(n_chars - held_out, config.batch_size, config.seq_len)


def steps_for_epochs(epochs: float, batches: int) -> int:
    """Optimizer steps of ``epochs`` passes of ``batches`` batches each (at least 1)."""
    return max(1, math.ceil(epochs * batches))


def same_text(fingerprint: Mapping | None, sha256: str | None) -> bool:
    """Whether a text of digest ``sha256`` is the one a checkpoint's corpus ``fingerprint``
    (``TrainState.corpus``: name, size, sha256, encoding) describes. Unknown is not the same."""
    recorded = (fingerprint or {}).get("sha256")
    return bool(recorded) and recorded == sha256


@dataclass(frozen=True)
class ResumePlan:
    """What continuing a checkpoint will do."""

    config: TrainConfig  # the settings to continue with (exactly one duration set)
    done: int  # steps the model has made
    target: int | None  # the step the run ends at; None for a minutes run (set by the clock)

    @property
    def nothing_left(self) -> bool:
        """The total asked for is already reached: there is nothing to train."""
        return self.target is not None and self.target <= self.done

    @property
    def more(self) -> int | None:
        """Steps this session will make (None for a minutes run)."""
        return None if self.target is None else max(self.target - self.done, 0)


def plan_resume(done: int, planned_total: int, config: TrainConfig, n_chars: int) -> ResumePlan:
    """How far to continue a model at step ``done`` whose run was planned to ``planned_total``,
    on a text of ``n_chars`` characters.

    ``config``'s steps or epochs are totals for the model's life, its minutes are for this
    session; with none of the three set the planned run is finished (``steps=planned_total``).
    The returned config is validated (ConfigError says what is out of range).
    """
    if config.steps is None and config.epochs is None and config.minutes is None:
        config = config.replace(steps=planned_total)
    config = config.validate()
    if config.steps is not None:
        target: int | None = config.steps
    elif config.epochs is not None:
        target = steps_for_epochs(config.epochs, text_batches_per_epoch(n_chars, config))
    else:
        target = None
    return ResumePlan(config=config, done=done, target=target)
