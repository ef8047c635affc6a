"""The model's one-character passes: ``step`` (sampling) and ``trace`` (inspection).

Functions of a ``charlstm_core.engine.model.Prepared`` (whose ``step`` and ``trace`` methods call
them): they read its prepared weights (``w0``, ``layers``, ``dec_w``, ``dec_b``, ``cfg``) and keep
the contiguous (V, 4H) copy of layer 0's input weights in its ``_w0T``, made on first use. Logits
follow charlstm_core.engine.model's one layout: ``step`` gives one time step (B, V), ``trace``
one stream (T, V). ``gates`` is the elementwise step shared with the training pass: one ``exp``
gives σ and tanh of all four gates.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .parallel import live_blas_threads, single_threaded_blas, usable_cores

State = tuple[np.ndarray, np.ndarray]  # (h, c), each (L, B, H)
# ``prep`` below is a charlstm_core.engine.model.Prepared (not imported: model imports this)

# Bytes of W_hh per matrix-vector product and BLAS thread in ``trace``: a quarter of an (4H, H)
# float32 W_hh at H = 512, half of the 2 MiB L2 cache of one core of the 2-core machine.
BLOCK_BYTES = 1 << 20
PIPE_CHUNK = 64  # characters one layer of ``trace`` hands on to the next at a time


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
    charlstm_core.engine.model.Prepared)."""
    np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    g = z[3 * H :]
    g *= 2.0
    g -= 1.0


