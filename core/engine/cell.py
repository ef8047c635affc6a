"""One LSTM layer step, forward and backward, and the softmax cross-entropy: the maths, once.

Notation (one layer, one time step t; ``σ`` the logistic function, ``⊙`` the elementwise product)::

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh     (4H,) gate pre-activations
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

Inside the engine the gates are in the order o, i, f, g (``gate_perm``: the three sigmoid gates
one block, and i, f, g, the three gates multiplied by ∂L/∂c, another) and the pre-activations are
*scaled* (``gate_scale``): rows o, i, f hold -a and rows g hold -2a, so that one ``exp`` over all
four gates gives σ(a) = 1 / (1 + e^-a) and tanh a = 2σ(2a) - 1. The weights are scaled once
when they are laid out (charlstm_core.engine.model.Prepared), never per step.

Every pass of the engine (the training forward and backward, sampling's one character, the
inspection's traced stream, evaluation) calls ``Cell``; only the products around it and the
layout of its arrays differ, and the layout is a parameter (``axis``: gates on rows, (4H, B),
in the batched passes; on the last axis, (B, 4H) or (4H,), in sampling and inspection). ``Cell``
is written against an array module ``xp`` (NumPy, or CuPy). A device may run the same maths as
fused kernels (charlstm_core.engine.kernels.FusedCell, whose formula text the tests check
against this module bit for bit under NumPy).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np


def gate_perm(H: int) -> np.ndarray:
    """Row indices taking PyTorch's gate order (i, f, g, o) to the internal one (o, i, f, g)."""
    r = np.arange(H)
    return np.concatenate([r + 3 * H, r, r + H, r + 2 * H])


def gate_scale(H: int, dtype: Any, xp: Any = np) -> Any:
    """(4H, 1) row factors of the scaled pre-activations, internal order: -1 (o, i, f), -2 (g)."""
    scale = xp.full((4 * H, 1), -1.0, dtype)
    scale[3 * H :] = -2.0
    return scale


def gates_of(z: Any, axis: int) -> tuple[Any, Any, Any, Any]:
    """The four gate blocks o, i, f, g of ``z`` (views): on rows (``axis`` 0: z (4H, ...)) or
    on the last axis (``axis`` -1: z (..., 4H))."""
    H = z.shape[axis] // 4
    if axis == 0:
        return z[:H], z[H : 2 * H], z[2 * H : 3 * H], z[3 * H :]
    return z[..., :H], z[..., H : 2 * H], z[..., 2 * H : 3 * H], z[..., 3 * H :]


def quiet_overflow(xp: Any) -> contextlib.AbstractContextManager:
    """NumPy's overflow warnings off for the passes: e^-a of a large negative a is inf, and
    1 / (1 + inf) = 0 is the right σ (CuPy has no warnings to silence). Errstate is per thread."""
    return np.errstate(over="ignore") if xp is np else contextlib.nullcontext()


