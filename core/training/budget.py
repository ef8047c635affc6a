"""The planned length of a training session, when a ``--minutes`` run must end, and the run's
figures on the way (charlstm_core.training.measures: its duration, chars/s and time left).

A run lasts ``steps`` total optimizer steps, ``epochs`` total passes over the text, or
``minutes`` of the run's duration in this session. A ``minutes`` run re-plans its total from the
measured time per step, and ends when another step would not finish, with the final validation
and save, inside the budget. The final validation's cost is measured before the first step on a
slice of the validation text (``Budget.eval_char_s``) until a whole one has been timed; a save's
is estimated (``SAVE_BYTES_PER_S``) until one has been timed. The planned total feeds the
learning-rate schedule, so it is part of a checkpoint.

The clock is the run's ``RunClock``: the time a caller holds on to an event (showing it, or a
pause) is taken off it (``Budget.exclude``), so it counts neither in the duration, chars/s nor
minutes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import measures
from .policy import steps_for_epochs  # the app and the CLI plan a resume with it too

if TYPE_CHECKING:
    from ..config import TrainConfig
    from .checkpoint import Checkpointer

# Until validation has been timed at all, a validated character is taken to cost this share of a
# trained one (a forward pass only, about a third of a training step's work per character; half
# is taken to be safe). A save writes weights and Adam moments (three times the weights) at this
# rate (measured 250 MB/s for a 40 MB checkpoint; see charlstm_core.files.modelfile.save_model),
# halved again for slower disks.
EVAL_SHARE_OF_TRAINING = 0.5
SAVE_BYTES_PER_S = 100e6
RECENT_STEPS = 20  # the time per step is a mean over this many recent steps


class Budget:
    """The run's planned total and the ``--minutes`` deadline, on the run's clock; and the
    run's figures (duration, chars/s, time left) as every view shows them.

    Keeps the clock, the recent step times and the measured costs of a validation pass and a
    sample; the checkpointer says what a save costs."""

    def __init__(
        self,
        tc: TrainConfig,
        batches_per_epoch: int,
        *,
        prev_total: int,
        elapsed_before: float,
        val_chars: int,
        checkpointer: Checkpointer,
        state_bytes: Callable[[], int],
    ) -> None:
        self.tc = tc
        self.batches_per_epoch = batches_per_epoch
        self.prev_total = prev_total  # the planned total of the checkpoint continued (0: new)
        self.elapsed_before = elapsed_before  # training seconds of the model's earlier runs
        self.val_chars = val_chars
        self.checkpointer = checkpointer
        self.state_bytes = state_bytes  # bytes a save writes (weights and Adam moments)
        self.clock = measures.RunClock()
        self.session_steps = 0  # optimizer steps made in this run (rolled back ones too)
        self.chars = 0  # characters trained in this run (B x T a step, rolled back ones too)
        self.step_s = 0.0  # mean duration of the recent training steps
        self.cps = 0.0  # training characters per second of the recent steps alone
        self.eval_s: float | None = None  # measured duration of one whole validation pass
        self.eval_char_s: float | None = None  # measured cost of one validated character
        self.sample_s: float | None = None  # measured duration of one training sample
        self._recent: deque[float] = deque(maxlen=RECENT_STEPS)

    # ------------------------------------------------------------------ the clock

    @property
    def duration_s(self) -> float:
        """The run's duration so far (charlstm_core.training.measures)."""
        return self.clock.duration_s

    @property
    def elapsed_s(self) -> float:
        """Training seconds in the model's life: earlier runs and this one."""
        return self.elapsed_before + self.clock.duration_s

    @property
    def chars_per_sec(self) -> float | None:
        """The run's chars/s so far (charlstm_core.training.measures)."""
        return measures.chars_per_sec(self.chars, self.clock.duration_s)

    def begin(self) -> None:
        """A run starts (or starts again): its clock goes on from its duration so far."""
        self.clock.start()
        self.session_steps = 0
        self._recent.clear()

    def tick(self) -> None:
        """Bring the duration up to now."""
        self.clock.tick()

    def exclude(self, seconds: float) -> None:
        """Take ``seconds`` spent outside training (in the caller) off the clock."""
        self.clock.exclude(seconds)

    def step_done(self, seconds: float, chars: int) -> None:
        """One optimizer step of ``chars`` characters took ``seconds``."""
        self.session_steps += 1
        self.chars += chars
        self.clock.tick()
        self._recent.append(seconds)
        self.step_s = sum(self._recent) / len(self._recent)
        self.cps = chars / max(self.step_s, 1e-9)

    # ------------------------------------------------------------------ the plan

    def planned_total(self, step: int, session_step_s: float | None = None) -> int:
        """Planned total optimizer steps for the model's life at the end of this run, the model
        being at ``step`` now.

        A ``minutes`` run estimates it from the measured time per step (evaluations included).
        Before its first step there is no time yet: it then plans past the warm-up, so that its
        first step is the warm-up's first, as in a run of known length (the learning-rate
        schedule fits its warm-up inside the planned total).
        """
        tc = self.tc
        if tc.steps is not None:
            return tc.steps
        if tc.epochs is not None:
            return steps_for_epochs(tc.epochs, self.batches_per_epoch)
        if session_step_s is None or session_step_s <= 0:
            return max(step + tc.warmup_steps + 1, self.prev_total)
        remaining = tc.minutes * 60.0 - self.duration_s - self.finish_reserve_s()
        return step + max(1, int(remaining / session_step_s))

    def replan(self, step: int, total: int) -> int:
        """The planned total after the step that brought the model to ``step``: a ``minutes``
        run re-estimates it (often at first, then every 50 steps), and ends it at ``step`` when
        the time is up."""
        if self.tc.minutes is not None and (self.session_steps <= 20 or step % 50 == 0):
            total = self.planned_total(step, self.duration_s / self.session_steps)
        if self.time_is_up():
            total = step  # the time is up: this step ends the planned run
        return total

    def _eval_cost_s(self) -> float:
        """What one whole validation pass costs: measured, or from the slice timed before the
        first step, or (neither) from the training speed."""
        if self.eval_s is not None:
            return self.eval_s
        if self.eval_char_s is not None:
            return self.eval_char_s * self.val_chars
        return EVAL_SHARE_OF_TRAINING * self.val_chars / max(self.cps, 1e-9)

    def _save_cost_s(self) -> float:
        if self.checkpointer.save_s is not None:
            return self.checkpointer.save_s
        return self.state_bytes() / SAVE_BYTES_PER_S

    def finish_reserve_s(self) -> float:
        """Seconds the run's end takes after its last step: the final validation and save."""
        reserve = 0.0
        if self.val_chars > 1:
            reserve += self._eval_cost_s()
        if self.checkpointer.path:
            reserve += self._save_cost_s()
        return reserve

    def eta_s(self, step: int, total: int) -> float | None:
        """The run's time left after the step event of ``step`` (of ``total``), its final
        validation and save included (charlstm_core.training.measures.eta_seconds)."""
        tc, ck = self.tc, self.checkpointer
        minutes = tc.minutes
        if minutes is not None:
            return measures.eta_seconds(
                work_s=None,
                finish_s=self.finish_reserve_s(),
                budget_left_s=minutes * 60.0 - self.duration_s,
                last_step=step >= total,
            )
        if not self._recent:
            return None
        validates = self.val_chars > 1
        work = (total - step) * self.step_s
        evals = measures.due(step, total, tc.eval_every) if validates else 0
        if validates and (not tc.eval_every or total % tc.eval_every):
            evals += 1  # the final validation (none when the last periodic one is at the end)
        work += evals * self._eval_cost_s() if evals else 0.0
        if self.sample_s is not None:  # unknown until the first sample: not counted before
            work += measures.due(step, total, tc.sample_every) * self.sample_s
        if ck.path:  # the autosaves before the last step, then the final save
            work += (measures.due(step, total - 1, ck.every) + 1) * self._save_cost_s()
        return measures.eta_seconds(work_s=work, finish_s=0.0)

    def total_is_estimate(self, step: int, total: int) -> bool:
        """Whether ``total`` is still an estimate: a time budget's, until its last step."""
        return self.tc.minutes is not None and step < total

    def time_is_up(self) -> bool:
        """A --minutes run ends when another step would not finish, with the final validation
        and save, inside the budget; every session makes at least one step."""
        tc = self.tc
        if tc.minutes is None or self.session_steps == 0:
            return False
        self.clock.tick()
        spent = self.duration_s + self.finish_reserve_s() + self.step_s
        return spent >= tc.minutes * 60.0
