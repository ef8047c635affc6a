"""Self-healing training: notice a blow-up, and decide how far to cut the learning rate.

The trainer judges every step with a :class:`DivergenceDetector`. A step is *suspicious* when its
loss is far above the recent smoothed loss and above the uniform guess ln V, or when its gradient
norm is far above the recent smoothed norm. A non-finite loss or gradient, or
``SUSPICIOUS_STEPS`` suspicious steps in a row, is a *divergence*: the trainer restores the last
kept state (weights, Adam moments, carried state, random streams, stream position, history) and
continues with a lower learning rate (:func:`healed_lr_scale`), or stops when asked to or after
``MAX_ROLLBACKS`` rollbacks within ``ROLLBACK_SPAN_STEPS`` steps.

The detector is a deterministic fold over the per-step (loss, gradient norm) history, so a resumed
run rebuilds it exactly from the checkpoint's history, and restoring the history restores it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

# A step is suspicious when its loss exceeds LOSS_SPIKE_RATIO times the smoothed loss *and* the
# uniform guess ln V. Ordinary batch-to-batch noise of a character model is a few tenths of a nat
# (a few percent of the loss), so 1.5x is far outside it; requiring loss > ln V as well means the
# model has become worse than knowing nothing, which never happens while training is healthy (the
# first loss of a fresh model is about ln V). A real blow-up jumps to several times ln V (53
# nats/char against ln V = 4.2 in the run that motivated this).
LOSS_SPIKE_RATIO = 1.5
# A step is also suspicious when its gradient norm exceeds GRAD_SPIKE_RATIO times the smoothed
# norm. Healthy LSTM gradients vary by up to ~7x from one batch to the next (measured on small
# runs), so 20x is a spike; a single one is harmless (clipping or Adam's normalisation bound the
# step), which is why one suspicious step alone never triggers a rollback.
GRAD_SPIKE_RATIO = 20.0
# Smoothing of the loss and gradient-norm baselines (exponential moving average, weight of the
# past): 0.95 averages about the last 20 steps, recent enough to follow the falling loss, long
# enough that three bad steps barely move it. Suspicious steps are left out of the averages.
SMOOTHING = 0.95
# Spikes are judged only once the baselines have this many healthy steps behind them: the first
# steps of a fresh model move fast. The ln V rule and non-finite values are judged from step one.
GRAD_MIN_STEPS = 20
LOSS_MIN_STEPS = 1
# This many suspicious steps in a row is a divergence: one or two high losses happen (an unusual
# batch); three in a row at 1.5x the baseline and above ln V do not heal by themselves quickly.
SUSPICIOUS_STEPS = 3
# The last good state is kept in memory (a copy of weights and Adam moments, three times the
# model's size) at every evaluation, every autosave and every KEEP_EVERY steps: a rollback loses at
# most this many steps of progress; one copy per 100 steps costs well under 1% of the training time.
KEEP_EVERY = 100
# After MAX_ROLLBACKS rollbacks whose blow-ups lie within ROLLBACK_SPAN_STEPS steps of the current
# one, the next divergence stops the run: each rollback already halved the learning rate, so a run
# that keeps blowing up has another problem (data, clipping) that a lower rate alone will not fix.
MAX_ROLLBACKS = 3
ROLLBACK_SPAN_STEPS = 1000
# A rollback never cuts the learning-rate multiplier by more than this factor at once.
MIN_CUT = 1e-3


@dataclass(frozen=True)
class DetectorState:
    """The detector's running values; a frozen value, so keeping it is free."""

    loss_avg: float = 0.0  # running (biased) EMA of healthy losses
    loss_n: int = 0  # healthy losses folded in
    norm_avg: float = 0.0  # running (biased) EMA of healthy gradient norms
    norm_n: int = 0
    pending: int = 0  # suspicious steps in a row just before now


def _debiased(avg: float, n: int) -> float:
    return avg / (1.0 - SMOOTHING**n)


