"""Inspection's pass: one stream read with every activation recorded (``trace``).

Built on the same cell as training and sampling (``charlstm_core.engine.cell``, on the last
axis: one character's (4H,) row), over the weights of ``charlstm_core.engine.model.Prepared``.
What is particular to it is the schedule: layer by layer, a chunk of characters at a time, the
recurrence's matrix-vector product read in cache-sized blocks of rows (``row_blocks``), and on a
machine with spare cores the layers side by side on threads. That schedule is for a CPU's caches
and cores (``blocked=True``, the CPU engine); another device reads each step as one product,
layers in turn (``blocked=False``). Logits follow charlstm_core.engine.model's one layout: one
stream, (T, V).
"""

from __future__ import annotations

import threading
from typing import Any

from .cell import quiet_overflow
from .model import Prepared, State
from .parallel import live_blas_threads, single_threaded_blas, usable_cores

# Bytes of W_hh per matrix-vector product and BLAS thread in ``trace``: a quarter of an (4H, H)
# float32 W_hh at H = 512, half of the 2 MiB L2 cache of one core of the 2-core machine.
BLOCK_BYTES = 1 << 20
PIPE_CHUNK = 64  # characters one layer of ``trace`` hands on to the next at a time

Layers = list[tuple[Any, Any, Any]]  # per layer (h (T, H), c (T, H), z (T, 4H))


def row_blocks(w: Any, threads: int | None = 1) -> list[tuple[slice, Any]]:
    """W (R, H) as ``(rows, W[rows].T)`` blocks of consecutive rows for a product on ``threads``
    BLAS threads (None: one block, for a device without a CPU's caches): ``h @ W[rows].T`` is
    the slice ``rows`` of W h (each entry the same dot product of one row with h, so the result
    does not depend on the cut).

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
    if threads is None or w.nbytes <= 2 * BLOCK_BYTES * max(1, threads):
        return [(slice(0, n), w.T)]
    threads = max(1, threads)
    step = max(1, BLOCK_BYTES * threads // (width * w.itemsize))
    return [(slice(a, min(n, a + step)), w[a : a + step].T) for a in range(0, n, step)]


def trace(
    prep: Prepared, ids: Any, state: State, *, blocked: bool = True
) -> tuple[Any, State, Layers]:
    """One stream read for introspection, recording every activation (no dropout).

    ids (T,) → logits (T, V), the final state (each (L, 1, H)) and per layer ``(h, c, z)``:
    h (T, H) and c (T, H) after each character, z (T, 4H) the gate activations in the
    internal order o, i, f, g (σ for o, i, f; tanh for g).

    Layer by layer, like ``Prepared.forward``, so that one layer's W_hh stays in cache through
    its steps and each chunk of ``PIPE_CHUNK`` characters gets its input projection as one
    product (layer 0's one-hot input: a row gather); only the recurrence is stepped, each step
    a matrix-vector product on 1-D rows, which BLAS runs several times faster than
    ``forward``'s (4H, H) @ (H, 1) product at B = 1, made (``blocked``) block by block of
    W_hh's rows, alternately forwards and backwards, so that the blocks one step read last are
    still in cache for the next (``row_blocks``).

    ``blocked``, with BLAS held to one thread (as the app holds it beside a running training),
    two layers or more and more than one core: the layers run side by side, one thread each:
    layer k reads a chunk as soon as layer k - 1 has written it (a pipeline; the same results
    as one after the other). At L = 2, H = 512 on the 2-core machine: 0.68-0.76 s against
    0.97-1.13 s for 2,000 characters; beside a training, which the app runs at a lower priority
    (``charlstm_core.engine.parallel.lower_priority``), both cores then serve it. With several
    BLAS threads the layers go one after the other, each product on all of them (0.49-0.53 s
    there: each thread's half of W_hh stays in its core's L2).
    """
    T, L = len(ids), len(prep.layers)
    prep.w0_rows()  # made here, before any thread reads it
    run = _LayerRun(prep, ids, state)
    threads = live_blas_threads() if blocked else None
    if blocked and L > 1 and T > PIPE_CHUNK and threads == 1 and usable_cores() > 1:
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
    logits = run.hs[-1] @ prep.dec_w.T
    logits += prep.dec_b
    layers = list(zip(run.hs, run.cs, run.zs, strict=True))
    return logits, (run.h_last, run.c_last), layers


class _LayerRun:
    """The arrays of one ``trace`` and the recurrence of one layer over them, chunk by chunk;
    ``done[k]`` says how many characters layer k has written (what layer k + 1 may read)."""

    def __init__(self, prep: Prepared, ids: Any, state: State) -> None:
        cfg, xp = prep.cfg, prep.ops.xp
        self.prep, self.ids, (self.h0, self.c0) = prep, ids, state
        self.H, T, L = cfg.hidden_size, len(ids), len(prep.layers)
        dtype = cfg.dtype
        self.hs = [xp.empty((T, self.H), dtype) for _ in range(L)]
        self.cs = [xp.empty((T, self.H), dtype) for _ in range(L)]
        self.zs = [xp.empty((T, 4 * self.H), dtype) for _ in range(L)]
        self.h_last, self.c_last = xp.empty_like(self.h0), xp.empty_like(self.c0)
        self.chunks = [(a, min(T, a + PIPE_CHUNK)) for a in range(0, T, PIPE_CHUNK)]
        self.done = [0] * L
        self.failed: list[BaseException] = []
        self.cond = threading.Condition()

    def layer(self, k: int, threads: int | None) -> None:
        """Run layer ``k`` over the whole stream, its products on ``threads`` BLAS threads (None:
        unblocked); an exception is kept in ``failed`` and stops the layers waiting for this
        one."""
        try:
            with quiet_overflow(self.prep.ops.xp):  # per thread
                self._layer(k, threads)
        except BaseException as exc:
            with self.cond:
                self.failed.append(exc)
                self.cond.notify_all()

    def _layer(self, k: int, threads: int | None) -> None:
        prep, H = self.prep, self.H
        xp, cell = prep.ops.xp, prep.ops.cell
        lay = prep.layers[k]
        blocks = row_blocks(lay.w, threads)
        order = (blocks, blocks[::-1])
        Z, hs, cs = self.zs[k], self.hs[k], self.cs[k]
        tmp = xp.empty(H, Z.dtype)
        h, c = self.h0[k, 0], self.c0[k, 0]
        for a, b in self.chunks:
            if k == 0:
                GX = prep.w0_rows()[self.ids[a:b]]  # (b - a, 4H), bias included
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
                    xp.matmul(h, wT, out=z[rows])
                cell.forward(z, GX[t - a], c, cs[t], hs[t], tmp=tmp, axis=-1)
                h, c = hs[t], cs[t]
            with self.cond:
                self.done[k] = b
                self.cond.notify_all()
        self.h_last[k, 0], self.c_last[k, 0] = h, c
