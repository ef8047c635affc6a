"""The planned length of a training session, and when a ``--minutes`` run must end.

A run lasts ``steps`` total optimizer steps, ``epochs`` total passes over the text, or
``minutes`` of wall-clock time in this session. A ``minutes`` run re-plans its total from the
measured time per step, and ends when another step would not finish, with the final
validation and save, inside the budget; until those two have been measured in this session
they are estimated (``EVAL_SHARE_OF_TRAINING``, ``SAVE_BYTES_PER_S``). The planned total feeds
the learning-rate schedule, so it is part of a checkpoint.

``TimeBudgetMixin`` is part of ``charlstm_core.training.trainer.Trainer`` and reads its fields:
``_tc``,
``_step``, ``_prev_total``, ``_batches_per_epoch``, ``_session_start``, ``_session_elapsed``,
``_session_steps``, ``_step_s``, ``_cps``, ``_eval_s``, ``_save_s``, ``_val_ids``,
``checkpoint_path``, ``params`` and ``_adam``.
"""

from __future__ import annotations

import time

from .policy import steps_for_epochs  # the app and the CLI plan a resume with it too

# A --minutes budget includes the final evaluation and save. Until one has been measured in this
# session they are estimated: validation reads a character with a forward pass only, about a
# third of a training step's work per character (forward + backward); half is taken to be safe.
# A save writes weights and Adam moments (three times the weights) at this rate (measured 250 MB/s
# for a 40 MB checkpoint; see charlstm_core.files.modelfile.save_model), halved again for slower
# disks.
EVAL_SHARE_OF_TRAINING = 0.5
SAVE_BYTES_PER_S = 100e6


class TimeBudgetMixin:
    """The run's planned total and the ``--minutes`` deadline (see the module docstring)."""

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
            return steps_for_epochs(tc.epochs, self._batches_per_epoch)
        if session_step_s is None or session_step_s <= 0:
            return max(self._step + tc.warmup_steps + 1, self._prev_total)
        remaining = tc.minutes * 60.0 - self._session_elapsed - self._finish_reserve_s()
        return self._step + max(1, int(remaining / session_step_s))

    def _finish_reserve_s(self) -> float:
        """Seconds a --minutes run keeps for its final validation and save (see the constants)."""
        reserve = 0.0
        if len(self._val_ids) > 1:
            if self._eval_s is not None:
                reserve += self._eval_s
            else:
                reserve += EVAL_SHARE_OF_TRAINING * len(self._val_ids) / max(self._cps, 1e-9)
        if self.checkpoint_path:
            if self._save_s is not None:
                reserve += self._save_s
            else:
                arrays = [*self.params.values(), *self._adam.m.values(), *self._adam.v.values()]
                reserve += sum(a.nbytes for a in arrays) / SAVE_BYTES_PER_S
        return reserve

    def _time_is_up(self) -> bool:
        """A --minutes run ends when another step would not finish, with the final validation
        and save, inside the budget; every session makes at least one step."""
        tc = self._tc
        if tc.minutes is None or self._session_steps == 0:
            return False
        self._session_elapsed = time.perf_counter() - self._session_start
        spent = self._session_elapsed + self._finish_reserve_s() + self._step_s
        return spent >= tc.minutes * 60.0
