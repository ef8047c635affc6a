"""What the settings mean for a run, for the controller (``PlanMixin``, a part of
``Controller``): whether a run can start on the loaded text, and how long the running one has
left, by the rules the command line uses too (``charlstm_core.files.text.check_trainable``;
the time left is the trainer's, charlstm_core.training.measures).
"""

from __future__ import annotations

from typing import Any

from charlstm_core.config import TrainConfig
from charlstm_core.errors import CharLSTMError
from charlstm_core.events import StepEvent


class PlanMixin:
    """Trainability and the ETA (a part of ``Controller``)."""

    corpus: Any
    train_config: TrainConfig | None

    def eta_seconds(self, ev: StepEvent) -> float | None:
        """Seconds the running run has left after step event ``ev``, its final validation and
        save included (None when unknown): the trainer's figure, which the command line's
        progress line shows too (charlstm_core.training.measures)."""
        return ev.eta_s

    def trainable_problem(self, train_config: TrainConfig) -> str:
        """Why a run of ``train_config`` cannot start on the loaded text ("" when it can):
        no text, or a text too short for one batch of training and one of validation."""
        from charlstm_core.files import text as data

        if self.corpus is None:
            return "Open a text file (or use the built-in text) first."
        tc = train_config
        try:
            data.check_trainable(self.corpus, tc.batch_size, tc.seq_len, tc.val_fraction)
        except CharLSTMError as exc:
            return str(exc)
        return ""
