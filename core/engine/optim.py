"""Adam, global gradient-norm clipping and the learning-rate schedule.

The schedule is a pure function of the step; a run that healed from a blow-up multiplies it by its
``lr_scale`` (part of the training state, see charlstm_core.training.heal).

Adam follows PyTorch's ``torch.optim.Adam`` exactly (β1 = 0.9, β2 = 0.999, ε = 1e-8, no weight
decay)::

    m ← β1 m + (1 - β1) g          v ← β2 v + (1 - β2) g²
    θ ← θ - lr / (1 - β1^t) · m / (√v / √(1 - β2^t) + ε)

Its state is keyed by parameter name, like the parameters and gradients.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import TrainConfig


class Adam:
    """Adam over a dict of parameters, updated in place. ``t`` counts the updates made."""

    def __init__(
        self,
        params: dict[str, np.ndarray],
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        m: dict[str, np.ndarray] | None = None,
        v: dict[str, np.ndarray] | None = None,
        t: int = 0,
    ) -> None:
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = m if m is not None else {k: np.zeros_like(p) for k, p in params.items()}
        self.v = v if v is not None else {k: np.zeros_like(p) for k, p in params.items()}
        self.t = t
        self._buf = {k: np.empty_like(p) for k, p in params.items()}

    def update(
        self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float
    ) -> None:
        """One Adam step with learning rate ``lr``; ``grads`` may be overwritten."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = lr / (1.0 - b1**self.t)
        bias2_sqrt = math.sqrt(1.0 - b2**self.t)
        for k, p in params.items():
            g, m, v, buf = grads[k], self.m[k], self.v[k], self._buf[k]
            dt = p.dtype.type
            m *= dt(b1)
            m += dt(1.0 - b1) * g
            v *= dt(b2)
            np.multiply(g, g, out=g)
            g *= dt(1.0 - b2)
            v += g
            np.sqrt(v, out=buf)
            buf *= dt(1.0 / bias2_sqrt)
            buf += dt(self.eps)
            np.divide(m, buf, out=buf)
            buf *= dt(step_size)
            p -= buf


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """√(Σ g²) over every gradient array, accumulated in float64."""
    total = 0.0
    for g in grads.values():
        flat = g.reshape(-1)
        total += float(np.dot(flat, flat))
    return math.sqrt(total)


def clip_grads(grads: dict[str, np.ndarray], max_norm: float, norm: float) -> None:
    """Scale all gradients in place so their global norm is at most ``max_norm`` (0: no clip).

    Uses PyTorch's rule: scale by max_norm / (norm + 1e-6) when that is below 1.
    """
    if max_norm <= 0:
        return
    scale = max_norm / (norm + 1e-6)
    if scale < 1.0:
        for g in grads.values():
            g *= g.dtype.type(scale)


def learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of a run planned for ``total_steps``.

    constant: ``lr``. cosine: linear warm-up from lr/warmup to lr over ``warmup_steps``, then
    cosine decay to ``min_lr_ratio * lr`` at ``total_steps``, and flat after it.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    span = max(total_steps - warmup, 1)
    progress = min(max((step - warmup) / span, 0.0), 1.0)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def peak_learning_rate(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The highest ``learning_rate`` of any step from ``step`` (0-based) to the end of the run.

    The schedule rises during the warm-up and never rises after it, so the peak ahead is the
    rate at ``step`` or at the warm-up's last step, whichever comes later.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    return learning_rate(cfg, max(step, warmup - 1), total_steps)
