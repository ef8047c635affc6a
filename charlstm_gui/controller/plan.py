"""What the settings mean for a run, for the controller (``Plan``): whether a run can start on
the loaded text, what continuing a model trains, and how long the running run has left, by the
rules the command line uses too (``charlstm_core.files.text.check_trainable``,
``charlstm_core.training.policy.plan_resume``; the time left is the trainer's,
charlstm_core.training.measures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import CharLSTMError
from charlstm_core.events import StepEvent

from .tasks import Feedback


class Plan:
    """Trainability, continuing and the ETA, for the loaded text read through the getter it is
    given (the controller owns it); the ETA is the running run's own (its step events')."""

    def __init__(self, corpus: Callable[[], Any], feedback: Feedback) -> None:
        self._corpus, self.feedback = corpus, feedback

    def resume(
        self, model: Any, train_config: TrainConfig
    ) -> tuple[ModelConfig, TrainConfig] | None:
        """The configs of a run continuing ``model`` (a checkpoint) with the form's
        ``train_config``, as the command line's ``--resume`` plans it; None (said why) when
        there is nothing to continue or nothing left to train."""
        from charlstm_core.training.policy import plan_resume

        if model is None or model.train is None:
            self.feedback.message(
                "Nothing to continue", "Open a checkpoint or train a model before continuing it."
            )
            return None
        st = model.train
        try:
            plan = plan_resume(st.step, st.total_steps, train_config, self._corpus().n_chars)
        except CharLSTMError as exc:
            self.feedback.message("Check the settings", str(exc))
            return None
        if plan.nothing_left:  # “Train for” steps or epochs is the model's total
            planned = f"{plan.target:,} steps"
            if train_config.epochs is not None:
                planned = f"{train_config.epochs:g} epochs ({planned})"
            self.feedback.message(
                "Nothing left to train",
                f"This model has already trained {st.step:,} steps and the run is set to "
                f"{planned} in total. Raise “Train for” above {st.step:,} "
                "steps (or train for some minutes) to continue it.",
            )
            return None
        return model.config, plan.config

    def eta_seconds(self, ev: StepEvent) -> float | None:
        """Seconds the running run has left after step event ``ev``, its final validation and
        save included (None when unknown): the trainer's figure, which the command line's
        progress line shows too (charlstm_core.training.measures)."""
        return ev.eta_s

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
