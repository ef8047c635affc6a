"""The character LSTM: parameters in PyTorch's names and layouts, and the passes built on the cell.

The maths of one layer step and of the loss is ``charlstm_core.engine.cell`` (read its docstring
for the gate equations and the internal gate order and scaling). Layer 0 reads one-hot
characters, so ``W_ih x_t`` is the column ``W_ih[:, x_t]``: it is gathered, never multiplied.
Layer k > 0 reads layer k-1's output after inverted dropout. The decoder maps the top layer's
output (after dropout) to V logits; the loss is the softmax cross-entropy averaged over all B*T
characters, in nats.

Parameters use PyTorch's names and layouts (see ``param_shapes``), so a model file drops into
``torch.nn.LSTM(V, H, L, batch_first=True)`` + ``torch.nn.Linear(H, V)``. The passes work on a
*prepared* copy (``Prepared``): gates reordered, rows scaled, the two biases summed, and the
arrays inside the passes time-major (see ``Prepared`` for the layouts and why). ``Prepared`` is
written against the array module of its ``Ops`` (NumPy on the CPU, CuPy on a GPU), and the
cell's step is the one of its ``Ops`` (``Cell``'s ufuncs, or a device's fused kernels of the
same maths): the GPU engine runs these very passes. Running a batch in slices on threads, and
choosing the device, is the engines' job (``charlstm_core.engine.cpu``, ``gpu``).

Logits have one layout everywhere: time before batch, the vocabulary last. ``Prepared.forward``
returns (T, B, V), ``Prepared.step`` one time step of it (B, V), the inspection's trace
(``charlstm_core.engine.trace``) one stream (T, V); ``cell.softmax_xent``, ``cell.nll`` and
``Prepared.backward`` take (T, B, V). The training pass's (T, B, V) is a transposed view of the
(V, T*B) decoder product, so the loss reduces over V across contiguous rows of T*B (vectorised)
and ``backward`` multiplies the same memory without a copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import ModelConfig
from .cell import Cell, gate_perm, gate_scale, quiet_overflow

Params = dict[str, Any]  # parameter or gradient arrays by PyTorch name (NumPy, or on a device)
State = tuple[Any, Any]  # (h, c), each (L, B, H)


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every parameter, in PyTorch's layout."""
    V, H = cfg.vocab_size, cfg.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(cfg.num_layers):
        shapes[f"lstm.weight_ih_l{k}"] = (4 * H, V if k == 0 else H)
        shapes[f"lstm.weight_hh_l{k}"] = (4 * H, H)
        shapes[f"lstm.bias_ih_l{k}"] = (4 * H,)
        shapes[f"lstm.bias_hh_l{k}"] = (4 * H,)
    shapes["decoder.weight"] = (V, H)
    shapes["decoder.bias"] = (V,)
    return shapes


def param_names(cfg: ModelConfig) -> list[str]:
    return list(param_shapes(cfg))


def count_params(cfg: ModelConfig) -> int:
    return sum(int(np.prod(s)) for s in param_shapes(cfg).values())


def init_params(cfg: ModelConfig, rng: np.random.Generator) -> Params:
    """PyTorch's initialisation: U(-1/√H, 1/√H) everywhere, forget-gate bias 1 (in ``bias_ih``).

    The decoder uses U(-1/√H, 1/√H) for weights and zero bias.
    """
    dtype = np.dtype(cfg.dtype)
    H = cfg.hidden_size
    bound = 1.0 / np.sqrt(H)
    params: Params = {}
    for name, shape in param_shapes(cfg).items():
        if name == "decoder.bias":
            params[name] = np.zeros(shape, dtype)
        else:
            params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    for k in range(cfg.num_layers):
        params[f"lstm.bias_ih_l{k}"][H : 2 * H] = 1.0
        params[f"lstm.bias_hh_l{k}"][H : 2 * H] = 0.0
    return params


def zero_state(cfg: ModelConfig, batch: int) -> State:
    """Zero (h, c), each (L, batch, H), NumPy."""
    shape = (cfg.num_layers, batch, cfg.hidden_size)
    return np.zeros(shape, cfg.dtype), np.zeros(shape, cfg.dtype)


def dropout_masks(
    cfg: ModelConfig, rng: np.random.Generator | None, T: int, B: int
) -> list[np.ndarray | None] | None:
    """Inverted-dropout masks, one (T, B, H) per layer output, or None when dropout is off."""
    p = cfg.dropout
    if rng is None or p <= 0.0:
        return None
    keep = 1.0 - p
    dtype = np.dtype(cfg.dtype)
    masks = []
    for _ in range(cfg.num_layers):
        m = rng.random((T, B, cfg.hidden_size), dtype=dtype) < keep
        masks.append(m.astype(dtype) * dtype.type(1.0 / keep))
    return masks


