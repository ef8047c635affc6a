"""Self-healing, the trainer's collaborator: ``Healer`` (charlstm_core.training.heal decides when
a step blew up).

At every keep point (each evaluation and autosave step and every KEEP_EVERY steps, once the next
step's healthy loss has vouched for the weights) the trainer copies its whole state in memory
(``Kept``: weights, Adam moments, carried state, random streams, stream position, history
lengths, best loss, the detector) and hands it to its healer. A blow-up makes the trainer restore
that copy exactly; the healer then continues the run with the learning-rate multiplier of
``charlstm_core.training.heal.healed_lr_scale`` (a ``RollbackEvent``), or stops it with
``TrainingDiverged``. The multiplier and the rollbacks of the model's life go into checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import TrainConfig
from ..engine.optim import peak_learning_rate
from ..errors import TrainingDiverged
from ..events import RollbackEvent
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
    """The last good state, in memory, for a rollback (made by ``Trainer._keep``)."""

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


class Healer:
    """Judges every step, holds the state to return to and decides what a blow-up becomes.

    State: the divergence detector, the kept state, the learning-rate multiplier, the rollbacks."""

    def __init__(
        self,
        tc: TrainConfig,
        detector: DivergenceDetector,
        *,
        lr_scale: float = 1.0,
        rollbacks: tuple[RollbackEvent, ...] | list[RollbackEvent] = (),
    ) -> None:
        self.tc = tc
        self.detector = detector
        self.kept: Kept | None = None  # the state a rollback returns to
        self.lr_scale = lr_scale  # the learning-rate multiplier left by rollbacks (1.0: none)
        self.rollbacks: list[RollbackEvent] = list(rollbacks)  # of the model's life, oldest first
        self.this_session = 0  # rollbacks made in this session

    @property
    def pending(self) -> int:
        """Suspicious steps in a row so far (0: the last step looked healthy)."""
        return self.detector.pending

    def observe(self, loss: float, norm: float | None) -> tuple[bool, str | None]:
        """Fold one step's loss and gradient norm in: (diverged, why it looks suspicious)."""
        return self.detector.observe(loss, norm)

    def is_keep_point(self, step: int) -> bool:
        """Steps whose state is kept for a rollback: every evaluation and autosave step and every
        KEEP_EVERY steps. A function of the step alone, so a run that resumes from an autosave
        keeps the same states as one that never stopped."""
        tc = self.tc
        return any(n and step % n == 0 for n in (KEEP_EVERY, tc.eval_every, tc.checkpoint_every))

    def rewind(self, kept: Kept) -> None:
        """The detector as it was at ``kept`` (the trainer restored the rest)."""
        self.detector = DivergenceDetector(self.detector.log_vocab, kept.detector)

    def _advice(self, lr: float) -> str:
        clip = (
            "turn on gradient clipping (5 is safe)"
            if self.tc.clip == 0
            else f"lower the gradient clip (now {self.tc.clip:g})"
        )
        return f"Lower the learning rate to {lr / 2:.3g} or less, or {clip}"

    def heal(
        self, why: str, lr: float, loss: float | None, *, from_step: int, total: int
    ) -> RollbackEvent:
        """Training blew up at step ``from_step`` (learning rate ``lr``, loss ``loss``) and the
        trainer is back at the kept state: continue at a lower rate (the event says how), or
        raise ``TrainingDiverged`` (``on_divergence="stop"``, or too many rollbacks)."""
        assert self.kept is not None
        tc, to_step = self.tc, self.kept.step
        if tc.on_divergence == "stop":
            raise TrainingDiverged(
                f"Training diverged at step {from_step:,}: {why}. The model keeps its last good "
                f"weights, from step {to_step:,}. {self._advice(lr)}; or let training heal "
                "itself instead of stopping.",
                step=from_step,
            )
        recent = rollbacks_in_span([r.from_step for r in self.rollbacks], from_step)
        if recent >= MAX_ROLLBACKS:
            raise TrainingDiverged(
                f"Training kept diverging: at step {from_step:,} {why}, after {recent} rollbacks "
                f"within {ROLLBACK_SPAN_STEPS:,} steps that each halved the learning rate (it "
                f"was {lr:.3g}). The model keeps its last good weights, from step "
                f"{to_step:,}. {self._advice(lr)}; if it still diverges, check the text.",
                step=from_step,
            )
        old_scale = self.lr_scale
        peak = peak_learning_rate(tc, to_step, total) * old_scale
        new_scale = healed_lr_scale(old_scale, lr, peak)
        event = RollbackEvent(
            from_step=from_step,
            to_step=to_step,
            lr_before=lr,
            lr_after=peak_learning_rate(tc, to_step, total) * new_scale,
            lr_scale=new_scale,
            reason=why,
            loss=loss if loss is not None and math.isfinite(loss) else None,
        )
        self.lr_scale = new_scale
        self.rollbacks.append(event)
        self.this_session += 1
        return event
