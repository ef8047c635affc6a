"""Adam, global gradient-norm clipping and the learning-rate schedule: each once, for every device.

The schedule is a pure function of the step; a run that healed from a blow-up multiplies it by its
``lr_scale`` (part of the training state, see charlstm_core.training.heal).

Adam follows PyTorch's ``torch.optim.Adam`` exactly (β1 = 0.9, β2 = 0.999, ε = 1e-8, no weight
decay), after the clip (PyTorch's ``clip_grad_norm_`` rule, ``clip_scale``) multiplies every
gradient by ``scale``::

    g ← scale · g
    m ← β1 m + (1 - β1) g          v ← β2 v + (1 - β2) g²
    θ ← θ - lr / (1 - β1^t) · m / (√v / √(1 - β2^t) + ε)

Its state is keyed by parameter name, like the parameters and gradients. It is written against an
array module ``xp`` (NumPy, or CuPy), as a few in-place ufuncs per parameter; a device may pass
the same update as one fused kernel (``fused``: ``charlstm_core.engine.kernels.ADAM``, checked
against the ufuncs bit for bit under NumPy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import TrainConfig

# values per piece of the ufunc Adam (Adam.update): the five pieces (p, g, m, v, scratch) of
# 256 KiB each in float32 stay in cache through the dozen passes. Measured at L=2, H=512 (3.3M
# values, 2-core machine): whole arrays 12.2 ms on one thread, 8.9 ms on two; pieces of 65,536
# 10.9 and 7.5 ms; pieces of 16,384 or fewer slower (per-call costs, the threads' GIL turns)
CHUNK = 65_536


class Adam:
    """Adam over a dict of parameters, updated in place. ``t`` counts the updates made."""

    def __init__(
        self,
        params: dict[str, Any],
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        m: dict[str, Any] | None = None,
        v: dict[str, Any] | None = None,
        t: int = 0,
        xp: Any = np,
        fused: Callable[..., None] | None = None,
    ) -> None:
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = m if m is not None else {k: xp.zeros_like(p) for k, p in params.items()}
        self.v = v if v is not None else {k: xp.zeros_like(p) for k, p in params.items()}
        self.t = t
        self.xp = xp
        # f(grad, scale, b1, b2, 1-b1, 1-b2, step size, 1/√(1-b2^t), eps, p, m, v), or None
        self.fused = fused
        self._buf = {} if fused else {k: xp.empty_like(p) for k, p in params.items()}

    def update(
        self,
        params: dict[str, Any],
        grads: dict[str, Any],
        lr: float,
        scale: float = 1.0,
        *,
        run: Callable[[Callable[[slice], None], int], Any] | None = None,
    ) -> None:
        """One Adam step with learning rate ``lr`` on the gradients times ``scale`` (the clip's
        factor, 1: none); ``grads`` may be overwritten.

        The ufunc path runs each parameter in pieces of at most ``CHUNK`` values, so that the
        update's dozen passes read and write a piece in cache instead of streaming five
        parameter-sized arrays from memory a dozen times (the same ufuncs on the same values:
        the result does not depend on the cut). ``run(fn, n)``, when given, calls ``fn`` on
        slices covering ``range(n)`` of the pieces, side by side on threads (the CPU engine's
        batch threads); None: all in turn.
        """
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = lr / (1.0 - b1**self.t)
        inv_bias2 = 1.0 / math.sqrt(1.0 - b2**self.t)
        if self.fused is not None:
            for k, p in params.items():
                dt = p.dtype.type
                consts = (scale, b1, b2, 1.0 - b1, 1.0 - b2, step_size, inv_bias2, self.eps)
                self.fused(grads[k], *(dt(c) for c in consts), p, self.m[k], self.v[k])
            return
        pieces = []
        for k, p in params.items():
            arrays = (p, grads[k], self.m[k], self.v[k], self._buf[k])
            if not all(a.flags.c_contiguous for a in arrays):
                pieces.append(arrays)  # a view of another layout: updated whole
                continue
            flat = [a.reshape(-1) for a in arrays]
            for a in range(0, p.size, CHUNK):
                pieces.append(tuple(f[a : a + CHUNK] for f in flat))
        consts = (scale, b1, b2, step_size, inv_bias2)

        def work(part: slice) -> None:
            for piece in pieces[part]:
                self._step(*piece, *consts)

        if run is None:
            work(slice(0, len(pieces)))
        else:
            run(work, len(pieces))

    def _step(
        self,
        p: Any,
        g: Any,
        m: Any,
        v: Any,
        buf: Any,
        scale: float,
        b1: float,
        b2: float,
        step_size: float,
        inv_bias2: float,
    ) -> None:
        """The update of one piece (``update``), in place; ``g`` and ``buf`` overwritten."""
        xp, dt = self.xp, p.dtype.type
        if scale != 1.0:
            g *= dt(scale)
        m *= dt(b1)
        xp.multiply(g, dt(1.0 - b1), out=buf)
        m += buf
        v *= dt(b2)
        xp.multiply(g, g, out=g)
        g *= dt(1.0 - b2)
        v += g
        xp.sqrt(v, out=buf)
        buf *= dt(inv_bias2)
        buf += dt(self.eps)
        xp.divide(m, buf, out=buf)
        buf *= dt(step_size)
        p -= buf


def global_norm(grads: dict[str, Any], xp: Any = np) -> float:
    """√(Σ g²) over every gradient array, the per-array sums added in float64 (on a device they
    stay there until the one read at the end)."""
    sq = [xp.vdot(g.reshape(-1), g.reshape(-1)) for g in grads.values()]
    return math.sqrt(float(xp.stack(sq).astype(np.float64).sum()))


def clip_scale(max_norm: float, norm: float) -> float:
    """The factor that brings the gradients' global norm ``norm`` to at most ``max_norm`` (0:
    no clip): PyTorch's rule, max_norm / (norm + 1e-6) when that is below 1, else 1."""
    if max_norm <= 0:
        return 1.0
    return min(1.0, max_norm / (norm + 1e-6))


def clip_grads(grads: dict[str, Any], max_norm: float, norm: float) -> None:
    """Scale all gradients in place so their global norm is at most ``max_norm`` (0: no clip)."""
    scale = clip_scale(max_norm, norm)
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
