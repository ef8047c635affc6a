"""The model's one-character passes: ``step`` (sampling) and ``trace`` (inspection).

Part of ``charlstm_core.model.Prepared`` (which inherits ``InferenceMixin``): they read its prepared
weights (``w0``, ``layers``, ``dec_w``, ``dec_b``, ``cfg``) and keep the contiguous (V, 4H) copy
of layer 0's input weights in ``_w0T``, made on first use. Logits follow charlstm_core.model's one
layout: ``step`` gives one time step (B, V), ``trace`` one stream (T, V). ``gates`` is the
elementwise step shared with the training pass: one ``exp`` gives σ and tanh of all four gates.
"""

from __future__ import annotations

import numpy as np

from .parallel import live_blas_threads

State = tuple[np.ndarray, np.ndarray]  # (h, c), each (L, B, H)

# Bytes of W_hh per matrix-vector product and BLAS thread in ``trace``: a quarter of an (4H, H)
# float32 W_hh at H = 512, half of the 2 MiB L2 cache of one core of the 2-core machine.
BLOCK_BYTES = 1 << 20


def row_blocks(w: np.ndarray, threads: int = 1) -> list[tuple[slice, np.ndarray]]:
    """W (R, H) as ``(rows, W[rows].T)`` blocks of consecutive rows for a product on ``threads``
    BLAS threads: ``h @ W[rows].T`` is the slice ``rows`` of W h (each entry the same dot
    product of one row with h, so the result does not depend on the cut).

    One stream's recurrence reads all of W_hh at every step, and at B = 1 that read is the cost:
    at H = 512 float32 W_hh is 4 MiB, twice one core's L2, so read in the same order every step
    none of it is still in L2 when it is read again (least-recently-used eviction). Read block
    by block, forwards at even steps and backwards at odd ones, each step starts with the blocks
    the last one read last, still in L2. Measured on one thread: the product alone 258 → 155 µs
    per step (float32, 1 MiB blocks; 512 KiB: 162 µs, 256 KiB: 242 µs, the per-call cost
    showing; float64, 8 MiB: 382 → 341 µs); a 2,000-character passage at L=2 H=512 1.24 → 0.72
    CPU seconds (``benchmarks/bench_inspect.py``).

    Each of n threads computes 1/n of every product, so its share of W is W / n: a W whose share
    fits one L2 (2 · ``BLOCK_BYTES``) stays one product, and a larger one is cut in blocks of
    n · ``BLOCK_BYTES``. At 2 threads, H = 512 float32, one product took ~110 µs a step and 1 MiB
    blocks ~190 µs (every call waits for both threads).
    """
    n, width = w.shape
    threads = max(1, threads)
    if w.nbytes <= 2 * BLOCK_BYTES * threads:
        return [(slice(0, n), w.T)]
    step = max(1, BLOCK_BYTES * threads // (width * w.itemsize))
    return [(slice(a, min(n, a + step)), w[a : a + step].T) for a in range(0, n, step)]


def gates(z: np.ndarray, H: int) -> None:
    """In place: scaled pre-activations (4H, B) → o, i, f = σ(a) and g = tanh(a) (the scaling:
    charlstm_core.model.Prepared)."""
    np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    g = z[3 * H :]
    g *= 2.0
    g -= 1.0


class InferenceMixin:
    """One character per stream (``step``) and one stream with every activation (``trace``)."""

    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One character per stream. ids (B,) → logits (B, V) and the next state (new arrays).

        Memory-bound at B = 1 (each step reads every weight once): one product per layer, with
        layer 0's one-hot input a gathered row of a contiguous (V, 4H) copy of W_ih.
        """
        h0, c0 = state  # (L, B, H)
        H = self.cfg.hidden_size
        hs, cs = np.empty_like(h0), np.empty_like(c0)
        x = None  # (B, H)
        with np.errstate(over="ignore"):
            for k, lay in enumerate(self.layers):
                if k == 0:
                    if self._w0T is None:  # rows gather fastest at B = 1: a contiguous copy
                        self._w0T = np.ascontiguousarray(self.w0.T)
                    z = self._w0T[ids]  # (B, 4H), bias included
                    z += h0[0] @ lay.w.T
                else:  # one product on [x, h] reads the weights once, in one call
                    if lay.cat_t is None:
                        lay.cat_t = np.concatenate([lay.wx, lay.w], axis=1).T
                    z = np.concatenate([x, h0[k]], axis=1) @ lay.cat_t
                    z += lay.b[:, 0]
                np.exp(z, out=z)
                z += 1.0
                np.reciprocal(z, out=z)
                g = z[:, 3 * H :]
                g *= 2.0
                g -= 1.0
                # at B = 1 the cost is per call, not per element: np.tanh is one call
                c = np.multiply(z[:, 2 * H : 3 * H], c0[k], out=cs[k])
                c += z[:, H : 2 * H] * g
                x = np.tanh(c, out=hs[k])
                x *= z[:, :H]
        logits = x @ self.dec_w.T
        logits += self.dec_b
        return logits, (hs, cs)

    def trace(
        self, ids: np.ndarray, state: State
    ) -> tuple[np.ndarray, State, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """One stream read for introspection, recording every activation (no dropout).

        ids (T,) → logits (T, V), the final state (each (L, 1, H)) and per layer ``(h, c, z)``:
        h (T, H) and c (T, H) after each character, z (T, 4H) the gate activations in the
        internal order o, i, f, g (σ for o, i, f; tanh for g).

        Layer by layer over the whole stream, like ``forward``, so that one layer's W_hh stays
        in cache through its T steps and layers k > 0 get their input projection as one
        (T, H) @ (H, 4H) product; but each step is a matrix-vector product on 1-D rows, which
        BLAS runs several times faster than ``forward``'s (4H, H) @ (H, 1) product at B = 1
        (``benchmarks/bench_inspect.py``), made block by block of W_hh's rows, alternately
        forwards and backwards, so that the blocks one step read last are still in cache for
        the next (``row_blocks``).
        """
        cfg = self.cfg
        H = cfg.hidden_size
        T = len(ids)
        dtype = np.dtype(cfg.dtype)
        h0, c0 = state
        h_last, c_last = np.empty_like(h0), np.empty_like(c0)
        if self._w0T is None:
            self._w0T = np.ascontiguousarray(self.w0.T)
        layers = []
        x = None  # (T, H) the layer below's outputs
        threads = live_blas_threads()
        with np.errstate(over="ignore"):
            for k, lay in enumerate(self.layers):
                if k == 0:
                    GX = self._w0T[ids]  # (T, 4H), bias included
                else:
                    GX = x @ lay.wx.T
                    GX += lay.b[:, 0]
                blocks = row_blocks(lay.w, threads)
                order = (blocks, blocks[::-1])
                Z = np.empty((T, 4 * H), dtype)
                hs = np.empty((T, H), dtype)
                cs = np.empty((T, H), dtype)
                ig = np.empty(H, dtype)
                h, c = h0[k, 0], c0[k, 0]
                for t in range(T):
                    z = Z[t]
                    for rows, wT in order[t & 1]:  # z = W_hh h, block by block (zigzag)
                        np.matmul(h, wT, out=z[rows])
                    z += GX[t]
                    gates(z, H)
                    c = np.multiply(z[2 * H : 3 * H], c, out=cs[t])  # f ⊙ c_{t-1}
                    c += np.multiply(z[H : 2 * H], z[3 * H :], out=ig)  # + i ⊙ g
                    h = np.tanh(c, out=hs[t])
                    h *= z[:H]  # h = o ⊙ tanh(c)
                h_last[k, 0], c_last[k, 0] = h, c
                layers.append((hs, cs, Z))
                x = hs
        logits = x @ self.dec_w.T
        logits += self.dec_b
        return logits, (h_last, c_last), layers
