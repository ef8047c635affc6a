"""What the settings mean for a run, for the controller (``Plan``): whether a run can start on
the loaded text, and how long the running one has left, by the rules the command line uses too
(``charlstm_core.files.text.check_trainable``, ``charlstm_core.training.policy.eta_seconds``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from charlstm_core.config import TrainConfig
from charlstm_core.errors import CharLSTMError
from charlstm_core.events import StepEvent


class Plan:
    """Trainability and the ETA of the loaded text and the running run's settings, read through
    the two getters it is given (the controller owns both)."""

    def __init__(
        self, corpus: Callable[[], Any], train_config: Callable[[], TrainConfig | None]
    ) -> None:
        self._corpus, self._train_config = corpus, train_config

    def eta_seconds(self, ev: StepEvent) -> float | None:
        """Seconds the running run has left after step event ``ev`` at its recent speed (None
        when unknown), by the rule the command line's progress line uses too."""
        from charlstm_core.training.policy import eta_seconds

        cfg = self._train_config()
        if cfg is None:
            return None
        return eta_seconds(ev.step, ev.total_steps, ev.chars_per_sec, cfg.batch_size * cfg.seq_len)

    def trainable_problem(self, train_config: TrainConfig) -> str:
        """Why a run of ``train_config`` cannot start on the loaded text ("" when it can):
        no text, or a text too short for one batch of training and one of validation."""
        from charlstm_core.files import text as data

        corpus = self._corpus()
        if corpus is None:
            return "Open a text file (or use the built-in text) first."
        tc = train_config
        try:
            data.check_trainable(corpus, tc.batch_size, tc.seq_len, tc.val_fraction)
        except CharLSTMError as exc:
            return str(exc)
        return ""