class DivergenceDetector:
    """Judges each step's loss and gradient norm against the recent healthy ones.

    ``log_vocab`` is ln V, the loss of a uniform guess over the V characters.
    """

    def __init__(self, log_vocab: float, state: DetectorState | None = None) -> None:
        self.log_vocab = log_vocab
        self.state = state or DetectorState()

    @property
    def pending(self) -> int:
        """Suspicious steps in a row so far (0: the last step looked healthy)."""
        return self.state.pending

    def why_suspicious(self, loss: float, norm: float | None) -> str | None:
        """Why this step looks like a blow-up, in words; ``None`` when it looks healthy."""
        s = self.state
        if not math.isfinite(loss):
            return "the loss became infinite or NaN"
        if norm is not None and not math.isfinite(norm):
            return "the gradient became infinite or NaN"
        if s.loss_n >= LOSS_MIN_STEPS and loss > self.log_vocab:
            base = _debiased(s.loss_avg, s.loss_n)
            if loss > LOSS_SPIKE_RATIO * base:
                return (
                    f"the loss jumped to {loss:.2f} nats/char (smoothed {base:.2f}, a uniform "
                    f"guess {self.log_vocab:.2f})"
                )
        if norm is not None and s.norm_n >= GRAD_MIN_STEPS:
            base = _debiased(s.norm_avg, s.norm_n)
            if norm > GRAD_SPIKE_RATIO * base:
                return f"the gradient norm jumped to {norm:.3g} (smoothed {base:.3g})"
        return None

    def observe(self, loss: float, norm: float | None) -> tuple[bool, str | None]:
        """Fold one step in; returns (diverged, why). ``norm`` may be unknown (old checkpoints).

        Diverged: a non-finite value, or the SUSPICIOUS_STEPS-th suspicious step in a row.
        """
        # Python floats: the same float64 arithmetic live and when replayed from a checkpoint
        loss, norm = float(loss), (None if norm is None else float(norm))
        why = self.why_suspicious(loss, norm)
        s = self.state
        if why is not None:
            self.state = dataclasses.replace(s, pending=s.pending + 1)
            finite = math.isfinite(loss) and (norm is None or math.isfinite(norm))
            return (not finite or self.state.pending >= SUSPICIOUS_STEPS), why
        a = SMOOTHING
        loss_avg, loss_n = a * s.loss_avg + (1.0 - a) * loss, s.loss_n + 1
        norm_avg, norm_n = s.norm_avg, s.norm_n
        if norm is not None:
            norm_avg, norm_n = a * s.norm_avg + (1.0 - a) * norm, s.norm_n + 1
        self.state = DetectorState(loss_avg, loss_n, norm_avg, norm_n, 0)
        return False, None


def replay(log_vocab: float, losses: list[float], norms: list[float]) -> DivergenceDetector:
    """The detector after folding in a run's recorded steps, in order.

    A recorded step always had finite values (a non-finite one is never recorded), so a NaN
    gradient norm stands for "not recorded" (checkpoints written before norms were kept).
    """
    det = DivergenceDetector(log_vocab)
    for loss, norm in zip(losses, norms, strict=True):
        g = float(norm)
        det.observe(float(loss), g if math.isfinite(g) else None)
    return det


def healed_lr_scale(old_scale: float, lr_blown: float, peak_ahead: float) -> float:
    """The learning-rate multiplier after a rollback.

    ``lr_blown`` is the rate of the step that blew up; ``peak_ahead`` the highest rate the
    schedule (times ``old_scale``) would use from the restored step on. The new multiplier makes
    that peak half the rate that blew up: on a constant or decaying schedule this halves the
    multiplier; during a warm-up (where the rate would keep rising past the one that blew up) it
    cuts deeper, by at most MIN_CUT.
    """
    if peak_ahead <= 0 or not math.isfinite(peak_ahead):
        return old_scale * 0.5
    factor = min(0.5, 0.5 * lr_blown / peak_ahead)
    return old_scale * max(factor, MIN_CUT)


def rollbacks_in_span(from_steps: list[int], step: int) -> int:
    """How many earlier rollbacks blew up within ROLLBACK_SPAN_STEPS steps of ``step``."""
    return sum(1 for s in from_steps if abs(step - s) <= ROLLBACK_SPAN_STEPS)
