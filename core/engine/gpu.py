"""The training step, evaluation and one-step inference behind one small interface, per device.

``CpuEngine`` is today's NumPy engine (``charlstm_core.engine.model``,
``charlstm_core.engine.optim``) unchanged.
``XpEngine`` is the same contract written once over an array module ``xp``: with ``xp = cupy`` it is
the GPU engine (cuBLAS products, the fused kernels of ``charlstm_core.engine.kernels``); with ``xp
= numpy`` the same code runs on the CPU, which is how the test suite checks it against
``CpuEngine``.

XpEngine works in PyTorch's layouts and gate order (i, f, g, o), time-major inside a batch::

    GX  (T, B, 4H)  W_ih x_t + b for every step (layer 0: rows of W_ihᵀ gathered by id)
    Hs  (T+1, B, H) Hs[t] = h_{t-1};  Cs (T+1, B, H) cell states, Cs[0] the carried one
    Gs  (T, B, 4H)  gate activations;  TC (T, B, H) tanh(c_t)
    a step: z = Hs[t] @ W_hhᵀ (one GEMM), then one fused kernel (gates, c, tanh c, h)

and backward, per step, one fused kernel and one GEMM (dh_{t-1} = da_t @ W_hh); the weight
gradients are one GEMM per matrix over all T·B rows. Adam and the clip are one kernel per
parameter. Model files are the same: parameters are kept in PyTorch's layouts, so ``to_host``
hands back exactly what ``charlstm_core.files.modelfile`` writes.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..errors import DeviceLostError, DeviceUnavailableError, GpuMemoryError
from . import model as cpu_model
from . import optim as cpu_optim
from .kernels import kernels_for

Params = dict[str, Any]


class CpuEngine:
    """Today's engine: ``charlstm_core.engine.model`` and ``charlstm_core.engine.optim`` called
    exactly as
    before."""

    kind = "cpu"
    label = "CPU"

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg

    def for_config(self, cfg: ModelConfig) -> CpuEngine:
        """This engine for another model (the trainer settles the vocabulary size)."""
        return _rebind(self, cfg)

    def to_device(self, a: np.ndarray) -> np.ndarray:
        return a

    def to_host(self, a: np.ndarray) -> np.ndarray:
        return a

    def adam(self, params: Params, **kw: Any) -> cpu_optim.Adam:
        return cpu_optim.Adam(params, **kw)

    def loss_and_grads(self, params, x, y, state, dropout_rng=None):
        return cpu_model.loss_and_grads(params, self.cfg, x, y, state, dropout_rng)

    def global_norm(self, grads: Params) -> float:
        return cpu_optim.global_norm(grads)

    def update(self, adam, params: Params, grads: Params, lr: float, clip: float, norm: float):
        cpu_optim.clip_grads(grads, clip, norm)
        adam.update(params, grads, lr)

    def mean_loss(self, params: Params, ids: np.ndarray, *, streams: int, seq_len: int) -> float:
        from ..sample import mean_loss

        prep = cpu_model.Prepared(params, self.cfg)
        return mean_loss(prep, self.cfg, ids, streams=streams, seq_len=seq_len)

    def stepper(self, params: Params) -> Callable:
        """``f(ids (B,), state) -> (logits (B, V) NumPy, state)``, weights prepared once."""
        return cpu_model.Prepared(params, self.cfg).step

    def zero_state(self, batch: int):
        return cpu_model.zero_state(self.cfg, batch)

    def copy(self, a: np.ndarray) -> np.ndarray:
        """A copy of ``a`` on this device (the trainer's in-memory keep point,
        charlstm_core.training.heal)."""
        return a.copy()

    def copy_into(self, src: Params, dst: Params | None) -> Params:
        """``src``'s arrays copied into ``dst``'s (same keys and shapes), or into new ones."""
        if dst is None:
            return {k: v.copy() for k, v in src.items()}
        for k, v in src.items():
            np.copyto(dst[k], v)
        return dst


class XpAdam:
    """Adam state on the device, shaped like ``charlstm_core.engine.optim.Adam`` (``m``, ``v``,
    ``t``)."""

    def __init__(self, xp: Any, params: Params, *, betas=(0.9, 0.999), eps=1e-8, m=None, v=None,
                 t: int = 0) -> None:  # fmt: skip
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = m if m is not None else {k: xp.zeros_like(p) for k, p in params.items()}
        self.v = v if v is not None else {k: xp.zeros_like(p) for k, p in params.items()}
        self.t = t


class XpEngine:
    """The training step, evaluation and inference over array module ``xp`` (see module doc).

    ``dropout="host"`` draws the masks from the trainer's NumPy generator exactly as the CPU
    engine does (the same masks on either engine: what the cross-check tests use); ``"device"``
    draws one seed from it per step and the masks on the device (no host→device copy of
    L·T·B·H floats per step: the GPU default; still exact on resume, the seed stream being in
    the checkpoint).
    """

    kind = "xp"

    def __init__(self, cfg: ModelConfig, xp: Any, *, gpu: int | None = None, label: str = "",
                 dropout: str = "host") -> None:  # fmt: skip
        self.cfg, self.xp = cfg, xp
        self.kind = "cpu" if xp is np else "gpu"
        self.label = label or ("CPU (array engine)" if xp is np else "GPU")
        self._gpu = gpu  # the CUDA device number, None with NumPy
        self._dropout = dropout
        self._k = kernels_for(xp)
        self._oom, self._lost = _error_types(xp)

    def for_config(self, cfg: ModelConfig) -> XpEngine:
        """This engine (device, dropout source) for another model."""
        return _rebind(self, cfg)

    # ------------------------------------------------------------------ device plumbing

    @contextlib.contextmanager
    def on_device(self) -> Iterator[None]:
        """Run on this engine's GPU; turn CUDA failures into the typed errors of
        charlstm_core.errors."""
        # a new Device object per entry: nesting and threads (a snapshot taken from the GUI
        # thread while the trainer runs) never share one object's saved-device stack
        ctx = contextlib.nullcontext() if self._gpu is None else self.xp.cuda.Device(self._gpu)
        try:
            with ctx:
                yield
        except self._oom:
            raise GpuMemoryError(
                "The GPU ran out of memory. Lower the batch size (or the hidden size or the "
                "sequence length) and continue; the last saved model is kept."
            ) from None
        except self._lost as e:
            raise DeviceLostError(
                f"The GPU stopped responding ({e}). Training stopped; check the GPU "
                "(nvidia-smi) and continue from the last saved model."
            ) from None
        except (OSError, RuntimeError, ImportError) as e:  # CuPy loads cuBLAS, NVRTC on first use
            if self.xp is np or ".so" not in str(e):
                raise
            raise DeviceUnavailableError(
                f"CuPy cannot load a CUDA library ({e}). Install them with "
                "pip install 'cupy-cuda12x[ctk]', or install the CUDA toolkit."
            ) from None

    def to_device(self, a: np.ndarray) -> Any:
        with self.on_device():
            return self.xp.asarray(a)

    def to_host(self, a: Any) -> np.ndarray:
        if self.xp is np:
            return a
        with self.on_device():
            return self.xp.asnumpy(a)

    def zero_state(self, batch: int):
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

    def adam(self, params: Params, *, m=None, v=None, t: int = 0) -> XpAdam:
        def dev(d: dict | None) -> dict | None:
            return None if d is None else {k: self.xp.asarray(a) for k, a in d.items()}

        with self.on_device():
            return XpAdam(self.xp, params, m=dev(m), v=dev(v), t=t)

    # ------------------------------------------------------------------ passes

    def _weights(self, params: Params) -> list[tuple[Any, Any, Any]]:
        """Per layer (W_ihᵀ (n_in, 4H) — layer 0's is (V, 4H), a gather table —, W_hhᵀ, b)."""
        xp = self.xp
        out = []
        for k in range(self.cfg.num_layers):
            wih = params[f"lstm.weight_ih_l{k}"]
            b = params[f"lstm.bias_ih_l{k}"] + params[f"lstm.bias_hh_l{k}"]
            wihT = xp.ascontiguousarray(wih.T)
            out.append((wihT, xp.ascontiguousarray(params[f"lstm.weight_hh_l{k}"].T), b))
        return out

    def _cell(self, z: Any, gx: Any, cp: Any, gates: Any, c: Any, tc: Any, h: Any) -> None:
        """One fused step: z, gx (B, 4H), cp (B, H) → gates (B, 4H), c, tanh c, h (B, H)."""
        H = self.cfg.hidden_size
        q = [slice(j * H, (j + 1) * H) for j in range(4)]
        self._k["forward"](*(z[:, s] for s in q), *(gx[:, s] for s in q), cp,
                           *(gates[:, s] for s in q), c, tc, h)  # fmt: skip

    def forward(self, params: Params, x: Any, state, masks=None, *, need_cache: bool = True):
        """x (B, T) ids → logits (T·B, V), final state, cache. masks: (T, B, H) per layer."""
        xp, cfg = self.xp, self.cfg
        B, T = x.shape
        H, dt = cfg.hidden_size, cfg.dtype
        xt = xp.ascontiguousarray(xp.asarray(x).T)  # (T, B)
        h0, c0 = state
        h_last, c_last = xp.empty_like(h0), xp.empty_like(c0)
        weights = self._weights(params)
        caches, out, inp = [], None, None
        z = xp.empty((B, 4 * H), dt)
        for k, (wihT, whhT, b) in enumerate(weights):
            if k == 0:
                gx_all = wihT[xt] + b  # (T, B, 4H): the one-hot product is a gather
            else:
                inp = out.reshape(T * B, H)
                gx_all = (inp @ wihT + b).reshape(T, B, 4 * H)
            Hs = xp.empty((T + 1, B, H), dt)
            Cs = xp.empty((T + 1, B, H), dt)
            Gs = xp.empty((T, B, 4 * H), dt)
            TC = xp.empty((T, B, H), dt)
            Hs[0], Cs[0] = h0[k], c0[k]
            for t in range(T):
                xp.matmul(Hs[t], whhT, out=z)
                self._cell(z, gx_all[t], Cs[t], Gs[t], Cs[t + 1], TC[t], Hs[t + 1])
            h_last[k], c_last[k] = Hs[T], Cs[T]
            out = Hs[1:]
            mask = None if masks is None else masks[k]
            if mask is not None:
                out = out * mask
            if need_cache:
                caches.append((Hs, Cs, Gs, TC, mask, inp))
        top = out.reshape(T * B, H)
        logits = top @ params["decoder.weight"].T + params["decoder.bias"]  # (T·B, V)
        cache = {"xt": xt, "layers": caches, "top": top} if need_cache else None
        return logits, (h_last, c_last), cache

    def backward(self, params: Params, cache: dict, dlogits: Any) -> Params:
        """Gradients of every parameter (PyTorch names and layouts); dlogits (T·B, V)."""
        xp, cfg = self.xp, self.cfg
        H, V, dt = cfg.hidden_size, cfg.vocab_size, cfg.dtype
        T, B = cache["xt"].shape
        grads: Params = {
            "decoder.weight": dlogits.T @ cache["top"],
            "decoder.bias": dlogits.sum(axis=0),
        }
        dout = (dlogits @ params["decoder.weight"]).reshape(T, B, H)
        q = [slice(j * H, (j + 1) * H) for j in range(4)]
        for k in reversed(range(cfg.num_layers)):
            Hs, Cs, Gs, TC, mask, inp = cache["layers"][k]
            if mask is not None:
                dout = dout * mask
            whh = params[f"lstm.weight_hh_l{k}"]  # (4H, H)
            dA = xp.empty((T, B, 4 * H), dt)
            dcf = xp.zeros((B, H), dt)
            dhr = xp.zeros((B, H), dt)
            for t in reversed(range(T)):
                g = Gs[t]
                self._k["backward"](dout[t], dhr, *(g[:, s] for s in q), TC[t], Cs[t],
                                    *(dA[t][:, s] for s in q), dcf)  # fmt: skip
                if t > 0:
                    xp.matmul(dA[t], whh, out=dhr)
            dAf = dA.reshape(T * B, 4 * H)
            grads[f"lstm.weight_hh_l{k}"] = dAf.T @ Hs[:T].reshape(T * B, H)
            if k > 0:
                grads[f"lstm.weight_ih_l{k}"] = dAf.T @ inp
                dout = (dAf @ params[f"lstm.weight_ih_l{k}"]).reshape(T, B, H)
            else:
                grads[f"lstm.weight_ih_l{k}"] = self._scatter(cache["xt"].reshape(-1), dAf, V).T
            db = dAf.sum(axis=0)
            grads[f"lstm.bias_ih_l{k}"] = db
            grads[f"lstm.bias_hh_l{k}"] = db.copy()
        return grads

    def _scatter(self, ids: Any, rows: Any, n: int) -> Any:
        """out[v] = Σ rows[j] over ids[j] == v: the gradient of layer 0's gather, (n, 4H)."""
        if self.xp is np:
            return cpu_model._scatter_rows(ids, rows, n)
        out = self.xp.zeros((n, rows.shape[1]), rows.dtype)
        self.xp.add.at(out, ids, rows)  # atomic adds on the GPU
        return out

    def _xent(self, logits: Any, yt: Any, norm: int) -> tuple[Any, Any]:
        """Mean cross-entropy (a 0-d float64 array, not yet synchronised) and ∂L/∂logits,
        written over ``logits`` (T·B, V); yt (T·B,) target ids."""
        xp = self.xp
        n = logits.shape[0]
        rows = xp.arange(n)
        logits -= logits.max(axis=1, keepdims=True)
        xp.exp(logits, out=logits)
        sums = logits.sum(axis=1)
        p_target = logits[rows, yt] / sums
        tiny = np.finfo(logits.dtype).tiny
        loss = -xp.log(xp.maximum(p_target, tiny)).astype(np.float64).mean()
        logits *= ((1.0 / norm) / sums)[:, None].astype(logits.dtype)
        logits[rows, yt] -= logits.dtype.type(1.0 / norm)
        return loss, logits

    def masks(self, rng: np.random.Generator | None, T: int, B: int) -> list | None:
        """Inverted-dropout masks on the device (see the class docstring for the two sources)."""
        cfg, xp = self.cfg, self.xp
        if rng is None or cfg.dropout <= 0.0:
            return None
        if self._dropout == "host":
            return [xp.asarray(m) for m in cpu_model.dropout_masks(cfg, rng, T, B)]
        seed = int(rng.integers(2**63))
        keep = 1.0 - cfg.dropout
        dt = np.dtype(cfg.dtype)
        shape = (cfg.num_layers, T, B, cfg.hidden_size)
        if xp is np:
            u = np.random.default_rng(seed).random(shape, dtype=dt)
        else:
            u = xp.random.RandomState(seed).random_sample(shape, dtype=dt)
        m = (u < keep).astype(dt) * dt.type(1.0 / keep)
        return list(m)

    def loss_and_grads(self, params: Params, x: np.ndarray, y: np.ndarray, state,
                       dropout_rng: np.random.Generator | None = None):  # fmt: skip
        """Same contract as ``charlstm_core.engine.model.loss_and_grads``: (loss, grads, final
        state)."""
        xp = self.xp
        B, T = x.shape
        with self.on_device():
            masks = self.masks(dropout_rng, T, B)
            logits, new_state, cache = self.forward(params, x, state, masks)
            yt = xp.asarray(np.ascontiguousarray(y.T).reshape(-1))
            loss, dlogits = self._xent(logits, yt, T * B)
            grads = self.backward(params, cache, dlogits)
            return float(loss), grads, new_state

    def global_norm(self, grads: Params) -> float:
        """√(Σ g²), one synchronisation: the per-array sums stay on the device until the end."""
        xp = self.xp
        with self.on_device():
            sq = [xp.vdot(g.reshape(-1), g.reshape(-1)).astype(np.float64) for g in grads.values()]
            return math.sqrt(float(xp.stack(sq).sum()))

    def update(self, adam: XpAdam, params: Params, grads: Params, lr: float, clip: float,
               norm: float) -> None:  # fmt: skip
        """Clip (PyTorch's rule, as ``charlstm_core.engine.optim.clip_grads``) and Adam, one kernel
        per
        array."""
        scale = 1.0
        if clip > 0 and clip / (norm + 1e-6) < 1.0:
            scale = clip / (norm + 1e-6)
        adam.t += 1
        b1, b2 = adam.beta1, adam.beta2
        dt = np.dtype(self.cfg.dtype).type
        step_size, inv_bias2 = lr / (1.0 - b1**adam.t), 1.0 / math.sqrt(1.0 - b2**adam.t)
        consts = [dt(c) for c in (scale, b1, b2, 1.0 - b1, 1.0 - b2, step_size, inv_bias2,
                                  adam.eps)]  # fmt: skip
        with self.on_device():
            for k, p in params.items():
                self._k["adam"](grads[k], *consts, p, adam.m[k], adam.v[k])

    # ------------------------------------------------------------------ inference, evaluation

    def mean_loss(self, params: Params, ids: np.ndarray, *, streams: int, seq_len: int) -> float:
        """As ``charlstm_core.sample.mean_loss``: streams side by side from zero states,
        nats/char."""
        from ..sample import eval_streams

        xp = self.xp
        x_all, y_all = eval_streams(ids, streams)
        streams, seg = x_all.shape
        with self.on_device():
            state = self.zero_state(streams)
            total = xp.zeros((), np.float64)
            for start in range(0, seg, seq_len):
                x = x_all[:, start : start + seq_len]
                y = y_all[:, start : start + seq_len]
                logits, state, _ = self.forward(params, x, state, need_cache=False)
                yt = xp.asarray(np.ascontiguousarray(y.T).reshape(-1))
                m = logits.max(axis=1)
                lse = xp.log(xp.exp(logits - m[:, None]).sum(axis=1)) + m
                total += (lse - logits[xp.arange(len(yt)), yt]).astype(np.float64).sum()
            return float(total) / (streams * seg)

    def scored_loss(self, params: Params, x: np.ndarray, y: np.ndarray, scored: np.ndarray,
                    state) -> tuple[float, Any]:  # fmt: skip
        """One window of ``charlstm_core.sample.evaluate``: x, y, scored (B, T) → (Σ next-character
        loss over the positions where ``scored``, final state), the state carried from ``state``."""
        xp = self.xp
        with self.on_device():
            logits, state, _ = self.forward(params, x, state, need_cache=False)  # (T·B, V)
            yt = xp.asarray(np.ascontiguousarray(y.T).reshape(-1))
            m = logits.max(axis=1)
            lse = xp.log(xp.exp(logits - m[:, None]).sum(axis=1)) + m
            losses = (lse - logits[xp.arange(len(yt)), yt]).astype(np.float64)
            keep = xp.asarray(np.ascontiguousarray(scored.T).reshape(-1))
            return float(losses[keep].sum()), state

    def stepper(self, params: Params) -> Callable:
        """``f(ids (B,), state) -> (logits (B, V) NumPy, state)``: one character per stream."""
        xp, H = self.xp, self.cfg.hidden_size
        with self.on_device():
            weights = self._weights(params)
        dec_wT = params["decoder.weight"].T
        dec_b = params["decoder.bias"]

        def step(ids: np.ndarray, state):
            with self.on_device():
                h0, c0 = state
                hs, cs = xp.empty_like(h0), xp.empty_like(c0)
                B = h0.shape[1]
                gates = xp.empty((B, 4 * H), self.cfg.dtype)
                tc = xp.empty((B, H), self.cfg.dtype)
                x = None
                for k, (wihT, whhT, b) in enumerate(weights):
                    gx = wihT[xp.asarray(ids)] + b if k == 0 else x @ wihT + b
                    self._cell(h0[k] @ whhT, gx, c0[k], gates, cs[k], tc, hs[k])
                    x = hs[k]
                logits = x @ dec_wT + dec_b
                return self.to_host(logits), (hs, cs)

        return step


def _rebind(engine: Any, cfg: ModelConfig) -> Any:
    new = copy.copy(engine)
    new.cfg = cfg
    return new


def _error_types(xp: Any) -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(out-of-memory, device-failure) exception types of ``xp`` (none for NumPy)."""
    if xp is np:
        return (), ()
    cuda = getattr(xp, "cuda", None)
    oom = getattr(getattr(cuda, "memory", None), "OutOfMemoryError", None)
    lost = [getattr(getattr(cuda, "runtime", None), "CUDARuntimeError", None),
            getattr(getattr(cuda, "driver", None), "CUDADriverError", None)]  # fmt: skip
    return (oom,) if oom else (), tuple(t for t in lost if t)