class Cell:
    """The layer step and its gradient over array module ``xp``, in place on the caller's arrays
    (no allocation at all when the caller passes ``tc`` and ``tmp``)."""

    def __init__(self, xp: Any = np) -> None:
        self.xp = xp

    def forward(
        self,
        z: Any,
        x: Any,
        c_prev: Any,
        c: Any,
        h: Any,
        *,
        tc: Any = None,
        tmp: Any = None,
        axis: int = 0,
    ) -> None:
        """One step of one layer, in place.

        z: W_hh h_{t-1} with scaled rows, gates on ``axis`` ((4H, B), (B, 4H) or (4H,)); on
        return, the gate activations o, i, f = σ, g = tanh. x: the scaled input projection
        W_ih x_t + b_ih + b_hh, the same shape as z or broadcast against it (a bias). c_prev:
        c_{t-1} (H, B), (B, H) or (H,); c and h: where c_t and h_t are written (any views of that
        shape); tc: where tanh(c_t) is kept for the backward pass (None: not kept); tmp: a
        scratch array of c's shape (None: one is allocated).
        """
        xp = self.xp
        z += x
        xp.exp(z, out=z)  # e^-a for o, i, f; e^-2a for g
        z += 1.0
        xp.reciprocal(z, out=z)  # σ(a); σ(2a) for g
        o, i, f, g = gates_of(z, axis)
        g *= 2.0
        g -= 1.0  # tanh a = 2σ(2a) - 1
        xp.multiply(f, c_prev, out=c)  # f ⊙ c_{t-1}
        c += xp.multiply(i, g, out=tmp)  # + i ⊙ g
        # one tanh call: on float32 as fast as 2σ(2c) - 1 in (H, B) blocks and 4x faster at
        # B = 1 (benchmarks/README.md, 2026-12-07)
        t = xp.tanh(c, out=h if tc is None else tc)
        xp.multiply(o, t, out=h)  # h = o ⊙ tanh(c)

    def backward(
        self,
        dy: Any,
        dh_rec: Any,
        z: Any,
        tc: Any,
        c_prev: Any,
        dc: Any,
        da: Any,
        work: tuple[Any, Any, Any],
    ) -> None:
        """The gradient of one ``forward`` step, gates on rows (the training layout), in place.

        dy: ∂L/∂h_t from above (the decoder, or the layer on top) (H, B); dh_rec: ∂L/∂h_t through
        the recurrence, W_hhᵀ da_{t+1} (H, B); z: the step's gate activations (4H, B); tc:
        tanh(c_t); c_prev: c_{t-1}; dc: on entry f_{t+1} ⊙ ∂L/∂c_{t+1} (zeros at the last step),
        on return f_t ⊙ ∂L/∂c_t, what the step before needs; da: where ∂L/∂a_t (4H, B) is
        written, a the unscaled pre-activations. work: scratch arrays (4H, B), (H, B), (H, B).
        With dh = dy + dh_rec and σ' = σ(1 - σ)::

            ∂L/∂c_t = f_{t+1} ⊙ ∂L/∂c_{t+1} + dh ⊙ o ⊙ (1 - tanh²c_t)
            da_o = dh ⊙ tanh(c_t) ⊙ σ'(a_o)      da_i = ∂L/∂c_t ⊙ g ⊙ σ'(a_i)
            da_f = ∂L/∂c_t ⊙ c_{t-1} ⊙ σ'(a_f)   da_g = ∂L/∂c_t ⊙ i ⊙ (1 - g²)

        The factors that do not depend on dh or ∂L/∂c are made first, while the step's
        activations are in cache; o, i, f share one σ' pass, and i, f, g one product with ∂L/∂c.
        """
        xp = self.xp
        F, Pc, dh = work
        H = z.shape[0] // 4
        S = 3 * H  # rows [:S] are the sigmoid gates o, i, f
        o, i, f, g = gates_of(z, 0)
        Fo, Fi, Ff, Fg = gates_of(F, 0)
        xp.subtract(1.0, z[:S], out=F[:S])
        F[:S] *= z[:S]  # σ'(a) for o, i, f
        Fo *= tc
        Fi *= g
        Ff *= c_prev
        xp.multiply(g, g, out=Fg)
        xp.subtract(1.0, Fg, out=Fg)
        Fg *= i
        xp.multiply(tc, tc, out=Pc)
        xp.subtract(1.0, Pc, out=Pc)
        Pc *= o
        xp.add(dy, dh_rec, out=dh)
        Pc *= dh
        dc += Pc  # ∂L/∂c_t
        B = z.shape[1:]
        xp.multiply(Fo, dh, out=da[:H])
        xp.multiply(F[H:].reshape(3, H, *B), dc, out=da[H:].reshape(3, H, *B))
        dc *= f  # what step t - 1 adds to its own ∂L/∂c


def softmax_xent(
    logits: Any, targets: Any, norm: int | None = None, xp: Any = np
) -> tuple[Any, Any]:
    """Mean cross-entropy (nats) over all T*B characters and its gradient w.r.t. the logits.

    logits: (T, B, V), overwritten with the gradient (p - onehot) / norm to save memory and
    returned; norm defaults to T*B (the gradient of the mean; a slice of a larger batch passes
    that batch's count, so that the slices' gradients add up). targets: (T, B) ids. The loss is
    a 0-d float64 array, left unsynchronised on a device until the caller reads it.
    """
    out = logits
    logits = logits.transpose(2, 0, 1)  # (V, T, B): the decoder product's memory order
    V, T, B = logits.shape
    norm = T * B if norm is None else norm
    logits -= logits.max(axis=0)
    xp.exp(logits, out=logits)
    sums = logits.sum(axis=0)  # (T, B)
    tt, bb = xp.arange(T)[:, None], xp.arange(B)[None, :]
    p_target = logits[targets, tt, bb] / sums
    tiny = np.finfo(logits.dtype).tiny
    loss = -xp.log(xp.maximum(p_target, tiny)).astype(np.float64).mean()
    logits *= (1.0 / norm) / sums
    logits[targets, tt, bb] -= logits.dtype.type(1.0 / norm)
    return loss, out


def nll(logits: Any, targets: Any, xp: Any = np) -> Any:
    """Negative log-likelihood (nats) of each target; logits (T, B, V), targets (T, B) → (T, B).

    The logits are not modified; the result is float64.
    """
    logits = logits.transpose(2, 0, 1)  # (V, T, B): the decoder product's memory order
    V, T, B = logits.shape
    m = logits.max(axis=0)
    lse = xp.log(xp.exp(logits - m).sum(axis=0)) + m
    tt, bb = xp.arange(T)[:, None], xp.arange(B)[None, :]
    return (lse - logits[targets, tt, bb]).astype(np.float64)
