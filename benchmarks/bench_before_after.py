"""The CPU engine of another commit against this one and torch.nn.LSTM, interleaved in one process.

A change to the engine is timed where the noise of a shared machine hurts least: both versions
and PyTorch in the same process, taking turns (the order rotating each round), so a busy moment
falls on all three. The other commit's ``core/`` is imported under another package name
(``charlstm_before``), which works because the package imports itself only relatively; its batch
slices run on this commit's ``parallel`` module, so that one module sets BLAS's thread count.
One step as ``bench_speed.py``: forward, softmax cross-entropy, backward, clip 5, Adam, float32,
2 threads, the state carried.

    git archive 2ae22bf | tar -x -C /tmp/before      # the other commit, anywhere
    .venv/bin/python benchmarks/bench_before_after.py /tmp/before
    .venv/bin/python benchmarks/bench_before_after.py /tmp/before --layers 1 --batch 64

Prints chars/s (median and best) of each, each engine over PyTorch, and after / before.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

import bench_speed as bs  # noqa: E402
import numpy as np  # noqa: E402
from charlstm_core.engine import memory, parallel  # noqa: E402


def load_before(checkout: str):
    """The other commit's ``core`` as package ``charlstm_before``."""
    link_dir = tempfile.mkdtemp(prefix="charlstm-before-")
    os.symlink(
        os.path.join(os.path.abspath(checkout), "core"), os.path.join(link_dir, "charlstm_before")
    )
    sys.path.insert(0, link_dir)
    return importlib.import_module("charlstm_before")


class BeforeEngine:
    """The other commit's step: through its engine protocol when it has one (engine/cpu.py),
    else its ``model.loss_and_grads`` and ``optim`` (the code before the protocol)."""

    def __init__(self, pkg, L: int, H: int, B: int, T: int, seed: int = 0) -> None:
        cfg = importlib.import_module(pkg.__name__ + ".config").ModelConfig(
            vocab_size=bs.V, hidden_size=H, num_layers=L, dropout=0.0
        )
        model = importlib.import_module(pkg.__name__ + ".engine.model")
        for name in ("map_slices", "batch_workers", "slices"):  # one module sets BLAS threads
            if hasattr(model, name):
                setattr(model, name, getattr(parallel, name))
        rng = np.random.default_rng(seed)
        self.params = model.init_params(cfg, rng)
        self.data = rng.integers(0, bs.V, size=(16, B, T + 1))
        self.i = 0
        try:
            cpu = importlib.import_module(pkg.__name__ + ".engine.cpu")
        except ImportError:
            optim = importlib.import_module(pkg.__name__ + ".engine.optim")
            adam, state = optim.Adam(self.params), model.zero_state(cfg, B)

            def step(x, y):
                nonlocal state
                loss, grads, state = model.loss_and_grads(self.params, cfg, x, y, state)
                optim.clip_grads(grads, bs.CLIP, optim.global_norm(grads))
                adam.update(self.params, grads, bs.LR)
                return loss

        else:
            for name in ("map_slices", "batch_workers", "slices"):
                setattr(cpu, name, getattr(parallel, name))
            eng = cpu.CpuEngine(cfg)
            adam, state = eng.adam(self.params), eng.zero_state(B)

            def step(x, y):
                nonlocal state
                loss, grads, state = eng.loss_and_grads(self.params, x, y, state)
                eng.update(adam, self.params, grads, bs.LR, bs.CLIP, eng.global_norm(grads))
                return loss

        self._step = step

    def step(self) -> float:
        d = self.data[self.i % len(self.data)]
        self.i += 1
        return self._step(d[:, :-1], d[:, 1:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before", help="a checkout (or git archive) of the other commit")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=3, help="steps per engine and round")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(bs.THREADS)
    memory.keep_freed_memory()
    L, H, B, T = args.layers, args.hidden, args.batch, args.seq_len
    with parallel.blas_thread_count(bs.THREADS):
        engines = {
            "before": BeforeEngine(load_before(args.before), L, H, B, T),
            "after": bs.NumpyEngine(L, H, B, T),
            "torch": bs.TorchEngine(L, H, B, T),
        }
        for e in engines.values():
            for _ in range(3):  # warm-up
                e.step()
        names = list(engines)
        times: dict[str, list[float]] = {k: [] for k in names}
        for r in range(args.rounds):
            for k in names[r % 3 :] + names[: r % 3]:
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    engines[k].step()
                times[k].append((time.perf_counter() - t0) / args.steps)
    med = {k: B * T / statistics.median(v) for k, v in times.items()}
    best = {k: B * T / min(v) for k, v in times.items()}
    print(f"L={L} H={H} B={B} T={T}, float32, {bs.THREADS} threads; {args.rounds} rounds x "
          f"{args.steps} steps each, order rotating; chars/s median (best)")  # fmt: skip
    for k in names:
        line = f"  {k:7s} {med[k]:8,.0f} ({best[k]:8,.0f})"
        if k != "torch":
            line += f"   / torch: {med[k] / med['torch']:.2f}x ({best[k] / best['torch']:.2f}x)"
        print(line)
    ratio, ratio_best = med["after"] / med["before"], best["after"] / best["before"]
    print(f"  after / before: {ratio:.3f} ({ratio_best:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
