"""The CPU engine: the model's passes on NumPy, a batch cut in slices run side by side on threads.

``CpuEngine`` implements ``charlstm_core.engine.protocol.Engine`` in full. Its passes are
``charlstm_core.engine.model.Prepared`` (the cell of ``charlstm_core.engine.cell``), its optimizer
``charlstm_core.engine.optim``, inspection's schedule ``charlstm_core.engine.trace``, and the
threads ``charlstm_core.engine.parallel``. The GPU engine (``charlstm_core.engine.gpu.XpEngine``)
is this engine over CuPy: the same methods, with the device's fused kernels, transfers, its own
dropout source and no slices; so nothing here is written twice.

Every method that touches the device's arrays runs inside ``on_device`` (nothing on the CPU).
"""

from __future__ import annotations

import contextlib
import copy as copy_module
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..errors import ConfigError
from .cell import nll, softmax_xent
from .model import NUMPY, Ops, Params, Prepared, State, dropout_masks
from .optim import Adam, clip_scale, global_norm
from .parallel import batch_workers, map_slices, slices, thread_workers
from .trace import Layers, trace


class CpuEngine:
    """The engine on NumPy (see the module docstring)."""

    label = "CPU"
    blocked_trace = True  # inspection scheduled for a CPU's caches and cores (trace.py)

    def __init__(self, cfg: ModelConfig, *, workers: int | None = None) -> None:
        self.cfg = cfg
        # slices a batch is cut into (None: as charlstm_core.engine.parallel.batch_workers decides)
        self.workers = workers
        self.xp: Any = np
        self.ops: Ops = NUMPY
        self.adam_kernel: Any = None  # a fused Adam (kernels.ADAM), or None: optim's ufuncs

    def for_config(self, cfg: ModelConfig) -> CpuEngine:
        """This engine (device, settings) for another model (the trainer settles the vocabulary
        size)."""
        new = copy_module.copy(self)
        new.cfg = cfg
        return new

    # ------------------------------------------------------------------ arrays on the device

    @contextlib.contextmanager
    def on_device(self) -> Iterator[None]:
        """The device current, its failures turned into typed errors (the CPU: nothing to do)."""
        yield

    def to_device(self, a: np.ndarray) -> Any:
        return a

    def to_host(self, a: Any) -> np.ndarray:
        return a

    def zero_state(self, batch: int) -> State:
        shape = (self.cfg.num_layers, batch, self.cfg.hidden_size)
        with self.on_device():
            return self.xp.zeros(shape, self.cfg.dtype), self.xp.zeros(shape, self.cfg.dtype)

    def copy(self, a: Any) -> Any:
        """A copy of ``a`` on this device (the trainer's in-memory keep point,
        charlstm_core.training.heal)."""
        with self.on_device():
            return a.copy()

    def copy_into(self, src: Params, dst: Params | None) -> Params:
        """``src``'s arrays copied into ``dst``'s on the device (same keys and shapes), or into
        new ones: a keep point or a rollback never passes through the host."""
        with self.on_device():
            if dst is None:
                return {k: v.copy() for k, v in src.items()}
            for k, v in src.items():
                self.xp.copyto(dst[k], v)
            return dst

    def _ids(self, a: np.ndarray) -> Any:
        """Host ids or flags (any view), contiguous on the device."""
        return self.xp.asarray(np.ascontiguousarray(a))

    def _slices(self, batch: int) -> list[slice]:
        n = batch_workers(batch, self.cfg.hidden_size) if self.workers is None else self.workers
        return slices(batch, n)

    # ------------------------------------------------------------------ training

    def adam(
        self, params: Params, *, m: dict | None = None, v: dict | None = None, t: int = 0
    ) -> Adam:
        def dev(d: dict | None) -> dict | None:
            return None if d is None else {k: self.to_device(a) for k, a in d.items()}

        with self.on_device():
            return Adam(params, m=dev(m), v=dev(v), t=t, xp=self.xp, fused=self.adam_kernel)

    def masks(self, rng: np.random.Generator | None, T: int, B: int) -> list[Any] | None:
        """Inverted-dropout masks for a (B, T) batch, one (T, B, H) per layer (None: no
        dropout), drawn from the trainer's generator (charlstm_core.engine.model.dropout_masks)."""
        return dropout_masks(self.cfg, rng, T, B)

    def loss_and_grads(
        self,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        state: State,
        dropout_rng: np.random.Generator | None = None,
    ) -> tuple[float, Params, State]:
        """Mean cross-entropy over the batch and its gradients (see the protocol).

        The B streams are cut into slices run side by side (``workers``; see
        ``charlstm_core.engine.parallel``). The slices' gradients are summed, so the result
        equals the one-slice pass up to float rounding; the dropout masks are drawn for the
        whole batch first, so the random stream does not depend on the cut.
        """
        B, T = x.shape
        with self.on_device():
            prep = self.prepare(params)
            masks = self.masks(dropout_rng, T, B)

            def run(rows: slice) -> tuple[Any, Params, State]:
                part_masks = None if masks is None else [m[:, rows] for m in masks]
                part_state = (state[0][:, rows], state[1][:, rows])
                logits, new_state, cache = prep.forward(x[rows], part_state, masks=part_masks)
                yt = self._ids(y[rows].T)
                loss, dlogits = softmax_xent(logits, yt, norm=T * B, xp=self.xp)
                return (
                    loss * ((rows.stop - rows.start) / B),
                    prep.backward(cache, dlogits),
                    new_state,
                )

            results = map_slices(run, self._slices(B))
            loss, grads, new_state = results[0]
            for part_loss, part_grads, _ in results[1:]:
                loss += part_loss
                for name, g in part_grads.items():
                    grads[name] += g
            if len(results) > 1:
                new_state = tuple(
                    self.xp.concatenate([r[2][i] for r in results], axis=1) for i in (0, 1)
                )
            return float(loss), grads, new_state

    def global_norm(self, grads: Params) -> float:
        with self.on_device():
            return global_norm(grads, self.xp)

    def update(
        self, adam: Adam, params: Params, grads: Params, lr: float, clip: float, norm: float
    ) -> None:
        n = thread_workers() if self.workers is None else self.workers

        def run(fn: Any, count: int) -> None:  # Adam's pieces on the batch's threads
            map_slices(fn, slices(count, n))

        with self.on_device():
            adam.update(params, grads, lr, clip_scale(clip, norm), run=run)

    # ------------------------------------------------------------------ reading

    def prepare(self, params: dict[str, Any]) -> Prepared:
        with self.on_device():
            return Prepared(params, self.cfg, self.ops)

    def _window(
        self, prep: Prepared, x: np.ndarray, y: np.ndarray, scored: np.ndarray | None, state: State
    ) -> tuple[Any, State]:
        """Σ loss over one window's scored positions (a 0-d float64 array, on the device) and the
        state after it; the streams in slices on threads."""
        xp = self.xp
        h, c = state
        h2, c2 = xp.empty_like(h), xp.empty_like(c)

        def run(rows: slice) -> Any:
            logits, (hr, cr), _ = prep.forward(x[rows], (h[:, rows], c[:, rows]), need_cache=False)
            h2[:, rows], c2[:, rows] = hr, cr
            losses = nll(logits, self._ids(y[rows].T), xp)  # (T, rows)
            if scored is not None:
                losses = losses[self._ids(scored[rows].T)]
            return losses.sum()

        parts = map_slices(run, self._slices(len(x)))
        return sum(parts[1:], parts[0]), (h2, c2)

    def scored_loss(
        self, prep: Prepared, x: np.ndarray, y: np.ndarray, scored: np.ndarray | None, state: State
    ) -> tuple[float, State]:
        with self.on_device():
            total, state = self._window(prep, x, y, scored, state)
            return float(total), state

    def mean_loss(self, params: Params, ids: np.ndarray, *, streams: int, seq_len: int) -> float:
        x_all, y_all = eval_streams(ids, streams)
        streams, seg = x_all.shape
        with self.on_device():
            prep = self.prepare(params)
            state = self.zero_state(streams)
            total = 0.0
            for start in range(0, seg, seq_len):
                w = slice(start, start + seq_len)
                part, state = self._window(prep, x_all[:, w], y_all[:, w], None, state)
                total = total + part  # on the device until the one read below
            return float(total) / (streams * seg)

    def step(self, prep: Prepared, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        with self.on_device():
            logits, state = prep.step(self._ids(ids), state)
            return self.to_host(logits), state

    def trace(
        self, prep: Prepared, ids: np.ndarray, state: State
    ) -> tuple[np.ndarray, State, Layers]:
        with self.on_device():
            logits, state, layers = trace(prep, self._ids(ids), state, blocked=self.blocked_trace)
            host = self.to_host
            return host(logits), state, [(host(h), host(c), host(z)) for h, c, z in layers]


def eval_streams(ids: np.ndarray, streams: int) -> tuple[np.ndarray, np.ndarray]:
    """``ids`` (N,) cut into ``streams`` (at most N-1) equal contiguous pieces side by side:
    the inputs and their next characters, each (streams, seg) int64; the few characters that do
    not fill the last column are dropped. ConfigError for a text of fewer than 2 characters."""
    n = len(ids) - 1
    streams = max(1, min(streams, n))
    seg = n // streams
    if seg < 1:
        raise ConfigError("The text is too short to evaluate: it needs at least 2 characters.")
    x_all = ids[: streams * seg].reshape(streams, seg).astype(np.int64)
    y_all = ids[1 : streams * seg + 1].reshape(streams, seg).astype(np.int64)
    return x_all, y_all
