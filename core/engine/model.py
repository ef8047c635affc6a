"""The character LSTM: parameters, forward and backward passes, one-step inference.

Notation (per layer, per time step t; ``σ`` the logistic function, ``⊙`` the elementwise product)::

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh     (4H,) gate pre-activations, order i, f, g, o
    i = σ(a_i)   f = σ(a_f)   g = tanh(a_g)   o = σ(a_o)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    h_t = o ⊙ tanh(c_t)

Layer 0 reads one-hot characters, so ``W_ih x_t`` is the column ``W_ih[:, x_t]``: it is gathered,
never multiplied. Layer k > 0 reads layer k-1's output after inverted dropout. The decoder maps the
top layer's output (after dropout) to V logits; the loss is the softmax cross-entropy averaged over
all B*T characters, in nats.

Parameters use PyTorch's names and layouts (see ``param_shapes``), so a model file drops into
``torch.nn.LSTM(V, H, L, batch_first=True)`` + ``torch.nn.Linear(H, V)``. For speed the passes
work on a *prepared* copy (``Prepared``): gates reordered to o, i, f, g, rows pre-scaled so that
a single ``exp`` over all four gates gives σ and tanh, and the two biases summed. Arrays inside
the passes are time-major (see ``Prepared`` for the layouts and why). The one-character passes
(``Prepared.step``, for sampling, and ``Prepared.trace``, for inspection) are in
``charlstm_core.engine.inference``.

Logits have one layout everywhere: time before batch, the vocabulary last. ``Prepared.forward``
returns (T, B, V), ``Prepared.step`` one time step of it (B, V), ``Prepared.trace`` one stream
(T, V); ``softmax_xent``, ``nll`` and ``Prepared.backward`` take (T, B, V). The training pass's
(T, B, V) is a transposed view of the (V, T*B) decoder product, so the loss reduces over V across
contiguous rows of T*B (vectorised) and ``backward`` multiplies the same memory without a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ModelConfig
from . import inference
from .inference import State, gates
from .parallel import batch_workers, map_slices, slices

Params = dict[str, np.ndarray]


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
    shape = (cfg.num_layers, batch, cfg.hidden_size)
    return np.zeros(shape, cfg.dtype), np.zeros(shape, cfg.dtype)


def _gate_perm(H: int) -> np.ndarray:
    """Row indices taking PyTorch's gate order (i, f, g, o) to the internal one (o, i, f, g).

    Internal order: the three sigmoid gates o, i, f are one contiguous block (one derivative
    pass in ``backward``) and i, f, g, the three gates multiplied by ∂L/∂c, another (one
    broadcast product per step).
    """
    r = np.arange(H)
    return np.concatenate([r + 3 * H, r, r + H, r + 2 * H])


@dataclass
class _Layer:
    w: np.ndarray  # (4H, H) W_hh, internal gate order, scaled (see Prepared)
    wx: np.ndarray | None  # (4H, H) W_ih scaled, layers k > 0 (layer 0's is Prepared.w0)
    b: np.ndarray  # (4H, 1) b_ih + b_hh, internal order, scaled (k = 0: folded into w0)
    wx_u: np.ndarray  # (4H, n_in) W_ih, internal order, unscaled: dx_t = wx_u.T @ da_t
    wh_u: np.ndarray  # (4H, H) W_hh, internal order, unscaled: dh_{t-1} = wh_u.T @ da_t
    cat_t: np.ndarray | None = None  # (2H, 4H) [W_ih | W_hh].T scaled, k > 0, made by step()


class Prepared:
    """Weights laid out for fast passes. Build once per set of weights (once per training step).

    Gate pre-activations are scaled so that one ``exp`` serves all four gates: rows o, i, f hold
    -a (σ(a) = 1 / (1 + e^-a)) and rows g hold -2a (tanh a = 2σ(2a) - 1).

    Layouts inside the passes (measured on the 2-core AVX2 machine, OpenBLAS, 2 threads):

    * every layer's input projection W_ih x_t + b is computed for all T steps before its
      recurrence, ``GX`` (4H, T, B), so that a step multiplies only W_hh (4H, H) @ h_{t-1}
      and adds its (4H, B) slice of ``GX``. Layer 0's input is one-hot, so it is never
      formed: its projection (bias folded in) is gathered from columns of W_ih, and dW_ih is
      a sorted row-sum, so a 6,000-character vocabulary costs no more per step than 65
      characters. Layer k > 0's is one flat (4H, H) @ (H, T*B) product, which runs near the
      BLAS peak, where a per-step [W_ih | W_hh] (4H, 2H) product on [x_t, h_{t-1}] would
      stream twice the weights through the cache every step (measured 1.7 ms against
      0.56 ms per step at H = 512, B = 16 on one thread);
    * the hidden states are kept in ``XH`` (T+1, B, H), ``XH[t] = h_{t-1}``; reading
      ``XH[t].T`` (a transposed view) costs OpenBLAS nothing;
    * per-step gate work is on contiguous (4H, B) blocks ``G[t]`` of a (T, 4H, B) array, the
      orientation (4H, K) @ (K, B) being OpenBLAS's fastest at small B, and elementwise passes
      on contiguous blocks 3-4x faster than on strided views;
    * the per-step gradient ∂L/∂a is written contiguously into (T, 4H, B); one transpose per
      layer (in cache-sized (4H, B) blocks) gives the flat (T*B, 4H) operand of the weight
      gradients and of the gradient passed down, which arrives as (T, B, H).
    """

    def __init__(self, params: Params, cfg: ModelConfig) -> None:
        self.cfg = cfg
        H = cfg.hidden_size
        self.perm = _gate_perm(H)
        dtype = np.dtype(cfg.dtype)
        scale = np.full((4 * H, 1), -1.0, dtype)
        scale[3 * H :] = -2.0
        self.layers: list[_Layer] = []
        for k in range(cfg.num_layers):
            wx_u = params[f"lstm.weight_ih_l{k}"][self.perm]
            wh_u = params[f"lstm.weight_hh_l{k}"][self.perm]
            b = (params[f"lstm.bias_ih_l{k}"] + params[f"lstm.bias_hh_l{k}"])[self.perm][:, None]
            b *= scale
            wx = wx_u * scale
            if k == 0:
                # The one-hot input is never formed: its product is a gathered column of this
                # copy of W_ih (4H, V), scaled, bias folded in.
                wx += b
                self.w0 = wx
                wx = None
            self.layers.append(_Layer(w=wh_u * scale, wx=wx, b=b, wx_u=wx_u, wh_u=wh_u))
        self.dec_w = params["decoder.weight"]  # (V, H)
        self.dec_b = params["decoder.bias"]  # (V,)
        self._w0T: np.ndarray | None = None  # (V, 4H) copy of w0, made by the first step()

    # ---------------------------------------------------------------- one character at a time

    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One character per stream (``charlstm_core.engine.inference.step``): ids (B,) →
        logits (B, V) and the next state."""
        return inference.step(self, ids, state)

    def trace(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State, list]:
        """One stream with every activation (``charlstm_core.engine.inference.trace``)."""
        return inference.trace(self, ids, state)

    # ---------------------------------------------------------------- training passes

    def forward(
        self,
        x: np.ndarray,
        state: State,
        *,
        masks: list[np.ndarray | None] | None = None,
        need_cache: bool = True,
    ) -> tuple[np.ndarray, State, dict | None]:
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
        cfg = self.cfg
        B, T = x.shape
        H, V = cfg.hidden_size, cfg.vocab_size
        dtype = np.dtype(cfg.dtype)
        xt = np.ascontiguousarray(x.T)  # (T, B)
        h0, c0 = state
        h_last, c_last = np.empty_like(h0), np.empty_like(c0)
        layer_caches = []
        out = None  # (T, B, H) output of the layer below, after dropout
        o, i, f, g = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(3 * H, None)
        with np.errstate(over="ignore"):
            for k, lay in enumerate(self.layers):
                XH = np.empty((T + 1, B, H), dtype)
                G = np.empty((T, 4 * H, B), dtype)
                # every step's input projection at once, (4H, T, B); each step adds its
                # (4H, B) slice (measured cheaper than a transposed copy to (T, 4H, B))
                if k == 0:  # columns of W_ih gathered by id (cheaper than a one-hot product)
                    inp = None
                    GX = np.take(self.w0, xt, axis=1)
                else:
                    inp = out.reshape(T * B, H)
                    GX = np.matmul(lay.wx, inp.T).reshape(4 * H, T, B)
                    GX += lay.b[:, :, None]
                XH[0] = h0[k]
                Cs = np.empty((T + 1, H, B), dtype)
                TC = np.empty((T, H, B), dtype)
                tmp = np.empty((H, B), dtype)
                Cs[0] = c0[k].T
                for t in range(T):
                    z = G[t]
                    np.matmul(lay.w, XH[t].T, out=z)
                    z += GX[:, t]
                    gates(z, H)
                    c = Cs[t + 1]
                    np.multiply(z[f], Cs[t], out=c)  # f ⊙ c_{t-1}
                    np.multiply(z[i], z[g], out=tmp)  # i ⊙ g
                    c += tmp
                    _tanh(c, out=TC[t])
                    np.multiply(z[o], TC[t], out=XH[t + 1].T)  # h = o ⊙ tanh(c)
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

    def backward(self, cache: dict, dlogits: np.ndarray) -> Params:
        """Gradients of the loss with respect to every parameter (PyTorch names and layouts).

        dlogits: (T, B, V), the loss gradient with respect to the logits of ``forward``. The
        state passed in to ``forward`` is treated as a constant (truncated BPTT).

        Per step, with dh = ∂L/∂h_t and dc = ∂L/∂c_t (σ' = σ(1-σ))::

            dc = f_{t+1} ⊙ dc_{t+1} + dh ⊙ o ⊙ (1 - tanh²c_t)
            da_o = dh ⊙ tanh(c_t) ⊙ σ'(a_o)      da_i = dc ⊙ g ⊙ σ'(a_i)
            da_f = dc ⊙ c_{t-1} ⊙ σ'(a_f)         da_g = dc ⊙ i ⊙ (1 - g²)
            dh_{t-1} = W_hh^T da_t (+ the gradient from above at t-1)
        """
        cfg = self.cfg
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
        o, i, f, g = slice(0, H), slice(H, 2 * H), slice(2 * H, 3 * H), slice(3 * H, None)
        S = 3 * H  # rows [:S] are the sigmoid gates
        F = np.empty((4 * H, B), dtype)  # the factors of ∂L/∂a that do not depend on dh, dc
        Pc = np.empty((H, B), dtype)
        dh = np.empty((H, B), dtype)
        for k in reversed(range(cfg.num_layers)):
            lay = self.layers[k]
            XH, G, Cs, TC, mask, inp = cache["layers"][k]
            if mask is not None:
                dout *= mask
            dA = np.empty((T, 4 * H, B), dtype)
            dc = np.zeros((H, B), dtype)
            dh_next = np.zeros((H, B), dtype)
            whT = lay.wh_u.T
            for t in reversed(range(T)):
                z = G[t]
                # factors, computed per step while the step's activations are in cache
                np.subtract(1.0, z[:S], out=F[:S])
                F[:S] *= z[:S]  # σ'(a) for o, i, f
                F[o] *= TC[t]
                F[i] *= z[g]
                F[f] *= Cs[t]
                np.multiply(z[g], z[g], out=F[g])
                np.subtract(1.0, F[g], out=F[g])
                F[g] *= z[i]
                np.multiply(TC[t], TC[t], out=Pc)
                np.subtract(1.0, Pc, out=Pc)
                Pc *= z[o]
                # the recursion
                np.add(dout[t].T, dh_next, out=dh)
                if t + 1 < T:
                    dc *= G[t + 1][f]
                Pc *= dh
                dc += Pc
                a = dA[t]
                np.multiply(F[o], dh, out=a[o])
                np.multiply(F[H:].reshape(3, H, B), dc, out=a[H:].reshape(3, H, B))
                if t > 0:
                    np.matmul(whT, a, out=dh_next)
            # (T, 4H, B) → (T*B, 4H): each (4H, B) block transposed in cache
            dAf = np.ascontiguousarray(dA.transpose(0, 2, 1)).reshape(T * B, 4 * H)
            parts = [("hh", dAf.T @ XH[:T].reshape(T * B, H))]  # internal gate order
            if k > 0:
                parts.append(("ih", dAf.T @ inp))
            else:  # the gradient of the gather: rows of dAf summed by character id
                parts.append(("ih", _scatter_rows(cache["x"].reshape(-1), dAf, V).T))
            for name, part in parts:
                full = np.empty_like(part)
                full[self.perm] = part
                grads[f"lstm.weight_{name}_l{k}"] = full
            db = np.empty(4 * H, dtype)
            db[self.perm] = dAf.sum(axis=0)
            grads[f"lstm.bias_ih_l{k}"] = db
            grads[f"lstm.bias_hh_l{k}"] = db.copy()
            if k > 0:
                dout = (dAf @ lay.wx_u).reshape(T, B, H)
        return grads


