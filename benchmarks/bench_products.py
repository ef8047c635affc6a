"""How far NumPy can go: the matrix products of one training step alone, against a PyTorch step.

``bench_speed.py`` compares whole training steps. This script asks what is left to win: it runs
only the matrix products that ``core/engine/model.py`` makes in one step (forward and backward, the
engine's shapes and layouts, float32) with nothing else — no gate arithmetic, softmax, clip or
Adam — and times them against a whole ``torch.nn.LSTM`` step in the same process, interleaved.

Two ways to run the products on the 2 cores are timed; the faster one, plus clip + Adam and a
single ``exp`` per forward gate value (both also unavoidable), is the floor:
  * split: the batch cut into one slice per core, each on its own thread with 1-thread BLAS
    (what the engine does at these sizes, see ``core/engine/parallel.py``);
  * whole: the whole batch, each product on 2-thread BLAS.

If that floor comes near a whole PyTorch step, an engine that calls OpenBLAS through NumPy
cannot reach PyTorch whatever the rest costs: per time step OpenBLAS repacks the (4H, H) weights
for every product, while PyTorch's oneDNN RNN primitive packs them once per sequence.

    .venv/bin/python benchmarks/bench_products.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from bench_speed import CONFIGS, THREADS, NumpyEngine, TorchEngine, V  # noqa: E402
from charlstm_core.config import ModelConfig  # noqa: E402
from charlstm_core.engine import model, optim, parallel  # noqa: E402


def products(L: int, H: int, B: int, T: int, workers: int):
    """A function running the matrix products of one step (see core/engine/model.py), B split in
    ``workers`` slices."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    w_hh = [rng.standard_normal((4 * H, H)).astype(f32) for _ in range(L)]
    w_ih = [rng.standard_normal((4 * H, H)).astype(f32) for _ in range(L)]  # layers k > 0
    dec = rng.standard_normal((V, H)).astype(f32)

    def one(rows: slice) -> None:
        b = rows.stop - rows.start
        XH = np.ones((T + 1, b, H), f32)  # h_0..h_T of a layer
        inp = np.ones((T * b, H), f32)  # the layer below's output
        z = np.empty((4 * H, b), f32)
        dA = np.ones((4 * H, b), f32)
        dAf = np.ones((T * b, 4 * H), f32)
        dh = np.empty((H, b), f32)
        for k in range(L):
            if k > 0:
                np.matmul(w_ih[k], inp.T)  # input projection of every step at once
            for t in range(T):
                np.matmul(w_hh[k], XH[t].T, out=z)  # recurrent product per step
        top = XH[1:].reshape(T * b, H)
        dlog = dec @ top.T  # decoder forward
        dlog @ top  # decoder weight gradient
        dlog.T @ dec  # gradient into the top layer
        for k in reversed(range(L)):
            wT = w_hh[k].T
            for _ in range(T - 1):
                np.matmul(wT, dA, out=dh)  # gradient through h_{t-1}, per step
            dAf.T @ XH[:T].reshape(T * b, H)  # W_hh gradient
            if k > 0:
                dAf.T @ inp  # W_ih gradient
                dAf @ w_ih[k]  # gradient into the layer below

    parts = parallel.slices(B, workers)
    if workers == 1:
        return lambda: one(parts[0])
    return lambda: parallel.map_slices(one, parts)


def optimizer_and_exp(L: int, H: int, B: int, T: int):
    """Two things every engine step must also do: clip + Adam over all parameters
    (core/engine/optim.py),
    and one ``exp`` over each core's share of the forward gate values (the least the gates need)."""
    cfg = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=0.0)
    params = model.init_params(cfg, np.random.default_rng(0))
    grads = {k: v.copy() for k, v in params.items()}
    adam = optim.Adam(params)
    gates = np.ones((4 * H, B * T * L // THREADS), np.float32)
    out = np.empty_like(gates)

    def run() -> None:
        optim.clip_grads(grads, 5.0, optim.global_norm(grads))
        adam.update(params, grads, 1e-9)
        np.exp(gates, out=out)

    return run


def _per_call(fn, n: int = 2) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(THREADS)
    print(f"{'L':>2} {'H':>5} {'B':>4} {'T':>4} | products alone: split  whole | clip+Adam+exp | "
          "floor/torch | numpy step | torch step  (ms, median of repeats)")  # fmt: skip
    with parallel.blas_thread_count(THREADS):
        for L, H, B, T in CONFIGS:
            runs = {
                "split": products(L, H, B, T, THREADS),
                "whole": products(L, H, B, T, 1),
                "adam+exp": optimizer_and_exp(L, H, B, T),
                "numpy": NumpyEngine(L, H, B, T).step,
                "torch": TorchEngine(L, H, B, T).step,
            }
            times: dict[str, list[float]] = {k: [] for k in runs}
            for fn in runs.values():  # warm-up
                fn()
                fn()
            for _ in range(args.repeats):
                for k, fn in runs.items():
                    times[k].append(_per_call(fn))
            med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            floor = min(med["split"], med["whole"]) + med["adam+exp"]
            print(
                f"{L:>2} {H:>5} {B:>4} {T:>4} | {med['split']:>20.0f} {med['whole']:>6.0f} | "
                f"{med['adam+exp']:>13.0f} | {floor / med['torch']:>10.2f}x | "
                f"{med['numpy']:>10.0f} | {med['torch']:>10.0f}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
