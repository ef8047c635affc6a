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
work on a *prepared* copy (``Prepared``): gates reordered to i, f, o, g so the three sigmoids are
one contiguous slice, the rows of the sigmoid gates pre-scaled by 1/2 so that a single ``tanh``
over all four gates gives σ(a) = (1 + tanh(a/2)) / 2, weights transposed for row-major products,
and the two biases summed. Arrays inside the passes are time-major: (T, B, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ModelConfig

Params = dict[str, np.ndarray]
State = tuple[np.ndarray, np.ndarray]  # (h, c), each (L, B, H)


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
    """Row indices taking PyTorch's gate order (i, f, g, o) to the internal one (i, f, o, g)."""
    r = np.arange(H)
    return np.concatenate([r, r + H, r + 3 * H, r + 2 * H])


@dataclass
class _Layer:
    wx: np.ndarray  # (4H, in) internal gate order, scaled (see Prepared); columns gathered at k=0
    wh: np.ndarray  # (4H, H) internal order, scaled
    b: np.ndarray  # (4H, 1) b_ih + b_hh, internal order, scaled
    whT: np.ndarray  # (H, 4H) internal order, unscaled: dh_{t-1} = whT @ da_t
    wxT: np.ndarray | None  # (H, 4H) internal order, unscaled (k > 0): dx_t = wxT @ da_t


class Prepared:
    """Weights laid out for fast passes. Build once per set of weights (once per training step).

    Inside the passes arrays are (T, features, B): each time step's slice is a contiguous
    (features, B) block, and the recurrent product W (4H, H) @ h (H, B) is the layout OpenBLAS
    runs fastest at small B (measured ~1.5x faster than h (B, H) @ W.T on this machine).
    Gate pre-activations are scaled so that one ``exp`` serves all four gates:
    rows i, f, o hold -a (σ(a) = 1 / (1 + e^-a)) and rows g hold -2a (tanh a = 2σ(2a) - 1).
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
            w_ih = params[f"lstm.weight_ih_l{k}"][self.perm]
            w_hh = params[f"lstm.weight_hh_l{k}"][self.perm]
            b = (params[f"lstm.bias_ih_l{k}"] + params[f"lstm.bias_hh_l{k}"])[self.perm]
            self.layers.append(
                _Layer(
                    wx=w_ih * scale,
                    wh=w_hh * scale,
                    b=b[:, None] * scale,
                    whT=np.ascontiguousarray(w_hh.T),
                    wxT=None if k == 0 else np.ascontiguousarray(w_ih.T),
                )
            )
        self.dec_w = params["decoder.weight"]  # (V, H)
        self.dec_wT = np.ascontiguousarray(params["decoder.weight"].T)  # (H, V)
        self.dec_b = params["decoder.bias"][:, None]  # (V, 1)

    # ---------------------------------------------------------------- inference

    def step(self, ids: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One character per stream. ids (B,) → logits (B, V) and the next state (new arrays)."""
        h0, c0 = state  # (L, B, H)
        H = self.cfg.hidden_size
        hs, cs = np.empty_like(h0), np.empty_like(c0)
        x = None  # (H, B)
        with np.errstate(over="ignore"):
            for k, lay in enumerate(self.layers):
                z = np.take(lay.wx, ids, axis=1) if k == 0 else lay.wx @ x
                z += lay.wh @ h0[k].T
                z += lay.b
                _gates(z, H)
                c = z[H : 2 * H] * c0[k].T
                c += z[:H] * z[3 * H :]
                cs[k] = c.T
                x = _tanh(c)
                x *= z[2 * H : 3 * H]
                hs[k] = x.T
        logits = (self.dec_w @ x).T
        logits += self.dec_b[:, 0]
        return logits, (hs, cs)

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
        per layer output, each (H, T, B) already divided by the keep probability (None = no
        dropout there). Returns logits (V, T, B), the final state and the cache for ``backward``.

        Layouts: per-step work reads contiguous (features, B) blocks of ``Z`` (T, 4H, B); the
        sequences of outputs are kept as (H, T, B) so that every product over all T*B positions
        (next layer's input projection, decoder, weight gradients) is one flat matrix product.
        """
        cfg = self.cfg
        B, T = x.shape
        H = cfg.hidden_size
        dtype = np.dtype(cfg.dtype)
        xt = np.ascontiguousarray(x.T)  # (T, B)
        h0, c0 = state
        h_last, c_last = np.empty_like(h0), np.empty_like(c0)
        layer_caches = []
        inp = None  # (H, T, B) input of layers k > 0
        tmp = np.empty((4 * H, B), dtype)
        with np.errstate(over="ignore"):
            for k, lay in enumerate(self.layers):
                if k == 0:
                    Z = np.empty((T, 4 * H, B), dtype)
                    wxb = lay.wx + lay.b  # bias folded into the gathered columns
                else:
                    Zf = lay.wx @ inp.reshape(H, T * B)  # (4H, T*B)
                    Zf += lay.b
                    Z = np.ascontiguousarray(Zf.reshape(4 * H, T, B).transpose(1, 0, 2))
                Hs = np.empty((H, T + 1, B), dtype)  # Hs[:, 0] = h_{-1}
                Cs = np.empty((T + 1, H, B), dtype)
                TC = np.empty((T, H, B), dtype)
                Hs[:, 0], Cs[0] = h0[k].T, c0[k].T
                for t in range(T):
                    z = Z[t]
                    if k == 0:
                        np.take(wxb, xt[t], axis=1, out=z)  # the one-hot product, plus bias
                    np.matmul(lay.wh, Hs[:, t], out=tmp)
                    z += tmp
                    _gates(z, H)
                    c = Cs[t + 1]
                    np.multiply(z[H : 2 * H], Cs[t], out=c)  # f ⊙ c_{t-1}
                    np.multiply(z[:H], z[3 * H :], out=tmp[:H])  # i ⊙ g
                    c += tmp[:H]
                    np.tanh(c, out=TC[t])
                    np.multiply(z[2 * H : 3 * H], TC[t], out=Hs[:, t + 1])  # o ⊙ tanh(c)
                h_last[k], c_last[k] = Hs[:, T].T, Cs[T].T
                out = Hs[:, 1:]
                mask = masks[k] if masks is not None else None
                if mask is not None:
                    out = out * mask
                layer_caches.append((inp, Z, Hs, Cs, TC, mask))
                inp = out
        top = np.ascontiguousarray(inp).reshape(H, T * B)
        logits = self.dec_w @ top  # (V, T*B)
        logits += self.dec_b
        cache = {"x": xt, "layers": layer_caches, "top": top} if need_cache else None
        return logits.reshape(-1, T, B), (h_last, c_last), cache

    def backward(self, cache: dict, dlogits: np.ndarray) -> Params:
        """Gradients of the loss with respect to every parameter (PyTorch names and layouts).

        dlogits: (V, T, B), the loss gradient with respect to the logits of ``forward``. The
        state passed in to ``forward`` is treated as a constant (truncated BPTT).
        """
        cfg = self.cfg
        H = cfg.hidden_size
        xt = cache["x"]
        T, B = xt.shape
        dtype = np.dtype(cfg.dtype)
        top = cache["top"]  # (H, T*B)
        dlog = dlogits.reshape(-1, T * B)
        grads: Params = {
            "decoder.weight": dlog @ top.T,
            "decoder.bias": dlog.sum(axis=1),
        }
        dout = (self.dec_wT @ dlog).reshape(H, T, B)  # gradient w.r.t. the top layer's output
        for k in reversed(range(cfg.num_layers)):
            lay = self.layers[k]
            inp, Z, Hs, Cs, TC, mask = cache["layers"][k]
            if mask is not None:
                dout *= mask
            # Factors that do not depend on the recursion, computed for all t at once:
            #   da_o = dh ⊙ tanh(c) ⊙ o(1-o)          dc += dh ⊙ o ⊙ (1 - tanh²c)
            #   da_i = dc ⊙ g ⊙ i(1-i)   da_f = dc ⊙ c_{t-1} ⊙ f(1-f)   da_g = dc ⊙ i ⊙ (1-g²)
            i, f, o, g = Z[:, :H], Z[:, H : 2 * H], Z[:, 2 * H : 3 * H], Z[:, 3 * H :]
            dA = np.empty((T, 4 * H, B), dtype)  # factors first, then ∂L/∂a in place
            _one_minus_times(i, i, g, out=dA[:, :H])  # g ⊙ i(1-i)
            _one_minus_times(f, f, Cs[:-1], out=dA[:, H : 2 * H])  # c_{t-1} ⊙ f(1-f)
            _one_minus_times(o, o, TC, out=dA[:, 2 * H : 3 * H])  # tanh(c) ⊙ o(1-o)
            np.multiply(g, g, out=dA[:, 3 * H :])
            _one_minus_times(dA[:, 3 * H :], i, None, out=dA[:, 3 * H :])  # i ⊙ (1-g²)
            Pc = np.multiply(TC, TC)
            _one_minus_times(Pc, o, None, out=Pc)  # o ⊙ (1 - tanh²c), (T, H, B)
            dh = np.empty((H, B), dtype)
            dc = np.zeros((H, B), dtype)
            dh_next = np.zeros((H, B), dtype)
            tmp = np.empty((H, B), dtype)
            for t in reversed(range(T)):
                np.add(dout[:, t], dh_next, out=dh)
                if t + 1 < T:
                    dc *= f[t + 1]  # ∂L/∂c_t gets f_{t+1} ⊙ ∂L/∂c_{t+1}
                np.multiply(dh, Pc[t], out=tmp)
                dc += tmp
                a = dA[t]
                a[2 * H : 3 * H] *= dh  # da_o
                a4 = a.reshape(4, H, B)
                a4[:2] *= dc  # da_i, da_f
                a4[3] *= dc  # da_g
                if t > 0:
                    np.matmul(lay.whT, a, out=dh_next)
            # feature-major copy so each product over all T*B positions is one flat product
            dA = np.ascontiguousarray(dA.transpose(1, 0, 2))
            dAf = dA.reshape(4 * H, T * B)
            dW_hh = np.empty((4 * H, H), dtype)
            dW_hh[self.perm] = dAf @ Hs[:, :T].reshape(H, T * B).T
            grads[f"lstm.weight_hh_l{k}"] = dW_hh
            db = np.empty(4 * H, dtype)
            db[self.perm] = dAf.sum(axis=1)
            grads[f"lstm.bias_ih_l{k}"] = db
            grads[f"lstm.bias_hh_l{k}"] = db.copy()
            if k > 0:
                inpf = np.ascontiguousarray(inp).reshape(H, T * B)
                dW_ih = np.empty((4 * H, H), dtype)
                dW_ih[self.perm] = dAf @ inpf.T
                grads[f"lstm.weight_ih_l{k}"] = dW_ih
                dout = (lay.wxT @ dAf).reshape(H, T, B)
            else:
                dW = np.empty((4 * H, cfg.vocab_size), dtype)
                dW[self.perm] = _scatter_columns(xt.reshape(-1), dAf, cfg.vocab_size)
                grads["lstm.weight_ih_l0"] = dW
        return grads


def _one_minus_times(
    x: np.ndarray, y: np.ndarray, z: np.ndarray | None, *, out: np.ndarray
) -> np.ndarray:
    """out = (1 - x) ⊙ y [⊙ z] without temporaries (out may alias x)."""
    np.subtract(1.0, x, out=out)
    out *= y
    if z is not None:
        out *= z
    return out


def _gates(z: np.ndarray, H: int) -> None:
    """In place: scaled pre-activations (4H, B) → i, f, o = σ(a) and g = tanh(a) (see Prepared)."""
    np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    g = z[3 * H :]
    g *= 2.0
    g -= 1.0


def _tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """tanh x = 2 / (1 + e^(-2x)) - 1, which NumPy computes faster than ``np.tanh`` for float32."""
    out = np.multiply(x, -2.0, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    out *= 2.0
    out -= 1.0
    return out


def _scatter_columns(ids: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """out[:, v] = Σ cols[:, j] over j with ids[j] == v; ids (N,), cols (D, N) → (D, n).

    The gradient of a column gather (the one-hot input product). Sorting the ids and summing
    each run with ``add.reduceat`` costs one pass and never forms a one-hot matrix.
    """
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out = np.zeros((cols.shape[0], n), cols.dtype)
    out[:, sorted_ids[starts]] = np.add.reduceat(cols[:, order], starts, axis=1)
    return out


def softmax_xent(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy (nats) over all T*B characters and its gradient w.r.t. the logits.

    logits: (V, T, B), overwritten with the gradient (p - onehot) / (T*B) to save memory.
    targets: (T, B) ids.
    """
    V, T, B = logits.shape
    logits -= logits.max(axis=0)
    np.exp(logits, out=logits)
    sums = logits.sum(axis=0)  # (T, B)
    tt, bb = np.ogrid[:T, :B]
    p_target = logits[targets, tt, bb] / sums
    tiny = np.finfo(logits.dtype).tiny
    loss = float(-np.log(np.maximum(p_target, tiny)).astype(np.float64).mean())
    logits *= (1.0 / (T * B)) / sums
    logits[targets, tt, bb] -= logits.dtype.type(1.0 / (T * B))
    return loss, logits


def nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood (nats) of each target; logits (V, T, B), targets (T, B) → (T, B).

    The logits are not modified; the result is float64.
    """
    V, T, B = logits.shape
    m = logits.max(axis=0)
    lse = np.log(np.exp(logits - m).sum(axis=0)) + m
    tt, bb = np.ogrid[:T, :B]
    return (lse - logits[targets, tt, bb]).astype(np.float64)


def dropout_masks(
    cfg: ModelConfig, rng: np.random.Generator | None, T: int, B: int
) -> list[np.ndarray | None] | None:
    """Inverted-dropout masks, one (H, T, B) per layer output, or None when dropout is off."""
    p = cfg.dropout
    if rng is None or p <= 0.0:
        return None
    keep = 1.0 - p
    dtype = np.dtype(cfg.dtype)
    masks = []
    for _ in range(cfg.num_layers):
        m = rng.random((cfg.hidden_size, T, B), dtype=dtype) < keep
        masks.append(m.astype(dtype) * dtype.type(1.0 / keep))
    return masks


def loss_and_grads(
    params: Params,
    cfg: ModelConfig,
    x: np.ndarray,
    y: np.ndarray,
    state: State,
    dropout_rng: np.random.Generator | None = None,
) -> tuple[float, Params, State]:
    """Mean cross-entropy over the batch and its gradients.

    x, y: (B, T) input and target ids (y is x shifted by one). state: (h, c) carried in.
    Returns (loss in nats/char, grads keyed like params, final state).
    """
    B, T = x.shape
    prep = Prepared(params, cfg)
    logits, new_state, cache = prep.forward(x, state, masks=dropout_masks(cfg, dropout_rng, T, B))
    loss, dlogits = softmax_xent(logits, np.ascontiguousarray(y.T))
    return loss, prep.backward(cache, dlogits), new_state


def forward(
    params: Params, cfg: ModelConfig, x: np.ndarray, state: State
) -> tuple[np.ndarray, State, dict]:
    """Inference over a batch (no dropout). x (B, T) → logits (B, T, V), final state, cache.

    The cache's ``"layers"`` entries ``(inp, Z, Hs, Cs, TC, mask)`` hold each layer's hidden
    states ``Hs[:, 1:]`` (H, T, B) and cell states ``Cs[1:]`` (T, H, B), for introspection.
    """
    logits, new_state, cache = Prepared(params, cfg).forward(x, state)
    return logits.transpose(2, 1, 0), new_state, cache


def step(
    params: Params, cfg: ModelConfig, ids: np.ndarray, state: State
) -> tuple[np.ndarray, State]:
    """One character per stream (prepares the weights each call; hold a ``Prepared`` to loop)."""
    return Prepared(params, cfg).step(ids, state)