def scatter_rows(ids: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """out[v] = Σ rows[j] over j with ids[j] == v; ids (N,), rows (N, D) → (n, D).

    The gradient of a gather, on the CPU. Sorting the ids and summing each run of contiguous rows
    is one pass over the data whatever the vocabulary size (a one-hot product would cost N·n·D
    and an (N, n) matrix: 6,000-character vocabularies must stay fast).
    """
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    sorted_rows = rows[order]
    bounds = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1], True])
    out = np.zeros((n, rows.shape[1]), rows.dtype)
    # one sum per distinct id: measured ~6x faster here than add.reduceat(axis=0)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        np.sum(sorted_rows[a:b], axis=0, out=out[sorted_ids[a]])
    return out


@dataclass(frozen=True)
class Ops:
    """What a device brings to the passes: its array module, the cell's step (``Cell``, or fused
    kernels of the same maths) and the gradient of a gather (``scatter_rows`` on the CPU)."""

    xp: Any
    cell: Any  # forward(z, x, c_prev, c, h, *, tc, tmp, axis), backward(...): see cell.Cell
    scatter: Callable[[Any, Any, int], Any]  # (ids (N,), rows (N, D), n) -> (n, D)


NUMPY = Ops(np, Cell(np), scatter_rows)


@dataclass
class _Layer:
    w: Any  # (4H, H) W_hh, internal gate order, scaled (see Prepared)
    wx: Any  # (4H, H) W_ih scaled, layers k > 0 (layer 0's is Prepared.w0)
    b: Any  # (4H, 1) b_ih + b_hh, internal order, scaled (k = 0: folded into w0)
    wx_u: Any  # (4H, n_in) W_ih, internal order, unscaled: dx_t = wx_u.T @ da_t
    wh_u: Any  # (4H, H) W_hh, internal order, unscaled: dh_{t-1}ᵀ = da_tᵀ @ wh_u
    cat_t: Any = None  # (2H, 4H) [W_ih | W_hh].T scaled, k > 0, made by the first step()


