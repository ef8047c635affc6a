"""The planned length of a training session, and when a ``--minutes`` run must end.

A run lasts ``steps`` total optimizer steps, ``epochs`` total passes over the text, or
``minutes`` of wall-clock time in this session. A ``minutes`` run re-plans its total from the
measured time per step, and ends when another step would not finish, with the final
validation and save, inside the budget; until those two have been measured in this session
they are estimated (``EVAL_SHARE_OF_TRAINING``, ``SAVE_BYTES_PER_S``). The planned total feeds
the learning-rate schedule, so it is part of a checkpoint.

Only training counts: the time a caller holds on to an event (showing it, or a pause) is taken
off the session's clock (``Budget.exclude``), so it counts neither in elapsed time, chars/s nor
minutes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .policy import steps_for_epochs  # the app and the CLI plan a resume with it too

if TYPE_CHECKING:
    from ..config import TrainConfig
    from .checkpoint import Checkpointer

# A --minutes budget includes the final evaluation and save. Until one has been measured in this
# session they are estimated: validation reads a character with a forward pass only, about a
# third of a training step's work per character (forward + backward); half is taken to be safe.
# A save writes weights and Adam moments (three times the weights) at this rate (measured 250 MB/s
# for a 40 MB checkpoint; see charlstm_core.files.modelfile.save_model), halved again for slower
# disks.
EVAL_SHARE_OF_TRAINING = 0.5
SAVE_BYTES_PER_S = 100e6
RECENT_STEPS = 20  # chars/s and the time per step are means over this many recent steps


class Budget:
    """The run's planned total and the ``--minutes`` deadline, on this session's training clock.

    Keeps the clock, the recent step times and the measured cost of a validation pass; the
    checkpointer says what the final save costs."""

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
        self.elapsed_before = elapsed_before  # training seconds of the model's earlier sessions
        self.val_chars = val_chars
        self.checkpointer = checkpointer
        self.state_bytes = state_bytes  # bytes a save writes (weights and Adam moments)
        self.session_elapsed = 0.0  # training seconds of this session so far
        self.session_steps = 0  # optimizer steps made in this session (rolled back ones too)
        self.step_s = 0.0  # mean duration of the recent training steps
        self.cps = 0.0  # training characters per second over the recent steps
        self.eval_s: float | None = None  # measured duration of one validation pass
        self._start = time.perf_counter()
        self._recent: deque[float] = deque(maxlen=RECENT_STEPS)

    # ------------------------------------------------------------------ the clock

    @property
    def elapsed_s(self) -> float:
        """Training seconds in the model's life: earlier sessions and this one."""
        return self.elapsed_before + self.session_elapsed

    def begin(self) -> None:
        """A run starts (or starts again): its clock goes on from this session's time so far."""
        self._start = time.perf_counter() - self.session_elapsed
        self.session_steps = 0
        self._recent.clear()

    def tick(self) -> None:
        """Bring ``session_elapsed`` up to now."""
        self.session_elapsed = time.perf_counter() - self._start

    def exclude(self, seconds: float) -> None:
        """Take ``seconds`` spent outside training (in the caller) off the clock."""
        self._start += seconds

    def step_done(self, seconds: float, chars: int) -> None:
        """One optimizer step of ``chars`` characters took ``seconds``."""
        self.session_steps += 1
        self.tick()
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
        remaining = tc.minutes * 60.0 - self.session_elapsed - self.finish_reserve_s()
        return step + max(1, int(remaining / session_step_s))

    def replan(self, step: int, total: int) -> int:
        """The planned total after the step that brought the model to ``step``: a ``minutes``
        run re-estimates it (often at first, then every 50 steps), and ends it at ``step`` when
        the time is up."""
        if self.tc.minutes is not None and (self.session_steps <= 20 or step % 50 == 0):
            total = self.planned_total(step, self.session_elapsed / self.session_steps)
        if self.time_is_up():
            total = step  # the time is up: this step ends the planned run
        return total

    def finish_reserve_s(self) -> float:
        """Seconds a --minutes run keeps for its final validation and save (see the constants)."""
        reserve = 0.0
        if self.val_chars > 1:
            if self.eval_s is not None:
                reserve += self.eval_s
            else:
                reserve += EVAL_SHARE_OF_TRAINING * self.val_chars / max(self.cps, 1e-9)
        if self.checkpointer.path:
            if self.checkpointer.save_s is not None:
                reserve += self.checkpointer.save_s
            else:
                reserve += self.state_bytes() / SAVE_BYTES_PER_S
        return reserve

    def time_is_up(self) -> bool:
        """A --minutes run ends when another step would not finish, with the final validation
        and save, inside the budget; every session makes at least one step."""
        tc = self.tc
        if tc.minutes is None or self.session_steps == 0:
            return False
        self.tick()
        spent = self.session_elapsed + self.finish_reserve_s() + self.step_s
        return spent >= tc.minutes * 60.0