def _scatter_rows(ids: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """out[v] = Σ rows[j] over j with ids[j] == v; ids (N,), rows (N, D) → (n, D).

    The gradient of a gather. Sorting the ids and summing each run of contiguous rows is one
    pass over the data whatever the vocabulary size (a one-hot product would cost N·n·D and an
    (N, n) matrix: 6,000-character vocabularies must stay fast).
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


def _tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """tanh x = 2 / (1 + e^(-2x)) - 1: as fast as ``np.tanh`` for float32 here, and exact enough
    for the float64 gradient check (the backward pass uses the stored values)."""
    out = np.multiply(x, -2.0, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    out *= 2.0
    out -= 1.0
    return out


def softmax_xent(
    logits: np.ndarray, targets: np.ndarray, norm: int | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy (nats) over all T*B characters and its gradient w.r.t. the logits.

    logits: (T, B, V), overwritten with the gradient (p - onehot) / norm to save memory and
    returned; norm defaults to T*B (the gradient of the mean; a slice of a larger batch passes
    that batch's count, so that the slices' gradients add up). targets: (T, B) ids.
    """
    out = logits
    logits = logits.transpose(2, 0, 1)  # (V, T, B): forward's memory order
    V, T, B = logits.shape
    norm = T * B if norm is None else norm
    logits -= logits.max(axis=0)
    np.exp(logits, out=logits)
    sums = logits.sum(axis=0)  # (T, B)
    tt, bb = np.ogrid[:T, :B]
    p_target = logits[targets, tt, bb] / sums
    tiny = np.finfo(logits.dtype).tiny
    loss = float(-np.log(np.maximum(p_target, tiny)).astype(np.float64).mean())
    logits *= (1.0 / norm) / sums
    logits[targets, tt, bb] -= logits.dtype.type(1.0 / norm)
    return loss, out


def nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood (nats) of each target; logits (T, B, V), targets (T, B) → (T, B).

    The logits are not modified; the result is float64.
    """
    logits = logits.transpose(2, 0, 1)  # (V, T, B): forward's memory order
    V, T, B = logits.shape
    m = logits.max(axis=0)
    lse = np.log(np.exp(logits - m).sum(axis=0)) + m
    tt, bb = np.ogrid[:T, :B]
    return (lse - logits[targets, tt, bb]).astype(np.float64)


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


def loss_and_grads(
    params: Params,
    cfg: ModelConfig,
    x: np.ndarray,
    y: np.ndarray,
    state: State,
    dropout_rng: np.random.Generator | None = None,
    *,
    workers: int | None = None,
) -> tuple[float, Params, State]:
    """Mean cross-entropy over the batch and its gradients.

    x, y: (B, T) input and target ids (y is x shifted by one). state: (h, c) carried in.
    Returns (loss in nats/char, grads keyed like params, final state).

    The B streams are cut into ``workers`` slices run side by side (see
    ``charlstm_core.engine.parallel``;
    None: as many as the machine's BLAS threads, on small machines). The slices' gradients
    are summed, so the result equals the one-slice pass up to float rounding; the dropout
    masks are drawn for the whole batch first, so the random stream does not depend on it.
    """
    B, T = x.shape
    prep = Prepared(params, cfg)
    masks = dropout_masks(cfg, dropout_rng, T, B)
    parts = slices(B, batch_workers(B, cfg.hidden_size) if workers is None else workers)

    def run(rows: slice) -> tuple[float, Params, State]:
        part_masks = None if masks is None else [m[:, rows] for m in masks]
        part_state = (state[0][:, rows], state[1][:, rows])
        logits, new_state, cache = prep.forward(x[rows], part_state, masks=part_masks)
        loss, dlogits = softmax_xent(logits, np.ascontiguousarray(y[rows].T), norm=T * B)
        return loss * ((rows.stop - rows.start) / B), prep.backward(cache, dlogits), new_state

    results = map_slices(run, parts)
    loss, grads, new_state = results[0]
    for part_loss, part_grads, _ in results[1:]:
        loss += part_loss
        for name, g in part_grads.items():
            grads[name] += g
    if len(results) > 1:
        new_state = tuple(np.concatenate([r[2][i] for r in results], axis=1) for i in (0, 1))
    return loss, grads, new_state