def step(prep: Any, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
    """One character per stream. ids (B,) → logits (B, V) and the next state (new arrays).

    Memory-bound at B = 1 (each step reads every weight once): one product per layer, with
    layer 0's one-hot input a gathered row of a contiguous (V, 4H) copy of W_ih.
    """
    h0, c0 = state  # (L, B, H)
    H = prep.cfg.hidden_size
    hs, cs = np.empty_like(h0), np.empty_like(c0)
    x = None  # (B, H)
    with np.errstate(over="ignore"):
        for k, lay in enumerate(prep.layers):
            if k == 0:
                if prep._w0T is None:  # rows gather fastest at B = 1: a contiguous copy
                    prep._w0T = np.ascontiguousarray(prep.w0.T)
                z = prep._w0T[ids]  # (B, 4H), bias included
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
    logits = x @ prep.dec_w.T
    logits += prep.dec_b
    return logits, (hs, cs)


def trace(
    prep: Any, ids: np.ndarray, state: State
) -> tuple[np.ndarray, State, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """One stream read for introspection, recording every activation (no dropout).

    ids (T,) → logits (T, V), the final state (each (L, 1, H)) and per layer ``(h, c, z)``:
    h (T, H) and c (T, H) after each character, z (T, 4H) the gate activations in the
    internal order o, i, f, g (σ for o, i, f; tanh for g).

    Layer by layer, like ``forward``, so that one layer's W_hh stays in cache through its
    steps and each chunk of ``PIPE_CHUNK`` characters gets its input projection as one
    product (layer 0's one-hot input: a row gather); only the recurrence is stepped, each
    step a matrix-vector product on 1-D rows, which BLAS runs several times faster than
    ``forward``'s (4H, H) @ (H, 1) product at B = 1, made block by block of W_hh's rows,
    alternately forwards and backwards, so that the blocks one step read last are still in
    cache for the next (``row_blocks``).

    With BLAS held to one thread (as the app holds it beside a running training), two
    layers or more and more than one core, the layers run side by side, one thread each:
    layer k reads a chunk as soon as layer k - 1 has written it (a pipeline; the same
    results as one after the other). At L = 2, H = 512 on the 2-core machine: 0.68-0.76 s
    against 0.97-1.13 s for 2,000 characters; beside a training, which the app runs at a
    lower priority (``charlstm_core.engine.parallel.lower_priority``), both cores then serve it.
    With several BLAS threads the layers go one after the other, each product on all of
    them (0.49-0.53 s there: each thread's half of W_hh stays in its core's L2).
    """
    T = len(ids)
    L = len(prep.layers)
    if prep._w0T is None:
        prep._w0T = np.ascontiguousarray(prep.w0.T)
    run = _LayerRun(prep, ids, state)
    threads = live_blas_threads()
    if L > 1 and T > PIPE_CHUNK and threads == 1 and usable_cores() > 1:
        with single_threaded_blas():
            others = [
                threading.Thread(target=run.layer, args=(k, 1), name=f"trace-layer-{k}")
                for k in range(1, L)
            ]
            for thread in others:
                thread.start()
            run.layer(0, 1)
            for thread in others:
                thread.join()
    else:
        for k in range(L):
            run.layer(k, threads)
    if run.failed:
        raise run.failed[0]
    x = run.hs[-1]
    logits = x @ prep.dec_w.T
    logits += prep.dec_b
    layers = list(zip(run.hs, run.cs, run.zs, strict=True))
    return logits, (run.h_last, run.c_last), layers


class _LayerRun:
    """The arrays of one ``trace`` and the recurrence of one layer over them, chunk by chunk;
    ``done[k]`` says how many characters layer k has written (what layer k + 1 may read)."""

    def __init__(self, prep: Any, ids: np.ndarray, state: State) -> None:
        cfg = prep.cfg
        self.prep, self.ids, (self.h0, self.c0) = prep, ids, state
        self.H, T, L = cfg.hidden_size, len(ids), len(prep.layers)
        dtype = np.dtype(cfg.dtype)
        self.hs = [np.empty((T, self.H), dtype) for _ in range(L)]
        self.cs = [np.empty((T, self.H), dtype) for _ in range(L)]
        self.zs = [np.empty((T, 4 * self.H), dtype) for _ in range(L)]
        self.h_last, self.c_last = np.empty_like(self.h0), np.empty_like(self.c0)
        self.chunks = [(a, min(T, a + PIPE_CHUNK)) for a in range(0, T, PIPE_CHUNK)]
        self.done = [0] * L
        self.failed: list[BaseException] = []
        self.cond = threading.Condition()

    def layer(self, k: int, threads: int) -> None:
        """Run layer ``k`` over the whole stream on ``threads`` BLAS threads (an exception is
        kept in ``failed`` and stops the layers waiting for this one)."""
        try:
            with np.errstate(over="ignore"):  # per thread: exp of a large -a gives σ = 0
                self._layer(k, threads)
        except BaseException as exc:
            with self.cond:
                self.failed.append(exc)
                self.cond.notify_all()

    def _layer(self, k: int, threads: int) -> None:
        prep, H = self.prep, self.H
        lay = prep.layers[k]
        blocks = row_blocks(lay.w, threads)
        order = (blocks, blocks[::-1])
        Z, hs, cs = self.zs[k], self.hs[k], self.cs[k]
        ig = np.empty(H, Z.dtype)
        h, c = self.h0[k, 0], self.c0[k, 0]
        for a, b in self.chunks:
            if k == 0:
                GX = prep._w0T[self.ids[a:b]]  # (b - a, 4H), bias included
            else:
                with self.cond:
                    self.cond.wait_for(lambda b=b: self.done[k - 1] >= b or bool(self.failed))
                    if self.failed:
                        return
                GX = self.hs[k - 1][a:b] @ lay.wx.T
                GX += lay.b[:, 0]
            for t in range(a, b):
                z = Z[t]
                for rows, wT in order[t & 1]:  # z = W_hh h, block by block (zigzag)
                    np.matmul(h, wT, out=z[rows])
                z += GX[t - a]
                gates(z, H)
                c = np.multiply(z[2 * H : 3 * H], c, out=cs[t])  # f ⊙ c_{t-1}
                c += np.multiply(z[H : 2 * H], z[3 * H :], out=ig)  # + i ⊙ g
                h = np.tanh(c, out=hs[t])
                h *= z[:H]  # h = o ⊙ tanh(c)
            with self.cond:
                self.done[k] = b
                self.cond.notify_all()
        self.h_last[k, 0], self.c_last[k, 0] = h, c
