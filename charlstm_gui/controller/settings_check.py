"""The settings check under the Text tab: what a run of the form's settings will cost.

``SettingsCheck`` measures the time of a training step at the run's own shape (vocabulary,
hidden size, layers, batch, window, dropout, device:
``charlstm_core.training.plan.measure_timing``, off the GUI thread, once per shape, with the
thread policy the run will start with and under the load there is: a busy machine is said,
``Timing.load``), and from it and the settings gives the estimate
(``charlstm_core.training.plan.estimate``), the steps the run will make (a time budget's: an
estimate, shown as "about N") and the validation characters that the training part never shows
(cached per text and split). ``poll_load`` reads what other programs do with the cores; when
that changed since the timings were measured they are measured again, so that the estimate is
the one of the load there is when training starts. It has no widgets: the window shows what
``check`` returns and calls ``poll_load`` every ``LOAD_POLL_MS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from charlstm_core.config import TrainConfig
from charlstm_core.errors import CharLSTMError
from charlstm_core.training.load import LoadMeter

LOAD_POLL_MS = 5000  # how often the window asks whether the load changed...
CHANGED_POLLS = 2  # ...and in how many polls in a row it must differ (a brief burst does not)


@dataclass(frozen=True)
class Check:
    """What the form's settings mean on the loaded text."""

    estimate: Any  # charlstm_core.training.plan.Estimate
    train_chars: int  # characters of the training part
    steps: float | None  # steps the run will make (None: not known yet)
    unseen: str  # the validation check's sentence ("" when nothing to say)
    passes: float | None = None  # the run's passes over the training part (epochs), with steps
    steps_estimated: bool = False  # ``steps`` is a time budget's estimate ("about N")


class SettingsCheck:
    """Timings by shape and the unseen-characters sentence, cached; ``on_timing`` is called
    when a measurement arrives (the check is then worth doing again)."""

    def __init__(
        self,
        controller: Any,
        on_timing: Callable[[], None],
        meter: LoadMeter | None = None,
    ) -> None:
        self.ctl = controller
        self.on_timing = on_timing
        # measured step costs by (V, H, L, B, T, dropout, device); None while being measured
        self.timings: dict[tuple, Any] = {}
        self._unseen: tuple[tuple, str] | None = None  # (split key, sentence)
        # the load since the last poll (no program names: only whether it changed)
        self.meter = meter or LoadMeter(programs=lambda: None)
        self.meter.start()
        self._changed = 0  # polls in a row whose load differed from a timing's

    def poll_load(self) -> bool:
        """Read the load since the last poll; when other programs' use of the cores differs
        enough from the one a timing was measured under (MachineLoad.differs) in
        ``CHANGED_POLLS`` polls in a row, drop the timings, to be measured again at the next
        ``check``. Returns whether it did. Not while the app trains (its own training is not
        measured against itself)."""
        if self.ctl.training:  # its own training is not a load to measure against
            self._changed = 0
            return False
        now = self.meter.load(restart=True)
        measured = [t for t in self.timings.values() if t is not None]
        if not any(now.differs(getattr(t, "load", None)) for t in measured):
            self._changed = 0
            return False
        self._changed += 1
        if self._changed < CHANGED_POLLS:
            return False
        self._changed = 0
        self.timings = {k: t for k, t in self.timings.items() if t is None}  # measuring: kept
        return True

    def check(self, v: dict[str, Any], device: str, config: TrainConfig | None) -> Check | None:
        """The check of form values ``v`` on ``device``; ``config`` is the run's training
        settings when ``v`` is valid (None otherwise). None without a text."""
        from charlstm_core.training import plan, policy

        corpus = self.ctl.corpus
        if corpus is None:
            return None
        shape = (
            corpus.vocab.size,
            int(v["hidden_size"]),
            int(v["num_layers"]),
            int(v["batch_size"]),
            int(v["seq_len"]),
            round(float(v["dropout"]), 4),
            device,
        )
        if shape not in self.timings and not self.ctl.training:
            self.timings[shape] = None
            policy = self.ctl.thread_policy()  # the threads and priority the run starts with
            self.ctl.run_task(
                lambda: plan.measure_timing(
                    *shape[:5],
                    dropout=shape[5],
                    policy=policy,
                    device=shape[6],
                    under_load=True,
                ),
                lambda timing: self._measured(shape, timing),
            )
        n_val = int(corpus.n_chars * v["val_fraction"])
        est = plan.estimate(
            *shape[:5],
            self.timings.get(shape),
            eval_every=int(v["eval_every"]),
            val_chars=min(n_val, TrainConfig().eval_max_chars),
            sample_every=int(v["sample_every"]),
            sample_length=int(v["sample_length"]),
        )
        split_key = (corpus.sha256, v["val_fraction"], v["val_split"])
        if self._unseen is None or self._unseen[0] != split_key:
            unseen = plan.unseen_in_validation(
                corpus.ids, corpus.vocab, v["val_fraction"], v["val_split"]
            )
            self._unseen = (split_key, plan.unseen_message(unseen, v["val_split"]))
        train_chars = int(corpus.n_chars * (1 - v["val_fraction"]))
        unit, amount = v["duration_unit"], v["duration"]
        steps: float | None = None
        if unit == "steps":
            steps = amount
        elif unit == "epochs" and config is not None:  # the trainer's own count (policy)
            batches = policy.text_batches_per_epoch(corpus.n_chars, config)
            steps = policy.steps_for_epochs(amount, batches)
        elif unit == "minutes" and est.seconds_per_step:
            steps = amount * 60 / est.seconds_per_step  # an estimate: shown as "about N"
        passes = None
        if steps is not None and train_chars > 0:
            passes = steps * int(v["batch_size"]) * int(v["seq_len"]) / train_chars
        return Check(est, train_chars, steps, self._unseen[1], passes, unit == "minutes")

    def _measured(self, shape: tuple, timing: Any) -> None:
        self.timings[shape] = timing
        self.on_timing()


def form_problem(form: Any, controller: Any) -> tuple[tuple[Any, Any] | None, str]:
    """The form's configs and "" when a run can start on the loaded text with them, else
    (None, what is wrong): a setting out of range, or a text too short for the batch."""
    try:
        configs = form.configs(controller.corpus.vocab.size)
    except CharLSTMError as exc:
        return None, str(exc)
    problem = controller.trainable_problem(configs[1])
    return (configs, "") if not problem else (None, problem)
