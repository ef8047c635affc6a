"""Keep points and rollbacks: the trainer's side of self-healing (charlstm_core.training.heal
decides when).

At every keep point (each evaluation and autosave step and every KEEP_EVERY steps, once the next
step's healthy loss has vouched for the weights) the trainer copies its whole state in memory
(``Kept``: weights, Adam moments, carried state, random streams, stream position, history
lengths, best loss, the detector). A blow-up restores that copy exactly and continues with the
learning-rate multiplier of ``charlstm_core.training.heal.healed_lr_scale``, or stops with
``TrainingDiverged``.

``RollbackMixin`` is part of ``charlstm_core.training.trainer.Trainer`` and works on its fields:
``params``,
``_adam``, ``_h``/``_c``, ``_dropout_rng``/``_sample_rng``, ``_epoch``/``_batch``, ``_history``,
``_samples``, ``_best``/``_last_val``, ``_detector``, ``_kept``, ``_lr_scale``, ``_rollbacks``,
``_rollbacks_this_session``, ``_step``, ``_total``, ``_tc``, ``_engine``, ``_lock`` and
``_emit``.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from ..engine.optim import peak_learning_rate
from ..errors import TrainingDiverged
from ..events import Event, RollbackEvent
from .heal import (
    KEEP_EVERY,
    MAX_ROLLBACKS,
    ROLLBACK_SPAN_STEPS,
    DetectorState,
    DivergenceDetector,
    healed_lr_scale,
    rollbacks_in_span,
)


@dataclass(frozen=True, eq=False)  # holds arrays: equality is identity
class Kept:
    """The last good state, in memory, for a rollback (see ``RollbackMixin._keep``)."""

    step: int
    # arrays on the engine's device (NumPy on the CPU, CuPy on a GPU)
    params: dict[str, np.ndarray]
    adam_m: dict[str, np.ndarray]
    adam_v: dict[str, np.ndarray]
    h: np.ndarray  # (L, B, H)
    c: np.ndarray  # (L, B, H)
    rng: dict  # bit_generator states by purpose
    stream: tuple[int, int]  # (epoch, batch)
    history_len: dict[str, int]  # length of each history series
    best: float | None
    last_val: float | None
    detector: DetectorState


class RollbackMixin:
    """Keeping the last good state and rolling back to it (see the module docstring)."""

    def _is_keep_point(self, step: int) -> bool:
        """Steps whose state is kept for a rollback: every evaluation and autosave step and every
        KEEP_EVERY steps. A function of the step alone, so a run that resumes from an autosave
        keeps the same states as one that never stopped."""
        tc = self._tc
        return any(n and step % n == 0 for n in (KEEP_EVERY, tc.eval_every, tc.checkpoint_every))

    def _keep(self, dropout_rng_state: dict, detector: DetectorState) -> None:
        """Copy the current state (with the dropout stream as it was before this step's forward
        pass) as the one to return to after a blow-up. Reuses the previous copy's arrays."""
        old = self._kept
        eng = self._engine  # the copies stay on the engine's device
        copy = eng.copy_into
        with self._lock:
            self._kept = Kept(
                step=self._step,
                params=copy(self.params, old.params if old else None),
                adam_m=copy(self._adam.m, old.adam_m if old else None),
                adam_v=copy(self._adam.v, old.adam_v if old else None),
                h=eng.copy(self._h),
                c=eng.copy(self._c),
                rng={"dropout": dropout_rng_state, "sample": self._sample_rng.bit_generator.state},
                stream=(self._epoch, self._batch),
                history_len={k: len(v) for k, v in self._history.items()},
                best=self._best,
                last_val=self._last_val,
                detector=detector,
            )

    def _restore(self, kept: Kept) -> None:
        """Return exactly to ``kept``: weights, Adam state, carried state, random streams, stream
        position, history, samples and the detector. The kept copy stays intact (for a later
        rollback to the same step)."""
        eng = self._engine
        with self._lock:
            eng.copy_into(kept.params, self.params)
            eng.copy_into(kept.adam_m, self._adam.m)
            eng.copy_into(kept.adam_v, self._adam.v)
            self._adam.t = kept.step
            self._step = kept.step
            self._h, self._c = eng.copy(kept.h), eng.copy(kept.c)
            self._dropout_rng.bit_generator.state = kept.rng["dropout"]
            self._sample_rng.bit_generator.state = kept.rng["sample"]
            self._epoch, self._batch = kept.stream
            for k, n in kept.history_len.items():
                del self._history[k][n:]
            self._samples = [s for s in self._samples if s[0] <= kept.step]
            self._best, self._last_val = kept.best, kept.last_val
        self._detector = DivergenceDetector(self._detector.log_vocab, kept.detector)

    def _advice(self, lr: float) -> str:
        clip = (
            "turn on gradient clipping (5 is safe)"
            if self._tc.clip == 0
            else f"lower the gradient clip (now {self._tc.clip:g})"
        )
        return f"Lower the learning rate to {lr / 2:.3g} or less, or {clip}"

    def _diverged(self, why: str, lr: float, loss: float | None) -> Generator[Event, None, None]:
        """Training blew up at the step after ``self._step`` (using learning rate ``lr``, with
        loss ``loss``): roll back to the kept state and continue at a lower rate, or restore it
        and stop."""
        assert self._kept is not None
        kept, tc = self._kept, self._tc
        from_step = self._step + 1
        if tc.on_divergence == "stop":
            self._restore(kept)
            raise TrainingDiverged(
                f"Training diverged at step {from_step:,}: {why}. The model keeps its last good "
                f"weights, from step {kept.step:,}. {self._advice(lr)}; or let training heal "
                "itself instead of stopping.",
                step=from_step,
            )
        recent = rollbacks_in_span([r.from_step for r in self._rollbacks], from_step)
        if recent >= MAX_ROLLBACKS:
            self._restore(kept)
            raise TrainingDiverged(
                f"Training kept diverging: at step {from_step:,} {why}, after {recent} rollbacks "
                f"within {ROLLBACK_SPAN_STEPS:,} steps that each halved the learning rate (it "
                f"was {lr:.3g}). The model keeps its last good weights, from step "
                f"{kept.step:,}. {self._advice(lr)}; if it still diverges, check the text.",
                step=from_step,
            )
        old_scale = self._lr_scale
        peak = peak_learning_rate(tc, kept.step, self._total) * old_scale
        new_scale = healed_lr_scale(old_scale, lr, peak)
        self._restore(kept)
        event = RollbackEvent(
            from_step=from_step,
            to_step=kept.step,
            lr_before=lr,
            lr_after=peak_learning_rate(tc, kept.step, self._total) * new_scale,
            lr_scale=new_scale,
            reason=why,
            loss=loss if loss is not None and math.isfinite(loss) else None,
        )
        with self._lock:
            self._lr_scale = new_scale
            self._rollbacks.append(event)
        self._rollbacks_this_session += 1
        yield from self._emit(event)