class Prepared:
    """Weights laid out for fast passes. Build once per set of weights (once per training step).

    Gates in the internal order o, i, f, g, rows scaled so that one ``exp`` serves all four
    gates (``charlstm_core.engine.cell``), the two biases summed. Layouts inside the passes
    (measured on the 2-core AVX2 machine, OpenBLAS, 2 threads):

    * every layer's input projection W_ih x_t + b is computed for all T steps before its
      recurrence, ``GX`` (4H, T, B), so that a step multiplies only W_hh (4H, H) @ h_{t-1}
      and adds its (4H, B) slice of ``GX``. Layer 0's input is one-hot, so it is never
      formed: its projection (bias folded in) is gathered from columns of W_ih, and dW_ih is
      a scatter of rows (``scatter_rows``), so a 6,000-character vocabulary costs no more per
      step than 65 characters. Layer k > 0's is one flat (4H, H) @ (H, T*B) product, which runs
      near the BLAS peak, where a per-step [W_ih | W_hh] (4H, 2H) product on [x_t, h_{t-1}]
      would stream twice the weights through the cache every step (measured 1.7 ms against
      0.56 ms per step at H = 512, B = 16 on one thread);
    * the hidden states are kept in ``XH`` (T+1, B, H), ``XH[t] = h_{t-1}``; reading
      ``XH[t].T`` (a transposed view) costs OpenBLAS nothing;
    * per-step gate work is on contiguous (4H, B) blocks ``G[t]`` of a (T, 4H, B) array (the
      cell's ``axis`` 0), the orientation (4H, K) @ (K, B) being OpenBLAS's fastest at small B,
      and elementwise passes on contiguous blocks 3-4x faster than on strided views;
    * the per-step gradient ∂L/∂a is written contiguously into (T, 4H, B); one transpose per
      layer (in cache-sized (4H, B) blocks) gives the flat (T*B, 4H) operand of the weight
      gradients and of the gradient passed down, which arrives as (T, B, H).

    ``params`` may be NumPy arrays or arrays of ``ops.xp`` (they are moved there once).
    """

    def __init__(self, params: Params, cfg: ModelConfig, ops: Ops = NUMPY) -> None:
        self.cfg, self.ops = cfg, ops
        xp = ops.xp
        H = cfg.hidden_size
        dtype = np.dtype(cfg.dtype)
        self.perm = xp.asarray(gate_perm(H))
        scale = gate_scale(H, dtype, xp)
        self.layers: list[_Layer] = []
        for k in range(cfg.num_layers):
            wx_u = xp.asarray(params[f"lstm.weight_ih_l{k}"])[self.perm]
            wh_u = xp.asarray(params[f"lstm.weight_hh_l{k}"])[self.perm]
            bias = xp.asarray(params[f"lstm.bias_ih_l{k}"]) + xp.asarray(
                params[f"lstm.bias_hh_l{k}"]
            )
            b = bias[self.perm][:, None]
            b *= scale
            wx = wx_u * scale
            if k == 0:
                # The one-hot input is never formed: its product is a gathered column of this
                # copy of W_ih (4H, V), scaled, bias folded in.
                wx += b
                self.w0 = wx
                wx = None
            self.layers.append(_Layer(w=wh_u * scale, wx=wx, b=b, wx_u=wx_u, wh_u=wh_u))
        self.dec_w = xp.asarray(params["decoder.weight"])  # (V, H)
        self.dec_b = xp.asarray(params["decoder.bias"])  # (V,)
        self._w0T: Any = None  # (V, 4H) contiguous copy of w0, made on first use

    def w0_rows(self) -> Any:
        """Layer 0's scaled input weights with the bias, (V, 4H) contiguous: a character's row of
        pre-activations is one gather (the one-character passes read rows; made once)."""
        if self._w0T is None:
            self._w0T = self.ops.xp.ascontiguousarray(self.w0.T)
        return self._w0T

    # ---------------------------------------------------------------- training passes

    def forward(
        self,
        x: Any,
        state: State,
        *,
        masks: list[Any] | None = None,
        need_cache: bool = True,
    ) -> tuple[Any, State, dict | None]:
        """Run the LSTM over a batch of sequences.

        x: (B, T) ids. state: (h, c), each (L, B, H). masks: optional inverted-dropout masks, one
        per layer output, each (T, B, H) already divided by the keep probability (None = no
        dropout there), as made by ``dropout_masks``. Returns logits (T, B, V) (a view, see the
        module docstring), the final state and the cache for ``backward`` (None when
        ``need_cache`` is false).

        The cache's ``"layers"`` entries are ``(XH, G, Cs, TC, mask, inp)``: ``XH`` (T+1, B, H)
        with ``XH[t] = h_{t-1}`` (so ``XH[1:]`` are the layer's outputs before dropout), gate
        activations (T, 4H, B) in internal order, cell states (T+1, H, B) with ``Cs[0]`` the
        initial one, tanh(c) (T, H, B), the dropout mask of the output, and the layer's input
        (T*B, H) (None at layer 0, whose input is one-hot).
        """
        cfg, xp, cell = self.cfg, self.ops.xp, self.ops.cell
        B, T = x.shape
        H, V = cfg.hidden_size, cfg.vocab_size
        dtype = np.dtype(cfg.dtype)
        xt = xp.ascontiguousarray(xp.asarray(x).T)  # (T, B)
        h0, c0 = state
        h_last, c_last = xp.empty_like(h0), xp.empty_like(c0)
        layer_caches = []
        out = None  # (T, B, H) output of the layer below, after dropout
        with quiet_overflow(xp):
            for k, lay in enumerate(self.layers):
                XH = xp.empty((T + 1, B, H), dtype)
                G = xp.empty((T, 4 * H, B), dtype)
                # every step's input projection at once, (4H, T, B); each step adds its
                # (4H, B) slice (measured cheaper than a transposed copy to (T, 4H, B))
                if k == 0:  # columns of W_ih gathered by id (cheaper than a one-hot product)
                    inp = None
                    GX = xp.take(self.w0, xt, axis=1)
                else:
                    inp = out.reshape(T * B, H)
                    GX = xp.matmul(lay.wx, inp.T).reshape(4 * H, T, B)
                    GX += lay.b[:, :, None]
                XH[0] = h0[k]
                Cs = xp.empty((T + 1, H, B), dtype)
                TC = xp.empty((T, H, B), dtype)
                tmp = xp.empty((H, B), dtype)
                Cs[0] = c0[k].T
                for t in range(T):
                    z = G[t]
                    xp.matmul(lay.w, XH[t].T, out=z)
                    cell.forward(z, GX[:, t], Cs[t], Cs[t + 1], XH[t + 1].T, tc=TC[t], tmp=tmp)
                del GX
                h_last[k], c_last[k] = XH[T], Cs[T].T
                out = XH[1:]
                mask = masks[k] if masks is not None else None
                if mask is not None:
                    out = out * mask
                if need_cache:
                    layer_caches.append((XH, G, Cs, TC, mask, inp))
        top = out.reshape(T * B, H)  # a view, also when ``out`` is a slice of XH
        logits = self.dec_w @ top.T  # (V, T*B)
        logits += self.dec_b[:, None]
        cache = {"x": xt, "layers": layer_caches, "top": top}
        logits = logits.reshape(V, T, B).transpose(1, 2, 0)  # (T, B, V) view
        return logits, (h_last, c_last), cache if need_cache else None

    def backward(self, cache: dict, dlogits: Any) -> Params:
        """Gradients of the loss with respect to every parameter (PyTorch names and layouts).

        dlogits: (T, B, V), the loss gradient with respect to the logits of ``forward``. The
        state passed in to ``forward`` is treated as a constant (truncated BPTT). Each step is
        ``Cell.backward`` (the formulas are in its docstring) and one product,
        dh_{t-1} = W_hhᵀ da_t; the weight gradients are one product per matrix over all T*B rows.
        """
        cfg, xp, cell = self.cfg, self.ops.xp, self.ops.cell
        H, V = cfg.hidden_size, cfg.vocab_size
        T, B = cache["x"].shape
        dtype = np.dtype(cfg.dtype)
        top = cache["top"]  # (T*B, H)
        dlog = dlogits.transpose(2, 0, 1).reshape(V, T * B)  # a view of forward's logits
        grads: Params = {
            "decoder.weight": dlog @ top,
            "decoder.bias": dlog.sum(axis=1),
        }
        dout = (dlog.T @ self.dec_w).reshape(T, B, H)  # ∂L/∂(top layer's output)
        work = (xp.empty((4 * H, B), dtype), xp.empty((H, B), dtype), xp.empty((H, B), dtype))
        for k in reversed(range(cfg.num_layers)):
            lay = self.layers[k]
            XH, G, Cs, TC, mask, inp = cache["layers"][k]
            if mask is not None:
                dout *= mask
            dA = xp.empty((T, 4 * H, B), dtype)
            dc = xp.zeros((H, B), dtype)
            # W_hhᵀ da_t as its transpose da_tᵀ W_hh (B, 4H) @ (4H, H): W_hh contiguous, the
            # transposed operand the small one (measured 482 against 550 us for W_hh.T @ da_t,
            # H = 512, B = 16, one thread; benchmarks/README.md, issue 18)
            dh_next = xp.zeros((B, H), dtype)
            for t in reversed(range(T)):
                a = dA[t]
                cell.backward(dout[t].T, dh_next.T, G[t], TC[t], Cs[t], dc, a, work)
                if t > 0:
                    xp.matmul(a.T, lay.wh_u, out=dh_next)
            # (T, 4H, B) → (T*B, 4H): each (4H, B) block transposed in cache
            dAf = xp.ascontiguousarray(dA.transpose(0, 2, 1)).reshape(T * B, 4 * H)
            parts = [("hh", dAf.T @ XH[:T].reshape(T * B, H))]  # internal gate order
            if k > 0:
                parts.append(("ih", dAf.T @ inp))
            else:  # the gradient of the gather: rows of dAf summed by character id
                parts.append(("ih", self.ops.scatter(cache["x"].reshape(-1), dAf, V).T))
            for name, part in parts:
                full = xp.empty_like(part)
                full[self.perm] = part
                grads[f"lstm.weight_{name}_l{k}"] = full
            db = xp.empty(4 * H, dtype)
            db[self.perm] = dAf.sum(axis=0)
            grads[f"lstm.bias_ih_l{k}"] = db
            grads[f"lstm.bias_hh_l{k}"] = db.copy()
            if k > 0:
                dout = (dAf @ lay.wx_u).reshape(T, B, H)
        return grads

    # ---------------------------------------------------------------- one character

    def step(self, ids: Any, state: State) -> tuple[Any, State]:
        """One character per stream. ids (B,) → logits (B, V) and the next state (new arrays).

        Memory-bound at B = 1 (each step reads every weight once): one product per layer, the
        cell on the last axis (B, 4H); layer 0's one-hot input a gathered row of ``w0_rows``,
        layer k > 0's input and recurrence one product on [x, h] (the weights read once, in one
        call).
        """
        xp, cell = self.ops.xp, self.ops.cell
        h0, c0 = state  # (L, B, H)
        hs, cs = xp.empty_like(h0), xp.empty_like(c0)
        x = None  # (B, H)
        with quiet_overflow(xp):
            for k, lay in enumerate(self.layers):
                if k == 0:
                    z = h0[0] @ lay.w.T  # (B, 4H)
                    gx = self.w0_rows()[ids]  # (B, 4H), bias included
                else:
                    if lay.cat_t is None:
                        lay.cat_t = xp.concatenate([lay.wx, lay.w], axis=1).T
                    z = xp.concatenate([x, h0[k]], axis=1) @ lay.cat_t
                    gx = lay.b[:, 0]
                cell.forward(z, gx, c0[k], cs[k], hs[k], axis=-1)
                x = hs[k]
        logits = x @ self.dec_w.T
        logits += self.dec_b
        return logits, (hs, cs)
